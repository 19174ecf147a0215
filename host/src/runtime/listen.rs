//! The listener registry: every listening socket a cluster's workers
//! share, keyed by cluster and address, and how its connections reach them.
//!
//! A worker's `listen` (plain `std::net` on `wasi:sockets`, or a Node
//! worker's `queryServer`) does not get a socket of its own: it *joins* the
//! cluster's listener for that address, which the host creates on the first
//! join (so `listen(0)` gives every worker the same port, as in Node) and
//! closes when the last worker leaves. How a connection reaches a worker is
//! the listener's [`Policy`]:
//!
//! - **round-robin** (Node's `SCHED_RR`, the default): the host accepts,
//!   sets `TCP_NODELAY` and hands each connection to the next *free*
//!   worker, one that has taken its previous hand-off (at most one hand-off
//!   in flight per worker, as Node's `RoundRobinHandle`; a worker the host
//!   accepts for, an HTTP server, takes them as they come: a strict turn);
//! - **least-connections**: the free worker with the fewest open
//!   connections it was handed;
//! - **source-ip-hash**: the worker the client's IP hashes to (sticky
//!   sessions), queued behind that worker's earlier hand-offs;
//! - **shared** (Node's `SCHED_NONE`): every worker accepts from the one
//!   socket itself and the kernel picks.
//!
//! Because the host owns the accept queue, a worker that leaves (exits,
//! disconnects, is reloaded) stops getting connections at once, and the
//! hand-off it had not taken goes to another worker instead of being lost.
//! Connections accepted while no worker is free wait in a queue of at most
//! [`MAX_PENDING`]; past it the host stops accepting and the kernel's
//! backlog holds the rest.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Connections accepted but not yet handed to a worker, per listener.
pub const MAX_PENDING: usize = 1024;

/// Hand-offs queued for one worker under [`Policy::SourceIpHash`].
const MAX_STICKY_QUEUE: usize = 64;

/// The listen backlog of every listener the host creates.
const BACKLOG: u32 = 1024;

/// How a shared listener's connections reach its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The next free worker, in turn (Node's `SCHED_RR`).
    #[default]
    RoundRobin,
    /// Workers accept from the socket themselves (Node's `SCHED_NONE`).
    Shared,
    /// The free worker with the fewest open connections.
    LeastConnections,
    /// The worker the client's IP address hashes to.
    SourceIpHash,
}

impl Policy {
    /// Node's name for the policy (`rr`, `none`), or Hive's.
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "rr",
            Policy::Shared => "none",
            Policy::LeastConnections => "least-connections",
            Policy::SourceIpHash => "source-ip-hash",
        }
    }
}

/// Which listener: one per cluster (its primary's pid) and requested address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The primary's pid.
    pub cluster: u32,
    /// The address as the worker asked for it (port 0 included).
    pub requested: SocketAddr,
}

/// Every shared listener of the host.
#[derive(Default)]
pub struct Registry {
    listeners: Mutex<HashMap<Key, Weak<Shared>>>,
    /// Per cluster (its primary's pid): how long a listener whose last
    /// worker died stays open for a replacement ([`Registry::hold_on_crash`]),
    /// and how many are held now.
    holds: Mutex<HashMap<u32, CrashHold>>,
}

/// A cluster's hold on listeners whose last worker died.
struct CrashHold {
    duration: std::time::Duration,
    /// Listeners held now (at most [`MAX_HELD`]).
    held: Arc<AtomicUsize>,
}

/// The longest a listener is held for a replacement: a guest's
/// `hold-listeners-on-crash` asks for at most this.
pub const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// The most listeners one cluster has held at once: each is a socket no
/// worker owns any more, so a primary killing workers on ever new ports
/// must not pile them up (past it, a listener closes as in Node).
pub const MAX_HELD: usize = 64;

/// A connection handed to a worker. Counts as open for
/// [`Policy::LeastConnections`] until dropped.
pub struct Conn {
    /// The accepted stream (`TCP_NODELAY` set).
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Keeps the worker's open-connection count.
    pub open: OpenGuard,
}

