//! OS-child cases for the host's integration tests; argv[1] picks one.
//! - `echo`: spawns `echo hi`, prints what it wrote
//! - `denied`: tries to spawn `echo`, prints the error
//! - `fork-spawn`: forks itself with `echo`: the child inherits the permission
//! - `leave-running`: spawns `sleep 30` (and, with argv[2] = `stubborn`, one
//!   that ignores SIGTERM), prints their pids, exits at once
//! - `detached`: spawns a detached `sleep 30`, prints its pid, exits
//! - `reap`: spawns 50 `true`, waits for all, prints `reaped`, then blocks on
//!   stdin so the test can look for zombies
//! - `os-to-wasm`: `echo hello` piped into a forked wasm child (upper-cases)
//! - `wasm-to-os`: a forked wasm child's stdout piped into `wc -c`
//! - `bad-args`: invalid spawn arguments, and a missing program
//! - `tree N [handle] [stubborn]`: spawns N children — every other one a
//!   shell with two grandchildren (`stubborn`: ones that ignore SIGTERM) —
//!   prints `ready PID...`, then runs until signalled; with `handle` a
//!   SIGTERM prints `got SIGTERM` and exits 7
//! - `realtime`: a child that kills itself with real-time signal 36
//! - `spawn-until-refused`: spawns `sleep 30` until a spawn fails, prints
//!   how many started and the error
//! - `yes-maxbuffer`: `exec("yes")` asking for `max-buffer = u64::MAX`;
//!   prints the error and how much output was kept
//! - `stream-wakes`: a child writes `a`, then `b` a second later, then
//!   exits a second after that; prints each chunk and the exit with the
//!   seconds since the one before, rounded (the loop wakes for output as
//!   it comes, as Node's)
//! - `run PROG PATH ARGS...`: `execFile(PROG, ARGS)` with the child's
//!   `PATH` set to PATH; prints its stdout or the error
use hive::{ExecOptions, ForkOptions, SpawnOptions, fork, spawn};

fn me() -> String {
    std::env::args().next().unwrap()
}

