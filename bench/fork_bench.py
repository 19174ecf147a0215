#!/usr/bin/env python3
"""Fork and messaging benchmarks for Hive (release build).

Runs each micro-benchmark in `bench_parent.wasm` REPEATS times and prints the
median (with min and max) of each figure, plus RSS per idle guest measured
from outside the host. Usage: `just bench-fork` (builds first).
"""
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target/release/host")
PARENT = os.path.join(ROOT, "target/guests/bench_parent.wasm")
REPEATS = int(os.environ.get("REPEATS", "5"))
ENV = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"), HOST_MAX_PROCS="10002")


def run(*args):
    out = subprocess.run([HOST, "run", PARENT, *map(str, args)], env=ENV, check=True,
                         capture_output=True, text=True).stdout
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out)}


def summary(name, key, samples, unit):
    med = statistics.median(samples)
    print(f"| {name} | {med:,.2f} {unit} | {min(samples):,.2f} | {max(samples):,.2f} |")


def idle_rss(n):
    proc = subprocess.Popen([HOST, "run", PARENT, "idle", str(n)], env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "ready" in line, line
    time.sleep(0.2)
    with open(f"/proc/{proc.pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    proc.stdin.close()
    proc.wait()
    return rss


def main():
    print(f"Hive fork/messaging benchmarks, median of {REPEATS} runs (min, max)\n")
    print("| benchmark | median | min | max |")
    print("|---|---|---|---|")
    rows = [
        ("fork → first message (median of 1000)", ("fork", 1000), "median_us", "µs"),
        ("fork → first message (p99 of 1000)", ("fork", 1000), "p99_us", "µs"),
        ("round trip 16 B (median of 20000)", ("rtt", 20000, 16), "median_us", "µs"),
        ("round trip 64 KiB (median of 2000)", ("rtt", 2000, 65536), "median_us", "µs"),
        ("one way 16 B", ("throughput", 1000000, 16), "msgs_per_s", "msg/s"),
        ("one way 64 KiB", ("throughput", 20000, 65536), "msgs_per_s", "msg/s"),
    ]
    cache = {}
    for name, args, key, unit in rows:
        if args not in cache:
            cache[args] = [run(*args) for _ in range(REPEATS)]
        summary(name, key, [r[key] for r in cache[args]], unit)
    base = statistics.median(idle_rss(1) for _ in range(3))
    for n in (1000, 10000):
        per = [(idle_rss(n) - base) / (n - 1) for _ in range(3)]
        summary(f"RSS per idle guest, {n} live (KiB)", "", per, "KiB")


if __name__ == "__main__":
    sys.exit(main())
