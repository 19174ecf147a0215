//! Message ports (Node's `MessageChannel`): two entangled ends, each with
//! its own queue, that any process of this host may hold and hand on.
//!
//! A port's queue is its own, not its holder's inbox: moving an end to
//! another process moves the queue with it (the messages already waiting
//! in it included) and needs nothing of either process. Whoever holds an
//! end waits on the queue's waker: one process holds an end at a time, and
//! a process is one task, so one waker is enough (as for an inbox).

use super::buffer::{BufferBytes, SharedBytes};
use super::event::Payload;
use super::flow::Flow;
use super::message;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// What a handle moved with a message costs in the receiver's flow.
const PER_HANDLE_COST: usize = 64;

/// How deep ports may nest: a port inside a message on a port inside a
/// message on a port, ..., none of them received yet. Dropping the outer
/// one drops the chain recursively, so its depth is bounded.
pub const MAX_NESTING: usize = 64;

/// A message on a port: the value, what it moves and what it shares.
#[derive(Debug)]
pub struct PortMessage {
    /// The value (copied).
    pub payload: Payload,
    /// The transfer list's items, in order.
    pub transferred: Vec<Transferred>,
    /// Shared buffers, in order.
    pub shared: Vec<Arc<SharedBytes>>,
}

impl PortMessage {
    /// A message of `payload` alone.
    pub fn plain(payload: Payload) -> PortMessage {
        PortMessage {
            payload,
            transferred: Vec::new(),
            shared: Vec::new(),
        }
    }

    /// What it costs in a port's flow: its payload, and a little for each
    /// handle (a transferred buffer's bytes are already charged to
    /// `--max-total-memory`).
    pub fn cost(&self) -> usize {
        message::cost(&self.payload)
            + (self.transferred.len() + self.shared.len()) * PER_HANDLE_COST
    }
}

/// One item of a transfer list, on its way.
#[derive(Debug)]
pub enum Transferred {
    /// A buffer's bytes (`None`: it was detached already, and arrives so).
    Buffer(Option<BufferBytes>),
    /// A port end.
    Port(PortEnd),
}

/// The queue of one end: what the other end posted and this end has not
/// taken.
#[derive(Default)]
struct Queue {
    messages: Mutex<VecDeque<(PortMessage, usize)>>,
    /// Set when either end closes: nothing more will be queued.
    closed: AtomicBool,
    /// The holder's task while it waits: woken when a message is queued or
    /// the channel closes.
    ready: AtomicWaker,
    /// What the posting end has queued here.
    flow: Arc<Flow>,
    /// While this queue's end is itself inside a message on a port: the
    /// queue that message waits in (empty while a process holds the end).
    held_in: Mutex<Weak<Queue>>,
}

impl Queue {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.wake();
    }

    /// Drops every queued message, giving their bytes back.
    fn discard(&self) {
        let dropped: Vec<_> = self.messages.lock().unwrap().drain(..).collect();
        for (_, cost) in &dropped {
            self.flow.release(*cost);
        }
        drop_messages(dropped.into_iter().map(|(msg, _)| msg).collect());
    }
}

/// One end of a message channel. Dropping it closes the channel (a process
/// that ends closes the ports it holds, and its peer sees `close`).
pub struct PortEnd {
    /// What was posted to this end.
    incoming: Arc<Queue>,
    /// The other end's queue, where this end posts.
    outgoing: Arc<Queue>,
    /// This end was closed (not only its peer): it cannot be transferred.
    closed_here: AtomicBool,
}

impl std::fmt::Debug for PortEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortEnd(..)")
    }
}

/// Node's `new MessageChannel()`: two entangled ends.
pub fn channel() -> (PortEnd, PortEnd) {
    let (a, b) = (Arc::new(Queue::default()), Arc::new(Queue::default()));
    (
        PortEnd {
            incoming: a.clone(),
            outgoing: b.clone(),
            closed_here: AtomicBool::new(false),
        },
        PortEnd {
            incoming: b,
            outgoing: a,
            closed_here: AtomicBool::new(false),
        },
    )
}

