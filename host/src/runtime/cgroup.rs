//! Pids cgroups: what bounds the processes an OS program forks itself.
//!
//! Hive's budgets count the processes Hive starts; what an OS program forks
//! itself (a shell's `:(){ :|:& };:`) never passes through the host. So the
//! OS programs of a `max-procs` share run in a cgroup of the share's own
//! (see `budget`), whose `pids.max` the kernel enforces at every fork
//! (`EAGAIN` past it), and everything else on the machine keeps running.
//!
//! A share's cgroup is `hive-<host pid>-<n>`, beside the host in the pids
//! hierarchy (cgroup v1's `pids` controller, or cgroup v2 where the host's
//! cgroup delegates `pids`), or inside its parent share's. A program joins
//! it between fork and exec, so it never runs outside (the cost: a fork of
//! the host instead of `posix_spawn`, as for rlimits). The directory goes
//! when the share ends and it is empty, else once what is left in it ends
//! (retried at later spawns); the sentinel ends and removes what is left
//! when the host exits. Without a writable pids hierarchy the host says so
//! once, on stderr, at the first OS program of a share.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// A share's pids cgroup; removed when dropped (or once empty).
#[derive(Debug)]
pub struct Pids {
    dir: PathBuf,
    /// `cgroup.procs`, for a child to write itself into.
    procs: OwnedFd,
}

/// Where this host's cgroups go: the host's own cgroup in the pids
/// hierarchy, if there is one the host may write.
fn parent() -> Option<&'static Path> {
    static PARENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    PARENT
        .get_or_init(|| {
            let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
            let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
            find(&cgroups, &mounts)
        })
        .as_deref()
}

/// Whether this host can make pids cgroups.
pub fn available() -> bool {
    parent().is_some()
}

/// Says, once, that shares cannot bound what OS programs start here.
pub fn warn_unavailable() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "warning: no writable pids cgroup here: a `max-procs` share bounds the OS programs Hive starts, not what they fork themselves"
        );
    });
}

/// The prefix of every cgroup this host makes (for the sentinel).
pub fn prefix() -> Option<PathBuf> {
    Some(parent()?.join(format!("hive-{}-", std::process::id())))
}

/// Which hierarchy a pids directory is in.
#[derive(Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The pids directory of this process given `/proc/self/cgroup` and
/// `/proc/self/mountinfo`, if the host may make cgroups in it: v1's
/// `pids` hierarchy, or v2's when the cgroup delegates `pids`.
fn find(cgroups: &str, mounts: &str) -> Option<PathBuf> {
    let (dir, version) = locate(cgroups, mounts)?;
    let delegated = version == Version::V1
        || fs::read_to_string(dir.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"));
    (delegated && super::unix::writable(&dir)).then_some(dir)
}

/// Where this process sits in the pids hierarchy (v1's if there is one,
/// else v2's), from the two files' text alone.
fn locate(cgroups: &str, mounts: &str) -> Option<(PathBuf, Version)> {
    // mountinfo: id parent dev root mountpoint opts... - fstype source superopts
    let mount = |version: &Version| {
        mounts.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut left = left.split(' ');
            let root = left.nth(3)?;
            let point = left.next()?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let superopts = right.nth(1).unwrap_or("");
            let ok = match version {
                Version::V1 => fstype == "cgroup" && superopts.split(',').any(|o| o == "pids"),
                Version::V2 => fstype == "cgroup2",
            };
            ok.then(|| (root.to_owned(), PathBuf::from(point)))
        })
    };
    let within = |(root, point): (String, PathBuf), path: &str| {
        let rest = path
            .strip_prefix(root.trim_end_matches('/'))
            .unwrap_or(path);
        point.join(rest.trim_start_matches('/'))
    };
    let v1 = cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == "pids").then_some(path)
    });
    let (path, version) = match v1 {
        Some(path) => (path, Version::V1),
        None => (
            cgroups.lines().find_map(|l| l.strip_prefix("0::"))?,
            Version::V2,
        ),
    };
    Some((within(mount(&version)?, path), version))
}

