//! `hive:process/child-process`: `fork` and the `child` resource.

use crate::bindings::hive::process::child_process::{ForkOptions, Host, HostChild};
use crate::bindings::{
    ChildEvent, ChildEventKind, ErrorCode, ErrorInfo, Event, Message, WitExitStatus,
};
use crate::ctx::HostState;
use crate::engine::LoadError;
use crate::message;
use crate::process::InboxReady;
use crate::signal::Signal;
use crate::table::{Channel, ParentLink, Proc, SpawnSpec, Stdio};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wasmtime::component::Resource;
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p2::pipe::{AsyncReadStream, AsyncWriteStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

/// Bytes buffered in each direction of a piped stdio stream.
const PIPE_CAPACITY: usize = 64 * 1024;

/// A child process, as its parent holds it (Node's `ChildProcess`).
pub struct Child {
    id: u32,
    /// The running (or ended) process; `None` when spawning failed.
    proc: Option<Arc<Proc>>,
    channel: Option<Arc<Channel>>,
    /// Status of a failed spawn (`close(-2, null)`).
    failed: Option<crate::ExitStatus>,
    killed: bool,
    stdin: Option<DynOutputStream>,
    stdout: Option<DynInputStream>,
    stderr: Option<DynInputStream>,
}

impl Child {
    fn status(&self) -> Option<crate::ExitStatus> {
        self.failed.or_else(|| self.proc.as_ref()?.status())
    }

    fn closed(&self) -> bool {
        self.proc
            .as_ref()
            .is_none_or(|p| p.closed.load(Ordering::Acquire))
    }
}

fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

impl Host for HostState {
    async fn fork(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
    ) -> wasmtime::Result<Result<Resource<Child>, ErrorCode>> {
        let env_has_nul = options
            .env
            .iter()
            .flatten()
            .any(|(k, v)| has_nul(k) || has_nul(v) || k.is_empty() || k.contains('='));
        if module.is_empty()
            || has_nul(&module)
            || args.iter().chain(&options.exec_argv).any(|a| has_nul(a))
            || env_has_nul
        {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        let kill_signal = match options.kill_signal.as_deref().map(Signal::parse) {
            None => Signal::TERM,
            Some(Some(signal)) => signal,
            Some(None) => return Ok(Err(ErrorCode::UnknownSignal)),
        };
        let hive = self.process.hive.clone();
        let me = self.process.me.clone();
        let loaded = hive.load(&PathBuf::from(&module)).await;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                let child = failed_child(&hive, &me, &module, &err);
                return Ok(Ok(self.table.push(child)?));
            }
        };

        let channel = Channel::open();
        let (stdio, pipes) = if options.silent {
            let (stdio, pipes) = piped_stdio();
            (stdio, Some(pipes))
        } else {
            (self.process.stdio.clone(), None)
        };
        let argv = std::iter::once(module.clone())
            .chain(options.exec_argv)
            .chain(args)
            .collect();
        let spec = SpawnSpec {
            module: loaded,
            argv,
            env: options.env.unwrap_or_else(|| self.process.env.clone()),
            dirs: if options.inherit_dirs {
                self.process.dirs.clone()
            } else {
                Vec::new()
            },
            stdio,
            ppid: me.pid,
            parent: Some(ParentLink {
                channel: channel.clone(),
                parent: me.clone(),
            }),
        };
        let spawned = hive.inner.table.spawn(&hive, spec, |proc| {
            me.inbox.push(
                Event::Child(ChildEvent {
                    id: proc.pid,
                    kind: ChildEventKind::Spawn,
                }),
                None,
            );
        });
        let proc = match spawned {
            Ok(proc) => proc,
            Err(e) => {
                tracing::debug!("fork refused: {e}");
                return Ok(Err(ErrorCode::TooManyProcesses));
            }
        };
        if let Some(ms) = options.timeout_ms {
            let proc = proc.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = proc.wait() => {}
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => { proc.signal(kill_signal); }
                }
            });
        }
        let (stdin, stdout, stderr) = match pipes {
            Some((i, o, e)) => (Some(i), Some(o), Some(e)),
            None => (None, None, None),
        };
        let child = Child {
            id: proc.pid,
            proc: Some(proc),
            channel: Some(channel),
            failed: None,
            killed: false,
            stdin,
            stdout,
            stderr,
        };
        Ok(Ok(self.table.push(child)?))
    }
}