/// One open connection of a worker; dropping it closes the count.
pub struct OpenGuard(Option<Arc<Counters>>);

impl OpenGuard {
    /// A guard that counts nothing (a connection no listener handed out).
    pub fn none() -> OpenGuard {
        OpenGuard(None)
    }

    /// The worker's counters, for what its server counts per request.
    pub fn counters(&self) -> Option<Arc<Counters>> {
        self.0.clone()
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A worker's counters on one listener.
#[derive(Default, Debug)]
pub struct Counters {
    /// Connections handed to it and still open.
    pub open: AtomicUsize,
    /// Connections handed to it in all.
    pub total: AtomicU64,
    /// HTTP requests it answered (host-parsed HTTP only).
    pub requests: AtomicU64,
}

struct Member {
    worker: u32,
    queue: VecDeque<Conn>,
    /// Hand-offs it may have untaken: 1 for a worker that accepts itself,
    /// [`EAGER_QUEUE`] for one the host accepts for.
    capacity: usize,
    waker: Option<Waker>,
    counters: Arc<Counters>,
}

impl Member {
    /// Whether it may be handed one more connection now.
    fn is_free(&self) -> bool {
        self.queue.len() < self.capacity
    }
}

/// How many hand-offs a member the host accepts for may have waiting.
/// Its accept loop runs on its own task, whenever that task is next
/// polled; with one, a worker whose task had not run yet lost its turn to
/// one that had, and a burst of keep-alive connections went 14:1 under
/// load. With room for many, round-robin is a strict turn.
const EAGER_QUEUE: usize = 64;

#[derive(Default)]
struct State {
    pending: VecDeque<(TcpStream, SocketAddr)>,
    members: Vec<Member>,
    /// Where round-robin looks first.
    cursor: usize,
}

/// One host-owned listening socket and the workers that joined it.
pub struct Shared {
    key: Key,
    local: SocketAddr,
    policy: Policy,
    listener: Arc<TcpListener>,
    state: Mutex<State>,
    /// Wakes the accept loop when the pending queue has room again.
    room: Arc<Notify>,
    registry: Weak<Registry>,
    accept_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Registry {
    /// Beyond Node, for a primary with a restart policy: when the last
    /// worker on one of `cluster`'s listeners dies (ends without leaving
    /// it first, as a disconnect does), the listener stays open up to
    /// `hold` for a replacement to join, its connections waiting in the
    /// queue (Node closes the port, and clients are refused until a worker
    /// listens again). Zero: Node's behaviour, the default.
    /// At most [`MAX_HOLD`], and [`MAX_HELD`] listeners at once.
    pub fn hold_on_crash(&self, cluster: u32, hold: std::time::Duration) {
        let mut holds = self.holds.lock().unwrap();
        if hold.is_zero() {
            holds.remove(&cluster);
        } else {
            let duration = hold.min(MAX_HOLD);
            holds
                .entry(cluster)
                .and_modify(|h| h.duration = duration)
                .or_insert_with(|| CrashHold {
                    duration,
                    held: Arc::default(),
                });
        }
    }

    /// Takes a place to hold one of `cluster`'s listeners: how long, and
    /// the count to give the place back to; `None` if it holds none or
    /// holds [`MAX_HELD`] already.
    fn take_hold(&self, cluster: u32) -> Option<(std::time::Duration, Arc<AtomicUsize>)> {
        let holds = self.holds.lock().unwrap();
        let hold = holds.get(&cluster)?;
        hold.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_HELD).then_some(n + 1)
            })
            .ok()?;
        Some((hold.duration, hold.held.clone()))
    }

    /// Forgets `cluster`'s hold (its primary ended).
    pub fn forget(&self, cluster: u32) {
        self.holds.lock().unwrap().remove(&cluster);
    }

