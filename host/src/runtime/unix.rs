//! The few things Hive needs from the OS that safe Rust does not offer:
//! sending a signal to a pid or a process group, starting a child in its
//! own session, and sizing pipe buffers.
#![expect(unsafe_code, reason = "thin wrappers over two libc calls")]

use std::io;
use tokio::process::Command;

/// Sends `signal` to `pid` (`kill(2)`); `Ok(false)` if no such process.
pub fn signal_pid(pid: u32, signal: u8) -> io::Result<bool> {
    send(pid_t(pid)?, signal)
}

/// Sends `signal` to every process in group `pgid` (`kill(-pgid)`);
/// `Ok(false)` if the group is empty.
pub fn signal_group(pgid: u32, signal: u8) -> io::Result<bool> {
    let pgid = pid_t(pgid)?;
    if pgid <= 1 {
        // -1 would be every process we may signal; never.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    send(-pgid, signal)
}

fn pid_t(pid: u32) -> io::Result<libc::pid_t> {
    libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `kill(target, signal)`; ESRCH (nobody there) is `Ok(false)`.
fn send(target: libc::pid_t, signal: u8) -> io::Result<bool> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(target, libc::c_int::from(signal)) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        _ => Err(err),
    }
}

/// Whether group `pgid` has a member (one we may not signal counts).
pub fn group_exists(pgid: u32) -> bool {
    signal_group(pgid, 0).unwrap_or_else(|e| e.raw_os_error() == Some(libc::EPERM))
}

/// Makes the child call `setsid()` before exec, so it leads a new session
/// and process group (pid == pgid == sid), as Node's `detached: true`.
pub fn detach(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setsid(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Grows a pipe's kernel buffer to `bytes` (`F_SETPIPE_SZ`); best effort.
/// With the default 64 KiB, streaming through a child costs a context
/// switch per 64 KiB on each side.
pub fn grow_pipe(fd: &impl std::os::fd::AsRawFd, bytes: usize) {
    let Ok(size) = libc::c_int::try_from(bytes) else {
        return;
    };
    // SAFETY: fcntl(2) on a file descriptor we own; F_SETPIPE_SZ reads no
    // memory of ours, and failure (e.g. over /proc/sys/fs/pipe-max-size)
    // leaves the pipe as it was.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size);
    }
}
