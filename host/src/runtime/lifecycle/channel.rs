//! The message channel between a parent and a child: the one send and the
//! one disconnect, shared by both ends, whatever is at each end — a local
//! process's inbox, or a wire to another program (a Node process's IPC
//! socket).

use super::child_event;
use crate::runtime::event::{ChildEvent, Envelope, Event, Payload, StartError};
use crate::runtime::flow::Flow;
use crate::runtime::inbox::Inbox;
use crate::runtime::message::{self, SendError};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The far end of a channel that is not a process of this host: it carries
/// messages to another program (a Node process over its IPC socket).
pub trait Wire: Send + Sync + 'static {
    /// Queues one message (with the handles sent with it) for the peer.
    /// `charge` is the flow it is charged to, to be released once the
    /// bytes are written.
    fn send(&self, envelope: Envelope, charge: (Arc<Flow>, usize));

    /// Closes the wire once what is queued is written: the peer sees the
    /// channel end.
    fn close(&self);

    /// Resolves once the wire is closed and everything queued before
    /// `close` is written (or can never be).
    fn flushed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// One end of a channel: where messages for that side go.
pub enum Peer {
    /// A process of this host: its inbox.
    Inbox(Arc<Inbox>),
    /// Another program, across a wire.
    Wire(Arc<dyn Wire>),
}

/// The message channel between a parent and a child (Node's IPC channel).
pub struct Channel {
    connected: AtomicBool,
    /// Whether the parent knows the channel closed: it disconnected it, or
    /// it took the child's `disconnect` event. Until then its `connected`
    /// still says open, as Node's `subprocess.connected` does (a child
    /// killed a moment ago is connected until its `disconnect` is emitted).
    parent_knows: super::super::event::Taken,
    /// The child's id, as its parent's events name it.
    id: u32,
    /// Parent to child.
    down: Arc<Flow>,
    /// Child to parent.
    up: Arc<Flow>,
    parent: Peer,
    /// `None` for a child that never started.
    child: Option<Peer>,
}

/// Which end of a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The parent (`child.send`).
    Parent,
    /// The child (`process.send`).
    Child,
}

impl Channel {
    /// An open channel between `parent` and child `id`.
    pub(super) fn open(id: u32, parent: Peer, child: Option<Peer>) -> Arc<Channel> {
        Arc::new(Channel {
            connected: AtomicBool::new(true),
            parent_knows: Default::default(),
            id,
            down: Arc::default(),
            up: Arc::default(),
            parent,
            child,
        })
    }

    /// Whether the channel is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Whether the channel is open as the parent sees it: until it closed
    /// it itself or took the child's `disconnect`.
    pub fn connected_for_parent(&self) -> bool {
        !self.parent_knows.is_set()
    }

    /// The parent closed the channel itself: it knows at once.
    pub fn disconnect_by_parent(&self) -> bool {
        self.parent_knows.mark();
        self.disconnect()
    }

    /// The child's `disconnect` event for its parent, which marks the
    /// parent as knowing when it is taken.
    pub(super) fn disconnect_event(&self) -> ChildEvent {
        ChildEvent::Disconnect(self.parent_knows.clone())
    }

    /// The child's inbox, when the child is a process of this host.
    pub(crate) fn child_inbox(&self) -> Option<&Arc<Inbox>> {
        match &self.child {
            Some(Peer::Inbox(inbox)) => Some(inbox),
            _ => None,
        }
    }

    /// Closes the channel; returns whether it was open.
    pub(super) fn close(&self) -> bool {
        self.connected.swap(false, Ordering::AcqRel)
    }

    /// Sends a message from end `from` to the other: `true` while the
    /// receiver is under the high-water mark (Node's `send` result).
    ///
    /// Never waits unless the receiver is over its hard limit (or the host
    /// over its total): the common case is one reservation and one push.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is queued until the reservation is made.
    pub async fn send(&self, from: End, payload: Payload) -> Result<bool, SendError> {
        let cost = message::validate(&payload)?;
        if message::is_internal(&payload) && self.to_inbox(from) && self.connected() {
            // Node's own kind of message: a process of this host never sees
            // it as a `message` (a Node peer handles it as Node's).
            return Ok(true);
        }
        self.forward(from, Envelope::from(payload), cost).await
    }

    /// Whether what end `from` sends goes to a local inbox (a process of
    /// this host, which can take handles), not across a wire.
    pub fn to_inbox(&self, from: End) -> bool {
        match from {
            End::Parent => matches!(self.child, Some(Peer::Inbox(_))),
            End::Child => matches!(self.parent, Peer::Inbox(_)),
        }
    }

    /// [`Channel::send`] for a message already validated (one decoded from
    /// a wire, or one the host sends with handles), costing `cost`.
    pub async fn forward(
        &self,
        from: End,
        envelope: Envelope,
        cost: usize,
    ) -> Result<bool, SendError> {
        if !self.connected() {
            return Err(SendError::ChannelClosed);
        }
        let (flow, to) = match from {
            End::Parent => (
                &self.down,
                self.child.as_ref().ok_or(SendError::NeverStarted)?,
            ),
            End::Child => (&self.up, &self.parent),
        };
        let room = match flow.try_reserve(cost) {
            Some(room) => room,
            None => flow.reserve(cost).await,
        };
        match to {
            Peer::Inbox(inbox) => {
                let event = match from {
                    End::Parent => Event::Message(envelope),
                    End::Child => child_event(self.id, ChildEvent::Message(envelope)),
                };
                inbox.push(event, Some((flow.clone(), cost)));
            }
            Peer::Wire(wire) => wire.send(envelope, (flow.clone(), cost)),
        }
        Ok(room)
    }

    /// Closes the channel from either end, and tells both: the parent gets
    /// the child's `disconnect`, the child its own, a wire is closed.
    /// Returns whether it was open (only the first caller reports).
    pub fn disconnect(&self) -> bool {
        if !self.close() {
            return false;
        }
        match &self.parent {
            Peer::Inbox(parent) => parent.push(child_event(self.id, self.disconnect_event()), None),
            Peer::Wire(wire) => wire.close(),
        }
        match &self.child {
            Some(Peer::Inbox(child)) => child.push(Event::Disconnect, None),
            Some(Peer::Wire(wire)) => wire.close(),
            None => {}
        }
        true
    }

    /// Resolves once every message sent across a wire end has been
    /// written, after [`Channel::disconnect`] (at once for local ends).
    pub async fn flushed(&self) {
        let wires = [Some(&self.parent), self.child.as_ref()];
        for peer in wires.into_iter().flatten() {
            if let Peer::Wire(wire) = peer {
                wire.flushed().await;
            }
        }
    }

    /// The peer at end `from` sent something that is not a message (a line
    /// that is not JSON, a frame past the size limit): an `error` event on
    /// the child for its parent, whose channel keeps working.
    pub fn protocol_error(&self, from: End, message: String) {
        match (from, &self.parent) {
            (End::Child, Peer::Inbox(parent)) => {
                let error = StartError {
                    code: "EPROTO".into(),
                    errno: Some(-libc::EPROTO),
                    syscall: Some("read".into()),
                    path: None,
                    message,
                    spawnargs: Vec::new(),
                };
                parent.push(
                    child_event(self.id, ChildEvent::Error(Box::new(error))),
                    None,
                );
            }
            _ => tracing::warn!(
                "the parent's IPC channel carried something that is not a message: {message}"
            ),
        }
    }
}
