//! The process table: every live process this host runs, wasm and OS alike,
//! and the ids they go by.

use super::budget::Budget;
use super::proc::{Proc, ProcKind};
use super::signal::Signal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Virtual pids start above Linux's largest `pid_max` (2^22), so they never
/// collide with a real pid: wasm and OS processes share one table.
pub const FIRST_VIRTUAL_PID: u32 = (1 << 22) + 1;

/// Every live process.
pub struct ProcessTable {
    procs: Mutex<HashMap<u32, Arc<Proc>>>,
    next_pid: AtomicU32,
    /// Woken whenever a process leaves the table.
    removed: Notify,
    /// How many of them are wasm processes, and OS processes that end with
    /// the host.
    wasm: AtomicUsize,
    attached: AtomicUsize,
    /// `--max-procs`: every live process, wasm or OS, is charged here.
    pub budget: Arc<Budget>,
}

impl ProcessTable {
    /// An empty table of at most `max_procs` live processes.
    pub fn new(max_procs: u32) -> ProcessTable {
        ProcessTable {
            procs: Mutex::default(),
            next_pid: AtomicU32::new(FIRST_VIRTUAL_PID),
            removed: Notify::new(),
            wasm: AtomicUsize::new(0),
            attached: AtomicUsize::new(0),
            budget: Budget::root(max_procs),
        }
    }

    /// A fresh virtual pid that no process has or will have.
    pub fn allocate_id(&self) -> u32 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn insert(&self, proc: Arc<Proc>) {
        if let Some(count) = self.count(&proc) {
            count.fetch_add(1, Ordering::AcqRel);
        }
        self.procs.lock().unwrap().insert(proc.pid, proc);
    }

    pub(super) fn remove(&self, pid: u32) {
        let gone = self.procs.lock().unwrap().remove(&pid);
        if let Some(count) = gone.as_deref().and_then(|p| self.count(p)) {
            count.fetch_sub(1, Ordering::AcqRel);
        }
        self.removed.notify_waiters();
    }

    /// The counter `proc` is one of (detached OS processes have none).
    fn count(&self, proc: &Proc) -> Option<&AtomicUsize> {
        match proc.kind {
            ProcKind::Wasm => Some(&self.wasm),
            ProcKind::Os {
                detached: false, ..
            } => Some(&self.attached),
            ProcKind::Os { detached: true, .. } => None,
        }
    }

    /// Live wasm processes (without walking the table).
    pub fn wasm_count(&self) -> usize {
        self.wasm.load(Ordering::Acquire)
    }

    /// Live OS processes that end with the host (without walking the
    /// table).
    pub fn attached_os_count(&self) -> usize {
        self.attached.load(Ordering::Acquire)
    }

    /// The live processes that `keep` selects.
    pub fn select(&self, keep: impl Fn(&Proc) -> bool) -> Vec<Arc<Proc>> {
        let procs = self.procs.lock().unwrap();
        procs.values().filter(|p| keep(p)).cloned().collect()
    }

    /// The live OS processes that are not detached (that end with the host).
    pub fn attached_os(&self) -> Vec<Arc<Proc>> {
        self.select(|p| {
            matches!(
                p.kind,
                ProcKind::Os {
                    detached: false,
                    ..
                }
            )
        })
    }

    /// Waits until a process leaves the table.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; but a removal between the caller's check and this call
    /// is missed: take [`ProcessTable::removal`] before checking instead.
    pub fn removal(&self) -> tokio::sync::futures::Notified<'_> {
        self.removed.notified()
    }

    /// Ends every wasm process at once (SIGKILL); their OS children then
    /// get SIGTERM and, after the grace period, SIGKILL.
    pub fn kill_wasm(&self) {
        for proc in self.select(|p| p.kind == ProcKind::Wasm) {
            proc.signal(Signal::KILL);
        }
    }
}
