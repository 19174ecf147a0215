//! A process's event queue: messages and signals from its parent, and the
//! events of all its children, in arrival order.
//!
//! Taking the next event is O(1) however many children there are (the
//! merged-inbox design). A child handle can also take *its own* next event,
//! also in O(1): each child's queued events are indexed by their place in
//! the queue, and one taken out of turn leaves a hole the merged take
//! skips. So a flood of unread messages from one child never slows taking
//! another's events.

use super::event::{ChildEvent, Event};
use super::flow::Flow;
use futures_util::task::AtomicWaker;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

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
    /// In arrival order; `None` where an event was taken out of turn.
    queue: VecDeque<Option<Entry>>,
    /// The sequence number of `queue[0]` (of the next event, when empty).
    base: u64,
    /// The events in `queue` (its `Some`s).
    live: usize,
    /// Each child's queued events, by sequence number, in order.
    per_child: HashMap<u32, VecDeque<u64>, BuildHasherDefault<IdHasher>>,
    /// An empty buffer to swap with `incoming`, keeping its capacity.
    spare: VecDeque<Option<Entry>>,
    /// `after` work of events taken, run when the receiver comes back.
    deferred: Vec<After>,
}

/// The event queue of one process.
///
/// Senders push to `incoming`; the owner moves everything over to `local` in
/// one swap when it runs dry, so a sender and the receiver meet on a lock
/// once per batch instead of once per message.
///
/// Only the owning process waits on its inbox (its `next-event`, its child
/// handles, its pollables), and a process is one task, so one waker is
/// enough: no waiter list, no lock on the wake-up path.
#[derive(Default)]
pub struct Inbox {
    incoming: Mutex<VecDeque<Option<Entry>>>,
    local: Mutex<Local>,
    /// The owning task, while it waits in `wait_until`.
    owner: AtomicWaker,
    /// Events queued (in either half), so `has_any` takes no lock.
    queued: AtomicUsize,
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
        let mut incoming = self.incoming.lock().unwrap();
        incoming.push_back(Some(entry));
        // Counted under the lock, so whoever swaps `incoming` out finds every
        // entry in it counted (`refill` relies on that); and before the
        // wake-up, so a waiter that registers after it sees the count.
        self.queued.fetch_add(1, Ordering::SeqCst);
        drop(incoming);
        self.owner.wake();
    }

    /// Moves everything pushed so far into the owner's queue.
    fn refill(&self, local: &mut Local) {
        // `queued` counts both halves: if the owner's queue holds all of
        // them, nothing waits in `incoming` and its lock can be skipped.
        if self.queued.load(Ordering::SeqCst) == local.live {
            return;
        }
        std::mem::swap(&mut *self.incoming.lock().unwrap(), &mut local.spare);
        let Local {
            queue,
            base,
            live,
            per_child,
            spare,
            ..
        } = local;
        let first = *base + queue.len() as u64;
        for (i, entry) in spare.iter().enumerate() {
            if let Some(Entry {
                event: Event::Child { id, .. },
                ..
            }) = entry
            {
                per_child
                    .entry(*id)
                    .or_default()
                    .push_back(first + i as u64);
            }
        }
        *live += spare.len();
        if queue.is_empty() {
            // The usual case: take the batch whole instead of moving it.
            std::mem::swap(queue, spare);
        } else {
            queue.extend(spare.drain(..));
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
        self.taking(|local| {
            if local.live == 0 {
                self.refill(local);
            }
            let entry = loop {
                let slot = local.queue.pop_front()?;
                local.base += 1;
                if let Some(entry) = slot {
                    break entry;
                }
            };
            if let Event::Child { id, .. } = &entry.event {
                unindex(&mut local.per_child, *id);
            }
            Some(self.took(local, entry))
        })
    }

    /// Takes the oldest event of child `id`, if any: O(1), through the index.
    pub fn try_pop_child(&self, id: u32) -> Option<ChildEvent> {
        self.taking(|local| {
            self.refill(local);
            let seq = *local.per_child.get(&id)?.front()?;
            unindex(&mut local.per_child, id);
            let at = usize::try_from(seq - local.base).expect("indexed events are queued");
            let entry = local.queue[at].take().expect("an indexed event is there");
            // Holes at the front are gone for good.
            while local.queue.front().is_some_and(Option::is_none) {
                local.queue.pop_front();
                local.base += 1;
            }
            match self.took(local, entry) {
                Event::Child { event, .. } => Some(event),
                _ => unreachable!("the index holds child events only"),
            }
        })
    }

    /// Runs the `after` work of the events taken before — the receiver is
    /// back, so it has handled them — then `take` on the owner's queue, so
    /// that what the work queues is taken now. The work runs outside the
    /// lock, since it may push.
    fn taking<R>(&self, take: impl FnOnce(&mut Local) -> R) -> R {
        let mut local = self.local.lock().unwrap();
        if !local.deferred.is_empty() {
            let deferred = std::mem::take(&mut local.deferred);
            drop(local);
            for after in deferred {
                after();
            }
            local = self.local.lock().unwrap();
        }
        take(&mut local)
    }

    /// An entry left the owner's queue: keep the counts.
    fn took(&self, local: &mut Local, entry: Entry) -> Event {
        local.live -= 1;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        entry.take(local)
    }

    /// Drops every queued event — the owner is gone — giving their bytes
    /// back to the senders' flows (and the host-wide budget) at once.
    pub fn discard(&self) {
        let mut local = self.local.lock().unwrap();
        self.refill(&mut local);
        local.base += local.queue.len() as u64;
        let entries: Vec<Entry> = local.queue.drain(..).flatten().collect();
        local.live = 0;
        local.per_child.clear();
        self.queued.fetch_sub(entries.len(), Ordering::SeqCst);
        drop(local);
        for entry in entries {
            if let Some((flow, cost)) = entry.charge {
                flow.release(cost);
            }
        }
    }

    /// Whether any event is queued.
    pub fn has_any(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }

    /// Whether an event of child `id` is queued.
    pub fn has_child(&self, id: u32) -> bool {
        self.has_any() && self.local().per_child.contains_key(&id)
    }

    /// Waits until `ready()` holds, re-checking after every push.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                return Poll::Ready(());
            }
            // Register, then look again: a push between the two either is
            // seen by `ready` or wakes the registered waker.
            self.owner.register(cx.waker());
            if ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Wakes the owner so it re-checks what it waits for (used when something
    /// other than a push changes it, such as the last child closing).
    pub fn wake(&self) {
        self.owner.wake();
    }
}

