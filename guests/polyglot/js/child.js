// The seed's fork demo, child side, in JavaScript (componentize-js /
// StarlingMonkey). A port of ../../examples/seed-fork-main/node/child.js
// against the raw `hive:process/guest` world: a tiny event loop that waits on
// the process's event queue (`process.subscribe()`) together with a
// monotonic-clock timer (`wasi:io/poll.poll`), then dispatches events and due
// timers.
//
// Build:
//   componentize-js child.js --wit ../../../wit --world-name hive:process/guest \
//     -d http fetch-event -o child_js.wasm
import {
  pid,
  ppid,
  connected as isConnected,
  send as hiveSend,
  tryNextEvent,
  subscribe,
} from 'hive:process/process@0.1.0';
import { now, subscribeInstant } from 'wasi:clocks/monotonic-clock@0.2.12';
import { poll } from 'wasi:io/poll@0.2.12';

const MS = 1_000_000n; // monotonic-clock instants are u64 nanoseconds (BigInt)

function send(value) {
  try {
    hiveSend({ tag: 'json', val: JSON.stringify(value) });
  } catch (e) {
    // A `result` error arrives as a thrown ComponentError; `payload` is the
    // error-code enum as a string, e.g. 'channel-closed'.
    console.log(`[child] send failed: ${e.payload ?? e}`);
  }
}

function messageValue(msg) {
  return msg.tag === 'json'
    ? JSON.parse(msg.val)
    : { type: 'Buffer', data: Array.from(msg.val) };
}

function drop(resource) {
  // Free a resource handle now rather than at GC, when the bindings allow it.
  resource[Symbol.dispose]?.();
}

function main() {
  console.log(`[child] ppid ${ppid()}, pid ${pid()}`);

  const start = now();
  // [deadline in ns, callback], kept sorted by deadline.
  const timers = [
    [start + 1000n * MS, () => send({ heartbeat: 1 })],
    [start + 2000n * MS, () => send({ heartbeat: 2 })],
  ];
  let connected = isConnected();

  const dispatch = (event) => {
    switch (event.tag) {
      case 'message': {
        const msg = messageValue(event.val);
        console.log(`[child] message from parent: ${JSON.stringify(msg)}`);
        send({ length: msg.length });
        break;
      }
      case 'disconnect':
        connected = false;
        console.log('[child] parent disconnected');
        break;
      default: // 'signal', 'child': no handlers installed, no children
        break;
    }
  };

  const inbox = subscribe();
  // Node's event loop: live while a timer is pending or the parent channel
  // (which has listeners) is open.
  for (;;) {
    let event;
    while ((event = tryNextEvent()) !== undefined) dispatch(event);
    const t = now();
    while (timers.length && timers[0][0] <= t) timers.shift()[1]();
    if (!timers.length && !connected) {
      // Take anything that arrived while deciding, then end.
      event = tryNextEvent();
      if (event === undefined) break;
      dispatch(event);
      continue;
    }
    if (timers.length) {
      const timer = subscribeInstant(timers[0][0]);
      poll([inbox, timer]);
      drop(timer);
    } else {
      inbox.block();
    }
  }
  drop(inbox);
}

export const run = {
  run() {
    main();
  },
};
