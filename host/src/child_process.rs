//! `hive:process/child-process`: `fork` (wasm guests), `spawn`, `exec`,
//! `exec-file` and their sync forms (OS programs), `pipe`, and the `child`
//! resource both kinds share.

use crate::bindings::hive::process::child_process::{
    ExecOptions, ExecOutput, ForkOptions, Host, HostChild, SpawnOptions, SpawnSyncResult,
    Stdio as StdioKind, SyncOptions,
};
use crate::bindings::{
    ChildEvent, ChildEventKind, ErrorCode, ErrorInfo, Event, Message, WitExitStatus,
};
use crate::ctx::HostState;
use crate::engine::LoadError;
use crate::error::ExitStatus;
use crate::message;
use crate::os::{self, Completed, Request, SpawnPolicy};
use crate::pipe::{Pipe, PipeReader};
use crate::process::InboxReady;
use crate::signal::Signal;
use crate::table::{Channel, ModuleSource, ParentLink, Proc, SpawnSpec, Stdio, report_end};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::watch;
use wasmtime::component::Resource;
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p2::pipe::AsyncWriteStream;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

/// Bytes buffered in each direction of a piped stdio stream.
const PIPE_CAPACITY: usize = 64 * 1024;

/// Bytes a guest may write to an OS child's stdin before it must wait: a
/// few kernel pipe buffers, so the writer task always has the next one.
const STDIN_BUDGET: usize = 256 * 1024;

/// A child process, as its parent holds it (Node's `ChildProcess`): a wasm
/// guest or an OS process, with the same events.
pub struct Child {
    id: u32,
    /// The running (or ended) process; `None` when spawning failed.
    proc: Option<Arc<Proc>>,
    channel: Option<Arc<Channel>>,
    /// Status of a failed spawn (`close(-2, null)`).
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
    /// started (at most `MAX_EPIPE_EVENTS`).
    epipes: u32,
}

/// How many messages to a fork that never started are each reported as an
/// `EPIPE` error; past that, `send` fails at once with `channel-closed`.
const MAX_EPIPE_EVENTS: u32 = 1000;

impl Child {
    fn new(id: u32, proc: Option<Arc<Proc>>) -> Child {
        Child {
            id,
            proc,
            channel: None,
            failed: None,
            stdin: None,
            stdout: None,
            stderr: None,
            output: None,
            spawnfile: String::new(),
            spawnargs: Vec::new(),
            epipes: 0,
        }
    }

    /// Records Node's `spawnfile` and `spawnargs`.
    fn started_as(mut self, file: &str, argv: Vec<String>) -> Child {
        self.spawnfile = file.to_owned();
        self.spawnargs = argv;
        self
    }

    fn status(&self) -> Option<ExitStatus> {
        self.failed.or_else(|| self.proc.as_ref()?.status())
    }
}

/// `kill-signal` as given, default SIGTERM.
fn kill_signal(name: Option<&str>) -> Result<Signal, ErrorCode> {
    match name {
        None => Ok(Signal::TERM),
        Some(name) => Signal::parse(name).ok_or(ErrorCode::UnknownSignal),
    }
}

/// Unwraps a guest-visible error: `Ok(Err(code))` out of the host call.
macro_rules! guest_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return Ok(Err(code)),
        }
    };
}

