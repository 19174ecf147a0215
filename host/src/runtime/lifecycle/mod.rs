//! The only code that tells a parent what happened to a child: `spawn`,
//! `message`, `disconnect`, `exit`, `close` and `error`, in Node's order,
//! for every kind of child.
//!
//! | Rule | Where |
//! | --- | --- |
//! | `spawn` before any message | [`register`] queues it before the child can run |
//! | one send, one disconnect, both ends | [`Channel::send`], [`Channel::disconnect`] (`channel.rs`) |
//! | `disconnect` → `exit` → `close` | [`ended`] |
//! | `close` after the pipes end; unread output drained after `exit` | [`report_end`] |
//! | failed start: `error` → `close(-errno)` → `disconnect` | [`failed_start`] |

pub mod channel;

pub use channel::{Channel, End, Peer, Wire};

use super::Runtime;
use super::budget::Slot;
use super::event::{ChildEvent, Event, StartError};
use super::exit::ExitStatus;
use super::pipe::Pipe;
use super::proc::{Proc, ProcKind};
use super::signal::Signal;
use super::unix;
use std::sync::Arc;
use std::time::Duration;

/// A process about to start, of any kind.
pub struct NewProc<'a> {
    /// Its pid: virtual for a wasm process, the kernel's for an OS one.
    pub pid: u32,
    /// Its `argv[0]`.
    pub name: String,
    /// What it runs.
    pub kind: ProcKind,
    /// Its parent (`None` for the root).
    pub parent: Option<&'a Arc<Proc>>,
    /// Its message channel, if it has one.
    pub channel: Link,
    /// Output pipes its `close` waits for.
    pub pipes: Vec<Arc<Pipe>>,
    /// Its place in its budgets.
    pub slot: Slot,
    /// How many times it replaces one that ended (`fork-options.restarts`).
    pub restarts: u32,
}

/// What a new process's message channel connects.
pub enum Link {
    /// No channel (an OS program, the root guest).
    None,
    /// A channel to its parent process, the child's end a local inbox (a
    /// wasm child) or a wire (a Node child's IPC socket).
    Parent(Option<Arc<dyn Wire>>),
    /// A channel to a parent that is another program (a Node process that
    /// started this host), across a wire.
    Remote(Arc<dyn Wire>),
}

/// The event for child `id`.
fn child_event(id: u32, event: ChildEvent) -> Event {
    Event::Child { id, event }
}

/// Puts a new process in the table and under its parent, and queues its
/// `spawn`: call it before the process can run, so that `spawn` comes
/// before anything the process sends.
pub fn register(rt: &Runtime, new: NewProc<'_>) -> Arc<Proc> {
    let local = || Peer::Inbox(Arc::default());
    let channel = match (new.channel, new.parent) {
        (Link::None, _) => None,
        (Link::Parent(end), Some(parent)) => {
            let child = end.map_or_else(local, Peer::Wire);
            Some(Channel::open(
                new.pid,
                Peer::Inbox(parent.inbox.clone()),
                Some(child),
            ))
        }
        (Link::Parent(_), None) => unreachable!("a channel to a parent needs the parent"),
        (Link::Remote(wire), _) => Some(Channel::open(new.pid, Peer::Wire(wire), Some(local()))),
    };
    let mut proc = Proc::new(
        new.pid, new.name, new.kind, new.parent, channel, new.pipes, new.slot,
    );
    proc.restarts = new.restarts;
    let proc = Arc::new(proc);
    rt.processes().insert(proc.clone());
    if let Some(parent) = new.parent {
        parent.add_child(proc.clone());
        parent
            .inbox
            .push(child_event(proc.pid, ChildEvent::Spawn), None);
    }
    proc
}

/// Queues `event` about running child `proc` for its parent, if it has one.
fn tell_parent(proc: &Proc, event: ChildEvent) {
    if let Some(parent) = proc.parent.as_ref().and_then(|p| p.upgrade()) {
        parent.inbox.push(child_event(proc.pid, event), None);
    }
}

