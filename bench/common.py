"""Shared helpers for the benchmark scripts: building, fixtures, timing."""
import os
import socket
import statistics
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "stream-server")

# Music-like test signal (chords changing every 2 s, a tremolo voice, plucked notes, pink noise).
MUSIC = (
    "aevalsrc=exprs='0.25*sin(2*PI*(220+110*floor(t/2))*t)+0.2*sin(2*PI*330*t)*(0.5+0.5*sin(2*PI*2*t))"
    "+0.1*sin(2*PI*880*t)*exp(-5*mod(t\\,0.5))|0.25*sin(2*PI*(220+110*floor(t/2))*t)"
    "+0.2*sin(2*PI*331*t)*(0.5+0.5*sin(2*PI*2*t))+0.1*sin(2*PI*887*t)*exp(-5*mod(t\\,0.5))':s=44100:d={secs}"
)


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def make_flac(path, secs=240):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", MUSIC.format(secs=secs),
         "-f", "lavfi", "-i", f"anoisesrc=c=pink:a=0.03:r=44100:d={secs}",
         "-filter_complex", "[0][1]amix=inputs=2:normalize=0,aformat=channel_layouts=stereo",
         "-c:a", "flac", path],
        check=True,
    )


def timed(cmd, **kw):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def median(xs):
    return statistics.median(xs)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(library, data_dir, extra=()):
    port = free_port()
    log = open(os.path.join(data_dir, "server.log"), "w")
    proc = subprocess.Popen(
        [BIN, "serve", "--library", library, "--data-dir", data_dir, "--bind", f"127.0.0.1:{port}", *extra],
        stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"},
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except Exception:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()
