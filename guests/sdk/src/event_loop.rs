//! The event loop: Node's model of callbacks dispatched one at a time, and
//! a process that lives while something can still call back.
//!
//! The loop knows its sources only as [`Handle`]s (Node's libuv handles): a
//! child, the process's own channel, a stream being read. Each says whether
//! it keeps the process alive and takes the inbox events addressed to it;
//! the loop owns only the order things happen in, the timers and the
//! deferred work.
//!
//! One turn of [`run`], in this order:
//! 1. deferred work (replays of early messages, queued by the listeners);
//! 2. every event waiting in the inbox, each followed by the deferred work
//!    it queued; a child's `close` first drains the streams being read
//!    (Node emits `data`/`end` before `close`);
//! 3. the streams being read ([`Handle::poll_io`]);
//! 4. the timers that are due;
//! 5. return if no handle keeps the loop alive (after one last look at
//!    the inbox), else block until an event arrives or a timer is due.

use crate::bindings::hive::process::process as wit;
use crate::bindings::hive::process::types::{ChildEventKind, Event};
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::io::{Pollable, poll};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

type Callback = Box<dyn FnMut()>;

/// Something the loop watches (Node's libuv handle).
pub(crate) trait Handle {
    /// Whether this handle keeps the loop alive (Node's `hasRef()`, which
    /// `ref()`/`unref()` turn on and off): a child until its `close`, a
    /// stream until its end, the parent channel while it is open and
    /// listened to, the timers while one is pending.
    fn has_ref(&self) -> bool;

    /// A pollable ready when this handle has work the inbox does not
    /// announce; the loop blocks on these and on the inbox. `None` (the
    /// default) when its work arrives as inbox events.
    fn pollable(&self) -> Option<Rc<Pollable>> {
        None
    }

    /// Does the I/O that is ready, never blocking, and calls its listeners
    /// (the loop's I/O phase). Returns `false` once the handle is finished:
    /// the loop then forgets it.
    fn poll_io(&self) -> bool {
        true
    }

    /// Delivers one inbox event addressed to this handle.
    fn deliver(self: Rc<Self>, event: Event) {
        let _ = event;
    }
}

/// Where an inbox event or a handle belongs. The order is the order the
/// loop visits handles in: streams in the order they were registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HandleId {
    /// A child, by the id its events carry.
    Child(u32),
    /// A stream read by the loop, numbered in the order of registration.
    Stream(u64),
    /// An HTTP server, by its id.
    Server(u32),
    /// A message port, numbered in the order it joined the loop.
    Port(u64),
    /// This process: its parent channel and its signals. Last, so that
    /// [`alive`] asks it (and the host whether the channel is open) only
    /// when nothing else keeps the loop alive.
    Process,
}

/// Identifies a timer for [`clear_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

struct Timer {
    interval: Option<u64>,
    callback: Callback,
}

/// The pending timers, earliest first: one handle for all of them.
#[derive(Default)]
struct Timers {
    queue: BTreeMap<(u64, TimerId), Timer>,
    next_id: u64,
    /// The timer whose callback is running, and whether it cleared itself.
    running: Option<(TimerId, bool)>,
}

impl Timers {
    fn next_deadline(&self) -> Option<u64> {
        self.queue.keys().next().map(|k| k.0)
    }
}

impl Handle for Timers {
    fn has_ref(&self) -> bool {
        !self.queue.is_empty()
    }

    fn pollable(&self) -> Option<Rc<Pollable>> {
        self.next_deadline()
            .map(|at| Rc::new(monotonic_clock::subscribe_instant(at)))
    }
}

#[derive(Default)]
struct Loop {
    handles: BTreeMap<HandleId, Rc<dyn Handle>>,
    /// Events for this process that arrived before its handle registered
    /// (the inbox is open from the start; a child registers before its
    /// first event can arrive).
    early: VecDeque<Event>,
    timers: Timers,
    /// Work for the next turn of the loop (replays).
    deferred: VecDeque<Callback>,
    /// The process inbox's pollable, made on the first wait.
    inbox: Option<Rc<Pollable>>,
    next_stream: u64,
}

