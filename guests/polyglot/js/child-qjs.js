// The same child for jco's QuickJS backend (`jco componentize --backend
// quickjs`). It cannot be built against Hive's WIT as is: componentize-qjs
// rejects any interface that `use`s `wasi:io/poll.{pollable}` ("instance
// export `pollable` has the wrong type: mismatched resource types"). It builds
// against a copy of the WIT without `process.subscribe` and the child-process
// `subscribe`/stdio methods, so without a pollable for the event queue it
// must poll: `try-next-event`, then sleep at most TICK_MS on a clock pollable.
// QuickJS also has no `console` and no `TextEncoder`: print through
// `wasi:cli/stdout` with a hand-written UTF-8 encoder.
//
// Build (wit-nopoll = ../../../wit minus those functions, see README.md):
//   jco componentize child-qjs.js --backend quickjs --backend-qjs-disable-async \
//     --wit wit-nopoll --world-name hive:process/guest -o child_qjs.wasm
import {
  pid,
  ppid,
  connected as isConnected,
  send as hiveSend,
  tryNextEvent,
  nextEvent,
} from 'hive:process/process@0.1.0';
import { now as clockNow, subscribeInstant } from 'wasi:clocks/monotonic-clock@0.2.12';
import { getStdout } from 'wasi:cli/stdout@0.2.12';

// componentize-qjs lifts a u64 to a Number and lowers only a Number (a BigInt
// fails: "expected number: FromJs { from: \"big_int\", to: \"f64\" }");
// StarlingMonkey uses BigInt both ways. Keep BigInt arithmetic here.
const now = () => BigInt(clockNow());
const MS = 1_000_000n;
const TICK_MS = 5n;

// Take the stream at run time, not at module top level: top-level code runs
// at build time (pre-initialization), and a handle taken there is not valid
// when the component runs ("unknown handle index 1").
let stdout;
function utf8(s) {
  const out = [];
  for (const ch of s) {
    let c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}
function log(line) {
  stdout ??= getStdout();
  stdout.blockingWriteAndFlush(utf8(line + '\n'));
}

function send(value) {
  try {
    hiveSend({ tag: 'json', val: JSON.stringify(value) });
  } catch (e) {
    log(`[child] send failed: ${e.payload ?? e}`);
  }
}

function main() {
  log(`[child] ppid ${ppid()}, pid ${pid()}`);
  const start = now();
  const timers = [
    [start + 1000n * MS, () => send({ heartbeat: 1 })],
    [start + 2000n * MS, () => send({ heartbeat: 2 })],
  ];
  let connected = isConnected();
  const dispatch = (event) => {
    switch (event.tag) {
      case 'message': {
        const m = event.val;
        const msg = m.tag === 'json' ? JSON.parse(m.val) : { type: 'Buffer', data: Array.from(m.val) };
        log(`[child] message from parent: ${JSON.stringify(msg)}`);
        send({ length: msg.length });
        break;
      }
      case 'disconnect':
        connected = false;
        log('[child] parent disconnected');
        break;
    }
  };
  // An `option` that is `none` is `null` here (StarlingMonkey: `undefined`).
  for (;;) {
    let event;
    while ((event = tryNextEvent()) != null) dispatch(event);
    const t = now();
    while (timers.length && timers[0][0] <= t) timers.shift()[1]();
    if (!timers.length && !connected) {
      event = tryNextEvent();
      if (event == null) break;
      dispatch(event);
      continue;
    }
    if (timers.length) {
      // No pollable for the event queue: wake every TICK_MS to check it.
      const tick = t + TICK_MS * MS;
      subscribeInstant(Number(timers[0][0] < tick ? timers[0][0] : tick)).block();
    } else {
      // Only events can wake us: block in next-event.
      event = nextEvent();
      if (event == null) break;
      dispatch(event);
    }
  }
}

export const run = {
  run() {
    main();
  },
};