/// Hashes a child id (unique, sequential) with one multiplication: SipHash
/// cost more than the rest of taking a child's event.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Drops the oldest index entry of child `id` (the one just taken).
fn unindex(per_child: &mut HashMap<u32, VecDeque<u64>, BuildHasherDefault<IdHasher>>, id: u32) {
    if let Some(seqs) = per_child.get_mut(&id) {
        seqs.pop_front();
        if seqs.is_empty() {
            per_child.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::event::Payload;

    fn child(id: u32, n: u32) -> Event {
        Event::Child {
            id,
            event: ChildEvent::Message(Payload::Json(n.to_string()).into()),
        }
    }

    /// The text of a child's JSON message.
    fn text(event: Option<ChildEvent>) -> Option<String> {
        match event? {
            ChildEvent::Message(env) => match env.payload {
                Payload::Json(t) => Some(t),
                Payload::Bytes(_) => None,
            },
            _ => None,
        }
    }

    #[test]
    fn merged_order_and_per_child_take() {
        let inbox = Inbox::default();
        inbox.push(child(1, 1), None);
        inbox.push(child(2, 2), None);
        inbox.push(Event::Disconnect, None);
        inbox.push(child(1, 3), None);
        assert!(inbox.has_child(2));
        assert_eq!(text(inbox.try_pop_child(1)).as_deref(), Some("1"));
        assert!(matches!(inbox.try_pop(), Some(Event::Child { id: 2, .. })));
        assert!(!inbox.has_child(2));
        assert!(matches!(inbox.try_pop(), Some(Event::Disconnect)));
        assert!(matches!(
            inbox.try_pop_child(1),
            Some(ChildEvent::Message(_))
        ));
        assert!(inbox.try_pop().is_none());
        assert!(!inbox.has_any());
    }

    /// A dead receiver's queue gives its bytes back at once.
    #[test]
    fn discard_releases_the_flows() {
        let inbox = Inbox::default();
        let flow = Arc::new(Flow::default());
        for _ in 0..3 {
            block_on(flow.reserve(100));
            inbox.push(child(1, 1), Some((flow.clone(), 100)));
        }
        inbox.try_pop_child(1);
        assert_eq!(flow.queued(), 200);
        inbox.discard();
        assert_eq!(flow.queued(), 0);
        assert!(!inbox.has_any() && !inbox.has_child(1));
        assert!(inbox.try_pop().is_none());
        inbox.push(child(2, 9), None);
        assert!(inbox.try_pop_child(2).is_some());
    }

    /// Out-of-turn takes leave holes the merged take skips, across refills.
    #[test]
    fn holes_keep_the_order() {
        let inbox = Inbox::default();
        let merged = |e: Option<Event>| match e {
            Some(Event::Child { id, event }) => format!("{id}:{}", text(Some(event)).unwrap()),
            other => format!("{other:?}").chars().take(20).collect(),
        };
        for (id, n) in [(1, 1), (2, 2), (1, 3), (2, 4), (1, 5)] {
            inbox.push(child(id, n), None);
        }
        assert_eq!(text(inbox.try_pop_child(2)).as_deref(), Some("2"));
        inbox.push(child(2, 6), None);
        assert_eq!(text(inbox.try_pop_child(2)).as_deref(), Some("4"));
        assert_eq!(merged(inbox.try_pop()), "1:1");
        assert_eq!(text(inbox.try_pop_child(1)).as_deref(), Some("3"));
        assert_eq!(merged(inbox.try_pop()), "1:5");
        assert_eq!(merged(inbox.try_pop()), "2:6");
        assert!(inbox.try_pop().is_none());
        assert!(inbox.try_pop_child(1).is_none());
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

    /// Senders on other threads, the owner waiting in `wait_until` between
    /// takes: every event arrives, in each sender's order, with no wake-up
    /// lost (a lost one would hang this test).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_lose_nothing() {
        const SENDERS: u32 = 3;
        const EACH: u32 = 20_000;
        let inbox = Arc::new(Inbox::default());
        let senders: Vec<_> = (1..=SENDERS)
            .map(|id| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        inbox.push(child(id, n), None);
                    }
                })
            })
            .collect();
        let mut next = [0u32; SENDERS as usize + 1];
        let mut taken = 0;
        while taken < SENDERS * EACH {
            // Alternate the merged take and a per-child take.
            let id = taken % SENDERS + 1;
            let by_child = || {
                inbox
                    .try_pop_child(id)
                    .map(|event| Event::Child { id, event })
            };
            let event = if taken % 2 == 0 {
                inbox.try_pop()
            } else {
                by_child().or_else(|| inbox.try_pop())
            };
            match event {
                Some(Event::Child { id, event }) => {
                    let n = text(Some(event)).expect("a message");
                    assert_eq!(n, next[id as usize].to_string(), "child {id} out of order");
                    next[id as usize] += 1;
                    taken += 1;
                }
                Some(_) => panic!("only child messages were sent"),
                None => inbox.wait_until(|| inbox.has_any()).await,
            }
        }
        for sender in senders {
            sender.join().unwrap();
        }
        assert!(!inbox.has_any());
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
