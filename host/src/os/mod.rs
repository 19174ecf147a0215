//! Real OS child processes: how a request to start one is checked and
//! made (Node's `normalizeSpawnArguments`), how it starts, and how its
//! status reads. Buffered runs to completion (`exec`, the sync forms) are
//! in [`exec`].
//!
//! Every OS child is reaped, so none becomes a zombie: an async child by
//! its supervising task (`tokio::process::Child::wait`), which owns it, so
//! `kill_on_drop` is off — a parent that ends sends it SIGTERM, then
//! SIGKILL after the grace period (`lifecycle::ended`); detached children
//! are left alone, the only ones that may outlive the host. A sync child
//! lives in its caller's future and has `kill_on_drop` on: if the caller is
//! killed mid-call, the child dies with the dropped future.

pub mod exec;

use crate::bindings::ErrorCode;
use crate::bindings::hive::process::child_process::Stdio as StdioKind;
use crate::runtime::argv::{has_nul, invalid_env};
use crate::runtime::event::StartError;
use crate::runtime::exit::ExitStatus;
use crate::runtime::pipe::KERNEL_PIPE_BUFFER;
use crate::runtime::signal::Signal;
use crate::runtime::unix;
use crate::stdio::Stdio;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio as OsStdio;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::Command;

/// The shell of `exec`, `exec-sync` and Node's `shell: true`.
pub const DEFAULT_SHELL: &str = "/bin/sh";

/// A validated request to start a program.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to exec: the command, or the shell when `shell` is set.
    pub file: String,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// `argv[0]`; default `file`.
    pub argv0: Option<String>,
    /// Node's `spawnargs` for error objects (the arguments as given).
    pub error_args: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub stdio: [StdioKind; 3],
    pub detached: bool,
    /// The file to execute, as the spawn policy decided
    /// ([`SpawnPolicy::program`]); `None` when it found none (ENOENT).
    pub program: Option<PathBuf>,
    /// Its resource limits.
    pub limits: OsLimits,
    /// How many times it replaces one that ended (`spawn-options.restarts`).
    pub restarts: u32,
}

/// An OS child's resource limits (`setrlimit`), set in the child between
/// fork and exec, so it never runs without them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OsLimits {
    /// `RLIMIT_CPU`, in milliseconds (the kernel counts whole seconds:
    /// rounded up; SIGXCPU at the limit, SIGKILL a second later).
    pub cpu_ms: Option<u64>,
    /// `RLIMIT_AS`, bytes.
    pub address_space: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
}

impl From<crate::runtime::caps::Limits> for OsLimits {
    fn from(l: crate::runtime::caps::Limits) -> OsLimits {
        OsLimits {
            cpu_ms: l.max_cpu_ms,
            address_space: l.max_address_space,
            open_files: l.max_open_files,
        }
    }
}

impl OsLimits {
    /// The limits as `(resource, soft, hard)` for `setrlimit`.
    fn rlimits(&self) -> Vec<(libc::__rlimit_resource_t, u64, u64)> {
        let mut out = Vec::new();
        if let Some(ms) = self.cpu_ms {
            let secs = ms.div_ceil(1000).max(1);
            out.push((libc::RLIMIT_CPU, secs, secs + 1));
        }
        if let Some(bytes) = self.address_space {
            out.push((libc::RLIMIT_AS, bytes, bytes));
        }
        if let Some(n) = self.open_files {
            out.push((libc::RLIMIT_NOFILE, n, n));
        }
        out
    }
}

