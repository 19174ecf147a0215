//! OS programs (Node's `spawn`, `exec`, `execFile` and their sync forms).
//! They need `host run --allow-spawn[=prog,...]`.

use crate::Error;
use crate::bindings::hive::process::child_process as wit;
use crate::child::Child;

pub use wit::{ExecError, ExecOutput, SpawnSyncResult, Stdio};

/// Options for [`spawn`] (Node's `spawn` options).
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub cwd: Option<String>,
    /// Replace the environment (default: this guest's environment).
    pub env: Option<Vec<(String, String)>>,
    pub argv0: Option<String>,
    /// stdin, stdout, stderr (default: all pipes).
    pub stdio: [Stdio; 3],
    pub detached: bool,
    /// Run under this shell (`Some("/bin/sh".into())` is Node's `shell: true`).
    pub shell: Option<String>,
    pub timeout_ms: Option<u64>,
    pub kill_signal: Option<String>,
    /// CPU time, address space and open files (see [`crate::Limits`]).
    pub limits: crate::Limits,
    /// How many times it replaces one that ended (a supervisor's count,
    /// shown by `host ps`; beyond Node).
    pub restarts: u32,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            cwd: None,
            env: None,
            argv0: None,
            stdio: [Stdio::Pipe; 3],
            detached: false,
            shell: None,
            timeout_ms: None,
            kill_signal: None,
            limits: crate::Limits::default(),
            restarts: 0,
        }
    }
}

impl SpawnOptions {
    /// All three streams `inherit`ed (Node's `stdio: 'inherit'`).
    pub fn inherit() -> SpawnOptions {
        SpawnOptions {
            stdio: [Stdio::Inherit; 3],
            ..Default::default()
        }
    }
}

/// Options for [`exec`] and [`exec_file`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cwd: Option<String>,
    pub env: Option<Vec<(String, String)>>,
    pub shell: Option<String>,
    pub timeout_ms: Option<u64>,
    pub kill_signal: Option<String>,
    /// Bytes kept of stdout and of stderr (default 1 MiB).
    pub max_buffer: Option<u64>,
    /// CPU time, address space and open files (see [`crate::Limits`]).
    pub limits: crate::Limits,
}

/// Options for the sync forms.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub cwd: Option<String>,
    pub env: Option<Vec<(String, String)>>,
    pub argv0: Option<String>,
    pub shell: Option<String>,
    pub timeout_ms: Option<u64>,
    pub kill_signal: Option<String>,
    pub max_buffer: Option<u64>,
    pub input: Option<Vec<u8>>,
    /// `Stdio::Inherit` passes stderr through instead of capturing it.
    pub stderr: Stdio,
    /// CPU time, address space and open files (see [`crate::Limits`]).
    pub limits: crate::Limits,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            cwd: None,
            env: None,
            argv0: None,
            shell: None,
            timeout_ms: None,
            kill_signal: None,
            max_buffer: None,
            input: None,
            stderr: Stdio::Pipe,
            limits: crate::Limits::default(),
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn wit_exec(o: ExecOptions) -> wit::ExecOptions {
    wit::ExecOptions {
        cwd: o.cwd,
        env: o.env,
        shell: o.shell,
        timeout_ms: o.timeout_ms,
        kill_signal: o.kill_signal,
        max_buffer: o.max_buffer,
        limits: o.limits.into(),
    }
}

fn wit_sync(o: SyncOptions) -> wit::SyncOptions {
    wit::SyncOptions {
        cwd: o.cwd,
        env: o.env,
        argv0: o.argv0,
        shell: o.shell,
        timeout_ms: o.timeout_ms,
        kill_signal: o.kill_signal,
        max_buffer: o.max_buffer,
        input: o.input,
        stderr: o.stderr,
        limits: o.limits.into(),
    }
}

/// Starts `command` (Node's `child_process.spawn`). Returns at once; the
/// child emits `spawn`, or `error` (ENOENT, EACCES) then `close`.
pub fn spawn(command: &str, args: &[&str], options: SpawnOptions) -> Result<Child, Error> {
    let [stdin, stdout, stderr] = options.stdio;
    let handle = wit::spawn(
        command,
        &strings(args),
        &wit::SpawnOptions {
            cwd: options.cwd,
            env: options.env,
            argv0: options.argv0,
            stdin,
            stdout,
            stderr,
            detached: options.detached,
            shell: options.shell,
            timeout_ms: options.timeout_ms,
            kill_signal: options.kill_signal,
            limits: options.limits.into(),
            restarts: options.restarts,
        },
    )?;
    Ok(Child::register(handle, false))
}

/// Runs `command` under `/bin/sh` and buffers its output (Node's `exec`):
/// take it with [`Child::output`] or [`Child::on_output`].
pub fn exec(command: &str, options: ExecOptions) -> Result<Child, Error> {
    Ok(Child::register(
        wit::exec(command, &wit_exec(options))?,
        true,
    ))
}

/// Runs `file` with `args`, no shell, buffering output (Node's `execFile`).
pub fn exec_file(file: &str, args: &[&str], options: ExecOptions) -> Result<Child, Error> {
    Ok(Child::register(
        wit::exec_file(file, &strings(args), &wit_exec(options))?,
        true,
    ))
}

/// Runs a program to completion (Node's `spawnSync`).
pub fn spawn_sync(
    command: &str,
    args: &[&str],
    options: SyncOptions,
) -> Result<SpawnSyncResult, Error> {
    Ok(wit::spawn_sync(
        command,
        &strings(args),
        &wit_sync(options),
    )?)
}

/// Runs `command` under a shell to completion (Node's `execSync`): its
/// stdout, or what Node would throw.
pub fn exec_sync(
    command: &str,
    options: SyncOptions,
) -> Result<Result<Vec<u8>, ExecFailure>, Error> {
    Ok(into_result(wit::exec_sync(command, &wit_sync(options))?))
}

/// Runs `file` with `args` to completion without a shell (Node's `execFileSync`).
pub fn exec_file_sync(
    file: &str,
    args: &[&str],
    options: SyncOptions,
) -> Result<Result<Vec<u8>, ExecFailure>, Error> {
    Ok(into_result(wit::exec_file_sync(
        file,
        &strings(args),
        &wit_sync(options),
    )?))
}

/// What the sync forms throw in Node: the error with the output so far.
#[derive(Debug, Clone)]
pub struct ExecFailure {
    pub error: ExecError,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

// Node's error object is large; an exec failure is the slow path. (Only on
// 64-bit targets is it over clippy's threshold, so `allow`, not `expect`.)
#[allow(clippy::result_large_err)]
fn into_result(out: ExecOutput) -> Result<Vec<u8>, ExecFailure> {
    match out.error {
        None => Ok(out.stdout),
        Some(error) => Err(ExecFailure {
            error,
            stdout: out.stdout,
            stderr: out.stderr,
        }),
    }
}
