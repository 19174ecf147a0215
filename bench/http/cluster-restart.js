// Node's twin of guests/test-programs/src/bin/bench_cluster_restart.rs:
// worker replacement time measured in the primary. The primary forks 2
// workers serving HTTP on PORT; once both listen it KILLS times (argv[2],
// default 50) SIGKILLs the oldest worker, forks a replacement from the
// cluster's 'exit' event and waits for its 'listening', then SETTLE_MS
// (argv[3], default 20). KILL=worker (default) kills with
// worker.kill('SIGKILL'), which in Node first disconnects the worker and
// sends the signal on 'disconnect'; KILL=process with
// worker.process.kill('SIGKILL'), at once (what Hive's Worker::kill does).
// Prints one JSON line, as the Hive guest.
const cluster = require('cluster');
const http = require('http');
const PORT = Number(process.env.PORT || 8000);
const WORKERS = 2;

if (!cluster.isPrimary) {
  http.createServer((req, res) => { res.writeHead(200); res.end(`[worker:${process.pid}] hello world\n`); })
    .listen(PORT, '127.0.0.1');
} else {
  let killsLeft = Number(process.argv[2] || 50);
  const settleMs = Number(process.argv[3] || 20);
  const mode = process.env.KILL || 'worker';
  const live = [];
  let listening = 0, victim = null, replacement = null, killedAt = null, exitedAt = null;
  const exitToListening = [], killToListening = [], killToExit = [];
  const now = () => process.hrtime.bigint();
  const us = (a, b) => Number(b - a) / 1000;
  const pct = (xs) => { const s = [...xs].sort((a, b) => a - b); const at = (q) => s[Math.round((s.length - 1) * q)]; return [at(0.5), at(0.99)]; };

  function killNext() {
    if (killsLeft === 0) {
      const [el50, el99] = pct(exitToListening), [kl50, kl99] = pct(killToListening), [ke50, ke99] = pct(killToExit);
      console.log(JSON.stringify({
        bench: 'cluster_restart', side: 'node', kill: mode, workers: WORKERS, kills: exitToListening.length,
        exit_to_listening_median_us: Math.round(el50), exit_to_listening_p99_us: Math.round(el99),
        kill_to_listening_median_us: Math.round(kl50), kill_to_listening_p99_us: Math.round(kl99),
        kill_to_exit_median_us: Math.round(ke50), kill_to_exit_p99_us: Math.round(ke99),
      }));
      for (const w of live) w.process.kill('SIGKILL');
      process.exit(0);
    }
    killsLeft--;
    const w = live.shift();
    victim = w.id; replacement = null; exitedAt = null;
    killedAt = now();
    if (mode === 'process') w.process.kill('SIGKILL'); else w.kill('SIGKILL');
  }

  cluster.on('exit', (worker) => {
    if (worker.id !== victim || replacement !== null) return;
    exitedAt = now();
    const r = cluster.fork();
    replacement = r.id;
    live.push(r);
  });
  cluster.on('listening', (worker) => {
    const t = now();
    if (worker.id === replacement) {
      exitToListening.push(us(exitedAt, t));
      killToListening.push(us(killedAt, t));
      killToExit.push(us(killedAt, exitedAt));
      replacement = null; victim = null;
      setTimeout(killNext, settleMs);
    } else if (victim === null && killedAt === null && ++listening === WORKERS) {
      setTimeout(killNext, settleMs);
    }
  });
  for (let i = 0; i < WORKERS; i++) live.push(cluster.fork());
}
