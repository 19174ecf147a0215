//! `hive::supervisor` for `host/tests/all/supervisor.rs`:
//! `supervisor_cases <scenario>` supervises forks of this same module
//! (`supervisor_cases child <role>`) or `sh`, and prints each restart
//! (`restart <id> (<restarts>)`, the count `process.subtree` reports) and
//! the end (`give up ...`).

use hive::process;
use hive::supervisor::{ChildSpec, Restart, RestartPolicy, Supervisor};
use std::time::Duration;

fn main() {
    let argv = process::argv();
    let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
    if arg(1) == "child" {
        return child(&arg(2));
    }
    let me = arg(0);
    let policy = |max_restarts| RestartPolicy {
        max_restarts,
        window: Duration::from_secs(10),
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    };
    let (supervisor, watched) = match arg(1).as_str() {
        // A child that crashes over and over beside one that does not:
        // only the crasher is restarted, until the intensity is spent.
        "one-for-one" => (
            Supervisor::one_for_one()
                .policy(policy(3))
                .child(ChildSpec::fork("crasher", &me, &["child", "crash"]))
                .child(ChildSpec::fork("steady", &me, &["child", "idle"]))
                .start(),
            "steady",
        ),
        // The same under one-for-all: the steady child is restarted too.
        "one-for-all" => (
            Supervisor::one_for_all()
                .policy(policy(2))
                .child(ChildSpec::fork("crasher", &me, &["child", "crash"]))
                .child(ChildSpec::fork("steady", &me, &["child", "idle"]))
                .start(),
            "steady",
        ),
        // OS children: a transient one that fails is restarted, one that
        // exits 0 is not.
        "transient" => (
            Supervisor::one_for_one()
                .policy(policy(2))
                .child(
                    ChildSpec::spawn("fails", "sh", &["-c", "sleep 0.02; exit 3"])
                        .restart(Restart::Transient),
                )
                .child(ChildSpec::spawn("ok", "sh", &["-c", "exit 0"]).restart(Restart::Transient))
                .start(),
            "ok",
        ),
        "monitor" | "link" | "link-trapped" | "strangers" | "subtree" | "monitor-flood" => {
            return watch(&me, &arg(1));
        }
        other => panic!("unknown scenario {other:?}"),
    };
    let first = supervisor.child(watched).and_then(|c| c.pid());
    // Each restart, with the count the host keeps (what `host ps` shows).
    let s = supervisor.clone();
    supervisor.on_restart(move |id| {
        let pid = s.child(id).and_then(|c| c.pid());
        let restarts = process::subtree()
            .into_iter()
            .find(|p| Some(p.pid) == pid)
            .map_or("?".to_owned(), |p| p.restarts.to_string());
        println!("restart {id} ({restarts})");
    });
    let s = supervisor.clone();
    let name = watched.to_owned();
    supervisor.on_give_up(move || {
        let now = s.child(&name).and_then(|c| c.pid());
        println!(
            "give up after {} restarts; {name} the same={}",
            s.restarts(),
            now.is_some() && now == first
        );
    });
    hive::run();
}

/// Monitors and links (`process.monitor`, `process.link`).
fn watch(me: &str, scenario: &str) {
    let fork = |role: &str| hive::fork(me, &["child", role], hive::ForkOptions::default()).unwrap();
    match scenario {
        // A grandchild, monitored through the pid its parent reports; a
        // monitor cancelled before its process ends says nothing.
        "monitor" => {
            let middle = fork("middle");
            let cancelled = fork("idle");
            let id = process::monitor(cancelled.pid().unwrap()).unwrap();
            process::demonitor(id);
            middle.on_message(move |m| {
                let pid: u32 = m.text().parse().unwrap();
                let id = process::monitor(pid).unwrap();
                process::on_down(move |monitor, down_pid, code, signal| {
                    println!(
                        "down: same monitor={} same pid={} code={code:?} signal={signal:?}",
                        monitor == id,
                        down_pid == pid
                    );
                });
            });
            let c = cancelled.clone();
            hive::set_timeout(300, move || {
                c.kill("SIGTERM").unwrap();
            });
            middle.on_close(|_, _| println!("middle closed"));
        }
        // What this process sees of its tree: itself, a child, a grandchild.
        "subtree" => {
            let middle = fork("middle-idle");
            middle.on_message(move |_| {
                let tree = process::subtree();
                let me = process::pid();
                let shape: Vec<String> = tree
                    .iter()
                    .map(|p| {
                        let parent = match p.ppid {
                            _ if p.pid == me => "root",
                            ppid if ppid == me => "me",
                            _ => "child",
                        };
                        format!("{}(parent {parent})", if p.os { "os" } else { "wasm" })
                    })
                    .collect();
                // A grandchild may not have its memory yet: only ours counts.
                println!(
                    "{}; my memory > 0: {}",
                    shape.join(" "),
                    tree[0].memory.is_some_and(|m| m > 0)
                );
                process::exit(0);
            });
        }
        // A hostile guest monitors one child over and over: past 10,000 the
        // host refuses (each monitor is an entry in the child's list).
        "monitor-flood" => {
            let child = fork("idle");
            let pid = child.pid().unwrap();
            let granted = (0..10_001)
                .take_while(|_| process::monitor(pid).is_ok())
                .count();
            println!(
                "monitors granted {granted}, then {:?}",
                process::monitor(pid).map_err(|e| e.to_string())
            );
            child.kill("SIGTERM").unwrap();
        }
        // Processes outside the subtree cannot be watched.
        "strangers" => {
            for (who, pid) in [
                ("itself", process::pid()),
                ("its parent", process::ppid()),
                ("nobody", 12345),
            ] {
                let m = process::monitor(pid).map(|_| ()).map_err(|e| e.to_string());
                let l = process::link(pid).map_err(|e| e.to_string());
                println!("{who}: monitor {m:?}, link {l:?}");
            }
        }
        // Linked to a child that crashes: this process gets SIGTERM and
        // ends with it (a child of the root shows how it ended).
        "link" => {
            let linked = fork("linker");
            linked.on_close(|code, signal| println!("linker ended: {code:?} {signal:?}"));
        }
        // The same with SIGTERM handled: Erlang's trap_exit.
        "link-trapped" => {
            process::on_signal("SIGTERM", |name| {
                println!("trapped {name}");
                process::exit(0);
            })
            .unwrap();
            let crasher = fork("crash");
            process::link(crasher.pid().unwrap()).unwrap();
        }
        _ => unreachable!(),
    }
    hive::run();
}

fn child(role: &str) {
    match role {
        "middle" => {
            let me = process::argv()[0].clone();
            let grandchild =
                hive::fork(&me, &["child", "crash"], hive::ForkOptions::default()).unwrap();
            process::send(&grandchild.pid().unwrap().to_string()).unwrap();
            hive::run();
        }
        "middle-idle" => {
            let me = process::argv()[0].clone();
            let _grandchild =
                hive::fork(&me, &["child", "idle"], hive::ForkOptions::default()).unwrap();
            process::send("forked").unwrap();
            hive::run();
        }
        "linker" => {
            let me = process::argv()[0].clone();
            let crasher =
                hive::fork(&me, &["child", "crash"], hive::ForkOptions::default()).unwrap();
            process::link(crasher.pid().unwrap()).unwrap();
            hive::run();
        }
        "crash" => {
            std::thread::sleep(Duration::from_millis(20));
            process::exit(1);
        }
        "idle" => {
            hive::set_interval(60_000, || {});
            hive::run();
        }
        other => panic!("unknown role {other:?}"),
    }
}
