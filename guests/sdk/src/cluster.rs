//! Cluster (Node's `cluster`): a primary forks workers running the same
//! component; workers that listen with plain `std::net` share one port.
//!
//! ```no_run
//! use hive::cluster;
//!
//! fn main() {
//!     if cluster::is_primary() {
//!         for _ in 0..2 {
//!             cluster::fork().unwrap();
//!         }
//!         cluster::on_exit(|worker, code, signal| {
//!             println!("worker {} died ({code:?}, {signal:?})", worker.id());
//!         });
//!         hive::run();
//!     } else {
//!         let listener = std::net::TcpListener::bind("127.0.0.1:8000").unwrap();
//!         for stream in listener.incoming() {
//!             let Ok(_stream) = stream else { break }; // disconnected
//!         }
//!     }
//! }
//! ```
//!
//! Events come in Node's order, a worker's own listeners before the
//! cluster's (`message` the other way round, as in Node, whose cluster
//! listener is registered first).

use crate::bindings::hive::process::cluster as wit;
use crate::bindings::hive::process::types::{ChildEventKind, Event};
use crate::emitter::Listeners;
use crate::event_loop::{self, Handle, HandleId};
use crate::supervisor::Intensity;
use crate::{Error, ErrorInfo, ExitStatus, IntoMessage, Message};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

pub use wit::{PrimarySettings as Settings, SchedulingPolicy, WorkerState};

/// What [`setup_primary`] changes (Node's `cluster.setupPrimary`
/// settings); `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    /// The module workers run (default: this process's own); a path not
    /// ending in `.wasm` runs under Node.
    pub exec: Option<String>,
    /// The workers' arguments.
    pub args: Option<Vec<String>>,
    /// Arguments before the module (Node's `execArgv`).
    pub exec_argv: Option<Vec<String>>,
    /// The program that runs a Node worker.
    pub exec_path: Option<String>,
    /// The channel's wire format to Node workers.
    pub serialization: Option<crate::Serialization>,
    /// Workers' stdio are pipes nobody reads (Node's `silent`).
    pub silent: Option<bool>,
    /// The policy of listeners created from now on.
    pub scheduling_policy: Option<SchedulingPolicy>,
    /// Each worker's limits (beyond Node), at most this process's own.
    pub limits: Option<crate::Limits>,
}

impl From<SetupOptions> for wit::SetupOptions {
    fn from(o: SetupOptions) -> Self {
        wit::SetupOptions {
            exec: o.exec,
            args: o.args,
            exec_argv: o.exec_argv,
            exec_path: o.exec_path,
            serialization: o.serialization.map(Into::into),
            silent: o.silent,
            scheduling_policy: o.scheduling_policy,
            limits: o.limits.map(Into::into),
        }
    }
}

/// Where a worker listens (Node's `address` of `listening`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The IP address.
    pub address: String,
    /// The port (the real one for `listen(0)`).
    pub port: u16,
    /// 4 or 6.
    pub address_type: u8,
}

#[derive(Default)]
struct WorkerEvents {
    online: Listeners<()>,
    listening: Listeners<Address>,
    message: Listeners<Message>,
    disconnect: Listeners<()>,
    exit: Listeners<ExitStatus>,
    error: Listeners<ErrorInfo>,
}

struct WorkerInner {
    handle: wit::Worker,
    /// What it was forked with (a restart or reload forks the same).
    env: Option<Vec<(String, String)>>,
    /// How many crashed workers it replaces in turn (the restart policy's).
    restarts: u32,
    id: u32,
    child_id: u32,
    events: WorkerEvents,
    disconnected: Cell<bool>,
    exited: Cell<bool>,
    /// Node's `worker.state`, which changes as the primary handles the
    /// worker's events (the host's `state` may be ahead of it).
    state: Cell<WorkerState>,
}

/// A worker, as the primary holds it (Node's `Worker`). Cloning gives
/// another handle to the same worker.
#[derive(Clone)]
pub struct Worker(Rc<WorkerInner>);

/// The cluster's own listeners (Node's `cluster.on(...)`), and its workers.
#[derive(Default)]
struct Primary {
    setup: Listeners<Settings>,
    fork: Listeners<Worker>,
    online: Listeners<Worker>,
    listening: Listeners<(Worker, Address)>,
    message: Listeners<(Worker, Message)>,
    disconnect: Listeners<Worker>,
    exit: Listeners<(Worker, ExitStatus)>,
    /// Node's `cluster.workers`: until a worker has both disconnected and
    /// exited (or the primary disconnected it).
    workers: RefCell<BTreeMap<u32, Worker>>,
    /// `disconnect(cb)` callbacks, run when `workers` becomes empty.
    on_empty: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// The restart policy and the restarts it allowed (a supervisor's
    /// intensity: `hive::supervisor`).
    restart: RefCell<Option<Intensity>>,
    /// Workers the restart policy forked again.
    restarted: Cell<u32>,
}

