//! Real OS child processes: `spawn`, `exec`, `exec-file` and their sync
//! forms — the capability that guards them, how they start, how their
//! output is buffered, and how they are reaped.
//!
//! Every OS child is reaped by a supervising task (`tokio::process::Child::
//! wait`), so none becomes a zombie. `kill_on_drop` stays off on purpose:
//! the supervisor owns the `Child`, and a parent that ends sends its OS
//! children SIGTERM, then SIGKILL after the grace period (see
//! `table::finish`); detached children are left alone, the only ones that
//! may outlive the host.

use crate::bindings::hive::process::child_process::{ExecError, ExecOutput, Stdio as StdioKind};
use crate::bindings::{ErrorCode, ErrorInfo};
use crate::error::ExitStatus;
use crate::pipe::Pipe;
use crate::signal::Signal;
use crate::table::{Proc, Stdio};
use std::path::{Path, PathBuf};
use std::process::Stdio as OsStdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Kernel buffer for the pipes to and from an OS child (the Linux default
/// is 64 KiB; 1 MiB is the unprivileged maximum).
const PIPE_BUFFER: usize = 1 << 20;

/// The shell of `exec`, `exec-sync` and Node's `shell: true`.
pub const DEFAULT_SHELL: &str = "/bin/sh";

/// Whether a string carries a NUL byte, which no argv or environment can.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Whether an environment has an entry no process could receive: an empty
/// name, a name with `=`, or a NUL byte (Node's `ERR_INVALID_ARG_VALUE`).
pub fn invalid_env<'a>(mut env: impl Iterator<Item = &'a (String, String)>) -> bool {
    env.any(|(k, v)| k.is_empty() || k.contains('=') || has_nul(k) || has_nul(v))
}

/// Node's default `maxBuffer` for exec and the sync forms.
pub const DEFAULT_MAX_BUFFER: u64 = 1024 * 1024;

/// The most `max-buffer` may be (a guest asking for more gets this): what
/// the host keeps of one output stream for a guest, at most.
pub const MAX_BUFFER_LIMIT: u64 = 64 << 20;

/// A guest's `max-buffer`, within the host's bound.
pub fn max_buffer(asked: Option<u64>) -> u64 {
    asked.unwrap_or(DEFAULT_MAX_BUFFER).min(MAX_BUFFER_LIMIT)
}

/// Which OS programs a guest may start (`host run --allow-spawn[=...]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpawnPolicy {
    /// None (the default, as Deno).
    #[default]
    Deny,
    /// Any program.
    All,
    /// Only these programs, by their canonical path.
    Only(Vec<AllowedProgram>),
}

/// One `--allow-spawn` entry, resolved when the host starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedProgram {
    /// As the user wrote it (`ls`, `/bin/ls`).
    pub given: String,
    /// The file that will run: the entry's path, or the first `given` in
    /// the host's `PATH`, with every symlink resolved.
    pub canonical: PathBuf,
}

impl AllowedProgram {
    /// Resolves an entry: a path as is, a bare name over the host's `PATH`.
    pub fn new(given: &str) -> Result<AllowedProgram, String> {
        if given.is_empty() {
            return Err(
                "an empty list allows nothing: give `--allow-spawn` alone for any \
                        program, or name programs"
                    .into(),
            );
        }
        let found = resolve(given, None).ok_or_else(|| {
            format!("`{given}`: no such program (looked for it in the host's `PATH`)")
        })?;
        let canonical = found
            .canonicalize()
            .map_err(|e| format!("`{given}`: {e}"))?;
        Ok(AllowedProgram {
            given: given.to_owned(),
            canonical,
        })
    }
}

/// Why a program may not run.
#[derive(Debug)]
pub struct Denied;

impl SpawnPolicy {
    /// Decides whether `program` may run with `path_env` (the child's
    /// `PATH`), and returns the file to execute — the decision is made on
    /// exactly what will run.
    ///
    /// With a list, a bare name is looked up in the *host's* `PATH`, never
    /// in one the guest chose (its directories may be guest-writable: a
    /// symlink named `echo` there could be a shell), and the result must be
    /// one of the allowed files after every symlink is resolved; that
    /// resolved file is what runs. Without a list (`All`) the lookup is
    /// Node's: the child's `PATH`, else the host's.
    pub fn program(
        &self,
        program: &str,
        path_env: Option<&str>,
    ) -> Result<Option<PathBuf>, Denied> {
        match self {
            SpawnPolicy::Deny => Err(Denied),
            SpawnPolicy::All => Ok(resolve(program, path_env)),
            SpawnPolicy::Only(list) => {
                let canonical = resolve(program, None)
                    .and_then(|p| p.canonicalize().ok())
                    .ok_or(Denied)?;
                list.iter()
                    .any(|a| a.canonical == canonical)
                    .then_some(Some(canonical))
                    .ok_or(Denied)
            }
        }
    }

