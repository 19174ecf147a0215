//! A cluster, as the runtime keeps it: the primary's workers, their state,
//! and how a worker's listen joins the cluster's shared listeners.
//!
//! The primary is any process that forked a worker; its [`Cluster`] lives
//! in its host context. Each worker has a [`WorkerRecord`], which both the
//! primary's `worker` handle and the worker itself (through [`WorkerLink`],
//! its TCP's view of the cluster) hold, so that a listen in the worker and
//! a `disconnect` in the primary meet in one place.

use super::event::{ChildEvent, Event};
use super::listen::{Key, Membership, Policy, Registry};
use super::proc::Proc;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A worker's state as its primary sees it (Node's `worker.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Forked, not online yet.
    None,
    /// Running.
    Online,
    /// Listening on a shared listener.
    Listening,
    /// Its channel closed.
    Disconnected,
    /// It exited.
    Dead,
}

/// A primary's cluster: its workers and listener policies.
pub struct Cluster {
    /// The primary's pid: its listeners' key.
    primary: u32,
    registry: Arc<Registry>,
    next_id: AtomicU32,
    /// The policy of listeners without one of their own.
    default_policy: Mutex<Policy>,
    /// Per-port policies (`set-listener-policy`).
    port_policies: Mutex<HashMap<u16, Policy>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.registry.forget(self.primary);
    }
}

impl Cluster {
    /// A cluster for primary `primary`, whose listeners use `policy`.
    pub fn new(primary: u32, registry: Arc<Registry>, policy: Policy) -> Arc<Cluster> {
        Arc::new(Cluster {
            primary,
            registry,
            next_id: AtomicU32::new(1),
            default_policy: Mutex::new(policy),
            port_policies: Mutex::default(),
        })
    }

    /// The next worker id: 1, 2, 3, ...
    pub fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sets the policy for listeners created from now on.
    pub fn set_default_policy(&self, policy: Policy) {
        *self.default_policy.lock().unwrap() = policy;
    }

    /// The policy for listeners created from now on.
    pub fn default_policy(&self) -> Policy {
        *self.default_policy.lock().unwrap()
    }

    /// Sets the policy of the listener on `port` (0: the default).
    pub fn set_port_policy(&self, port: u16, policy: Policy) {
        if port == 0 {
            self.set_default_policy(policy);
        } else {
            self.port_policies.lock().unwrap().insert(port, policy);
        }
    }

    fn policy_for(&self, port: u16) -> Policy {
        self.port_policies
            .lock()
            .unwrap()
            .get(&port)
            .copied()
            .unwrap_or_else(|| self.default_policy())
    }

    /// This cluster's live listeners.
    pub fn listeners(&self) -> Vec<super::listen::ListenerStats> {
        self.registry.stats(self.primary)
    }

    /// Joins worker `record` to the listener for `requested`.
    pub fn join(
        &self,
        record: &WorkerRecord,
        requested: SocketAddr,
    ) -> std::io::Result<Arc<Membership>> {
        let key = Key {
            cluster: self.primary,
            requested,
        };
        let membership = Arc::new(self.registry.join(
            key,
            self.policy_for(requested.port()),
            record.id,
        )?);
        record
            .memberships
            .lock()
            .unwrap()
            .push(Arc::downgrade(&membership));
        Ok(membership)
    }
}

/// One worker, as its primary and the worker itself see it.
pub struct WorkerRecord {
    /// Its id in the cluster.
    pub id: u32,
    /// The id its events carry (its pid).
    pub child_id: u32,
    state: Mutex<WorkerState>,
    /// Set by a graceful disconnect (either side).
    after_disconnect: AtomicBool,
    memberships: Mutex<Vec<Weak<Membership>>>,
    /// Its listens are private sockets (`set-exclusive`).
    exclusive: AtomicBool,
    /// How a graceful disconnect reaches it, when not by closing its
    /// channel (a Node worker: `{act: 'disconnect'}`); returns whether it
    /// was sent.
    disconnect: Mutex<Option<DisconnectHook>>,
}

/// See [`WorkerRecord::on_disconnect`].
pub type DisconnectHook = Box<dyn Fn() -> bool + Send + Sync>;

impl WorkerRecord {
    /// A new worker, not online yet.
    pub fn new(id: u32, child_id: u32) -> Arc<WorkerRecord> {
        Arc::new(WorkerRecord {
            id,
            child_id,
            state: Mutex::new(WorkerState::None),
            after_disconnect: AtomicBool::new(false),
            memberships: Mutex::default(),
            exclusive: AtomicBool::new(false),
            disconnect: Mutex::new(None),
        })
    }

    /// Its state, given whether its channel is open and whether it exited.
    pub fn state(&self, connected: bool, dead: bool) -> WorkerState {
        if dead {
            return WorkerState::Dead;
        }
        let state = *self.state.lock().unwrap();
        if !connected && state != WorkerState::None {
            return WorkerState::Disconnected;
        }
        state
    }

    fn advance(&self, to: WorkerState) {
        let mut state = self.state.lock().unwrap();
        if *state == WorkerState::None || to == WorkerState::Listening {
            *state = to;
        }
    }

    /// Whether it ended through a graceful disconnect.
    pub fn exited_after_disconnect(&self) -> bool {
        self.after_disconnect.load(Ordering::Acquire)
    }

    /// A graceful disconnect: no connection is handed to it any more (the
    /// one it had not taken goes to another worker), and its listening
    /// sockets fail `accept` from now on.
    pub fn leave(&self) {
        self.after_disconnect.store(true, Ordering::Release);
        let memberships = std::mem::take(&mut *self.memberships.lock().unwrap());
        for m in memberships.iter().filter_map(Weak::upgrade) {
            m.leave();
        }
    }

    /// Sets how a graceful disconnect reaches the worker.
    pub fn on_disconnect(&self, hook: DisconnectHook) {
        *self.disconnect.lock().unwrap() = Some(hook);
    }

    /// Asks the worker to disconnect itself (Node's `{act: 'disconnect'}`),
    /// if it has such a hook; `false`: close its channel instead.
    pub fn request_disconnect(&self) -> bool {
        self.disconnect
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|hook| hook())
    }

    /// Makes its listens private (or shared again).
    pub fn set_exclusive(&self, exclusive: bool) {
        self.exclusive.store(exclusive, Ordering::Relaxed);
    }
}

/// A worker's own view of its cluster: what its TCP asks when it binds and
/// listens, and how its `online` and `listening` reach the primary.
pub struct WorkerLink {
    /// The cluster it belongs to.
    pub cluster: Arc<Cluster>,
    /// Its record.
    pub record: Arc<WorkerRecord>,
    /// The primary, whose inbox its cluster events go to.
    pub primary: Weak<Proc>,
}

impl WorkerLink {
    fn tell_primary(&self, event: ChildEvent) {
        if let Some(primary) = self.primary.upgrade() {
            primary.inbox.push(
                Event::Child {
                    id: self.record.child_id,
                    event,
                },
                None,
            );
        }
    }

    /// The worker is running: `online`.
    pub fn online(&self) {
        self.record.advance(WorkerState::Online);
        self.tell_primary(ChildEvent::Online);
    }

    /// Whether a bind now is to be shared.
    pub fn shares(&self) -> bool {
        !self.record.exclusive.load(Ordering::Relaxed) && !self.record.exited_after_disconnect()
    }

    /// Joins the cluster's listener for `requested` and tells the primary
    /// with `listening`.
    pub fn join(&self, requested: SocketAddr) -> std::io::Result<Arc<Membership>> {
        let membership = self.join_quiet(requested)?;
        self.announce(membership.local());
        Ok(membership)
    }

    /// Joins without telling the primary (a Node worker says `listening`
    /// itself, once its server is).
    pub fn join_quiet(&self, requested: SocketAddr) -> std::io::Result<Arc<Membership>> {
        self.cluster.join(&self.record, requested)
    }

    /// Tells the primary the worker listens on `local`.
    pub fn announce(&self, local: SocketAddr) {
        self.record.advance(WorkerState::Listening);
        self.tell_primary(ChildEvent::Listening(local));
    }
}
