//! The process table: every live process, how processes start, and how they
//! end (exit, trap, kill) and tell their parent.
//!
//! A wasm process is one `Store` and one component instance, run as its own
//! tokio task. Killing it drops that task's future (and so its fiber and
//! Store); epoch interruption makes even a guest in `loop {}` reach a point
//! where that can happen within one epoch tick.

use crate::bindings::{ChildEvent, ChildEventKind, Event, WitExitStatus};
use crate::capability::{Capabilities, MemoryLimiter};
use crate::ctx::{CoreState, HostState, ProcessCtx};
use crate::engine::{Hive, LoadedModule, Preopen, Program};
use crate::error::ExitStatus;
use crate::inbox::Inbox;
use crate::message::Flow;
use crate::signal::{DefaultAction, Signal};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{StdinStream, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// Virtual pids start above Linux's largest `pid_max` (2^22), so they never
/// collide with a real pid.
pub const FIRST_VIRTUAL_PID: u32 = (1 << 22) + 1;

/// A process's stdio streams, shareable with children that inherit them.
#[derive(Clone)]
pub struct Stdio {
    /// Whether these are the host's own stdin/stdout/stderr (an OS child
    /// inheriting them then gets the real file descriptors).
    pub is_host: bool,
    pub stdin: Arc<dyn StdinStream + Sync>,
    pub stdout: Arc<dyn StdoutStream + Sync>,
    pub stderr: Arc<dyn StdoutStream + Sync>,
}

impl Stdio {
    /// The host's own stdin, stdout and stderr.
    pub fn inherit() -> Stdio {
        Stdio {
            is_host: true,
            stdin: Arc::new(wasmtime_wasi::cli::stdin()),
            stdout: Arc::new(wasmtime_wasi::cli::stdout()),
            stderr: Arc::new(wasmtime_wasi::cli::stderr()),
        }
    }

    /// An empty stdin, and stdout and stderr kept in memory (for embedders
    /// and tests that drive the library in-process).
    pub fn capture() -> (Stdio, Captured) {
        const CAPACITY: usize = 64 << 20;
        let captured = Captured {
            stdout: MemoryOutputPipe::new(CAPACITY),
            stderr: MemoryOutputPipe::new(CAPACITY),
        };
        let stdio = Stdio {
            is_host: false,
            stdin: Arc::new(tokio::io::empty()),
            stdout: Arc::new(captured.stdout.clone()),
            stderr: Arc::new(captured.stderr.clone()),
        };
        (stdio, captured)
    }
}

/// Output captured by [`Stdio::capture`].
pub struct Captured {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Captured {
    /// Everything written to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.contents().to_vec()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.stderr.contents().to_vec()
    }
}

/// The message channel between a parent and a child.
#[derive(Default)]
pub struct Channel {
    connected: AtomicBool,
    /// Parent to child.
    pub down: Arc<Flow>,
    /// Child to parent.
    pub up: Arc<Flow>,
}

impl Channel {
    pub fn open() -> Arc<Channel> {
        let channel = Channel::default();
        channel.connected.store(true, Ordering::Release);
        Arc::new(channel)
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Closes the channel; returns whether it was open (only the first
    /// caller reports `disconnect`).
    pub fn close(&self) -> bool {
        self.connected.swap(false, Ordering::AcqRel)
    }
}

/// The child's end of its channel and where its events go.
#[derive(Clone)]
pub struct ParentLink {
    pub channel: Arc<Channel>,
    pub parent: Arc<Proc>,
}

impl ParentLink {
    /// Queues an event about child `id` in the parent's inbox.
    pub fn report(&self, id: u32, kind: ChildEventKind) {
        self.parent
            .inbox
            .push(Event::Child(ChildEvent { id, kind }), None);
    }
}

/// A live or ended process, as the table, its parent and its children see it.
pub struct Proc {
    pub pid: u32,
    /// The module path as the process was started with (its `argv[0]`).
    pub name: String,
    pub inbox: Arc<Inbox>,
    /// The channel to this process's parent, if it has one.
    pub parent_channel: Option<Arc<Channel>>,
    handled: Mutex<HashSet<Signal>>,
    kill: watch::Sender<Option<Signal>>,
    status: watch::Sender<Option<ExitStatus>>,
    /// Live children, ended when this process ends.
    children: Mutex<HashMap<u32, Arc<Proc>>>,
    /// Set once `close` was queued to the parent: no more events will come.
    pub closed: AtomicBool,
    /// Whether a `kill` (or a timeout) delivered a signal (Node's `killed`).
    pub killed: AtomicBool,
    /// Output pipes to the parent: `close` waits until they are finished with.
    pub pipes: Mutex<Vec<Arc<crate::pipe::Pipe>>>,
    /// `Some` for an OS process: whether it is detached (its own session,
    /// allowed to outlive the host).
    pub os: Option<OsKind>,
    /// The budget this process and its descendants are charged to.
    pub budget: Arc<Budget>,
    /// Its place in that budget, given back when it ends.
    pub slot: Mutex<Option<Slot>>,
}

/// What sets an OS process apart.
#[derive(Debug, Clone, Copy)]
pub struct OsKind {
    pub detached: bool,
    /// Whether it leads its own process group (its descendants with it),
    /// which ends with it when its parent ends (and with the host, through
    /// the sentinel).
    pub group: bool,
}

impl Proc {
    fn new(pid: u32, name: String, parent_channel: Option<Arc<Channel>>) -> Proc {
        Proc {
            pid,
            name,
            inbox: Arc::default(),
            parent_channel,
            handled: Mutex::default(),
            kill: watch::Sender::new(None),
            status: watch::Sender::new(None),
            children: Mutex::default(),
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            pipes: Mutex::default(),
            os: None,
            budget: Budget::root(0),
            slot: Mutex::default(),
        }
    }

    /// The record of a spawned OS process with real pid `pid`.
    pub fn new_os(pid: u32, name: String, detached: bool, group: bool, slot: Slot) -> Proc {
        Proc {
            os: Some(OsKind { detached, group }),
            slot: Mutex::new(Some(slot)),
            ..Proc::new(pid, name, None)
        }
    }

    /// Whether every event of this child has been queued; a child that
    /// never started (`None`) has queued all of its events already.
    pub fn all_reported(proc: Option<&Arc<Proc>>) -> bool {
        proc.is_none_or(|p| p.closed.load(Ordering::Acquire))
    }

    /// Records how the process ended (once).
    pub fn set_status(&self, status: ExitStatus) {
        self.status.send_replace(Some(status));
    }

    /// Forgets a child that has closed.
    pub fn remove_child(&self, pid: u32) {
        self.children.lock().unwrap().remove(&pid);
        self.inbox.wake();
    }

    /// How the process ended, once it has.
    pub fn status(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// Waits for the process to end.
    pub async fn wait(&self) -> ExitStatus {
        let mut rx = self.status.subscribe();
        let status = rx
            .wait_for(Option::is_some)
            .await
            .expect("sender lives in self");
        status.expect("waited for some")
    }

    /// Installs or removes a handler for `signal`.
    pub fn set_handled(&self, signal: Signal, handled: bool) {
        let mut set = self.handled.lock().unwrap();
        if handled {
            set.insert(signal);
        } else {
            set.remove(&signal);
        }
        drop(set);
        self.inbox.wake();
    }

    /// Sends `signal`; returns whether it was delivered (false once ended).
    pub fn signal(&self, signal: Signal) -> bool {
        if self.status().is_some() {
            return false;
        }
        if self.os.is_some() {
            // A real process: a real signal. ESRCH (already gone) is `false`.
            return crate::unix::kill(self.pid, signal.number()).unwrap_or(false);
        }
        if signal.number() == 0 {
            return true;
        }
        if signal.catchable() && self.handled.lock().unwrap().contains(&signal) {
            self.inbox
                .push(Event::Signal(signal.name().to_owned()), None);
            return true;
        }
        if signal == Signal::KILL || signal.default_action() == DefaultAction::Terminate {
            // The first fatal signal wins; the task reports it as the status.
            self.kill.send_if_modified(|pending| {
                pending.is_none().then(|| *pending = Some(signal)).is_some()
            });
        }
        true
    }

    /// Sends `signal` as Node's `subprocess.kill` does: a delivered signal
    /// marks the process `killed`.
    pub fn kill(&self, signal: Signal) -> bool {
        let delivered = self.signal(signal);
        if delivered {
            self.killed.store(true, Ordering::Release);
        }
        delivered
    }

    /// Whether the process ends by itself or was sent a signal by `kill`.
    pub fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Whether an event can still arrive: one is queued, the parent channel
    /// is open, a child is alive, or a signal handler is installed.
    pub fn can_receive(&self) -> bool {
        self.inbox.has_any()
            || self.parent_channel.as_ref().is_some_and(|c| c.connected())
            || !self.children.lock().unwrap().is_empty()
            || !self.handled.lock().unwrap().is_empty()
    }

    pub fn add_child(&self, child: Arc<Proc>) {
        self.children.lock().unwrap().insert(child.pid, child);
    }
}

/// The module a new process runs: loaded already, or still to load (and
/// maybe compile, which can take seconds) in the process's own task, so
/// that `fork` never blocks its caller.
pub enum ModuleSource {
    Ready(Arc<LoadedModule>),
    Pending(std::path::PathBuf),
}

/// What a new process runs and with what.
pub struct SpawnSpec {
    pub module: ModuleSource,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dirs: Vec<Preopen>,
    pub stdio: Stdio,
    pub ppid: u32,
    pub parent: Option<ParentLink>,
    pub caps: Arc<Capabilities>,
    /// The guest's initial working directory (`wasi:cli/environment.initial-cwd`).
    pub cwd: Option<String>,
    /// The budget the new process (and its subtree) is charged to.
    pub budget: Arc<Budget>,
}

/// Spawning would exceed `--max-procs`, or a subtree's `max-procs`.
#[derive(Debug, thiserror::Error)]
#[error(
    "too many processes: at most {0} may be alive at once here (the host's `--max-procs`, or a fork's `max-procs`)"
)]
pub struct TooManyProcesses(pub u32);

/// A bound on live processes, wasm and OS alike: the host's
/// (`--max-procs`) at the top, and nested under it the share a parent gave
/// a child's subtree (fork option `max-procs`). A process is charged to
/// its own budget and every budget above it, so a fork bomb in one subtree
/// stops at that subtree's share and its siblings keep forking.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    used: AtomicU32,
    parent: Option<Arc<Budget>>,
}

/// One live process's place in its budgets; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Budget>);

impl Budget {
    pub fn root(limit: u32) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicU32::new(0),
            parent: None,
        })
    }

    /// What is left here: the least room of this budget and those above.
    pub fn left(&self) -> u32 {
        let mut left = u32::MAX;
        let mut at = Some(self);
        while let Some(b) = at {
            left = left.min(b.limit.saturating_sub(b.used.load(Ordering::Acquire)));
            at = b.parent.as_deref();
        }
        left
    }

    /// A share of `limit` processes under `parent`; more than the parent
    /// has left is refused.
    pub fn share(parent: &Arc<Budget>, limit: u32) -> Result<Arc<Budget>, TooManyProcesses> {
        let left = parent.left();
        if limit > left {
            return Err(TooManyProcesses(left));
        }
        Ok(Arc::new(Budget {
            limit,
            used: AtomicU32::new(0),
            parent: Some(parent.clone()),
        }))
    }

    /// Takes a place here and in every budget above.
    pub fn charge(self: &Arc<Self>) -> Result<Slot, TooManyProcesses> {
        let mut charged: Vec<&Budget> = Vec::new();
        let mut at = Some(&**self);
        while let Some(b) = at {
            let taken = b
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    (u < b.limit).then_some(u + 1)
                });
            if taken.is_err() {
                for c in charged {
                    c.used.fetch_sub(1, Ordering::AcqRel);
                }
                return Err(TooManyProcesses(b.limit));
            }
            charged.push(b);
            at = b.parent.as_deref();
        }
        Ok(Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut at = Some(&*self.0);
        while let Some(b) = at {
            b.used.fetch_sub(1, Ordering::AcqRel);
            at = b.parent.as_deref();
        }
    }
}

