#!/usr/bin/env python3
"""The population sweep (the 100,000-processes issue): N idle children of
bench_child.wasm live in one host (N = 1,000, 10,000, 100,000), then fork ->
first message timed beside them; memory per idle guest (RSS, USS, PSS: the
host's growth over a host with one guest, / N); the time the host takes to
exit with all N live (the root returns; the host ends them); and ten cycles
of N forks and exits, the host's RSS after each.

Hive runs on demand past the pool (`--max-procs 100010`) with
`--max-total-memory 128G`: every guest of this module declares 1.06 MiB (Rust's
1 MiB shadow stack), so 100,000 declare 106 GiB, more than the default budget
(three quarters of RAM) allows. 100,000 guests need about 700,000 memory
mappings: past the kernel's vm.max_map_count, this script raises it for the
run when it may (root) and puts it back after; otherwise the 100,000 row says
what to run. Node's idle child is measured at 20 children (mean per child);
Node stops near 2,500 here (~42 MiB RSS each), so it has no 10k or 100k row.

Env: POP_SIZES (default "1000,10000,100000"), POP_REPEATS (3), POP_SAMPLES
(fork samples per run, 500), CYCLE_N (children per cycle, 100000; 0 skips the
cycles), CYCLES (10).
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
NODE = os.path.join(ROOT, "bench/node/bench.js")
ENV = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"))
ENV.pop("HOST_MAX_PROCS", None)
FLAGS = ["--max-procs", "100010", "--max-total-memory", "128G"]
SIZES = [int(n) for n in os.environ.get("POP_SIZES", "1000,10000,100000").split(",")]
REPEATS = int(os.environ.get("POP_REPEATS", "3"))
SAMPLES = int(os.environ.get("POP_SAMPLES", "500"))
CYCLE_N = int(os.environ.get("CYCLE_N", "100000"))
CYCLES = int(os.environ.get("CYCLES", "10"))
MAPS_PER_GUEST = 8  # host/src/runtime/capacity.rs
SYSCTL = "/proc/sys/vm/max_map_count"


def memory_kib(pid):
    """(RSS, USS, PSS) of `pid`, KiB."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", f.read(), re.M))
    uss = int(fields["Private_Clean"]) + int(fields["Private_Dirty"])
    return int(fields["Rss"]), uss, int(fields["Pss"])


