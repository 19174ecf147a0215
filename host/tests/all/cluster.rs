//! Cluster: a primary forking itself as workers (`cluster_cases`), workers
//! that listen with plain `std::net` sharing one host-owned port, Node's
//! event order, and the four scheduling policies.

use crate::util::Test;
use test_programs_artifacts::*;

fn cluster(args: &[&str]) -> Test {
    Test::new()
        .args(["run", "--allow-net=127.0.0.1:*", CLUSTER_CASES])
        .args(args.iter().copied())
}

/// The lines of `out`, the `exit` lines sorted (workers end in any order).
fn sorted_exits(out: &str) -> String {
    let (mut exits, rest): (Vec<&str>, Vec<&str>) =
        out.lines().partition(|l| l.starts_with("exit "));
    exits.sort();
    rest.into_iter()
        .chain(exits)
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Node's order (node.md §3.4): setup, fork, online (worker, then
/// cluster), listening, then a graceful disconnect: disconnect, exit 0
/// with `exitedAfterDisconnect`. The worker's blocking accept loop ends
/// when it is disconnected, so it exits by itself.
#[test]
fn lifecycle_in_node_order() {
    cluster(&["lifecycle"])
        .stdout(
            "state WorkerState::None\n\
             setup policy=SchedulingPolicy::RoundRobin\n\
             fork 1\n\
             worker online\n\
             cluster online 1\n\
             worker listening 127.0.0.1 port>0=true\n\
             cluster listening 1 WorkerState::Listening\n\
             reply worker 1\n\
             workers after disconnect 0\n\
             worker disconnect\n\
             cluster disconnect 1 connected=false\n\
             worker exit Some(0) None\n\
             exit 1 0 null after-disconnect=Some(true) dead=true\n\
             state WorkerState::Dead\n",
        )
        .check();
}

fn distribution(policy: &str, counts: &str, periodic: bool, name: &str) {
    let out = cluster(&["distribution", policy, "3"]).any_stdout().check();
    assert_eq!(
        sorted_exits(&out.stdout),
        format!(
            "same port true\n\
             answered 9\n\
             counts {counts} periodic={periodic}\n\
             listeners 1 policy=SchedulingPolicy::{name} handed=9\n\
             all disconnected\n\
             exit 1 0 null after-disconnect=Some(true) dead=true\n\
             exit 2 0 null after-disconnect=Some(true) dead=true\n\
             exit 3 0 null after-disconnect=Some(true) dead=true\n"
        )
    );
}

/// Round-robin over 3 workers and 9 sequential requests: each worker 3,
/// in a fixed turn (Node's `132132132` is one such turn).
#[test]
fn round_robin_takes_turns() {
    distribution("rr", "[3, 3, 3]", true, "RoundRobin");
}

/// Least-connections: idle workers share sequential connections in turn.
#[test]
fn least_connections_balances() {
    distribution("least", "[3, 3, 3]", true, "LeastConnections");
}

/// Source-IP hash: one client address, one worker, every time.
#[test]
fn source_ip_hash_is_sticky() {
    distribution("hash", "[0, 0, 9]", true, "SourceIpHash");
}

/// Shared: the workers accept from one socket; all 9 are answered.
#[test]
fn shared_socket_answers_all() {
    let out = cluster(&["distribution", "none", "3"]).any_stdout().check();
    assert!(
        out.stdout.starts_with("same port true\nanswered 9\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("policy=SchedulingPolicy::Shared handed=9"),
        "{}",
        out.stdout
    );
}

#[test]
fn worker_exit_code() {
    cluster(&["exit-code"])
        .stdout("exit 1 7 null after-disconnect=Some(false) dead=true\n")
        .check();
}

#[test]
fn worker_killed() {
    cluster(&["kill"])
        .stdout("kill true\nexit 1 null SIGKILL after-disconnect=Some(false) dead=true\n")
        .check();
}

/// A port something else holds is `EADDRINUSE` for the worker, as in Node.
#[test]
fn port_in_use() {
    cluster(&["in-use"])
        .stdout(
            "message 1 {\"error\":\"EADDRINUSE\"}\n\
             exit 1 0 null after-disconnect=Some(false) dead=true\n",
        )
        .check();
}

/// Listening needs `--allow-net`: each worker's bind is denied (it
/// reports `EACCES` and exits), and the warning names the flag.
#[test]
fn listen_needs_allow_net() {
    let out = Test::new()
        .args(["run", CLUSTER_CASES, "disconnect-all"])
        .any_stdout()
        .stderr_contains("may not bind `127.0.0.1:0`: allow it with `--allow-net=127.0.0.1:*`")
        .check();
    assert_eq!(
        sorted_exits(&out.stdout),
        "exit 1 0 null after-disconnect=Some(false) dead=true\n\
         exit 2 0 null after-disconnect=Some(false) dead=true\n"
    );
}

#[test]
fn fork_env_reaches_the_worker() {
    cluster(&["env"])
        .stdout(
            "message 1 {\"greeting\":\"hello from the primary\"}\n\
             exit 1 0 null after-disconnect=Some(false) dead=true\n",
        )
        .check();
}

/// Messages both ways; the cluster's `message` listener before the worker's.
#[test]
fn messages_both_ways() {
    cluster(&["messages"])
        .stdout(
            "cluster message 1 {\"n\":1}\n\
             worker message {\"n\":1}\n\
             exit 1 0 null after-disconnect=Some(true) dead=true\n",
        )
        .check();
}

#[test]
fn disconnect_all_calls_back() {
    let out = cluster(&["disconnect-all"]).any_stdout().check();
    assert_eq!(
        sorted_exits(&out.stdout),
        "disconnect callback, workers 0\n\
         exit 1 0 null after-disconnect=Some(true) dead=true\n\
         exit 2 0 null after-disconnect=Some(true) dead=true\n"
    );
}
