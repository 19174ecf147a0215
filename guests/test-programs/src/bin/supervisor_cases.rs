//! `hive::supervisor` for `host/tests/all/supervisor.rs`:
//! `supervisor_cases <scenario>` supervises forks of this same module
//! (`supervisor_cases child <role>`) or `sh`, and prints each restart
//! (`restart <id>`) and the end (`give up ...`).

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
        other => panic!("unknown scenario {other:?}"),
    };
    let first = supervisor.child(watched).and_then(|c| c.pid());
    supervisor.on_restart(|id| println!("restart {id}"));
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

fn child(role: &str) {
    match role {
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