thread_local! {
    static PRIMARY: Rc<Primary> = Rc::default();
}

fn primary() -> Rc<Primary> {
    PRIMARY.with(Rc::clone)
}

impl Primary {
    /// Re-forks a crashed worker if the restart policy says so.
    fn restart(&self, worker: &Worker) {
        let delay = {
            let mut restart = self.restart.borrow_mut();
            let Some(intensity) = restart.as_mut() else {
                return;
            };
            match intensity.next_delay() {
                Some(delay) => delay,
                None => {
                    eprintln!(
                        "cluster: worker {} crashed {} times within {:?}: not restarting it (RestartPolicy.max_restarts)",
                        worker.id(),
                        intensity.recent() + 1,
                        intensity.policy.window
                    );
                    return;
                }
            }
        };
        self.restarted.set(self.restarted.get() + 1);
        let env = worker.0.env.clone();
        let restarts = worker.0.restarts + 1;
        let fork = move || {
            if let Err(e) = fork_worker(env.clone(), restarts) {
                eprintln!("cluster: restarting a worker failed: {e}");
            }
        };
        if delay.is_zero() {
            fork();
        } else {
            crate::set_timeout(delay.as_millis().max(1) as u64, fork);
        }
    }

    fn remove(&self, id: u32) {
        let removed = self.workers.borrow_mut().remove(&id).is_some();
        if removed && self.workers.borrow().is_empty() {
            let callbacks = std::mem::take(&mut *self.on_empty.borrow_mut());
            for cb in callbacks {
                cb();
            }
        }
    }
}

/// How many CPUs the host may use (Node's `os.availableParallelism()`).
pub fn available_parallelism() -> u32 {
    wit::available_parallelism()
}

/// Whether this process is not a cluster worker (Node's `cluster.isPrimary`).
pub fn is_primary() -> bool {
    wit::is_primary()
}

/// Whether this process is a cluster worker (Node's `cluster.isWorker`).
pub fn is_worker() -> bool {
    // Asked by the event loop at every turn; it never changes.
    thread_local! {
        static IS_WORKER: bool = wit::is_worker();
    }
    IS_WORKER.with(|w| *w)
}

/// In a worker, its id (Node's `cluster.worker.id`).
pub fn worker_id() -> Option<u32> {
    wit::worker_id()
}

/// Changes the settings for workers forked from now on (Node's
/// `cluster.setupPrimary`); `setup` is emitted on the next turn of the loop.
pub fn setup_primary(options: SetupOptions) -> Result<Settings, Error> {
    let settings = wit::setup_primary(&options.into())?;
    let emitted = settings.clone();
    let mut once = Some(emitted);
    event_loop::defer(move || {
        if let Some(s) = once.take() {
            primary().setup.emit(&s);
        }
    });
    Ok(settings)
}

/// The current settings (Node's `cluster.settings`).
pub fn settings() -> Settings {
    wit::settings()
}

/// Forks a worker (Node's `cluster.fork()`).
pub fn fork() -> Result<Worker, Error> {
    fork_with_env(None)
}

/// Forks a worker with `env` added to this process's environment (Node's
/// `cluster.fork(env)`); `fork` is emitted on the next turn of the loop.
pub fn fork_with_env(env: Option<Vec<(String, String)>>) -> Result<Worker, Error> {
    fork_worker(env, 0)
}

/// [`fork_with_env`], as the `restarts`-th replacement of a crashed worker.
fn fork_worker(env: Option<Vec<(String, String)>>, restarts: u32) -> Result<Worker, Error> {
    let handle = wit::fork(env.as_deref(), restarts)?;
    let inner = Rc::new(WorkerInner {
        env,
        restarts,
        id: handle.id(),
        child_id: handle.child_id(),
        handle,
        events: WorkerEvents::default(),
        disconnected: Cell::new(false),
        exited: Cell::new(false),
        state: Cell::new(WorkerState::None),
    });
    let worker = Worker(inner.clone());
    event_loop::register(HandleId::Child(inner.child_id), inner);
    primary()
        .workers
        .borrow_mut()
        .insert(worker.id(), worker.clone());
    // Node's `fork` calls `setupPrimary()`, which emits `setup` (on the next
    // tick, before `fork`).
    let mut once = Some((wit::settings(), worker.clone()));
    event_loop::defer(move || {
        if let Some((settings, w)) = once.take() {
            let p = primary();
            p.setup.emit(&settings);
            p.fork.emit(&w);
        }
    });
    Ok(worker)
}

