//! `spawn`, `exec`, `exec-file` and their sync forms: OS programs as
//! children — the capability check, the start, and the supervisor that
//! reaps them.

use super::{Child, ChildProcessView, kill_signal};
use crate::bindings::hive::process::child_process::{
    ExecOptions, ExecOutput, SpawnOptions, SpawnSyncResult, Stdio as StdioKind, SyncOptions,
};
use crate::bindings::{ErrorCode, ErrorInfo, HostError, WitExitStatus};
use crate::child_process::fork::AsWorker;
use crate::node::cluster::NodeWorker;
use crate::node::{ChildChannel, Serialization, peer};
use crate::os::exec::{self, Completed};
use crate::os::{self, Request};
use crate::runtime::caps::SpawnPolicy;
use crate::runtime::cluster::{WorkerLink, WorkerRecord};
use crate::runtime::exit::ExitStatus;
use crate::runtime::lifecycle::{self, End, Link, NewProc, Wire};
use crate::runtime::net::NetGuard;
use crate::runtime::pipe::{Pipe, STDIN_BUDGET};
use crate::runtime::proc::ProcKind;
use crate::runtime::signal::Signal;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynOutputStream;
use wasmtime_wasi::p2::pipe::AsyncWriteStream;

/// How an async OS child's output is handed to its parent.
pub(super) enum Output {
    /// As streams (`spawn`, and a `fork` of a Node program): `stdin`,
    /// `stdout`, `stderr`.
    Streams,
    /// Buffered for `child.output` (`exec`): at most `max_buffer` bytes of
    /// each stream, and Node's `err.cmd`.
    Buffered { max_buffer: u64, cmd: String },
}