impl PortEnd {
    /// Whether `other` is this end's peer.
    pub fn is_peer_of(&self, other: &PortEnd) -> bool {
        Arc::ptr_eq(&self.outgoing, &other.incoming)
    }

    /// Whether `other` is this very end.
    pub fn is(&self, other: &PortEnd) -> bool {
        Arc::ptr_eq(&self.incoming, &other.incoming)
    }

    /// Queues `msg` at the other end. Dropped (with what it carries) when
    /// the channel is closed, as Node's `postMessage` on a closed port.
    /// Waits only past the flow's hard limit.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe once it waits: `msg` is dropped if the future is.
    pub async fn post(&self, msg: PortMessage) {
        let to = &self.outgoing;
        if to.closed.load(Ordering::Acquire) {
            return;
        }
        let cost = msg.cost();
        if to.flow.try_reserve(cost).is_none() {
            to.flow.reserve(cost).await;
        }
        let mut messages = to.messages.lock().unwrap();
        // Checked again under the lock: a close meanwhile discarded the
        // queue, and this message must not outlive it.
        if to.closed.load(Ordering::Acquire) {
            drop(messages);
            to.flow.release(cost);
            return;
        }
        for item in &msg.transferred {
            if let Transferred::Port(end) = item {
                if reaches(to, &end.incoming) {
                    // `to`'s own end is (through messages) inside this
                    // port's queue: queued here, each would hold the other
                    // for ever, unreadable. Nobody can ever take it: drop it
                    // (its ports close), as Node's collector would.
                    drop(messages);
                    to.flow.release(cost);
                    return;
                }
                *end.incoming.held_in.lock().unwrap() = Arc::downgrade(to);
            }
        }
        messages.push_back((msg, cost));
        drop(messages);
        to.ready.wake();
    }

    /// Takes the oldest message posted to this end.
    pub fn try_receive(&self) -> Option<PortMessage> {
        let (msg, cost) = self.incoming.messages.lock().unwrap().pop_front()?;
        self.incoming.flow.release(cost);
        Some(msg)
    }

    /// Whether nothing can arrive any more: the channel closed and
    /// nothing is queued.
    pub fn is_closed(&self) -> bool {
        self.incoming.closed.load(Ordering::Acquire)
            && self.incoming.messages.lock().unwrap().is_empty()
    }

    /// Closes the channel: this end's queue is dropped; the peer takes
    /// what it has, then sees it closed.
    pub fn close(&self) {
        self.closed_here.store(true, Ordering::Release);
        self.incoming.close();
        self.incoming.discard();
        self.outgoing.close();
    }

    /// This end is a process's again (taken out of a message).
    pub fn arrive(&self) {
        *self.incoming.held_in.lock().unwrap() = Weak::new();
    }

    /// Whether `ports` may travel in a message posted on this end: the
    /// queue it goes to is not already [`MAX_NESTING`] deep in messages.
    pub fn check_nesting(&self, ports: &[&PortEnd]) -> Result<(), TransferError> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut depth = 0;
        let mut at = self.outgoing.clone();
        loop {
            let next = at.held_in.lock().unwrap().upgrade();
            let Some(next) = next else { return Ok(()) };
            depth += 1;
            if depth >= MAX_NESTING {
                return Err(TransferError::TooDeep);
            }
            at = next;
        }
    }

    /// Whether this end was closed here (a port whose peer closed can
    /// still be transferred, as in Node).
    pub fn closed(&self) -> bool {
        self.closed_here.load(Ordering::Acquire)
    }

    /// Waits until a message is queued or the channel is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            let ready = || {
                self.incoming.closed.load(Ordering::Acquire)
                    || !self.incoming.messages.lock().unwrap().is_empty()
            };
            if ready() {
                return std::task::Poll::Ready(());
            }
            // Register, then look again: a post between the two is either
            // seen or wakes the registered task.
            self.incoming.ready.register(cx.waker());
            if ready() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Bytes queued at this end, not yet taken.
    pub fn queued(&self) -> usize {
        self.incoming.flow.queued()
    }
}

impl Drop for PortEnd {
    fn drop(&mut self) {
        self.close();
    }
}