/// The live workers (Node's `cluster.workers`), by id.
pub fn workers() -> Vec<Worker> {
    primary().workers.borrow().values().cloned().collect()
}

/// Disconnects every worker (Node's `cluster.disconnect(cb)`); `cb` runs
/// once no worker is left.
pub fn disconnect(cb: impl FnOnce() + 'static) {
    let p = primary();
    p.on_empty.borrow_mut().push(Box::new(cb));
    for worker in workers() {
        if worker.is_connected() {
            let _ = worker.disconnect();
        }
    }
    if p.workers.borrow().is_empty() {
        let mut callbacks = std::mem::take(&mut *p.on_empty.borrow_mut());
        event_loop::defer(move || {
            for cb in std::mem::take(&mut callbacks) {
                cb();
            }
        });
    }
}

/// When a crashed worker is forked again (beyond Node, as PM2's and OTP's
/// supervisors; the policy is a supervisor's, `hive::supervisor`): a
/// worker that exits non-zero or by a signal, not after a graceful
/// disconnect, is replaced after the policy's backoff; past `max_restarts`
/// within `window` it stays dead and a line on stderr says so. The
/// replacement is a new worker (new id), with the same environment, and
/// emits `fork`, `online`, `listening` as any. While one is pending, a
/// listener whose last worker died stays open for it (the longest backoff
/// and a second more), so clients wait instead of being refused.
pub use crate::supervisor::RestartPolicy;

/// How many workers the restart policy has forked again so far.
pub fn restarts() -> u32 {
    primary().restarted.get()
}

/// Sets (or with `None` removes) the restart policy: the setup-primary
/// option Node lacks.
pub fn set_restart_policy(policy: Option<RestartPolicy>) {
    let hold = policy.as_ref().map_or(Duration::ZERO, |p| {
        p.initial_delay.max(p.max_delay) + Duration::from_secs(1)
    });
    wit::hold_listeners_on_crash(hold.as_millis().min(u128::from(u32::MAX)) as u32);
    *primary().restart.borrow_mut() = policy.map(Intensity::new);
}

/// How [`reload`] replaces each worker.
#[derive(Debug, Clone, Copy)]
pub struct ReloadOptions {
    /// Wait for the new worker's first message (a "ready" message) after
    /// its `listening`, before switching.
    pub wait_for_message: bool,
    /// After the switch, how long the old worker has to finish before it
    /// gets `SIGTERM`.
    pub drain: Duration,
    /// How long after `SIGTERM` it gets `SIGKILL`.
    pub kill_grace: Duration,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions {
            wait_for_message: false,
            drain: Duration::from_secs(5),
            kill_grace: Duration::from_secs(2),
        }
    }
}

/// A rolling reload, beyond Node (PM2's `reload`, without its dropped
/// requests): one worker at a time, fork a replacement with the same
/// environment, wait for its `listening` (and, if asked, its first
/// message), then disconnect the old one — the host stops routing to it at
/// once, its open connections get `Connection: close` on their next
/// response and drain — and end it with `SIGTERM`, then `SIGKILL`, if it
/// has not exited by the deadlines. `done(replaced)` runs once every
/// worker was switched. A replacement that exits before it is ready is
/// skipped: the old worker stays.
pub fn reload(options: ReloadOptions, done: impl FnOnce(usize) + 'static) {
    let old: VecDeque<Worker> = workers().into_iter().filter(|w| w.is_connected()).collect();
    reload_next(old, options, 0, Rc::new(RefCell::new(Some(Box::new(done)))));
}

type ReloadDone = Rc<RefCell<Option<Box<dyn FnOnce(usize)>>>>;