impl ChildProcessView<'_> {
    pub(super) fn spawn(
        &mut self,
        command: String,
        args: Vec<String>,
        options: SpawnOptions,
    ) -> Result<Resource<Child>, HostError> {
        let kill_signal = kill_signal(options.kill_signal.as_deref())?;
        let mut request = Request::new(
            &command,
            &args,
            options.shell.as_deref(),
            options.argv0,
            options.cwd,
            options.env.unwrap_or_else(|| self.ctx.env.clone()),
            [options.stdin, options.stdout, options.stderr],
            options.detached,
        )?;
        let limits = self.child_caps(&options.limits)?.limits;
        self.may_spawn(&mut request, limits)?;
        request.restarts = options.restarts;
        let child = self.start_os(
            &request,
            options.timeout_ms,
            kill_signal,
            Output::Streams,
            None,
            None,
        )?;
        Ok(self.table.push(child)?)
    }

    /// `exec` and `exec-file`: `shell` is `Some` for `exec` (or a
    /// `shell` option).
    pub(super) fn exec(
        &mut self,
        file: &str,
        args: &[String],
        shell: Option<String>,
        options: ExecOptions,
    ) -> Result<Resource<Child>, HostError> {
        let kill_signal = kill_signal(options.kill_signal.as_deref())?;
        let mut request = Request::new(
            file,
            args,
            shell.as_deref(),
            None,
            options.cwd,
            options.env.unwrap_or_else(|| self.ctx.env.clone()),
            [StdioKind::Pipe; 3],
            false,
        )?;
        let limits = self.child_caps(&options.limits)?.limits;
        self.may_spawn(&mut request, limits)?;
        let output = Output::Buffered {
            max_buffer: exec::max_buffer(options.max_buffer),
            cmd: exec_cmd(file, args),
        };
        let child = self.start_os(
            &request,
            options.timeout_ms,
            kill_signal,
            output,
            None,
            None,
        )?;
        Ok(self.table.push(child)?)
    }

    pub(super) async fn spawn_sync(
        &mut self,
        command: String,
        args: Vec<String>,
        options: SyncOptions,
    ) -> Result<SpawnSyncResult, HostError> {
        let shell = options.shell.clone();
        let (done, request, _) = self.run_sync(&command, &args, shell, options).await?;
        let error = if let Some((info, _)) = &done.spawn_error {
            Some(ErrorInfo::from(info.clone()))
        } else if done.timed_out {
            Some(sync_error("ETIMEDOUT", libc::ETIMEDOUT, &request))
        } else if done.stdout.exceeded || done.stderr.exceeded {
            Some(sync_error("ENOBUFS", libc::ENOBUFS, &request))
        } else {
            None
        };
        let (status, signal) = done
            .status
            .map(WitExitStatus::from)
            .map_or((None, None), |s| (s.code, s.signal));
        Ok(SpawnSyncResult {
            pid: done.pid,
            stdout: done.stdout.bytes,
            stderr: done.stderr.bytes,
            status,
            signal,
            error,
        })
    }

    /// `exec-sync` and `exec-file-sync`.
    pub(super) async fn exec_sync(
        &mut self,
        file: &str,
        args: &[String],
        shell: Option<String>,
        options: SyncOptions,
    ) -> Result<ExecOutput, HostError> {
        let cmd = exec_cmd(file, args);
        let (done, request, kill_signal) = self.run_sync(file, args, shell, options).await?;
        let killed = done.timed_out || done.stdout.exceeded || done.stderr.exceeded;
        Ok(done.exec_output(&cmd, &request.file, killed, kill_signal, true))
    }

    /// Checks the spawn capability and gives the request the program it
    /// resolved to and `limits` (the child's, `child_caps`); a denial is
    /// logged with the flag that would allow it.
    pub(super) fn may_spawn(
        &self,
        request: &mut Request,
        limits: crate::runtime::caps::Limits,
    ) -> Result<(), HostError> {
        if let Ok(program) = self
            .ctx
            .caps
            .spawn
            .program(&request.file, request.path_env())
        {
            request.program = program;
            request.limits = limits.into();
            return Ok(());
        }
        tracing::warn!(
            "guest `{}` (pid {}) may not start `{}`: allow it with {}",
            self.ctx.me.name,
            self.ctx.me.pid,
            request.file,
            SpawnPolicy::hint(&request.file)
        );
        Err(ErrorCode::Denied.into())
    }

    /// Starts an OS child and its supervisor; with `ipc`, a Node child with
    /// a message channel in that serialization (Node's `fork`).
    pub(super) fn start_os(
        &mut self,
        request: &Request,
        timeout_ms: Option<u64>,
        kill_signal: Signal,
        output: Output,
        ipc: Option<Serialization>,
        worker: Option<AsWorker>,
    ) -> Result<Child, HostError> {
        let hive = self.ctx.hive.clone();
        let rt = hive.runtime().clone();
        let me = self.ctx.me.clone();
        let argv: Vec<String> = std::iter::once(
            request
                .argv0
                .clone()
                .unwrap_or_else(|| request.file.clone()),
        )
        .chain(request.args.iter().cloned())
        .collect();
        // OS children count against the same budgets as forks; in a
        // share, they run in its pids cgroup.
        let slot = me.budget.charge_program()?;
        let join = join_cgroup(&rt, &me.budget)?;
        let channel = match ipc.map(|_| ChildChannel::new()).transpose() {
            Ok(channel) => channel,
            Err(e) => {
                return Err(wasmtime::Error::from(e)
                    .context("no socket for a Node child's channel")
                    .into());
            }
        };
        let mut with_channel;
        let request = match (&channel, ipc) {
            (Some(channel), Some(serialization)) => {
                with_channel = request.clone();
                with_channel.env.extend(channel.env(serialization));
                &with_channel
            }
            _ => request,
        };
        let inherit = channel.as_ref().map(|c| &c.theirs);
        let mut started = match os::start(request, &self.ctx.stdio, false, inherit, join.as_ref()) {
            Ok(started) => started,
            Err(err) => {
                let (error, errno) = os::spawn_error(request, &err, "spawn");
                let failed =
                    lifecycle::failed_start(&rt, &me, error.clone(), errno, channel.is_some());
                let record = worker.map(|w| WorkerRecord::new(w.id, failed.0));
                let mut child = Child::failed(failed, errno, &request.file, argv);
                child.worker = record;
                if let Output::Buffered { cmd, .. } = output {
                    let output = Completed::failed((error, errno)).exec_output(
                        &cmd,
                        &request.file,
                        false,
                        kill_signal,
                        false,
                    );
                    child.output = Some(watch::channel(Some(output)).1);
                }
                return Ok(child);
            }
        };
        let pid = started.pid;
        if started.group {
            rt.watch_group(pid);
        }
        // The child has its end; ours becomes a wire to it.
        let node = match channel {
            Some(ChildChannel { ours, theirs }) => {
                drop(theirs);
                let socket = ours
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::UnixStream::from_std(ours));
                match socket {
                    Ok(socket) => Some(peer::connect(socket, ipc.unwrap_or_default())),
                    Err(e) => {
                        tracing::warn!("a Node child's channel failed: {e}");
                        None
                    }
                }
            }
            None => None,
        };
        let mut record = None;
        let (link, reader) = match node {
            Some((wire, mut reader)) => {
                if let Some(w) = worker {
                    // A Node cluster worker: the primary's side of
                    // `NODE_CLUSTER` rides on its channel.
                    let link = Arc::new(WorkerLink {
                        cluster: w.cluster,
                        record: WorkerRecord::new(w.id, pid),
                        primary: Arc::downgrade(&me),
                    });
                    record = Some(link.record.clone());
                    let who = format!("Node worker `{}` (pid {pid})", request.file);
                    let net = NetGuard::new(self.ctx.caps.net.clone(), who);
                    reader.serve_cluster(NodeWorker::new(link, wire.clone(), net));
                }
                (Link::Parent(Some(wire as Arc<dyn Wire>)), Some(reader))
            }
            None => (Link::None, None),
        };
        let (stdout, stderr) = match output {
            Output::Streams => (
                started.stdout.take().map(Pipe::pump),
                started.stderr.take().map(Pipe::pump),
            ),
            Output::Buffered { .. } => (None, None),
        };
        let proc = lifecycle::register(
            &rt,
            NewProc {
                pid,
                name: request.file.clone(),
                kind: ProcKind::Os {
                    detached: request.detached,
                    group: started.group,
                },
                parent: Some(&me),
                channel: link,
                pipes: stdout.iter().chain(&stderr).cloned().collect(),
                slot,
                restarts: request.restarts,
            },
        );
        let mut child = Child::started(proc.clone(), &request.file, argv);
        child.worker = record;
        let limits = request.limits;
        match output {
            Output::Streams => {
                lifecycle::kill_after(&proc, timeout_ms, kill_signal);
                child.stdin = started
                    .stdin
                    .take()
                    .map(|s| Box::new(AsyncWriteStream::new(STDIN_BUDGET, s)) as DynOutputStream);
                (child.stdout, child.stderr) = (stdout, stderr);
                // A Node child's messages: all of them reach the parent
                // before its `disconnect`, and that before its `exit`.
                let reading = match (reader, &proc.channel) {
                    (Some(reader), Some(channel)) => {
                        Some(tokio::spawn(reader.run(channel.clone(), End::Child)))
                    }
                    _ => None,
                };
                tokio::spawn(async move {
                    let raw = started.child.wait().await;
                    tracing::debug!(?raw, "os child reaped");
                    let status = raw.map(os::exit_status);
                    if let Ok(status) = status {
                        os::note_limit(&proc, &limits, status);
                    }
                    if let Some(reading) = reading {
                        // Its end is closed now, unless a program it
                        // started holds it: then do not wait forever.
                        let _ = tokio::time::timeout(rt.kill_grace(), reading).await;
                    }
                    lifecycle::ended(&rt, &proc, status.unwrap_or(ExitStatus::Code(1)));
                });
            }
            Output::Buffered { max_buffer, cmd } => {
                let (tx, rx) = watch::channel(None);
                child.output = Some(rx);
                let file = request.file.clone();
                let timeout = timeout_ms.filter(|&ms| ms > 0).map(Duration::from_millis);
                tokio::spawn(async move {
                    let done = exec::complete(
                        started,
                        Some(proc.clone()),
                        None,
                        max_buffer,
                        timeout,
                        kill_signal,
                    )
                    .await;
                    let status = done.status.unwrap_or(ExitStatus::Code(1));
                    os::note_limit(&proc, &limits, status);
                    let _ = tx.send(Some(done.exec_output(
                        &cmd,
                        &file,
                        proc.was_killed(),
                        kill_signal,
                        false,
                    )));
                    lifecycle::ended(&rt, &proc, status);
                });
            }
        }
        Ok(child)
    }

    /// Runs a program to completion for the sync forms: blocks this guest's
    /// fiber, not the host.
    async fn run_sync(
        &mut self,
        command: &str,
        args: &[String],
        shell: Option<String>,
        options: SyncOptions,
    ) -> Result<(Completed, Request, Signal), HostError> {
        let kill_signal = kill_signal(options.kill_signal.as_deref())?;
        let env = options.env.unwrap_or_else(|| self.ctx.env.clone());
        // The cwd, the PATH search and the exec touch what the guest named.
        let mut request = crate::runtime::blocking(|| {
            Request::new(
                command,
                args,
                shell.as_deref(),
                options.argv0,
                options.cwd,
                env,
                [StdioKind::Pipe, StdioKind::Pipe, options.stderr],
                false,
            )
        })?;
        let limits = self.child_caps(&options.limits)?.limits;
        crate::runtime::blocking(|| self.may_spawn(&mut request, limits))?;
        // Counted like every other child, for as long as it runs.
        let _slot = self.ctx.me.budget.charge_program()?;
        // The guest may be killed while it waits here: then the child must
        // die with the dropped future, so these children kill on drop.
        let rt = self.ctx.hive.runtime().clone();
        let join = join_cgroup(&rt, &self.ctx.me.budget)?;
        let started = crate::runtime::blocking(|| {
            os::start(&request, &self.ctx.stdio, true, None, join.as_ref())
        });
        let done = match started {
            Ok(started) => {
                let (pid, group) = (started.pid, started.group);
                if group {
                    rt.watch_group(pid);
                }
                let timeout = options
                    .timeout_ms
                    .filter(|&ms| ms > 0)
                    .map(Duration::from_millis);
                let max_buffer = exec::max_buffer(options.max_buffer);
                let done = exec::complete(
                    started,
                    None,
                    options.input,
                    max_buffer,
                    timeout,
                    kill_signal,
                )
                .await;
                if group {
                    rt.group_reaped(pid);
                }
                done
            }
            Err(err) => Completed::failed(os::spawn_error(&request, &err, "spawnSync")),
        };
        Ok((done, request, kill_signal))
    }
}

