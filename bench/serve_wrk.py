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


def wrk(url):
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{DURATION}", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return rps, p99


def main():
    build()
    with tempfile.TemporaryDirectory() as work:
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
            ours = wrk(url)
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
                    assert get(f"http://127.0.0.1:{port}/seg.aac") == body
                    break
                except Exception:
                    time.sleep(0.05)
            theirs = wrk(f"http://127.0.0.1:{port}/seg.aac")
        finally:
            nginx.terminate()
            nginx.wait()
        print(f"one cached {len(body)} byte segment, wrk -t1 -c64 -d{DURATION} on loopback")
        print("| server | requests/s | p99 latency |")
        print("|---|---|---|")
        print(f"| stream-server | {ours[0]:.0f} | {ours[1]} |")
        print(f"| nginx (sendfile) | {theirs[0]:.0f} | {theirs[1]} |")
        print(f"ratio: {ours[0] / theirs[0]:.2f}x nginx")
        return 0


if __name__ == "__main__":
    sys.exit(main())
