//! Node.js peers: Node's IPC wire protocol, so that a guest can fork a real
//! `node child.js` and `host run` can be a Node program's forked child.
//!
//! The channel is an `AF_UNIX` stream socket whose descriptor number the
//! child finds in `NODE_CHANNEL_FD`, and `NODE_CHANNEL_SERIALIZATION_MODE`
//! says how messages are written: `json` ([`json`]) or `advanced` ([`v8`]).
//! A Node peer is one more end of a runtime channel ([`peer`]).

pub mod cluster;
pub mod json;
pub mod peer;
pub mod scm;
pub mod v8;

use crate::runtime::unix;
use std::os::fd::{AsRawFd, OwnedFd};

/// The variable that names the channel's descriptor.
pub const CHANNEL_FD: &str = "NODE_CHANNEL_FD";

/// The variable that names the serialization.
pub const SERIALIZATION_MODE: &str = "NODE_CHANNEL_SERIALIZATION_MODE";

/// How messages are written on a channel (Node's `serialization` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serialization {
    /// One `JSON.stringify` line per message (Node's default).
    #[default]
    Json,
    /// V8's structured-clone format, length-prefixed.
    Advanced,
}

impl Serialization {
    /// The name Node uses.
    pub fn name(self) -> &'static str {
        match self {
            Serialization::Json => "json",
            Serialization::Advanced => "advanced",
        }
    }

    /// Parses Node's name (`NODE_CHANNEL_SERIALIZATION_MODE`).
    pub fn parse(name: &str) -> Option<Serialization> {
        match name {
            "json" => Some(Serialization::Json),
            "advanced" => Some(Serialization::Advanced),
            _ => None,
        }
    }
}

/// A descriptor sent with a message (a message envelope's handle), and
/// Node's name for what it is: `net.Server` (a listening socket, which both
/// sides may then accept on), `net.Socket` (a connection), `net.Native`,
/// `dgram.Socket` or `dgram.Native`.
#[derive(Debug)]
pub struct PassedHandle {
    /// The descriptor.
    pub fd: OwnedFd,
    /// Node's handle type.
    pub kind: String,
}

/// A channel for a Node child about to start: our end, the child's end
/// (to be inherited, see [`unix::SPAWNING`]), and the variables that tell
/// the child where it is.
pub struct ChildChannel {
    /// Our end.
    pub ours: std::os::unix::net::UnixStream,
    /// The child's end.
    pub theirs: OwnedFd,
}

impl ChildChannel {
    /// A new socket pair.
    pub fn new() -> std::io::Result<ChildChannel> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        Ok(ChildChannel {
            ours,
            theirs: theirs.into(),
        })
    }

    /// The variables the child needs.
    pub fn env(&self, serialization: Serialization) -> [(String, String); 2] {
        [
            (CHANNEL_FD.into(), self.theirs.as_raw_fd().to_string()),
            (SERIALIZATION_MODE.into(), serialization.name().into()),
        ]
    }
}

/// The channel to a Node parent, when this host was started as one's
/// child (`NODE_CHANNEL_FD` set): `None` when it was not.
pub fn parent_channel() -> Option<Result<(OwnedFd, Serialization), String>> {
    let fd = std::env::var(CHANNEL_FD).ok()?;
    let mode = std::env::var(SERIALIZATION_MODE).unwrap_or_else(|_| "json".into());
    Some((|| {
        let serialization = Serialization::parse(&mode).ok_or_else(|| {
            format!("`{SERIALIZATION_MODE}={mode}`: expected `json` or `advanced`")
        })?;
        let number: i32 = fd
            .parse()
            .map_err(|_| format!("`{CHANNEL_FD}={fd}` is not a file descriptor number"))?;
        let socket = unix::adopt_socket(number)
            .map_err(|e| format!("`{CHANNEL_FD}={fd}` is not an open socket: {e}"))?;
        Ok((socket, serialization))
    })())
}

