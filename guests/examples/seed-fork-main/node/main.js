// The seed's fork demo, parent side: the seed's main.js, verbatim except that
// the child's path may be given as argv[2] (the tests do), defaulting to
// ./child.js beside this file.
// Run: node guests/examples/seed-fork-main/node/main.js
// Hive port: host run target/guests/seed-fork-main.wasm
const cp = require('child_process');
const child = cp.fork(process.argv[2] || require('path').join(__dirname, 'child.js'));
console.log('[main] pid: ' + process.pid);
console.log('[main] child pid: ' + child.pid);
child.on('message', msg => {
  console.log('[main] got a message');
  console.log('[main] message: ' + msg);
});
child.on('exit', () => { console.log('[main] child process exited'); });
console.log('[main] sent a message');
child.send('hello world');
setTimeout(() => { child.disconnect(); }, 3000);