thread_local! {
    static LOOP: RefCell<Loop> = RefCell::new(Loop::default());
}

/// Runs `f` on the loop state. `f` must not call back into user code.
fn with<R>(f: impl FnOnce(&mut Loop) -> R) -> R {
    LOOP.with(|l| f(&mut l.borrow_mut()))
}

/// Lets the loop deliver events for `id` to `handle`, and count it as
/// keeping the process alive while it says so. Events for this process
/// that came before it are delivered to it now, in order.
pub(crate) fn register(id: HandleId, handle: Rc<dyn Handle>) {
    let early = with(|l| {
        l.handles.insert(id, handle.clone());
        match id {
            HandleId::Process => std::mem::take(&mut l.early),
            _ => VecDeque::new(),
        }
    });
    for event in early {
        handle.clone().deliver(event);
    }
}

/// Forgets a handle: no more events for it, and it keeps nothing alive.
pub(crate) fn unregister(id: HandleId) {
    with(|l| l.handles.remove(&id));
}

/// A fresh id for a port handle (later ids are read after earlier ones).
pub(crate) fn next_port_id() -> HandleId {
    with(|l| {
        l.next_stream += 1;
        HandleId::Port(l.next_stream)
    })
}

/// A fresh id for a stream handle (later ids are read after earlier ones).
pub(crate) fn next_stream_id() -> HandleId {
    with(|l| {
        l.next_stream += 1;
        HandleId::Stream(l.next_stream)
    })
}

/// Runs `f` on the next turn of the loop, before any new event.
pub(crate) fn defer(f: impl FnMut() + 'static) {
    with(|l| l.deferred.push_back(Box::new(f)));
}

/// Calls `f` after `ms` milliseconds (Node's `setTimeout`).
pub fn set_timeout(ms: u64, f: impl FnOnce() + 'static) -> TimerId {
    let mut f = Some(f);
    add_timer(
        ms,
        None,
        Box::new(move || (f.take().expect("timeout runs once"))()),
    )
}

/// Calls `f` every `ms` milliseconds until cleared (Node's `setInterval`).
pub fn set_interval(ms: u64, f: impl FnMut() + 'static) -> TimerId {
    add_timer(ms, Some(ms), Box::new(f))
}

/// Cancels a timer.
pub fn clear_timeout(id: TimerId) {
    with(|l| {
        l.timers.queue.retain(|k, _| k.1 != id);
        if let Some((running, cleared)) = &mut l.timers.running
            && *running == id
        {
            *cleared = true;
        }
    });
}

fn add_timer(ms: u64, interval: Option<u64>, callback: Callback) -> TimerId {
    let deadline = monotonic_clock::now() + ms.max(1) * 1_000_000;
    with(|l| {
        l.timers.next_id += 1;
        let id = TimerId(l.timers.next_id);
        l.timers
            .queue
            .insert((deadline, id), Timer { interval, callback });
        id
    })
}

/// Whether any handle, the timers included, keeps the loop alive, or
/// deferred work is left.
fn alive() -> bool {
    let (timers, handles) = with(|l| {
        (
            l.timers.has_ref() || !l.deferred.is_empty(),
            l.handles.values().cloned().collect::<Vec<_>>(),
        )
    });
    // Asked outside the borrow: a handle may call the host to answer.
    timers || handles.iter().any(|h| h.has_ref())
}

/// The I/O phase: every handle reads what it has (never blocking), in
/// `HandleId` order; a finished handle is forgotten. Handles registered
/// meanwhile wait for the next phase.
fn poll_io() {
    let handles: Vec<_> = with(|l| l.handles.iter().map(|(id, h)| (*id, h.clone())).collect());
    for (id, handle) in handles {
        if !handle.poll_io() {
            unregister(id);
        }
    }
}

/// The most events one turn of the loop dispatches before its timers.
const EVENTS_PER_TURN: usize = 1024;

