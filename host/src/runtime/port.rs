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
use super::message::{self, SendError};
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a handle moved with a message costs in the receiver's flow.
const PER_HANDLE_COST: usize = 64;

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

    /// Whether it moves or shares anything.
    pub fn has_handles(&self) -> bool {
        !self.transferred.is_empty() || !self.shared.is_empty()
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
    /// This queue's end is itself in a message, held by no process.
    in_transit: AtomicBool,
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

    /// Checks a payload before anything is detached for it.
    pub fn validate(payload: &Payload) -> Result<(), SendError> {
        message::validate(payload).map(drop)
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
        if self.outgoing.in_transit.load(Ordering::Acquire) {
            // The peer is inside a message, and nothing more can come to
            // it: what it holds goes now. Two ends queued in each other's
            // queues would otherwise keep each other (and every buffer
            // with them, charged to --max-total-memory) for ever.
            self.outgoing.discard();
        }
    }

    /// This end is put in a message (a transfer).
    pub fn depart(&self) {
        self.incoming.in_transit.store(true, Ordering::Release);
    }

    /// This end is a process's again (taken out of a message).
    pub fn arrive(&self) {
        self.incoming.in_transit.store(false, Ordering::Release);
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

    /// Two ends queued in each other's queues are freed once the ends
    /// that posted them close: no cycle outlives its processes.
    #[tokio::test]
    async fn ends_in_each_other_s_queues_are_freed() {
        let (x1, x2) = channel();
        let (y1, y2) = channel();
        let (weak_x, weak_y) = (Arc::downgrade(&x2.incoming), Arc::downgrade(&y1.incoming));
        y1.depart();
        let msg = |end| PortMessage {
            payload: Payload::Json("1".into()),
            transferred: vec![Transferred::Port(end)],
            shared: Vec::new(),
        };
        x1.post(msg(y1)).await;
        x2.depart();
        y2.post(msg(x2)).await;
        drop(x1);
        drop(y2);
        assert!(weak_x.upgrade().is_none() && weak_y.upgrade().is_none());
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