    /// Joins `worker` to the listener `key`, creating it (bound and
    /// listening, with `policy`) if this is the first worker. A listener
    /// that exists keeps its policy. Fails as the bind or listen would
    /// (`EADDRINUSE` for a port bound elsewhere).
    pub fn join(
        self: &Arc<Registry>,
        key: Key,
        policy: Policy,
        worker: u32,
    ) -> io::Result<Membership> {
        let mut listeners = self.listeners.lock().unwrap();
        let shared = match listeners.get(&key).and_then(Weak::upgrade) {
            Some(shared) => shared,
            None => {
                let shared = Shared::open(key, policy, Arc::downgrade(self))?;
                listeners.insert(key, Arc::downgrade(&shared));
                shared
            }
        };
        drop(listeners);
        let counters = Arc::new(Counters::default());
        {
            let mut state = shared.state.lock().unwrap();
            state.members.push(Member {
                worker,
                queue: VecDeque::new(),
                capacity: 1,
                waker: None,
                counters: counters.clone(),
            });
            shared.dispatch(&mut state);
        }
        Ok(Membership {
            shared,
            worker,
            counters,
            accept: Mutex::new(None),
            left: Default::default(),
            waiter: Mutex::new(None),
        })
    }

    /// The live listeners of `cluster`: address, policy, and per worker
    /// (id, open, total) connections.
    pub fn stats(&self, cluster: u32) -> Vec<ListenerStats> {
        self.stats_where(|k| k.cluster == cluster)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    /// Every live listener, with the cluster (its primary's pid) it
    /// belongs to (`host ps`).
    pub fn all_stats(&self) -> Vec<(u32, ListenerStats)> {
        self.stats_where(|_| true)
    }

    fn stats_where(&self, keep: impl Fn(&Key) -> bool) -> Vec<(u32, ListenerStats)> {
        let listeners: Vec<(u32, Arc<Shared>)> = self
            .listeners
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| keep(k))
            .filter_map(|(k, w)| Some((k.cluster, w.upgrade()?)))
            .collect();
        listeners
            .iter()
            .map(|(cluster, s)| {
                (
                    *cluster,
                    ListenerStats {
                        local: s.local,
                        policy: s.policy,
                        workers: s
                            .state
                            .lock()
                            .unwrap()
                            .members
                            .iter()
                            .map(|m| WorkerLoad {
                                worker: m.worker,
                                open: m.counters.open.load(Ordering::Relaxed),
                                connections: m.counters.total.load(Ordering::Relaxed),
                                requests: m.counters.requests.load(Ordering::Relaxed),
                            })
                            .collect(),
                    },
                )
            })
            .collect()
    }
}

/// What [`Registry::stats`] reports for one listener.
#[derive(Debug, Clone)]
pub struct ListenerStats {
    /// The address it listens on.
    pub local: SocketAddr,
    /// Its policy.
    pub policy: Policy,
    /// Per worker, in join order.
    pub workers: Vec<WorkerLoad>,
}

/// One worker's load on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLoad {
    /// The worker's id.
    pub worker: u32,
    /// Connections handed to it and open now.
    pub open: usize,
    /// Connections handed to it in all.
    pub connections: u64,
    /// HTTP requests it answered.
    pub requests: u64,
}

/// Binds and listens on `addr` as every host-owned listener does:
/// `SO_REUSEADDR` (a restarted host can rebind at once), no `SO_REUSEPORT`
/// (a port bound elsewhere is `EADDRINUSE`).
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        socket2::SockRef::from(&socket).set_only_v6(true)?;
    }
    socket.bind(addr)?;
    socket.listen(backlog)
}