/// Dispatches events and timers until nothing keeps the process alive
/// (Node's event loop). Returns so `main` can end normally.
pub fn run() {
    crate::process::register();
    loop {
        run_deferred();
        // A turn takes at most `EVENTS_PER_TURN` events, then timers run:
        // under a stream that never pauses (a process forwarding messages)
        // timers would otherwise never fire. Node's loop also runs its
        // timers phase on every turn.
        for _ in 0..EVENTS_PER_TURN {
            let Some(event) = wit::try_next_event() else {
                break;
            };
            dispatch(event);
            run_deferred();
        }
        poll_io();
        run_due_timers();
        if !alive() {
            // Something may have arrived while we decided; take it first.
            match wit::try_next_event() {
                Some(event) => {
                    dispatch(event);
                    continue;
                }
                None => return,
            }
        }
        if with(|l| !l.deferred.is_empty()) {
            // Work for the next turn (a port's `close`): no waiting first.
            continue;
        }
        wait();
    }
}

fn run_deferred() {
    while let Some(mut work) = with(|l| l.deferred.pop_front()) {
        work();
    }
}

fn run_due_timers() {
    let now = monotonic_clock::now();
    loop {
        let due = with(|l| {
            let key = *l.timers.queue.keys().next()?;
            (key.0 <= now).then(|| (key, l.timers.queue.remove(&key).expect("key exists")))
        });
        let Some(((deadline, id), mut timer)) = due else {
            return;
        };
        with(|l| l.timers.running = Some((id, false)));
        (timer.callback)();
        let cleared = with(|l| l.timers.running.take().is_some_and(|(_, c)| c));
        if let Some(ms) = timer.interval
            && !cleared
        {
            let next = deadline.max(now) + ms * 1_000_000;
            with(|l| l.timers.queue.insert((next, id), timer));
        }
    }
}

/// Blocks until an event arrives or a handle's pollable is ready.
fn wait() {
    let (inbox, handles) = with(|l| {
        let inbox = l
            .inbox
            .get_or_insert_with(|| Rc::new(wit::subscribe()))
            .clone();
        let mut pollables: Vec<Rc<Pollable>> = l.timers.pollable().into_iter().collect();
        pollables.extend(l.handles.values().filter_map(|h| h.pollable()));
        (inbox, pollables)
    });
    let mut all: Vec<&Pollable> = Vec::with_capacity(handles.len() + 1);
    // The inbox's pollable is ready too when no event can ever come (no
    // channel, no child, no handled signal: a worker thread waiting on its
    // port, a root guest on a timer). Waiting on it then would spin the
    // guest on its worker thread; wait on the rest only. Nothing but this
    // guest's own calls can make an event possible again, and it makes none
    // while it waits.
    let wait_on_inbox = if inbox.ready() {
        if let Some(event) = wit::try_next_event() {
            return dispatch(event);
        }
        // Ready and empty after taking: nothing can come. Unless the take
        // skipped stale events (a cancelled monitor's `down`) and left it
        // not ready: then wait on it.
        !inbox.ready()
    } else {
        true
    };
    if wait_on_inbox {
        all.push(&inbox);
    }
    all.extend(handles.iter().map(|p| &**p));
    if all.is_empty() {
        return;
    }
    poll(&all);
}

/// Delivers one event to the handle it is addressed to.
pub(crate) fn dispatch(event: Event) {
    let id = match &event {
        Event::Child(child) => {
            // A child's output has all arrived by its `close`: deliver it
            // first, as Node emits 'data'/'end' before 'close'.
            if matches!(child.kind, ChildEventKind::Close(_)) {
                poll_io();
            }
            HandleId::Child(child.id)
        }
        Event::Request(r) => HandleId::Server(r.server),
        Event::Message(_) | Event::Disconnect | Event::Signal(_) | Event::Down(_) => {
            HandleId::Process
        }
    };
    match with(|l| l.handles.get(&id).cloned()) {
        Some(handle) => handle.deliver(event),
        None if id == HandleId::Process => with(|l| l.early.push_back(event)),
        // A child nobody holds any more (it closed): no one to call.
        None => {}
    }
}