impl Request {
    /// Builds a request as Node's `normalizeSpawnArguments` does: with a
    /// shell, `command` and `args` are joined by spaces into `shell -c`.
    #[expect(clippy::too_many_arguments, reason = "mirrors Node's option set")]
    pub fn new(
        command: &str,
        args: &[String],
        shell: Option<&str>,
        argv0: Option<String>,
        cwd: Option<String>,
        env: Vec<(String, String)>,
        stdio: [StdioKind; 3],
        detached: bool,
    ) -> Result<Request, ErrorCode> {
        if command.is_empty()
            || has_nul(command)
            || args.iter().any(|a| has_nul(a))
            || argv0.as_deref().is_some_and(has_nul)
            || shell.is_some_and(|s| s.is_empty() || has_nul(s))
            || invalid_env(env.iter())
        {
            return Err(ErrorCode::InvalidArgument);
        }
        if let Some(dir) = &cwd {
            if has_nul(dir) {
                return Err(ErrorCode::InvalidArgument);
            }
            // Node throws ENOTDIR synchronously for a file; a missing
            // directory is an asynchronous ENOENT at spawn.
            if Path::new(dir).exists() && !Path::new(dir).is_dir() {
                return Err(ErrorCode::NotADirectory);
            }
        }
        let (file, args) = match shell {
            Some(shell) => {
                let line = std::iter::once(command)
                    .chain(args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                (shell.to_owned(), vec!["-c".to_owned(), line])
            }
            None => (command.to_owned(), args.to_vec()),
        };
        Ok(Request {
            error_args: args.clone(),
            file,
            args,
            argv0,
            cwd,
            env,
            stdio,
            detached,
            program: None,
            limits: OsLimits::default(),
            restarts: 0,
        })
    }

    /// The child's `PATH`, if its environment has one.
    pub fn path_env(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
    }
}

/// A started OS process and the parent's ends of its pipes.
pub struct Started {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    /// Whether it leads its own process group.
    pub group: bool,
}

/// Starts the program. `parent` is the spawning guest's stdio, for
/// `inherit`: the host's own file descriptors when the guest has them,
/// otherwise a copy task into the guest's streams. `inherit` is a
/// descriptor the program gets at the same number (a Node child's IPC
/// socket), and no other program started meanwhile does. `join`: a pids
/// cgroup's `cgroup.procs` (`runtime::cgroup`), which the program joins
/// before exec.
pub fn start(
    request: &Request,
    parent: &Stdio,
    kill_on_drop: bool,
    inherit: Option<&OwnedFd>,
    join: Option<&OwnedFd>,
) -> std::io::Result<Started> {
    // The policy resolved the program (`SpawnPolicy::program`): given a
    // bare name and a replaced environment, std would fork+exec to search
    // PATH, and forking a host whose address space holds thousands of guest
    // slots costs ~16 ms; with a path it uses posix_spawn (~0.5 ms).
    let program = request
        .program
        .as_ref()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))?;
    let mut command = Command::new(program);
    command.args(&request.args);
    command.arg0(request.argv0.as_deref().unwrap_or(&request.file));
    if let Some(cwd) = &request.cwd {
        command.current_dir(cwd);
    }
    command
        .env_clear()
        .envs(request.env.iter().map(|(k, v)| (k, v)));
    // Async children: the supervisor reaps the child and the parent's exit
    // ends it (SIGTERM, then SIGKILL), so dropping a handle must not kill it.
    // Sync children live in the caller's future: if that is dropped (the
    // guest was killed mid-call) the child must die too.
    command.kill_on_drop(kill_on_drop);
    // Every child that is not detached leads a process group of its own,
    // so that it ends with its descendants (see `sentinel`) — except one
    // that reads the host's terminal: outside the terminal's foreground
    // group it would be stopped (SIGTTIN), so it stays in ours, as in Node.
    let reads_terminal = request.stdio[0] == StdioKind::Inherit
        && parent.is_host
        && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let group = !request.detached && !reads_terminal;
    if request.detached {
        unix::detach(&mut command);
    } else if group {
        command.process_group(0);
    }
    // Costs the posix_spawn fast path (a fork of the host instead, slower
    // with many guests mapped): only children with limits pay it.
    unix::set_rlimits(&mut command, request.limits.rlimits());
    if let Some(procs) = join {
        unix::join_cgroup(&mut command, procs.as_raw_fd());
    }
    let [stdin, stdout, stderr] = request.stdio;
    let forward = |kind: StdioKind| match kind {
        StdioKind::Pipe => OsStdio::piped(),
        StdioKind::Ignore => OsStdio::null(),
        StdioKind::Inherit if parent.is_host => OsStdio::inherit(),
        // The guest's own stream is not a file descriptor: copy into it.
        StdioKind::Inherit => OsStdio::piped(),
    };
    command.stdin(match stdin {
        StdioKind::Pipe => OsStdio::piped(),
        StdioKind::Inherit if parent.is_host => OsStdio::inherit(),
        _ => OsStdio::null(),
    });
    command.stdout(forward(stdout));
    command.stderr(forward(stderr));
    let mut child = match inherit {
        None => {
            let _spawning = unix::SPAWNING.read().unwrap_or_else(|e| e.into_inner());
            command.spawn()?
        }
        Some(fd) => {
            let _spawning = unix::SPAWNING.write().unwrap_or_else(|e| e.into_inner());
            unix::set_cloexec(fd, false)?;
            let spawned = command.spawn();
            unix::set_cloexec(fd, true)?;
            spawned?
        }
    };
    let pid = child.id().expect("a just-spawned child has a pid");
    if let Some(stdin) = &child.stdin {
        unix::grow_pipe(stdin, KERNEL_PIPE_BUFFER);
    }
    if let Some(stdout) = &child.stdout {
        unix::grow_pipe(stdout, KERNEL_PIPE_BUFFER);
    }
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    if stdout == StdioKind::Inherit && !parent.is_host {
        forward_into(out.take(), parent.stdout.clone());
    }
    if stderr == StdioKind::Inherit && !parent.is_host {
        forward_into(err.take(), parent.stderr.clone());
    }
    Ok(Started {
        stdin: child.stdin.take(),
        stdout: out,
        stderr: err,
        child,
        pid,
        group,
    })
}