/// Every live process.
pub struct ProcessTable {
    procs: Mutex<HashMap<u32, Arc<Proc>>>,
    next_pid: AtomicU32,
    /// `--max-procs`: every live process, wasm or OS, is charged here.
    pub budget: Arc<Budget>,
}

impl ProcessTable {
    pub fn new(max_procs: u32) -> ProcessTable {
        ProcessTable {
            procs: Mutex::default(),
            next_pid: AtomicU32::new(FIRST_VIRTUAL_PID),
            budget: Budget::root(max_procs),
        }
    }

    /// A fresh id that no process has or will have (used for failed spawns).
    pub fn allocate_id(&self) -> u32 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    /// Creates a process. `before_start` runs after the process is in the
    /// table and before its guest code can run (the parent queues `spawn`
    /// there, so `spawn` precedes any message from the child).
    pub fn spawn(
        &self,
        hive: &Hive,
        spec: SpawnSpec,
        before_start: impl FnOnce(&Arc<Proc>),
    ) -> Result<Arc<Proc>, TooManyProcesses> {
        let slot = spec.budget.charge()?;
        let pid = {
            let mut procs = self.procs.lock().unwrap();
            let pid = self.allocate_id();
            let channel = spec.parent.as_ref().map(|p| p.channel.clone());
            let name = spec.argv.first().cloned().unwrap_or_default();
            let proc = Proc {
                budget: spec.budget.clone(),
                ..Proc::new(pid, name, channel)
            };
            *proc.slot.lock().unwrap() = Some(slot);
            procs.insert(pid, Arc::new(proc));
            pid
        };
        let proc = self.procs.lock().unwrap()[&pid].clone();
        if let Some(link) = &spec.parent {
            link.parent.add_child(proc.clone());
        }
        let start = match prepare_start(hive, &proc, &spec) {
            Ok(start) => start,
            Err(e) => {
                // A preopen vanished between check and use: report it as the
                // process failing, on its own stderr, like any other start-up
                // failure of a real process.
                let stderr = spec.stdio.stderr.clone();
                let hive = hive.clone();
                let proc2 = proc.clone();
                before_start(&proc);
                tokio::spawn(async move {
                    write_report(&*stderr, &format!("error: {e:?}\n")).await;
                    finish(&hive, &proc2, spec.parent.as_ref(), ExitStatus::Code(1));
                });
                return Ok(proc);
            }
        };
        before_start(&proc);
        let task = run(
            hive.clone(),
            proc.clone(),
            spec.module,
            start,
            spec.stdio.stderr.clone(),
            spec.parent,
        );
        tracing::trace!(bytes = size_of_val(&task), "process task size");
        tokio::spawn(hive.inner.preempt.task(task));
        Ok(proc)
    }

