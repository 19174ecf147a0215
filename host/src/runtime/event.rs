//! What a process receives, in the runtime's own words: messages (an
//! envelope: a payload and the handles moved with it), control events and
//! the events of its children. Converted to the WIT's `event` only when a
//! guest takes one (at the interface edge), so that what the WIT does not name — a
//! socket, a file descriptor, a Node peer's frame — can travel too.

use super::exit::ExitStatus;
use super::signal::Signal;
use std::any::Any;

/// A message's data, as the sender gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One JSON value (Node's default `json` serialization).
    Json(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Payload {
    /// The payload's size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Json(text) => text.len(),
            Payload::Bytes(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Something moved from the sender to the receiver with a message: a
/// socket, a file descriptor. Whoever takes the message owns it; dropping
/// it (a receiver that is gone, a guest that cannot hold one yet) closes it.
pub struct Handle(pub Box<dyn Any + Send>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle(..)")
    }
}

/// A message as it waits in an inbox.
#[derive(Debug)]
pub struct Envelope {
    /// What was sent.
    pub payload: Payload,
    /// Handles sent with it (empty for plain messages: no allocation).
    pub handles: Vec<Handle>,
}

impl From<Payload> for Envelope {
    fn from(payload: Payload) -> Envelope {
        Envelope {
            payload,
            handles: Vec::new(),
        }
    }
}

/// An event in a process's inbox.
#[derive(Debug)]
pub enum Event {
    /// A message from the parent.
    Message(Envelope),
    /// The channel to the parent closed.
    Disconnect,
    /// A signal this process handles arrived.
    Signal(Signal),
    /// An HTTP request to server `server` of this process (the request
    /// and its reply channel, as `crate::http` made them).
    Request {
        /// The server's id.
        server: u32,
        /// The request, opened by `crate::http` when the guest takes it.
        request: Handle,
    },
    /// A process this one monitors ended (`monitor` is the monitor's id).
    Down {
        /// The monitor's id.
        monitor: u32,
        /// The process that ended.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },
    /// Something happened to child `id`.
    Child {
        /// The child's id (its pid, or the id of one that never started).
        id: u32,
        /// What happened.
        event: ChildEvent,
    },
}

/// What happened to a child, in Node's terms (the order is `lifecycle`'s).
#[derive(Debug)]
pub enum ChildEvent {
    /// The child started.
    Spawn,
    /// A cluster worker is running.
    Online,
    /// A cluster worker listens on a shared listener bound to this address.
    Listening(std::net::SocketAddr),
    /// The child sent a message.
    Message(Envelope),
    /// The channel to the child closed. Taking it marks the parent as
    /// knowing (`Channel::connected_for_parent`).
    Disconnect(Taken),
    /// The child ended (its stdio may still be open). Taking it marks the
    /// child's status as known to its parent ([`Taken`]).
    Exit(ExitStatus, Taken),
    /// The child ended and its stdio closed: its last event.
    Close(ExitStatus),
    /// The child failed to start (or a message to one that never started failed).
    Error(Box<StartError>),
}

/// Node's error object for a child that failed (`spawn x ENOENT`, or a
/// write to a child that never started, `write EPIPE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// `ENOENT`, `EACCES`, `EPIPE`, …
    pub code: String,
    /// The negative errno, as Node's `err.errno`.
    pub errno: Option<i32>,
    /// The failed call (`spawn x`, `write`).
    pub syscall: Option<String>,
    /// The program or module that failed.
    pub path: Option<String>,
    /// The whole message, as Node formats it.
    pub message: String,
    /// The arguments it was started with.
    pub spawnargs: Vec<String>,
}

/// Set when the event that carries it is taken from its inbox: the child's
/// `exit`, after which its parent may see how it ended (Node sets
/// `exitCode` as it emits `exit`).
#[derive(Debug, Clone, Default)]
pub struct Taken(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Taken {
    /// Marks it taken.
    pub fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether it was taken.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}
