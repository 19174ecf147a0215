'use strict';
// Node.js side of the Hive fork/messaging benchmark: the same workloads as
// guests/test-programs/src/bin/bench_parent.rs, on child_process.fork() and
// its IPC channel (default 'json' serialization), with child.js as the child.
//
//   node bench.js <workload> [N] [SIZE]
//
//   fork N              fork(child.js, ['ready']) -> first message, sequential;
//                       one warm-up fork first; each child is disconnected and
//                       its 'exit' awaited before the next fork
//                       -> fork_first_message median_us=.. p99_us=..
//   forkexit N          fork(child.js, ['exit']) -> 'exit' event, sequential;
//                       one warm-up fork first
//                       -> fork_exit median_us=.. p99_us=..
//   rtt N SIZE          one echo child; N timed round trips of one payload
//                       (one untimed round trip first, so the child's boot is
//                       not a sample) -> round_trip_<SIZE>B median_us=.. p99_us=..
//   throughput N SIZE   one sink child; N sends honouring backpressure, then
//                       disconnect; time from the first send (right after
//                       fork, as in bench_parent) to the child's 'exit'
//                       -> one_way_<SIZE>B msgs_per_s=.. MB_per_s=..
//   parallel N          N forks at once -> all N sent 'ready'
//                       -> parallel_forks_<N> total_ms=..
//   idle N              N idle children, all ready -> prints `idle <N> ready`,
//                       holds them until stdin closes (for outside RSS reads)
//
// Plain child processes (spawn/exec, no IPC), as in ../../shared/bench/node
// spawn_latency.js and pipe_bench.js; each latency workload runs N sequential
// calls after one untimed warm-up call:
//
//   spawn N             spawn('/bin/true') (default stdio: pipes) -> 'close'
//                       -> spawn_true median_us=.. p99_us=..
//   exec N              exec('echo hello', cb) -> cb, stdout must be 'hello\n'
//                       -> exec_echo median_us=.. p99_us=..
//   spawnsync N         spawnSync('/bin/true'), timed around the call
//                       -> spawnsync_true median_us=.. p99_us=..
//   pipeline N          `echo hello world | wc -w` from two spawn()s joined by
//                       a.stdout.pipe(b.stdin); first spawn -> wc's 'close',
//                       wc's stdout trimmed must be '2' (echo's 'close' is
//                       awaited, untimed, before the next run)
//                       -> pipeline_echo_wc median_us=.. p99_us=..
//   cat MB              spawn('cat'); write MB MiB (default 1024) to its stdin
//                       in 64 KiB Buffer writes honouring 'drain', then end();
//                       count all of stdout (must be the total); time spawn ->
//                       'close'; no warm-up
//                       -> cat_throughput MB_per_s=.. (10^6 B/s)
//
// Payload of SIZE: a string of SIZE chars if SIZE <= 1024, else a Buffer of
// SIZE bytes of value 7 (JSON-serialized by Node as {type:'Buffer',data:[..]}).
// MB = 10^6 bytes of payload (SIZE), not of the serialized message.
// Percentiles as in bench_parent: sorted[round((len - 1) * q)].
// Exactly one line goes to stdout; errors go to stderr with exit status 1
// (children are then killed by their pid). Forked children get stdin and
// stdout ignored (the sink's stdout is piped back to check its count) and share
// stderr. Spawned children get Node's default pipes for all three (as a plain
// spawn() call would), except cat, whose stderr is inherited. Every spawned or
// exec'ed child must exit with status 0.

const { fork, spawn, exec, spawnSync } = require('node:child_process');
const path = require('node:path');

const CHILD = path.join(__dirname, 'child.js');
const STRING_MAX = 1024;

const now = () => process.hrtime.bigint();
const us = (t0, t1) => Number(t1 - t0) / 1e3;

// --- children -------------------------------------------------------------

const live = new Set();

function fail(msg) {
  process.stderr.write(`bench.js: ${msg instanceof Error ? msg.stack : msg}\n`);
  for (const c of live) c.kill('SIGKILL');
  process.exit(1);
}

