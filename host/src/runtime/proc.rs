//! A process as the runtime sees it, whatever it runs: its identity, inbox,
//! signals, children and how it ended.

use super::budget::{Budget, Slot};
use super::event::{Event, Taken};
use super::exit::ExitStatus;
use super::inbox::Inbox;
use super::latch::Latch;
use super::lifecycle::channel::Channel;
use super::pipe::Pipe;
use super::signal::{DefaultAction, Signal};
use super::unix;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// What a process runs. Every kind has the same events, signals and
/// budget; only how a signal is delivered and how it is reaped differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcKind {
    /// A wasm guest in this host: one store, one task; its pid is virtual.
    Wasm,
    /// A real OS process; its pid is the kernel's.
    Os {
        /// In its own session, allowed to outlive the host.
        detached: bool,
        /// Leads its own process group (its descendants with it), which
        /// ends with it when its parent ends (and with the host, through
        /// the sentinel).
        group: bool,
    },
}

/// A process that watches another end (`Proc::watch`).
struct Watcher {
    /// A monitor's id; `None` for a link.
    monitor: Option<u32>,
    by: Weak<Proc>,
}

impl Watcher {
    fn is(&self, proc: &Arc<Proc>) -> bool {
        std::ptr::eq(self.by.as_ptr(), Arc::as_ptr(proc))
    }

    /// Process `pid` ended with `status`.
    fn notify(&self, pid: u32, status: ExitStatus) {
        let Some(by) = self.by.upgrade() else { return };
        match self.monitor {
            Some(monitor) => by.inbox.push(
                Event::Down {
                    monitor,
                    pid,
                    status,
                },
                None,
            ),
            None if status != ExitStatus::Code(0) => {
                by.signal(Signal::TERM);
            }
            None => {}
        }
    }
}

/// A live or ended process, as the table, its parent and its children see it.
pub struct Proc {
    /// Virtual (wasm) or real (OS).
    pub pid: u32,
    /// The module or program as it was started (its `argv[0]`).
    pub name: String,
    /// What it runs.
    pub kind: ProcKind,
    /// Its events, in arrival order.
    pub inbox: Arc<Inbox>,
    /// The channel to this process's parent, if it has one.
    pub channel: Option<Arc<Channel>>,
    /// Who to tell when it ends (`None` for the root). Weak: a parent
    /// holds its children, not the other way round.
    pub(super) parent: Option<Weak<Proc>>,
    handled: Mutex<HashSet<Signal>>,
    /// The pending fatal signal, which the process's task obeys.
    pub(super) fatal: Latch<Signal>,
    status: Latch<ExitStatus>,
    /// Live children, ended when this process ends.
    pub(super) children: Mutex<HashMap<u32, Arc<Proc>>>,
    /// Set once `close` was queued to the parent: no more events will come.
    closed: AtomicBool,
    /// Whether a `kill` (or a timeout) delivered a signal (Node's `killed`).
    killed: AtomicBool,
    /// Whether its parent has taken its `exit` event: only then does the
    /// parent see how it ended (Node sets `exitCode` as it emits `exit`).
    pub(super) exit_taken: Taken,
    /// Output pipes to the parent: `close` waits until they are finished with.
    pub(super) pipes: Vec<Arc<Pipe>>,
    /// Its place in its budgets, given back when it ends.
    pub(super) slot: Mutex<Option<Slot>>,
    /// HTTP servers it listens with: requests can still arrive.
    servers: std::sync::atomic::AtomicUsize,
    /// A wasm process's linear memory in bytes (its metrics).
    pub memory: Arc<std::sync::atomic::AtomicU64>,
    /// Nanoseconds its task spent being polled: a wasm process's CPU time
    /// (its code and its host calls).
    pub cpu_ns: Arc<std::sync::atomic::AtomicU64>,
    /// The budget this process and its descendants are charged to.
    pub budget: Arc<Budget>,
    /// Who watches it end: monitors (a `down` event) and links (`SIGTERM`
    /// on an abnormal end).
    watchers: Mutex<Vec<Watcher>>,
    /// The limit that ended it, if one did (a `caps::Limit` as a byte).
    limit: std::sync::atomic::AtomicU8,
    /// Its task, once running: where its companions run.
    pub(super) task: std::sync::OnceLock<super::preempt::TaskHandle>,
    /// How many times it replaces one that ended, as its parent said.
    pub restarts: u32,
}

