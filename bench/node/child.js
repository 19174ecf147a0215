'use strict';
// The forked child of bench.js (the Node.js twin of
// guests/test-programs/src/bin/bench_child.rs). process.argv[2] is the role:
//   ready  send 'ready' at once, then stay until the parent disconnects
//   idle   the same as ready (used by `bench.js idle` for memory readings)
//   echo   send every message straight back, until disconnect
//   sink   count messages until disconnect, then write the count (decimal,
//          one line) to stdout and exit; bench.js pipes it and checks it
//   exit   send 'ready', then disconnect and exit
//   spin   compute forever (`for (;;) {}`), until killed
// Every role exits by itself once the IPC channel is gone (empty event loop).

if (typeof process.send !== 'function') {
  process.stderr.write('child.js must be started with child_process.fork()\n');
  process.exit(2);
}

const role = process.argv[2];

switch (role) {
  case 'ready':
  case 'idle':
    // A 'disconnect' listener keeps the IPC channel referenced, so the child
    // stays alive until the parent disconnects; then the loop empties.
    process.on('disconnect', () => {});
    process.send('ready');
    break;

  case 'echo':
    process.on('message', (m) => { process.send(m); });
    break;

  case 'sink': {
    let count = 0;
    process.on('message', () => { count++; });
    process.on('disconnect', () => { process.stdout.write(`${count}\n`); });
    break;
  }

  case 'spin':
    // CPU-bound forever; the parent kills it.
    for (;;) { /* spin */ }

  case 'exit':
    // Disconnect only once 'ready' is written to the channel.
    process.send('ready', () => { process.disconnect(); });
    break;

  default:
    process.stderr.write(`child.js: unknown role ${JSON.stringify(role)}\n`);
    process.exit(2);
}