    /// Ends every process at once (SIGKILL).
    pub fn kill_all(&self) {
        let procs: Vec<_> = self.procs.lock().unwrap().values().cloned().collect();
        for proc in procs {
            proc.signal(Signal::KILL);
        }
    }
}

/// A process's state before its program is known to be a component or a
/// core module: the WASI context (preopens already opened) and the rest.
struct Start {
    wasi: WasiCtxBuilder,
    process: ProcessCtx,
    limiter: MemoryLimiter,
}

fn prepare_start(hive: &Hive, proc: &Arc<Proc>, spec: &SpawnSpec) -> anyhow::Result<Start> {
    let mut wasi = WasiCtx::builder();
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
    spec.caps.net.apply(&mut wasi, who.clone());
    Ok(Start {
        wasi,
        process: ProcessCtx {
            hive: hive.clone(),
            me: proc.clone(),
            ppid: spec.ppid,
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            dirs: spec.dirs.clone(),
            stdio: spec.stdio.clone(),
            parent: spec.parent.clone(),
            caps: spec.caps.clone(),
            cwd: spec.cwd.clone(),
        },
        limiter: MemoryLimiter::new(spec.caps.max_memory, who, hive.inner.total_memory.clone()),
    })
}

/// A fresh store for `state`, limited and preemptible.
fn new_store<T: 'static>(
    hive: &Hive,
    state: T,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
) -> Store<T> {
    let mut store = Store::new(&hive.inner.engine, state);
    store.limiter(move |state| limiter(state) as &mut dyn wasmtime::ResourceLimiter);
    // Yield to other tasks at every epoch tick, so a busy guest neither
    // starves the others nor escapes `kill`. Through tokio's `yield_now`:
    // a plain self-wake would land in the worker's LIFO slot and run the
    // busy guest again at once, ahead of the tasks it was to make room for.
    store.epoch_deadline_callback(|_| {
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
    mut start: Start,
) -> wasmtime::Result<Result<(), ()>> {
    match program {
        Program::Component(pre) => {
            let state = HostState {
                wasi: start.wasi.build(),
                table: ResourceTable::new(),
                process: start.process,
                limiter: start.limiter,
            };
            let mut store = new_store(hive, state, |s| &mut s.limiter);
            let guest = pre.instantiate_async(&mut store).await?;
            guest.wasi_cli_run().call_run(&mut store).await
        }
        Program::Core(pre) => {
            let state = CoreState {
                wasi: start.wasi.build_p1(),
                limiter: start.limiter,
            };
            let mut store = new_store(hive, state, |s| &mut s.limiter);
            let instance = pre.instantiate_async(&mut store).await?;
            let main = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            main.call_async(&mut store, ()).await.map(Ok)
        }
    }
}

/// The task of one wasm process.
async fn run(
    hive: Hive,
    proc: Arc<Proc>,
    module: ModuleSource,
    start: Start,
    stderr: Arc<dyn StdoutStream + Sync>,
    parent: Option<ParentLink>,
) {
    let program = match module {
        ModuleSource::Ready(module) => module.program.clone(),
        ModuleSource::Pending(path) => match hive.load(&path).await {
            Ok(module) => module.program.clone(),
            Err(err) => {
                // Like a Node child whose script does not compile: it
                // started, says why on its stderr, and exits 1.
                drop(start);
                let report = format!("error: {}\n", crate::child_process::ErrorChain(&err));
                write_report(&*stderr, &report).await;
                finish(&hive, &proc, parent.as_ref(), ExitStatus::Code(1));
                return;
            }
        },
    };
    let mut kill = proc.kill.subscribe();
    let outcome = tokio::select! {
        biased;
        signal = kill.wait_for(Option::is_some) => {
            Outcome::Killed(signal.map(|s| s.expect("waited for some")).unwrap_or(Signal::KILL))
        }
        result = run_program(&hive, program, start) => Outcome::Ran(result),
    };
    let status = match outcome {
        Outcome::Killed(signal) => ExitStatus::Signal(signal),
        Outcome::Ran(Ok(Ok(()))) => ExitStatus::Code(0),
        Outcome::Ran(Ok(Err(()))) => ExitStatus::Code(1),
        Outcome::Ran(Err(e)) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => ExitStatus::Code(exit.0),
            None => {
                write_report(&*stderr, &trap_report(&proc, &e)).await;
                ExitStatus::Signal(Signal::ABRT)
            }
        },
    };
    tracing::debug!(pid = proc.pid, %status, "process ended");
    finish(&hive, &proc, parent.as_ref(), status);
}

enum Outcome {
    Killed(Signal),
    Ran(wasmtime::Result<Result<(), ()>>),
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

/// Records how `proc` ended, ends its children, and tells its parent, in
/// Node's order: `disconnect` (if still connected), `exit`, `close`.
fn finish(hive: &Hive, proc: &Arc<Proc>, parent: Option<&ParentLink>, status: ExitStatus) {
    proc.status.send_replace(Some(status));
    drop(proc.slot.lock().unwrap().take());
    // No orphans: a process's children end with it — wasm children at once,
    // OS children with SIGTERM and SIGKILL after the grace period, detached
    // OS children not at all (they are meant to outlive us).
    let children: Vec<_> = proc.children.lock().unwrap().values().cloned().collect();
    for child in children {
        // Nobody is left to read their output.
        for pipe in child.pipes.lock().unwrap().iter() {
            pipe.abandon();
        }
        match child.os {
            None => {
                child.signal(Signal::KILL);
            }
            Some(os) if !os.detached => terminate(child, hive.inner.kill_grace),
            Some(_) => {}
        }
    }
    hive.inner.table.procs.lock().unwrap().remove(&proc.pid);
    // Nobody will read what was sent to it: free it now, not when the last
    // handle to this process goes.
    proc.inbox.discard();
    if let Some(link) = parent {
        if link.channel.close() {
            link.report(proc.pid, ChildEventKind::Disconnect);
        }
        report_end(proc.clone(), link.parent.clone(), status);
    }
    proc.inbox.wake();
}

/// Tells `parent` that `proc` exited, then — once its output pipes are
/// finished with (read to the end, dropped, or drained) — that it closed.
pub fn report_end(proc: Arc<Proc>, parent: Arc<Proc>, status: ExitStatus) {
    let wit = WitExitStatus::from(status);
    let pipes = proc.pipes.lock().unwrap().clone();
    let exit = Event::Child(ChildEvent {
        id: proc.pid,
        kind: ChildEventKind::Exit(wit.clone()),
    });
    if pipes.is_empty() {
        parent.inbox.push(exit, None);
    } else {
        // Output nobody took by the time the parent handled `exit` is
        // drained, as Node's flushStdio does, so that `close` can come.
        let drained = pipes.clone();
        parent.inbox.push_then(
            exit,
            Box::new(move || drained.iter().for_each(|p| p.drain_if_untaken())),
        );
    }
    let close = move |proc: Arc<Proc>, parent: Arc<Proc>| {
        parent.inbox.push(
            Event::Child(ChildEvent {
                id: proc.pid,
                kind: ChildEventKind::Close(wit),
            }),
            None,
        );
        proc.closed.store(true, Ordering::Release);
        // Only now is the child no longer live: a parent waiting for events
        // must see `close` queued before it sees no live children.
        parent.remove_child(proc.pid);
    };
    if pipes.is_empty() {
        close(proc, parent);
        return;
    }
    tokio::spawn(async move {
        for pipe in &pipes {
            pipe.finished().await;
        }
        close(proc, parent);
    });
}

/// SIGTERM now, SIGKILL after `grace` unless the process ended by then.
/// An OS child leading its own group gets both as a group, so that its
/// descendants end too — even those left running after it exited.
pub fn terminate(proc: Arc<Proc>, grace: std::time::Duration) {
    if proc.os.is_some_and(|os| os.group) {
        if !crate::unix::kill_group(proc.pid, Signal::TERM.number()).unwrap_or(false) {
            return;
        }
        tokio::spawn(async move {
            let _ = tokio::time::timeout(grace, proc.wait()).await;
            // The leader may be gone; what is left of its group is not.
            let _ = crate::unix::kill_group(proc.pid, Signal::KILL.number());
        });
        return;
    }
    if !proc.signal(Signal::TERM) {
        return;
    }
    tokio::spawn(async move {
        if tokio::time::timeout(grace, proc.wait()).await.is_err() {
            proc.signal(Signal::KILL);
        }
    });
}

impl From<ExitStatus> for WitExitStatus {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Code(code) => WitExitStatus {
                code: Some(code),
                signal: None,
            },
            ExitStatus::Signal(signal) => WitExitStatus {
                code: None,
                signal: Some(signal.name().to_owned()),
            },
        }
    }
}
