//! The primary's side of Node's `NODE_CLUSTER` protocol (`node.md` §3.2–
//! §3.4), so that an unmodified Node cluster worker (`cluster.isWorker`
//! with `NODE_UNIQUE_ID`) joins the Hive primary's listeners like a wasm
//! worker: its `queryServer` joins the cluster's listener for the address;
//! under round-robin (and Hive's other host-accepting policies) each
//! connection is handed over as `newconn` with the descriptor, one at a
//! time (the next waits for the worker's `accepted`), and under `shared`
//! the worker gets the listening descriptor itself.

use super::peer::NodeWire;
use crate::runtime::cluster::WorkerLink;
use crate::runtime::listen::{Membership, Policy};
use crate::runtime::net::NetGuard;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::oneshot;
use wasmtime_wasi::sockets::SocketAddrUse;

/// A Node cluster worker, as its Hive primary serves it.
pub struct NodeWorker {
    link: Arc<WorkerLink>,
    wire: Arc<NodeWire>,
    net: Arc<NetGuard>,
    /// Our own message numbers (`seq`); the worker's `ack`s echo them.
    seq: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Its servers, by Node's key (`address:port:addressType:fd:index`).
    served: HashMap<String, Served>,
    /// `newconn`s waiting for the worker's `accepted`.
    acks: HashMap<u64, oneshot::Sender<bool>>,
}

struct Served {
    membership: Arc<Membership>,
    handoff: Option<tokio::task::AbortHandle>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(task) = self.handoff.take() {
            task.abort();
        }
    }
}

/// Node's (libuv's) negative errno for a failed bind.
fn errno(e: &std::io::Error) -> i64 {
    -i64::from(e.raw_os_error().unwrap_or(match e.kind() {
        std::io::ErrorKind::AddrInUse => libc::EADDRINUSE,
        std::io::ErrorKind::PermissionDenied => libc::EACCES,
        _ => libc::EINVAL,
    }))
}

impl NodeWorker {
    /// Serves the worker at the other end of `wire`; its `disconnect` from
    /// the primary becomes Node's graceful `{act: 'disconnect'}`.
    pub fn new(link: Arc<WorkerLink>, wire: Arc<NodeWire>, net: Arc<NetGuard>) -> Arc<NodeWorker> {
        let worker = Arc::new(NodeWorker {
            link,
            wire,
            net,
            seq: AtomicU64::new(0),
            state: Mutex::default(),
        });
        let weak = Arc::downgrade(&worker);
        worker.link.record.on_disconnect(Box::new(move || {
            weak.upgrade().is_some_and(|w| {
                w.send(json!({"act": "disconnect"}), None);
                true
            })
        }));
        worker
    }