impl Shared {
    fn open(key: Key, policy: Policy, registry: Weak<Registry>) -> io::Result<Arc<Shared>> {
        let listener = Arc::new(bind_listener(key.requested, BACKLOG)?);
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key,
            local,
            policy,
            listener,
            state: Mutex::default(),
            room: Arc::default(),
            registry,
            accept_task: Mutex::new(None),
        });
        if policy != Policy::Shared {
            let task = tokio::spawn(Shared::accept_loop(Arc::downgrade(&shared)));
            *shared.accept_task.lock().unwrap() = Some(task.abort_handle());
        }
        Ok(shared)
    }

    /// The address the listener is bound to (the real port for port 0).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Accepts for as long as the listener lives. It holds the listener
    /// only while polling it, so the last member leaving closes the socket
    /// at once (a replacement worker can bind the same port right away).
    async fn accept_loop(me: Weak<Shared>) {
        loop {
            // Wait for room in the pending queue before taking more.
            loop {
                let Some(shared) = me.upgrade() else { return };
                let room = shared.room.clone();
                let notified = room.notified();
                if shared.state.lock().unwrap().pending.len() < MAX_PENDING {
                    break;
                }
                drop(shared);
                notified.await;
            }
            let accepted = std::future::poll_fn(|cx| match me.upgrade() {
                Some(shared) => shared.listener.poll_accept(cx).map(Some),
                None => Poll::Ready(None),
            })
            .await;
            match accepted {
                None => return,
                Some(Ok((stream, peer))) => {
                    let _ = stream.set_nodelay(true);
                    let Some(shared) = me.upgrade() else { return };
                    let mut state = shared.state.lock().unwrap();
                    state.pending.push_back((stream, peer));
                    shared.dispatch(&mut state);
                }
                Some(Err(e)) => {
                    // EMFILE and friends: back off instead of spinning; the
                    // connection waits in the kernel's backlog meanwhile.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Hands pending connections to the workers the policy picks, while
    /// one is free.
    fn dispatch(&self, state: &mut State) {
        while let Some((_, peer)) = state.pending.front() {
            let Some(index) = self.pick(state, *peer) else {
                break;
            };
            let (stream, peer) = state.pending.pop_front().expect("front exists");
            let member = &mut state.members[index];
            member.counters.open.fetch_add(1, Ordering::Relaxed);
            member.counters.total.fetch_add(1, Ordering::Relaxed);
            member.queue.push_back(Conn {
                stream,
                peer,
                open: OpenGuard(Some(member.counters.clone())),
            });
            if let Some(waker) = member.waker.take() {
                waker.wake();
            }
            self.room.notify_one();
        }
    }

    /// The member the next connection (from `peer`) goes to, if one can
    /// take it now.
    fn pick(&self, state: &mut State, peer: SocketAddr) -> Option<usize> {
        let n = state.members.len();
        if n == 0 {
            return None;
        }
        match self.policy {
            Policy::RoundRobin | Policy::Shared => {
                let start = state.cursor % n;
                let index = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| state.members[i].is_free())?;
                state.cursor = index + 1;
                Some(index)
            }
            Policy::LeastConnections => {
                // Ties go in turn, from the cursor: idle workers share
                // sequential connections evenly instead of the first
                // taking them all.
                let start = state.cursor % n;
                let index = (0..n)
                    .map(|i| (start + i) % n)
                    .filter(|&i| state.members[i].is_free())
                    .min_by_key(|&i| state.members[i].counters.open.load(Ordering::Relaxed))?;
                state.cursor = index + 1;
                Some(index)
            }
            Policy::SourceIpHash => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                peer.ip().to_canonical().hash(&mut h);
                // Members in join order: a stable mapping while the set of
                // workers is.
                let index = (h.finish() % n as u64) as usize;
                (state.members[index].queue.len() < MAX_STICKY_QUEUE).then_some(index)
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.lock().unwrap().take() {
            task.abort();
        }
        if let Some(registry) = self.registry.upgrade() {
            let mut listeners = registry.listeners.lock().unwrap();
            if listeners
                .get(&self.key)
                .is_some_and(|w| w.strong_count() == 0)
            {
                listeners.remove(&self.key);
            }
        }
    }
}

/// Keeps a listener open (see [`Membership::hold`]).
pub struct Hold(#[allow(dead_code)] Arc<Shared>);

type AcceptFuture = Pin<Box<dyn Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send>>;

/// A worker's place on a shared listener: what its listening socket
/// accepts from. Dropping it leaves the listener; a hand-off it had not
/// taken goes to another worker.
pub struct Membership {
    shared: Arc<Shared>,
    worker: u32,
    counters: Arc<Counters>,
    /// [`Policy::Shared`]: this worker's own `accept` on the one socket.
    accept: Mutex<Option<AcceptFuture>>,
    /// Set by [`Membership::leave`].
    left: std::sync::atomic::AtomicBool,
    /// Who to wake when it leaves (a shared-policy accept waits on the
    /// socket, not on the member list).
    waiter: Mutex<Option<Waker>>,
}

impl Membership {
    /// The address the listener is bound to.
    pub fn local(&self) -> SocketAddr {
        self.shared.local
    }

    /// The listener's policy.
    pub fn policy(&self) -> Policy {
        self.shared.policy
    }

    /// A duplicate of the listening socket's descriptor (for a Node worker
    /// under [`Policy::Shared`], which accepts from it itself).
    pub fn listener_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.shared.listener.as_fd().try_clone_to_owned()
    }

    /// The next connection for this worker, or `Pending` (waking `cx` when
    /// one is handed to it).
    /// After [`Membership::leave`], fails with `InvalidInput` (`EINVAL`, as
    /// `accept(2)` on a socket that is not listening; WASI's
    /// `invalid-argument`, which wasi-libc maps to `EINVAL`; its
    /// `invalid-state` would abort the guest).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Conn>> {
        if self.left.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the worker left the listener (disconnect)",
            )));
        }
        *self.waiter.lock().unwrap() = Some(cx.waker().clone());
        if self.shared.policy == Policy::Shared {
            let mut slot = self.accept.lock().unwrap();
            let fut = slot.get_or_insert_with(|| {
                let listener = self.shared.listener.clone();
                Box::pin(async move { listener.accept().await })
            });
            let result = std::task::ready!(fut.as_mut().poll(cx));
            *slot = None;
            let (stream, peer) = result?;
            self.counters.open.fetch_add(1, Ordering::Relaxed);
            self.counters.total.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Ok(Conn {
                stream,
                peer,
                open: OpenGuard(Some(self.counters.clone())),
            }));
        }
        let mut state = self.shared.state.lock().unwrap();
        let Some(index) = state
            .members
            .iter()
            .position(|m| Arc::ptr_eq(&m.counters, &self.counters))
        else {
            return Poll::Ready(Err(io::ErrorKind::InvalidInput.into()));
        };
        match state.members[index].queue.pop_front() {
            Some(conn) => {
                // Free again: it may take the next pending connection.
                self.shared.dispatch(&mut state);
                Poll::Ready(Ok(conn))
            }
            None => {
                state.members[index].waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Keeps the listener open while the returned value lives, even with no
    /// member: connections then wait in its queue (`host serve` holds its
    /// listener across an instance's replacement, so the port stays).
    pub fn hold(&self) -> Hold {
        Hold(self.shared.clone())
    }

    /// The host accepts for this worker (its HTTP server): it takes its
    /// hand-offs as they come, [`EAGER_QUEUE`] at most waiting, so its turn
    /// never depends on when its task runs. A worker that accepts itself
    /// (`std::net`, a Node worker) keeps one: it is free once it took it.
    pub fn accept_eagerly(&self) {
        let mut state = self.shared.state.lock().unwrap();
        if let Some(member) = state
            .members
            .iter_mut()
            .find(|m| Arc::ptr_eq(&m.counters, &self.counters))
        {
            member.capacity = EAGER_QUEUE;
        }
        self.shared.dispatch(&mut state);
    }

    /// The worker this membership is for.
    pub fn worker(&self) -> u32 {
        self.worker
    }

    /// A connection this worker was handed and did not take after all (a
    /// Node worker that answered `accepted: false`): it goes to the front
    /// of the queue, for another worker.
    pub fn give_back(&self, conn: Conn) {
        let mut state = self.shared.state.lock().unwrap();
        state.pending.push_front((conn.stream, conn.peer));
        self.shared.dispatch(&mut state);
    }

    /// Stops handing connections to this worker (a hand-off it had not
    /// taken goes to another one); `accept` fails from now on.
    pub fn leave(&self) {
        self.left.store(true, Ordering::Release);
        self.remove();
        if let Some(waker) = self.waiter.lock().unwrap().take() {
            waker.wake();
        }
    }

    /// Whether [`Membership::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }

    /// Takes this worker off the list; whether it was the last.
    fn remove(&self) -> bool {
        let mut state = self.shared.state.lock().unwrap();
        if let Some(index) = state
            .members
            .iter()
            .position(|m| Arc::ptr_eq(&m.counters, &self.counters))
        {
            let member = state.members.remove(index);
            // Not taken: back to the front of the queue, for another worker.
            for conn in member.queue.into_iter().rev() {
                state.pending.push_front((conn.stream, conn.peer));
            }
            if state.cursor > index {
                state.cursor -= 1;
            }
            self.shared.dispatch(&mut state);
            return state.members.is_empty();
        }
        false
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let last = self.remove();
        // Died as a member (a leave comes first otherwise): hold the
        // listener for a replacement, if the primary asked.
        if !last || self.has_left() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let hold = self
            .shared
            .registry
            .upgrade()
            .and_then(|r| r.take_hold(self.shared.key.cluster));
        if let Some((duration, held)) = hold {
            let shared = self.shared.clone();
            rt.spawn(async move {
                tokio::time::sleep(duration).await;
                drop(shared);
                held.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn key(port: u16) -> Key {
        Key {
            cluster: 1,
            requested: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    async fn connect(addr: SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn port_zero_is_one_port_for_every_worker() {
        let registry = Arc::new(Registry::default());
        let a = registry.join(key(0), Policy::RoundRobin, 1).unwrap();
        let b = registry.join(key(0), Policy::RoundRobin, 2).unwrap();
        assert_eq!(a.local(), b.local());
        assert_ne!(a.local().port(), 0);
        drop((a, b));
        // The last member leaving closes the listener.
        assert!(registry.stats(1).is_empty());
    }

    /// A hostile primary's hold: never longer than `MAX_HOLD`, and never
    /// more than `MAX_HELD` listeners whose workers died, however many
    /// ports it has its workers listen on and then kills them.
    #[tokio::test]
    async fn holds_are_bounded() {
        let registry = Arc::new(Registry::default());
        registry.hold_on_crash(1, std::time::Duration::MAX);
        assert_eq!(registry.holds.lock().unwrap()[&1].duration, MAX_HOLD);
        // A graceful leave is never held.
        let left = registry.join(key(0), Policy::RoundRobin, 999).unwrap();
        left.leave();
        drop(left);
        assert!(registry.stats(1).is_empty());
        for worker in 0..(MAX_HELD as u8 + 10) {
            // A worker that dies as a member (no leave), each on a
            // listener of its own.
            let own = Key {
                cluster: 1,
                requested: SocketAddr::from(([127, 0, 1, worker + 1], 0)),
            };
            drop(
                registry
                    .join(own, Policy::RoundRobin, u32::from(worker))
                    .unwrap(),
            );
        }
        let held = registry.holds.lock().unwrap()[&1].held.clone();
        assert_eq!(held.load(Ordering::Acquire), MAX_HELD);
        assert_eq!(registry.stats(1).len(), MAX_HELD);
    }

    #[tokio::test]
    async fn a_port_bound_elsewhere_is_in_use() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let registry = Arc::new(Registry::default());
        let err = registry
            .join(key(port), Policy::RoundRobin, 1)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    /// Round-robin over three workers that take every hand-off: each gets
    /// every third connection, in turn.
    #[tokio::test]
    async fn round_robin_takes_turns() {
        let registry = Arc::new(Registry::default());
        let members: Vec<_> = (1..=3)
            .map(|w| registry.join(key(0), Policy::RoundRobin, w).unwrap())
            .collect();
        let addr = members[0].local();
        let mut order = vec![];
        for _ in 0..9 {
            let _client = connect(addr).await;
            // Whoever got it takes it; nobody else has one.
            let got = loop {
                let mut found = None;
                for m in &members {
                    let polled = poll_fn(|cx| Poll::Ready(m.poll_accept(cx))).await;
                    if let Poll::Ready(conn) = polled {
                        conn.unwrap();
                        found = Some(m.worker());
                    }
                }
                if let Some(w) = found {
                    break w;
                }
                tokio::task::yield_now().await;
            };
            order.push(got);
        }
        assert_eq!(order, [1, 2, 3, 1, 2, 3, 1, 2, 3]);
    }

    /// A worker that leaves with a hand-off it never took: the connection
    /// goes to another worker, not lost.
    #[tokio::test]
    async fn a_leaving_worker_hands_its_connection_on() {
        let registry = Arc::new(Registry::default());
        let first = registry.join(key(0), Policy::RoundRobin, 1).unwrap();
        let addr = first.local();
        let _client = connect(addr).await;
        // Wait until the connection was handed to the only worker.
        while registry.stats(1)[0].workers[0].connections == 0 {
            tokio::task::yield_now().await;
        }
        let second = registry.join(key(0), Policy::RoundRobin, 2).unwrap();
        drop(first);
        let conn = poll_fn(|cx| second.poll_accept(cx)).await.unwrap();
        assert_eq!(conn.peer.ip(), addr.ip());
    }

    /// A connection given back (a Node worker's `accepted: false`) goes
    /// to the next worker.
    #[tokio::test]
    async fn a_refused_connection_goes_to_another_worker() {
        let registry = Arc::new(Registry::default());
        let first = registry.join(key(0), Policy::RoundRobin, 1).unwrap();
        let second = registry.join(key(0), Policy::RoundRobin, 2).unwrap();
        let _client = connect(first.local()).await;
        let conn = poll_fn(|cx| first.poll_accept(cx)).await.unwrap();
        let peer = conn.peer;
        first.give_back(conn);
        let again = poll_fn(|cx| second.poll_accept(cx)).await.unwrap();
        assert_eq!(again.peer, peer);
    }

    #[tokio::test]
    async fn least_connections_prefers_the_idle_worker() {
        let registry = Arc::new(Registry::default());
        let busy = registry.join(key(0), Policy::LeastConnections, 1).unwrap();
        let idle = registry.join(key(0), Policy::LeastConnections, 2).unwrap();
        let addr = busy.local();
        // Worker 1 gets the first and keeps it open.
        let _c1 = connect(addr).await;
        let kept = poll_fn(|cx| busy.poll_accept(cx)).await.unwrap();
        let _c2 = connect(addr).await;
        let second = poll_fn(|cx| idle.poll_accept(cx)).await.unwrap();
        // Worker 2 closes its connection; worker 1 still has one open.
        drop(second);
        let _c3 = connect(addr).await;
        let third = poll_fn(|cx| idle.poll_accept(cx)).await.unwrap();
        drop((kept, third));
        let stats = &registry.stats(1)[0];
        let loads: Vec<_> = stats
            .workers
            .iter()
            .map(|w| (w.worker, w.open, w.connections))
            .collect();
        assert_eq!(loads, vec![(1, 0, 1), (2, 0, 2)]);
    }

    #[tokio::test]
    async fn source_ip_hash_is_sticky() {
        let registry = Arc::new(Registry::default());
        let members: Vec<_> = (1..=3)
            .map(|w| registry.join(key(0), Policy::SourceIpHash, w).unwrap())
            .collect();
        let addr = members[0].local();
        let mut clients = vec![];
        for _ in 0..6 {
            clients.push(connect(addr).await);
        }
        while registry.stats(1)[0]
            .workers
            .iter()
            .map(|w| w.connections)
            .sum::<u64>()
            < 6
        {
            tokio::task::yield_now().await;
        }
        // One client IP: every connection went to one worker.
        let counts: Vec<u64> = registry.stats(1)[0]
            .workers
            .iter()
            .map(|w| w.connections)
            .collect();
        assert_eq!(counts.iter().filter(|&&c| c == 6).count(), 1, "{counts:?}");
    }

    #[tokio::test]
    async fn shared_workers_accept_themselves() {
        let registry = Arc::new(Registry::default());
        let a = registry.join(key(0), Policy::Shared, 1).unwrap();
        let b = registry.join(key(0), Policy::Shared, 2).unwrap();
        let _c = connect(a.local()).await;
        let conn = tokio::select! {
            c = poll_fn(|cx| a.poll_accept(cx)) => c,
            c = poll_fn(|cx| b.poll_accept(cx)) => c,
        };
        conn.unwrap();
    }
}
