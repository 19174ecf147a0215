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
//!
//! Inside: `emitter` is the one listener list every event source uses;
//! `event_loop` turns the loop over its handles (children, the process's
//! channel, streams being read) and timers; `child` (re-exported here),
//! [`process`], [`os`] and [`io`] are the API; `bindings`, `message` and
//! `error` hold the WIT types and the SDK's own.

mod bindings;
mod child;
pub mod cluster;
mod emitter;
mod error;
mod event_loop;
pub mod http;
pub mod io;
mod message;
pub mod os;
pub mod process;
pub mod supervisor;
pub mod worker_threads;

pub use child::{Child, ChildEvent, ForkOptions, Limits, Serialization, fork, status_fields};
pub use error::{Error, node_code};
pub use event_loop::{TimerId, clear_timeout, run, set_interval, set_timeout};
pub use io::{on_data, pipe};
pub use message::{IntoMessage, Message};
pub use os::{
    ExecFailure, ExecOptions, SpawnOptions, Stdio, SyncOptions, exec, exec_file, exec_file_sync,
    exec_sync, spawn, spawn_sync,
};

pub use bindings::hive::process::types::{ErrorCode, ErrorInfo, ExitStatus};
