//! The capacity tests' guest (`host/tests/all/capacity.rs`): `capacity_cases
//! admission` forks echo children of itself until a fork fails, prints how
//! many and why (`forked N then EAGAIN`), checks that every child it has
//! still answers, then ends one and forks again in its place. Whatever
//! limit the host is run with (`--max-procs`, `--max-total-memory`, the
//! kernel's mappings) is where the forks stop; nothing already running
//! notices.
use hive::{ForkOptions, fork, process};

/// Past this many children without a refusal, the limit did not hold.
const TOO_MANY: usize = 20_000;

fn main() {
    let argv = process::argv();
    match argv.get(1).map(String::as_str) {
        Some("echo") => {
            while let Some(m) = process::recv() {
                process::send(m).unwrap();
            }
        }
        Some("admission") => admission(&argv[0]),
        other => panic!("unknown scenario {other:?}"),
    }
}

fn admission(me: &str) {
    let mut children = Vec::new();
    let refused = loop {
        match fork(me, &["echo"], ForkOptions::default()) {
            Ok(child) => children.push(child),
            Err(e) => break e,
        }
        assert!(children.len() < TOO_MANY, "no limit stopped the forks");
    };
    println!("forked {} then {refused}", children.len());
    for (i, child) in children.iter().enumerate() {
        child.send(&i.to_string()).unwrap();
    }
    let answered = children
        .iter()
        .enumerate()
        .filter(|(i, child)| child.recv().map(|m| m.text()) == Some(i.to_string()))
        .count();
    println!("{answered} of {} answered", children.len());
    // One ends; its place is free again.
    let last = children.pop().unwrap();
    last.disconnect().unwrap();
    last.wait();
    let again = fork(me, &["echo"], ForkOptions::default()).expect("fork after one ended");
    again.send("again").unwrap();
    println!("forked {}", again.recv().unwrap().text());
}