def population(n, flags=FLAGS):
    """One run: the guest's figures, the host's memory, its exit time."""
    proc = subprocess.Popen([HOST, "run", *flags, PARENT, "population", str(n), str(SAMPLES)],
                            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "ready" in line, f"population {n}: {line!r}"
    time.sleep(0.5)
    mem = memory_kib(proc.pid)
    start = time.perf_counter()
    proc.stdin.close()
    proc.wait()
    teardown = time.perf_counter() - start
    assert proc.returncode == 0, f"population {n}: exit {proc.returncode}"
    figures = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
    return figures, mem, teardown


def cycles(n):
    """The host's RSS (MiB) after each of CYCLES cycles of n forks and exits."""
    proc = subprocess.Popen([HOST, "run", *FLAGS, PARENT, "cycles", str(n), str(CYCLES)],
                            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rss = []
    for _ in range(CYCLES):
        assert "done" in proc.stdout.readline()
        rss.append(memory_kib(proc.pid)[0] / 1024)
        proc.stdin.write("\n")
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait()
    return rss


def node_idle():
    """Node's idle child: mean (RSS, USS, PSS) KiB over 20 children."""
    proc = subprocess.Popen(["node", NODE, "idle", "20"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert "ready" in proc.stdout.readline()
    time.sleep(0.3)
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
        kids = [memory_kib(int(p)) for p in f.read().split()]
    proc.stdin.close()
    proc.wait()
    return tuple(statistics.mean(k[i] for k in kids) for i in range(3))


def node_fork():
    out = subprocess.run(["node", NODE, "fork", "50"], check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out)}


def med(values):
    return statistics.median(values)


def fmt(values, digits=1):
    return f"{med(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


class MapCount:
    """Raises vm.max_map_count for the run when it must and may."""

    def __init__(self, needed):
        self.before = int(open(SYSCTL).read())
        self.raised = False
        if self.before < needed and os.geteuid() == 0:
            with open(SYSCTL, "w") as f:
                f.write(str(1 << 20))
            self.raised = True

    def enough(self, needed):
        return int(open(SYSCTL).read()) >= needed

    def restore(self):
        if self.raised:
            with open(SYSCTL, "w") as f:
                f.write(str(self.before))


def section():
    needed = max(SIZES + [CYCLE_N]) * MAPS_PER_GUEST + 8192
    maps = MapCount(needed)
    try:
        return rows(maps)
    finally:
        maps.restore()


def rows(maps):
    lines = [
        f"## Population: N idle guests in one host, median of {REPEATS} runs (min–max)",
        "",
        f"`host run {' '.join(FLAGS)} bench_parent.wasm population N {SAMPLES}`: fork → first "
        "message beside N live idle children; memory per idle guest is the host's growth over "
        "a host with one, / N; exit is the host's time to end all N after the root returns. "
        "Node: mean of 20 idle children; a Node host stops near 2,500 children here.",
        "",
        "| live guests | fork median (µs) | fork p99 (µs) | RSS/guest (KiB) | USS/guest (KiB) | PSS/guest (KiB) | host exit (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    base = [population(1) for _ in range(REPEATS)]
    base_mem = [med(b[1][i] for b in base) for i in range(3)]
    runs = {}
    # Interleaved: every size once per round.
    for _ in range(REPEATS):
        for n in SIZES:
            if n * MAPS_PER_GUEST + 8192 > 65530 and not maps.enough(n * MAPS_PER_GUEST + 8192):
                continue
            runs.setdefault(n, []).append(population(n))
    for n in SIZES:
        if n not in runs:
            lines.append(f"| {n:,} | vm.max_map_count too low: `sudo sysctl -w vm.max_map_count={1 << 20}` | | | | | |")
            continue
        r = runs[n]
        per = [[(x[1][i] - base_mem[i]) / (n - 1) for x in r] for i in range(3)]
        lines.append(
            f"| {n:,} | {fmt([x[0]['median_us'] for x in r])} | {fmt([x[0]['p99_us'] for x in r])} | "
            f"{fmt(per[0])} | {fmt(per[1])} | {fmt(per[2])} | {fmt([x[2] for x in r], 2)} |")
    nf = [node_fork() for _ in range(REPEATS)]
    ni = [node_idle() for _ in range(REPEATS)]
    lines.append(
        f"| Node, 20 live | {fmt([x['median_us'] for x in nf])} | {fmt([x['p99_us'] for x in nf])} | "
        f"{fmt([x[0] for x in ni])} | {fmt([x[1] for x in ni])} | {fmt([x[2] for x in ni])} | - |")
    if SIZES[0] in runs and SIZES[-1] in runs:
        lo = med([x[0]["median_us"] for x in runs[SIZES[0]]])
        hi = med([x[0]["median_us"] for x in runs[SIZES[-1]]])
        lines += ["", f"Fork median at {SIZES[-1]:,} live / at {SIZES[0]:,}: {hi / lo:.2f}× (target ≤ 1.5×)."]
    if CYCLE_N:
        if maps.enough(CYCLE_N * MAPS_PER_GUEST + 8192) or CYCLE_N * MAPS_PER_GUEST + 8192 <= 65530:
            rss = cycles(CYCLE_N)
            lines += ["", f"{CYCLES} cycles of {CYCLE_N:,} forks and exits (`population`'s flags, "
                      f"`bench_parent.wasm cycles {CYCLE_N} {CYCLES}`), host RSS after each (MiB): "
                      + ", ".join(f"{x:.0f}" for x in rss)
                      + f"; last − first: {rss[-1] - rss[0]:+.0f} MiB."]
    if maps.raised:
        lines += ["", f"(vm.max_map_count was raised to {1 << 20:,} for the run, then put back to {maps.before:,}.)"]
    return lines


def main():
    start = time.time()
    text = "\n".join(section() + ["", f"(took {time.time() - start:.0f} s)"]) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench/latest-population.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
