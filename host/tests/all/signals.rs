//! Signals to the host end the whole tree — OS children and their
//! descendants — and the host exits 128+N; a root guest that handles the
//! signal decides. Even `kill -9` of the host leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_programs_artifacts::*;

/// `host run [flags] os_cases tree N [extra]`, once it printed `ready`:
/// the host and the pids of its OS children.
fn tree(
    flags: &[&str],
    n: usize,
    extra: &[&str],
) -> (Child, Vec<u32>, BufReader<std::process::ChildStdout>) {
    let mut host = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["run", "--allow-spawn"])
        .args(flags)
        .args([OS_CASES, "tree", &n.to_string()])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOST_CACHE_DIR", crate::util::shared_cache())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(host.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pids: Vec<u32> = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), n);
    (host, pids, stdout)
}

/// `(pid, pgrp)` of every live process that is not a zombie.
fn live_processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces; split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        out.push((pid, fields[2].parse().unwrap()));
    }
    out
}

/// Waits until no child in `pids`, nor any member of their groups, lives.
fn assert_tree_gone(pids: &[u32], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<_> = live_processes()
            .into_iter()
            .filter(|(pid, pgrp)| pids.contains(pid) || pids.contains(pgrp))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still alive (pid, pgrp): {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(host: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &host.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn host_signals_end_the_tree() {
    for (signal, status) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let (mut host, pids, _) = tree(&[], 20, &[]);
        // Every child and grandchild is alive and in a group of its own.
        let groups = live_processes()
            .into_iter()
            .filter(|(_, g)| pids.contains(g))
            .count();
        assert_eq!(groups, 20 + 2 * 10, "children and grandchildren");
        send(&host, signal);
        assert_eq!(host.wait().unwrap().code(), Some(status), "SIG{signal}");
        assert_tree_gone(&pids, Duration::from_secs(5));
    }
}

#[test]
fn root_that_handles_sigterm_decides() {
    let (mut host, pids, mut stdout) = tree(&[], 4, &["handle"]);
    send(&host, "TERM");
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "got SIGTERM\n");
    assert_eq!(host.wait().unwrap().code(), Some(7));
    assert_tree_gone(&pids, Duration::from_secs(5));
}

/// SIGTERM-proof grandchildren get SIGKILL after the grace period.
#[test]
fn stubborn_grandchildren_get_sigkill() {
    let (mut host, pids, _) = tree(&["--kill-grace-ms", "300"], 4, &["stubborn"]);
    send(&host, "TERM");
    assert_eq!(host.wait().unwrap().code(), Some(143));
    assert_tree_gone(&pids, Duration::from_secs(5));
}

/// `kill -9` runs no code in the host: the sentinel ends the tree.
#[test]
fn kill_9_leaves_no_orphans() {
    for extra in [&[][..], &["stubborn"]] {
        let (mut host, pids, _) = tree(&["--kill-grace-ms", "300"], 20, extra);
        send(&host, "KILL");
        assert_eq!(host.wait().unwrap().code(), None);
        assert_tree_gone(&pids, Duration::from_secs(5));
    }
}
