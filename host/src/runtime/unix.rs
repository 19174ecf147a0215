//! The few things Hive needs from the OS that safe Rust does not offer:
//! sending a signal to a pid or a process group, starting a child in its
//! own session, sizing pipe buffers, joining a cgroup before exec, and
//! handing a socket to exactly one child (or taking one from our parent).
#![expect(unsafe_code, reason = "thin wrappers over a few libc calls")]

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

/// The host's own soft limit on `resource`; `None` for unlimited.
pub fn soft_rlimit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes only the struct we pass.
    let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Makes the child set `limits` (`(resource, soft, hard)`) before exec;
/// nothing for none. A limit the kernel refuses (above the host's own
/// hard limit) fails the spawn with that errno (`EPERM`).
pub fn set_rlimits(command: &mut Command, limits: Vec<(libc::__rlimit_resource_t, u64, u64)>) {
    if limits.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setrlimit(2), which is async-signal-safe, on memory it owns.
    unsafe {
        command.pre_exec(move || {
            for &(resource, soft, hard) in &limits {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &limit) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Makes the child join the cgroup whose `cgroup.procs` is open as `procs`
/// before exec (writing `0` moves the writer), so it never runs outside.
pub fn join_cgroup(command: &mut Command, procs: i32) {
    // SAFETY: the closure runs in the forked child before exec and calls
    // only write(2), async-signal-safe, on a descriptor the parent keeps
    // open until the spawn returns.
    unsafe {
        command.pre_exec(move || {
            if libc::write(procs, b"0".as_ptr().cast(), 1) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process may write in `dir` (`access(2)`, `W_OK`).
pub fn writable(dir: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
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

/// Sets or clears a descriptor's close-on-exec flag.
pub fn set_cloexec(fd: &impl std::os::fd::AsRawFd, on: bool) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl(2) F_GETFD/F_SETFD on a descriptor the caller owns
    // reads and writes no memory of ours.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if libc::fcntl(fd, libc::F_SETFD, flags) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes ownership of inherited descriptor `fd` if it is an open socket
/// (Node's `NODE_CHANNEL_FD`), and marks it close-on-exec so that no
/// program this host starts inherits it.
pub fn adopt_socket(fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        // stdin, stdout and stderr stay what they are.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: fstat(2) fills the zeroed struct we pass and nothing else.
    let is_socket = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut stat) == -1 {
            return Err(io::Error::last_os_error());
        }
        stat.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if !is_socket {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    // SAFETY: `fd` is open (fstat succeeded) and, inherited at start-up
    // and named by the environment, owned by nothing else in this process;
    // this is called once per descriptor.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    set_cloexec(&owned, true)?;
    Ok(owned)
}

/// Spawning and inheritance: a descriptor meant for one child is made
/// inheritable only while that child is being started, and no other
/// program may start meanwhile (it would inherit it too, and keep the
/// channel open after the child is gone). Every start of an OS program
/// holds this: shared for an ordinary one, exclusive for one that
/// inherits a descriptor.
pub static SPAWNING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Shuts down the writing side of a socket (`shutdown(2)`, `SHUT_WR`): the
/// peer reads end-of-file; reading goes on.
pub fn shutdown_write(socket: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    // SAFETY: shutdown(2) on a descriptor the caller owns; no memory.
    if unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_WR) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends this process by `signal`, as a child of a Node parent must for
/// the parent to see `exit(null, signal)`: the default action restored
/// (tokio's handler is gone with it), no core file, and raised. Returns
/// only if the signal does not end a process by default.
pub fn die_by(signal: u8) {
    let signal = libc::c_int::from(signal);
    // SAFETY: setrlimit, signal and raise take plain values; SIG_DFL is a
    // valid disposition for every signal but SIGKILL and SIGSTOP, for which
    // signal(2) fails harmlessly.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
}
