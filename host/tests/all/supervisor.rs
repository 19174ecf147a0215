//! Supervision (the limits issue, item 2): `hive::supervisor` — one-for-one
//! and one-for-all strategies, restart intensity with backoff, transient
//! children, for wasm and OS children alike — and Erlang's monitors and
//! links (`process.monitor`, `process.link`).

use crate::util::Test;
use test_programs_artifacts::SUPERVISOR_CASES;

/// One-for-one: only the crasher is restarted, three times (the
/// intensity); then the supervisor gives up and ends the rest. The steady
/// child ran all along.
#[test]
fn one_for_one_restarts_only_the_crasher() {
    Test::run(SUPERVISOR_CASES)
        .args(["one-for-one"])
        .stdout(
            "restart crasher (1)\nrestart crasher (2)\nrestart crasher (3)\n\
             give up after 3 restarts; steady the same=true\n",
        )
        .stderr_contains("supervisor: 4 restarts within 10s: giving up")
        .check();
}

/// One-for-all: each crash ends the steady child too and starts both
/// again, in order.
#[test]
fn one_for_all_restarts_everyone() {
    Test::run(SUPERVISOR_CASES)
        .args(["one-for-all"])
        .stdout(
            "restart crasher (1)\nrestart steady (1)\nrestart crasher (2)\nrestart steady (2)\n\
             give up after 4 restarts; steady the same=false\n",
        )
        .stderr_contains("supervisor: 3 restarts within 10s: giving up")
        .check();
}

/// OS children: a transient child that exits 3 is restarted, one that
/// exits 0 is not.
#[test]
fn transient_os_children() {
    Test::new()
        .args(["run", "--allow-spawn=sh", SUPERVISOR_CASES, "transient"])
        .stdout(
            "restart fails (1)\nrestart fails (2)\ngive up after 2 restarts; ok the same=false\n",
        )
        .stderr_contains("supervisor: 3 restarts within 10s: giving up")
        .check();
}

/// A monitor on a grandchild gets its `down` with how it ended; a
/// cancelled monitor gets nothing.
#[test]
fn monitor_a_grandchild() {
    Test::run(SUPERVISOR_CASES)
        .args(["monitor"])
        .stdout(
            "down: same monitor=true same pid=true code=Some(1) signal=None\n\
             middle closed\n",
        )
        .check();
}

/// A guest may watch only its own descendants: not itself, not its
/// parent, not a pid it made up (`ESRCH`).
#[test]
fn only_descendants_can_be_watched() {
    Test::run(SUPERVISOR_CASES)
        .args(["strangers"])
        .stdout(
            "itself: monitor Err(\"ESRCH\"), link Err(\"ESRCH\")\n\
             its parent: monitor Err(\"ESRCH\"), link Err(\"ESRCH\")\n\
             nobody: monitor Err(\"ESRCH\"), link Err(\"ESRCH\")\n",
        )
        .check();
}

/// Linked to a child that crashes, a process ends with `SIGTERM`; one
/// that handles `SIGTERM` gets it as an event instead (`trap_exit`).
#[test]
fn a_link_takes_its_process_down() {
    Test::run(SUPERVISOR_CASES)
        .args(["link"])
        .stdout("linker ended: None Some(\"SIGTERM\")\n")
        .check();
    Test::run(SUPERVISOR_CASES)
        .args(["link-trapped"])
        .stdout("trapped SIGTERM\n")
        .check();
}

/// A guest sees its own subtree (`process.subtree`): itself, its child
/// and its grandchild, parents first, with their memory.
#[test]
fn a_guest_sees_its_subtree() {
    Test::run(SUPERVISOR_CASES)
        .args(["subtree"])
        .stdout("wasm(parent root) wasm(parent me) wasm(parent child); my memory > 0: true\n")
        .check();
}

/// A guest cannot grow another process's watcher list without bound: at
/// most 10,000 live monitors and links, then `invalid-argument`.
#[test]
fn monitors_are_bounded() {
    Test::run(SUPERVISOR_CASES)
        .args(["monitor-flood"])
        .stdout("monitors granted 10000, then Err(\"ERR_INVALID_ARG_VALUE\")\n")
        .stderr_contains("holds 10000 monitors and links, the most a process may")
        .check();
}
