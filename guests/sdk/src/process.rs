//! The current process (Node's `process`): identity, the parent channel,
//! signals and exit.

use crate::bindings::hive::process::process as wit;
use crate::{Error, IntoMessage, Message, event_loop};

/// This process's pid.
pub fn pid() -> u32 {
    wit::pid()
}

/// The parent's pid.
pub fn ppid() -> u32 {
    wit::ppid()
}

/// The arguments, `argv[0]` being the module path.
pub fn argv() -> Vec<String> {
    wit::argv()
}

/// Ends the process with `code` (any 0..=255, unlike `std::process::exit`
/// on wasip2, which only carries 0 or 1).
pub fn exit(code: u8) -> ! {
    wit::exit(code);
    unreachable!("exit returned")
}

/// Whether the channel to the parent is open.
pub fn connected() -> bool {
    wit::connected()
}

/// Sends a message to the parent. `Ok(false)` is backpressure: the message
/// was queued, but the parent is behind.
pub fn send(msg: impl IntoMessage) -> Result<bool, Error> {
    Ok(wit::send(&msg.into_message().into())?)
}

/// Closes the channel to the parent.
pub fn disconnect() -> Result<(), Error> {
    Ok(wit::disconnect()?)
}

/// Calls `f` for every message from the parent. While a message or
/// disconnect listener exists and the channel is open, [`crate::run`] keeps
/// the process alive (as Node does).
pub fn on_message(f: impl FnMut(Message) + 'static) {
    event_loop::with(|l| l.on_parent_message.push(Box::new(f)));
    event_loop::replay_parent_messages();
}

/// Calls `f` when the channel to the parent closes.
pub fn on_disconnect(f: impl FnMut() + 'static) {
    event_loop::with(|l| l.on_parent_disconnect.push(Box::new(f)));
}

/// Handles `signal` (e.g. `"SIGTERM"`) with `f` instead of ending.
pub fn on_signal(signal: &str, f: impl FnMut(&str) + 'static) -> Result<(), Error> {
    wit::handle_signal(signal, true)?;
    event_loop::with(|l| l.on_signal.push((signal.to_owned(), Box::new(f))));
    Ok(())
}

/// Blocks until the next message from the parent; `None` once disconnected.
/// Other events taken meanwhile are dispatched to their listeners.
pub fn recv() -> Option<Message> {
    loop {
        match wit::next_event()? {
            crate::bindings::hive::process::types::Event::Message(m) => return Some(m.into()),
            crate::bindings::hive::process::types::Event::Disconnect => {
                event_loop::dispatch(crate::bindings::hive::process::types::Event::Disconnect);
                return None;
            }
            other => event_loop::dispatch(other),
        }
    }
}
