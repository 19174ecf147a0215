//! The event loop: Node's model of callbacks dispatched one at a time, and
//! a process that lives while something can still call back.

use crate::Message;
use crate::bindings::hive::process::process as wit;
use crate::bindings::hive::process::types::Event;
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::io::{InputStream, Pollable, StreamError, poll};
use crate::child::ChildInner;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

type Callback = Box<dyn FnMut()>;

/// Identifies a timer for [`clear_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

struct Timer {
    interval: Option<u64>,
    callback: Callback,
}

#[derive(Default)]
pub(crate) struct Loop {
    pub on_parent_message: Vec<Box<dyn FnMut(Message)>>,
    pub on_parent_disconnect: Vec<Callback>,
    pub on_signal: Vec<(String, Box<dyn FnMut(&str)>)>,
    /// Parent messages that arrived before any listener (Node replays them).
    pending_parent: VecDeque<Message>,
    /// The parent channel as this process has seen it: open until the
    /// `disconnect` event was dispatched.
    parent_connected: Option<bool>,
    timers: BTreeMap<(u64, TimerId), Timer>,
    next_timer: u64,
    /// The timer whose callback is running, and whether it cleared itself.
    running_timer: Option<(TimerId, bool)>,
    /// Children whose `close` has not been dispatched: they keep us alive.
    pub children: HashMap<u32, Rc<ChildInner>>,
    /// Work for the next turn of the loop (replays).
    pub deferred: VecDeque<Callback>,
    inbox: Option<Rc<Pollable>>,
    /// Streams read by the loop (Node's `stream.on('data')`).
    readers: Vec<Reader>,
}

/// A stream the loop reads whenever it has data.
struct Reader {
    // Declared before `stream`: a pollable must be dropped before the
    // stream it watches (the host traps otherwise).
    pollable: Pollable,
    stream: InputStream,
    on_data: Box<dyn FnMut(&[u8])>,
    on_end: Option<Box<dyn FnOnce()>>,
}

thread_local! {
    static LOOP: RefCell<Loop> = RefCell::new(Loop::default());
}

/// Runs `f` on the loop state. `f` must not call back into user code.
pub(crate) fn with<R>(f: impl FnOnce(&mut Loop) -> R) -> R {
    LOOP.with(|l| f(&mut l.borrow_mut()))
}

fn parent_connected() -> bool {
    with(|l| *l.parent_connected.get_or_insert_with(wit::connected))
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
        l.timers.retain(|k, _| k.1 != id);
        if let Some((running, cleared)) = &mut l.running_timer
            && *running == id
        {
            *cleared = true;
        }
    });
}

fn add_timer(ms: u64, interval: Option<u64>, callback: Callback) -> TimerId {
    let deadline = monotonic_clock::now() + ms.max(1) * 1_000_000;
    with(|l| {
        l.next_timer += 1;
        let id = TimerId(l.next_timer);
        l.timers
            .insert((deadline, id), Timer { interval, callback });
        id
    })
}

/// Reads `stream` in the event loop: `on_data` for every chunk, `on_end`
/// at end-of-file (Node's `stream.on('data')` / `on('end')`). The stream
/// keeps the process alive until it ends.
pub fn on_data(
    stream: InputStream,
    on_data: impl FnMut(&[u8]) + 'static,
    on_end: impl FnOnce() + 'static,
) {
    let pollable = stream.subscribe();
    with(|l| {
        l.readers.push(Reader {
            stream,
            pollable,
            on_data: Box::new(on_data),
            on_end: Some(Box::new(on_end)),
        })
    });
}

/// Whether anything can still call back: a timer, a child that has not
/// closed, a stream being read, or a parent channel with a listener.
fn alive() -> bool {
    let (timers, children, listening) = with(|l| {
        (
            !l.timers.is_empty() || !l.readers.is_empty(),
            !l.children.is_empty(),
            !l.on_parent_message.is_empty() || !l.on_parent_disconnect.is_empty(),
        )
    });
    timers || children || (listening && parent_connected())
}

