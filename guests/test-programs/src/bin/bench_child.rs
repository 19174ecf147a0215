//! The child side of `bench_parent`: argv[1] picks the role.
//! - `ready`: sends `"ready"` at once, then exits when disconnected
//! - `echo`: sends every message straight back
//! - `sink`: counts messages until disconnect, then prints the count
//! - `idle`: sends `"ready"` and blocks until disconnected
//! - `exit`: exits at once
//! - `burst M`: sends M messages, then exits
//! - `spin`: computes forever (`loop {}`), until killed
use hive::process;

fn main() {
    match std::env::args().nth(1).as_deref().unwrap_or("echo") {
        "ready" | "idle" => {
            process::send("ready").unwrap();
            while process::recv().is_some() {}
        }
        "echo" => {
            while let Some(msg) = process::recv() {
                process::send(msg).unwrap();
            }
        }
        "exit" => {}
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "burst" => {
            let m: u64 = std::env::args().nth(2).unwrap().parse().unwrap();
            for i in 0..m {
                process::send(&i).unwrap();
            }
        }
        "sink" => {
            let mut n = 0u64;
            while process::recv().is_some() {
                n += 1;
            }
            assert!(n > 0);
        }
        other => panic!("unknown role {other}"),
    }
}