/// The `error` of a child that started and then failed (a limit, an
/// uncaught trap): Node's Worker `error`, before its `exit`.
fn running_error(proc: &Proc, code: String, message: String) -> ChildEvent {
    ChildEvent::Error(Box::new(StartError {
        code,
        errno: None,
        syscall: None,
        path: Some(proc.name.clone()),
        message,
        spawnargs: Vec::new(),
    }))
}

/// A worker thread's instance exists: `online` for its parent.
pub fn online(proc: &Proc) {
    tell_parent(proc, ChildEvent::Online);
}

/// A worker thread trapped (Node's uncaught exception): `error` with what
/// trapped, before its `exit`.
pub fn uncaught(proc: &Proc, message: String) {
    tell_parent(
        proc,
        running_error(proc, "ERR_UNCAUGHT_TRAP".into(), message),
    );
}

/// Records how `proc` ended, ends its children, and tells its parent, in
/// Node's order: `disconnect` (if still connected), `exit`, `close`.
pub fn ended(rt: &Runtime, proc: &Arc<Proc>, status: ExitStatus) {
    if !proc.set_status(status) {
        return;
    }
    drop(proc.slot.lock().unwrap().take());
    if proc.leads_group() {
        rt.group_reaped(proc.pid);
    }
    // No orphans: a process's children end with it — wasm children at once,
    // OS children with SIGTERM and SIGKILL after the grace period, detached
    // OS children not at all (they are meant to outlive us).
    let children: Vec<_> = proc.children.lock().unwrap().values().cloned().collect();
    for child in children {
        // Nobody is left to read their output.
        for pipe in child.pipes() {
            pipe.abandon();
        }
        match child.kind {
            ProcKind::Wasm => {
                child.signal(Signal::KILL);
            }
            ProcKind::Os {
                detached: false, ..
            } => terminate(child, rt.kill_grace()),
            ProcKind::Os { detached: true, .. } => {}
        }
    }
    if let Some(channel) = &proc.channel {
        channel.disconnect();
    }
    rt.processes().remove(proc.pid);
    // Nobody will read what was sent to it: free it now, not when the last
    // handle to this process goes.
    proc.inbox.discard();
    if let Some(parent) = proc.parent.as_ref().and_then(|p| p.upgrade()) {
        report_end(proc.clone(), parent, status);
    }
    proc.notify_watchers(status);
    proc.inbox.wake();
}

/// Tells `parent` that `proc` exited, then — once its output pipes are
/// finished with (read to the end, dropped, or drained) — that it closed.
fn report_end(proc: Arc<Proc>, parent: Arc<Proc>, status: ExitStatus) {
    if let Some(limit) = proc.limit_reached().filter(
        |_| matches!(status, ExitStatus::Signal(s) if s == Signal::ABRT || s == Signal::XCPU),
    ) {
        // A limit ended it (a guest that survives a refused grow does not
        // count): `error` naming the limit, then `exit`, as Node's Worker
        // emits ERR_WORKER_OUT_OF_MEMORY.
        let message = format!(
            "`{}` (pid {}) was ended by its {}: raise it with {}",
            proc.name,
            proc.pid,
            limit.what(),
            limit.option()
        );
        let error = running_error(&proc, limit.code().to_owned(), message);
        parent.inbox.push(child_event(proc.pid, error), None);
    }
    let exit = child_event(proc.pid, ChildEvent::Exit(status, proc.exit_taken.clone()));
    if proc.pipes().is_empty() {
        parent.inbox.push(exit, None);
        closed(&proc, &parent, status);
        return;
    }
    // Output nobody took by the time the parent handled `exit` is drained,
    // as Node's flushStdio does, so that `close` can come.
    let drained = proc.clone();
    parent.inbox.push_then(
        exit,
        Box::new(move || drained.pipes().iter().for_each(|p| p.drain_if_untaken())),
    );
    tokio::spawn(async move {
        for pipe in proc.pipes() {
            pipe.finished().await;
        }
        closed(&proc, &parent, status);
    });
}

