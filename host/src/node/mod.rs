//! Node.js peers: Node's IPC wire protocol, so that a guest can fork a real
//! `node child.js` and `host run` can be a Node program's forked child.
//!
//! The channel is an `AF_UNIX` stream socket whose descriptor number the
//! child finds in `NODE_CHANNEL_FD`, and `NODE_CHANNEL_SERIALIZATION_MODE`
//! says how messages are written: `json` ([`json`]) or `advanced` ([`v8`]).
//! A Node peer is one more end of a runtime channel ([`peer`]).

pub mod json;
pub mod peer;
pub mod v8;

use crate::runtime::unix;
use std::os::fd::{AsRawFd, OwnedFd};

/// The variable that names the channel's descriptor.
pub const CHANNEL_FD: &str = "NODE_CHANNEL_FD";

/// The variable that names the serialization.
pub const SERIALIZATION_MODE: &str = "NODE_CHANNEL_SERIALIZATION_MODE";

/// How messages are written on a channel (Node's `serialization` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serialization {
    /// One `JSON.stringify` line per message (Node's default).
    #[default]
    Json,
    /// V8's structured-clone format, length-prefixed.
    Advanced,
}

impl Serialization {
    /// The name Node uses.
    pub fn name(self) -> &'static str {
        match self {
            Serialization::Json => "json",
            Serialization::Advanced => "advanced",
        }
    }

    /// Parses Node's name (`NODE_CHANNEL_SERIALIZATION_MODE`).
    pub fn parse(name: &str) -> Option<Serialization> {
        match name {
            "json" => Some(Serialization::Json),
            "advanced" => Some(Serialization::Advanced),
            _ => None,
        }
    }
}

/// A channel for a Node child about to start: our end, the child's end
/// (to be inherited, see [`unix::SPAWNING`]), and the variables that tell
/// the child where it is.
pub struct ChildChannel {
    /// Our end.
    pub ours: std::os::unix::net::UnixStream,
    /// The child's end.
    pub theirs: OwnedFd,
}

impl ChildChannel {
    /// A new socket pair.
    pub fn new() -> std::io::Result<ChildChannel> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        Ok(ChildChannel {
            ours,
            theirs: theirs.into(),
        })
    }

    /// The variables the child needs.
    pub fn env(&self, serialization: Serialization) -> [(String, String); 2] {
        [
            (CHANNEL_FD.into(), self.theirs.as_raw_fd().to_string()),
            (SERIALIZATION_MODE.into(), serialization.name().into()),
        ]
    }
}

/// The channel to a Node parent, when this host was started as one's
/// child (`NODE_CHANNEL_FD` set): `None` when it was not.
pub fn parent_channel() -> Option<Result<(OwnedFd, Serialization), String>> {
    let fd = std::env::var(CHANNEL_FD).ok()?;
    let mode = std::env::var(SERIALIZATION_MODE).unwrap_or_else(|_| "json".into());
    Some((|| {
        let serialization = Serialization::parse(&mode).ok_or_else(|| {
            format!("`{SERIALIZATION_MODE}={mode}`: expected `json` or `advanced`")
        })?;
        let number: i32 = fd
            .parse()
            .map_err(|_| format!("`{CHANNEL_FD}={fd}` is not a file descriptor number"))?;
        let socket = unix::adopt_socket(number)
            .map_err(|e| format!("`{CHANNEL_FD}={fd}` is not an open socket: {e}"))?;
        Ok((socket, serialization))
    })())
}

/// Whether an environment entry is one of the channel's variables, which a
/// child never sees (Node deletes them from `process.env`).
pub fn is_channel_var(name: &str) -> bool {
    name == CHANNEL_FD || name == SERIALIZATION_MODE
}
