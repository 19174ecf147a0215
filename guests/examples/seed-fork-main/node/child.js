// The seed's fork demo, child side.
'use strict';
console.log(`[child] ppid ${process.ppid}, pid ${process.pid}`);

process.on('message', (msg) => {
  console.log(`[child] message from parent: ${JSON.stringify(msg)}`);
  process.send({ length: msg.length });
});

setTimeout(() => process.send({ heartbeat: 1 }), 1000);
setTimeout(() => process.send({ heartbeat: 2 }), 2000);

process.on('disconnect', () => {
  console.log('[child] parent disconnected');
});