impl Proc {
    /// A new process record; `slot` is its place in `budget`.
    pub(super) fn new(
        pid: u32,
        name: String,
        kind: ProcKind,
        parent: Option<&Arc<Proc>>,
        channel: Option<Arc<Channel>>,
        pipes: Vec<Arc<Pipe>>,
        slot: Slot,
    ) -> Proc {
        Proc {
            pid,
            name,
            kind,
            inbox: channel
                .as_ref()
                .and_then(|c| c.child_inbox().cloned())
                .unwrap_or_default(),
            channel,
            parent: parent.map(Arc::downgrade),
            handled: Mutex::default(),
            fatal: Latch::default(),
            status: Latch::default(),
            children: Mutex::default(),
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            exit_taken: Taken::default(),
            pipes,
            budget: slot.budget().clone(),
            slot: Mutex::new(Some(slot)),
            servers: Default::default(),
            memory: Arc::default(),
            cpu_ns: Arc::default(),
            task: Default::default(),
            limit: Default::default(),
            watchers: Mutex::default(),
            restarts: 0,
        }
    }

    /// How many live children it has.
    pub fn child_count(&self) -> usize {
        self.children.lock().unwrap().len()
    }

    /// Its parent's pid, while the parent lives (`None` for the root).
    pub fn parent_pid(&self) -> Option<u32> {
        self.parent.as_ref().and_then(Weak::upgrade).map(|p| p.pid)
    }

    /// It and its live descendants, parents before their children.
    pub fn subtree(self: &Arc<Proc>) -> Vec<Arc<Proc>> {
        let mut all = vec![self.clone()];
        let mut at = 0;
        while at < all.len() {
            let children: Vec<Arc<Proc>> =
                all[at].children.lock().unwrap().values().cloned().collect();
            all.extend(children.into_iter().filter(|c| c.status().is_none()));
            at += 1;
        }
        all
    }

