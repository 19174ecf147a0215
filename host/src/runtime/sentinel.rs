//! The sentinel: a tiny process that ends the host's OS children, and their
//! descendants, when the host dies — even by `kill -9`, when the host runs
//! no code at all.
//!
//! `PR_SET_PDEATHSIG` reaches only direct children (and fires when the
//! spawning *thread* exits), and a subreaper dies with the host. So every
//! OS child that is not detached leads its own process group (its
//! descendants stay in it unless they leave on purpose), and the host tells
//! the sentinel each group over a pipe. The sentinel is `host __sentinel`,
//! started on the first OS child in its own process group (so a Ctrl-C to
//! the terminal's group does not end it first); when the pipe reaches EOF —
//! the host has exited, however — it sends each group SIGTERM, waits the
//! grace period, and sends SIGKILL to what is left.
//!
//! A group is forgotten once empty (checked when its leader is reaped, and
//! again at each later spawn), so that a process id the kernel reuses
//! later is never signalled.

use super::cgroup;
use super::signal::Signal;
use super::unix;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The host's end of the sentinel.
pub struct Sentinel {
    state: Mutex<State>,
}

struct State {
    pipe: ChildStdin,
    /// Groups whose leader was reaped but which still had members.
    lingering: Vec<u32>,
}

impl Sentinel {
    /// Starts `host __sentinel` (`program` is the `host` binary), which
    /// waits for this host to exit.
    pub fn start(program: &std::path::Path, grace: Duration) -> std::io::Result<Sentinel> {
        let mut child = Command::new(program);
        child
            .args(["__sentinel", "--grace-ms", &grace.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Where the pids cgroups of `max-procs` shares go, if anywhere.
        if let Some(prefix) = cgroup::prefix() {
            child.arg("--cgroups").arg(prefix);
        }
        std::os::unix::process::CommandExt::process_group(&mut child, 0);
        let mut child = {
            let _spawning = unix::SPAWNING.read().unwrap_or_else(|e| e.into_inner());
            child.spawn()?
        };
        let pipe = child.stdin.take().expect("piped");
        // The sentinel outlives us by design; nobody waits for it, and when
        // the host exits it is reparented and reaped by init.
        drop(child);
        Ok(Sentinel {
            state: Mutex::new(State {
                pipe,
                lingering: Vec::new(),
            }),
        })
    }

    /// Tells the sentinel about group `pgid` (a new OS child's).
    pub fn watch(&self, pgid: u32) {
        let mut state = self.state.lock().unwrap();
        // Spawning is what makes the kernel reuse ids: forget the groups
        // that emptied since, before a new one can take their id.
        let mut forget = Vec::new();
        state.lingering.retain(|&g| {
            let alive = unix::group_exists(g);
            if !alive {
                forget.push(g);
            }
            alive
        });
        for g in forget {
            let _ = writeln!(state.pipe, "-{g}");
        }
        if let Err(e) = writeln!(state.pipe, "+{pgid}") {
            tracing::warn!("the sentinel is gone ({e}): OS children may outlive a killed host");
        }
    }

    /// Group `pgid`'s leader was reaped: forget the group if it is empty,
    /// else keep it (its descendants still die with the host).
    pub fn reaped(&self, pgid: u32) {
        let mut state = self.state.lock().unwrap();
        if unix::group_exists(pgid) {
            state.lingering.push(pgid);
        } else {
            let _ = writeln!(state.pipe, "-{pgid}");
        }
    }
}

/// `host __sentinel`: reads `+PGID`/`-PGID` lines until EOF, then ends
/// every group still listed: SIGTERM, up to `grace`, SIGKILL; then what is
/// left in the host's pids cgroups (under `cgroups`, their prefix), which
/// it removes.
pub fn serve(grace: Duration, cgroups: Option<std::path::PathBuf>) {
    let mut groups = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (add, pgid) = line.split_at(1.min(line.len()));
        let Ok(pgid) = pgid.parse::<u32>() else {
            continue;
        };
        match add {
            "+" => groups.insert(pgid),
            _ => groups.remove(&pgid),
        };
    }
    let live = |groups: &BTreeSet<u32>| -> Vec<u32> {
        groups
            .iter()
            .copied()
            .filter(|&g| unix::group_exists(g))
            .collect()
    };
    for &g in &groups {
        let _ = unix::signal_group(g, Signal::TERM.number());
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !live(&groups).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    for g in live(&groups) {
        let _ = unix::signal_group(g, Signal::KILL.number());
    }
    // What left its group but not its share's cgroup ends too.
    if let Some(prefix) = cgroups {
        cgroup::end_all(&prefix, |pid| {
            let _ = unix::signal_pid(pid, Signal::KILL.number());
        });
    }
}
