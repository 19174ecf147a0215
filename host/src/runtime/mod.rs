//! The process runtime: every process this host runs, of every kind (wasm
//! guests and OS programs — a Node child is an OS program whose channel
//! end is a wire — with room for a remote process), how they talk, how
//! they are signalled, what they may use and how they end.
//!
//! WIT-free on purpose: nothing here names a type generated from the WIT
//! (a grep for the generated module finds nothing here). The interfaces (`process`, `child_process`) convert at their edge, as
//! wasmtime's `sockets` core keeps its own `ErrorCode` and `p2/network.rs`
//! converts it.

pub mod argv;
pub mod budget;
pub mod buffer;
pub mod capacity;
pub mod caps;
pub mod cgroup;
pub mod cluster;
pub mod event;
pub mod exit;
pub mod flow;
pub mod inbox;
pub mod latch;
pub mod lifecycle;
pub mod listen;
pub mod message;
pub mod net;
pub mod pipe;
pub mod port;
pub mod preempt;
pub mod proc;
pub mod sentinel;
pub mod signal;
pub mod table;
pub mod unix;

use caps::TotalMemory;
use exit::ExitStatus;
use proc::Proc;
use signal::Signal;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use table::ProcessTable;

/// Runs `f`, which may block in the file system or the kernel on what a
/// guest named (a `cwd`, a `PATH`, the program a spawn execs), without
/// holding up the other tasks of this runtime worker: they move to another
/// thread meanwhile (`block_in_place`, ~µs). Outside a multi-threaded
/// runtime, `f` just runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The host-wide runtime: the process table and what every process shares.
/// Cheap to clone.
#[derive(Clone)]
pub struct Runtime(Arc<Inner>);

struct Inner {
    table: ProcessTable,
    kill_grace: Duration,
    /// All guests' linear memory together (`--max-total-memory`).
    total_memory: Arc<TotalMemory>,
    /// Makes running guests yield when a woken one finds no free worker.
    preempt: Arc<preempt::Preempt>,
    /// The sentinel's program (`HiveConfig::sentinel`).
    sentinel_program: Option<PathBuf>,
    /// Started with the first OS child (`None` if it could not start).
    sentinel: OnceLock<Option<sentinel::Sentinel>>,
    /// Every listening socket cluster workers share.
    listeners: Arc<listen::Registry>,
    /// What the host can hold past `--max-procs` (kernel mappings,
    /// address space).
    capacity: capacity::Capacity,
}

/// What the runtime is built from.
pub struct RuntimeConfig {
    /// `--max-procs`: live processes at most, wasm and OS together.
    pub max_procs: u32,
    /// How long an OS child gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// `--max-total-memory`: all guests' linear memory together.
    pub max_total_memory: u64,
    /// The `host` binary to run as the sentinel, if any.
    pub sentinel: Option<PathBuf>,
    /// What the host can hold past `max_procs`.
    pub capacity: capacity::Capacity,
}

impl Runtime {
    /// A runtime with an empty process table. `engine` is the one whose
    /// epoch preemption bumps.
    pub fn new(config: RuntimeConfig, engine: wasmtime::Engine) -> Runtime {
        let workers =
            tokio::runtime::Handle::try_current().map_or(1, |rt| rt.metrics().num_workers());
        Runtime(Arc::new(Inner {
            table: ProcessTable::new(config.max_procs),
            kill_grace: config.kill_grace,
            total_memory: TotalMemory::new(config.max_total_memory),
            preempt: preempt::Preempt::new(engine, workers),
            sentinel_program: config.sentinel,
            sentinel: OnceLock::new(),
            listeners: Arc::default(),
            capacity: config.capacity,
        }))
    }

    /// What the host can hold past `--max-procs`.
    pub fn capacity(&self) -> &capacity::Capacity {
        &self.0.capacity
    }

    /// Every live process.
    pub fn processes(&self) -> &ProcessTable {
        &self.0.table
    }

    /// The listener registry cluster workers share sockets through.
    pub fn listeners(&self) -> &Arc<listen::Registry> {
        &self.0.listeners
    }

    /// How long an OS child gets between SIGTERM and SIGKILL.
    pub fn kill_grace(&self) -> Duration {
        self.0.kill_grace
    }

    /// All guests' linear memory together.
    pub fn total_memory(&self) -> &Arc<TotalMemory> {
        &self.0.total_memory
    }

