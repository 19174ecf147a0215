//! A wasm process: one `Store` and one instance of a component (or a wasip1
//! core module), run as its own task by the runtime.
//!
//! Killing it drops that task's future (and so its fiber and Store); epoch
//! interruption makes even a guest in `loop {}` reach a point where that
//! can happen within one epoch tick.

use crate::child_process::ChildProcessCtx;
use crate::ctx::{CoreState, HostState};
use crate::error::ErrorChain;
use crate::hive::Hive;
use crate::loader::{LoadedModule, Program};
use crate::process::ProcessCtx;
use crate::runtime::budget::{Budget, TooManyProcesses};
use crate::runtime::caps::Preopen;
use crate::runtime::caps::{Capabilities, Limit, LimitReached, MemoryLimiter, Reserved};
use crate::runtime::cluster::WorkerLink;
use crate::runtime::exit::ExitStatus;
use crate::runtime::lifecycle::{self, Link, NewProc};
use crate::runtime::listen::Membership;
use crate::runtime::pipe::Pipe;
use crate::runtime::proc::{Proc, ProcKind};
use crate::runtime::signal::Signal;
use crate::sockets::SocketsCtx;
use crate::stdio::Stdio;
use crate::worker_threads::{ThreadCtx, ThreadStart};
use futures_util::future::Either;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// The module a new process runs: loaded already, or still to load (and
/// maybe compile, which can take seconds) in the process's own task, so
/// that `fork` never blocks its caller.
pub enum ModuleSource {
    Ready(Arc<LoadedModule>),
    Pending(std::path::PathBuf),
}

/// What a new wasm process runs and with what.
pub struct WasmSpec {
    pub module: ModuleSource,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dirs: Vec<Preopen>,
    pub stdio: Stdio,
    /// Its pid; `None`: a fresh virtual one.
    pub pid: Option<u32>,
    pub ppid: u32,
    /// The forking process (`None` for the root).
    pub parent: Option<Arc<Proc>>,
    /// Its message channel: to the forking process, or to a Node parent of
    /// the host (the root guest of `host run` under Node's `fork`).
    pub link: Link,
    /// Output pipes to the parent (a `silent` fork's stdout and stderr).
    pub pipes: Vec<Arc<Pipe>>,
    pub caps: Arc<Capabilities>,
    /// The guest's initial working directory (`wasi:cli/environment.initial-cwd`).
    pub cwd: Option<String>,
    /// The budget the new process (and its subtree) is charged to.
    pub budget: Arc<Budget>,
    /// Set for a cluster worker: where its listens go.
    pub cluster: Option<Arc<WorkerLink>>,
    /// For a `wasi:http` proxy instance of `host serve`: the listener it
    /// serves requests from.
    pub serve: Option<Arc<Membership>>,
    /// How many times it replaces one that ended (`fork-options.restarts`).
    pub restarts: u32,
    /// Set for a worker thread: its port to its parent and its `workerData`.
    pub thread: Option<ThreadStart>,
}

/// A place for a new process, taken before anything of it exists: in
/// `--max-procs`, in its parent's share, and the memory it starts with.
pub struct Admitted {
    reserved: Option<Reserved>,
    slot: crate::runtime::budget::Slot,
}

/// Takes a place for the process `spec` describes, or says why there is
/// none (`EAGAIN`).
pub fn admit(hive: &Hive, spec: &WasmSpec) -> Result<Admitted, TooManyProcesses> {
    let rt = hive.runtime();
    // A module instantiated before says what memory it starts with.
    let needs = match &spec.module {
        ModuleSource::Ready(module) => module.initial_memory.load(Ordering::Relaxed),
        ModuleSource::Pending(_) => 0,
    };
    let live = rt.processes().budget.used();
    let reserved = rt.capacity().admit(live, rt.total_memory(), needs)?;
    let slot = spec.budget.charge()?;
    Ok(Admitted { reserved, slot })
}

/// Starts a wasm process: in the table and its parent's `spawn` queued
/// before its guest code can run.
pub fn start(hive: &Hive, spec: WasmSpec) -> Result<Arc<Proc>, TooManyProcesses> {
    let admitted = admit(hive, &spec)?;
    Ok(launch(hive, spec, admitted))
}

