#!/usr/bin/env python3
"""How deep each idle guest's fiber stack has ever been, in bytes, and the
return addresses on the deepest one (root needed: it reads /proc/PID/mem).

An on-demand guest's stack is a fresh zero-filled mapping, so the lowest
non-zero byte below its top is the deepest it went; each 4 KiB page it
crossed stays resident for as long as the guest lives (the population
issue's USS per idle guest). `python3 bench/stack_depth.py [N]` runs N idle
children of bench_child.wasm (default 20) on demand and prints the depths,
then the host functions whose return addresses lie on the deepest stack,
from its top down.
"""
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.realpath(os.path.join(ROOT, "target/release/host"))
PARENT = os.path.join(ROOT, "target/guests/bench_parent.wasm")
STACK = 2 << 20  # wasmtime's async_stack_size
SCAN = 16384


def main():
    n = sys.argv[1] if len(sys.argv) > 1 else "20"
    env = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"))
    proc = subprocess.Popen([HOST, "run", "--max-procs", "5000", PARENT, "population", n, "1"],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    time.sleep(0.3)
    maps = [line.split() for line in open(f"/proc/{proc.pid}/maps")]
    mine = [m for m in maps if len(m) > 5 and os.path.realpath(m[5]) == HOST]
    base = min(int(m[0].split("-")[0], 16) for m in mine)
    text = [tuple(int(x, 16) for x in m[0].split("-")) for m in mine if "x" in m[1]]
    stacks = []
    with open(f"/proc/{proc.pid}/mem", "rb") as mem:
        for m in maps:
            lo, hi = (int(x, 16) for x in m[0].split("-"))
            if hi - lo == STACK and m[1] == "rw-p" and len(m) == 5:
                mem.seek(hi - SCAN)
                data = mem.read(SCAN)
                first = next((i for i, b in enumerate(data) if b), SCAN)
                stacks.append((SCAN - first, data))
    proc.stdin.close()
    proc.wait()
    depths = sorted(d for d, _ in stacks)
    print("deepest byte of each fiber stack (bytes below its top):", depths)
    # The guests' stacks are the shallow ones (the root's and the
    # runtime's own are deeper); the most common depth is an idle guest's.
    idle = max(set(depths), key=depths.count)
    data = next(d for depth, d in stacks if depth == idle)
    words = [(SCAN - off, w) for off in range(0, SCAN, 8)
             for (w,) in [struct.unpack("<Q", data[off:off + 8])]
             if any(lo <= w < hi for lo, hi in text)]
    names = subprocess.run(["addr2line", "-f", "-C", "-e", HOST] + [hex(w - base) for _, w in words],
                           capture_output=True, text=True).stdout.split("\n")[0::2]
    print(f"return addresses on an idle guest's stack ({idle} bytes deep; stale ones included):")
    for (depth, _), name in sorted(zip(words, names)):
        print(f"{depth:6}  {name[:120]}")


if __name__ == "__main__":
    sys.exit(main())
