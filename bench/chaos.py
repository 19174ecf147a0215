#!/usr/bin/env python3
"""Cluster chaos (`just chaos`): workers killed at random every EVERY_MS
while wrk runs against a 2-worker Hive cluster for DURATION_S, under the
restart policy that re-forks a crashed worker at once.

Once for wasm workers and once for Node workers (the seed's own
`guests/examples/seed-cluster/node/cluster.js`) under the Hive primary
(`target/guests/bench_chaos.wasm`). Reports per kind: requests, failed
requests (wrk's socket errors and non-2xx) against the number of kills,
kill -> replacement listening (median, p99), and the leak check: the
host's open descriptors and its OS child processes once the last
replacement settled, against the same counts before the chaos began.

    python3 bench/chaos.py [--duration 30] [--every-ms 200] [--kinds wasm,node]
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target/release/host")
GUEST = os.path.join(ROOT, "target/guests/bench_chaos.wasm")
NODE_WORKER = os.path.join(ROOT, "guests/examples/seed-cluster/node/cluster.js")


def ensure_wrk():
    """wrk, installed as bench/http/run.py installs it (apt) if missing."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("http_bench", os.path.join(ROOT, "bench/http/run.py"))
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    return harness.ensure_wrk()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def os_children(pid):
    """Live OS processes whose parent is `pid` (Node workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
        except OSError:
            pass
    return out


def expect(proc, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"host ended before {want!r}")
        line = line.strip()
        if want(line):
            return line
    raise RuntimeError(f"timed out waiting for {want!r}")


def run(kind, duration, every_ms, wrk_bin):
    port = free_port()
    cmd = [HOST, "run", "--allow-net", "--env", f"PORT={port}"]
    if kind == "node":
        cmd.append("--allow-spawn")
    cmd += [GUEST, str(duration * 1000), str(every_ms)]
    if kind == "node":
        cmd.append(NODE_WORKER)
    env = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"))
    host = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        expect(host, lambda l: l == "ready", 30)
        before = (fds(host.pid), len(os_children(host.pid)))
        wrk = subprocess.run(
            [wrk_bin, "-t1", "-c32", f"-d{max(1, duration - 1)}s", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, timeout=duration + 30)
        report = json.loads(expect(host, lambda l: l.startswith("{"), duration + 30))
        expect(host, lambda l: l == "settled", 10)
        after = (fds(host.pid), len(os_children(host.pid)))
    finally:
        host.terminate()
        host.wait(timeout=30)
    out = wrk.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    failed = errors + non2xx
    kills = report["kills"]
    return {
        "kind": kind, "requests": requests, "failed": failed, "kills": kills,
        "failed_per_kill": round(failed / kills, 2) if kills else 0,
        "replacement_median_us": report["replacement_median_us"],
        "replacement_p99_us": report["replacement_p99_us"],
        "fds": before[0], "fds_after": after[0],
        "os_children": before[1], "os_children_after": after[1],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=30, help="seconds of load and kills [30]")
    ap.add_argument("--every-ms", type=int, default=200, help="a kill every this many ms [200]")
    ap.add_argument("--kinds", default="wasm,node", help="worker kinds [wasm,node]")
    args = ap.parse_args()
    wrk_bin = ensure_wrk()
    rows = [run(kind, args.duration, args.every_ms, wrk_bin) for kind in args.kinds.split(",")]
    print(f"## Cluster chaos: a random worker SIGKILLed every {args.every_ms} ms for "
          f"{args.duration} s under wrk -t1 -c32 (2 workers, restart at once)\n")
    print("| workers | requests | failed | kills | failed / kill | kill → listening (median, p99) "
          "| host fds before → after | OS children before → after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    leaked = False
    for r in rows:
        print(f"| {r['kind']} | {r['requests']} | {r['failed']} | {r['kills']} | {r['failed_per_kill']} "
              f"| {r['replacement_median_us']:.0f} µs, {r['replacement_p99_us']:.0f} µs "
              f"| {r['fds']} → {r['fds_after']} | {r['os_children']} → {r['os_children_after']} |")
        leaked |= r["fds_after"] > r["fds"] or r["os_children_after"] > r["os_children"]
    # At most one failed request per connection a killed worker had open.
    if leaked:
        print("\nLEAK: descriptors or processes grew (see the table)")
        sys.exit(1)


if __name__ == "__main__":
    main()