/// [`start`] in a place [`admit`] took.
pub fn launch(hive: &Hive, mut spec: WasmSpec, admitted: Admitted) -> Arc<Proc> {
    let rt = hive.runtime();
    let Admitted { reserved, slot } = admitted;
    let proc = lifecycle::register(
        rt,
        NewProc {
            pid: spec.pid.unwrap_or_else(|| rt.processes().allocate_id()),
            name: spec.argv.first().cloned().unwrap_or_default(),
            kind: ProcKind::Wasm,
            parent: spec.parent.as_ref(),
            channel: std::mem::replace(&mut spec.link, Link::None),
            pipes: spec.pipes.clone(),
            slot,
            restarts: spec.restarts,
        },
    );
    let stderr = spec.stdio.stderr.clone();
    let body = match prepare(hive, &proc, spec, reserved) {
        Ok((start, module)) => Either::Left(run(hive.clone(), proc.clone(), module, start, stderr)),
        // A preopen vanished between check and use: report it as the
        // process failing, on its own stderr, like any other start-up
        // failure of a real process.
        Err(e) => Either::Right(async move {
            write_report(&*stderr, &format!("error: {e:?}\n")).await;
            ExitStatus::Code(1)
        }),
    };
    rt.run_task(proc.clone(), body);
    proc
}

/// A process's state before its program is known to be a component or a
/// core module: the WASI context (preopens already opened) and the rest.
struct Start {
    wasi: WasiCtxBuilder,
    process: ProcessCtx,
    child_process: ChildProcessCtx,
    limiter: MemoryLimiter,
    sockets: SocketsCtx,
    serve: Option<Arc<Membership>>,
    threads: ThreadCtx,
}

impl Start {
    /// A component's host state (a core module has its own, `CoreState`).
    fn host_state(mut self: Box<Self>) -> HostState {
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.child_process.caps.limits.max_resources as usize);
        HostState {
            wasi: self.wasi.build(),
            table,
            process: self.process,
            child_process: self.child_process,
            limiter: self.limiter,
            sockets: self.sockets,
            http: Default::default(),
            threads: self.threads,
        }
    }
}

/// `wasi:random`'s secure source: the OS's, read when asked. Stateless,
/// where wasmtime-wasi's default keeps a ChaCha generator (320 bytes) in
/// every process.
struct OsRandom;

impl rand_core::TryRng for OsRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_ne_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_ne_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        // getrandom(2) does not fail once the kernel's pool is ready, which
        // it is long before a host runs.
        getrandom::fill(dst).expect("the OS's random source failed");
        Ok(())
    }
}

fn prepare(
    hive: &Hive,
    proc: &Arc<Proc>,
    spec: WasmSpec,
    reserved: Option<Reserved>,
) -> anyhow::Result<(Box<Start>, ModuleSource)> {
    let mut wasi = WasiCtx::builder();
    wasi.secure_random(OsRandom);
    wasi.args(&spec.argv)
        .envs(&spec.env)
        .stdin(spec.stdio.stdin.clone())
        .stdout(spec.stdio.stdout.clone())
        .stderr(spec.stdio.stderr.clone());
    for dir in &spec.dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| {
                anyhow::Error::from(e).context(format!("failed to open `{}`", dir.flag()))
            })?;
    }
    if let Some(cwd) = &spec.cwd {
        wasi.initial_cwd(cwd);
    }
    let who = format!("guest `{}` (pid {})", proc.name, proc.pid);
    let net = spec.caps.net.apply(&mut wasi, who.clone());
    let limiter = MemoryLimiter::new(
        spec.caps.max_memory,
        who,
        hive.runtime().total_memory().clone(),
    );
    let limiter = limiter.for_process(proc.clone()).prepaid(reserved);
    let cluster = crate::cluster::ClusterCtx::new(spec.cluster.clone(), &spec.argv, &spec.env);
    let threads = match spec.thread {
        Some(start) => ThreadCtx::worker(proc.pid, start),
        None => ThreadCtx::default(),
    };
    let start = Box::new(Start {
        wasi,
        process: ProcessCtx {
            me: proc.clone(),
            ppid: spec.ppid,
            argv: spec.argv,
            watching: Default::default(),
            transferred: None,
        },
        child_process: ChildProcessCtx {
            cluster,
            hive: hive.clone(),
            me: proc.clone(),
            env: spec.env,
            dirs: spec.dirs,
            stdio: spec.stdio,
            caps: spec.caps,
            cwd: spec.cwd,
        },
        limiter,
        sockets: SocketsCtx {
            net,
            cluster: spec.cluster,
            me: proc.clone(),
            servers: Default::default(),
        },
        serve: spec.serve,
        threads,
    });
    Ok((start, spec.module))
}

