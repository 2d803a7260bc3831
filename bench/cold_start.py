#!/usr/bin/env python3
"""Cold start: the first segment of a never-encoded track, from request to last byte.

stream-server (in-process encode, segment served as soon as its frames exist) against the
approach of ffmpeg-based servers: spawning ffmpeg to encode that segment. Same track, same
profile (medium: AAC 192 kbps 44.1 kHz), same machine, same run. Median of N tracks.
"""
import os
import re
import shutil
import sys
import tempfile
import time

from common import build, get, make_flac, median, start_server, timed

N = int(os.environ.get("N", "15"))


def main():
    build()
    with tempfile.TemporaryDirectory() as work:
        lib = os.path.join(work, "lib")
        make_flac(os.path.join(lib, "t0.flac"), 240)
        for i in range(1, N):
            shutil.copy(os.path.join(lib, "t0.flac"), os.path.join(lib, f"t{i}.flac"))
        data = os.path.join(work, "data")
        os.makedirs(data)
        proc, base = start_server(lib, data)
        try:
            import json
            tracks = json.loads(get(base + "/api/tracks"))
            ours = []
            seg_secs = None
            for t in tracks:
                playlist = get(f"{base}/hls/{t['id']}/medium/playlist.m3u8").decode()
                first = next(l for l in playlist.splitlines() if l and not l.startswith("#"))
                seg_secs = float(re.search(r"#EXTINF:([\d.]+)", playlist).group(1))
                t0 = time.perf_counter()
                body = get(f"{base}/hls/{t['id']}/medium/{first}")
                ours.append(time.perf_counter() - t0)
                assert len(body) > 10_000
        finally:
            proc.terminate()
            proc.wait()
        theirs = []
        for i in range(N):
            theirs.append(timed(["ffmpeg", "-nostdin", "-v", "error", "-ss", "0", "-t", f"{seg_secs:.6f}",
                                 "-i", os.path.join(lib, f"t{i}.flac"), "-c:a", "aac", "-b:a", "192k",
                                 "-ar", "44100", "-f", "adts", "-"]))
        o, t = median(ours), median(theirs)
        print(f"first {seg_secs:.3f} s segment of a never-encoded 240 s FLAC, profile medium, median of {N}")
        print("| approach | median ms |")
        print("|---|---|")
        print(f"| stream-server, in process | {o * 1000:.1f} |")
        print(f"| spawn ffmpeg for the segment | {t * 1000:.1f} |")
        print(f"ratio: {t / o:.1f}x faster")
        return 0


if __name__ == "__main__":
    sys.exit(main())
