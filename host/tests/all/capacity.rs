//! Where a host is full (`capacity_cases`): a fork past `--max-procs`, past
//! `--max-total-memory` or past the kernel's mappings fails with `EAGAIN`
//! (the host saying which limit, and the flag or sysctl that raises it),
//! and every process already running keeps answering; a place freed is
//! taken again. Both allocation modes: the pool (`--max-procs` up to
//! `POOL_MAX_PROCS`) and on demand (past it).

use crate::util::{Test, wat_file};
use test_programs_artifacts::CAPACITY_CASES;

/// `forked N then EAGAIN`, all N answering, and a fork after one ended:
/// the N.
#[track_caller]
fn admitted(stdout: &str) -> usize {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_default();
    let n: usize = first
        .strip_prefix("forked ")
        .and_then(|rest| rest.strip_suffix(" then EAGAIN"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a refusal: {stdout}"));
    assert_eq!(
        lines.next(),
        Some(&*format!("{n} of {n} answered")),
        "{stdout}"
    );
    assert_eq!(lines.next(), Some("forked again"), "{stdout}");
    n
}

/// `--max-procs 12`, pooled: the root and 11 children, then EAGAIN.
#[test]
fn forks_past_max_procs_fail_and_the_rest_keep_answering() {
    let out = Test::new()
        .args(["run", "--max-procs", "12", CAPACITY_CASES, "admission"])
        .any_stdout()
        .check();
    assert_eq!(admitted(&out.stdout), 11);
}

/// On demand (past the pool), the same at the host's `--max-procs`.
#[test]
fn on_demand_forks_stop_at_max_procs_too() {
    let max = host::POOL_MAX_PROCS + 1;
    let out = Test::new()
        .args(["run", "--max-procs", &max.to_string()])
        .args(["--max-total-memory", "64G", CAPACITY_CASES, "admission"])
        .any_stdout()
        .any_stderr()
        .check();
    assert_eq!(admitted(&out.stdout), max as usize - 1);
}

/// All guests' memory together: a fork whose module's memory does not
/// fit is refused before it starts (one line naming the flag), not
/// trapped at its instantiation.
#[test]
fn forks_past_the_total_memory_fail_before_they_start() {
    let out = Test::new()
        .args(["run", "--max-procs", "100000", "--max-total-memory", "12M"])
        .args([CAPACITY_CASES, "admission"])
        .any_stdout()
        .stderr_contains("fork refused (EAGAIN): all guests together have ")
        .stderr_contains("the host's `--max-total-memory` of 12M: raise it for more")
        .check();
    // Each of them starts with 1 MiB and more (the guest's stack): fewer
    // than 12 fit, and the refusal came before any ran short.
    let n = admitted(&out.stdout);
    assert!((5..12).contains(&n), "{n}");
    assert!(!out.stderr.contains("was refused memory"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("fork refused").count(),
        1,
        "{}",
        out.stderr
    );
}

/// A hostile guest cannot grow a table of host memory without bound: on
/// demand no pool caps it, so the host does (`MAX_TABLE_ELEMENTS`).
#[test]
fn a_table_grows_only_so_far_in_either_mode() {
    let path = wat_file(
        "table-grow",
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (table $t 1 funcref)
            (func (export "_start")
                ;; A small grow is fine (else exit 3)...
                (if (i32.eq (table.grow $t (ref.null func) (i32.const 100)) (i32.const -1))
                    (then (call $exit (i32.const 3))))
                ;; ...1,000,000 elements (8 MB of host memory) is refused: exit 7.
                (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1))
                    (then (call $exit (i32.const 7))))
                (call $exit (i32.const 0))))"#,
    );
    // 5,000 is on demand and fits the kernel's default mappings (no
    // start-up warning on any machine).
    for max_procs in ["16", "5000"] {
        Test::new()
            .args(["run", "--max-procs", max_procs, &path])
            .status(7)
            .check();
    }
}

/// A `--max-procs` far past the pool costs nothing up front: the host
/// reserves nothing for it, and runs a guest as usual.
#[test]
fn a_huge_max_procs_reserves_nothing() {
    Test::new()
        .args([
            "run",
            "--max-procs",
            "4000000",
            test_programs_artifacts::HELLO,
        ])
        .stdout("Hello, world!\n")
        .any_stderr()
        .check();
}
