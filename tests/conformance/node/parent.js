// Conformance parent: runs the scenario in argv[2] (JSON {"parent": [...]})
// and prints one line per event. The Node twin of
// guests/test-programs/src/bin/conf_parent.rs; keep the two in step.
// Events print from listeners, which fire only while a step awaits
// (wait, sleep, trace); the run ends with an implicit trace.
'use strict';
const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { decode } = require('./values');

const print = (s) => process.stdout.write(`${s}\n`);
const scenario = JSON.parse(process.argv[2]);
let child = null;
let closed = false;
const seen = {};
const waited = {};
let wake = () => {};

function event(kind, text) {
  print(text);
  seen[kind] = (seen[kind] || 0) + 1;
  wake();
}

function attach(c) {
  c.on('spawn', () => event('spawn', 'spawn'));
  c.on('message', (m) => event('message', `message ${JSON.stringify(m)}`));
  c.on('disconnect', () => event('disconnect', 'disconnect'));
  c.on('exit', (code, sig) => event('exit', `exit ${code} ${sig}`));
  c.on('close', (code, sig) => { closed = true; event('close', `close ${code} ${sig}`); });
  c.on('error', (e) => event('error', `error ${e.code}`));
}

// Resolves when pred() holds. If the child exited and `close` does not come
// within 500 ms (Node never emits it after a parent-side disconnect,
// nodejs/node#19433), gives up.
function until(pred) {
  return new Promise((resolve) => {
    let timer = null;
    const check = () => {
      if (pred() || closed) { clearTimeout(timer); resolve(); return; }
      if (seen.exit && !timer) timer = setTimeout(() => { closed = true; resolve(); }, 500);
    };
    wake = check;
    check();
  });
}

async function main() {
  for (const step of scenario.parent) {
    const [op, a, b = {}] = step;
    switch (op) {
      case 'fork': {
        const module = b.module || path.join(__dirname, 'child.js');
        const opts = {};
        if (b.silent) opts.silent = true;
        if (b.timeout) opts.timeout = b.timeout;
        if (b.killSignal) opts.killSignal = b.killSignal;
        // The runner's node→wasm kind: `host run conf_child.wasm`.
        if (b.execPath) opts.execPath = b.execPath;
        if (b.execArgv) opts.execArgv = b.execArgv;
        if (b.serialization) opts.serialization = b.serialization;
        // Node's ENOENT at spawn comes from a missing executable; Hive's
        // from a missing module. Both are "the program is not there".
        if (b.missing) opts.execPath = '/nonexistent/bin/node';
        child = fork(module, [JSON.stringify(a)], opts);
        closed = false;
        attach(child);
        break;
      }
      case 'send': {
        const ok = child.send(decode(a), (err) => { if (err) print(`send error ${err.code}`); });
        print(`send ${ok}`);
        break;
      }
      case 'send-event': {
        // No callback: a failed write is an 'error' event.
        print(`send ${child.send(decode(a))}`);
        break;
      }
      case 'disconnect': child.disconnect(); break;
      case 'kill':
        try { print(`kill ${child.kill(a)}`); } catch (e) { print(`kill error ${e.code}`); }
        break;
      case 'connected': print(`connected ${child.connected}`); break;
      case 'killed': print(`killed ${child.killed}`); break;
      case 'pid': print(`pid ${typeof child.pid === 'number' ? 'number' : 'undefined'}`); break;
      case 'status': print(`exitCode ${child.exitCode} signalCode ${child.signalCode}`); break;
      case 'wait': {
        waited[a] = (waited[a] || 0) + 1;
        const want = waited[a];
        await until(() => (seen[a] || 0) >= want);
        if ((seen[a] || 0) < want) print(`(no ${a})`);
        break;
      }
      // Bytes straight onto the child's channel, past Node's serializer
      // (Node-only: the wire and malformed-input scenarios).
      case 'raw': fs.writeSync(child.channel.fd, a); break;
      case 'raw-hex': fs.writeSync(child.channel.fd, Buffer.from(a, 'hex')); break;
      case 'sleep': await new Promise((r) => setTimeout(r, a)); break;
      case 'trace': await until(() => closed); break;
      default: throw new Error(`unknown parent step ${op}`);
    }
  }
  if (child) await until(() => closed);
  process.exit(0);
}

main();