    /// Sends one `NODE_CLUSTER` message (with a descriptor: as a handle).
    fn send(&self, mut msg: Value, fd: Option<std::os::fd::OwnedFd>) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        msg["cmd"] = "NODE_CLUSTER".into();
        msg["seq"] = seq.into();
        self.wire.send_internal(&msg, fd);
        seq
    }

    /// One `NODE_CLUSTER` message from the worker.
    pub fn on_message(self: &Arc<Self>, msg: Value) {
        match msg["act"].as_str() {
            Some("online") => self.link.online(),
            Some("queryServer") => self.query_server(&msg),
            Some("listening") => {
                // Its `port` is the real one (a `listen(0)` asked for 0),
                // so the server is found by where it listens.
                let port = msg["port"].as_u64();
                let local = self
                    .state
                    .lock()
                    .unwrap()
                    .served
                    .values()
                    .map(|s| s.membership.local())
                    .find(|l| Some(u64::from(l.port())) == port);
                if let Some(local) = local {
                    self.link.announce(local);
                }
            }
            Some("close") => {
                let key = msg["key"].as_str().unwrap_or_default().to_owned();
                if let Some(served) = self.state.lock().unwrap().served.remove(&key) {
                    served.membership.leave();
                }
            }
            Some("exitedAfterDisconnect") => {
                self.link.record.leave();
                self.send(json!({"ack": msg["seq"]}), None);
            }
            Some(other) => tracing::debug!(act = other, "a NODE_CLUSTER message Hive ignores"),
            None => {
                if let Some(ack) = msg["ack"].as_u64() {
                    let waiting = self.state.lock().unwrap().acks.remove(&ack);
                    if let Some(tx) = waiting {
                        let _ = tx.send(msg["accepted"].as_bool().unwrap_or(false));
                    }
                }
            }
        }
    }

    fn query_server(self: &Arc<Self>, msg: &Value) {
        let key = key(msg);
        let ack = msg["seq"].clone();
        let v6 = msg["addressType"].as_i64() == Some(6);
        let ip: Option<IpAddr> = match msg["address"].as_str() {
            // `listen(port)`: every address, as Node's primary binds it.
            None => Some(if v6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            }),
            Some("localhost") => Some(Ipv4Addr::LOCALHOST.into()),
            Some(text) => text.parse().ok(),
        };
        let port = msg["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        let (Some(ip), Some(port)) = (ip, port) else {
            self.reply_error(&key, ack, -i64::from(libc::EINVAL));
            return;
        };
        let addr = SocketAddr::new(ip, port);
        if !self.net.check(addr, SocketAddrUse::TcpBind)
            || !self.net.check(addr, SocketAddrUse::TcpListen)
        {
            self.reply_error(&key, ack, -i64::from(libc::EACCES));
            return;
        }
        let membership = match self.link.join_quiet(addr) {
            Ok(m) => m,
            Err(e) => {
                self.reply_error(&key, ack, errno(&e));
                return;
            }
        };
        let local = membership.local();
        if membership.policy() == Policy::Shared {
            let fd = match membership.listener_fd() {
                Ok(fd) => fd,
                Err(e) => {
                    self.reply_error(&key, ack, errno(&e));
                    return;
                }
            };
            self.send(
                json!({"errno": 0, "key": key, "ack": ack, "data": null}),
                Some(fd),
            );
            self.state.lock().unwrap().served.insert(
                key,
                Served {
                    membership,
                    handoff: None,
                },
            );
            return;
        }
        self.send(
            json!({
                "errno": null, "key": key, "ack": ack, "data": null,
                "sockname": {
                    "address": local.ip().to_string(),
                    "family": if local.is_ipv4() { "IPv4" } else { "IPv6" },
                    "port": local.port(),
                },
            }),
            None,
        );
        let task = tokio::spawn(handoff(
            Arc::downgrade(self),
            key.clone(),
            membership.clone(),
        ));
        self.state.lock().unwrap().served.insert(
            key,
            Served {
                membership,
                handoff: Some(task.abort_handle()),
            },
        );
    }

    fn reply_error(&self, key: &str, ack: Value, errno: i64) {
        self.send(
            json!({"errno": errno, "key": key, "ack": ack, "data": null}),
            None,
        );
    }
}

/// Hands the worker one connection at a time: `newconn` with the
/// descriptor, then the next only after its `accepted` (Node's
/// `RoundRobinHandle.handoff`). Our copy of each descriptor closes once it
/// accepted; one it did not goes back to the queue.
async fn handoff(worker: Weak<NodeWorker>, key: String, membership: Arc<Membership>) {
    loop {
        let Ok(conn) = std::future::poll_fn(|cx| membership.poll_accept(cx)).await else {
            return;
        };
        let Some(w) = worker.upgrade() else { return };
        let Ok(fd) = conn.stream.as_fd().try_clone_to_owned() else {
            continue;
        };
        let (tx, rx) = oneshot::channel();
        let seq = w.seq.fetch_add(1, Ordering::Relaxed);
        w.state.lock().unwrap().acks.insert(seq, tx);
        let msg = json!({"cmd": "NODE_CLUSTER", "act": "newconn", "key": key, "seq": seq});
        w.wire.send_internal(&msg, Some(fd));
        drop(w);
        if rx.await.unwrap_or(false) {
            drop(conn);
        } else {
            // Closing, or over its `maxConnections`: another worker takes
            // it, as Node's `RoundRobinHandle` re-distributes it.
            membership.give_back(conn);
        }
    }
}

/// Node's key for a server: `address:port:addressType:fd:index`.
fn key(msg: &Value) -> String {
    let field = |name: &str| match &msg[name] {
        Value::Null => "null".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let fd = match &msg["fd"] {
        Value::Null => "undefined".to_owned(),
        other => other.to_string(),
    };
    format!(
        "{}:{}:{}:{fd}:{}",
        field("address"),
        field("port"),
        field("addressType"),
        field("index")
    )
}
