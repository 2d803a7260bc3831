#!/usr/bin/env python3
"""Cached segment serving under load: `wrk` with 64 connections on loopback against
stream-server serving one already-encoded segment, and against nginx serving the same bytes
from a file on disk (sendfile on), in the same run. Requests/s and the ratio.

The load generator and the server share the machine's cores: wrk runs one thread pinned to
core 0; each server is left the whole machine (stream-server's runtime has one worker per core,
nginx `worker_processes auto`).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from common import build, free_port, get, make_flac, start_server

DURATION = os.environ.get("DURATION", "10s")
RUNS = int(os.environ.get("RUNS", "3"))


def cpu_seconds(pids):
    """User + system CPU time of these processes so far."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_pids(proc):
    """The server's process and its children (nginx's workers)."""
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    return [proc.pid, *map(int, kids)]


def wrk(url, proc):
    """Requests/s, p99 latency, and the server's CPU time per request (µs)."""
    pids = server_pids(proc)
    before = cpu_seconds(pids)
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{DURATION}", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pids) - before
    # A server answering errors fast must not pass for a fast server.
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad or "Socket errors" in out:
        sys.exit(f"wrk saw failed requests against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, p99, cpu / requests * 1e6


def main():
    build()
    with tempfile.TemporaryDirectory() as work:
        # nginx's workers run as an unprivileged user: they must be able to read the files.
        os.chmod(work, 0o755)
        lib = os.path.join(work, "lib")
        make_flac(os.path.join(lib, "t.flac"), 60)
        data = os.path.join(work, "data")
        os.makedirs(data)
        proc, base = start_server(lib, data)
        try:
            track = json.loads(get(base + "/api/tracks"))[0]["id"]
            playlist = get(f"{base}/hls/{track}/medium/playlist.m3u8").decode()
            seg = [l for l in playlist.splitlines() if l and not l.startswith("#")][1]
            url = f"{base}/hls/{track}/medium/{seg}"
            body = get(url)  # encode and warm
            time.sleep(2)
            ours = [wrk(url, proc) for _ in range(RUNS)]
        finally:
            proc.terminate()
            proc.wait()

        root = os.path.join(work, "www")
        os.makedirs(root)
        with open(os.path.join(root, "seg.aac"), "wb") as f:
            f.write(body)
        port = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    types {{ audio/aac aac; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
    }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-c", conf], stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    get(f"http://127.0.0.1:{port}/seg.aac")
                    break
                except Exception:
                    time.sleep(0.05)
            # nginx must serve the very bytes we serve (an error page would be much faster).
            assert get(f"http://127.0.0.1:{port}/seg.aac") == body, "nginx does not serve the segment"
            theirs = [wrk(f"http://127.0.0.1:{port}/seg.aac", nginx) for _ in range(RUNS)]
        finally:
            nginx.terminate()
            nginx.wait()
        ours, theirs = (sorted(runs)[len(runs) // 2] for runs in (ours, theirs))
        print(f"one cached {len(body)} byte segment, wrk -t1 -c64 -d{DURATION} on loopback, "
              f"median of {RUNS} runs (by requests/s)")
        print("| server | requests/s | p99 latency | server CPU per request (µs) |")
        print("|---|---|---|---|")
        print(f"| stream-server | {ours[0]:.0f} | {ours[1]} | {ours[2]:.1f} |")
        print(f"| nginx (sendfile) | {theirs[0]:.0f} | {theirs[1]} | {theirs[2]:.1f} |")
        print(f"ratio: {ours[0] / theirs[0]:.2f}x nginx requests/s, "
              f"{theirs[2] / ours[2]:.2f}x nginx CPU efficiency")
        return 0


if __name__ == "__main__":
    sys.exit(main())
