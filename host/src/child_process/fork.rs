//! `fork`: a wasm guest as a child, with a message channel.

use super::spawn::Output;
use super::{Child, ChildProcessView, kill_signal};
use crate::bindings::hive::process::child_process::{
    ForkOptions, Serialization as WitSerialization, Stdio as StdioKind,
};
use crate::bindings::{ErrorCode, HostError};
use crate::error::{ErrorChain, LoadError};
use crate::node::{self, Serialization};
use crate::os::Request;
use crate::runtime::argv::{has_nul, invalid_env};
use crate::runtime::budget::Budget;
use crate::runtime::caps::{Capabilities, ForkPolicy};
use crate::runtime::cluster::{Cluster, WorkerLink, WorkerRecord};
use crate::runtime::event::StartError;
use crate::runtime::lifecycle::{self, Link};
use crate::runtime::pipe::{Pipe, SILENT_FORK_CAPACITY};
use crate::runtime::signal::Signal;
use crate::stdio::Stdio;
use crate::wasm::{ModuleSource, WasmSpec};
use crate::worker_threads::ThreadStart;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::DuplexStream;
use wasmtime::component::Resource;
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p2::DynOutputStream;
use wasmtime_wasi::p2::pipe::AsyncWriteStream;

/// A fork that is a cluster worker: its cluster and id.
pub struct AsWorker {
    pub cluster: Arc<Cluster>,
    pub id: u32,
}

impl ChildProcessView<'_> {
    pub(super) fn fork(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
    ) -> Result<Resource<Child>, HostError> {
        Ok(self.fork_child(module, args, options, None, &mut None)?.0)
    }

    /// A worker thread (`worker-threads.worker`): a fork with no IPC
    /// channel, whose `thread` holds its port to this process and its
    /// `workerData`. On a refusal, `thread` comes back with the error.
    pub(crate) fn fork_thread(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
        thread: ThreadStart,
    ) -> Result<Resource<Child>, (HostError, Option<ThreadStart>)> {
        let mut thread = Some(thread);
        match self.fork_child(module, args, options, None, &mut thread) {
            Ok((child, _)) => Ok(child),
            Err(e) => Err((e, thread)),
        }
    }

    /// `fork`, as a plain child, (`worker`) as a cluster worker, whose
    /// record is returned with it, or (`thread`) as a worker thread, which
    /// takes `thread` once nothing can refuse it any more.
    pub(crate) fn fork_child(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
        worker: Option<AsWorker>,
        thread: &mut Option<ThreadStart>,
    ) -> Result<(Resource<Child>, Option<Arc<WorkerRecord>>), HostError> {
        if module.is_empty()
            || has_nul(&module)
            || args.iter().chain(&options.exec_argv).any(|a| has_nul(a))
            || invalid_env(options.env.iter().flatten())
        {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let kill_signal = kill_signal(options.kill_signal.as_deref())?;
        let caps = self.child_caps(&options.limits)?;
        if options.exec_path.is_some() || !module.ends_with(".wasm") {
            let child = self.fork_os(module, args, options, kill_signal, worker, &caps)?;
            let record = self.table.get(&child)?.worker.clone();
            return Ok((child, record));
        }
        let hive = self.ctx.hive.clone();
        let me = self.ctx.me.clone();
        let path = PathBuf::from(&module);
        // Node's `spawnargs`: the module, then `exec-argv`, then the arguments.
        let argv: Vec<String> = std::iter::once(module.clone())
            .chain(options.exec_argv.iter().cloned())
            .chain(args)
            .collect();
        let worker_id = worker.as_ref().map(|w| w.id);
        // A worker thread talks over its port: it has no IPC channel.
        let channel = thread.is_none();
        let failed = |this: &mut Self, err: &LoadError, argv: Vec<String>| {
            let (error, errno) = fork_error(&module, err);
            let started = lifecycle::failed_start(hive.runtime(), &me, error, errno, channel);
            let record = worker_id.map(|id| WorkerRecord::new(id, started.0));
            let child = Child::failed(started, errno, &module, argv);
            Ok((this.table.push(child)?, record))
        };
        if !self.ctx.caps.fork.allows(&path) {
            // One answer for every refused path, given before anything is
            // opened: whether it exists is none of the guest's business.
            tracing::warn!(
                "guest `{}` (pid {}) may not fork `{module}`: allow it with {}",
                me.name,
                me.pid,
                ForkPolicy::hint(&path)
            );
            let err = LoadError::Read {
                path: path.clone(),
                source: std::io::ErrorKind::PermissionDenied.into(),
            };
            return failed(self, &err, argv);
        }
        // Never block the caller on a compile: a module not loaded yet is
        // loaded (and compiled) by the child's own task. What is cheap to
        // check — the file is there and is a component — is checked now, so
        // `pid` is `none` for those failures, as in Node; a component that
        // then fails to compile or link exits 1, as a Node child whose
        // script does not parse.
        let source = match hive.loader().cached(&path) {
            Some(loaded) => ModuleSource::Ready(loaded),
            None => match hive.loader().precheck(&path) {
                Ok(()) => ModuleSource::Pending(path),
                Err(err) => return failed(self, &err, argv),
            },
        };
        // The child's subtree: a share of ours (`max-procs`), or ours.
        let budget = match options.max_procs {
            Some(limit) => Budget::share(&me.budget, limit)?,
            None => me.budget.clone(),
        };
        let (stdio, stdin, pipes) = if options.silent {
            let (stdio, (stdin, out, err)) = silent_stdio();
            (stdio, Some(stdin), Some((Pipe::pump(out), Pipe::pump(err))))
        } else {
            (self.ctx.stdio.clone(), None, None)
        };
        let pid = hive.runtime().processes().allocate_id();
        let link = worker.map(|w| {
            Arc::new(WorkerLink {
                cluster: w.cluster,
                record: WorkerRecord::new(w.id, pid),
                primary: Arc::downgrade(&me),
            })
        });
        let record = link.as_ref().map(|l| l.record.clone());
        let mut spec = WasmSpec {
            module: source,
            argv: argv.clone(),
            env: options.env.unwrap_or_else(|| self.ctx.env.clone()),
            dirs: if options.inherit_dirs.unwrap_or(true) {
                self.ctx.dirs.clone()
            } else {
                Vec::new()
            },
            stdio,
            pid: Some(pid),
            ppid: me.pid,
            parent: Some(me.clone()),
            link: if channel {
                Link::Parent(None)
            } else {
                Link::None
            },
            pipes: pipes
                .iter()
                .flat_map(|(out, err)| [out.clone(), err.clone()])
                .collect(),
            caps: Arc::new(caps),
            cwd: self.ctx.cwd.clone(),
            budget,
            cluster: link,
            serve: None,
            restarts: options.restarts,
            thread: None,
        };
        let admitted = crate::wasm::admit(&hive, &spec)?;
        spec.thread = thread.take();
        let proc = crate::wasm::launch(&hive, spec, admitted);
        lifecycle::kill_after(&proc, options.timeout_ms, kill_signal);
        let mut child = Child::started(proc, &module, argv);
        child.stdin = stdin;
        if let Some((out, err)) = pipes {
            (child.stdout, child.stderr) = (Some(out), Some(err));
        }
        Ok((self.table.push(child)?, record))
    }
}

