//! The message channel between a parent and a child: the one send and the
//! one disconnect, shared by both ends.

use crate::runtime::event::{ChildEvent, Envelope, Event, Payload};
use crate::runtime::flow::Flow;
use crate::runtime::inbox::Inbox;
use crate::runtime::message::{self, SendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The message channel between a parent and a child (Node's IPC channel).
pub struct Channel {
    connected: AtomicBool,
    /// The child's id, as its parent's events name it.
    id: u32,
    /// Parent to child.
    down: Arc<Flow>,
    /// Child to parent.
    up: Arc<Flow>,
    parent: Arc<Inbox>,
    /// `None` for a child that never started.
    child: Option<Arc<Inbox>>,
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
    pub(super) fn open(id: u32, parent: Arc<Inbox>, child: Option<Arc<Inbox>>) -> Arc<Channel> {
        Arc::new(Channel {
            connected: AtomicBool::new(true),
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

    /// The child's inbox (`None` for a child that never started).
    pub(crate) fn child_inbox(&self) -> Option<&Arc<Inbox>> {
        self.child.as_ref()
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
        let envelope = Envelope::from(payload);
        let event = match from {
            End::Parent => Event::Message(envelope),
            End::Child => child_event(self.id, ChildEvent::Message(envelope)),
        };
        to.push(event, Some((flow.clone(), cost)));
        Ok(room)
    }

    /// Closes the channel from either end, and tells both: the parent gets
    /// the child's `disconnect`, the child its own. Returns whether it was
    /// open (only the first caller reports).
    pub fn disconnect(&self) -> bool {
        if !self.close() {
            return false;
        }
        self.parent
            .push(child_event(self.id, ChildEvent::Disconnect), None);
        if let Some(child) = &self.child {
            child.push(Event::Disconnect, None);
        }
        true
    }
}

pub(super) fn child_event(id: u32, event: ChildEvent) -> Event {
    Event::Child { id, event }
}
