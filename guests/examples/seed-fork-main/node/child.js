// The seed's fork demo, child side: the seed's child.js, verbatim.
// Hive port: guests/examples/seed-fork-child (a wasm parent can fork this file:
// host run --allow-spawn target/guests/seed-fork-main.wasm guests/examples/seed-fork-main/node/child.js).
console.log('[child] ppid: ' + process.ppid);
console.log('[child] pid: ' + process.pid);
process.on('message', function(msg) {
  console.log('[child] got a message');
  process.send('[child] message length is ' + msg.length);
});
setTimeout(() => { process.send('[child] heart beat 1'); }, 1000);
setTimeout(() => { process.send('[child] heart beat 2'); }, 2000);
process.on('disconnect', () => { console.log('[child] disconnect'); });
