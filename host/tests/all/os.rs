//! OS children from guests: the capability, inheritance, pipes across
//! kinds, reaping, and what happens to OS children when the root ends.

use crate::util::Test;
use std::time::{Duration, Instant};
use test_programs_artifacts::*;

fn alive(pid: u32) -> bool {
    // A zombie is not alive: it has exited and waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

fn pids(stdout: &str) -> Vec<u32> {
    stdout.lines().map(|l| l.parse().unwrap()).collect()
}

#[test]
fn seed_spawn_demo() {
    // The same lines as `node guests/examples/seed-spawn/node/main.js`, in
    // some order (they come from concurrent children), with npm's help text
    // around them.
    let out = Test::new()
        .args(["run", "--allow-spawn", SEED_SPAWN])
        .any_stdout()
        .any_stderr()
        .check();
    for line in ["[exec] hello world", "[execFile] hi world", "2"] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "no {line:?} in:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("npm <command>"),
        "npm --help did not run:\n{}",
        out.stdout
    );
}

#[test]
fn spawn_needs_the_capability() {
    let denied = "spawn failed: EPERM: this guest may not start OS programs (run the host with `--allow-spawn`)\n";
    Test::run(OS_CASES)
        .args(["denied"])
        .stdout(denied)
        .stderr_contains("may not start `echo`: allow it with `host run --allow-spawn=echo` (or `--allow-spawn` for any program)")
        .check();
    // A list allows only what it names.
    Test::new()
        .args(["run", "--allow-spawn=sh,ls", OS_CASES, "denied"])
        .stdout(denied)
        .any_stderr()
        .check();
    Test::new()
        .args(["run", "--allow-spawn=echo", OS_CASES, "denied"])
        .stdout("spawn allowed\n")
        .check();
}

/// The allow-list is decided on the file that will run. A guest that plants
/// `D/echo -> /bin/sh` (here the test plants it: the guest itself may not
/// create such a link) and spawns `echo` with `PATH=D` gets the real echo;
/// naming the planted path is denied; an empty list is a usage error.
#[test]
fn allow_list_has_no_back_door() {
    let dir = crate::util::temp_dir("spawn-planted");
    std::os::unix::fs::symlink("/bin/sh", dir.join("echo")).unwrap();
    let d = dir.display().to_string();
    for path in [d.as_str(), ".", "/guest"] {
        Test::new()
            .args([
                "run",
                "--allow-spawn=echo",
                "--dir",
                &d,
                "--dir",
                &format!("{d}::/guest"),
            ])
            .args([OS_CASES, "run", "echo", path, "-c", "echo pwned"])
            .cwd(&dir)
            .stdout("stdout: -c echo pwned\n")
            .check();
    }
    for planted in [format!("{d}/echo"), "./echo".into()] {
        Test::new()
            .args(["run", "--allow-spawn=echo", "--dir", &d])
            .args([OS_CASES, "run", &planted, "/usr/bin:/bin", "-c", "echo pwned"])
            .cwd(&dir)
            .stdout("spawn failed: EPERM: this guest may not start OS programs (run the host with `--allow-spawn`)\n")
            .stderr_contains(&format!("may not start `{planted}`"))
            .check();
    }
    // `--allow-spawn=$PROGS` with `$PROGS` unset must not mean "anything".
    Test::new()
        .args(["run", "--allow-spawn=", OS_CASES, "echo"])
        .stderr_contains("an empty list allows nothing")
        .status(2)
        .check();
    Test::new()
        .args(["run", "--allow-spawn=echo,", OS_CASES, "echo"])
        .stderr_contains("an empty list allows nothing")
        .status(2)
        .check();
    Test::new()
        .args([
            "run",
            "--allow-spawn=no-such-program-anywhere",
            OS_CASES,
            "echo",
        ])
        .stderr_contains(
            "`no-such-program-anywhere`: no such program (looked for it in the host's `PATH`)",
        )
        .status(2)
        .check();
}

/// Node reports such a child as `exit(0, null)`; it was killed, by 36.
#[test]
fn realtime_signals_are_reported_by_number() {
    Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "realtime"])
        .stdout("code null signal 36\n")
        .check();
}

/// OS children count against `--max-procs` like forks (the root is one).
#[test]
fn os_children_count_against_max_procs() {
    Test::new()
        .args([
            "run",
            "--allow-spawn",
            "--max-procs",
            "4",
            OS_CASES,
            "spawn-until-refused",
        ])
        .stdout("spawned 3 then EAGAIN\nspawnSync: EAGAIN\n")
        .check();
}

