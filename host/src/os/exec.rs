//! Runs to completion with buffered output: `exec`, `exec-file` and the
//! sync forms (Node's `maxBuffer`, `timeout`, `killSignal`).

use super::{Started, exit_status};
use crate::bindings::hive::process::child_process::{ExecError, ExecOutput};
use crate::runtime::event::StartError;
use crate::runtime::exit::ExitStatus;
use crate::runtime::pipe::READ_CHUNK;
use crate::runtime::proc::Proc;
use crate::runtime::signal::Signal;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Node's default `maxBuffer` for exec and the sync forms.
pub const DEFAULT_MAX_BUFFER: u64 = 1024 * 1024;

/// The most `max-buffer` may be (a guest asking for more gets this): what
/// the host keeps of one output stream for a guest, at most.
pub const MAX_BUFFER_LIMIT: u64 = 64 << 20;

/// A guest's `max-buffer`, within the host's bound.
pub fn max_buffer(asked: Option<u64>) -> u64 {
    asked.unwrap_or(DEFAULT_MAX_BUFFER).min(MAX_BUFFER_LIMIT)
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
    let mut chunk = vec![0u8; READ_CHUNK];
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
    pub spawn_error: Option<(StartError, i32)>,
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
                let _ = crate::runtime::unix::signal_pid(pid, kill_signal.number());
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
    pub fn failed(error: (StartError, i32)) -> Completed {
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