    /// The flag that would allow `program`, for error messages.
    pub fn hint(program: &str) -> String {
        format!("`host run --allow-spawn={program}` (or `--allow-spawn` for any program)")
    }
}

/// Finds `program` as `execvp` would: a name with a `/` is a path; else the
/// first executable file of that name in `path` (the child's `PATH`), or in
/// the host's `PATH` when the child's environment has none.
fn resolve(program: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(program.into());
    }
    let host_path = std::env::var_os("PATH");
    let path = match path {
        Some(p) => std::ffi::OsString::from(p),
        None => host_path.unwrap_or_else(|| "/usr/bin:/bin".into()),
    };
    let candidates: Vec<_> = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .collect();
    // Prefer an executable; fall back to a non-executable file so that exec
    // reports EACCES, as execvp does.
    candidates
        .iter()
        .find(|c| {
            std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .or_else(|| candidates.iter().find(|c| c.is_file()))
        .cloned()
}

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
/// otherwise a copy task into the guest's streams.
pub fn start(request: &Request, parent: &Stdio, kill_on_drop: bool) -> std::io::Result<Started> {
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
        crate::unix::detach(&mut command);
    } else if group {
        command.process_group(0);
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
    let mut child = command.spawn()?;
    let pid = child.id().expect("a just-spawned child has a pid");
    if let Some(stdin) = &child.stdin {
        crate::unix::grow_pipe(stdin, PIPE_BUFFER);
    }
    if let Some(stdout) = &child.stdout {
        crate::unix::grow_pipe(stdout, PIPE_BUFFER);
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
pub fn spawn_error(request: &Request, err: &std::io::Error, syscall: &str) -> (ErrorInfo, i32) {
    let errno = err.raw_os_error().unwrap_or(libc::EIO);
    let code = errno_name(errno);
    let syscall = format!("{syscall} {}", request.file);
    let info = ErrorInfo {
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

/// Output kept by `exec` and the sync forms: at most `limit` bytes of a
/// stream; past it, `exceeded` is set and reading stops.
#[derive(Default)]
pub struct Buffered {
    pub bytes: Vec<u8>,
    pub exceeded: bool,
}

/// Reads `source` to the end or until `limit` bytes; calls `on_exceed` once
/// when the limit is passed (the child is killed then). `truncate`: keep
/// exactly `limit` bytes (exec), or the whole read that passed it (Node's
/// spawnSync keeps what it read).
pub async fn buffer(
    source: Option<impl AsyncRead + Unpin>,
    limit: u64,
    truncate: bool,
    on_exceed: impl FnOnce(),
) -> Buffered {
    let mut out = Buffered::default();
    let Some(mut source) = source else { return out };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut on_exceed = Some(on_exceed);
    loop {
        let n = match source.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = limit.saturating_sub(out.bytes.len());
        let keep = if truncate { n.min(room) } else { n };
        // Fallible: a host short of memory fails this buffer, not itself.
        if out.bytes.try_reserve(keep).is_err() {
            out.exceeded = true;
            if let Some(f) = on_exceed.take() {
                f();
            }
            break;
        }
        out.bytes.extend_from_slice(&chunk[..keep]);
        if n > room {
            out.exceeded = true;
            if let Some(f) = on_exceed.take() {
                f();
            }
            break;
        }
    }
    out
}

/// How a run to completion went (what `exec`'s callback and the sync forms
/// are made from).
pub struct Completed {
    pub pid: u32,
    pub stdout: Buffered,
    pub stderr: Buffered,
    /// `None` when the program never started.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    /// The start failure, if any.
    pub spawn_error: Option<(ErrorInfo, i32)>,
}

/// Runs a started child to completion: feeds `input`, buffers stdout and
/// stderr up to `max_buffer` each, kills with `kill_signal` on timeout or
/// overflow, and reaps it.
pub async fn complete(
    mut started: Started,
    proc: Option<Arc<Proc>>,
    input: Option<Vec<u8>>,
    max_buffer: u64,
    timeout: Option<Duration>,
    kill_signal: Signal,
) -> Completed {
    // Async exec (a supervised child) truncates to max-buffer; the sync
    // forms keep what they read.
    let truncate = proc.is_some();
    let pid = started.pid;
    let kill = {
        let proc = proc.clone();
        move || match &proc {
            Some(proc) => {
                proc.kill(kill_signal);
            }
            None => {
                let _ = crate::unix::kill(pid, kill_signal.number());
            }
        }
    };
    if let Some(mut stdin) = started.stdin.take() {
        tokio::spawn(async move {
            if let Some(input) = input {
                let _ = stdin.write_all(&input).await;
            }
            // Dropping stdin closes it: the child sees end-of-file.
        });
    }
    let run = async {
        let (stdout, stderr) = tokio::join!(
            buffer(started.stdout.take(), max_buffer, truncate, kill.clone()),
            buffer(started.stderr.take(), max_buffer, truncate, kill.clone()),
        );
        let status = started.child.wait().await.map(exit_status).ok();
        (stdout, stderr, status)
    };
    tokio::pin!(run);
    let mut timed_out = false;
    let (stdout, stderr, status) = match timeout {
        Some(limit) => match tokio::time::timeout(limit, &mut run).await {
            Ok(done) => done,
            Err(_) => {
                timed_out = true;
                kill();
                run.await
            }
        },
        None => run.await,
    };
    Completed {
        pid,
        stdout,
        stderr,
        status,
        timed_out,
        spawn_error: None,
    }
}

impl Completed {
    /// The result when the program could not start.
    pub fn failed(error: (ErrorInfo, i32)) -> Completed {
        Completed {
            pid: 0,
            stdout: Buffered::default(),
            stderr: Buffered::default(),
            status: None,
            timed_out: false,
            spawn_error: Some(error),
        }
    }

    /// Node's `exec`/`execFile` callback arguments (`sync`: the error
    /// `execSync`/`execFileSync` throw, whose message differs slightly).
    /// `file` is the program started (the shell for `exec`).
    pub fn exec_output(
        self,
        cmd: &str,
        file: &str,
        killed: bool,
        kill_signal: Signal,
        sync: bool,
    ) -> ExecOutput {
        let stderr_text = String::from_utf8_lossy(&self.stderr.bytes).into_owned();
        let failed = |code, signal: Option<Signal>| {
            let mut message = format!("Command failed: {cmd}");
            if !sync || !stderr_text.is_empty() {
                message.push('\n');
                message += &stderr_text;
            }
            Some(ExecError {
                message,
                code,
                error_code: None,
                killed,
                signal: signal.map(|s| s.name().to_owned()),
                cmd: cmd.to_owned(),
            })
        };
        let overflow = if self.stdout.exceeded {
            Some("stdout")
        } else if self.stderr.exceeded {
            Some("stderr")
        } else {
            None
        };
        let error = if let Some((info, _)) = &self.spawn_error {
            Some(ExecError {
                message: info.message.clone(),
                code: None,
                error_code: Some(info.code.clone()),
                killed: false,
                signal: None,
                cmd: cmd.to_owned(),
            })
        } else if sync && self.timed_out {
            Some(ExecError {
                message: format!("spawnSync {file} ETIMEDOUT"),
                code: None,
                error_code: Some("ETIMEDOUT".into()),
                killed: true,
                signal: Some(kill_signal.name().to_owned()),
                cmd: cmd.to_owned(),
            })
        } else if let Some(stream) = overflow {
            Some(ExecError {
                message: if sync {
                    format!("spawnSync {file} ENOBUFS")
                } else {
                    format!("{stream} maxBuffer length exceeded")
                },
                code: None,
                error_code: Some(
                    if sync {
                        "ENOBUFS"
                    } else {
                        "ERR_CHILD_PROCESS_STDIO_MAXBUFFER"
                    }
                    .into(),
                ),
                killed,
                signal: None,
                cmd: cmd.to_owned(),
            })
        } else {
            match self.status {
                Some(ExitStatus::Code(0)) | None => None,
                Some(ExitStatus::Code(code)) => failed(Some(code), None),
                Some(ExitStatus::Signal(signal)) => failed(None, Some(signal)),
            }
        };
        ExecOutput {
            stdout: self.stdout.bytes,
            stderr: self.stderr.bytes,
            error,
        }
    }
}

/// Starts pumps for a child's piped stdout and stderr and registers them on
/// `proc`, so its `close` waits for them.
pub fn pump_outputs(
    proc: &Proc,
    stdout: Option<impl AsyncRead + Send + Unpin + 'static>,
    stderr: Option<impl AsyncRead + Send + Unpin + 'static>,
) -> (Option<Arc<Pipe>>, Option<Arc<Pipe>>) {
    let out = stdout.map(Pipe::pump);
    let err = stderr.map(Pipe::pump);
    proc.pipes
        .lock()
        .unwrap()
        .extend(out.iter().chain(err.iter()).cloned());
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(SpawnPolicy::Deny.program("ls", None).is_err());
        assert!(SpawnPolicy::All.program("anything", None).is_ok());
        let only = SpawnPolicy::Only(vec![
            AllowedProgram::new("echo").unwrap(),
            AllowedProgram::new("/bin/sh").unwrap(),
        ]);
        let echo = only.program("echo", None).unwrap().unwrap();
        assert_eq!(echo, AllowedProgram::new("echo").unwrap().canonical);
        // The guest's PATH does not decide which `echo` runs.
        assert_eq!(only.program("echo", Some("/nowhere")).unwrap(), Some(echo));
        assert!(only.program("/bin/sh", None).is_ok());
        assert!(only.program("ls", None).is_err());
        assert!(only.program("./echo", None).is_err());
        assert!(AllowedProgram::new("").is_err());
        assert!(AllowedProgram::new("no-such-program-anywhere").is_err());
    }

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
