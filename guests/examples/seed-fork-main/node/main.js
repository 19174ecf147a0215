// The seed's fork demo, parent side (Node's child_process.fork docs).
// Run: node guests/examples/seed-fork-main/node/main.js
// Hive port: host run target/guests/seed-fork-main.wasm
'use strict';
const { fork } = require('node:child_process');
const path = require('node:path');

const modulePath = process.argv[2] || path.join(__dirname, 'child.js');
const child = fork(modulePath);
console.log(`[main] pid ${process.pid}, forked child pid ${child.pid}`);

child.on('message', (msg) => {
  console.log(`[main] message from child: ${JSON.stringify(msg)}`);
});
child.on('exit', (code, signal) => {
  console.log(`[main] child exited with code ${code} and signal ${signal}`);
});

child.send('hello world');

setTimeout(() => {
  console.log('[main] disconnecting');
  child.disconnect();
}, 3000);
