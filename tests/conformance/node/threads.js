// Conformance worker_threads program: the Node twin of
// guests/test-programs/src/bin/conf_threads.rs. As the main thread it runs
// the case named in argv[2] and prints one line per event; as a worker it
// runs the worker side of the case named in its own argv[2]. Keep the two
// in step: the runner compares their traces line by line.
'use strict';
const {
  Worker, MessageChannel, isMainThread, parentPort, workerData, threadId,
  receiveMessageOnPort, markAsUntransferable,
} = require('node:worker_threads');

const print = (s) => process.stdout.write(`${s}\n`);
const show = (v) => JSON.stringify(v);
// What the Rust twin prints for a DataCloneError or TypeError.
const reason = (e) => {
  const m = e.message;
  if (m.includes('source port')) return `${e.name} source-port`;
  if (m.includes('already detached')) return `${e.name} port-detached`;
  if (m.includes('duplicate')) return `${e.name} duplicate`;
  if (m.includes('detached')) return `${e.name} detached`;
  return `${e.name} ${m}`;
};
// The runner passes the scenario (JSON); a worker gets its case's name.
const arg = process.argv[2];
const me = arg.startsWith('{') ? JSON.parse(arg).case : arg;

function start(args, options = {}) {
  const w = new Worker(__filename, { argv: args, ...options });
  const tag = args.length > 1 ? `${args[1]} ` : '';
  w.on('online', () => print(`${tag}online`));
  w.on('message', (m) => print(`${tag}message ${show(m)}`));
  w.on('error', () => print(`${tag}error`));
  w.on('exit', (code) => print(`${tag}exit ${code}`));
  return w;
}