/// Whether an environment entry is one of the channel's variables, which a
/// child never sees (Node deletes them from `process.env`).
pub fn is_channel_var(name: &str) -> bool {
    name == CHANNEL_FD || name == SERIALIZATION_MODE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::budget::Budget;
    use crate::runtime::event::{ChildEvent, Envelope, Event, Handle, Payload};
    use crate::runtime::lifecycle::{self, End, Link, NewProc};
    use crate::runtime::proc::{Proc, ProcKind};
    use crate::runtime::{Runtime, RuntimeConfig};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::time::Duration;

    /// A parent process record, and an unmodified Node child running
    /// `script` on a real channel to it.
    struct NodeChild {
        parent: Arc<Proc>,
        child: Arc<Proc>,
        _process: tokio::process::Child,
    }

    /// A runtime, a budget, and a parent process record in it.
    fn parent() -> (Runtime, Arc<Budget>, Arc<Proc>) {
        let rt = Runtime::new(
            RuntimeConfig {
                max_procs: 8,
                kill_grace: Duration::from_secs(1),
                max_total_memory: 1 << 30,
                sentinel: None,
                capacity: crate::runtime::capacity::Capacity::new(false, 0, 8),
            },
            wasmtime::Engine::default(),
        );
        let budget = Budget::root(8);
        let parent = lifecycle::register(
            &rt,
            NewProc {
                pid: rt.processes().allocate_id(),
                name: "parent".into(),
                kind: ProcKind::Wasm,
                parent: None,
                channel: Link::None,
                pipes: Vec::new(),
                slot: budget.charge().unwrap(),
                restarts: 0,
            },
        );
        (rt, budget, parent)
    }

    /// A child `pid` of `parent` whose channel end is a Node peer on
    /// `socket`, its reader running.
    fn peer_child(
        rt: &Runtime,
        budget: &Arc<Budget>,
        parent: &Arc<Proc>,
        pid: u32,
        socket: tokio::net::UnixStream,
        serialization: Serialization,
    ) -> Arc<Proc> {
        let (wire, reader) = peer::connect(socket, serialization);
        let child = lifecycle::register(
            rt,
            NewProc {
                pid,
                name: "peer".into(),
                kind: ProcKind::Os {
                    detached: false,
                    group: false,
                },
                parent: Some(parent),
                channel: Link::Parent(Some(wire)),
                pipes: Vec::new(),
                slot: budget.charge().unwrap(),
                restarts: 0,
            },
        );
        tokio::spawn(reader.run(child.channel.clone().unwrap(), End::Child));
        child
    }

    fn start(script: &str, serialization: Serialization) -> NodeChild {
        let (rt, budget, parent) = parent();
        let channel = ChildChannel::new().unwrap();
        let mut command = tokio::process::Command::new("node");
        command
            .args(["-e", script])
            .envs(channel.env(serialization));
        let process = {
            let _spawning = unix::SPAWNING.write().unwrap();
            unix::set_cloexec(&channel.theirs, false).unwrap();
            command.spawn().expect("node is installed")
        };
        let ChildChannel { ours, theirs } = channel;
        drop(theirs);
        ours.set_nonblocking(true).unwrap();
        let socket = tokio::net::UnixStream::from_std(ours).unwrap();
        let pid = process.id().unwrap();
        let child = peer_child(&rt, &budget, &parent, pid, socket, serialization);
        NodeChild {
            parent,
            child,
            _process: process,
        }
    }

    impl NodeChild {
        /// The child's next event for its parent (skipping `spawn`).
        async fn next(&self) -> ChildEvent {
            let inbox = &self.parent.inbox;
            loop {
                match inbox.try_pop() {
                    Some(Event::Child {
                        event: ChildEvent::Spawn,
                        ..
                    }) => continue,
                    Some(Event::Child { event, .. }) => return event,
                    Some(other) => panic!("not a child event: {other:?}"),
                    None => {
                        let wait = inbox.wait_until(|| inbox.has_any());
                        tokio::time::timeout(Duration::from_secs(10), wait)
                            .await
                            .expect("the Node child answers within 10 s");
                    }
                }
            }
        }

        async fn message(&self) -> Envelope {
            match self.next().await {
                ChildEvent::Message(envelope) => envelope,
                other => panic!("expected a message, got {other:?}"),
            }
        }

        async fn send(&self, envelope: Envelope) {
            let cost = crate::runtime::message::cost(&envelope.payload);
            let channel = self.child.channel.as_ref().unwrap();
            channel.forward(End::Parent, envelope, cost).await.unwrap();
        }
    }

    fn json(text: &str) -> Payload {
        Payload::Json(text.into())
    }

    /// The host hands a listening socket to an unmodified Node child, which
    /// serves connections on it; a message sent right after the handle is
    /// held until Node has acknowledged it, and arrives after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_child_serves_on_a_listener_the_host_sent() {
        for serialization in [Serialization::Json, Serialization::Advanced] {
            let node = start(
                r#"process.on('message', (m, server) => {
                     if (server) {
                       server.on('connection', (s) => s.end('served by node\n'));
                       process.send({ got: m, handle: server.constructor.name });
                     } else {
                       process.send({ after: m });
                     }
                   });"#,
                serialization,
            );
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let handle = PassedHandle {
                fd: listener.into(),
                kind: "net.Server".into(),
            };
            node.send(Envelope {
                payload: json(r#""serve""#),
                handles: vec![Handle(Box::new(handle))],
            })
            .await;
            node.send(Envelope::from(json(r#""next""#))).await;
            assert_eq!(
                node.message().await.payload,
                json(r#"{"got":"serve","handle":"Server"}"#)
            );
            assert_eq!(node.message().await.payload, json(r#"{"after":"next"}"#));
            let served = tokio::task::spawn_blocking(move || {
                let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut text = String::new();
                client.read_to_string(&mut text).unwrap();
                text
            })
            .await
            .unwrap();
            assert_eq!(served, "served by node\n", "{serialization:?}");
            node.child.kill(crate::runtime::signal::Signal::KILL);
        }
    }

    /// An unmodified Node child sends a listening socket back: it arrives
    /// with its message as a handle, the host acknowledges it (Node holds
    /// everything it sends after a handle until then), and it is the
    /// listener itself — the host accepts on it once Node closed its copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_child_sends_a_listener_back() {
        let node = start(
            r#"const srv = require('net').createServer((s) => s.end('node\n'));
               srv.listen(0, '127.0.0.1', () => {
                 process.send({ port: srv.address().port }, srv);
                 process.send('after the handle');
               });
               process.on('message', () => srv.close(() => process.send('closed')));"#,
            Serialization::Json,
        );
        let mut envelope = node.message().await;
        let Payload::Json(text) = &envelope.payload else {
            panic!("json")
        };
        let port = serde_json::from_str::<serde_json::Value>(text).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        let handle = envelope.handles.pop().expect("a handle came with it");
        let handle = handle.0.downcast::<PassedHandle>().unwrap();
        assert_eq!(handle.kind, "net.Server");
        assert_eq!(node.message().await.payload, json(r#""after the handle""#));
        node.send(Envelope::from(json(r#""close yours""#))).await;
        assert_eq!(node.message().await.payload, json(r#""closed""#));
        let listener = std::net::TcpListener::from(handle.fd);
        assert_eq!(listener.local_addr().unwrap().port(), port);
        // Node made it non-blocking (a flag of the socket, not of our copy).
        listener.set_nonblocking(false).unwrap();
        let client = std::thread::spawn(move || {
            let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut text = String::new();
            client.read_to_string(&mut text).unwrap();
            text
        });
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"the host\n").unwrap();
        drop(conn);
        assert_eq!(client.join().unwrap(), "the host\n");
        node.child.kill(crate::runtime::signal::Signal::KILL);
    }

    /// The handle protocol against a peer that is not Node: a
    /// `NODE_HANDLE` without a descriptor is refused (`NODE_HANDLE_NACK`);
    /// a handle of ours the peer refuses is sent again, and what was sent
    /// after it waits until the peer acknowledges it.
    #[tokio::test]
    async fn handles_are_refused_resent_and_waited_for() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (rt, budget, parent) = parent();
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let pid = rt.processes().allocate_id();
        let child = peer_child(&rt, &budget, &parent, pid, ours, Serialization::Json);
        let channel = child.channel.clone().unwrap();
        let (read, mut write) = theirs.into_split();
        let mut lines = BufReader::new(read).lines();
        // A handle message without a descriptor: refused.
        write
            .write_all(b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":1}\n")
            .await
            .unwrap();
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            r#"{"cmd":"NODE_HANDLE_NACK"}"#
        );
        // Ours: a handle, then a plain message that must wait for the answer.
        let (socket, _keep) = std::os::unix::net::UnixStream::pair().unwrap();
        let handle = PassedHandle {
            fd: socket.into(),
            kind: "net.Socket".into(),
        };
        let send = |envelope: Envelope| {
            let channel = channel.clone();
            async move {
                let cost = crate::runtime::message::cost(&envelope.payload);
                channel.forward(End::Parent, envelope, cost).await.unwrap();
            }
        };
        send(Envelope {
            payload: json("\"h\""),
            handles: vec![Handle(Box::new(handle))],
        })
        .await;
        send(Envelope::from(json("\"later\""))).await;
        let wrapped = r#"{"cmd":"NODE_HANDLE","type":"net.Socket","msg":"h"}"#;
        assert_eq!(lines.next_line().await.unwrap().unwrap(), wrapped);
        write
            .write_all(b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n")
            .await
            .unwrap();
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            wrapped,
            "sent again"
        );
        let held = tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await;
        assert!(held.is_err(), "nothing is written before the answer");
        write
            .write_all(b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n")
            .await
            .unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), r#""later""#);
        // A hostile peer floods descriptors without their messages: the
        // host keeps a few, not all of them.
        let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = open();
        let raw: &tokio::net::UnixStream = write.as_ref();
        for _ in 0..50 {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let fds: Vec<_> = std::iter::repeat_n(a.as_raw_fd(), scm::MAX_FDS).collect();
            raw.writable().await.unwrap();
            scm::send_with_fds(raw, b" ", &fds).unwrap();
        }
        // A message after them proves the reader has taken them all in.
        write.write_all(b"\"after the flood\"\n").await.unwrap();
        loop {
            match parent.inbox.try_pop() {
                Some(Event::Child {
                    event: ChildEvent::Message(m),
                    ..
                }) => {
                    // (The bytes the descriptors rode on are JSON whitespace.)
                    let Payload::Json(text) = m.payload else {
                        panic!("json")
                    };
                    assert_eq!(text.trim(), r#""after the flood""#);
                    break;
                }
                Some(_) => {}
                None => parent.inbox.wait_until(|| parent.inbox.has_any()).await,
            }
        }
        let kept = open().saturating_sub(before);
        assert!(kept <= 2 * scm::MAX_FDS, "{kept} descriptors kept");
    }
}