impl Pids {
    /// A new cgroup holding at most `max` processes, inside `within` (a
    /// parent share's cgroup) or at the top of this host's.
    pub fn create(within: Option<&Path>, max: u32) -> io::Result<Pids> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        sweep();
        let top = parent().ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = within
            .unwrap_or(top)
            .join(format!("hive-{}-{n}", std::process::id()));
        fs::create_dir(&dir)?;
        let made = fs::write(dir.join("pids.max"), max.to_string()).and_then(|()| {
            fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
        });
        match made {
            Ok(procs) => Ok(Pids {
                dir,
                procs: procs.into(),
            }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// A descriptor a child writes `0` to before exec, to join.
    pub fn joiner(&self) -> io::Result<OwnedFd> {
        self.procs.try_clone()
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets `pids.max`.
    pub fn set_max(&self, max: u32) -> io::Result<()> {
        fs::write(self.dir.join("pids.max"), max.to_string())
    }

    /// `pids.current`: the processes in it and in the cgroups inside it.
    pub fn current(&self) -> io::Result<u32> {
        fs::read_to_string(self.dir.join("pids.current"))?
            .trim()
            .parse()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
    }
}

/// Cgroups whose share ended while processes were left in them.
static LINGERING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the lingering cgroups that have emptied since.
fn sweep() {
    let mut lingering = LINGERING.lock().unwrap_or_else(|e| e.into_inner());
    lingering.retain(|dir| remove(dir).is_err());
}

/// Removes the cgroup at `dir` and those inside it, if all are empty.
fn remove(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Drop for Pids {
    fn drop(&mut self) {
        // Still holding what a program left behind: removed once empty.
        if remove(&self.dir).is_err() {
            LINGERING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.dir.clone());
        }
    }
}

/// The sentinel's last pass, once the host is gone: SIGKILLs what is left
/// in every cgroup under `prefix` (`prefix()`'s form, nested ones too) and
/// removes them.
pub fn end_all(prefix: &Path, kill: impl Fn(u32)) {
    let (Some(top), Some(name)) = (prefix.parent(), prefix.file_name()) else {
        return;
    };
    let name = name.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(top) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&name) {
            end(&entry.path(), &name, &kill);
        }
    }
}

fn end(dir: &Path, name: &str, kill: &impl Fn(u32)) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let inner = entry.file_name().to_string_lossy().starts_with(name);
            if inner && entry.file_type().is_ok_and(|t| t.is_dir()) {
                end(&entry.path(), name, kill);
            }
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let members = members(dir);
        if members.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        for pid in members {
            kill(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = fs::remove_dir(dir);
}

/// The processes in the cgroup at `dir` itself.
fn members(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_pids_hierarchy_first() {
        assert_eq!(
            locate("8:pids:/a/b\n4:memory:/m\n0::/c\n", MOUNTS),
            Some((PathBuf::from("/sys/fs/cgroup/pids/a/b"), Version::V1))
        );
    }

    #[test]
    fn v2_without_a_pids_hierarchy() {
        assert_eq!(
            locate("4:memory:/m\n0::/user.slice/x\n", MOUNTS),
            Some((
                PathBuf::from("/sys/fs/cgroup/unified/user.slice/x"),
                Version::V2
            ))
        );
    }

    #[test]
    fn a_mount_whose_root_is_a_sub_cgroup() {
        assert_eq!(
            locate(
                "8:pids:/user/x\n",
                "1 1 0:1 /user /c rw - cgroup cgroup rw,pids\n"
            ),
            Some((PathBuf::from("/c/x"), Version::V1))
        );
    }

    #[test]
    fn no_hierarchy_at_all() {
        assert_eq!(locate("4:memory:/m\n", MOUNTS), None);
    }
}