    /// Runs `body` as `proc`'s task: preemptible, ended early by a fatal
    /// signal, and reported through [`lifecycle::ended`] when it is over.
    /// Dropping `body` (a kill) drops whatever it owns — a guest's store,
    /// and with it its stdio and child handles — before the parent hears.
    pub fn run_task(
        &self,
        proc: Arc<Proc>,
        body: impl Future<Output = ExitStatus> + Send + 'static,
    ) {
        let rt = self.clone();
        let proc_cpu = proc.cpu_ns.clone();
        let me = proc.clone();
        // Boxed: moved into `select!` unboxed, it would be stored twice in
        // the task (the capture and the select's own); and it must be
        // dropped before the parent hears.
        let body = Box::pin(body);
        let task = async move {
            let mut body = body;
            let status = tokio::select! {
                biased;
                signal = proc.fatal.wait() => ExitStatus::Signal(signal),
                status = &mut body => status,
            };
            drop(body);
            tracing::debug!(pid = proc.pid, %status, "process ended");
            lifecycle::ended(&rt, &proc, status);
        };
        tracing::trace!(bytes = size_of_val(&task), "process task size");
        let task = self.0.preempt.task(task, proc_cpu);
        let _ = me.task.set(task.handle());
        tokio::spawn(task);
    }

    /// Has the sentinel end OS process group `pgid` if the host dies.
    pub fn watch_group(&self, pgid: u32) {
        if let Some(sentinel) = self.sentinel() {
            sentinel.watch(pgid);
        }
    }

    /// Group `pgid`'s leader was reaped.
    pub fn group_reaped(&self, pgid: u32) {
        if let Some(sentinel) = self.sentinel() {
            sentinel.reaped(pgid);
        }
    }

    /// Starts the sentinel, if not yet, before an OS program joins a pids
    /// cgroup: it ends and removes the host's cgroups if the host dies.
    pub fn watch_cgroups(&self) {
        let _ = self.sentinel();
    }

    fn sentinel(&self) -> Option<&sentinel::Sentinel> {
        self.0
            .sentinel
            .get_or_init(|| {
                let program = self.0.sentinel_program.as_ref()?;
                sentinel::Sentinel::start(program, self.0.kill_grace)
                    .inspect_err(|e| {
                        tracing::warn!(
                            "could not start the sentinel ({e}): OS children may outlive a killed host"
                        )
                    })
                    .ok()
            })
            .as_ref()
    }

    /// SIGKILLs every attached OS child, with its group, now.
    pub fn kill_os_children(&self) {
        for proc in self.processes().attached_os() {
            if proc.leads_group() {
                let _ = unix::signal_group(proc.pid, Signal::KILL.number());
            }
            proc.signal(Signal::KILL);
        }
    }

    /// Ends every process: wasm processes at once, OS children with
    /// SIGTERM, then SIGKILL after the grace period; waits until every OS
    /// child that is not detached has been reaped, and with `wasm` until
    /// every wasm process has ended too (its store dropped, its end
    /// reported).
    pub async fn shutdown(&self, wasm: bool) {
        // Every process that ends SIGTERMs its OS children and SIGKILLs them
        // after the grace period (`lifecycle::ended`): here we only wait for
        // them to be reaped, with a margin for the kill to land.
        let killed = self.processes().wasm_count();
        self.processes().kill_wasm();
        let deadline = tokio::time::Instant::now() + self.0.kill_grace + Duration::from_millis(500);
        loop {
            let removed = self.processes().removal();
            // Counts, not the table: walking it at every one of 100,000
            // removals would be quadratic.
            let wasm_left = wasm && self.processes().wasm_count() > 0;
            if !wasm_left && self.processes().attached_os_count() == 0 {
                tracing::debug!(killed, waited_for_wasm = wasm, "processes ended");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                // The grace timers should have done this; do not hang.
                self.kill_os_children();
                let _ = tokio::time::timeout(Duration::from_millis(500), removed).await;
                return;
            }
            let _ = tokio::time::timeout_at(deadline, removed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// With one worker thread, a task blocked in `blocking` leaves the
    /// other tasks running: they tick while it sleeps.
    #[test]
    fn blocking_keeps_the_worker_s_other_tasks_going() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ticks = rt.block_on(async {
            let ticker = tokio::spawn(async {
                let mut ticks = 0;
                let until = Instant::now() + Duration::from_millis(300);
                while Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks += 1;
                }
                ticks
            });
            let blocked = tokio::spawn(async {
                super::blocking(|| std::thread::sleep(Duration::from_millis(250)));
            });
            blocked.await.unwrap();
            ticker.await.unwrap()
        });
        // Starved, it would tick only after the sleep: ~5 times.
        assert!(ticks >= 15, "{ticks} ticks");
    }
}