/// Reads what the streams have (never blocking) and calls their listeners.
fn run_readers() {
    let mut readers = with(|l| std::mem::take(&mut l.readers));
    let mut kept = Vec::with_capacity(readers.len());
    for mut reader in readers.drain(..) {
        let mut ended = false;
        loop {
            match reader.stream.read(crate::io::CHUNK) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => (reader.on_data)(&chunk),
                Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            if let Some(f) = reader.on_end.take() {
                f();
            }
        } else {
            kept.push(reader);
        }
    }
    with(|l| {
        kept.append(&mut l.readers);
        l.readers = kept;
    });
}

/// Dispatches events and timers until nothing keeps the process alive
/// (Node's event loop). Returns so `main` can end normally.
pub fn run() {
    loop {
        run_deferred();
        while let Some(event) = wit::try_next_event() {
            dispatch(event);
            run_deferred();
        }
        run_readers();
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
            let key = *l.timers.keys().next()?;
            (key.0 <= now).then(|| (key, l.timers.remove(&key).expect("key exists")))
        });
        let Some(((deadline, id), mut timer)) = due else {
            return;
        };
        with(|l| l.running_timer = Some((id, false)));
        (timer.callback)();
        let cleared = with(|l| l.running_timer.take().is_some_and(|(_, c)| c));
        if let Some(ms) = timer.interval
            && !cleared
        {
            let next = deadline.max(now) + ms * 1_000_000;
            with(|l| l.timers.insert((next, id), timer));
        }
    }
}

/// Blocks until an event arrives or the next timer is due.
fn wait() {
    let inbox = with(|l| {
        l.inbox
            .get_or_insert_with(|| Rc::new(wit::subscribe()))
            .clone()
    });
    let next = with(|l| l.timers.keys().next().map(|k| k.0));
    match next {
        Some(deadline) => {
            let timer = monotonic_clock::subscribe_instant(deadline);
            poll(&[&inbox, &timer]);
        }
        None => inbox.block(),
    }
}

/// Delivers one event to its listeners.
pub(crate) fn dispatch(event: Event) {
    match event {
        Event::Message(msg) => {
            let msg = Message::from(msg);
            let mut listeners = with(|l| std::mem::take(&mut l.on_parent_message));
            if listeners.is_empty() {
                with(|l| l.pending_parent.push_back(msg));
                return;
            }
            for f in &mut listeners {
                f(msg.clone());
            }
            with(|l| {
                listeners.append(&mut l.on_parent_message);
                l.on_parent_message = listeners;
            });
        }
        Event::Disconnect => {
            with(|l| l.parent_connected = Some(false));
            let mut listeners = with(|l| std::mem::take(&mut l.on_parent_disconnect));
            for f in &mut listeners {
                f();
            }
            with(|l| {
                listeners.append(&mut l.on_parent_disconnect);
                l.on_parent_disconnect = listeners;
            });
        }
        Event::Signal(name) => {
            let mut listeners = with(|l| std::mem::take(&mut l.on_signal));
            for (signal, f) in &mut listeners {
                if *signal == name {
                    f(&name);
                }
            }
            with(|l| {
                listeners.append(&mut l.on_signal);
                l.on_signal = listeners;
            });
        }
        Event::Child(event) => {
            // A child's output has all arrived by its `close`: deliver it
            // first, as Node emits 'data'/'end' before 'close'.
            if matches!(
                event.kind,
                crate::bindings::hive::process::types::ChildEventKind::Close(_)
            ) {
                run_readers();
            }
            let child = with(|l| l.children.get(&event.id).cloned());
            if let Some(child) = child {
                child.dispatch(event.kind.into());
            }
        }
    }
}

/// Replays parent messages queued before the first listener (next turn).
pub(crate) fn replay_parent_messages() {
    with(|l| {
        l.deferred.push_back(Box::new(|| {
            while let Some(msg) = with(|l| l.pending_parent.pop_front()) {
                dispatch(Event::Message(msg.into()));
            }
        }))
    });
}
