// Conformance child: runs the steps in argv[2] (JSON). The Node twin of
// guests/test-programs/src/bin/conf_child.rs; keep the two in step.
'use strict';
const { decode } = require('./values');

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
    default: throw new Error(`unknown child step ${op}`);
  }
}

for (const step of JSON.parse(process.argv[2])) run(step);
