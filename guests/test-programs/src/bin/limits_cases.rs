//! Per-process limits for `host/tests/all/limits.rs`: `limits_cases
//! <scenario>`. The primary forks this same module (`limits_cases child
//! <role>`) or spawns `sh`, with limits, and prints what it sees, in order:
//! `error <code>`, `exit <code> <signal>`, and a sibling's round trips done
//! while a child hits its limit (`sibling <n>`). Children are hostile on
//! purpose: they grab memory, spin, leak handles, or ask for more than
//! their parent has.

#[path = "../sibling.rs"]
mod sibling;

use hive::{ForkOptions, Limits, process};

fn main() {
    let argv = process::argv();
    let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
    if arg(1) == "child" {
        return child(&arg(2), &arg(3));
    }
    let me = arg(0);
    let limits = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        l
    };
    match arg(1).as_str() {
        // A child that allocates past its memory limit, beside a sibling
        // exchanging messages.
        "memory" => {
            sibling::start(&me);
            sibling::commit(move || {
                watched(fork(&me, "hog", limits(|l| l.max_memory = Some(4 << 20))))
            });
        }
        // A child in `loop {}` past its CPU time.
        "cpu" => {
            sibling::start(&me);
            sibling::commit(move || {
                watched(fork(&me, "spin", limits(|l| l.max_cpu_ms = Some(100))))
            });
        }
        // A child that leaks host resources (pollables) past its limit.
        "resources" => {
            sibling::start(&me);
            sibling::commit(move || {
                watched(fork(&me, "leak", limits(|l| l.max_resources = Some(500))))
            });
        }
        // Asking for more than this process has fails the fork; a child
        // without the option gets its parent's limit, and its own children
        // never more.
        "more" => {
            match hive::fork(
                &me,
                &["child", "nothing"],
                options(limits(|l| l.max_memory = Some(1 << 40))),
            ) {
                Ok(_) => println!("fork with 1T: started"),
                Err(e) => println!("fork with 1T: {e}"),
            }
            // The most a u64 holds, which no page rounding may wrap to 0.
            match hive::fork(
                &me,
                &["child", "nothing"],
                options(limits(|l| l.max_memory = Some(u64::MAX))),
            ) {
                Ok(_) => println!("fork with u64::MAX: started"),
                Err(e) => println!("fork with u64::MAX: {e}"),
            }
            watch(fork(
                &me,
                "narrow",
                limits(|l| l.max_memory = Some(8 << 20)),
            ));
        }
        // Zero means zero, not "unlimited": a share of no processes cannot
        // hold the child itself, and a child allowed no resources ends at
        // its first (its stdout), beside a sibling.
        "zero" => {
            let none = ForkOptions {
                max_procs: Some(0),
                ..Default::default()
            };
            match hive::fork(&me, &["child", "nothing"], none) {
                Ok(_) => println!("fork with max-procs 0: started"),
                Err(e) => println!("fork with max-procs 0: {e}"),
            }
            sibling::start(&me);
            watch(fork(&me, "hello", limits(|l| l.max_resources = Some(0))));
        }
        // `timeout-ms: 0` is no timeout (Node's), not an immediate kill.
        "timeout-zero" => {
            let o = ForkOptions {
                timeout_ms: Some(0),
                ..Default::default()
            };
            watch(hive::fork(&me, &["child", "nap"], o).expect("fork"));
        }
        // OS children: RLIMIT_CPU, RLIMIT_NOFILE, RLIMIT_AS.
        "os-cpu" => watch(spawn(
            "while :; do :; done",
            limits(|l| l.max_cpu_ms = Some(1000)),
        )),
        "os-files" => watch(spawn("ulimit -n", limits(|l| l.max_open_files = Some(20)))),
        // A forked Node child (argv[2] its script) gets them too.
        "node-files" => {
            let options = options(limits(|l| l.max_open_files = Some(100)));
            watch(hive::fork(&arg(2), &["limits"], options).expect("fork"));
        }
        // The same limits through `exec` and `exec-sync`.
        "os-files-exec" => {
            let sync = hive::os::SyncOptions {
                limits: limits(|l| l.max_open_files = Some(30)),
                ..Default::default()
            };
            match hive::os::exec_sync("ulimit -n", sync).expect("exec-sync") {
                Ok(out) => print!("exec-sync {}", String::from_utf8_lossy(&out)),
                Err(e) => println!("exec-sync failed: {e:?}"),
            }
            let options = hive::os::ExecOptions {
                limits: limits(|l| l.max_open_files = Some(20)),
                ..Default::default()
            };
            let child = hive::os::exec("ulimit -n", options).expect("exec");
            child.on_output(|error, stdout, _| {
                print!("exec {}", String::from_utf8_lossy(&stdout));
                println!("error {:?}", error.map(|e| e.code));
            });
        }
        // More open files than the host itself may have: refused, though
        // no limit of this process's own was set (the host's is the bound).
        "os-files-over-host" => {
            let asked = hive::os::SpawnOptions {
                limits: limits(|l| l.max_open_files = Some(u64::MAX / 2)),
                ..Default::default()
            };
            match hive::os::spawn("sh", &["-c", "ulimit -n"], asked) {
                Ok(_) => println!("spawn with more files than the host: started"),
                Err(e) => println!("spawn with more files than the host: {e}"),
            }
            return;
        }
        "os-memory" => watch(spawn(
            "ulimit -v",
            limits(|l| l.max_address_space = Some(256 << 20)),
        )),
        other => panic!("unknown scenario {other:?}"),
    }
    hive::run();
}

