//! The fault suite (the limits issue, item 3; the limits themselves are in
//! `limits.rs`, the supervisor giving up in `supervisor.rs`): for each fault
//! a child commits, the child alone ends — with the exit its parent can
//! read — and its sibling (a pinger and its echo, `sibling.rs`) completes
//! its numbered round trips meanwhile, each checked in order; the messages
//! of a flood or a Node child are all there, in order. `bench/faults.py`
//! runs the same scenarios for the sibling's rate under each fault.

use crate::util::Test;
use test_programs_artifacts::{FAULT_CASES, FAULT_SOAK};

/// `fault_cases FAULT`'s stdout lines, sorted (the sibling and the faulty
/// child run side by side).
fn fault(name: &str) -> Vec<String> {
    fault_with(&[], &[name])
}

/// `host run FLAGS fault_cases ARGS`'s stdout lines, sorted.
fn fault_with(flags: &[&str], args: &[&str]) -> Vec<String> {
    let out = Test::new()
        .args(["run"])
        .args(flags.iter().copied())
        .args([FAULT_CASES])
        .args(args.iter().copied())
        .any_stdout()
        .any_stderr()
        .check();
    let mut lines: Vec<String> = out.stdout.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// A guest that traps (a Rust panic): SIGABRT, as a native crash.
#[test]
fn a_trapping_child() {
    assert_eq!(fault("trap"), ["exit null SIGABRT", "sibling 200"]);
}

/// A guest that overflows its stack: a trap like any other.
#[test]
fn a_stack_overflow() {
    assert_eq!(fault("stack"), ["exit null SIGABRT", "sibling 200"]);
}

/// A guest in an infinite loop (`loop {}`, never yielding) is preempted,
/// so its sibling goes on, and ends at its `timeout-ms` with SIGTERM, as
/// Node's `timeout` ends a child.
#[test]
fn an_infinite_loop() {
    assert_eq!(fault("spin"), ["exit null SIGTERM", "sibling 200"]);
}

/// The fault suite's Node child (`guests/test-programs/node/fault_child.js`).
const NODE_CHILD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../guests/test-programs/node/fault_child.js"
);

/// `fault_cases FAULT` with a Node child, `node` allowed.
fn node_fault(name: &str) -> Vec<String> {
    fault_with(&["--allow-spawn=node"], &[name, NODE_CHILD])
}

/// Invalid JSON sent to a Node child is refused by `send`
/// (`ERR_INVALID_JSON`) and never reaches it; the 990 valid messages
/// around the 10 refused ones come back, every one, in order.
#[test]
fn invalid_json_to_a_node_child() {
    assert_eq!(
        node_fault("node-bad-json"),
        [
            "exit 0 null",
            "node echoed 990 in order=true",
            "refused 10: ERR_INVALID_JSON",
            "sibling 200"
        ]
    );
}

/// A Node child writing lines that are not JSON on its channel: each is an
/// `error` (`EPROTO`) on that child, where Node's parent would exit; the
/// 1,000 messages around them arrive, every one, in order.
#[test]
fn a_node_child_writing_garbage() {
    let lines = node_fault("node-garbage");
    let errors = lines.iter().filter(|l| *l == "error EPROTO").count();
    assert_eq!(errors, 10, "{lines:?}");
    let rest: Vec<&String> = lines.iter().filter(|l| *l != "error EPROTO").collect();
    assert_eq!(
        rest,
        ["exit 0 null", "node sent 1000 in order=true", "sibling 200"]
    );
}

/// A guest that floods its parent with 20,000 messages as fast as it can:
/// every one arrives, in order, and the sibling's round trips go on.
#[test]
fn a_flooding_child() {
    assert_eq!(
        fault("flood"),
        ["exit 0 null", "flood 20000 in order=true", "sibling 200"]
    );
}

/// A guest that forks until its subtree's `max-procs` (5): the fifth
/// fork fails with `EAGAIN`, and nothing outside the subtree notices.
#[test]
fn a_fork_bomb_in_its_subtree() {
    assert_eq!(
        fault("procs"),
        ["exit 0 null", "forked 4 then EAGAIN", "sibling 200"]
    );
}

/// OS programs started in a loop stop at the subtree's `max-procs` (5):
/// the fifth spawn fails with `EAGAIN`.
#[test]
fn os_programs_in_a_loop_stop_at_max_procs() {
    assert_eq!(
        fault_with(&["--allow-spawn=sleep"], &["os-procs"]),
        ["exit 0 null", "sibling 200", "spawned 4 then EAGAIN"]
    );
}

/// A shell fork bomb in a child whose share is 5 (`max-procs`): the shell
/// forks until the kernel refuses (its share's pids cgroup), with exactly
/// the 3 the share had left (the child and the shell hold 2); the shell
/// exits 2 ("Cannot fork"); what it left behind still counts, so the child
/// can fork one wasm child more, then `EAGAIN`. When the host exits, the
/// cgroup is gone.
#[test]
fn an_os_fork_bomb_is_held_to_its_share() {
    let out = Test::new()
        .args(["run", "--allow-spawn=sh", FAULT_CASES, "os-bomb"])
        .any_stdout()
        .any_stderr()
        .check();
    if out.stderr.contains("no writable pids cgroup") {
        eprintln!("skipped: this machine has no writable pids cgroup");
        return;
    }
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "bomb forked 3 (refused=true), sh exit 2; then forked 1 then EAGAIN",
            "exit 0 null",
            "sibling 200"
        ],
        "{}",
        out.stderr
    );
    let left = format!("hive-{}-", out.pid);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cgroups_named(&left) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!cgroups_named(&left), "cgroups {left}* left behind");
}

/// Whether a pids cgroup whose name starts with `prefix` exists (v1's
/// hierarchy, or v2's).
fn cgroups_named(prefix: &str) -> bool {
    [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
    ]
    .iter()
    .filter_map(|dir| std::fs::read_dir(dir).ok())
    .flatten()
    .flatten()
    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
}

/// A process killed mid-conversation with its own child: it ends with
/// SIGKILL, its child ends with it (no orphans: SIGKILL too), and the
/// sibling goes on.
#[test]
fn a_parent_killed_mid_conversation() {
    assert_eq!(
        fault("talker"),
        [
            "exit null SIGKILL",
            "grandchild down SIGKILL",
            "sibling 200"
        ]
    );
}

/// A child killed while it is blocked in a host call (a sleep) ends at
/// once with SIGKILL.
#[test]
fn a_child_killed_while_blocked() {
    assert_eq!(
        fault("blocked"),
        ["exit null SIGKILL", "sibling 200", "waiting"]
    );
}

/// The soak, short (`just soak` is 10^6 messages): 20,000 numbered
/// messages down a chain of 10 guests and back, under backpressure, the
/// middle killed at random every ~30 ms and restarted by its supervisor.
/// Every message comes back in order, or was inside a killed subtree —
/// none is lost unaccounted, none reordered or doubled.
#[test]
fn a_soak_under_kills_loses_nothing_unaccounted() {
    let (mut host, mut out) = crate::util::spawn_host(["run", FAULT_SOAK, "20000", "10", "30"]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(report["in_order"], true, "{report}");
    assert_eq!(report["accounted"], true, "{report}");
    assert!(report["kills"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["returned"].as_u64().unwrap() > 0, "{report}");
    let _ = host.kill();
}
