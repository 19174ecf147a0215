//! Worker threads beyond Node's own scenarios (`thread_cases`; Node's are
//! in the conformance matrix, `threads-*`): what a hostile guest tries with
//! buffers, ports and workers, resource limits, capabilities, and what
//! outlives whom.

use crate::util::Test;
use test_programs_artifacts::THREAD_CASES;

fn case(name: &str, stdout: &str) {
    Test::new()
        .args(["run", "--max-total-memory", "64M", THREAD_CASES, name])
        .stdout(stdout)
        .any_stderr()
        .check();
}

/// The same lines as `stdout`, in any order: events of two workers.
fn case_unordered(name: &str, stdout: &str) {
    let out = Test::new()
        .args(["run", "--max-total-memory", "64M", THREAD_CASES, name])
        .any_stdout()
        .any_stderr()
        .check();
    let sorted = |s: &str| {
        let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&out.stdout), sorted(stdout), "{}", out.stdout);
}

/// Sizes, offsets and indices chosen to get more than a guest may: each
/// refused with its error, none taking the host down; buffers count
/// against `--max-total-memory` until dropped.
#[test]
fn hostile_buffers_are_refused() {
    case(
        "hostile-buffers",
        "past the largest: allocation-failed\n\
         u64::MAX: allocation-failed\n\
         past the total: allocation-failed\n\
         freed: true\n\
         read past end: out-of-range\n\
         read wrapping: out-of-range\n\
         write past end: out-of-range\n\
         index past the words: out-of-range\n\
         huge index: out-of-range\n\
         wait out of range: out-of-range\n\
         notify out of range: out-of-range\n\
         wait timed out: WaitResult::TimedOut\n\
         wait not equal: WaitResult::NotEqual\n\
         negative timeout: WaitResult::TimedOut\n\
         timeout 1e300: WaitResult::NotEqual\n\
         timeout inf: WaitResult::NotEqual\n\
         timeout NaN: WaitResult::NotEqual\n\
         timeout -inf: WaitResult::NotEqual\n\
         shared bytes: out-of-range\n",
    );
}

/// A message whose handles do not fit the receiver's `max-resources` is a
/// `messageerror` there (its handles closed), not a trap: the worker goes
/// on and takes the next messages.
#[test]
fn handles_past_max_resources_are_a_messageerror() {
    case(
        "full-table",
        "worker message messageerror: the message's handles do not fit in this process's \
         resource table (raise max-resources)\n\
         worker message plain (0 shared)\n\
         worker message bye (0 shared)\n\
         worker exit 0\n",
    );
}

/// After a transfer the sender's buffer is detached and its port moved:
/// posting on the old port handle is dropped, transferring it again is
/// refused; the bytes and the port's queue arrived whole.
#[test]
fn what_a_sender_transferred_is_gone() {
    case(
        "detached",
        "detached true 0\n\
         read: detached\n\
         transfer it again: port-detached\n\
         arrived 16 bytes, all 7: true\n\
         moved port got through the moved port\n\
         nothing else: true\n",
    );
}

/// `terminate` ends a worker asleep in `Atomics.wait` (an async host call)
/// and one in `loop {}` (epoch preemption): exit code 1 each.
#[test]
fn terminate_ends_blocked_and_spinning_workers() {
    case_unordered("terminate-blocked", "wait exit 1\nspin exit 1\n");
}

/// `resourceLimits.maxMemory`: the worker past it ends alone, with Node's
/// `ERR_WORKER_OUT_OF_MEMORY` and exit code 1 (no second, trap `error`).
#[test]
fn a_worker_past_its_memory_ends_alone() {
    case(
        "memory-limit",
        "worker error ERR_WORKER_OUT_OF_MEMORY\nworker exit 1\n",
    );
}

/// A worker has its parent's capabilities and never more: limits above
/// the parent's are refused, an OS program cannot be a worker, a module
/// outside `--allow-fork` fails to start (`EACCES`, exit 1), and inside
/// the worker there is no IPC channel and no spawn the parent lacks.
#[test]
fn a_worker_has_its_parent_s_capabilities() {
    case_unordered(
        "capabilities",
        "more memory than the parent: invalid-argument\n\
         an OS program: invalid-argument\n\
         missing error EACCES\n\
         missing exit 1\n\
         worker message process.send: true, spawn: true\n\
         worker exit 0\n",
    );
}

/// Workers of workers have their own ids; the main thread's exit ends
/// them all (no orphans: the host returns).
#[test]
fn nested_workers_end_with_the_main_thread() {
    case("nested", "inner worker has its own id: true\nmain ends\n");
}

/// A shared buffer stays valid after the worker that made it ended.
#[test]
fn a_shared_buffer_outlives_its_maker() {
    case("outlives", "exit 0; it wrote 99\nstill usable: Ok(99)\n");
}

/// A 1 MiB buffer through a worker and back, bytes intact.
#[test]
fn a_buffer_round_trip_keeps_its_bytes() {
    case("round-trip", "back: 1048576 bytes, last [42]\n");
}

/// Ports and buffers over a fork's IPC channel (`send-to-child`,
/// `send-to-parent`, `take-transferred`): a forked child gets a port and a
/// shared buffer, talks on the port, sends a buffer back (detached on its
/// side); the root, which has no channel, is refused.
#[test]
fn ports_and_buffers_travel_over_a_fork_s_channel() {
    case_unordered(
        "fork-transfer",
        "root without a channel: channel-closed\n\
         sent: Ok(true)\n\
         child's buffer detached: true\n\
         child sent bytes with 3 bytes: [1, 2, 3]; counter 5\n\
         child exit Some(0)\n\
         port from the parent's side got here through a port from a fork\n",
    );
}

/// Ports queued in each other's queues (a cycle no process holds) are
/// freed with what they carry: 200 rounds of a 1 MiB buffer in a cycle
/// under `--max-total-memory 64M`.
#[test]
fn port_cycles_do_not_leak() {
    case("cycles", "200 cycles freed\n");
}
