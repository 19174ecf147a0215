//! Fork and messaging micro-benchmarks, measured inside the guest.
//! `bench_parent <fork|rtt|throughput|idle> [N] [SIZE]`; prints one line
//! `name median_us=.. p99_us=..` or `name msgs_per_s=..`.
use hive::{ForkOptions, Message, fork};
use std::time::Instant;

fn child_path() -> String {
    let me = std::env::args().next().unwrap();
    match me.rfind('/') {
        Some(i) => format!("{}/bench_child.wasm", &me[..i]),
        None => "bench_child.wasm".into(),
    }
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("fork");
    let n: usize = args.get(2).map_or(1000, |a| a.parse().unwrap());
    let size: usize = args.get(3).map_or(16, |a| a.parse().unwrap());
    let path = child_path();
    match what {
        "fork" => {
            // Warm the module cache first: the first fork compiles or loads.
            let warm = fork(&path, &["ready"], ForkOptions::default()).unwrap();
            warm.recv();
            warm.disconnect().unwrap();
            warm.wait();
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                let child = fork(&path, &["ready"], ForkOptions::default()).unwrap();
                child.recv().unwrap();
                samples.push(start.elapsed().as_secs_f64() * 1e6);
                child.disconnect().unwrap();
                child.wait();
            }
            let (median, p99) = percentiles(samples);
            println!("fork_first_message median_us={median:.1} p99_us={p99:.1}");
        }
        "forkexit" => {
            let warm = fork(&path, &["exit"], ForkOptions::default()).unwrap();
            warm.wait();
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                let child = fork(&path, &["exit"], ForkOptions::default()).unwrap();
                while let Some(event) = child.next_event() {
                    if matches!(event, hive::ChildEvent::Exit(_)) {
                        break;
                    }
                }
                samples.push(start.elapsed().as_secs_f64() * 1e6);
                child.wait();
            }
            let (median, p99) = percentiles(samples);
            println!("fork_exit median_us={median:.1} p99_us={p99:.1}");
        }
        "parallel" => {
            let warm = fork(&path, &["exit"], ForkOptions::default()).unwrap();
            warm.wait();
            let start = Instant::now();
            let children: Vec<_> = (0..n)
                .map(|_| fork(&path, &["ready"], ForkOptions::default()).unwrap())
                .collect();
            for child in &children {
                child.recv().unwrap();
            }
            let total = start.elapsed().as_secs_f64() * 1e3;
            println!("parallel_forks_{n} total_ms={total:.2}");
            for child in &children {
                child.disconnect().unwrap();
            }
            for child in &children {
                child.wait();
            }
        }
        "rtt" => {
            let child = fork(&path, &["echo"], ForkOptions::default()).unwrap();
            let payload = Message::Bytes(vec![7u8; size]);
            child.send(payload.clone()).unwrap();
            child.recv().unwrap();
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                child.send(payload.clone()).unwrap();
                child.recv().unwrap();
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
            child.disconnect().unwrap();
            child.wait();
            let (median, p99) = percentiles(samples);
            println!("round_trip_{size}B median_us={median:.2} p99_us={p99:.2}");
        }
        "throughput" => {
            let child = fork(&path, &["sink"], ForkOptions::default()).unwrap();
            let payload = Message::Bytes(vec![7u8; size]);
            let start = Instant::now();
            for _ in 0..n {
                child.send(payload.clone()).unwrap();
            }
            child.disconnect().unwrap();
            child.wait();
            let secs = start.elapsed().as_secs_f64();
            println!(
                "one_way_{size}B msgs_per_s={:.0} MB_per_s={:.1}",
                n as f64 / secs,
                (n * size) as f64 / secs / 1e6
            );
        }
        "idle" => {
            let children: Vec<_> = (0..n)
                .map(|_| fork(&path, &["idle"], ForkOptions::default()).unwrap())
                .collect();
            for child in &children {
                child.recv().unwrap();
            }
            println!("idle {n} ready");
            // Hold them until stdin closes, so the harness can read our RSS.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        other => panic!("unknown benchmark {other}"),
    }
}
