//! Supervisors (beyond Node; Erlang/OTP's `supervisor` is the model): a
//! set of children, wasm forks or OS programs alike, restarted when they
//! crash, within a restart intensity.
//!
//! The seed's "re-fork a worker when it dies" is one line:
//!
//! ```no_run
//! use hive::supervisor::{ChildSpec, Supervisor};
//! Supervisor::one_for_one()
//!     .child(ChildSpec::fork("worker", "worker.wasm", &[]))
//!     .start();
//! hive::run();
//! ```
//!
//! - **Strategies**: one-for-one restarts the child that ended; one-for-all
//!   ends the others too (`SIGTERM`) and, once they have all exited,
//!   starts every child again in order.
//! - **Restart types**: `permanent` children are always restarted,
//!   `transient` ones only after a crash (an exit code other than 0, or a
//!   signal), `temporary` ones never.
//! - **Intensity**: at most `max_restarts` restarts within `window`, each
//!   after an exponential backoff with jitter ([`RestartPolicy`], the same
//!   as the cluster's). Past it the supervisor gives up: it ends every
//!   child, says so on stderr, and calls `on_give_up`.

use crate::child::{Child, ForkOptions};
use crate::emitter::Listeners;
use crate::os::SpawnOptions;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// How many restarts, how fast (the cluster's restart policy is the same).
/// A restart comes after `initial_delay`, doubling with each restart still
/// inside `window`, up to `max_delay`, plus up to 25% jitter so that
/// children that crashed together do not come back together; past
/// `max_restarts` within `window` the supervisor gives up.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`.
    pub max_restarts: u32,
    /// The window restarts are counted in.
    pub window: Duration,
    /// The delay before the first restart in the window (zero: at once).
    pub initial_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(60),
            initial_delay: Duration::ZERO,
            max_delay: Duration::from_secs(15),
        }
    }
}

/// A restart policy and the restarts it has allowed so far.
#[derive(Debug)]
pub(crate) struct Intensity {
    pub(crate) policy: RestartPolicy,
    /// When its restarts in the window happened (monotonic ns).
    times: VecDeque<u64>,
}

impl Intensity {
    pub(crate) fn new(policy: RestartPolicy) -> Intensity {
        Intensity {
            policy,
            times: VecDeque::new(),
        }
    }

    /// The delay before one more restart, or `None` if it would pass the
    /// policy's intensity. Counts the restart.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        let now = crate::bindings::wasi::clocks::monotonic_clock::now();
        let window = self.policy.window.as_nanos() as u64;
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            self.times.pop_front();
        }
        if self.times.len() as u32 >= self.policy.max_restarts {
            return None;
        }
        let base = self
            .policy
            .initial_delay
            .saturating_mul(1u32 << self.times.len().min(16))
            .min(self.policy.max_delay);
        let jitter = base.as_nanos() as u64 / 4 * (now % 1000) / 1000;
        self.times.push_back(now);
        Some(base + Duration::from_nanos(jitter))
    }

    /// Restarts within the window so far.
    pub(crate) fn recent(&self) -> usize {
        self.times.len()
    }
}

/// Which children a crash restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that ended.
    OneForOne,
    /// Every child: the others are ended first.
    OneForAll,
}

/// When a child that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after a crash: an exit code other than 0, or a signal.
    Transient,
    /// Never.
    Temporary,
}

/// How to start one child, and when to start it again.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Its name in the supervisor (messages, `on_restart`).
    pub id: String,
    /// What it runs.
    pub start: Start,
    /// When it is restarted (default `Permanent`).
    pub restart: Restart,
}

/// What a child runs: a wasm fork or an OS program.
#[derive(Debug, Clone)]
pub enum Start {
    /// `hive::fork(module, args, options)`.
    Fork {
        module: String,
        args: Vec<String>,
        options: ForkOptions,
    },
    /// `hive::os::spawn(command, args, options)`.
    Spawn {
        command: String,
        args: Vec<String>,
        options: SpawnOptions,
    },
}