/// What an OS program charged to `budget` writes to join the share's pids
/// cgroup, if it has one (the sentinel, which cleans cgroups up, started
/// first).
fn join_cgroup(
    rt: &crate::runtime::Runtime,
    budget: &crate::runtime::budget::Budget,
) -> Result<Option<std::os::fd::OwnedFd>, HostError> {
    match budget.with_cgroup(|c| c.joiner()) {
        Some(fd) => {
            rt.watch_cgroups();
            Ok(Some(fd.map_err(|e| {
                wasmtime::Error::from(e).context("no descriptor to join a pids cgroup")
            })?))
        }
        None => Ok(None),
    }
}

/// Node's error for a sync run that timed out or overflowed.
fn sync_error(code: &str, errno: i32, request: &Request) -> ErrorInfo {
    let file = &request.file;
    ErrorInfo {
        code: code.to_owned(),
        errno: Some(-errno),
        syscall: Some(format!("spawnSync {file}")),
        path: Some(file.clone()),
        message: format!("spawnSync {file} {code}"),
        spawnargs: request.error_args.clone(),
    }
}

/// Node's `err.cmd`: the command line as given (with a shell) or the file
/// and its arguments joined by spaces.
fn exec_cmd(file: &str, args: &[String]) -> String {
    std::iter::once(file)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}