fn closed(proc: &Proc, parent: &Proc, status: ExitStatus) {
    parent
        .inbox
        .push(child_event(proc.pid, ChildEvent::Close(status)), None);
    proc.set_closed();
    // Only now is the child no longer live: a parent waiting for events
    // must see `close` queued before it sees no live children.
    parent.remove_child(proc.pid);
}

/// A child that never started: queues `error` then `close(errno)` (and,
/// for one with a channel, `disconnect`: Node opens the channel before
/// spawning and closes it last, as v20 does). Returns its id and channel.
///
/// The channel stays open (`connected`) until `close`, as in Node, and
/// `close` comes only once the parent has handled `error`: a message sent
/// until then — even from the `error` listener — fails as Node's write to
/// the dead channel does, with an `EPIPE` `error` before `close`
/// ([`epipe`]).
pub fn failed_start(
    rt: &Runtime,
    parent: &Proc,
    error: StartError,
    errno: i32,
    channel: bool,
) -> (u32, Option<Arc<Channel>>) {
    let id = rt.processes().allocate_id();
    let status = ExitStatus::Code(errno);
    let error = child_event(id, ChildEvent::Error(Box::new(error)));
    let close = child_event(id, ChildEvent::Close(status));
    if !channel {
        parent.inbox.push(error, None);
        parent.inbox.push(close, None);
        return (id, None);
    }
    let channel = Channel::open(id, Peer::Inbox(parent.inbox.clone()), None);
    let (inbox, closing) = (parent.inbox.clone(), channel.clone());
    parent.inbox.push_then(
        error,
        Box::new(move || {
            closing.close();
            inbox.push(close, None);
            inbox.push(child_event(id, closing.disconnect_event()), None);
        }),
    );
    (id, Some(channel))
}

/// Reports a message sent to child `id`, which never started, as Node
/// does: an `EPIPE` `error`.
pub fn epipe(parent: &Proc, id: u32) {
    let error = StartError {
        code: "EPIPE".into(),
        errno: Some(-libc::EPIPE),
        syscall: Some("write".into()),
        path: None,
        message: "write EPIPE".into(),
        spawnargs: Vec::new(),
    };
    parent
        .inbox
        .push(child_event(id, ChildEvent::Error(Box::new(error))), None);
}

/// SIGTERM now, SIGKILL after `grace` unless the process ended by then.
/// An OS child leading its own group gets both as a group, so that its
/// descendants end too — even those left running after it exited.
pub fn terminate(proc: Arc<Proc>, grace: Duration) {
    if proc.leads_group() {
        if !unix::signal_group(proc.pid, Signal::TERM.number()).unwrap_or(false) {
            return;
        }
        tokio::spawn(async move {
            let _ = tokio::time::timeout(grace, proc.wait()).await;
            // The leader may be gone; what is left of its group is not.
            let _ = unix::signal_group(proc.pid, Signal::KILL.number());
        });
        return;
    }
    if !proc.signal(Signal::TERM) {
        return;
    }
    tokio::spawn(async move {
        if tokio::time::timeout(grace, proc.wait()).await.is_err() {
            proc.signal(Signal::KILL);
        }
    });
}

/// Kills `proc` with `signal` after `ms` milliseconds unless it ended
/// (the `timeout` option; `0` is no timeout, as in Node).
pub fn kill_after(proc: &Arc<Proc>, ms: Option<u64>, signal: Signal) {
    if let Some(ms) = ms.filter(|&ms| ms > 0) {
        let proc = proc.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = proc.wait() => {}
                _ = tokio::time::sleep(Duration::from_millis(ms)) => { proc.kill(signal); }
            }
        });
    }
}
