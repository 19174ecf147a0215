// `just bench-threads` (bench/threads.py): worker_threads on Node, the
// twin of guests/test-programs/src/bin/bench_threads.rs. `node threads.js
// MODE N [ARG]` prints `key=value` figures; a worker (this file again)
// plays the other side.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const MIB = 1 << 20;

function report(samples, unit) {
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.floor((samples.length - 1) * q)];
  console.log(`median_${unit}=${at(0.5).toFixed(3)} p99_${unit}=${at(0.99).toFixed(3)}`);
}

const now = () => Number(process.hrtime.bigint()) / 1e3; // µs
const worker = (role, options = {}) => new Worker(__filename, { argv: [role], ...options });

const modes = {
  start(n) {
    const samples = [];
    const next = (left) => {
      if (left === 0) return report(samples, 'us');
      const t0 = now();
      const w = worker('idle');
      w.on('online', () => { samples.push(now() - t0); w.terminate(); });
      w.on('exit', () => next(left - 1));
    };
    next(n);
  },
  rtt(n) {
    const w = worker('echo');
    const samples = [];
    let t0;
    w.on('message', () => {
      samples.push(now() - t0);
      if (samples.length === n) { report(samples, 'us'); w.terminate(); return; }
      t0 = now();
      w.postMessage('0123456789abcd');
    });
    t0 = now();
    w.postMessage('0123456789abcd');
  },
  transfer(n, read) {
    const w = worker(read === '1' ? 'bounce-read' : 'bounce');
    const samples = [];
    let t0;
    w.on('message', (buf) => {
      samples.push(now() - t0);
      if (samples.length === n) { report(samples, 'us'); w.terminate(); return; }
      t0 = now();
      w.postMessage(buf, [buf]);
    });
    const buf = new ArrayBuffer(MIB);
    t0 = now();
    w.postMessage(buf, [buf]);
  },
  atomics(n) {
    const ia = new Int32Array(new SharedArrayBuffer(8));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) Atomics.add(ia, 0, 1);
    const ns = Number(process.hrtime.bigint() - t0) / n;
    if (Atomics.load(ia, 0) !== n) throw new Error('lost adds');
    console.log(`ns_per_op=${ns.toFixed(2)}`);
  },
  pingpong(n) {
    const sab = new SharedArrayBuffer(8);
    const ia = new Int32Array(sab);
    const w = worker('pong', { workerData: { n, sab } });
    w.on('online', () => {
      const t0 = now();
      for (let i = 0; i < n; i++) {
        Atomics.store(ia, 0, 1);
        Atomics.notify(ia, 0);
        while (Atomics.load(ia, 0) === 1) Atomics.wait(ia, 0, 1);
      }
      console.log(`median_us=${((now() - t0) / n).toFixed(3)}`);
      w.terminate();
    });
  },
};

const roles = {
  idle() {},
  echo() { parentPort.on('message', (m) => parentPort.postMessage(m)); },
  bounce() { parentPort.on('message', (b) => parentPort.postMessage(b, [b])); },
  'bounce-read'() {
    parentPort.on('message', (b) => {
      const bytes = new Uint8Array(b);
      let sum = 0;
      for (let i = 0; i < bytes.length; i++) sum += bytes[i];
      if (sum !== 0 || bytes.length !== MIB) throw new Error('bad buffer');
      parentPort.postMessage(b, [b]);
    });
  },
  pong() {
    const ia = new Int32Array(workerData.sab);
    for (let i = 0; i < workerData.n; i++) {
      while (Atomics.load(ia, 0) === 0) Atomics.wait(ia, 0, 0);
      Atomics.store(ia, 0, 0);
      Atomics.notify(ia, 0);
    }
  },
};

if (isMainThread) modes[process.argv[2]](Number(process.argv[3]), process.argv[4]);
else roles[process.argv[2]]();