// Forks child.js with `role`. The child must only exit after we disconnected
// it (c.expectExit = true) or, for role 'exit', by itself; and with status 0.
// c.exited resolves with the hrtime of the 'exit' event.
// BENCH_SERIALIZATION=advanced: the channel in Node's 'advanced' mode.
const SERIALIZATION = process.env.BENCH_SERIALIZATION || 'json';
function spawnChild(role, stdout = 'ignore') {
  const c = fork(CHILD, [role], { stdio: ['ignore', stdout, 'inherit', 'ipc'], serialization: SERIALIZATION });
  c.expectExit = role === 'exit';
  live.add(c);
  c.on('error', (e) => fail(`child ${role} (pid ${c.pid}): ${e.message}`));
  c.exited = new Promise((resolve) => {
    c.once('exit', (code, signal) => {
      const t = now();
      live.delete(c);
      if (!c.expectExit) fail(`child ${role} (pid ${c.pid}) exited early: code ${code} signal ${signal}`);
      if (code !== 0) fail(`child ${role} (pid ${c.pid}) exited with code ${code} signal ${signal}`);
      resolve(t);
    });
  });
  return c;
}

function disconnect(c) {
  c.expectExit = true;
  c.disconnect();
  return c.exited;
}

// Resolves with the hrtime at which the child's first message arrived.
function firstMessage(c, expected) {
  return new Promise((resolve) => {
    c.once('message', (m) => {
      const t = now();
      if (m !== expected) fail(`child pid ${c.pid}: first message ${JSON.stringify(m)}, wanted ${JSON.stringify(expected)}`);
      resolve(t);
    });
  });
}

function makePayload(size) {
  return size <= STRING_MAX ? 'x'.repeat(size) : Buffer.alloc(size, 7);
}

// The echoed payload as Node hands it back: the same string, or the plain
// object Buffer#toJSON gave ({type:'Buffer', data:[...]}).
function isEcho(m, size) {
  if (size <= STRING_MAX) return typeof m === 'string' && m.length === size;
  // 'advanced' keeps a Buffer a Buffer (a Uint8Array); 'json' makes it
  // {"type":"Buffer","data":[...]}.
  if (m instanceof Uint8Array) return m.length === size;
  return m !== null && typeof m === 'object' && m.type === 'Buffer' &&
    Array.isArray(m.data) && m.data.length === size;
}

function percentiles(samples) {
  const s = Float64Array.from(samples).sort();
  const at = (q) => s[Math.round((s.length - 1) * q)];
  return [at(0.5), at(0.99)];
}

// --- workloads --------------------------------------------------------------

async function forkReadyOnce() {
  const t0 = now();
  const c = spawnChild('ready');
  const t1 = await firstMessage(c, 'ready');
  await disconnect(c);
  return us(t0, t1);
}

async function benchFork(n) {
  await forkReadyOnce(); // warm-up: page cache, compile cache
  const samples = [];
  for (let i = 0; i < n; i++) samples.push(await forkReadyOnce());
  const [median, p99] = percentiles(samples);
  return `fork_first_message median_us=${median.toFixed(1)} p99_us=${p99.toFixed(1)}`;
}

async function forkExitOnce() {
  const t0 = now();
  const c = spawnChild('exit');
  let ready = false;
  c.once('message', (m) => { ready = m === 'ready'; });
  const t1 = await c.exited;
  if (!ready) fail(`exit child pid ${c.pid} exited without sending 'ready'`);
  return us(t0, t1);
}

async function benchForkExit(n) {
  await forkExitOnce(); // warm-up
  const samples = [];
  for (let i = 0; i < n; i++) samples.push(await forkExitOnce());
  const [median, p99] = percentiles(samples);
  return `fork_exit median_us=${median.toFixed(1)} p99_us=${p99.toFixed(1)}`;
}

async function benchRtt(n, size) {
  const c = spawnChild('echo');
  const payload = makePayload(size);
  const samples = new Float64Array(n);
  await new Promise((resolve) => {
    let i = -1; // -1: the untimed first round trip, which waits for the boot
    let t0;
    c.on('message', (m) => {
      const t1 = now();
      if (i >= 0) samples[i] = us(t0, t1);
      if (!isEcho(m, size)) fail(`echo child returned something else than the ${size} B payload`);
      if (++i === n) { resolve(); return; }
      t0 = now();
      c.send(payload);
    });
    t0 = now();
    c.send(payload);
  });
  await disconnect(c);
  const [median, p99] = percentiles(samples);
  return `round_trip_${size}B median_us=${median.toFixed(2)} p99_us=${p99.toFixed(2)}`;
}

// Round trips while `spinners` CPU-bound children run (the kernel's
// preemption is Node's answer; Hive's is in host/src/preempt.rs).
async function benchRttSpin(n, size, spinners) {
  const spinning = Array.from({ length: spinners }, () => spawnChild('spin'));
  const c = spawnChild('echo');
  const payload = makePayload(size);
  let t0;
  await new Promise((resolve) => {
    let i = -1;
    c.on('message', () => {
      if (i === -1) t0 = now();
      if (++i === n) { resolve(); return; }
      c.send(payload);
    });
    c.send(payload);
  });
  const secs = Number(now() - t0) / 1e9;
  for (const s of spinning) { live.delete(s); s.removeAllListeners('exit'); s.kill('SIGKILL'); }
  await disconnect(c);
  return `round_trips_${spinners}_spinners rtt_per_s=${(n / secs).toFixed(0)}`;
}

