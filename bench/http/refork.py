#!/usr/bin/env python3
"""bench/http/refork.py: how long a Node cluster is one worker short.

Starts `node bench/http/seed-cluster-refork.js` (seed-cluster.js whose master
forks a replacement on 'exit', and whose workers print `[worker] <pid>
listening` from the listen() callback) with WORKERS=2 on 127.0.0.1:PORT, finds
the workers' pids from their `[worker] <pid> started` lines, then KILLS times
(default 10): SIGKILL one worker from outside and time until the replacement
prints `listening` (the master has then registered its handle and routes
connections to it). Also times kill -> the master's `worker <pid> died` line.
Prints the median (min-max) in ms; the last line is the median alone.

    python3 bench/http/refork.py            # PORT [18450], KILLS [10], WORKERS [2]

stdlib only; bounded (10 s per kill at most); stops the cluster at the end.
"""
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = int(os.environ.get("PORT", "18450"))
KILLS = int(os.environ.get("KILLS", "10"))
WORKERS = int(os.environ.get("WORKERS", "2"))
STARTED = re.compile(r"^\[worker\] (\d+) started")
LISTENING = re.compile(r"^\[worker\] (\d+) listening")
DIED = re.compile(r"^\[master\] worker (\d+) died")


def main():
    env = dict(os.environ, PORT=str(PORT), WORKERS=str(WORKERS))
    proc = subprocess.Popen(["node", os.path.join(HERE, "seed-cluster-refork.js")], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    lines = queue.Queue()

    def reader():
        for line in proc.stdout:
            lines.put((time.monotonic(), line.rstrip("\n")))
        lines.put((time.monotonic(), None))

    threading.Thread(target=reader, daemon=True).start()
    started, listening = [], set()

    def pump(until, deadline):
        """Read lines until until(t, line) is true; return its t."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for the cluster")
            try:
                t, line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"cluster exited with {proc.wait()}")
            if m := STARTED.match(line):
                started.append(int(m.group(1)))
            if m := LISTENING.match(line):
                listening.add(int(m.group(1)))
            if until(t, line):
                return t

    to_listen, to_died = [], []
    try:
        pump(lambda t, l: len(listening) >= WORKERS, time.monotonic() + 15)
        for i in range(KILLS):
            time.sleep(0.3)  # let the previous replacement settle
            alive = [p for p in started if p in listening]
            victim = alive[0]
            seen = set(started)
            t0 = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            deadline = t0 + 10
            died = pump(lambda t, l: (m := DIED.match(l)) and int(m.group(1)) == victim, deadline)
            up = pump(lambda t, l: (m := LISTENING.match(l)) and int(m.group(1)) not in seen, deadline)
            started.remove(victim)
            to_died.append((died - t0) * 1000)
            to_listen.append((up - t0) * 1000)
            print(f"kill {i + 1}: worker {victim}: died after {to_died[-1]:.1f} ms, "
                  f"replacement listening after {to_listen[-1]:.1f} ms", file=sys.stderr)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    med = statistics.median(to_listen)
    print(f"node cluster ({WORKERS} workers), {len(to_listen)} kills: kill -9 -> 'died' "
          f"{statistics.median(to_died):.1f} ms (median); kill -9 -> replacement listening "
          f"{med:.1f} ms median ({min(to_listen):.1f}-{max(to_listen):.1f})")
    print(f"{med:.1f}")


if __name__ == "__main__":
    main()
