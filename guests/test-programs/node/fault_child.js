// The fault suite's Node child (guests/test-programs/src/bin/fault_cases.rs).
//   garbage: sends the numbers 0..999, each after the last was written,
//            with a line that is not JSON after every hundredth (50, 150,
//            ...), then disconnects.
//   echo:    sends back every message until its parent disconnects.
//   limits:  sends its soft open-files limit (from /proc/self/limits).
'use strict';
const fs = require('node:fs');

const MESSAGES = 1000;

// One raw line on the channel, waiting while the socket is full (the
// channel is non-blocking).
function raw(line) {
  const buf = Buffer.from(line);
  for (let off = 0; off < buf.length;) {
    try { off += fs.writeSync(process.channel.fd, buf, off); } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

function garbage(n) {
  if (n === MESSAGES) return process.disconnect();
  process.send(n, () => {
    if (n % 100 === 50) raw('{"this is": not JSON\n');
    garbage(n + 1);
  });
}

switch (process.argv[2]) {
  case 'garbage': garbage(0); break;
  case 'echo': process.on('message', (m) => process.send(m)); break;
  case 'limits': {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n')
      .find((l) => l.startsWith('Max open files'));
    process.send(`open files ${line.split(/\s+/)[3]}`, () => process.disconnect());
    break;
  }
  default: throw new Error(`unknown role ${process.argv[2]}`);
}
