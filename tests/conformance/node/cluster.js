// Conformance cluster program. As the primary it runs the scenario in
// argv[2] (JSON {"primary": [...], "worker": [...]}) and prints one line per
// event; as a worker (cluster.isWorker) it runs the worker steps it finds in
// the env var CONF_WORKER_STEPS and prints nothing. The Node twin of
// guests/test-programs/src/bin/conf_cluster.rs; the contract between the two
// is CLUSTER.md, beside this file: keep all three in step.
'use strict';
const cluster = require('node:cluster');
const net = require('node:net');

const print = (s) => process.stdout.write(`${s}\n`);
// How long a `wait` (or the end of the scenario) waits before giving up.
const PATIENCE = 4000;

// ---------------------------------------------------------------- worker

async function worker() {
  const me = cluster.worker.id;
  const steps = JSON.parse(process.env.CONF_WORKER_STEPS || '[]');
  for (const [op, a] of steps) {
    switch (op) {
      case 'listen': {
        const o = a || {};
        const port = o.port === 'taken' ? Number(process.env.CONF_TAKEN_PORT) : (o.port || 0);
        const server = net.createServer((s) => s.end(String(me)));
        await new Promise((resolve) => {
          server.once('listening', resolve);
          server.once('error', (e) => {
            process.send({ error: e.code, syscall: e.syscall });
            resolve();
          });
          server.listen(port, o.host || '127.0.0.1');
        });
        break;
      }
      case 'send': process.send(a); break;
      case 'env': process.send({ env: a, value: process.env[a] ?? null }); break;
      case 'argv': process.send({ argv: process.argv.slice(2) }); break;
      case 'echo': process.on('message', (m) => process.send(m)); break;
      case 'exit': process.exit(a); break;
      case 'crash': throw new Error('crash');
      case 'kill-self': process.kill(process.pid, a); break;
      case 'disconnect': cluster.worker.disconnect(); break;
      case 'block': setInterval(() => {}, 1 << 30); break;
      default: throw new Error(`unknown worker step ${op}`);
    }
  }
}

// --------------------------------------------------------------- primary

const scenario = cluster.isPrimary ? JSON.parse(process.argv[2]) : null;
const workers = {}; // id -> Worker, kept after Node drops them from cluster.workers
const seen = {}; // event kind -> how many
const ports = []; // real port numbers, in order of first appearance: P1, P2, ...
let collected = null; // while collecting: [[id, line], ...]
let takenPort = null;
let answers = [];
let wake = () => {};

const portName = (port) => {
  if (!ports.includes(port)) ports.push(port);
  return `P${ports.indexOf(port) + 1}`;
};

// One event line. `count` says the line is the one that counts for `wait`
// (the cluster-level one when Node emits both).
function line(kind, id, text, count) {
  if (collected && id !== null) collected.push([id, text]);
  else print(text);
  if (count) {
    seen[kind] = (seen[kind] || 0) + 1;
    wake();
  }
}

function flush() {
  if (!collected) return;
  const lines = collected;
  collected = null;
  lines.sort((x, y) => x[0] - y[0]); // stable: each worker's lines keep their order
  for (const [, text] of lines) print(text);
}

function until(pred) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { wake = () => {}; resolve(false); }, PATIENCE);
    const check = () => {
      if (pred()) { clearTimeout(timer); wake = () => {}; resolve(true); }
    };
    wake = check;
    check();
  });
}

const addr = (a) => `${a.address} ${portName(a.port)}`;

cluster.on('setup', () => line('setup', null, 'cluster setup', true));
cluster.on('fork', (w) => line('fork', w.id, `cluster fork ${w.id}`, true));
cluster.on('online', (w) => line('online', w.id, `cluster online ${w.id}`, true));
cluster.on('listening', (w, a) => line('listening', w.id, `cluster listening ${w.id} ${addr(a)}`, true));
cluster.on('message', (w, m) => line('message', w.id, `cluster message ${w.id} ${JSON.stringify(m)}`, true));
cluster.on('disconnect', (w) => line('disconnect', w.id, `cluster disconnect ${w.id}`, true));
cluster.on('exit', (w, c, s) => line('exit', w.id, `cluster exit ${w.id} ${c} ${s}`, true));

function attach(w) {
  const id = w.id;
  workers[id] = w;
  w.on('online', () => line('online', id, `worker ${id} online`, false));
  w.on('listening', (a) => line('listening', id, `worker ${id} listening ${addr(a)}`, false));
  w.on('message', (m) => line('message', id, `worker ${id} message ${JSON.stringify(m)}`, false));
  w.on('disconnect', () => line('disconnect', id, `worker ${id} disconnect`, false));
  w.on('exit', (c, s) => line('exit', id, `worker ${id} exit ${c} ${s}`, false));
  w.on('error', (e) => line('error', id, `worker ${id} error ${e.code}`, true));
}