/// A child that never started: queues `error` then `close(errno)`, as Node
/// does for a spawn that fails with ENOENT.
fn failed_child(hive: &crate::Hive, me: &Proc, module: &str, err: &LoadError) -> Child {
    let id = hive.inner.table.allocate_id();
    let (code, errno) = err.node_code();
    let message = match code {
        "ENOENT" | "EACCES" => format!("spawn {module} {code}"),
        _ => format!("spawn {module} {code}: {}", ErrorChain(err)),
    };
    me.inbox.push(
        Event::Child(ChildEvent {
            id,
            kind: ChildEventKind::Error(ErrorInfo {
                code: code.to_owned(),
                errno: Some(errno),
                syscall: Some(format!("spawn {module}")),
                path: Some(module.to_owned()),
                message,
            }),
        }),
        None,
    );
    let status = crate::ExitStatus::Code(errno);
    // Node sets up the channel before spawning, so a failed fork also
    // reports the channel closing — after `close`, as Node v20 does.
    for kind in [
        ChildEventKind::Close(WitExitStatus::from(status)),
        ChildEventKind::Disconnect,
    ] {
        me.inbox.push(Event::Child(ChildEvent { id, kind }), None);
    }
    Child {
        id,
        proc: None,
        channel: None,
        failed: Some(status),
        killed: false,
        stdin: None,
        stdout: None,
        stderr: None,
    }
}

/// Formats an error with its whole source chain, `a: b: c`.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Pipes for a `silent` child: the child's stdio, and the parent's ends
/// (stdin to write, stdout and stderr to read).
fn piped_stdio() -> (Stdio, (DynOutputStream, DynInputStream, DynInputStream)) {
    let (child_in, parent_in) = tokio::io::duplex(PIPE_CAPACITY);
    let (child_out, parent_out) = tokio::io::duplex(PIPE_CAPACITY);
    let (child_err, parent_err) = tokio::io::duplex(PIPE_CAPACITY);
    let stdio = Stdio {
        stdin: Arc::new(AsyncStdinStream::new(child_in)),
        stdout: Arc::new(AsyncStdoutStream::new(PIPE_CAPACITY, child_out)),
        stderr: Arc::new(AsyncStdoutStream::new(PIPE_CAPACITY, child_err)),
    };
    let parent: (DynOutputStream, DynInputStream, DynInputStream) = (
        Box::new(AsyncWriteStream::new(PIPE_CAPACITY, parent_in)),
        Box::new(AsyncReadStream::new(parent_out)),
        Box::new(AsyncReadStream::new(parent_err)),
    );
    (stdio, parent)
}

