"""The seed's fork demo, child side, in Python (componentize-py).

A port of ../../examples/seed-fork-main/node/child.js against the raw
`hive:process/guest` world: a tiny event loop that waits on the process's
event queue (`process.subscribe()`) together with a monotonic-clock timer
(`wasi:io/poll.poll`), then dispatches events and due timers.

Build:
  componentize-py -d ../../../wit -w hive:process/guest componentize child -o child_py.wasm
"""
import json

from wit_world import exports
from wit_world.imports import process, monotonic_clock, poll
from wit_world.imports.hive_process_types import (
    Message_Json,
    Event_Message,
    Event_Disconnect,
    Event_Signal,
    Event_Child,
)
from componentize_py_types import Err

MS = 1_000_000  # monotonic-clock instants are nanoseconds


def send(value) -> None:
    try:
        process.send(Message_Json(json.dumps(value, separators=(",", ":"))))
    except Err as e:  # e.value is a hive_process_types.ErrorCode
        print(f"[child] send failed: {e.value}")


def message_value(msg):
    if isinstance(msg, Message_Json):
        return json.loads(msg.value)
    # Bytes arrive as Node's Buffer form would be seen by a Node child.
    return {"type": "Buffer", "data": list(msg.value)}


def js_length(value):
    """`msg.length` as JavaScript sees it (UTF-16 code units for strings)."""
    if isinstance(value, str):
        # componentize-py's stdlib has no utf-16 codec (`"".encode("utf-16-le")`
        # raises LookupError), so count astral characters as two units by hand.
        return len(value) + sum(1 for c in value if ord(c) > 0xFFFF)
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict) and isinstance(value.get("length"), (int, float)):
        return value["length"]
    return None  # undefined -> the key is dropped by JSON.stringify


class Run(exports.Run):
    def run(self) -> None:
        print(f"[child] ppid {process.ppid()}, pid {process.pid()}")

        start = monotonic_clock.now()
        # (deadline in ns, callback), kept sorted by deadline.
        timers = [
            (start + 1000 * MS, lambda: send({"heartbeat": 1})),
            (start + 2000 * MS, lambda: send({"heartbeat": 2})),
        ]
        connected = process.connected()
        with process.subscribe() as inbox:
            self.loop(inbox, timers, connected)

    def loop(self, inbox, timers, connected) -> None:
        def dispatch(event) -> None:
            nonlocal connected
            if isinstance(event, Event_Message):
                value = message_value(event.value)
                print(f"[child] message from parent: {json.dumps(value, separators=(',', ':'))}")
                length = js_length(value)
                send({"length": length} if length is not None else {})
            elif isinstance(event, Event_Disconnect):
                connected = False
                print("[child] parent disconnected")
            elif isinstance(event, (Event_Signal, Event_Child)):
                pass  # no handlers installed, no children forked

        # Node's event loop: live while a timer is pending or the parent
        # channel (which has listeners) is open.
        while True:
            while (event := process.try_next_event()) is not None:
                dispatch(event)
            now = monotonic_clock.now()
            while timers and timers[0][0] <= now:
                _, callback = timers.pop(0)
                callback()
            if not timers and not connected:
                # Take anything that arrived while deciding, then end.
                event = process.try_next_event()
                if event is None:
                    break
                dispatch(event)
                continue
            if timers:
                # `with` drops the timer pollable as soon as the poll returns.
                with monotonic_clock.subscribe_instant(timers[0][0]) as timer:
                    poll.poll([inbox, timer])
            else:
                inbox.block()