impl ChildSpec {
    /// A permanent fork of `module` with `args`.
    pub fn fork(id: &str, module: &str, args: &[&str]) -> ChildSpec {
        ChildSpec {
            id: id.to_owned(),
            start: Start::Fork {
                module: module.to_owned(),
                args: args.iter().map(|a| a.to_string()).collect(),
                options: ForkOptions::default(),
            },
            restart: Restart::Permanent,
        }
    }

    /// A permanent OS program, `command` with `args`.
    pub fn spawn(id: &str, command: &str, args: &[&str]) -> ChildSpec {
        ChildSpec {
            id: id.to_owned(),
            start: Start::Spawn {
                command: command.to_owned(),
                args: args.iter().map(|a| a.to_string()).collect(),
                options: SpawnOptions::default(),
            },
            restart: Restart::Permanent,
        }
    }

    /// The same, restarted as `restart` says.
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// Starts it, as the `restarts`-th restart (`host ps` shows it).
    fn start(&self, restarts: u32) -> Result<Child, crate::Error> {
        match &self.start {
            Start::Fork {
                module,
                args,
                options,
            } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let options = ForkOptions {
                    restarts,
                    ..options.clone()
                };
                crate::fork(module, &args, options)
            }
            Start::Spawn {
                command,
                args,
                options,
            } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let options = SpawnOptions {
                    restarts,
                    ..options.clone()
                };
                crate::os::spawn(command, &args, options)
            }
        }
    }
}

/// A supervisor being set up: its strategy, policy and children.
pub struct Supervisor {
    strategy: Strategy,
    policy: RestartPolicy,
    specs: Vec<ChildSpec>,
}

impl Supervisor {
    /// A one-for-one supervisor with the default policy.
    pub fn one_for_one() -> Supervisor {
        Supervisor {
            strategy: Strategy::OneForOne,
            policy: RestartPolicy::default(),
            specs: Vec::new(),
        }
    }

    /// A one-for-all supervisor with the default policy.
    pub fn one_for_all() -> Supervisor {
        Supervisor {
            strategy: Strategy::OneForAll,
            ..Supervisor::one_for_one()
        }
    }

    /// With `policy` as its restart intensity.
    pub fn policy(mut self, policy: RestartPolicy) -> Supervisor {
        self.policy = policy;
        self
    }

    /// Adds a child, started in the order added.
    pub fn child(mut self, spec: ChildSpec) -> Supervisor {
        self.specs.push(spec);
        self
    }

    /// Starts every child; returns the running supervisor. A child that
    /// fails to start counts as one that crashed at once.
    pub fn start(self) -> Supervising {
        let inner = Rc::new(Inner {
            strategy: self.strategy,
            intensity: RefCell::new(Intensity::new(self.policy)),
            slots: self
                .specs
                .into_iter()
                .map(|spec| Slot {
                    spec,
                    child: RefCell::new(None),
                    generation: Cell::new(0),
                })
                .collect(),
            restarting: Cell::new(false),
            stopped: Cell::new(false),
            on_restart: Listeners::default(),
            on_give_up: Listeners::default(),
            restarts: Cell::new(0),
        });
        for index in 0..inner.slots.len() {
            Inner::start_slot(&inner, index);
        }
        Supervising(inner)
    }
}

/// A running supervisor.
#[derive(Clone)]
pub struct Supervising(Rc<Inner>);

struct Slot {
    spec: ChildSpec,
    child: RefCell<Option<Child>>,
    /// Bumped at each start: an exit of an older start is not this one's.
    generation: Cell<u32>,
}

struct Inner {
    strategy: Strategy,
    intensity: RefCell<Intensity>,
    slots: Vec<Slot>,
    /// One-for-all: ending the others before starting everyone again.
    restarting: Cell<bool>,
    /// Given up or stopped: nothing is restarted any more.
    stopped: Cell<bool>,
    on_restart: Listeners<String>,
    on_give_up: Listeners<()>,
    restarts: Cell<u32>,
}

