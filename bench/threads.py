#!/usr/bin/env python3
"""worker_threads on Hive and Node, interleaved (`just bench-threads`, and a
section of `just bench`): worker start -> `online`, a 16 B round trip over
the parent port, a 1 MiB ArrayBuffer transferred there and back (without,
and with, the receiver reading every byte), one `Atomics.add`, and a
wait/notify ping-pong between two threads.

Hive's side is target/guests/bench_threads.wasm, Node's bench/node/threads.js;
each starts its workers from itself. Every row runs THREADS_REPEATS (5)
times on each side, Hive and Node alternating; the table shows medians of
the runs' medians (min-max) and the ratio, > 1 meaning Hive is better.
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target/release/host")
GUEST = os.path.join(ROOT, "target/guests/bench_threads.wasm")
NODE = os.path.join(ROOT, "bench/node/threads.js")
ENV = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"))
REPEATS = int(os.environ.get("THREADS_REPEATS", "5"))

# (label, key, unit, target, hive args, node args)
ROWS = [
    ("worker start → online", "median_us", "µs", "≤ 100 µs", ("start", 200), ("start", 20)),
    ("port round trip 16 B", "median_us", "µs", "≤ 2 µs", ("rtt", 20000), ("rtt", 5000)),
    ("1 MiB transfer round trip", "median_us", "µs", "≤ 50 µs", ("transfer", 1000, 0), ("transfer", 500, 0)),
    ("1 MiB transfer round trip, receiver reads every byte", "median_us", "µs", "-",
     ("transfer", 300, 1), ("transfer", 100, 1)),
    ("Atomics.add", "ns_per_op", "ns", "≤ 50 ns", ("atomics", 1000000), ("atomics", 1000000)),
    ("wait/notify ping-pong", "median_us", "µs", "≤ 15 µs", ("pingpong", 10000), ("pingpong", 10000)),
]


def parse(out):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out)}


def hive(*args):
    out = subprocess.run([HOST, "run", GUEST, *map(str, args)], env=ENV, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return parse(out)


def node(*args):
    out = subprocess.run(["node", NODE, *map(str, args)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return parse(out)


def fmt(samples):
    med = statistics.median(samples)
    return med, f"{med:,.2f} ({min(samples):,.2f}–{max(samples):,.2f})"


def section():
    """The report's lines (markdown)."""
    results = {row[0]: ([], []) for row in ROWS}
    for r in range(REPEATS):
        for label, key, _, _, hargs, nargs in ROWS:
            results[label][0].append(hive(*hargs)[key])
            results[label][1].append(node(*nargs)[key])
        print(f"threads: round {r + 1}/{REPEATS} done", file=sys.stderr, flush=True)
    lines = [
        f"## worker_threads, median of {REPEATS} interleaved runs (min–max)",
        "",
        "`bench/threads.py`: `bench_threads.wasm` against `bench/node/threads.js`. "
        "Ratio > 1 means Hive is faster.",
        "",
        "| workload | Hive | Node | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for label, _, unit, target, _, _ in ROWS:
        h, htext = fmt(results[label][0])
        n, ntext = fmt(results[label][1])
        lines.append(f"| {label} ({unit}) | {htext} | {ntext} | {n / h:,.1f}× | {target} |")
    return lines


if __name__ == "__main__":
    text = "\n".join(section()) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench/threads.md"), "w") as f:
        f.write(text)
