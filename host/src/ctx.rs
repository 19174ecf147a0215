//! The per-process host state (the `Store`'s `T`): one context per
//! interface, and the linker lines that give each interface its own view.

use crate::bindings::hive::process::{child_process, cluster, process, types, worker_threads};
use crate::child_process::{ChildProcessCtx, ChildProcessView, HiveChildProcess};
use crate::process::{HiveProcess, ProcessCtx, ProcessView};
use crate::runtime::caps::MemoryLimiter;
use crate::sockets::{SocketsCtx, SocketsView};
use crate::types::HiveTypes;
use crate::worker_threads::{HiveWorkerThreads, WorkerThreadsView};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything one wasm process's host calls can reach.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    /// `hive:process/process`: who this process is.
    pub process: ProcessCtx,
    /// `hive:process/child-process`: what it hands to the children it starts.
    pub child_process: ChildProcessCtx,
    /// Enforces the process's `--max-memory`.
    pub limiter: MemoryLimiter,
    /// `wasi:sockets/tcp`, Hive's own: the network policy and, for a
    /// cluster worker, where its listens go.
    pub sockets: SocketsCtx,
    /// `wasi:http/types`, for the requests of its HTTP servers.
    pub http: crate::http::HttpState,
    /// `hive:process/worker-threads`: a worker's parent port and data.
    pub threads: crate::worker_threads::ThreadCtx,
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

/// The host state of a wasip1 core module: WASI only (it imports nothing
/// else), and its memory limit.
pub struct CoreState {
    pub wasi: wasmtime_wasi::p1::WasiP1Ctx,
    pub limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds every `hive:process` interface to `linker`, each over its own view.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HiveTypes>(linker, |_| HiveTypes)?;
    process::add_to_linker::<_, HiveProcess>(linker, |s| ProcessView {
        ctx: &mut s.process,
        table: &mut s.table,
        http: &mut s.http,
    })?;
    child_process::add_to_linker::<_, HiveChildProcess>(linker, |s| ChildProcessView {
        ctx: &mut s.child_process,
        table: &mut s.table,
    })?;
    cluster::add_to_linker::<_, HiveChildProcess>(linker, |s| ChildProcessView {
        ctx: &mut s.child_process,
        table: &mut s.table,
    })?;
    worker_threads::add_to_linker::<_, HiveWorkerThreads>(linker, |s| WorkerThreadsView {
        ctx: &mut s.threads,
        child_process: &mut s.child_process,
        process: &mut s.process,
        table: &mut s.table,
    })?;
    // Outgoing requests are linked (proxy components import them) and
    // denied by the hooks (`crate::http`).
    wasmtime_wasi_http::p2::bindings::http::outgoing_handler::add_to_linker::<
        _,
        wasmtime_wasi_http::WasiHttp,
    >(linker, |s: &mut HostState| {
        wasmtime_wasi_http::WasiHttpView::http(s)
    })?;
    wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, wasmtime_wasi_http::WasiHttp>(
        linker,
        &Default::default(),
        |s: &mut HostState| wasmtime_wasi_http::WasiHttpView::http(s),
    )?;
    crate::sockets::add_to_linker(linker, |s| SocketsView {
        ctx: &mut s.sockets,
        table: &mut s.table,
    })?;
    Ok(())
}
