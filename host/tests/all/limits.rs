//! Per-process limits (`limits_cases`): a child past its memory, CPU time
//! or resource limit ends — only it, with an `error` naming the limit
//! before its `exit`, and one line on stderr naming the option — while its
//! sibling keeps answering; a fork or spawn asking for more than its parent
//! has fails; OS children get `RLIMIT_CPU`, `RLIMIT_NOFILE`, `RLIMIT_AS`.

use crate::util::Test;
use test_programs_artifacts::LIMITS_CASES;

fn case(scenario: &str) -> Test {
    Test::run(LIMITS_CASES).args([scenario])
}

/// `scenario` with leave to spawn `sh`.
fn spawning(scenario: &str) -> Test {
    Test::new().args(["run", "--allow-spawn=sh", LIMITS_CASES, scenario])
}

/// The lines of `out`, sorted: the sibling and the limited child run side
/// by side, so only the limited child's own order is fixed (checked apart).
fn sorted(out: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines
}

/// Past `max-memory`: the grow is refused, the guest aborts, and its parent
/// sees `ERR_WORKER_OUT_OF_MEMORY` then `exit(null, SIGABRT)`; the sibling
/// finishes its round trips.
#[test]
fn memory_limit_ends_only_that_child() {
    let out = case("memory")
        .stderr_contains(
            "would pass its limit of 4M; raise it with its fork option `limits.max-memory`",
        )
        .any_stdout()
        .check();
    let stdout = out.stdout;
    assert_eq!(
        sorted(&stdout),
        [
            "error ERR_WORKER_OUT_OF_MEMORY",
            "exit null SIGABRT",
            "sibling 200"
        ]
    );
    assert!(stdout.find("error").unwrap() < stdout.find("exit").unwrap());
}

/// A child in `loop {}` past `max-cpu-ms` is ended with SIGXCPU.
#[test]
fn cpu_limit_ends_a_spinning_child() {
    let out = case("cpu")
        .stderr_contains("reached its CPU time limit (100 ms of CPU time) and was ended; raise it with `limits.max-cpu-ms`")
        .any_stdout()
        .check();
    assert_eq!(
        sorted(&out.stdout),
        ["error ERR_CPU_LIMIT", "exit null SIGXCPU", "sibling 200"]
    );
}

/// Zero is zero, not "unlimited": `max-procs: 0` cannot hold the child
/// itself (`EAGAIN`), and a child allowed no resources ends at its first,
/// its stdout, with `ERR_RESOURCE_LIMIT`; the sibling goes on.
#[test]
fn zero_limits_are_zero() {
    let out = case("zero")
        .stderr_contains("reached its resource limit (0 host resources at once)")
        .any_stdout()
        .check();
    assert_eq!(
        sorted(&out.stdout),
        [
            "error ERR_RESOURCE_LIMIT",
            "exit null SIGABRT",
            "fork with max-procs 0: EAGAIN",
            "sibling 200"
        ]
    );
}

/// A child leaking handles past `max-resources` is ended; the host holds
/// at most that many of its resources.
#[test]
fn resource_limit_ends_a_leaking_child() {
    let out = case("resources")
        .stderr_contains("reached its resource limit (500 host resources at once)")
        .any_stdout()
        .check();
    assert_eq!(
        sorted(&out.stdout),
        [
            "error ERR_RESOURCE_LIMIT",
            "exit null SIGABRT",
            "sibling 200"
        ]
    );
}

/// More than the parent has fails the fork (`invalid-argument`, with the
/// option named on stderr); a child's own children inherit its limit and
/// may not exceed it either.
#[test]
fn no_child_gets_more_than_its_parent() {
    case("more")
        .stderr_contains("`limits.max-memory` asks for 1T, more than this process's own")
        .stdout(
            "fork with 1T: ERR_INVALID_ARG_VALUE\n\
             fork with u64::MAX: ERR_INVALID_ARG_VALUE\n\
             grandchild with 16M: ERR_INVALID_ARG_VALUE\n\
             grandchild error ERR_WORKER_OUT_OF_MEMORY\n\
             grandchild exit SIGABRT\n\
             exit 0 null\n",
        )
        .any_stderr()
        .check();
}

/// `timeout-ms: 0` means no timeout, as in Node.
#[test]
fn timeout_zero_is_no_timeout() {
    case("timeout-zero").stdout("exit 0 null\n").check();
}

/// An OS child past `max-cpu-ms` gets SIGXCPU from the kernel
/// (`RLIMIT_CPU`), and its parent the same `error` as for a wasm child.
#[test]
fn os_child_cpu_limit_is_rlimit_cpu() {
    spawning("os-cpu")
        .stdout("error ERR_CPU_LIMIT\nexit null SIGXCPU\n")
        .stderr_contains("reached its CPU time limit (1000 ms, counted in whole seconds)")
        .check();
}

/// `max-open-files` and `max-address-space` are the OS child's
/// `RLIMIT_NOFILE` and `RLIMIT_AS`.
#[test]
fn os_child_rlimits() {
    spawning("os-files")
        .stdout("stdout 20\nexit 0 null\n")
        .check();
    spawning("os-memory")
        .stdout("stdout 262144\nexit 0 null\n")
        .check();
    spawning("os-files-exec")
        .stdout("exec-sync 30\nexec 20\nerror None\n")
        .check();
    // A forked Node child's limits are its fork options' (they were the
    // parent's: the capability check set them again).
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../guests/test-programs/node/fault_child.js"
    );
    Test::new()
        .args([
            "run",
            "--allow-spawn=node",
            LIMITS_CASES,
            "node-files",
            script,
        ])
        .stdout("open files 100\nexit 0 null\n")
        .check();
}

/// The root's limits are flags: `--max-cpu-ms` ends a spinning root with
/// SIGXCPU (the host exits 128 + 24), `--max-resources` a leaking one.
#[test]
fn root_limits_are_flags() {
    Test::new()
        .args(["run", "--max-cpu-ms", "50", LIMITS_CASES, "child", "spin"])
        .stderr_contains("reached its CPU time limit (50 ms of CPU time)")
        .stderr_contains("`--max-cpu-ms`")
        .status(128 + 24)
        .check();
    Test::new()
        .args([
            "run",
            "--max-resources",
            "300",
            LIMITS_CASES,
            "child",
            "leak",
        ])
        .stderr_contains("reached its resource limit (300 host resources at once)")
        .stderr_contains("`--max-resources`")
        .status(128 + 6)
        .check();
}

/// A guest cannot give an OS child more open files than the host itself
/// runs under, even with no limit of its own (the host's is the bound;
/// as root, setrlimit would raise it).
#[test]
fn os_limits_are_bounded_by_the_hosts_own() {
    spawning("os-files-over-host")
        .stdout("spawn with more files than the host: ERR_INVALID_ARG_VALUE\n")
        .stderr_contains(
            "`limits.max-open-files` asks for 9223372036854775807, more than this process's own",
        )
        .check();
}
