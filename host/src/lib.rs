//! Hive: a WebAssembly component host that gives WASI 0.2 guests what Node.js
//! gives JavaScript — processes.
//!
//! A guest (any `wasm32-wasip2` command component) can `fork` other guests and
//! exchange messages with them through the `hive:process` WIT package in
//! `wit/`, with Node's `child_process` semantics.
//!
//! Embedding takes three steps:
//!
//! 1. Build a [`Hive`] from a [`HiveConfig`]: one wasmtime `Engine` (epoch
//!    interruption, pooling allocator), one `Linker` with WASI 0.2 and
//!    `hive:process`, an on-disk cache of compiled components.
//! 2. Describe the root guest with a [`RunOptions`] (module, args, env, preopens).
//! 3. [`Hive::run`] it inside a tokio multi-thread runtime; it returns the
//!    guest's [`ExitStatus`] once the guest and all its children have ended.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let hive = host::Hive::new(host::HiveConfig::default())?;
//! let status = hive.run(host::RunOptions::new("target/guests/hello.wasm")).await?;
//! assert_eq!(status.code(), 0);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#[cfg(not(unix))]
compile_error!(
    "Hive runs on Linux (and other Unix systems): it supervises OS children with process groups and signals"
);

pub mod bindings;
pub mod child_process;
pub mod cluster;
pub mod commands;
mod control;
mod ctx;
mod error;
mod filesystem;
mod hive;
pub(crate) mod http;
mod loader;
pub mod node;
mod os;
pub mod process;
pub mod runtime;
mod sockets;
mod stacks;
mod stdio;
mod types;
mod wasm;
pub mod worker_threads;

pub use error::{ErrorChain, LoadError, MAX_MODULE_BYTES};
pub use hive::{
    DEFAULT_MAX_MEMORY, DEFAULT_MAX_PROCS, Hive, HiveConfig, MAX_TABLE_ELEMENTS, NodeParent,
    POOL_MAX_PROCS, RunOptions, ServeOptions,
};
pub use node::Serialization;
pub use runtime::caps::Preopen;
pub use runtime::caps::{AllowedProgram, SpawnPolicy, format_size, parse_size};
pub use runtime::exit::ExitStatus;
pub use runtime::net::{NetPolicy, NetRule};
pub use runtime::signal::Signal;
pub use stdio::{Captured, Stdio};