fn sibling(name: &str) -> String {
    let me = me();
    format!("{}/{name}", &me[..me.rfind('/').unwrap()])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args[1].as_str() {
        "stream-wakes" => {
            // Node's default stdio: pipes.
            let script = "echo a; sleep 1; echo b; sleep 1";
            let child = spawn("sh", &["-c", script], SpawnOptions::default()).unwrap();
            // Seconds since the previous event, rounded: robust to a slow
            // spawn, and still 2 for `b` if it only came with the exit.
            let last = std::rc::Rc::new(std::cell::Cell::new(None::<std::time::Instant>));
            let gap = move || {
                let now = std::time::Instant::now();
                let secs = last
                    .get()
                    .map_or(0, |t| (now - t).as_secs_f64().round() as u64);
                last.set(Some(now));
                secs
            };
            let gap = std::rc::Rc::new(gap);
            let g = gap.clone();
            child.on_stdout(move |data| {
                println!("{} after {}s", text(data).trim(), g());
            });
            child.on_exit(move |code, _| println!("exit {code:?} after {}s", gap()));
            hive::run();
        }
        "echo" => {
            let child = hive::exec_file("echo", &["hi"], ExecOptions::default()).expect("execFile");
            let out = child.output().unwrap();
            print!("echo said: {}", text(&out.stdout));
        }
        "run" => {
            let options = ExecOptions {
                env: Some(vec![("PATH".into(), args[3].clone())]),
                ..Default::default()
            };
            let rest: Vec<&str> = args[4..].iter().map(String::as_str).collect();
            match hive::exec_file(&args[2], &rest, options) {
                Ok(child) => {
                    let out = child.output().unwrap();
                    print!("stdout: {}", text(&out.stdout));
                }
                Err(e) => println!("spawn failed: {e}"),
            }
        }
        "tree" => {
            let n: usize = args[2].parse().unwrap();
            let stubborn = args.iter().any(|a| a == "stubborn");
            let grandchildren = if stubborn {
                "trap '' TERM; sleep 30 & sleep 30 & wait"
            } else {
                "sleep 30 & sleep 30 & wait"
            };
            let opts = || SpawnOptions {
                stdio: [hive::Stdio::Ignore; 3],
                ..Default::default()
            };
            let mut pids = Vec::new();
            let mut children = Vec::new();
            for i in 0..n {
                let child = if i % 2 == 0 {
                    spawn("sleep", &["30"], opts()).unwrap()
                } else {
                    spawn("sh", &["-c", grandchildren], opts()).unwrap()
                };
                pids.push(child.pid().unwrap().to_string());
                children.push(child);
            }
            if args.iter().any(|a| a == "handle") {
                hive::process::on_signal("SIGTERM", |_| {
                    println!("got SIGTERM");
                    hive::process::exit(7);
                })
                .unwrap();
            }
            // Let the shells start their grandchildren.
            std::thread::sleep(std::time::Duration::from_millis(300));
            println!("ready {}", pids.join(" "));
            hive::run();
        }
        "realtime" => {
            let child = spawn("sh", &["-c", "kill -36 $$"], SpawnOptions::default()).unwrap();
            let (code, signal) = hive::status_fields(&child.wait());
            println!("code {code} signal {signal}");
        }
        "spawn-until-refused" => {
            let mut sleepers = Vec::new();
            let error = loop {
                match spawn("sleep", &["30"], SpawnOptions::default()) {
                    Ok(child) => sleepers.push(child),
                    Err(e) => break e.to_string(),
                }
                assert!(sleepers.len() < 100, "no limit on OS children");
            };
            println!("spawned {} then {error}", sleepers.len());
            // The sync forms count too.
            match hive::spawn_sync("true", &[], hive::SyncOptions::default()) {
                Ok(_) => println!("spawnSync ran"),
                Err(e) => println!("spawnSync: {e}"),
            }
            for s in &sleepers {
                s.kill("SIGKILL").unwrap();
            }
        }
        "yes-maxbuffer" => {
            let options = ExecOptions {
                max_buffer: Some(u64::MAX),
                ..Default::default()
            };
            let child = hive::exec("yes", options).unwrap();
            let out = child.output().unwrap();
            let code = out
                .error
                .as_ref()
                .and_then(|e| e.error_code.clone())
                .unwrap_or_default();
            println!("{code} after {} bytes", out.stdout.len());
        }
        "denied" => match spawn("echo", &["hi"], SpawnOptions::default()) {
            Ok(_) => println!("spawn allowed"),
            Err(e) => println!("spawn failed: {e}"),
        },
        "fork-spawn" => {
            let child = fork(&me(), &["echo"], ForkOptions::default()).unwrap();
            child.wait();
        }
        "leave-running" => {
            let sleeper = spawn("sleep", &["30"], SpawnOptions::default()).unwrap();
            println!("{}", sleeper.pid().unwrap());
            if args.get(2).map(String::as_str) == Some("stubborn") {
                let opts = SpawnOptions {
                    shell: Some("/bin/sh".into()),
                    ..Default::default()
                };
                let stubborn = spawn("trap '' TERM; sleep 30", &[], opts).unwrap();
                println!("{}", stubborn.pid().unwrap());
            }
            // Let both start before the root ends.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        "detached" => {
            let opts = SpawnOptions {
                detached: true,
                stdio: [hive::Stdio::Ignore; 3],
                ..Default::default()
            };
            let child = spawn("sleep", &["30"], opts).unwrap();
            println!("{}", child.pid().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        "reap" => {
            let children: Vec<_> = (0..50)
                .map(|_| spawn("true", &[], SpawnOptions::default()).unwrap())
                .collect();
            for child in &children {
                child.wait();
            }
            println!("reaped");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "os-to-wasm" => {
            let echo = spawn("echo", &["hello"], SpawnOptions::default()).unwrap();
            let upper = fork(
                &sibling("cli_stdin_echo.wasm"),
                &[],
                ForkOptions {
                    silent: true,
                    ..Default::default()
                },
            )
            .unwrap();
            hive::pipe(echo.stdout().unwrap(), upper.stdin().unwrap());
            let out = hive::io::read_to_end(&upper.stdout().unwrap());
            upper.wait();
            print!("wasm child said: {}", text(&out));
        }
        "wasm-to-os" => {
            let hello = fork(
                &sibling("cli_hello.wasm"),
                &[],
                ForkOptions {
                    silent: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let wc = spawn("wc", &["-c"], SpawnOptions::default()).unwrap();
            hive::pipe(hello.stdout().unwrap(), wc.stdin().unwrap());
            let out = hive::io::read_to_end(&wc.stdout().unwrap());
            wc.wait();
            print!("wc counted: {}", text(&out).trim_start());
        }
        "bad-args" => {
            let show = |what: &str, r: Result<hive::Child, hive::Error>| match r {
                Ok(_) => println!("{what}: started"),
                Err(e) => println!("{what}: {e}"),
            };
            show("empty", spawn("", &[], SpawnOptions::default()));
            show("nul", spawn("ec\0ho", &[], SpawnOptions::default()));
            show("nul arg", spawn("echo", &["a\0b"], SpawnOptions::default()));
            let env = SpawnOptions {
                env: Some(vec![("A=B".into(), "1".into())]),
                ..Default::default()
            };
            show("bad env", spawn("echo", &[], env));
            let cwd = SpawnOptions {
                cwd: Some("/etc/hostname".into()),
                ..Default::default()
            };
            show("file cwd", spawn("ls", &[], cwd));
            let signal = SpawnOptions {
                kill_signal: Some("SIGNOPE".into()),
                ..Default::default()
            };
            show("kill signal", spawn("echo", &[], signal));
            let missing = spawn("hive-no-such-program", &["x"], SpawnOptions::default()).unwrap();
            println!("missing pid: {:?}", missing.pid());
            while let Some(event) = missing.next_event() {
                match event {
                    hive::ChildEvent::Error(e) => println!(
                        "error {} {:?} {:?} {:?} {:?}",
                        e.code, e.errno, e.syscall, e.path, e.spawnargs
                    ),
                    hive::ChildEvent::Close(s) => println!("close {:?} {:?}", s.code, s.signal),
                    other => println!("{other:?}"),
                }
            }
        }
        other => panic!("unknown case {other}"),
    }
}
