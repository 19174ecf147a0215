//! `hive`: the Rust SDK for Hive guests.
//!
//! Guests are ordinary `wasm32-wasip2` binaries (`fn main`). This crate gives
//! them Node.js-style processes on top of the `hive:process` WIT package:
//!
//! ```no_run
//! use hive::{fork, ForkOptions, process};
//!
//! fn main() {
//!     let child = fork("child.wasm", &[], ForkOptions::default()).unwrap();
//!     child.on_message(|msg| println!("from child: {}", msg.text()));
//!     child.send(&"hello").unwrap();
//!     hive::set_timeout(3000, move || { child.disconnect().ok(); });
//!     hive::run(); // dispatches events until nothing keeps the process alive
//!     let _ = process::pid();
//! }
//! ```
//!
//! Two styles are available and may be mixed with care (an event taken by
//! one is not seen by the other):
//! - the event loop: register callbacks (`on_message`, `on_exit`, timers),
//!   then call [`run`], which dispatches in Node's order and returns when no
//!   child, connected channel with a listener, or timer is left;
//! - blocking calls: [`Child::recv`], [`Child::wait`], [`process::recv`].

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package hive:sdk;
            world sdk {
                include hive:process/imports@0.1.0;
                import wasi:clocks/monotonic-clock@0.2.12;
            }
        ",
        path: "../../wit",
        world: "hive:sdk/sdk",
        generate_all,
    });
}

mod child;
mod event_loop;
pub mod os;
pub mod process;

pub use child::{Child, ChildEvent, ForkOptions, fork};
pub use event_loop::{TimerId, clear_timeout, on_data, run, set_interval, set_timeout};
pub use os::{
    ExecFailure, ExecOptions, SpawnOptions, Stdio, SyncOptions, exec, exec_file, exec_file_sync,
    exec_sync, pipe, spawn, spawn_sync,
};

pub use bindings::hive::process::types::{ErrorCode, ErrorInfo, ExitStatus};

/// A message from another process: one JSON value, or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Json(String),
    Bytes(Vec<u8>),
}

impl Message {
    /// Deserializes a JSON message (bytes are parsed as JSON text too).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Message::Json(text) => serde_json::from_str(text),
            Message::Bytes(bytes) => serde_json::from_slice(bytes),
        }
    }

    /// The message as text: a JSON string's value, or other JSON as written.
    pub fn text(&self) -> String {
        match self {
            Message::Json(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::String(s)) => s,
                _ => text.clone(),
            },
            Message::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Builds a JSON message from any serializable value.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Message {
        Message::Json(serde_json::to_string(value).expect("value serializes to JSON"))
    }
}

impl From<bindings::hive::process::types::Message> for Message {
    fn from(m: bindings::hive::process::types::Message) -> Self {
        use bindings::hive::process::types::Message as M;
        match m {
            M::Json(t) => Message::Json(t),
            M::Bytes(b) => Message::Bytes(b),
        }
    }
}

impl From<Message> for bindings::hive::process::types::Message {
    fn from(m: Message) -> Self {
        use bindings::hive::process::types::Message as M;
        match m {
            Message::Json(t) => M::Json(t),
            Message::Bytes(b) => M::Bytes(b),
        }
    }
}

/// Anything that can be sent: a [`Message`] as is, or any serde value as JSON.
pub trait IntoMessage {
    fn into_message(self) -> Message;
}

impl IntoMessage for Message {
    fn into_message(self) -> Message {
        self
    }
}

impl<T: serde::Serialize + ?Sized> IntoMessage for &T {
    fn into_message(self) -> Message {
        Message::json(self)
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The host refused the call synchronously.
    Code(ErrorCode),
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::Code(code)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Code(ErrorCode::Denied) => write!(
                f,
                "EPERM: this guest may not start OS programs (run the host with `--allow-spawn`)"
            ),
            Error::Code(code) => write!(f, "{}", node_code(*code)),
        }
    }
}

impl std::error::Error for Error {}

/// Node's name for an error code (`ERR_IPC_CHANNEL_CLOSED`, ...).
pub fn node_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "ERR_INVALID_ARG_VALUE",
        ErrorCode::InvalidJson => "ERR_INVALID_JSON",
        ErrorCode::MessageTooLarge => "ERR_MESSAGE_TOO_LARGE",
        ErrorCode::ChannelClosed => "ERR_IPC_CHANNEL_CLOSED",
        ErrorCode::NotConnected => "ERR_IPC_DISCONNECTED",
        ErrorCode::UnknownSignal => "ERR_UNKNOWN_SIGNAL",
        ErrorCode::TooManyProcesses => "EAGAIN",
        ErrorCode::Denied => "EPERM",
        ErrorCode::NotADirectory => "ENOTDIR",
    }
}

/// Formats an exit status's fields as Node prints them: `code`/`signal`
/// with `null` for the absent one.
pub fn status_fields(status: &ExitStatus) -> (String, String) {
    (
        status.code.map_or("null".into(), |c| c.to_string()),
        status.signal.clone().unwrap_or_else(|| "null".into()),
    )
}