impl Host for HostState {
    async fn fork(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
    ) -> wasmtime::Result<Result<Resource<Child>, ErrorCode>> {
        if module.is_empty()
            || os::has_nul(&module)
            || args
                .iter()
                .chain(&options.exec_argv)
                .any(|a| os::has_nul(a))
            || os::invalid_env(options.env.iter().flatten())
        {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        let kill_signal = guest_try!(kill_signal(options.kill_signal.as_deref()));
        let hive = self.process.hive.clone();
        let me = self.process.me.clone();
        let path = PathBuf::from(&module);
        if !self.process.caps.fork.allows(&path) {
            // One answer for every refused path, given before anything is
            // opened: whether it exists is none of the guest's business.
            tracing::warn!(
                "guest `{}` (pid {}) may not fork `{module}`: allow it with {}",
                me.name,
                me.pid,
                crate::capability::ForkPolicy::hint(&path)
            );
            let argv = std::iter::once(module.clone()).chain(args).collect();
            let err = LoadError::Read {
                path: path.clone(),
                source: std::io::ErrorKind::PermissionDenied.into(),
            };
            let child = failed_fork(&hive, &me, &module, &err).started_as(&module, argv);
            return Ok(Ok(self.table.push(child)?));
        }
        // Never block the caller on a compile: a module not loaded yet is
        // loaded (and compiled) by the child's own task. What is cheap to
        // check — the file is there and is a component — is checked now, so
        // `pid` is `none` for those failures, as in Node; a component that
        // then fails to compile or link exits 1, as a Node child whose
        // script does not parse.
        let source = match hive.cached(&path) {
            Some(loaded) => ModuleSource::Ready(loaded),
            None => match hive.precheck(&path) {
                Ok(()) => ModuleSource::Pending(path),
                Err(err) => {
                    let argv = std::iter::once(module.clone()).chain(args).collect();
                    let child = failed_fork(&hive, &me, &module, &err).started_as(&module, argv);
                    return Ok(Ok(self.table.push(child)?));
                }
            },
        };

        // The child's subtree: a share of ours (`max-procs`), or ours.
        let budget = match options.max_procs {
            Some(limit) => match crate::table::Budget::share(&me.budget, limit) {
                Ok(budget) => budget,
                Err(e) => {
                    tracing::debug!("fork refused: {e}");
                    return Ok(Err(ErrorCode::TooManyProcesses));
                }
            },
            None => me.budget.clone(),
        };
        let channel = Channel::open();
        let (stdio, pipes) = if options.silent {
            let (stdio, pipes) = piped_stdio();
            (stdio, Some(pipes))
        } else {
            (self.process.stdio.clone(), None)
        };
        let argv: Vec<String> = std::iter::once(module.clone())
            .chain(options.exec_argv)
            .chain(args)
            .collect();
        let spawnargs = argv.clone();
        let spec = SpawnSpec {
            module: source,
            argv,
            env: options.env.unwrap_or_else(|| self.process.env.clone()),
            dirs: if options.inherit_dirs.unwrap_or(true) {
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
            caps: self.process.caps.clone(),
            cwd: self.process.cwd.clone(),
            budget,
        };
        let (stdin, outputs) = match pipes {
            Some((stdin, stdout, stderr)) => (Some(stdin), Some((stdout, stderr))),
            None => (None, None),
        };
        let mut readers = (None, None);
        let spawned = hive.inner.table.spawn(&hive, spec, |proc| {
            if let Some((stdout, stderr)) = outputs {
                readers = os::pump_outputs(proc, Some(stdout), Some(stderr));
            }
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
        kill_after(&proc, options.timeout_ms, kill_signal);
        let child = Child {
            channel: Some(channel),
            stdin,
            stdout: readers.0,
            stderr: readers.1,
            ..Child::new(proc.pid, Some(proc))
        }
        .started_as(&module, spawnargs);
        Ok(Ok(self.table.push(child)?))
    }

    async fn spawn(
        &mut self,
        command: String,
        args: Vec<String>,
        options: SpawnOptions,
    ) -> wasmtime::Result<Result<Resource<Child>, ErrorCode>> {
        let kill_signal = guest_try!(kill_signal(options.kill_signal.as_deref()));
        let mut request = guest_try!(Request::new(
            &command,
            &args,
            options.shell.as_deref(),
            options.argv0,
            options.cwd,
            options.env.unwrap_or_else(|| self.process.env.clone()),
            [options.stdin, options.stdout, options.stderr],
            options.detached,
        ));
        guest_try!(self.may_spawn(&mut request));
        let child = guest_try!(self.start_os(&request, options.timeout_ms, kill_signal, None));
        Ok(Ok(self.table.push(child)?))
    }

    async fn exec(
        &mut self,
        command: String,
        options: ExecOptions,
    ) -> wasmtime::Result<Result<Resource<Child>, ErrorCode>> {
        let shell = options
            .shell
            .clone()
            .unwrap_or_else(|| os::DEFAULT_SHELL.into());
        self.exec_common(&command, &[], Some(shell), options).await
    }

    async fn exec_file(
        &mut self,
        file: String,
        args: Vec<String>,
        options: ExecOptions,
    ) -> wasmtime::Result<Result<Resource<Child>, ErrorCode>> {
        let shell = options.shell.clone();
        self.exec_common(&file, &args, shell, options).await
    }

    async fn spawn_sync(
        &mut self,
        command: String,
        args: Vec<String>,
        options: SyncOptions,
    ) -> wasmtime::Result<Result<SpawnSyncResult, ErrorCode>> {
        let shell = options.shell.clone();
        let (done, request, _) = guest_try!(self.run_sync(&command, &args, shell, options).await);
        let error = if let Some((info, _)) = &done.spawn_error {
            Some(info.clone())
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
        Ok(Ok(SpawnSyncResult {
            pid: done.pid,
            stdout: done.stdout.bytes,
            stderr: done.stderr.bytes,
            status,
            signal,
            error,
        }))
    }

    async fn exec_sync(
        &mut self,
        command: String,
        options: SyncOptions,
    ) -> wasmtime::Result<Result<ExecOutput, ErrorCode>> {
        let shell = Some(
            options
                .shell
                .clone()
                .unwrap_or_else(|| os::DEFAULT_SHELL.into()),
        );
        self.exec_sync_common(&command, &[], shell, options).await
    }

    async fn exec_file_sync(
        &mut self,
        file: String,
        args: Vec<String>,
        options: SyncOptions,
    ) -> wasmtime::Result<Result<ExecOutput, ErrorCode>> {
        let shell = options.shell.clone();
        self.exec_sync_common(&file, &args, shell, options).await
    }

    async fn pipe(
        &mut self,
        source: Resource<DynInputStream>,
        sink: Resource<DynOutputStream>,
    ) -> wasmtime::Result<()> {
        let source = self.table.delete(source)?;
        let sink = self.table.delete(sink)?;
        crate::pipe::copy(source, sink);
        Ok(())
    }
}

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

impl HostState {
    /// Checks the spawn capability; a denial is logged with the flag that
    /// would allow it.
    fn may_spawn(&self, request: &mut Request) -> Result<(), ErrorCode> {
        if let Ok(program) = self
            .process
            .caps
            .spawn
            .program(&request.file, request.path_env())
        {
            request.program = program;
            return Ok(());
        }
        tracing::warn!(
            "guest `{}` (pid {}) may not start `{}`: allow it with {}",
            self.process.me.name,
            self.process.me.pid,
            request.file,
            SpawnPolicy::hint(&request.file)
        );
        Err(ErrorCode::Denied)
    }

    /// Starts an OS child and its supervisor. `exec` = `(max-buffer, cmd)`
    /// buffers its output for `child.output` instead of handing out pipes.
    fn start_os(
        &mut self,
        request: &Request,
        timeout_ms: Option<u64>,
        kill_signal: Signal,
        exec: Option<(u64, String)>,
    ) -> Result<Child, ErrorCode> {
        let hive = self.process.hive.clone();
        let me = self.process.me.clone();
        let argv: Vec<String> = std::iter::once(
            request
                .argv0
                .clone()
                .unwrap_or_else(|| request.file.clone()),
        )
        .chain(request.args.iter().cloned())
        .collect();
        // OS children count against the same budgets as forks.
        let slot = me.budget.charge().map_err(|e| {
            tracing::debug!("spawn refused: {e}");
            ErrorCode::TooManyProcesses
        })?;
        let mut started = match os::start(request, &self.process.stdio, false) {
            Ok(started) => started,
            Err(err) => {
                let (info, errno) = os::spawn_error(request, &err, "spawn");
                let mut child = failed_child(&hive, &me, info.clone(), errno, false)
                    .started_as(&request.file, argv);
                if let Some((_, cmd)) = exec {
                    let output = Completed::failed((info, errno)).exec_output(
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
            hive.watch_group(pid);
        }
        let proc = Arc::new(Proc::new_os(
            pid,
            request.file.clone(),
            request.detached,
            started.group,
            slot,
        ));
        me.inbox.push(
            Event::Child(ChildEvent {
                id: pid,
                kind: ChildEventKind::Spawn,
            }),
            None,
        );
        me.add_child(proc.clone());
        hive.inner
            .os_children
            .lock()
            .unwrap()
            .insert(pid, proc.clone());
        let mut child = Child::new(pid, Some(proc.clone())).started_as(&request.file, argv);
        match exec {
            None => {
                kill_after(&proc, timeout_ms, kill_signal);
                child.stdin = started
                    .stdin
                    .take()
                    .map(|s| Box::new(AsyncWriteStream::new(STDIN_BUDGET, s)) as DynOutputStream);
                (child.stdout, child.stderr) =
                    os::pump_outputs(&proc, started.stdout.take(), started.stderr.take());
                tokio::spawn(async move {
                    let raw = started.child.wait().await;
                    tracing::debug!(?raw, "os child reaped");
                    let status = raw.map(os::exit_status);
                    finish_os(&hive, proc, me, status.unwrap_or(ExitStatus::Code(1)));
                });
            }
            Some((max_buffer, cmd)) => {
                let (tx, rx) = watch::channel(None);
                child.output = Some(rx);
                let file = request.file.clone();
                let timeout = timeout_ms.map(Duration::from_millis);
                tokio::spawn(async move {
                    let done = os::complete(
                        started,
                        Some(proc.clone()),
                        None,
                        max_buffer,
                        timeout,
                        kill_signal,
                    )
                    .await;
                    let status = done.status.unwrap_or(ExitStatus::Code(1));
                    let _ = tx.send(Some(done.exec_output(
                        &cmd,
                        &file,
                        proc.was_killed(),
                        kill_signal,
                        false,
                    )));
                    finish_os(&hive, proc, me, status);
                });
            }
        }
        Ok(child)
    }

    async fn exec_common(
        &mut self,
        file: &str,
        args: &[String],
        shell: Option<String>,
        options: ExecOptions,
    ) -> wasmtime::Result<Result<Resource<Child>, ErrorCode>> {
        let kill_signal = guest_try!(kill_signal(options.kill_signal.as_deref()));
        let mut request = guest_try!(Request::new(
            file,
            args,
            shell.as_deref(),
            None,
            options.cwd,
            options.env.unwrap_or_else(|| self.process.env.clone()),
            [StdioKind::Pipe; 3],
            false,
        ));
        guest_try!(self.may_spawn(&mut request));
        let cmd = exec_cmd(file, args);
        let max_buffer = os::max_buffer(options.max_buffer);
        let child = guest_try!(self.start_os(
            &request,
            options.timeout_ms,
            kill_signal,
            Some((max_buffer, cmd)),
        ));
        Ok(Ok(self.table.push(child)?))
    }

    /// Runs a program to completion for the sync forms: blocks this guest's
    /// fiber, not the host.
    async fn run_sync(
        &mut self,
        command: &str,
        args: &[String],
        shell: Option<String>,
        options: SyncOptions,
    ) -> Result<(Completed, Request, Signal), ErrorCode> {
        let kill_signal = kill_signal(options.kill_signal.as_deref())?;
        let mut request = Request::new(
            command,
            args,
            shell.as_deref(),
            options.argv0,
            options.cwd,
            options.env.unwrap_or_else(|| self.process.env.clone()),
            [StdioKind::Pipe, StdioKind::Pipe, options.stderr],
            false,
        )?;
        self.may_spawn(&mut request)?;
        // Counted like every other child, for as long as it runs.
        let _slot = self.process.me.budget.charge().map_err(|e| {
            tracing::debug!("spawn refused: {e}");
            ErrorCode::TooManyProcesses
        })?;
        // The guest may be killed while it waits here: then the child must
        // die with the dropped future, so these children kill on drop.
        let hive = self.process.hive.clone();
        let done = match os::start(&request, &self.process.stdio, true) {
            Ok(started) => {
                let (pid, group) = (started.pid, started.group);
                if group {
                    hive.watch_group(pid);
                }
                let timeout = options.timeout_ms.map(Duration::from_millis);
                let max_buffer = os::max_buffer(options.max_buffer);
                let done = os::complete(
                    started,
                    None,
                    options.input,
                    max_buffer,
                    timeout,
                    kill_signal,
                )
                .await;
                if group {
                    hive.group_reaped(pid);
                }
                done
            }
            Err(err) => Completed::failed(os::spawn_error(&request, &err, "spawnSync")),
        };
        Ok((done, request, kill_signal))
    }

    async fn exec_sync_common(
        &mut self,
        file: &str,
        args: &[String],
        shell: Option<String>,
        options: SyncOptions,
    ) -> wasmtime::Result<Result<ExecOutput, ErrorCode>> {
        let cmd = exec_cmd(file, args);
        let (done, request, kill_signal) =
            guest_try!(self.run_sync(file, args, shell, options).await);
        let killed = done.timed_out || done.stdout.exceeded || done.stderr.exceeded;
        Ok(Ok(done.exec_output(
            &cmd,
            &request.file,
            killed,
            kill_signal,
            true,
        )))
    }

    fn push_reader(
        &mut self,
        reader: Option<PipeReader>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        Ok(match reader {
            Some(r) => Some(self.table.push(Box::new(r) as DynInputStream)?),
            None => None,
        })
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

/// An OS child was reaped: record it, tell the parent, forget it.
fn finish_os(hive: &crate::Hive, proc: Arc<Proc>, parent: Arc<Proc>, status: ExitStatus) {
    proc.set_status(status);
    drop(proc.slot.lock().unwrap().take());
    let pid = proc.pid;
    if proc.os.is_some_and(|os| os.group) {
        hive.group_reaped(pid);
    }
    report_end(proc, parent, status);
    hive.inner.os_children.lock().unwrap().remove(&pid);
    hive.inner.os_reaped.notify_waiters();
}

/// A fork that never started: `error`, `close(errno)`, then `disconnect`.
fn failed_fork(hive: &crate::Hive, me: &Proc, module: &str, err: &LoadError) -> Child {
    let (code, errno) = err.node_code();
    let message = match code {
        "ENOENT" | "EACCES" => format!("spawn {module} {code}"),
        _ => format!("spawn {module} {code}: {}", ErrorChain(err)),
    };
    let info = ErrorInfo {
        code: code.to_owned(),
        errno: Some(errno),
        syscall: Some(format!("spawn {module}")),
        path: Some(module.to_owned()),
        message,
        spawnargs: Vec::new(),
    };
    failed_child(hive, me, info, errno, true)
}

/// A child that never started: queues `error` then `close(errno)` (and,
/// for a fork, `disconnect`: Node opens the channel before spawning and
/// closes it last, as v20 does).
///
/// A fork's channel stays open (`connected`) until `close`, as in Node, and
/// `close` comes only once the parent has handled `error`: a message sent
/// until then — even from the `error` listener — fails as Node's write to
/// the dead channel does, with an `EPIPE` `error` before `close`.
fn failed_child(hive: &crate::Hive, me: &Proc, info: ErrorInfo, errno: i32, ipc: bool) -> Child {
    let id = hive.inner.table.allocate_id();
    let status = ExitStatus::Code(errno);
    let event = move |kind| Event::Child(ChildEvent { id, kind });
    let close = event(ChildEventKind::Close(WitExitStatus::from(status)));
    let failed = Child {
        failed: Some(status),
        ..Child::new(id, None)
    };
    if !ipc {
        me.inbox.push(event(ChildEventKind::Error(info)), None);
        me.inbox.push(close, None);
        return failed;
    }
    let channel = Channel::open();
    let (inbox, closing) = (me.inbox.clone(), channel.clone());
    me.inbox.push_then(
        event(ChildEventKind::Error(info)),
        Box::new(move || {
            closing.close();
            inbox.push(close, None);
            inbox.push(event(ChildEventKind::Disconnect), None);
        }),
    );
    Child {
        channel: Some(channel),
        ..failed
    }
}

/// Node's error for a message written to a child that never started.
fn epipe() -> ErrorInfo {
    ErrorInfo {
        code: "EPIPE".into(),
        errno: Some(-32),
        syscall: Some("write".into()),
        path: None,
        message: "write EPIPE".into(),
        spawnargs: Vec::new(),
    }
}

/// Kills `proc` with `signal` after `ms` milliseconds unless it ended.
fn kill_after(proc: &Arc<Proc>, ms: Option<u64>, signal: Signal) {
    if let Some(ms) = ms {
        let proc = proc.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = proc.wait() => {}
                _ = tokio::time::sleep(Duration::from_millis(ms)) => { proc.kill(signal); }
            }
        });
    }
}

/// Formats an error with its whole source chain, `a: b: c`.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

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

/// Pipes for a `silent` fork: the child's stdio, and the parent's ends
/// (stdin to write, stdout and stderr to pump).
fn piped_stdio() -> (Stdio, (DynOutputStream, DuplexStream, DuplexStream)) {
    let (child_in, parent_in) = tokio::io::duplex(PIPE_CAPACITY);
    let (child_out, parent_out) = tokio::io::duplex(PIPE_CAPACITY);
    let (child_err, parent_err) = tokio::io::duplex(PIPE_CAPACITY);
    let stdio = Stdio {
        is_host: false,
        stdin: Arc::new(AsyncStdinStream::new(child_in)),
        stdout: Arc::new(AsyncStdoutStream::new(PIPE_CAPACITY, child_out)),
        stderr: Arc::new(AsyncStdoutStream::new(PIPE_CAPACITY, child_err)),
    };
    let stdin: DynOutputStream = Box::new(AsyncWriteStream::new(PIPE_CAPACITY, parent_in));
    (stdio, (stdin, parent_out, parent_err))
}

impl HostChild for HostState {
    async fn id(&mut self, child: Resource<Child>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&child)?.id)
    }

    async fn spawnfile(&mut self, child: Resource<Child>) -> wasmtime::Result<String> {
        Ok(self.table.get(&child)?.spawnfile.clone())
    }

    async fn spawnargs(&mut self, child: Resource<Child>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&child)?.spawnargs.clone())
    }

    async fn pid(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<u32>> {
        Ok(self.table.get(&child)?.proc.as_ref().map(|p| p.pid))
    }

    async fn send(
        &mut self,
        child: Resource<Child>,
        msg: Message,
    ) -> wasmtime::Result<Result<bool, ErrorCode>> {
        let child_handle = child;
        let child = self.table.get(&child_handle)?;
        let Some(channel) = &child.channel else {
            return Ok(Err(ErrorCode::ChannelClosed));
        };
        let cost = match message::validate(&msg) {
            Ok(cost) => cost,
            Err(code) => return Ok(Err(code)),
        };
        if !channel.connected() {
            return Ok(Err(ErrorCode::ChannelClosed));
        }
        let Some(proc) = &child.proc else {
            // A fork that never started (see `failed_child`): queued
            // nowhere, reported as an event, after the start error — up to
            // a bound, so a guest that sends in a loop without ever taking
            // its events cannot grow its inbox without end.
            let id = child.id;
            let child = self.table.get_mut(&child_handle)?;
            child.epipes += 1;
            if child.epipes > MAX_EPIPE_EVENTS {
                return Ok(Err(ErrorCode::ChannelClosed));
            }
            self.process.me.inbox.push(
                Event::Child(ChildEvent {
                    id,
                    kind: ChildEventKind::Error(epipe()),
                }),
                None,
            );
            return Ok(Ok(true));
        };
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
        let child = self.table.get(&child)?;
        Ok(Ok(child.proc.as_ref().is_some_and(|p| p.kill(signal))))
    }

    async fn killed(&mut self, child: Resource<Child>) -> wasmtime::Result<bool> {
        Ok(self
            .table
            .get(&child)?
            .proc
            .as_ref()
            .is_some_and(|p| p.was_killed()))
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
        let closed = || Proc::all_reported(proc.as_ref());
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
        let reader = self
            .table
            .get(&child)?
            .stdout
            .as_ref()
            .and_then(Pipe::take_reader);
        self.push_reader(reader)
    }

    async fn stderr(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let reader = self
            .table
            .get(&child)?
            .stderr
            .as_ref()
            .and_then(Pipe::take_reader);
        self.push_reader(reader)
    }

    async fn output(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<ExecOutput>> {
        let Some(mut output) = self.table.get_mut(&child)?.output.take() else {
            return Ok(None);
        };
        let ready = output.wait_for(Option::is_some).await;
        Ok(ready.ok().and_then(|o| o.clone()))
    }

    async fn drop(&mut self, child: Resource<Child>) -> wasmtime::Result<()> {
        self.table.delete(child)?;
        Ok(())
    }
}