// One TCP connection to 127.0.0.1:port: what the server wrote before EOF,
// or `error <code>`.
function get(port) {
  return new Promise((resolve) => {
    let text = '';
    const s = net.connect({ port, host: '127.0.0.1' });
    s.setEncoding('utf8');
    s.on('data', (d) => { text += d; });
    s.on('end', () => resolve(text));
    s.on('error', (e) => resolve(`error ${e.code}`));
  });
}

async function primary() {
  // The runner's `cluster wasm→node` column: what to fork instead of this
  // file. Set without setupPrimary(), so that it prints no `setup`.
  if (scenario.exec) cluster.settings.exec = scenario.exec;
  const workerSteps = scenario.worker || [];
  for (const [op, a, b] of scenario.primary) {
    const w = workers[a];
    switch (op) {
      case 'setup': {
        const o = a || {};
        if (o.policy) cluster.schedulingPolicy = o.policy === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
        const settings = {};
        if (o.args) settings.args = o.args;
        if (o.silent !== undefined) settings.silent = o.silent;
        cluster.setupPrimary(settings);
        break;
      }
      case 'fork': {
        const o = a || {};
        const env = { ...(o.env || {}), CONF_WORKER_STEPS: JSON.stringify(o.steps || workerSteps) };
        if (takenPort !== null) env.CONF_TAKEN_PORT = String(takenPort);
        attach(cluster.fork(env));
        break;
      }
      case 'wait': {
        const want = b || 1;
        if (!(await until(() => (seen[a] || 0) >= want))) print(`(timeout: wait ${a} ${want})`);
        break;
      }
      case 'sleep': await new Promise((r) => setTimeout(r, a)); break;
      case 'send': w.send(b); break;
      case 'kill': w.kill(b); break;
      case 'disconnect': w.disconnect(); break;
      case 'disconnect-all':
        cluster.disconnect(() => line('disconnect-all', null, 'disconnect-all done', true));
        break;
      case 'is-dead': print(`worker ${a} isDead ${w.isDead()}`); break;
      case 'is-connected': print(`worker ${a} isConnected ${w.isConnected()}`); break;
      case 'state': print(`worker ${a} state ${w.state}`); break;
      case 'exited-after-disconnect': print(`worker ${a} exitedAfterDisconnect ${w.exitedAfterDisconnect}`); break;
      case 'workers': print(`workers ${JSON.stringify(Object.keys(cluster.workers).map(Number))}`); break;
      case 'occupy': {
        const server = net.createServer((s) => s.destroy());
        await new Promise((r) => server.listen(0, '127.0.0.1', r));
        takenPort = server.address().port;
        server.unref();
        break;
      }
      case 'get': {
        answers = [];
        for (let i = 0; i < a; i++) answers.push(await get(ports[0]));
        const answered = answers.filter((x) => /^[0-9]+$/.test(x)).length;
        print(`get ${a} answered ${answered}`);
        break;
      }
      case 'distribution': {
        const ids = Object.keys(workers).map(Number).sort((x, y) => x - y);
        print(`distribution ${ids.map((id) => answers.filter((x) => x === String(id)).length).join(' ')}`);
        break;
      }
      case 'periodic': {
        const k = new Set(answers).size;
        const yes = k > 0 && answers.every((x, i) => i < k || x === answers[i - k]);
        print(`periodic ${yes ? 'yes' : 'no'}`);
        break;
      }
      case 'collect': collected = []; break;
      case 'flush': flush(); break;
      case 'die': process.exit(0); break;
      default: throw new Error(`unknown primary step ${op}`);
    }
    // Let `setup` and `fork` (which Node emits on the next tick) print
    // before the next step, without polling for I/O: no event from another
    // process can slip in between two steps.
    await new Promise((r) => process.nextTick(r));
  }
  // The end: every worker has both disconnected and exited.
  const n = Object.keys(workers).length;
  if (!(await until(() => (seen.exit || 0) >= n && (seen.disconnect || 0) >= n))) {
    flush();
    const alive = Object.values(workers).filter((x) => !x.isDead()).map((x) => x.id);
    print(`(end: workers still alive ${JSON.stringify(alive)})`);
  }
  flush();
  process.exit(0);
}

if (cluster.isWorker) worker();
else primary();
