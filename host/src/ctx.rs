//! The per-process host state (the `Store`'s `T`) and linker setup.

use crate::bindings::hive::process::{child_process, process, types};
use crate::capability::Capabilities;
use crate::engine::{Hive, Preopen};
use crate::table::{ParentLink, Proc, Stdio};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything one wasm process's host calls can reach.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub process: ProcessCtx,
    /// Enforces the process's `--max-memory`.
    pub limiter: crate::capability::MemoryLimiter,
}

/// The host state of a wasip1 core module: WASI only (it imports nothing
/// else), and its memory limit.
pub struct CoreState {
    pub wasi: wasmtime_wasi::p1::WasiP1Ctx,
    pub limiter: crate::capability::MemoryLimiter,
}

/// The `hive:process` side of a process: who it is, what it may hand to
/// children, and where its parent is.
pub struct ProcessCtx {
    pub hive: Hive,
    pub me: Arc<Proc>,
    pub ppid: u32,
    pub argv: Vec<String>,
    /// The environment and preopens, which children inherit by default.
    pub env: Vec<(String, String)>,
    pub dirs: Vec<Preopen>,
    pub stdio: Stdio,
    pub parent: Option<ParentLink>,
    /// What this process may use (children inherit it).
    pub caps: Arc<Capabilities>,
    /// The initial working directory (`--cwd`), which children inherit.
    pub cwd: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds every `hive:process` interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    process::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    child_process::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

impl types::Host for HostState {
    async fn max_message_bytes(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::message::MAX_MESSAGE_BYTES as u64)
    }
}