const main = {
  'worker-data': () => start(['worker-data'], { workerData: { a: 1, b: 'x' } }),
  'exit-code': () => start(['exit-code']),
  terminate: () => {
    const w = start(['terminate']);
    w.on('message', () => {
      // The promise settles after 'exit'.
      w.terminate()
        .then((code) => {
          print(`terminated ${code}`);
          return w.terminate();
        })
        .then((again) => print(`again ${again === undefined ? 'ended' : again}`));
    });
  },
  uncaught: () => start(['uncaught']),
  'port-transfer': () => {
    // Two workers talk over a channel their parent made; which of them
    // reports first is a race, so the lines are printed sorted.
    const { port1, port2 } = new MessageChannel();
    const got = [];
    const exits = [];
    for (const [side, port] of [['a', port1], ['b', port2]]) {
      const w = new Worker(__filename, { argv: ['port-transfer', side] });
      w.on('message', (m) => {
        got.push(m);
        if (got.length === 2) got.sort().forEach(print);
      });
      w.on('exit', (code) => {
        exits.push(`${side} exit ${code}`);
        if (exits.length === 2) exits.sort().forEach(print);
      });
      w.postMessage({ port }, [port]);
    }
  },
  'transfer-detaches': () => {
    const w = start(['transfer-detaches']);
    const ab = new ArrayBuffer(4);
    new Uint8Array(ab).set([1, 2, 3, 4]);
    w.postMessage(ab, [ab]);
    print(`after byteLength ${ab.byteLength}`);
    try { new Uint8Array(ab)[0] = 1; new Uint8Array(ab, 0, 1); } catch (e) { print(reason(e)); }
  },
  untransferable: () => {
    const w = start(['transfer-detaches']);
    const ab = new ArrayBuffer(4);
    new Uint8Array(ab).set([1, 2, 3, 4]);
    markAsUntransferable(ab);
    w.postMessage(ab, [ab]);
    print(`after byteLength ${ab.byteLength}`);
  },
  'data-clone-errors': () => {
    const { port1, port2 } = new MessageChannel();
    const other = new MessageChannel();
    const ab = new ArrayBuffer(4);
    const tries = [
      ['source', () => port1.postMessage(1, [port1])],
      ['duplicate buffer', () => port1.postMessage(1, [ab, ab])],
      ['duplicate port', () => port1.postMessage(1, [other.port1, other.port1])],
      ['moved', () => port1.postMessage(1, [other.port1])],
      ['moved again', () => port1.postMessage(1, [other.port1])],
    ];
    for (const [what, f] of tries) {
      try { f(); print(`${what} ok`); } catch (e) { print(`${what} ${reason(e)}`); }
    }
    let m;
    while ((m = receiveMessageOnPort(port2))) print(`received ${show(m.message)}`);
    port1.close();
  },
  'receive-message-on-port': () => {
    const { port1, port2 } = new MessageChannel();
    for (const n of [1, 'two', { three: 3 }]) port1.postMessage(n);
    for (let i = 0; i < 4; i++) {
      const m = receiveMessageOnPort(port2);
      print(m === undefined ? 'undefined' : `received ${show(m.message)}`);
    }
    port1.close();
  },
  'atomics-wait-notify': () => {
    const sab = new SharedArrayBuffer(8);
    const ia = new Int32Array(sab);
    const w = start(['atomics-wait-notify'], { workerData: sab });
    w.on('message', (m) => {
      if (m === 'waiting') {
        // Give it time to sleep in Atomics.wait; a store + notify before
        // then is seen by its check instead, and the trace is the same.
        setTimeout(() => {
          Atomics.store(ia, 0, 21);
          Atomics.notify(ia, 0);
        }, 50);
      }
    });
    w.on('exit', () => print(`main reads ${Atomics.load(ia, 1)}`));
  },
  'port-close': () => {
    const { port1, port2 } = new MessageChannel();
    port2.on('message', (m) => print(`port2 message ${show(m)}`));
    port2.on('close', () => print('port2 close'));
    port1.on('close', () => print('port1 close'));
    port1.postMessage(1);
    port1.postMessage(2);
    port1.close();
    print('closed');
  },
  fifo: () => {
    const w = new Worker(__filename, { argv: ['fifo'] });
    let next = 0;
    let ok = true;
    w.on('message', (m) => {
      if (m !== next) ok = false;
      next += 1;
      if (next === 10000) print(`10000 in order ${ok}`);
    });
    w.on('exit', (code) => print(`exit ${code}`));
  },
  unref: () => {
    const w = start(['unref']);
    w.on('online', () => { w.unref(); print('main done'); });
  },
};

const worker = {
  'worker-data': () => {
    parentPort.postMessage({ data: workerData, isMainThread, hasThreadId: threadId > 0 });
  },
  'exit-code': () => {
    for (const n of [1, 2, 3]) parentPort.postMessage(n);
    process.exit(7);
  },
  terminate: () => {
    parentPort.postMessage('spinning');
    setInterval(() => {}, 1000);
  },
  uncaught: () => { throw new Error('boom'); },
  'port-transfer': () => {
    const side = process.argv[3];
    parentPort.once('message', ({ port }) => {
      port.on('message', (m) => {
        parentPort.postMessage(`${side} got ${m}`);
        if (side === 'b') port.postMessage('pong');
        port.close();
      });
      if (side === 'a') port.postMessage('ping');
    });
  },
  'transfer-detaches': () => {
    parentPort.once('message', (ab) => {
      const bytes = [...new Uint8Array(ab)];
      parentPort.postMessage({ byteLength: ab.byteLength, bytes });
    });
  },
  'atomics-wait-notify': () => {
    const ia = new Int32Array(workerData);
    parentPort.postMessage('waiting');
    const result = Atomics.wait(ia, 0, 0, 5000);
    const seen = Atomics.load(ia, 0);
    Atomics.store(ia, 1, 42);
    parentPort.postMessage({ result: result === 'not-equal' ? 'ok' : result, seen });
  },
  fifo: () => {
    for (let n = 0; n < 10000; n++) parentPort.postMessage(n);
  },
  unref: () => { setInterval(() => {}, 1000); },
};

(isMainThread ? main : worker)[me]();