    /// Its live descendant `pid` (a child, a grandchild, ...).
    pub fn descendant(&self, pid: u32) -> Option<Arc<Proc>> {
        let mut level: Vec<Arc<Proc>> = self.children.lock().unwrap().values().cloned().collect();
        while !level.is_empty() {
            if let Some(found) = level.iter().find(|p| p.pid == pid) {
                return Some(found.clone()).filter(|p| p.status().is_none());
            }
            level = level
                .iter()
                .flat_map(|p| {
                    p.children
                        .lock()
                        .unwrap()
                        .values()
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        None
    }

    /// `by` watches this process end: with `monitor` set, it gets a `down`
    /// event with that id; without, it is linked (SIGTERM on an abnormal
    /// end). If it has ended already, `by` hears at once.
    pub fn watch(self: &Arc<Proc>, by: &Arc<Proc>, monitor: Option<u32>) {
        let mut watchers = self.watchers.lock().unwrap();
        if let Some(status) = self.status() {
            drop(watchers);
            return Watcher {
                monitor,
                by: Arc::downgrade(by),
            }
            .notify(self.pid, status);
        }
        if monitor.is_none() && watchers.iter().any(|w| w.monitor.is_none() && w.is(by)) {
            return;
        }
        watchers.push(Watcher {
            monitor,
            by: Arc::downgrade(by),
        });
    }

    /// `by` stops watching: monitor `monitor`, or (`None`) its link.
    pub fn unwatch(&self, by: &Arc<Proc>, monitor: Option<u32>) {
        self.watchers
            .lock()
            .unwrap()
            .retain(|w| !(w.monitor == monitor && w.is(by)));
    }

    /// Tells its watchers it ended with `status` (from `lifecycle::ended`,
    /// after the status is set, so no watcher is missed).
    pub(super) fn notify_watchers(&self, status: ExitStatus) {
        let watchers = std::mem::take(&mut *self.watchers.lock().unwrap());
        for watcher in watchers {
            watcher.notify(self.pid, status);
        }
    }

    /// It reached `limit` (the first one counts).
    pub fn reached(&self, limit: super::caps::Limit) {
        let _ = self
            .limit
            .compare_exchange(0, limit as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The limit it reached, if any.
    pub fn limit_reached(&self) -> Option<super::caps::Limit> {
        super::caps::Limit::from_u8(self.limit.load(Ordering::Acquire))
    }

    /// Runs `future` for this process on its own task (see
    /// `preempt`: its HTTP connections), or on a task of its own if the
    /// process has none.
    pub fn spawn_companion(&self, future: impl Future<Output = ()> + Send + 'static) {
        match self.task.get() {
            Some(task) => task.spawn(future),
            None => {
                tokio::spawn(future);
            }
        }
    }

    /// Whether it is a real OS process.
    pub fn is_os(&self) -> bool {
        matches!(self.kind, ProcKind::Os { .. })
    }

    /// A wasm process's linear memory in bytes; `None` for an OS process,
    /// which the host does not measure.
    pub fn memory_bytes(&self) -> Option<u64> {
        (!self.is_os()).then(|| self.memory.load(Ordering::Relaxed))
    }

    /// A wasm process's CPU time in microseconds; `None` for an OS one.
    pub fn cpu_us(&self) -> Option<u64> {
        (!self.is_os()).then(|| self.cpu_ns.load(Ordering::Relaxed) / 1000)
    }

    /// Whether it is an OS process leading its own process group.
    pub fn leads_group(&self) -> bool {
        matches!(self.kind, ProcKind::Os { group: true, .. })
    }

    /// Whether every event of this child has been queued; a child that
    /// never started (`None`) has queued all of its events already.
    pub fn all_reported(proc: Option<&Arc<Proc>>) -> bool {
        proc.is_none_or(|p| p.closed.load(Ordering::Acquire))
    }

    /// Marks that `close` was queued.
    pub(super) fn set_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Records how the process ended. Only the first status counts.
    pub(super) fn set_status(&self, status: ExitStatus) -> bool {
        self.status.set(status)
    }

    /// Forgets a child that has closed.
    pub(super) fn remove_child(&self, pid: u32) {
        self.children.lock().unwrap().remove(&pid);
        self.inbox.wake();
    }

    pub(super) fn add_child(&self, child: Arc<Proc>) {
        self.children.lock().unwrap().insert(child.pid, child);
    }

    /// How the process ended, once it has.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status.get()
    }

    /// Waits for the process to end.
    pub async fn wait(&self) -> ExitStatus {
        self.status.wait().await
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
        if self.is_os() {
            // A real process: a real signal. ESRCH (already gone) is `false`.
            return unix::signal_pid(self.pid, signal.number()).unwrap_or(false);
        }
        if signal.number() == 0 {
            return true;
        }
        if signal.catchable() && self.handled.lock().unwrap().contains(&signal) {
            self.inbox.push(Event::Signal(signal), None);
            return true;
        }
        if signal == Signal::KILL || signal.default_action() == DefaultAction::Terminate {
            // The first fatal signal wins; the task reports it as the status.
            self.fatal.set(signal);
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

    /// How it ended, once its parent has taken its `exit` event.
    pub fn reported_status(&self) -> Option<ExitStatus> {
        self.status().filter(|_| self.exit_taken.is_set())
    }

    /// Whether `kill` (or a timeout) delivered a signal to it.
    pub fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Whether an event can still arrive: one is queued, the parent channel
    /// is open, a child is alive, a signal handler is installed, or an HTTP
    /// server listens.
    pub fn can_receive(&self) -> bool {
        self.inbox.has_any()
            || self.servers.load(Ordering::Acquire) > 0
            || self.channel.as_ref().is_some_and(|c| c.connected())
            || !self.children.lock().unwrap().is_empty()
            || !self.handled.lock().unwrap().is_empty()
    }

    /// An HTTP server of this process started (`true`) or stopped.
    pub fn server_listening(&self, listening: bool) {
        if listening {
            self.servers.fetch_add(1, Ordering::AcqRel);
        } else {
            self.servers.fetch_sub(1, Ordering::AcqRel);
        }
        self.inbox.wake();
    }

    /// The output pipes `close` waits for.
    pub fn pipes(&self) -> &[Arc<Pipe>] {
        &self.pipes
    }
}
