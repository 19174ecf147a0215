//! The fault suite (the limits issue, item 3; the limits themselves are in
//! `limits.rs`): for each fault a child commits, the child alone ends —
//! with the exit its parent can read — and its sibling completes its round
//! trips meanwhile; a flood loses and reorders nothing.

use crate::util::Test;
use test_programs_artifacts::FAULT_CASES;

/// `fault_cases FAULT`'s stdout lines, sorted (the sibling and the faulty
/// child run side by side).
fn fault(name: &str) -> Vec<String> {
    let out = Test::run(FAULT_CASES)
        .args([name])
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

/// A child killed while it is blocked in a host call (a sleep) ends at
/// once with SIGKILL.
#[test]
fn a_child_killed_while_blocked() {
    assert_eq!(
        fault("blocked"),
        ["exit null SIGKILL", "sibling 200", "waiting"]
    );
}