async function benchThroughput(n, size) {
  const c = spawnChild('sink', 'pipe');
  let out = '';
  c.stdout.setEncoding('utf8');
  c.stdout.on('data', (d) => { out += d; });
  const stdoutDone = new Promise((resolve) => c.stdout.once('end', resolve));
  const payload = makePayload(size);

  // Backpressure: when send() returns false, wait for that message's send
  // callback (callbacks complete in order) before sending the next one.
  let completed = 0, waitFor = 0, resume = null;
  const onSent = (err) => {
    if (err) fail(`send to sink: ${err.message}`);
    completed++;
    if (resume !== null && completed >= waitFor) { const r = resume; resume = null; r(); }
  };
  const until = (k) => (completed >= k ? null : new Promise((r) => { waitFor = k; resume = r; }));

  const t0 = now();
  for (let i = 0; i < n; i++) {
    if (!c.send(payload, onSent)) {
      const w = until(i + 1);
      if (w) await w;
    }
  }
  // disconnect() closes the channel at once and drops writes still queued in
  // the parent, so wait for every send callback first.
  const w = until(n);
  if (w) await w;
  const t1 = await disconnect(c);
  await stdoutDone;

  const got = parseInt(out, 10);
  if (got !== n) fail(`sink counted ${JSON.stringify(out.trim())} messages, sent ${n}`);
  const secs = Number(t1 - t0) / 1e9;
  return `one_way_${size}B msgs_per_s=${(n / secs).toFixed(0)} MB_per_s=${(n * size / secs / 1e6).toFixed(1)}`;
}

async function forkReadyAll(n, role) {
  const children = [];
  const readies = [];
  for (let i = 0; i < n; i++) {
    const c = spawnChild(role);
    children.push(c);
    readies.push(firstMessage(c, 'ready'));
  }
  const times = await Promise.all(readies);
  return { children, last: times.reduce((a, b) => (b > a ? b : a)) };
}

async function benchParallel(n) {
  const t0 = now();
  const { children, last } = await forkReadyAll(n, 'ready');
  const line = `parallel_forks_${n} total_ms=${(us(t0, last) / 1e3).toFixed(1)}`;
  await Promise.all(children.map(disconnect));
  return line;
}

async function benchIdle(n) {
  const { children } = await forkReadyAll(n, 'idle');
  process.stdout.write(`idle ${n} ready\n`);
  await new Promise((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
    process.stdin.once('error', resolve);
    process.stdin.resume(); // discard whatever arrives; wait for EOF
  });
  process.stdin.destroy();
  await Promise.all(children.map(disconnect));
  return null; // the line is already printed
}

// --- spawned children (no IPC) ---------------------------------------------

const CAT_CHUNK = 64 * 1024;

// Registers a spawned child like spawnChild does (killed by fail(), 'error'
// is fatal). c.closed resolves with the hrtime of its 'close' event (exited and
// all its stdio streams closed); any exit status but 0 is fatal.
function track(c, what) {
  live.add(c);
  c.once('exit', () => live.delete(c));
  c.on('error', (e) => fail(`${what} (pid ${c.pid}): ${e.message}`));
  c.closed = new Promise((resolve) => {
    c.once('close', (code, signal) => {
      const t = now();
      if (code !== 0) fail(`${what} (pid ${c.pid}) exited with code ${code} signal ${signal}`);
      resolve(t);
    });
  });
  return c;
}

// One untimed warm-up call, then n timed sequential calls of `once` (which
// returns, or resolves with, its own sample in µs).
async function latencySeries(name, n, once) {
  await once();
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) samples[i] = await once();
  const [median, p99] = percentiles(samples);
  return `${name} median_us=${median.toFixed(1)} p99_us=${p99.toFixed(1)}`;
}

async function spawnTrueOnce() {
  const t0 = now();
  const c = track(spawn('/bin/true'), 'spawn /bin/true');
  return us(t0, await c.closed);
}

function execEchoOnce() {
  return new Promise((resolve) => {
    const t0 = now();
    const c = exec('echo hello', (err, stdout) => {
      const t1 = now();
      live.delete(c);
      if (err) fail(`exec('echo hello'): ${err.message}`);
      if (stdout !== 'hello\n') fail(`exec('echo hello') printed ${JSON.stringify(stdout)}`);
      resolve(us(t0, t1));
    });
    live.add(c);
  });
}