fn reload_next(
    mut old: VecDeque<Worker>,
    options: ReloadOptions,
    replaced: usize,
    done: ReloadDone,
) {
    let Some(worker) = old.pop_front() else {
        if let Some(done) = done.borrow_mut().take() {
            done(replaced);
        }
        return;
    };
    let replacement = match fork_with_env(worker.0.env.clone()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cluster: reload could not fork a replacement: {e}");
            return reload_next(old, options, replaced, done);
        }
    };
    // Switch once, on whichever comes first of ready and its exit.
    let next = Rc::new(RefCell::new(Some((old, done))));
    let switch = {
        let next = next.clone();
        move |ready: bool| {
            let Some((old, done)) = next.borrow_mut().take() else {
                return;
            };
            if ready {
                let _ = worker.disconnect();
                let w = worker.clone();
                crate::set_timeout(options.drain.as_millis().max(1) as u64, move || {
                    if !w.is_dead() {
                        let _ = w.kill("SIGTERM");
                        let w = w.clone();
                        crate::set_timeout(
                            options.kill_grace.as_millis().max(1) as u64,
                            move || {
                                if !w.is_dead() {
                                    let _ = w.kill("SIGKILL");
                                }
                            },
                        );
                    }
                });
            }
            reload_next(old, options, replaced + usize::from(ready), done);
        }
    };
    let switch = Rc::new(RefCell::new(switch));
    let s = switch.clone();
    if options.wait_for_message {
        let listening = Rc::new(Cell::new(false));
        let l = listening.clone();
        replacement.on_listening(move |_| l.set(true));
        replacement.on_message(move |_| {
            if listening.get() {
                (s.borrow_mut())(true);
            }
        });
    } else {
        replacement.on_listening(move |_| (s.borrow_mut())(true));
    }
    replacement.on_exit(move |_, _| (switch.borrow_mut())(false));
}

/// Sets the policy of the listener on `port` (0: the default) before a
/// worker creates it.
pub fn set_listener_policy(port: u16, policy: SchedulingPolicy) {
    wit::set_listener_policy(port, policy);
}

/// This cluster's shared listeners with per-worker connection counts.
pub fn listeners() -> Vec<wit::ListenerInfo> {
    wit::listeners()
}

/// In a worker: disconnects it from its primary gracefully (Node's
/// `cluster.worker.disconnect()` in the worker): it leaves every shared
/// listener, is marked as exiting after a disconnect, and closes its
/// channel. Does nothing in a primary.
pub fn disconnect_worker() -> Result<(), Error> {
    if !is_worker() {
        return Ok(());
    }
    wit::disconnect_worker();
    crate::process::disconnect()
}

/// In a worker: makes its following listens private sockets (Node's
/// `listen({exclusive: true})`), or shared again.
pub fn set_exclusive(exclusive: bool) {
    wit::set_exclusive(exclusive);
}

/// `f(settings)` after each `setup_primary`.
pub fn on_setup(mut f: impl FnMut(&Settings) + 'static) {
    primary().setup.add(move |s| f(s));
}

/// `f(worker)` after each `fork`.
pub fn on_fork(mut f: impl FnMut(&Worker) + 'static) {
    primary().fork.add(move |w| f(w));
}

/// `f(worker)` when a worker is online.
pub fn on_online(mut f: impl FnMut(&Worker) + 'static) {
    primary().online.add(move |w| f(w));
}

/// `f(worker, address)` when a worker listens.
pub fn on_listening(mut f: impl FnMut(&Worker, &Address) + 'static) {
    primary().listening.add(move |(w, a)| f(w, a));
}

/// `f(worker, message)` for each message from any worker.
pub fn on_message(mut f: impl FnMut(&Worker, &Message) + 'static) {
    primary().message.add(move |(w, m)| f(w, m));
}

/// `f(worker)` when a worker's channel closes.
pub fn on_disconnect(mut f: impl FnMut(&Worker) + 'static) {
    primary().disconnect.add(move |w| f(w));
}

/// `f(worker, code, signal)` when a worker exits.
pub fn on_exit(mut f: impl FnMut(&Worker, Option<i32>, Option<String>) + 'static) {
    primary()
        .exit
        .add(move |(w, s)| f(w, s.code, s.signal.clone()));
}

impl Handle for WorkerInner {
    fn has_ref(&self) -> bool {
        true
    }