fn options(limits: Limits) -> ForkOptions {
    ForkOptions {
        limits,
        ..Default::default()
    }
}

fn fork(me: &str, role: &str, limits: Limits) -> hive::Child {
    hive::fork(me, &["child", role], options(limits)).expect("fork")
}

fn spawn(script: &str, limits: Limits) -> hive::Child {
    let child = hive::os::spawn(
        "sh",
        &["-c", script],
        hive::os::SpawnOptions {
            limits,
            ..Default::default()
        },
    )
    .expect("spawn");
    child.on_stdout(|out| print!("stdout {}", String::from_utf8_lossy(out)));
    child
}

/// Prints the child's messages, `error`s and how it ended, at `close`
/// (an OS child's output may come after its `exit`).
fn watch(child: hive::Child) {
    watched(child);
}

/// [`watch`], handing the child back.
fn watched(child: hive::Child) -> hive::Child {
    child.on_message(|m| println!("{}", m.text()));
    sibling::print_end(&child);
    child
}

fn child(role: &str, arg: &str) {
    let _ = arg;
    match role {
        "echo" => sibling::echo(),
        "pinger" => sibling::pinger(),
        "hog" => {
            // Touch every page, so the grow is real.
            let mut chunks = Vec::new();
            for _ in 0..64 {
                chunks.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
            println!("hog: got {} MiB", chunks.len());
        }
        "spin" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "leak" => {
            for _ in 0..100_000 {
                std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(1));
            }
            println!("leak: held 100000");
        }
        "narrow" => {
            // Its own limit is 8M: more for a grandchild fails, none gives
            // the grandchild 8M, in which 16M does not fit.
            let me = process::argv()[0].clone();
            let o = options(Limits {
                max_memory: Some(16 << 20),
                ..Default::default()
            });
            let tried = match hive::fork(&me, &["child", "nothing"], o) {
                Ok(_) => "started".to_owned(),
                Err(e) => e.to_string(),
            };
            process::send(&format!("grandchild with 16M: {tried}")).unwrap();
            let grandchild =
                hive::fork(&me, &["child", "grow16"], ForkOptions::default()).expect("fork");
            grandchild.on_error(|e| {
                process::send(&format!("grandchild error {}", e.code)).unwrap();
            });
            grandchild.on_exit(|_, signal| {
                process::send(&format!("grandchild exit {}", signal.unwrap_or_default())).unwrap();
            });
            hive::run();
        }
        "grow16" => {
            // black_box: unused, the allocation would be optimized away.
            let v = std::hint::black_box(vec![1u8; 16 << 20]);
            println!("grow16: got {}", v.len());
        }
        "nap" => {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        "nothing" => {}
        "hello" => println!("hello: printed with no resources"),
        other => panic!("unknown role {other:?}"),
    }
}
