#!/usr/bin/env python3
"""Two `host` binaries, alternating on the same machine: fork -> first message,
round trip 16 B and one-way 16 B (bench_parent's workloads), median of ROUNDS
runs each, interleaved (the order flips every round), and new/old ratios.
Absolute figures drift by 20-30% between windows here; only the ratios of
one run mean anything.

    python3 bench/ab.py OLD_HOST NEW_HOST [ROUNDS] [OLD_GUESTS_DIR NEW_GUESTS_DIR]

Each binary runs its own bench_parent.wasm/bench_child.wasm (from the guest
dirs, default target/guests): a guest built against another WIT may not link.
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"), HOST_MAX_PROCS="10002")
WORKLOADS = [
    ("fork", "median_us", ("fork", 1000)),
    ("rtt", "median_us", ("rtt", 20000, 16)),
    ("oneway", "msgs_per_s", ("throughput", 1000000, 16)),
]


def main():
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    default = os.path.join(ROOT, "target/guests")
    guests = {old: sys.argv[4] if len(sys.argv) > 4 else default,
              new: sys.argv[5] if len(sys.argv) > 5 else default}
    results = {(b, w[0]): [] for b in (old, new) for w in WORKLOADS}
    for r in range(rounds):
        for name, key, args in WORKLOADS:
            for b in ((old, new) if r % 2 == 0 else (new, old)):
                out = subprocess.run([b, "run", guests[b] + "/bench_parent.wasm", *map(str, args)],
                                     env=ENV, capture_output=True, text=True, check=True).stdout
                results[(b, name)].append(float(dict(re.findall(r"(\w+)=([\d.]+)", out))[key]))
    for name, _, _ in WORKLOADS:
        o, n = (statistics.median(results[(b, name)]) for b in (old, new))
        print(f"{name:7} old={o:,.2f} new={n:,.2f} new/old={n / o:.3f}")


if __name__ == "__main__":
    main()