/// A fresh store for `state`, limited and preemptible; `cpu` is the
/// process and its CPU time limit, if it has one.
fn new_store<T: 'static>(
    hive: &Hive,
    state: T,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
    cpu: Option<(Arc<Proc>, u64)>,
) -> Store<T> {
    let mut store = Store::new(hive.loader().engine(), state);
    store.limiter(move |state| limiter(state) as &mut dyn wasmtime::ResourceLimiter);
    let cpu = cpu.map(|(proc, ms)| (proc, ms.saturating_mul(1_000_000)));
    // Yield to other tasks at every epoch tick, so a busy guest neither
    // starves the others nor escapes `kill`. Through tokio's `yield_now`:
    // a plain self-wake would land in the worker's LIFO slot and run the
    // busy guest again at once, ahead of the tasks it was to make room for.
    // The CPU limit is checked here too: a guest that computes reaches a
    // tick within one (1 ms), whatever it runs.
    store.epoch_deadline_callback(move |_| {
        if let Some((proc, max_ns)) = &cpu
            && proc.cpu_ns.load(Ordering::Relaxed) > *max_ns
        {
            proc.reached(Limit::Cpu);
            return Err(LimitReached(Limit::Cpu).into());
        }
        Ok(wasmtime::UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store
}

/// Instantiates `program` and runs its entry point to the end. The store
/// lives inside this future: when it ends or is dropped (a kill), the
/// guest's stdio and child handles close before anyone hears it exited.
async fn run_program(
    hive: &Hive,
    program: Program,
    mut start: Box<Start>,
    initial_memory: &AtomicU64,
) -> wasmtime::Result<Result<(), ()>> {
    // The guest's own handle table (wasmtime's cap: 100,000) holds each of
    // its host resources and then some: a guest may hold `max-resources`.
    let handles = (start.child_process.caps.limits.max_resources as usize)
        .saturating_add(1_000)
        .max(100_000);
    let me = start.process.me.clone();
    let instantiated = || {
        let bytes = me.memory_bytes().unwrap_or(0);
        initial_memory.fetch_max(bytes, Ordering::Relaxed);
    };
    let cpu = start
        .child_process
        .caps
        .limits
        .max_cpu_ms
        .map(|ms| (start.process.me.clone(), ms));
    match program {
        Program::Component(pre) => {
            let state = start.host_state();
            let mut store = new_store(hive, state, |s| &mut s.limiter, cpu);
            store.set_max_component_handles(handles);
            let guest = Box::pin(pre.instantiate_async(&mut store)).await?;
            instantiated();
            if let Some(worker) = &store.data().sockets.cluster {
                worker.online();
            }
            if store.data().threads.is_worker() {
                lifecycle::online(&me);
            }
            guest.wasi_cli_run().call_run(&mut store).await
        }
        Program::Proxy(pre) => {
            let serve = start.serve.take();
            let state = start.host_state();
            let mut store = new_store(hive, state, |s| &mut s.limiter, cpu);
            store.set_max_component_handles(handles);
            let proxy = Box::pin(pre.instantiate_async(&mut store)).await?;
            instantiated();
            let Some(membership) = serve else {
                wasmtime::bail!("a wasi:http proxy component is served by `host serve`");
            };
            Box::pin(serve_proxy(&mut store, &proxy, membership)).await
        }
        Program::Core(pre) => {
            let state = CoreState {
                wasi: start.wasi.build_p1(),
                limiter: start.limiter,
            };
            let mut store = new_store(hive, state, |s| &mut s.limiter, cpu);
            let instance = Box::pin(pre.instantiate_async(&mut store)).await?;
            instantiated();
            let main = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            Box::pin(main.call_async(&mut store, ())).await.map(Ok)
        }
    }
}

/// Serves requests from `membership` with one long-lived instance of a
/// `wasi:http` proxy component, one request at a time (a p2 instance never
/// handles two at once), for as long as the process lives. A trap ends the
/// instance, and with it the requests it had.
async fn serve_proxy(
    store: &mut Store<HostState>,
    proxy: &wasmtime_wasi_http::p2::bindings::Proxy,
    membership: Arc<Membership>,
) -> wasmtime::Result<Result<(), ()>> {
    let me = store.data().process.me.clone();
    let server = crate::http::ServerState::new(me.clone(), 1);
    // Runs as long as the process: nothing stops it early.
    let _ = crate::http::start_accepting(server, membership);
    loop {
        me.inbox.wait_until(|| me.inbox.has_any()).await;
        while let Some(event) = me.inbox.try_pop() {
            let crate::runtime::event::Event::Request { request, .. } = event else {
                continue;
            };
            let state = store.data_mut();
            let mut view = state.http.view(&mut state.table);
            if let Some((request, response)) = crate::http::open_request(&mut view, request)? {
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut *store, request, response)
                    .await?;
            }
        }
    }
}

/// The body of one wasm process's task: load, instantiate, run, and turn
/// how it ended into an exit status.
async fn run(
    hive: Hive,
    proc: Arc<Proc>,
    module: ModuleSource,
    start: Box<Start>,
    stderr: Arc<dyn StdoutStream + Sync>,
) -> ExitStatus {
    // A `host serve` instance runs the module's HTTP handler.
    let pick = |module: &LoadedModule| match (&start.serve, &module.proxy) {
        (Some(_), Some(proxy)) => Program::Proxy(proxy.clone()),
        _ => module.program.clone(),
    };
    let module = match module {
        ModuleSource::Ready(module) => module,
        ModuleSource::Pending(path) => match Box::pin(hive.load(&path)).await {
            Ok(module) => module,
            Err(err) => {
                // Like a Node child whose script does not compile: it
                // started, says why on its stderr, and exits 1.
                drop(start);
                let report = format!("error: {}\n", ErrorChain(&err));
                write_report(&*stderr, &report).await;
                return ExitStatus::Code(1);
            }
        },
    };
    let program = pick(&module);
    let start_caps = start.child_process.caps.limits;
    let thread = start.threads.is_worker();
    // Boxed, as every future here that is only awaited for a while: a
    // process's task is allocated for its largest state, for as long as it
    // lives, and an idle guest is a small state of a large future.
    let program = Box::pin(run_program(&hive, program, start, &module.initial_memory));
    match program.await {
        Ok(Ok(())) => ExitStatus::Code(0),
        Ok(Err(())) => ExitStatus::Code(1),
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => ExitStatus::Code(exit.0),
            None => {
                let limit = e.downcast_ref::<LimitReached>().map(|l| l.0).or_else(|| {
                    e.chain()
                        .filter_map(|c| c.downcast_ref::<wasmtime::component::ResourceTableError>())
                        .any(|t| matches!(t, wasmtime::component::ResourceTableError::Full))
                        .then_some(Limit::Resources)
                });
                match limit {
                    // A limit ended it: one line naming it, no backtrace.
                    Some(limit) => {
                        proc.reached(limit);
                        let report = limit_report(&proc, limit, &start_caps);
                        write_report(&*stderr, &report).await;
                        match limit {
                            Limit::Cpu => ExitStatus::Signal(Signal::XCPU),
                            _ => ExitStatus::Signal(Signal::ABRT),
                        }
                    }
                    None => {
                        write_report(&*stderr, &trap_report(&proc, &e)).await;
                        // A limit's own `error` comes from `report_end`.
                        if thread && proc.limit_reached().is_none() {
                            // Node's Worker emits the uncaught error.
                            lifecycle::uncaught(&proc, e.root_cause().to_string());
                        }
                        ExitStatus::Signal(Signal::ABRT)
                    }
                }
            }
        },
    }
}

/// One line: the limit that ended `proc`, and what raises it.
fn limit_report(proc: &Proc, limit: Limit, limits: &crate::runtime::caps::Limits) -> String {
    let (amount, unit) = match limit {
        Limit::Cpu => (limits.max_cpu_ms.unwrap_or_default(), " ms of CPU time"),
        Limit::Resources => (u64::from(limits.max_resources), " host resources at once"),
        Limit::Memory => (0, ""),
    };
    format!(
        "error: guest `{}` (pid {}) reached its {} ({amount}{unit}) and was ended; raise it with {}\n",
        proc.name,
        proc.pid,
        limit.what(),
        limit.option(),
    )
}

/// One paragraph: what trapped, why, and where (the wasm backtrace).
fn trap_report(proc: &Proc, error: &wasmtime::Error) -> String {
    let mut report = format!(
        "error: guest `{}` (pid {}) trapped: {}\n",
        proc.name,
        proc.pid,
        error.root_cause()
    );
    if let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
        let text = backtrace.to_string();
        let frames = text.split_once('\n').map_or("", |(_, rest)| rest);
        report += "wasm backtrace:\n";
        report += frames;
        if !frames.ends_with('\n') {
            report.push('\n');
        }
    }
    report
}

async fn write_report(stderr: &(dyn StdoutStream + Sync), text: &str) {
    use tokio::io::AsyncWriteExt;
    let mut out = Box::into_pin(stderr.async_stream());
    let _ = out.write_all(text.as_bytes()).await;
    let _ = out.flush().await;
}