thread_local! {
    /// Messages left to drop by the outermost `drop_messages` on this thread.
    static DROPPING: std::cell::RefCell<Option<Vec<PortMessage>>> =
        const { std::cell::RefCell::new(None) };
}

/// Drops `messages`, and the ports inside them, and the messages queued in
/// those, ... one after another rather than nested: a chain of ports each
/// inside a message on the next would otherwise recurse as deep as it is
/// long, and a guest can make it long enough to overflow a stack.
fn drop_messages(messages: Vec<PortMessage>) {
    let outermost = DROPPING.with(|d| {
        let mut d = d.borrow_mut();
        match d.as_mut() {
            Some(left) => {
                left.extend(messages);
                None
            }
            None => {
                *d = Some(Vec::new());
                Some(messages)
            }
        }
    });
    let Some(mut batch) = outermost else { return };
    while !batch.is_empty() {
        // Each drop may close ports, whose queues land in `DROPPING`.
        batch.clear();
        batch = DROPPING.with(|d| std::mem::take(d.borrow_mut().as_mut().expect("set above")));
    }
    DROPPING.with(|d| *d.borrow_mut() = None);
}

/// Whether `queue` is `target`, or is (through the messages that hold its
/// end, at most [`MAX_NESTING`] deep) inside it.
fn reaches(queue: &Arc<Queue>, target: &Arc<Queue>) -> bool {
    let mut at = queue.clone();
    for _ in 0..=MAX_NESTING {
        if Arc::ptr_eq(&at, target) {
            return true;
        }
        let next = at.held_in.lock().unwrap().upgrade();
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
}

/// Checks a transfer list as Node does, before anything moves: no item
/// twice, not the port posted on (`source`).
pub fn check_transfer<'a>(
    source: Option<&PortEnd>,
    ports: impl IntoIterator<Item = &'a PortEnd>,
) -> Result<(), TransferError> {
    let ports: Vec<&PortEnd> = ports.into_iter().collect();
    for (i, port) in ports.iter().enumerate() {
        if source.is_some_and(|s| s.is(port) || s.is_peer_of(port)) {
            // The peer too: queued in its own queue, a port would keep its
            // channel alive for ever (Node would entangle it with itself).
            return Err(TransferError::SourcePort);
        }
        if ports[..i].iter().any(|p| p.is(port)) {
            return Err(TransferError::Duplicate);
        }
    }
    Ok(())
}

