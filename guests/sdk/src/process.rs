//! The current process (Node's `process`): identity, the parent channel,
//! signals and exit.

use crate::bindings::hive::process::process as wit;
use crate::bindings::hive::process::types::{Event, ProcessDown};
use crate::emitter::Listeners;
use crate::event_loop::{self, Handle, HandleId};
use crate::{Error, IntoMessage, Message};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// This process as the event loop sees it: the parent channel's and the
/// signals' listeners.
#[derive(Default)]
struct Process {
    message: Listeners<Message>,
    disconnect: Listeners<()>,
    /// Each listener checks the signal's name (Node's `process.on('SIGTERM')`).
    signal: Listeners<str>,
    /// `down` events of monitored processes.
    down: Listeners<ProcessDown>,
    /// Monitors whose `down` has not come yet.
    monitors: RefCell<std::collections::HashSet<u32>>,
    /// Parent messages that arrived before any listener (Node replays them).
    pending: RefCell<VecDeque<Message>>,
    /// The parent channel as this process has seen it: open until the
    /// `disconnect` event was dispatched; asked of the host when first needed.
    connected: Cell<Option<bool>>,
}

impl Process {
    fn connected(&self) -> bool {
        let connected = self.connected.get().unwrap_or_else(wit::connected);
        self.connected.set(Some(connected));
        connected
    }

    /// Replays the parent messages queued before the first listener, on
    /// the next turn of the loop.
    fn replay_pending() {
        event_loop::defer(|| {
            // Popped in a statement of its own: no borrow is held while
            // the listeners run.
            loop {
                let next = handle().pending.borrow_mut().pop_front();
                let Some(msg) = next else { break };
                event_loop::dispatch(Event::Message(msg.into()));
            }
        });
    }
}

impl Handle for Process {
    /// While a message or disconnect listener exists and the channel is
    /// open (Node refs the channel for those listeners), or a monitor's
    /// `down` is still to come and there is a `down` listener for it.
    fn has_ref(&self) -> bool {
        if !self.down.is_empty() && !self.monitors.borrow().is_empty() {
            return true;
        }
        // A cluster worker's channel is always listened to (Node's cluster
        // code does), so it keeps the worker alive until it disconnects.
        let listened =
            !self.message.is_empty() || !self.disconnect.is_empty() || crate::cluster::is_worker();
        listened && self.connected()
    }

    fn deliver(self: Rc<Self>, event: Event) {
        match event {
            Event::Message(msg) => {
                let msg = Message::from(msg);
                if self.message.is_empty() {
                    self.pending.borrow_mut().push_back(msg);
                } else {
                    self.message.emit(&msg);
                }
            }
            Event::Disconnect => {
                self.connected.set(Some(false));
                self.disconnect.emit(&());
            }
            Event::Signal(name) => self.signal.emit(&name),
            Event::Down(down) => {
                self.monitors.borrow_mut().remove(&down.monitor);
                self.down.emit(&down);
            }
            Event::Child(_) | Event::Request(_) => {
                unreachable!("child events and requests go to their own handles")
            }
        }
    }
}

thread_local! {
    static PROCESS: Rc<Process> = {
        let process = Rc::new(Process::default());
        event_loop::register(HandleId::Process, process.clone());
        process
    };
}

/// Registers this process's handle with the loop (what [`crate::run`]
/// does first: a cluster worker's channel keeps it alive even if it never
/// listens for messages).
pub(crate) fn register() {
    let _ = handle();
}

/// This process's handle, registered with the loop on first use.
fn handle() -> Rc<Process> {
    PROCESS.with(Rc::clone)
}

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
pub fn on_message(mut f: impl FnMut(Message) + 'static) {
    handle().message.add(move |msg| f(msg.clone()));
    Process::replay_pending();
}

/// Calls `f` when the channel to the parent closes.
pub fn on_disconnect(mut f: impl FnMut() + 'static) {
    handle().disconnect.add(move |_| f());
}

/// Handles `signal` (e.g. `"SIGTERM"`) with `f` instead of ending.
pub fn on_signal(signal: &str, mut f: impl FnMut(&str) + 'static) -> Result<(), Error> {
    wit::handle_signal(signal, true)?;
    let signal = signal.to_owned();
    handle().signal.add(move |name| {
        if *name == signal {
            f(name)
        }
    });
    Ok(())
}

pub use wit::ProcessInfo;

/// This process and its live descendants, parents first (what `host ps`
/// shows, for this process's own subtree).
pub fn subtree() -> Vec<ProcessInfo> {
    wit::subtree()
}

/// Asks for a `down` event when descendant `pid` ends (Erlang's
/// `monitor`, beyond Node); returns the monitor's id, which [`on_down`]
/// gets. Fails with `ESRCH` for a pid that is not a live descendant.
/// While its `down` is to come, the monitor keeps the event loop alive if
/// there is an [`on_down`] listener.
pub fn monitor(pid: u32) -> Result<u32, Error> {
    let id = wit::monitor(pid)?;
    handle().monitors.borrow_mut().insert(id);
    Ok(id)
}

/// Cancels monitor `id`: its `down` will not come.
pub fn demonitor(id: u32) {
    handle().monitors.borrow_mut().remove(&id);
    wit::demonitor(id)
}

/// Links this process to descendant `pid` (Erlang's `link`): if `pid` ends
/// abnormally, this process gets `SIGTERM` — it ends too, unless it
/// handles `SIGTERM` ([`on_signal`], Erlang's `trap_exit`).
pub fn link(pid: u32) -> Result<(), Error> {
    Ok(wit::link(pid)?)
}

/// Removes the link to `pid`.
pub fn unlink(pid: u32) {
    wit::unlink(pid)
}

/// `f(monitor, pid, code, signal)` when a monitored process ends.
pub fn on_down(mut f: impl FnMut(u32, u32, Option<i32>, Option<String>) + 'static) {
    handle()
        .down
        .add(move |d| f(d.monitor, d.pid, d.status.code, d.status.signal.clone()));
}

/// Blocks until the next message from the parent; `None` once disconnected.
/// Other events taken meanwhile are dispatched to their listeners.
pub fn recv() -> Option<Message> {
    loop {
        match wit::next_event()? {
            Event::Message(m) => return Some(m.into()),
            Event::Disconnect => {
                event_loop::dispatch(Event::Disconnect);
                return None;
            }
            other => event_loop::dispatch(other),
        }
    }
}
