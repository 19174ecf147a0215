//! A process's event queue: messages and signals from its parent, and the
//! events of all its children, in arrival order.
//!
//! Taking the next event is O(1) however many children there are (the
//! merged-inbox design). A child handle can also take *its own* next event;
//! that scans only the queued events, never the children.

use crate::bindings::{ChildEventKind, Event};
use crate::message::Flow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Work to do once the receiver has handled an event (see [`Inbox::push_then`]).
pub type After = Box<dyn FnOnce() + Send>;

/// An event waiting in an inbox, with the flow it is charged to.
struct Entry {
    event: Event,
    charge: Option<(Arc<Flow>, usize)>,
    after: Option<After>,
}

impl Entry {
    fn take(self, local: &mut Local) -> Event {
        if let Some((flow, cost)) = self.charge {
            flow.release(cost);
        }
        if let Some(after) = self.after {
            local.deferred.push(after);
        }
        self.event
    }
}

/// The owner's side of the queue: only the owning process takes from it,
/// so its lock is uncontended.
#[derive(Default)]
struct Local {
    queue: VecDeque<Entry>,
    /// Queued events per child id, so a child's pollable is O(1).
    per_child: HashMap<u32, usize>,
    /// An empty buffer to swap with `incoming`, keeping its capacity.
    spare: VecDeque<Entry>,
    /// `after` work of events taken, run when the receiver comes back.
    deferred: Vec<After>,
}

/// The event queue of one process.
///
/// Senders push to `incoming`; the owner moves everything over to `local` in
/// one swap when it runs dry, so a sender and the receiver meet on a lock
/// once per batch instead of once per message.
#[derive(Default)]
pub struct Inbox {
    incoming: Mutex<VecDeque<Entry>>,
    local: Mutex<Local>,
    arrived: Notify,
    /// Tasks inside `wait_until`; a push wakes only when there are some (a
    /// `Notify` costs a lock, and most pushes find their receiver busy).
    waiters: AtomicUsize,
    /// Events queued (in either half), so `has_any` takes no lock.
    queued: AtomicUsize,
}

/// Counts a waiter for as long as it waits, even if its future is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inbox {
    /// Queues an event. `charge` is released when the event is taken.
    pub fn push(&self, event: Event, charge: Option<(Arc<Flow>, usize)>) {
        self.push_entry(Entry {
            event,
            charge,
            after: None,
        });
    }

    /// Queues an event and work to run once the receiver has handled it —
    /// that is, when it next comes back for an event. Node drains a child's
    /// unread output after its `exit` listeners ran; this is how Hive knows
    /// when that is.
    pub fn push_then(&self, event: Event, after: After) {
        self.push_entry(Entry {
            event,
            charge: None,
            after: Some(after),
        });
    }

    fn push_entry(&self, entry: Entry) {
        self.incoming.lock().unwrap().push_back(entry);
        // Counted before the handshake in `wake_if_waiting`, so a waiter that
        // misses the wake-up sees the count.
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.wake_if_waiting();
    }

    /// Runs the `after` work of events handled so far.
    fn run_deferred(&self) {
        let work = std::mem::take(&mut self.local.lock().unwrap().deferred);
        for after in work {
            after();
        }
    }

    /// Moves everything pushed so far into the owner's queue.
    fn refill(&self, local: &mut Local) {
        std::mem::swap(&mut *self.incoming.lock().unwrap(), &mut local.spare);
        let Local {
            queue,
            per_child,
            spare,
            ..
        } = local;
        for entry in spare.drain(..) {
            if let Event::Child(child) = &entry.event {
                *per_child.entry(child.id).or_default() += 1;
            }
            queue.push_back(entry);
        }
    }

    fn wake_if_waiting(&self) {
        // Pairs with the fence in `wait_until`: either the waiter sees the
        // new event, or we see the waiter (a Dekker handshake).
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.arrived.notify_waiters();
        }
    }

    /// The owner's queue, with everything pushed so far moved into it.
    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        let mut local = self.local.lock().unwrap();
        self.refill(&mut local);
        local
    }

    /// Takes the oldest event, if any.
    pub fn try_pop(&self) -> Option<Event> {
        let mut local = self.local.lock().unwrap();
        let deferred = std::mem::take(&mut local.deferred);
        if local.queue.is_empty() {
            self.refill(&mut local);
        }
        let event = local.queue.pop_front().map(|entry| {
            if let Event::Child(child) = &entry.event {
                uncount(&mut local.per_child, child.id);
            }
            self.queued.fetch_sub(1, Ordering::SeqCst);
            entry.take(&mut local)
        });
        drop(local);
        for after in deferred {
            after();
        }
        event
    }

    /// Takes the oldest event of child `id`, if any.
    pub fn try_pop_child(&self, id: u32) -> Option<ChildEventKind> {
        self.run_deferred();
        let mut local = self.local();
        if !local.per_child.contains_key(&id) {
            return None;
        }
        let at = local
            .queue
            .iter()
            .position(|e| matches!(&e.event, Event::Child(c) if c.id == id))?;
        let entry = local.queue.remove(at)?;
        uncount(&mut local.per_child, id);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        match entry.take(&mut local) {
            Event::Child(child) => Some(child.kind),
            _ => unreachable!("position matched a child event"),
        }
    }

    /// Whether any event is queued.
    pub fn has_any(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }

    /// Whether an event of child `id` is queued.
    pub fn has_child(&self, id: u32) -> bool {
        self.local().per_child.contains_key(&id)
    }

    /// Waits until `ready()` holds, re-checking after every push.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        if ready() {
            return;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiters);
        loop {
            let arrived = self.arrived.notified();
            fence(Ordering::SeqCst);
            if ready() {
                return;
            }
            arrived.await;
        }
    }

    /// Wakes every waiter so it re-checks its condition (used when something
    /// other than a push changes it, such as the last child closing).
    pub fn wake(&self) {
        self.wake_if_waiting();
    }
}

fn uncount(per_child: &mut HashMap<u32, usize>, id: u32) {
    if let Some(n) = per_child.get_mut(&id) {
        *n -= 1;
        if *n == 0 {
            per_child.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{ChildEvent, Message};

    fn child(id: u32, n: u32) -> Event {
        Event::Child(ChildEvent {
            id,
            kind: ChildEventKind::Message(Message::Json(n.to_string())),
        })
    }

    #[test]
    fn merged_order_and_per_child_take() {
        let inbox = Inbox::default();
        inbox.push(child(1, 1), None);
        inbox.push(child(2, 2), None);
        inbox.push(Event::Disconnect, None);
        inbox.push(child(1, 3), None);
        assert!(inbox.has_child(2));
        assert!(matches!(
            inbox.try_pop_child(1),
            Some(ChildEventKind::Message(Message::Json(t))) if t == "1"
        ));
        assert!(matches!(inbox.try_pop(), Some(Event::Child(c)) if c.id == 2));
        assert!(!inbox.has_child(2));
        assert!(matches!(inbox.try_pop(), Some(Event::Disconnect)));
        assert!(matches!(
            inbox.try_pop_child(1),
            Some(ChildEventKind::Message(_))
        ));
        assert!(inbox.try_pop().is_none());
        assert!(!inbox.has_any());
    }

    #[test]
    fn taking_releases_the_flow() {
        let inbox = Inbox::default();
        let flow = Arc::new(Flow::default());
        let cost = 100;
        block_on(flow.reserve(cost));
        inbox.push(Event::Disconnect, Some((flow.clone(), cost)));
        assert_eq!(flow.queued(), cost);
        inbox.try_pop();
        assert_eq!(flow.queued(), 0);
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
