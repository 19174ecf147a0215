#!/usr/bin/env python3
"""The soak (`just soak`): MESSAGES numbered messages down a chain of DEPTH
guests and back (`target/guests/fault_soak.wasm`), under backpressure, the
middle of the chain killed at random every ~KILL_MS and restarted by its
supervisor. Checks what the root checks — every message back in order, and
sent = returned + lost in killed subtrees — and reports the time, the host's
peak RSS, and its open descriptors and OS children before and after.

    python3 bench/soak.py [--messages 1000000] [--depth 10] [--kill-ms 200]
"""
import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import HOST, ROOT, expect, fds, os_children  # noqa: E402

GUEST = os.path.join(ROOT, "target/guests/fault_soak.wasm")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--kill-ms", type=int, default=200)
    args = ap.parse_args()
    env = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"))
    cmd = [HOST, "run", GUEST, str(args.messages), str(args.depth), str(args.kill_ms)]
    host = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    expect(host, lambda l: l == "ready", 60)
    before = (fds(host.pid), len(os_children(host.pid)))
    report = json.loads(expect(host, lambda l: l.startswith("{"), 3600))
    expect(host, lambda l: l == "settled", 30)
    after = (fds(host.pid), len(os_children(host.pid)))
    host.terminate()
    _, _, usage = os.wait4(host.pid, 0)
    peak_mib = usage.ru_maxrss / 1024
    print(f"## Soak: {report['messages']:,} messages down a chain of {report['depth']} guests and back, "
          f"the middle killed every ~{args.kill_ms} ms and restarted by its supervisor\n")
    print("| returned | lost in killed subtrees | kills | in order | accounted | seconds | hops/s "
          "| peak RSS | host fds before → after | OS children before → after |")
    print("|---:|---:|---:|---|---|---:|---:|---:|---:|---:|")
    print(f"| {report['returned']:,} | {report['lost']:,} | {report['kills']} | {report['in_order']} "
          f"| {report['accounted']} | {report['seconds']} | {report['hops_per_s']:,.0f} | {peak_mib:.0f} MiB "
          f"| {before[0]} → {after[0]} | {before[1]} → {after[1]} |")
    ok = report["in_order"] and report["accounted"] and after[0] <= before[0] and after[1] <= before[1]
    if not ok:
        print("\nFAILED: a message was lost unaccounted or reordered, or something leaked")
        sys.exit(1)


if __name__ == "__main__":
    main()
