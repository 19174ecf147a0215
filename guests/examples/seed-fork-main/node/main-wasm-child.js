// The seed's fork demo with a Hive guest as the child: the seed's main.js,
// differing only in the fork call, which runs `host run seed-fork-child.wasm`.
// Run from target/guests with `host` on PATH:
//   node ../../guests/examples/seed-fork-main/node/main-wasm-child.js
// The tests override the host binary with HIVE_HOST and the module with argv[2].
const cp = require('child_process');
const child = cp.fork(process.argv[2] || 'seed-fork-child.wasm', [], {execPath: process.env.HIVE_HOST || 'host', execArgv: ['run']});
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