    fn deliver(self: Rc<Self>, event: Event) {
        let Event::Child(event) = event else { return };
        let worker = Worker(self.clone());
        let p = primary();
        match event.kind {
            ChildEventKind::Spawn => {}
            ChildEventKind::Online => {
                self.state.set(WorkerState::Online);
                self.events.online.emit(&());
                p.online.emit(&worker);
            }
            ChildEventKind::Listening(a) => {
                let address = Address {
                    address: a.address,
                    port: a.port,
                    address_type: a.address_type,
                };
                self.state.set(WorkerState::Listening);
                self.events.listening.emit(&address);
                p.listening.emit(&(worker, address));
            }
            ChildEventKind::Message(m) => {
                let msg = Message::from(m);
                p.message.emit(&(worker, msg.clone()));
                self.events.message.emit(&msg);
            }
            // Node removes a worker that has both disconnected and exited
            // before it emits the second of the two.
            ChildEventKind::Disconnect => {
                self.disconnected.set(true);
                if self.exited.get() {
                    p.remove(self.id);
                } else {
                    self.state.set(WorkerState::Disconnected);
                }
                self.events.disconnect.emit(&());
                p.disconnect.emit(&worker);
            }
            ChildEventKind::Exit(status) => {
                self.exited.set(true);
                if self.disconnected.get() {
                    p.remove(self.id);
                }
                self.state.set(WorkerState::Dead);
                let crashed = status.code != Some(0) || status.signal.is_some();
                self.events.exit.emit(&status);
                p.exit.emit(&(worker.clone(), status));
                if crashed && worker.exited_after_disconnect() != Some(true) {
                    p.restart(&worker);
                }
            }
            ChildEventKind::Close(_) => {
                event_loop::unregister(HandleId::Child(self.child_id));
                // A worker that never started has no exit: it is gone now.
                p.remove(self.id);
            }
            ChildEventKind::Error(e) => {
                if self.events.error.is_empty() {
                    eprintln!("Uncaught Error: {} ({})", e.message, e.code);
                    crate::process::exit(1);
                }
                self.events.error.emit(&e);
            }
        }
    }
}

impl Worker {
    /// The WIT handle (`worker_threads::send_to_worker`).
    pub(crate) fn wit(&self) -> &wit::Worker {
        &self.0.handle
    }
}

impl Worker {
    /// Its id: 1, 2, 3, ... in fork order.
    pub fn id(&self) -> u32 {
        self.0.id
    }

    /// Its pid (`None` if it never started).
    pub fn pid(&self) -> Option<u32> {
        self.0.handle.pid()
    }

    /// Sends a message (Node's `worker.send`).
    pub fn send(&self, msg: impl IntoMessage) -> Result<bool, Error> {
        Ok(self.0.handle.send(&msg.into_message().into())?)
    }

    /// Sends `signal` now (Node's `worker.kill`; not graceful).
    pub fn kill(&self, signal: &str) -> Result<bool, Error> {
        Ok(self.0.handle.kill(signal)?)
    }

    /// Disconnects it gracefully (Node's `worker.disconnect()`): no new
    /// connections, its channel closes, it finishes and exits. Node removes
    /// it from `workers` at once.
    pub fn disconnect(&self) -> Result<(), Error> {
        self.0.handle.disconnect()?;
        primary().remove(self.0.id);
        Ok(())
    }

    /// Whether it exited (Node's `isDead()`).
    pub fn is_dead(&self) -> bool {
        self.0.handle.is_dead()
    }

    /// Whether its channel is open (Node's `isConnected()`).
    pub fn is_connected(&self) -> bool {
        self.0.handle.is_connected()
    }

    /// Node's `exitedAfterDisconnect`: `None` until it disconnected or exited.
    pub fn exited_after_disconnect(&self) -> Option<bool> {
        self.0.handle.exited_after_disconnect()
    }

    /// A wasm worker's CPU time so far, in microseconds (`None` for a Node
    /// worker).
    pub fn cpu_us(&self) -> Option<u64> {
        self.0.handle.cpu_us()
    }

    /// A wasm worker's linear memory in bytes now (`None` for a Node worker).
    pub fn memory(&self) -> Option<u64> {
        self.0.handle.memory()
    }

    /// Its state (Node's `worker.state`): it changes as this process
    /// handles the worker's events, as in Node.
    pub fn state(&self) -> WorkerState {
        self.0.state.get()
    }

    pub fn on_online(&self, mut f: impl FnMut() + 'static) {
        self.0.events.online.add(move |_| f());
    }

    pub fn on_listening(&self, mut f: impl FnMut(&Address) + 'static) {
        self.0.events.listening.add(move |a| f(a));
    }

    pub fn on_message(&self, mut f: impl FnMut(Message) + 'static) {
        self.0.events.message.add(move |m| f(m.clone()));
    }

    pub fn on_disconnect(&self, mut f: impl FnMut() + 'static) {
        self.0.events.disconnect.add(move |_| f());
    }

    /// `f(code, signal)` when it exits.
    pub fn on_exit(&self, mut f: impl FnMut(Option<i32>, Option<String>) + 'static) {
        self.0.events.exit.add(move |s| f(s.code, s.signal.clone()));
    }

    pub fn on_error(&self, f: impl FnMut(&ErrorInfo) + 'static) {
        self.0.events.error.add(f);
    }
}
