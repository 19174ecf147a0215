//! `hive:process/child-process`: `fork` (wasm guests, [`fork`]), `spawn`,
//! `exec`, `exec-file` and their sync forms (OS programs, [`spawn`]),
//! `pipe`, and the `child` resource both kinds share ([`host`]).

pub(crate) mod fork;
mod host;
mod spawn;

use crate::bindings::hive::process::child_process::ExecOutput;
use crate::bindings::{ErrorCode, HostError};
use crate::hive::Hive;
use crate::runtime::caps::Capabilities;
use crate::runtime::caps::Preopen;
use crate::runtime::exit::ExitStatus;
use crate::runtime::lifecycle::Channel;
use crate::runtime::pipe::Pipe;
use crate::runtime::proc::Proc;
use crate::runtime::signal::Signal;
use crate::stdio::Stdio;
use std::sync::Arc;
use tokio::sync::watch;
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::p2::DynOutputStream;

/// What `hive:process/child-process` knows of the process it serves: what
/// that process's children inherit.
pub struct ChildProcessCtx {
    /// The host, to load and start children.
    pub hive: Hive,
    /// The process this interface serves (the parent of its children).
    pub me: Arc<Proc>,
    /// The environment and preopens, which children inherit by default.
    pub env: Vec<(String, String)>,
    /// Its preopens, which children inherit by default.
    pub dirs: Vec<Preopen>,
    /// The stdio that `inherit` means for its children.
    pub stdio: Stdio,
    /// What this process may use (children inherit it).
    pub caps: Arc<Capabilities>,
    /// The initial working directory (`--cwd`), which children inherit.
    pub cwd: Option<String>,
    /// `hive:process/cluster`, which shares this view: the process's
    /// cluster, as primary or worker.
    pub cluster: crate::cluster::ClusterCtx,
}

/// `hive:process/child-process`'s view of a store: its context and the
/// resource table.
pub struct ChildProcessView<'a> {
    /// The interface's context.
    pub ctx: &'a mut ChildProcessCtx,
    /// The store's resource table (the `child` resources, streams, pollables).
    pub table: &'a mut ResourceTable,
}

/// The `HasData` marker that links `hive:process/child-process` over a
/// [`ChildProcessView`].
pub struct HiveChildProcess;

impl HasData for HiveChildProcess {
    type Data<'a> = ChildProcessView<'a>;
}

/// A child process, as its parent holds it (Node's `ChildProcess`): a wasm
/// guest or an OS process, with the same events.
pub struct Child {
    id: u32,
    /// The running (or ended) process; `None` when starting failed.
    proc: Option<Arc<Proc>>,
    channel: Option<Arc<Channel>>,
    /// Status of a failed start (`close(-2, null)`).
    failed: Option<ExitStatus>,
    stdin: Option<DynOutputStream>,
    stdout: Option<Arc<Pipe>>,
    stderr: Option<Arc<Pipe>>,
    /// The buffered result of an `exec`/`exec-file` child, once it closed.
    output: Option<watch::Receiver<Option<ExecOutput>>>,
    /// Node's `spawnfile` and `spawnargs`.
    spawnfile: String,
    spawnargs: Vec<String>,
    /// `EPIPE` errors reported for messages sent to a fork that never
    /// started (at most [`MAX_EPIPE_EVENTS`]).
    epipes: u32,
    /// Set for a cluster worker started as an OS program (a Node worker).
    pub(crate) worker: Option<Arc<crate::runtime::cluster::WorkerRecord>>,
}

/// How many messages to a fork that never started are each reported as an
/// `EPIPE` error; past that, `send` fails at once with `channel-closed`.
const MAX_EPIPE_EVENTS: u32 = 1000;

impl Child {
    /// A running child.
    fn started(proc: Arc<Proc>, file: &str, argv: Vec<String>) -> Child {
        Child {
            id: proc.pid,
            channel: proc.channel.clone(),
            proc: Some(proc),
            ..Child::empty(0, file, argv)
        }
    }

    /// A child that never started (see `lifecycle::failed_start`).
    fn failed(
        (id, channel): (u32, Option<Arc<Channel>>),
        errno: i32,
        file: &str,
        argv: Vec<String>,
    ) -> Child {
        Child {
            channel,
            failed: Some(ExitStatus::Code(errno)),
            ..Child::empty(id, file, argv)
        }
    }

    fn empty(id: u32, file: &str, argv: Vec<String>) -> Child {
        Child {
            id,
            proc: None,
            channel: None,
            failed: None,
            stdin: None,
            stdout: None,
            stderr: None,
            output: None,
            spawnfile: file.to_owned(),
            spawnargs: argv,
            epipes: 0,
            worker: None,
        }
    }

    /// Its IPC channel, if it has one (a fork).
    pub(crate) fn channel(&self) -> Option<Arc<Channel>> {
        self.channel.clone()
    }

    /// Its id: its pid, or the id of one that never started.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// The running (or ended) process, if it started.
    pub(crate) fn proc(&self) -> Option<&Arc<Proc>> {
        self.proc.as_ref()
    }

    /// How it ended, as its parent may know it: once it took `exit`.
    fn status(&self) -> Option<ExitStatus> {
        self.failed
            .or_else(|| self.proc.as_ref()?.reported_status())
    }
}

/// `kill-signal` as given, default SIGTERM.
impl ChildProcessView<'_> {
    /// A child's capabilities: ours, with the `limits` it asks for. More
    /// than we have is `invalid-argument`, logged with the option and the
    /// most it may be.
    fn child_caps(
        &self,
        limits: &crate::bindings::hive::process::child_process::Limits,
    ) -> Result<Capabilities, HostError> {
        self.ctx.caps.narrowed(&limits.into()).map_err(|why| {
            tracing::warn!(
                "guest `{}` (pid {}) may not start that child: {why}",
                self.ctx.me.name,
                self.ctx.me.pid
            );
            ErrorCode::InvalidArgument.into()
        })
    }
}

fn kill_signal(name: Option<&str>) -> Result<Signal, HostError> {
    match name {
        None => Ok(Signal::TERM),
        Some(name) => Ok(Signal::parse(name).ok_or(ErrorCode::UnknownSignal)?),
    }
}