function spawnSyncTrueOnce() {
  const t0 = now();
  const r = spawnSync('/bin/true');
  const t1 = now();
  if (r.error) fail(`spawnSync('/bin/true'): ${r.error.message}`);
  if (r.status !== 0) fail(`spawnSync('/bin/true') exited with status ${r.status} signal ${r.signal}`);
  return us(t0, t1);
}

// echo hello world | wc -w; timed to wc's 'close'. echo's own 'close' (which
// comes at about the same time: wc only sees EOF once echo's stdout ended) is
// awaited untimed, so no process outlives its run.
async function pipelineOnce() {
  const t0 = now();
  const a = track(spawn('echo', ['hello', 'world']), 'echo');
  const b = track(spawn('wc', ['-w']), 'wc -w');
  b.stdin.on('error', (e) => fail(`wc -w stdin: ${e.message}`));
  a.stdout.pipe(b.stdin);
  let out = '';
  b.stdout.setEncoding('utf8');
  b.stdout.on('data', (d) => { out += d; });
  const t1 = await b.closed;
  await a.closed;
  if (out.trim() !== '2') fail(`echo hello world | wc -w printed ${JSON.stringify(out)}`);
  return us(t0, t1);
}

async function benchCat(mib) {
  const total = mib * 1024 * 1024; // a multiple of CAT_CHUNK
  const chunk = Buffer.alloc(CAT_CHUNK, 0x61);
  const t0 = now();
  const c = track(spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] }), 'cat');
  c.stdin.on('error', (e) => fail(`cat stdin: ${e.message}`));
  let got = 0;
  c.stdout.on('data', (d) => { got += d.length; });
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      sent += CAT_CHUNK;
      if (!c.stdin.write(chunk)) { c.stdin.once('drain', pump); return; }
    }
    c.stdin.end();
  };
  pump();
  const t1 = await c.closed;
  if (got !== total) fail(`cat gave back ${got} bytes, sent ${total}`);
  const secs = Number(t1 - t0) / 1e9;
  return `cat_throughput MB_per_s=${(total / 1e6 / secs).toFixed(1)}`;
}

// --- main ---------------------------------------------------------------------

const USAGE = 'usage: node bench.js <fork|forkexit|rtt|throughput|parallel|idle|spawn|exec|spawnsync|pipeline> [N] [SIZE]\n' +
  '       node bench.js cat [MB]';

function intArg(s, name, dflt, min) {
  if (s === undefined) return dflt;
  if (!/^\d+$/.test(s) || Number(s) < min) {
    process.stderr.write(`bench.js: ${name} must be an integer >= ${min}, got ${JSON.stringify(s)}\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(s);
}

async function main() {
  const [what, nArg, sizeArg] = process.argv.slice(2);
  // Defaults as in bench_parent (N 1000, SIZE 16), except for the workloads
  // that keep N Node processes alive at once, and cat, whose N is MiB.
  const many = what === 'parallel' || what === 'idle';
  const n = what === 'cat' ? intArg(nArg, 'MB', 1024, 1) : intArg(nArg, 'N', many ? 20 : 1000, 1);
  const size = intArg(sizeArg, 'SIZE', 16, 0);
  let line;
  switch (what) {
    case 'fork': line = await benchFork(n); break;
    case 'forkexit': line = await benchForkExit(n); break;
    case 'rtt': line = await benchRtt(n, size); break;
    case 'rtt-spin': line = await benchRttSpin(n, size, Number(process.argv[5] || 2)); break;
    case 'throughput': line = await benchThroughput(n, size); break;
    case 'parallel': line = await benchParallel(n); break;
    case 'idle': line = await benchIdle(n); break;
    case 'spawn': line = await latencySeries('spawn_true', n, spawnTrueOnce); break;
    case 'exec': line = await latencySeries('exec_echo', n, execEchoOnce); break;
    case 'spawnsync': line = await latencySeries('spawnsync_true', n, spawnSyncTrueOnce); break;
    case 'pipeline': line = await latencySeries('pipeline_echo_wc', n, pipelineOnce); break;
    case 'cat': line = await benchCat(n); break;
    default:
      process.stderr.write(`bench.js: unknown workload ${JSON.stringify(what)}\n${USAGE}\n`);
      process.exit(2);
  }
  if (line !== null) process.stdout.write(line + '\n');
}

main().catch(fail);
