//! A forked child whose behaviour argv[1] picks:
//! - `echo`: sends every message back until the parent disconnects
//! - `hello`: sends `"hello"` and exits 0 (no listener: does not wait)
//! - `exit N`: exits with code N at once
//! - `spin`: busy-loops forever, never calling the host
//! - `block`: blocks in `next-event` forever (ignores messages)
//! - `trap`: panics
//! - `sigterm`: handles SIGTERM by sending `"got SIGTERM"` and exiting 7
//! - `flood N`: sends 0..N as JSON numbers, then exits
//! - `slow`: takes one message per millisecond, sums them, sends the sum on disconnect
//! - `self-disconnect`: sends `"bye"`, disconnects, then exits
//! - `info`: sends `{pid, ppid, argv, env}` and exits
//! - `bomb`: forks `block` children until a fork fails, sends how many it
//!   got and the error, then blocks (its children stay alive)
use hive::process;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str).unwrap_or("echo") {
        "echo" => {
            process::on_message(|msg| {
                process::send(msg).unwrap();
            });
            hive::run();
        }
        "bomb" => {
            let me = &args[0];
            let mut children = Vec::new();
            let error = loop {
                match hive::fork(me, &["block"], hive::ForkOptions::default()) {
                    Ok(child) => children.push(child),
                    Err(e) => break e.to_string(),
                }
            };
            process::send(&format!("forked {} then {error}", children.len())).unwrap();
            while process::recv().is_some() {}
        }
        "hello" => {
            process::send("hello").unwrap();
        }
        "exit" => process::exit(args[2].parse().unwrap()),
        "spin" => {
            process::send("spinning").unwrap();
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "block" => {
            process::send("blocking").unwrap();
            loop {
                // Wait on the raw event queue, never returning to user code.
                let _ = process::recv();
            }
        }
        "trap" => panic!("child trapped on purpose"),
        "sigterm" => {
            process::on_signal("SIGTERM", |_| {
                process::send("got SIGTERM").unwrap();
                process::exit(7);
            })
            .unwrap();
            // The channel listener keeps the process alive (a signal
            // handler alone does not, as in Node).
            process::on_message(|_| {});
            process::send("ready").unwrap();
            hive::run();
        }
        "flood" => {
            let n: u64 = args[2].parse().unwrap();
            for i in 0..n {
                process::send(&i).unwrap();
            }
        }
        "slow" => {
            let mut sum: u64 = 0;
            let mut count: u64 = 0;
            while let Some(msg) = process::recv() {
                sum += msg.parse::<u64>().unwrap();
                count += 1;
                if count.is_multiple_of(1000) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            // The channel is closed now; report on stdout instead.
            println!("child received {count} messages, sum {sum}");
        }
        "self-disconnect" => {
            process::send("bye").unwrap();
            process::disconnect().unwrap();
            let again = process::disconnect();
            println!("child: second disconnect: {}", again.unwrap_err());
        }
        "info" => {
            let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            process::send(&serde_json::json!({
                "pid": process::pid(),
                "ppid": process::ppid(),
                "argv": process::argv(),
                "env": env,
            }))
            .unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
}
