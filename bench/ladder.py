#!/usr/bin/env python3
"""Full four-profile ladder of a 4-minute stereo 44.1 kHz FLAC, pinned to one core.

stream-server (`transcode`, one decode and resample feeding all four encoders) against Debian's
ffmpeg CLI doing the same ladder in one process (native `aac` encoder and `libmp3lame`,
`-threads 1`), in the same run. Prints the median of RUNS runs and the ratio.
"""
import os
import sys
import tempfile

from common import BIN, build, make_flac, median, timed

RUNS = int(os.environ.get("RUNS", "5"))
SECS = 240


def main():
    build()
    with tempfile.TemporaryDirectory() as work:
        lib = os.path.join(work, "lib")
        src = os.path.join(lib, "track.flac")
        make_flac(src, SECS)
        ours, theirs = [], []
        for i in range(RUNS):
            data = os.path.join(work, f"data{i}")
            ours.append(timed(["taskset", "-c", "0", BIN, "transcode", "--all", "--library", lib,
                               "--data-dir", data, "--transcode-workers", "1"],
                              env={**os.environ, "RUST_LOG": "warn"}))
            out = os.path.join(work, f"ff{i}")
            os.makedirs(out)
            theirs.append(timed([
                "taskset", "-c", "0", "ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", src,
                "-map", "0:a", "-c:a", "aac", "-b:a", "320k", "-ar", "44100", "-f", "adts", f"{out}/high.aac",
                "-map", "0:a", "-c:a", "aac", "-b:a", "192k", "-ar", "44100", "-f", "adts", f"{out}/medium.aac",
                "-map", "0:a", "-c:a", "libmp3lame", "-b:a", "128k", "-ar", "22050", f"{out}/low.mp3",
                "-map", "0:a", "-c:a", "aac", "-b:a", "96k", "-ar", "22050", "-f", "adts", f"{out}/mobile.aac",
            ]))
        o, t = median(ours), median(theirs)
        print(f"ladder of a {SECS} s stereo 44.1 kHz FLAC, one core, median of {RUNS}")
        print(f"| tool | wall s | x real time |")
        print(f"|---|---|---|")
        print(f"| stream-server transcode | {o:.2f} | {SECS / o:.0f}x |")
        print(f"| ffmpeg CLI (aac + libmp3lame) | {t:.2f} | {SECS / t:.0f}x |")
        print(f"ratio: stream-server is {t / o:.1f}x faster than ffmpeg")
        return 0


if __name__ == "__main__":
    sys.exit(main())