impl HostChild for HostState {
    async fn id(&mut self, child: Resource<Child>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&child)?.id)
    }

    async fn pid(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<u32>> {
        Ok(self.table.get(&child)?.proc.as_ref().map(|p| p.pid))
    }

    async fn send(
        &mut self,
        child: Resource<Child>,
        msg: Message,
    ) -> wasmtime::Result<Result<bool, ErrorCode>> {
        let child = self.table.get(&child)?;
        let (Some(proc), Some(channel)) = (&child.proc, &child.channel) else {
            return Ok(Err(ErrorCode::ChannelClosed));
        };
        let cost = match message::validate(&msg) {
            Ok(cost) => cost,
            Err(code) => return Ok(Err(code)),
        };
        if !channel.connected() {
            return Ok(Err(ErrorCode::ChannelClosed));
        }
        // The common case clones nothing but the charge.
        let room = match channel.down.try_reserve(cost) {
            Some(room) => room,
            None => {
                let (proc, flow) = (proc.clone(), channel.down.clone());
                let room = flow.reserve(cost).await;
                proc.inbox.push(Event::Message(msg), Some((flow, cost)));
                return Ok(Ok(room));
            }
        };
        proc.inbox
            .push(Event::Message(msg), Some((channel.down.clone(), cost)));
        Ok(Ok(room))
    }

    async fn disconnect(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let child = self.table.get(&child)?;
        let (Some(proc), Some(channel)) = (&child.proc, &child.channel) else {
            return Ok(Err(ErrorCode::NotConnected));
        };
        if !channel.close() {
            return Ok(Err(ErrorCode::NotConnected));
        }
        proc.inbox.push(Event::Disconnect, None);
        self.process.me.inbox.push(
            Event::Child(ChildEvent {
                id: child.id,
                kind: ChildEventKind::Disconnect,
            }),
            None,
        );
        Ok(Ok(()))
    }

    async fn connected(&mut self, child: Resource<Child>) -> wasmtime::Result<bool> {
        let child = self.table.get(&child)?;
        Ok(child.channel.as_ref().is_some_and(|c| c.connected()))
    }

    async fn kill(
        &mut self,
        child: Resource<Child>,
        signal: String,
    ) -> wasmtime::Result<Result<bool, ErrorCode>> {
        let Some(signal) = Signal::parse(&signal) else {
            return Ok(Err(ErrorCode::UnknownSignal));
        };
        let child = self.table.get_mut(&child)?;
        let delivered = child.proc.as_ref().is_some_and(|p| p.signal(signal));
        child.killed |= delivered;
        Ok(Ok(delivered))
    }

    async fn killed(&mut self, child: Resource<Child>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&child)?.killed)
    }

    async fn exit_status(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<WitExitStatus>> {
        Ok(self.table.get(&child)?.status().map(WitExitStatus::from))
    }

    async fn next_event(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<ChildEventKind>> {
        let inbox = self.process.me.inbox.clone();
        let child = self.table.get(&child)?;
        let id = child.id;
        let proc = child.proc.clone();
        let closed = || {
            proc.as_ref()
                .is_none_or(|p| p.closed.load(Ordering::Acquire))
        };
        loop {
            if let Some(kind) = inbox.try_pop_child(id) {
                return Ok(Some(kind));
            }
            if closed() {
                return Ok(None);
            }
            inbox.wait_until(|| inbox.has_child(id) || closed()).await;
        }
    }

    async fn subscribe(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let c = self.table.get(&child)?;
        let ready = InboxReady::Child {
            inbox: self.process.me.inbox.clone(),
            id: c.id,
            child: c.proc.clone(),
        };
        let resource = self.table.push(ready)?;
        wasmtime_wasi::p2::subscribe(&mut self.table, resource)
    }

    async fn stdin(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynOutputStream>>> {
        let stream = self.table.get_mut(&child)?.stdin.take();
        Ok(match stream {
            Some(s) => Some(self.table.push(s)?),
            None => None,
        })
    }

    async fn stdout(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let stream = self.table.get_mut(&child)?.stdout.take();
        Ok(match stream {
            Some(s) => Some(self.table.push(s)?),
            None => None,
        })
    }

    async fn stderr(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let stream = self.table.get_mut(&child)?.stderr.take();
        Ok(match stream {
            Some(s) => Some(self.table.push(s)?),
            None => None,
        })
    }

    async fn drop(&mut self, child: Resource<Child>) -> wasmtime::Result<()> {
        self.table.delete(child)?;
        Ok(())
    }
}

impl Child {
    /// Whether every event of this child has been queued.
    pub fn is_closed(&self) -> bool {
        self.closed()
    }
}
