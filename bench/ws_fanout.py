#!/usr/bin/env python3
"""WebSocket broadcast fan-out: N clients (default 10,000) connected to `GET /api/ws`, each
subscribed to `ServerMessage`; events published with `POST /api/admin/message`, each delivered to
every client. Against stream-server and against a Node.js `ws` server written to the same
protocol subset (bench/wsload/node-server), and against the floor (bench/wsload's `wsfloor`: one
thread writing each broadcast to each socket with one send(2) and doing nothing else, the lower
bound of what any server's latency can be on this machine), in the same run, with the same load
tool (bench/wsload).

Measured for each server: server RSS per idle connection (VmRSS with the clients connected and
idle, minus VmRSS before they connected, over the connections the server reports), delivered
messages/s and event-to-client latency (p50/p99/max) at each paced rate, and the maximum
delivered messages/s (publishing as fast as the server answers, at most `--window` undelivered
events per client). The ratio ours/node of the maximum is the headline.

The load tool and the server share the machine's cores: the server is pinned to core 0
(`taskset -c 0`: stream-server's runtime then has one worker; node is one thread anyway) and
wsload, a single-threaded runtime holding every client and the publisher, to core 1
(`taskset -c 1`). Its CPU use is reported: near 100% means the client side, not the server,
set the pace.

Builds nothing but the Node server's dependencies (`npm ci` when node_modules is missing): it
expects target/release/stream-server, target/release/wsload and target/release/wsfloor, from
    cargo build --release -p stream-server -p wsload

    python3 bench/ws_fanout.py                          # the full run (~10 min)
    python3 bench/ws_fanout.py --connections 2000 --duration-secs 10 --idle-secs 5   # smoke
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from common import ROOT, free_port

# Overridable, e.g. to try a debug build: STREAM_SERVER_BIN=target/debug/stream-server.
STREAM_SERVER = os.environ.get("STREAM_SERVER_BIN") or os.path.join(ROOT, "target", "release", "stream-server")
WSLOAD = os.environ.get("WSLOAD_BIN") or os.path.join(ROOT, "target", "release", "wsload")
WSFLOOR = os.environ.get("WSFLOOR_BIN") or os.path.join(ROOT, "target", "release", "wsfloor")
NODE_DIR = os.path.join(ROOT, "bench", "wsload", "node-server")
BUILD_CMD = "cargo build --release -p stream-server -p wsload"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10_000, help="WebSocket clients (default 10000)")
    p.add_argument("--duration-secs", type=int, default=30, help="publishing time of each phase (default 30)")
    p.add_argument("--idle-secs", type=int, default=15,
                   help="clients held idle before publishing, RSS read meanwhile (default 15)")
    p.add_argument("--rates", default="1,15,30",
                   help="paced phases, events/s, each event to every client (default 1,15,30; "
                        "at 1 event/s one event's sweep never overlaps the next)")
    p.add_argument("--no-max", action="store_true", help="skip the max-throughput phase")
    p.add_argument("--window", type=int, default=64,
                   help="max phase: undelivered events allowed per client (0: none; default 64)")
    p.add_argument("--pipeline", type=int, default=4, help="requests in flight per publisher connection")
    p.add_argument("--publisher-conns", type=int, default=2, help="publisher HTTP connections")
    p.add_argument("--ramp-batch", type=int, default=500, help="connections opened at once")
    p.add_argument("--servers", default="ours,node,floor",
                   help="which servers, in order (ours,node,floor; floor: bench/wsload's wsfloor, "
                        "one send(2) per socket and nothing else, the lower bound of the latency)")
    p.add_argument("--server-cpus", default="0", help="taskset CPU list of the server (default 0)")
    p.add_argument("--load-cpus", default="1", help="taskset CPU list of wsload (default 1)")
    p.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    return p.parse_args()


# ---- processes -------------------------------------------------------------------------------

def kill_group(proc, grace=5.0):
    """Ends a child started with start_new_session=True, and everything it started."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def raise_nofile(need):
    """Raises RLIMIT_NOFILE for this process and so for its children (inherited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    for limits in ((need, max(hard, need)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            continue
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        print(f"warning: RLIMIT_NOFILE is {soft}, {need} wanted: connections may fail", file=sys.stderr)
    return soft


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_healthy(base, proc, log_path, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {timeout} s:\n{tail(log_path)}")


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def start_server(kind, port, work, cpus):
    log_path = os.path.join(work, f"{kind}-server.log")
    log = open(log_path, "w")
    if kind == "ours":
        data = os.path.join(work, "data")
        os.makedirs(data, exist_ok=True)
        cmd = ["taskset", "-c", cpus, STREAM_SERVER, "serve", "--bind", f"127.0.0.1:{port}", "--demo",
               "--data-dir", data, "--live-stats-secs", "0"]
        env = {**os.environ, "RUST_LOG": "warn"}
    elif kind == "floor":
        cmd = ["taskset", "-c", cpus, WSFLOOR, "--bind", f"127.0.0.1:{port}"]
        env = dict(os.environ)
    else:
        cmd = ["taskset", "-c", cpus, "node", os.path.join(NODE_DIR, "server.mjs"), "--port", str(port)]
        env = dict(os.environ)
    # taskset execs the server: the child's pid is the server's, for /proc.
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
    log.close()
    return proc, log_path


# ---- one server under load -------------------------------------------------------------------

def measure(kind, args, work):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server, log_path = start_server(kind, port, work, args.server_cpus)
    load = None
    try:
        wait_healthy(base, server, log_path)
        time.sleep(1.0)
        out = {"server": kind, "rss_before_kib": rss_kib(server.pid), "phases": {}, "server_cpu_pct": {}}
        cmd = ["taskset", "-c", args.load_cpus, WSLOAD, "--server", f"127.0.0.1:{port}",
               "--connections", str(args.connections), "--ramp-batch", str(args.ramp_batch),
               "--idle-secs", str(args.idle_secs), "--duration-secs", str(args.duration_secs),
               "--publisher-conns", str(args.publisher_conns), "--pipeline", str(args.pipeline),
               "--window", str(args.window)]
        if args.rates:
            cmd += ["--rates", args.rates]
        if not args.no_max:
            cmd.append("--max-throughput")
        load_log = os.path.join(work, f"{kind}-wsload.log")
        with open(load_log, "w") as errf:
            load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True,
                                    start_new_session=True)
        # Bounds the whole run: connect, idle, every phase with its drain and settle, and slack.
        n_phases = len([r for r in args.rates.split(",") if r]) + (0 if args.no_max else 1)
        budget = 120 + args.connections / 50 + args.idle_secs + n_phases * (args.duration_secs + 60)
        watchdog = threading.Timer(budget, kill_group, args=(load,))
        watchdog.start()
        marks = {}
        try:
            for line in load.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    print(f"[{kind}] {line}", file=sys.stderr)
                    continue
                print(f"[{kind}] {line}", file=sys.stderr)
                if msg.get("event") == "phase_start":
                    phase = msg["phase"]
                    marks[phase] = (time.monotonic(), cpu_secs(server.pid))
                    if phase == "idle":
                        # Let the last connections settle, then read the server's memory while
                        # every client is connected and idle (wsload prints nothing meanwhile).
                        time.sleep(min(5.0, args.idle_secs / 2))
                        out["rss_idle_kib"] = rss_kib(server.pid)
                        try:
                            out["server_connections"] = http_json(base + "/api/ws/stats")["current_connections"]
                        except Exception as e:  # noqa: BLE001 - reported, not fatal
                            print(f"[{kind}] /api/ws/stats: {e}", file=sys.stderr)
                    continue
                phase = msg.get("phase")
                if phase is None:
                    continue
                key = phase if phase != "rate" else f"rate:{msg['events_per_sec_target']:g}"
                out["phases"][key] = msg
                if phase in marks:
                    t0, c0 = marks.pop(phase)
                    wall = time.monotonic() - t0
                    if wall > 0:
                        out["server_cpu_pct"][key] = round((cpu_secs(server.pid) - c0) / wall * 100, 1)
                if phase == "idle":
                    out["rss_idle_end_kib"] = rss_kib(server.pid)
                if phase == "connect" and args.idle_secs <= 0:
                    # No idle phase: read the memory right after connecting instead.
                    time.sleep(1.0)
                    out["rss_idle_kib"] = rss_kib(server.pid)
                if phase == "done":
                    try:
                        out["server_stats"] = http_json(base + "/api/ws/stats")
                    except Exception as e:  # noqa: BLE001
                        print(f"[{kind}] /api/ws/stats: {e}", file=sys.stderr)
            load.wait()
        finally:
            watchdog.cancel()
        if load.returncode != 0:
            raise RuntimeError(f"wsload failed ({load.returncode}) against {kind}:\n{tail(load_log)}")
        if server.poll() is not None:
            raise RuntimeError(f"{kind} server died during the run:\n{tail(log_path)}")
        conns = out.get("server_connections") or out["phases"].get("idle", {}).get("alive_before") \
            or out["phases"].get("connect", {}).get("alive")
        if "rss_idle_kib" in out and conns:
            out["rss_per_conn_kib"] = (out["rss_idle_kib"] - out["rss_before_kib"]) / conns
        return out
    finally:
        kill_group(load)
        kill_group(server)


# ---- report ----------------------------------------------------------------------------------

def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}".replace(",", " ")


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "" if not a or not b else f"{a / b:.2f}×"


def report(results, args):
    kinds = [r["server"] for r in results]
    names = {"ours": "stream-server", "node": f"node {node_version()} + ws {ws_version()}",
             "floor": "floor (wsfloor)"}
    both = "ours" in kinds and "node" in kinds
    header = "| | " + " | ".join(names[k] for k in kinds) + (" | ours / node |" if both else " |")
    rows = [header, "|---" * (len(kinds) + 1 + (1 if both else 0)) + "|"]

    def row(label, values, with_ratio=False, numeric=None):
        cells = " | ".join(values)
        extra = ""
        if both:
            pair = numeric and (numeric[kinds.index("ours")], numeric[kinds.index("node")])
            extra = " | " + (ratio(*pair) if with_ratio and pair else "")
        rows.append(f"| {label} | {cells}{extra} |")

    def mib(kib):
        return None if kib is None else kib / 1024

    row("clients subscribed", [fmt_int(_dig(r, ("phases", "connect", "subscribed"))) for r in results])
    row("connect time (s)", [fmt(_dig(r, ("phases", "connect", "secs"))) for r in results])
    row("server RSS before clients (MiB)", [fmt(mib(r.get("rss_before_kib"))) for r in results])
    row("server RSS with clients idle (MiB)", [fmt(mib(r.get("rss_idle_kib"))) for r in results])
    row("**RSS per idle connection (KiB)**", [fmt(r.get("rss_per_conn_kib")) for r in results],
        True, [r.get("rss_per_conn_kib") for r in results])
    phase_keys = [f"rate:{float(x):g}" for x in args.rates.split(",") if x]
    if not args.no_max:
        phase_keys.append("max")
    for key in phase_keys:
        ph = [r.get("phases", {}).get(key, {}) for r in results]
        if key == "max":
            label = "max throughput"
        else:
            target = ph[0].get("msgs_per_sec_target")
            label = f"{key[5:]} events/s (target {fmt_int(target)} msgs/s)"
        row(f"{label}: **delivered msgs/s**", [fmt_int(p.get("delivered_per_sec")) for p in ph],
            True, [p.get("delivered_per_sec") for p in ph])
        if key == "max":
            row(f"{label}: events/s", [fmt(p.get("events_per_sec")) for p in ph])
        row(f"{label}: latency at the client's socket p50 / p99 / max (ms)",
            [" / ".join(fmt(_dig(p, ("latency_at_socket_ms", q)), 1) for q in ("p50", "p99", "max"))
             for p in ph])
        row(f"{label}: latency as wsload reads it p50 / p99 / max (ms)",
            [" / ".join(fmt(_dig(p, ("latency_ms", q)), 1) for q in ("p50", "p99", "max")) for p in ph])
        row(f"{label}: lost / clients dropped",
            [f"{fmt_int(p.get('lost'))} / {fmt_int(p.get('closed_during'))}" for p in ph])
        row(f"{label}: server / wsload CPU %",
            [f"{fmt(_dig(r, ('server_cpu_pct', key)), 0)} / {fmt(p.get('client_cpu_pct'), 0)}"
             for r, p in zip(results, ph)])
    row("slow-reader disconnects (server's count)",
        [fmt_int(_dig(r, ("server_stats", "slow_reader_disconnects"))) for r in results])
    for r in results:
        if "error" in r:
            print(f"{names[r['server']]} FAILED: {r['error']}", file=sys.stderr)

    print(f"{args.connections} WebSocket clients subscribed to ServerMessage; one POST "
          f"/api/admin/message per event, each event to every client; {args.duration_secs} s per "
          f"phase; server on core {args.server_cpus} (taskset), wsload (1 thread, all clients and "
          f"the publisher) on core {args.load_cpus}; max phase: {args.publisher_conns} publisher "
          f"connections × {args.pipeline} pipelined, window {args.window} events/client.")
    print()
    print("\n".join(rows))
    if both and not args.no_max:
        a = _dig(results[kinds.index("ours")], ("phases", "max", "delivered_per_sec"))
        b = _dig(results[kinds.index("node")], ("phases", "max", "delivered_per_sec"))
        if a and b:
            print(f"\nmax throughput ratio: {a / b:.2f}x node (target ≥ 2×)")
    if "floor" in kinds:
        fl = results[kinds.index("floor")]
        sweeps = _dig(fl, ("server_stats", "sweeps"))
        if sweeps:
            print(f"\nfloor: {sweeps} sweeps over the sockets, one send(2) each, "
                  f"{fmt(_dig(fl, ('server_stats', 'sweep_ms_mean')))} ms mean, "
                  f"{fmt(_dig(fl, ('server_stats', 'sweep_ms_max')))} ms max")
        if "ours" in kinds:
            ours = results[kinds.index("ours")]
            for key in phase_keys:
                a = _dig(ours, ("phases", key, "latency_at_socket_ms", "p99"))
                b = _dig(fl, ("phases", key, "latency_at_socket_ms", "p99"))
                if a and b:
                    print(f"p99 at the socket, {key}: ours {a:.1f} ms, floor {b:.1f} ms ({a / b:.2f}x the floor)")
    for r in results:
        busy = [k for k in phase_keys if (_dig(r, ("phases", k, "client_cpu_pct")) or 0) >= 90]
        if busy:
            print(f"note: wsload was ≥ 90% busy against {names[r['server']]} in {', '.join(busy)}: "
                  "there the client side may have set the pace")


def _dig(d, path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def node_version():
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def ws_version():
    try:
        with open(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


# ---- main ------------------------------------------------------------------------------------

def main():
    args = parse_args()
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if not kinds or any(k not in ("ours", "node", "floor") for k in kinds):
        print("--servers takes ours, node and/or floor", file=sys.stderr)
        return 2
    missing = [p for p in (STREAM_SERVER if "ours" in kinds else None, WSFLOOR if "floor" in kinds else None,
                           WSLOAD) if p and not os.access(p, os.X_OK)]
    if missing:
        print(f"missing {', '.join(os.path.relpath(m, ROOT) for m in missing)}: build them first with\n"
              f"    {BUILD_CMD}", file=sys.stderr)
        return 2
    if shutil.which("taskset") is None:
        print("taskset (util-linux) is needed", file=sys.stderr)
        return 2
    if "node" in kinds:
        if shutil.which("node") is None:
            print("node is needed for the Node.js peer (or pass --servers ours)", file=sys.stderr)
            return 2
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
    raise_nofile(args.connections + 4096)
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
        if hi - lo < args.connections + 1000:
            print(f"warning: only {hi - lo} local ports ({lo}-{hi}) for {args.connections} connections",
                  file=sys.stderr)
    except (OSError, ValueError):
        pass

    # SIGTERM (as from a CI timeout) unwinds through the finally blocks that end the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    with tempfile.TemporaryDirectory(prefix="ws_fanout.") as work:
        for kind in kinds:
            print(f"--- {kind}: {args.connections} connections", file=sys.stderr)
            try:
                results.append(measure(kind, args, work))
            except (RuntimeError, OSError) as e:
                print(f"--- {kind} failed: {e}", file=sys.stderr)
                results.append({"server": kind, "error": str(e)})
            time.sleep(2)  # the closed connections' sockets go away before the next server
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    report(results, args)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
