#!/usr/bin/env python3
"""The sibling's rate under each fault (`just bench-faults`, and a section
of `just bench`): the fault suite's scenarios (host/tests/all/faults.rs,
limits.rs) in their bench mode, `FAULT_WINDOW_MS`: a sibling subtree (a
pinger and its echo) does numbered round trips for the window while the
faulty child commits its fault again each time it ends; the row is the
sibling's round trips per second against its rate with no fault at all
(`none`), the rows interleaved, median of ROUNDS. Target: every share at
least 50% (within 2x of unloaded).

    python3 bench/faults.py [--rounds 5] [--window-ms 1000]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target/release/host")
FAULTS = os.path.join(ROOT, "target/guests/fault_cases.wasm")
LIMITS = os.path.join(ROOT, "target/guests/limits_cases.wasm")
NODE_CHILD = os.path.join(ROOT, "guests/test-programs/node/fault_child.js")

# (fault, what it is, host flags, module, arguments)
ROWS = [
    ("none", "no fault (the unloaded rate)", [], FAULTS, ["none"]),
    ("trap", "a child that traps, re-forked as it dies (a crash loop)", [], FAULTS, ["trap"]),
    ("stack", "a child that overflows its stack", [], FAULTS, ["stack"]),
    ("memory", "a child allocating past `max-memory` (4 MiB)", [], LIMITS, ["memory"]),
    ("spin", "an infinite loop, ended by `timeout-ms` (300)", [], FAULTS, ["spin"]),
    ("cpu", "a child over its CPU budget (`max-cpu-ms` 100)", [], LIMITS, ["cpu"]),
    ("resources", "a child leaking handles past `max-resources` (500)", [], LIMITS, ["resources"]),
    ("flood", "a child flooding its parent (20,000 messages a go)", [], FAULTS, ["flood"]),
    ("procs", "a child forking until its `max-procs` (5)", [], FAULTS, ["procs"]),
    ("os-procs", "OS programs started until `max-procs` (5)", ["--allow-spawn=sleep"], FAULTS, ["os-procs"]),
    ("os-bomb", "a shell fork bomb held by its share's pids cgroup", ["--allow-spawn=sh"], FAULTS, ["os-bomb"]),
    ("talker", "a parent SIGKILLed mid-conversation with its child", [], FAULTS, ["talker"]),
    ("blocked", "a child SIGKILLed while blocked in a host call", [], FAULTS, ["blocked"]),
    ("node-bad-json", "invalid JSON sent to a Node child (refused)", ["--allow-spawn=node"], FAULTS,
     ["node-bad-json", NODE_CHILD]),
    ("node-garbage", "a Node child writing garbage on its channel", ["--allow-spawn=node"], FAULTS,
     ["node-garbage", NODE_CHILD]),
]


def run(flags, module, args, window_ms):
    out = subprocess.run(
        [HOST, "run", *flags, "--env", f"FAULT_WINDOW_MS={window_ms}", module, *args],
        capture_output=True, text=True, timeout=60 + window_ms / 1000,
    )
    m = re.search(r"^sibling-rate (\d+) faults (\d+)$", out.stdout, re.M)
    if not m:
        raise SystemExit(f"{module} {args}: no rate (exit {out.returncode})\n{out.stdout}\n{out.stderr[-2000:]}")
    return int(m.group(1)), int(m.group(2))


def section(rounds=5, window_ms=1000):
    """The report's lines (markdown)."""
    samples = {fault: [] for fault, *_ in ROWS}
    committed = {fault: [] for fault, *_ in ROWS}
    for r in range(rounds):
        for fault, _, flags, module, args in ROWS:
            rate, faults = run(flags, module, args, window_ms)
            samples[fault].append(rate)
            committed[fault].append(faults)
        print(f"faults: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    base = statistics.median(samples["none"])
    lines = [
        f"## The sibling's rate under each fault, median of {rounds} interleaved rounds of {window_ms} ms",
        "",
        "A pinger and its echo do numbered round trips beside a child that commits the fault "
        "again each time it ends (`bench/faults.py`). Share = the rate under the fault over "
        "the rate with none; target ≥ 50%.",
        "",
        "| fault | round trips/s | share | faults committed per run |",
        "|---|---|---|---|",
    ]
    for fault, what, *_ in ROWS:
        med = statistics.median(samples[fault])
        lines.append(f"| {fault}: {what} | {med:,.0f} ({min(samples[fault]):,}–{max(samples[fault]):,}) "
                     f"| {med / base * 100:.0f}% | {statistics.median(committed[fault]):.0f} |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window-ms", type=int, default=1000)
    a = parser.parse_args()
    text = "\n".join(section(a.rounds, a.window_ms)) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench/latest-faults.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
