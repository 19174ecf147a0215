// Conformance child: runs the steps in argv[2] (JSON). The Node twin of
// guests/test-programs/src/bin/conf_child.rs; keep the two in step.
'use strict';
const fs = require('node:fs');
const { decode } = require('./values');

// A line of `n` digits, in pieces, waiting while the socket is full (the
// channel is non-blocking).
function rawLong(n) {
  const chunk = Buffer.alloc(1 << 20, '1');
  let left = n;
  const write = (buf) => {
    for (let off = 0; off < buf.length;) {
      try { off += fs.writeSync(process.channel.fd, buf, off); } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
    }
  };
  while (left > 0) { const k = Math.min(left, chunk.length); write(chunk.subarray(0, k)); left -= k; }
  write(Buffer.from('\n'));
}

function run(step) {
  const [op, a, b] = step;
  switch (op) {
    case 'send': process.send(decode(a)); break;
    case 'exit': process.exit(a); break;
    case 'listen': process.on('message', () => {}); break;
    case 'echo': process.on('message', (m) => process.send(m)); break;
    case 'disconnect': process.disconnect(); break;
    case 'spin': for (;;) {} // eslint-disable-line no-empty
    case 'block': setInterval(() => {}, 1 << 30); break;
    case 'abort': process.abort(); break;
    case 'handle': process.on(a, () => process.exit(b)); break;
    case 'after': setTimeout(() => run(b), a); break;
    case 'print': console.log(a); break;
    // Bytes straight onto the channel, past Node's serializer: what a
    // broken peer writes (Node-only; the malformed-input scenarios).
    case 'raw': fs.writeSync(process.channel.fd, a); break;
    case 'raw-hex': fs.writeSync(process.channel.fd, Buffer.from(a, 'hex')); break;
    case 'raw-long': rawLong(a); break;
    default: throw new Error(`unknown child step ${op}`);
  }
}

for (const step of JSON.parse(process.argv[2])) run(step);