/// Why a transfer list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferError {
    /// The port posted on (or its peer) is in its own transfer list.
    SourcePort,
    /// An item is there twice.
    Duplicate,
    /// A port that moved already, or is closed.
    Detached,
    /// It would nest ports deeper than [`MAX_NESTING`].
    TooDeep,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(msg: Option<PortMessage>) -> Option<String> {
        match msg?.payload {
            Payload::Json(t) => Some(t),
            Payload::Bytes(_) => None,
        }
    }

    #[tokio::test]
    async fn fifo_close_and_transfer() {
        let (a, b) = channel();
        for n in 0..3 {
            a.post(PortMessage::plain(Payload::Json(n.to_string())))
                .await;
        }
        assert_eq!(text(b.try_receive()).as_deref(), Some("0"));
        // An end moves with its queue.
        let moved = Box::new(b);
        assert_eq!(text(moved.try_receive()).as_deref(), Some("1"));
        a.close();
        assert!(!moved.is_closed(), "what was queued is still taken");
        assert_eq!(text(moved.try_receive()).as_deref(), Some("2"));
        assert!(moved.is_closed());
        // Posting on a closed channel drops the message.
        moved
            .post(PortMessage::plain(Payload::Json("9".into())))
            .await;
        assert!(a.try_receive().is_none());
        moved.ready().await;
    }

    #[tokio::test]
    async fn dropping_an_end_closes_the_channel() {
        let (a, b) = channel();
        a.post(PortMessage::plain(Payload::Json("1".into()))).await;
        drop(b);
        assert!(a.is_closed());
        assert_eq!(a.queued(), 0);
    }

    /// Two ends queued in each other's queues can never be read: the post
    /// that would close the loop drops its message, and everything is
    /// freed once the posting ends are gone.
    #[tokio::test]
    async fn ends_in_each_other_s_queues_are_freed() {
        let (x1, x2) = channel();
        let (y1, y2) = channel();
        let (weak_x, weak_y) = (Arc::downgrade(&x2.incoming), Arc::downgrade(&y1.incoming));
        let msg = |end| PortMessage {
            payload: Payload::Json("1".into()),
            transferred: vec![Transferred::Port(end)],
            shared: Vec::new(),
        };
        x1.post(msg(y1)).await;
        assert_eq!(y2.check_nesting(&[&x2]), Ok(()));
        y2.post(msg(x2)).await;
        drop(x1);
        drop(y2);
        assert!(weak_x.upgrade().is_none() && weak_y.upgrade().is_none());
    }

    /// A port handed on while its peer closes still gets what the peer
    /// posted before it closed (Node's hand-off).
    #[tokio::test]
    async fn a_port_in_transit_keeps_its_messages() {
        let (a, b) = channel();
        let (c, d) = channel();
        a.post(PortMessage::plain(Payload::Json("x".into()))).await;
        c.post(PortMessage {
            payload: Payload::Json("port".into()),
            transferred: vec![Transferred::Port(b)],
            shared: Vec::new(),
        })
        .await;
        a.close();
        let mut got = d.try_receive().unwrap();
        let Some(Transferred::Port(b)) = got.transferred.pop() else {
            panic!("the port came")
        };
        b.arrive();
        assert_eq!(text(b.try_receive()).as_deref(), Some("x"));
        assert!(b.is_closed());
    }

    /// A long chain of ports, each inside a message on the next, drops
    /// without recursing (it overflowed the stack at ~20,000 before).
    #[tokio::test]
    async fn a_long_chain_drops_iteratively() {
        let (first, mut held) = channel();
        let weak = Arc::downgrade(&held.incoming);
        for _ in 0..100_000 {
            let (a, b) = channel();
            a.post(PortMessage {
                payload: Payload::Json("1".into()),
                transferred: vec![Transferred::Port(held)],
                shared: Vec::new(),
            })
            .await;
            drop(a);
            held = b;
        }
        drop(held);
        drop(first);
        assert!(weak.upgrade().is_none());
    }

    /// Posting into a queue whose end is itself inside messages
    /// `MAX_NESTING` deep is refused (walking the chain must stay cheap).
    #[tokio::test]
    async fn nesting_is_bounded() {
        // c0's end is inside c1's queue, c1's inside c2's, ...
        let (poster, mut inner) = channel();
        let mut keep = Vec::new();
        let mut refused = false;
        for _ in 0..MAX_NESTING + 2 {
            let (a, b) = channel();
            let (x, _y) = channel();
            if poster.check_nesting(&[&x]).is_err() {
                refused = true;
                break;
            }
            a.post(PortMessage {
                payload: Payload::Json("1".into()),
                transferred: vec![Transferred::Port(inner)],
                shared: Vec::new(),
            })
            .await;
            keep.push(a);
            inner = b;
        }
        assert!(refused, "nesting past the limit is refused");
        drop((keep, inner));
    }

    #[test]
    fn transfer_lists_are_checked() {
        let (a, b) = channel();
        let (c, _d) = channel();
        assert_eq!(
            check_transfer(Some(&a), [&a]),
            Err(TransferError::SourcePort)
        );
        assert_eq!(
            check_transfer(Some(&a), [&b]),
            Err(TransferError::SourcePort)
        );
        assert_eq!(
            check_transfer(Some(&a), [&c, &c]),
            Err(TransferError::Duplicate)
        );
        assert_eq!(check_transfer(Some(&a), [&c]), Ok(()));
    }

    /// A reader waiting in `ready` on another task is woken by a post.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ready_is_woken() {
        let (a, b) = channel();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 1000 {
                b.ready().await;
                while let Some(m) = b.try_receive() {
                    got.push(text(Some(m)).unwrap());
                }
            }
            got
        });
        for n in 0..1000 {
            a.post(PortMessage::plain(Payload::Json(n.to_string())))
                .await;
        }
        let got = reader.await.unwrap();
        assert!(got.iter().enumerate().all(|(i, t)| *t == i.to_string()));
    }
}
