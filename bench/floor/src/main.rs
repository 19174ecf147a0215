//! `spawn-floor N`: N sequential spawns of `/bin/true` with Rust's std
//! (posix_spawn on Linux), stdio piped and read to the end as Hive's and
//! Node's `spawn` → `close` do: the floor Hive's spawn is compared with.
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(300, |a| a.parse().expect("N"));
    let run = || {
        let out = Command::new("/bin/true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("spawn /bin/true");
        assert!(out.status.success());
    };
    run();
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "spawn_floor median_us={:.1} p99_us={:.1}",
        at(0.5),
        at(0.99)
    );
}