/// `exec` asking for an unbounded `max-buffer` gets the host's 64 MiB, even
/// from `yes`: under a 4 GB address-space limit the host keeps running (it
/// used to grow to 14 GiB, or abort under the limit, taking every guest).
#[test]
fn exec_output_is_bounded_by_the_host() {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 4000000; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_host"))
        .args([
            "run",
            "--allow-spawn",
            "--max-procs",
            "4",
            "--max-memory",
            "200M",
            OS_CASES,
            "yes-maxbuffer",
        ])
        .env("HOST_CACHE_DIR", crate::util::shared_cache())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ERR_CHILD_PROCESS_STDIO_MAXBUFFER after 67108864 bytes\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
}

#[test]
fn forked_children_inherit_the_capability() {
    Test::new()
        .args(["run", "--allow-spawn=echo", OS_CASES, "fork-spawn"])
        .stdout("echo said: hi\n")
        .check();
    Test::run(OS_CASES)
        .args(["fork-spawn"])
        .stdout("")
        .stderr_contains("may not start `echo`")
        .check();
}

#[test]
fn pipes_across_kinds() {
    Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "os-to-wasm"])
        .stdout("wasm child said: HELLO\n")
        .check();
    Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "wasm-to-os"])
        .stdout("wc counted: 19\n")
        .check();
}

#[test]
fn root_exit_terminates_os_children() {
    let start = Instant::now();
    let out = Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "leave-running"])
        .any_stdout()
        .check();
    let pids = pids(&out.stdout);
    assert_eq!(pids.len(), 1);
    assert!(
        wait_gone(pids[0], Duration::from_secs(2)),
        "sleep {} outlived the host",
        pids[0]
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn sigkill_after_the_grace_period() {
    // One child ignores SIGTERM: the host waits the grace period, then
    // SIGKILLs it, and only then exits.
    let start = Instant::now();
    let out = Test::new()
        .args([
            "run",
            "--allow-spawn",
            "--kill-grace-ms",
            "300",
            OS_CASES,
            "leave-running",
            "stubborn",
        ])
        .any_stdout()
        .check();
    let elapsed = start.elapsed();
    for pid in pids(&out.stdout) {
        assert!(!alive(pid), "{pid} outlived the host");
    }
    assert!(
        elapsed >= Duration::from_millis(300),
        "exited before the grace period: {elapsed:?}"
    );
}

#[test]
fn detached_children_outlive_the_host() {
    let out = Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "detached"])
        .any_stdout()
        .check();
    let pid = pids(&out.stdout)[0];
    assert!(alive(pid), "the detached child died with the host");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[2], pid.to_string(), "pgid");
    assert_eq!(fields[3], pid.to_string(), "sid");
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
}

#[test]
fn every_child_is_reaped() {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["run", "--allow-spawn", OS_CASES, "reap"])
        .env("HOST_CACHE_DIR", crate::util::shared_cache())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "reaped\n");
    let host = child.id();
    let mut zombies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{host}/task")).unwrap() {
        let task = task.unwrap().file_name();
        let kids = std::fs::read_to_string(format!(
            "/proc/{host}/task/{}/children",
            task.to_string_lossy()
        ))
        .unwrap_or_default();
        zombies.extend(kids.split_whitespace().map(String::from));
    }
    // The sentinel is the one child that lives on purpose (see sentinel.rs).
    zombies.retain(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        !String::from_utf8_lossy(&cmdline).contains("__sentinel")
    });
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(zombies.is_empty(), "unreaped children: {zombies:?}");
}

#[test]
fn bad_arguments_fail_at_once() {
    Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "bad-args"])
        .stdout(
            "empty: ERR_INVALID_ARG_VALUE\n\
             nul: ERR_INVALID_ARG_VALUE\n\
             nul arg: ERR_INVALID_ARG_VALUE\n\
             bad env: ERR_INVALID_ARG_VALUE\n\
             file cwd: ENOTDIR\n\
             kill signal: ERR_UNKNOWN_SIGNAL\n\
             missing pid: None\n\
             error ENOENT Some(-2) Some(\"spawn hive-no-such-program\") Some(\"hive-no-such-program\") [\"x\"]\n\
             close Some(-2) None\n",
        )
        .check();
}

/// A child's output reaches its listener as it comes (the event loop wakes
/// for it, as Node's does), not when something else wakes the loop: `b`,
/// written a second after `a`, arrives a second after it, and the exit a
/// second after that.
#[test]
fn output_arrives_as_it_is_written() {
    Test::new()
        .args(["run", "--allow-spawn", OS_CASES, "stream-wakes"])
        .stdout("a after 0s\nb after 1s\nexit Some(0) after 1s\n")
        .check();
}