fn forward_into(
    source: Option<impl AsyncRead + Send + Unpin + 'static>,
    sink: Arc<dyn wasmtime_wasi::cli::StdoutStream + Sync>,
) {
    if let Some(mut source) = source {
        tokio::spawn(async move {
            let mut sink = Box::into_pin(sink.async_stream());
            let _ = tokio::io::copy(&mut source, &mut sink).await;
            let _ = sink.flush().await;
        });
    }
}

/// Node's fields for a failed start (`spawn x ENOENT`).
pub fn spawn_error(request: &Request, err: &std::io::Error, syscall: &str) -> (StartError, i32) {
    let errno = err.raw_os_error().unwrap_or(libc::EIO);
    let code = errno_name(errno);
    let syscall = format!("{syscall} {}", request.file);
    let info = StartError {
        code: code.to_owned(),
        errno: Some(-errno),
        message: format!("{syscall} {code}"),
        syscall: Some(syscall),
        path: Some(request.file.clone()),
        spawnargs: request.error_args.clone(),
    };
    (info, -errno)
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EAGAIN => "EAGAIN",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOTDIR => "ENOTDIR",
        libc::EPERM => "EPERM",
        libc::ENOEXEC => "ENOEXEC",
        _ => "EIO",
    }
}

/// Marks `proc` as ended by its CPU limit when the kernel's SIGXCPU ended
/// it, and says so on stderr.
pub fn note_limit(proc: &crate::runtime::proc::Proc, limits: &OsLimits, status: ExitStatus) {
    use crate::runtime::caps::Limit;
    if let (Some(ms), ExitStatus::Signal(Signal::XCPU)) = (limits.cpu_ms, status) {
        proc.reached(Limit::Cpu);
        tracing::warn!(
            "`{}` (pid {}) reached its CPU time limit ({ms} ms, counted in whole seconds) and \
             was ended (SIGXCPU); raise it with {}",
            proc.name,
            proc.pid,
            Limit::Cpu.option()
        );
    }
}

/// Converts a finished process's status.
pub fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(signal)) => match Signal::from_number(signal) {
            Some(signal) => ExitStatus::Signal(signal),
            None => ExitStatus::Code(128 + signal),
        },
        (None, None) => ExitStatus::Code(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_requests_join_arguments() {
        let stdio = [StdioKind::Pipe; 3];
        let r = Request::new(
            "echo",
            &["a".into(), "b".into()],
            Some("/bin/sh"),
            None,
            None,
            vec![],
            stdio,
            false,
        )
        .unwrap();
        assert_eq!(r.file, "/bin/sh");
        assert_eq!(r.args, ["-c", "echo a b"]);
        assert_eq!(
            Request::new("", &[], None, None, None, vec![], stdio, false).unwrap_err(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            Request::new("a\0b", &[], None, None, None, vec![], stdio, false).unwrap_err(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            Request::new(
                "ls",
                &[],
                None,
                None,
                Some("/etc/hostname".into()),
                vec![],
                stdio,
                false
            )
            .unwrap_err(),
            ErrorCode::NotADirectory
        );
    }
}