impl Inner {
    fn start_slot(me: &Rc<Inner>, index: usize) {
        let slot = &me.slots[index];
        let generation = slot.generation.get() + 1;
        slot.generation.set(generation);
        match slot.spec.start(generation - 1) {
            Ok(child) => {
                let weak = Rc::downgrade(me);
                child.on_exit(move |code, signal| {
                    if let Some(me) = weak.upgrade() {
                        let crashed = code != Some(0) || signal.is_some();
                        Inner::ended(&me, index, generation, crashed);
                    }
                });
                *slot.child.borrow_mut() = Some(child);
            }
            Err(e) => {
                eprintln!("supervisor: child `{}` failed to start: {e}", slot.spec.id);
                let weak = Rc::downgrade(me);
                // Handled as a crash, from the event loop (not inside start).
                crate::set_timeout(0, move || {
                    if let Some(me) = weak.upgrade() {
                        Inner::ended(&me, index, generation, true);
                    }
                });
            }
        }
    }

    /// Child `index` (started as `generation`) ended.
    fn ended(me: &Rc<Inner>, index: usize, generation: u32, crashed: bool) {
        let slot = &me.slots[index];
        if slot.generation.get() != generation {
            return;
        }
        slot.child.borrow_mut().take();
        if me.stopped.get() {
            return;
        }
        if me.restarting.get() {
            // One-for-all: the last of the others to exit starts them all.
            if me.slots.iter().all(|s| s.child.borrow().is_none()) {
                me.restarting.set(false);
                Inner::restart_after(me, None);
            }
            return;
        }
        let restart = match slot.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => crashed,
            Restart::Temporary => false,
        };
        if !restart {
            return;
        }
        match me.strategy {
            Strategy::OneForOne => Inner::restart_after(me, Some(index)),
            Strategy::OneForAll => {
                let others: Vec<Child> = me
                    .slots
                    .iter()
                    .filter_map(|s| s.child.borrow().clone())
                    .collect();
                if others.is_empty() {
                    return Inner::restart_after(me, None);
                }
                me.restarting.set(true);
                for child in others {
                    let _ = child.kill("SIGTERM");
                }
            }
        }
    }

    /// Restarts child `index` (`None`: all of them), within the intensity.
    fn restart_after(me: &Rc<Inner>, index: Option<usize>) {
        let delay = me.intensity.borrow_mut().next_delay();
        let Some(delay) = delay else {
            let intensity = me.intensity.borrow();
            eprintln!(
                "supervisor: {} restarts within {:?}: giving up, ending its children (RestartPolicy.max_restarts)",
                intensity.recent() + 1,
                intensity.policy.window
            );
            drop(intensity);
            me.stop();
            me.on_give_up.emit(&());
            return;
        };
        let weak = Rc::downgrade(me);
        let go = move || {
            let Some(me) = weak.upgrade() else { return };
            if me.stopped.get() {
                return;
            }
            let indices: Vec<usize> = match index {
                Some(i) => vec![i],
                None => (0..me.slots.len()).collect(),
            };
            for i in indices {
                me.restarts.set(me.restarts.get() + 1);
                Inner::start_slot(&me, i);
                me.on_restart.emit(&me.slots[i].spec.id);
            }
        };
        crate::set_timeout(delay.as_millis() as u64, go);
    }

    fn stop(&self) {
        self.stopped.set(true);
        for slot in &self.slots {
            if let Some(child) = slot.child.borrow().as_ref() {
                let _ = child.kill("SIGTERM");
            }
        }
    }
}

impl Supervising {
    /// `f(id)` after each restart of child `id`.
    pub fn on_restart(&self, mut f: impl FnMut(&str) + 'static) {
        self.0.on_restart.add(move |id: &String| f(id));
    }

    /// `f()` when the supervisor gives up (past its intensity).
    pub fn on_give_up(&self, mut f: impl FnMut() + 'static) {
        self.0.on_give_up.add(move |_| f());
    }

    /// The running child `id`, if it is running.
    pub fn child(&self, id: &str) -> Option<Child> {
        self.0
            .slots
            .iter()
            .find(|s| s.spec.id == id)
            .and_then(|s| s.child.borrow().clone())
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.0.restarts.get()
    }

    /// Ends every child (`SIGTERM`) and restarts none any more.
    pub fn stop(&self) {
        self.0.stop();
    }
}