impl ChildProcessView<'_> {
    /// `fork` of an OS program (`node child.js`): a spawn with a channel.
    fn fork_os(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
        kill_signal: Signal,
        worker: Option<AsWorker>,
        caps: &Capabilities,
    ) -> Result<Resource<Child>, HostError> {
        let exec_path = options.exec_path.unwrap_or_else(|| "node".into());
        let argv: Vec<String> = options
            .exec_argv
            .into_iter()
            .chain(std::iter::once(module))
            .chain(args)
            .collect();
        let stdio = if options.silent {
            [StdioKind::Pipe; 3]
        } else {
            [StdioKind::Inherit; 3]
        };
        let env = options.env.unwrap_or_else(|| self.ctx.env.clone());
        let mut request = Request::new(&exec_path, &argv, None, None, None, env, stdio, false)?;
        request.restarts = options.restarts;
        // A child never sees a channel that is not its own.
        request.env.retain(|(name, _)| !node::is_channel_var(name));
        let serialization = match options.serialization {
            WitSerialization::Json => Serialization::Json,
            WitSerialization::Advanced => Serialization::Advanced,
        };
        // The PATH search and the exec touch what the guest named.
        let child = crate::runtime::blocking(|| {
            self.may_spawn(&mut request, caps.limits)?;
            self.start_os(
                &request,
                options.timeout_ms,
                kill_signal,
                Output::Streams,
                Some(serialization),
                worker,
            )
        })?;
        Ok(self.table.push(child)?)
    }
}

/// Node's error for a fork that cannot start, and its errno.
fn fork_error(module: &str, err: &LoadError) -> (StartError, i32) {
    let (code, errno) = err.node_code();
    let message = match code {
        "ENOENT" | "EACCES" => format!("spawn {module} {code}"),
        _ => format!("spawn {module} {code}: {}", ErrorChain(err)),
    };
    let error = StartError {
        code: code.to_owned(),
        errno: Some(errno),
        syscall: Some(format!("spawn {module}")),
        path: Some(module.to_owned()),
        message,
        spawnargs: Vec::new(),
    };
    (error, errno)
}

/// Pipes for a `silent` fork: the child's stdio, and the parent's ends
/// (stdin to write, stdout and stderr to pump).
fn silent_stdio() -> (Stdio, (DynOutputStream, DuplexStream, DuplexStream)) {
    let (child_in, parent_in) = tokio::io::duplex(SILENT_FORK_CAPACITY);
    let (child_out, parent_out) = tokio::io::duplex(SILENT_FORK_CAPACITY);
    let (child_err, parent_err) = tokio::io::duplex(SILENT_FORK_CAPACITY);
    let stdio = Stdio {
        is_host: false,
        stdin: Arc::new(AsyncStdinStream::new(child_in)),
        stdout: Arc::new(AsyncStdoutStream::new(SILENT_FORK_CAPACITY, child_out)),
        stderr: Arc::new(AsyncStdoutStream::new(SILENT_FORK_CAPACITY, child_err)),
    };
    let stdin: DynOutputStream = Box::new(AsyncWriteStream::new(SILENT_FORK_CAPACITY, parent_in));
    (stdio, (stdin, parent_out, parent_err))
}
