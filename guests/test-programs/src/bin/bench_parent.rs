//! Fork and messaging micro-benchmarks, measured inside the guest.
//! `bench_parent <fork|rtt|throughput|idle|population|cycles|hostcall|...> [N] [SIZE]`; prints one line
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

/// Runs `f` `n` times; the microseconds each took.
fn time_each(n: usize, f: impl Fn()) -> Vec<f64> {
    time_then(n, f, |()| {})
}

/// Runs `timed` then (untimed) `after` on its result, `n` times; the
/// microseconds each `timed` took.
fn time_then<T>(n: usize, timed: impl Fn() -> T, after: impl Fn(T)) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            let value = timed();
            let us = start.elapsed().as_secs_f64() * 1e6;
            after(value);
            us
        })
        .collect()
}

/// Fork -> first message of `path ready`, `n` times (each child ended
/// before the next, untimed): the median and p99 in microseconds.
fn fork_to_first_message(path: &str, n: usize) -> (f64, f64) {
    let samples = time_then(
        n,
        || {
            let child = fork(path, &["ready"], ForkOptions::default()).unwrap();
            child.recv().unwrap();
            child
        },
        |child| {
            child.disconnect().unwrap();
            child.wait();
        },
    );
    percentiles(samples)
}

/// Writes `total` bytes to `sink` while reading `source`; returns bytes read.
fn pump_through(
    sink: hive::io::OutputStream,
    source: &hive::io::InputStream,
    total: usize,
) -> usize {
    use hive::io::StreamError;
    let chunk = vec![7u8; 64 * 1024];
    let (mut written, mut read) = (0usize, 0usize);
    let mut sink = Some(sink);
    let source_ready = source.subscribe();
    while read < total {
        let mut progressed = false;
        if let Some(s) = &sink {
            let room = s.check_write().unwrap_or(0) as usize;
            if room > 0 {
                let k = room.min(chunk.len()).min(total - written);
                s.write(&chunk[..k]).unwrap();
                written += k;
                progressed = true;
            }
            if written == total {
                let s = sink.take().unwrap();
                let _ = s.blocking_flush();
                drop(s); // end-of-file for cat
            }
        }
        match source.read(1 << 20) {
            Ok(bytes) => {
                progressed |= !bytes.is_empty();
                read += bytes.len();
            }
            Err(StreamError::Closed) => break,
            Err(e) => panic!("read failed: {e:?}"),
        }
        if !progressed {
            match &sink {
                Some(s) => {
                    let sink_ready = s.subscribe();
                    hive::io::poll(&[&source_ready, &sink_ready]);
                }
                None => source_ready.block(),
            }
        }
    }
    read
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("fork");
    let n: usize = args.get(2).map_or(1000, |a| a.parse().unwrap());
    let size: usize = args.get(3).map_or(16, |a| a.parse().unwrap());
    // `rtt` and `throughput` take the child as argv[4] (default
    // bench_child.wasm beside this module; `…/child.js` is a Node child)
    // and its channel's serialization as argv[5] (`json`, `advanced`).
    let path = child_path();
    let peer = args.get(4).cloned().unwrap_or_else(child_path);
    let serialization = match args.get(5).map(String::as_str) {
        Some("advanced") => hive::Serialization::Advanced,
        _ => hive::Serialization::Json,
    };
    let with = |serialization| ForkOptions {
        serialization,
        ..ForkOptions::default()
    };
    match what {
        "fork" => {
            // Warm the module cache first: the first fork compiles or loads.
            let warm = fork(&path, &["ready"], ForkOptions::default()).unwrap();
            warm.recv();
            warm.disconnect().unwrap();
            warm.wait();
            let (median, p99) = fork_to_first_message(&path, n);
            println!("fork_first_message median_us={median:.1} p99_us={p99:.1}");
        }
        "forkexit" => {
            let warm = fork(&path, &["exit"], ForkOptions::default()).unwrap();
            warm.wait();
            let samples = time_then(
                n,
                || {
                    let child = fork(&path, &["exit"], ForkOptions::default()).unwrap();
                    while let Some(event) = child.next_event() {
                        if matches!(event, hive::ChildEvent::Exit(_)) {
                            break;
                        }
                    }
                    child
                },
                |child| {
                    child.wait();
                },
            );
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
            let child = fork(&peer, &["echo"], with(serialization)).unwrap();
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
        // Round trips with argv[4] CPU-bound siblings (`loop {}`) running:
        // how much a spinner takes from a guest that waits for messages.
        "rtt-spin" => {
            let spinners: usize = args.get(4).map_or(2, |a| a.parse().unwrap());
            let spinning: Vec<_> = (0..spinners)
                .map(|_| fork(&path, &["spin"], ForkOptions::default()).unwrap())
                .collect();
            let child = fork(&path, &["echo"], ForkOptions::default()).unwrap();
            let payload = Message::Bytes(vec![7u8; size]);
            child.send(payload.clone()).unwrap();
            child.recv().unwrap();
            let start = Instant::now();
            let samples = time_each(n, || {
                child.send(payload.clone()).unwrap();
                child.recv().unwrap();
            });
            let secs = start.elapsed().as_secs_f64();
            let (median, p99) = percentiles(samples);
            for spinner in &spinning {
                spinner.kill("SIGKILL").unwrap();
            }
            child.disconnect().unwrap();
            child.wait();
            println!(
                "round_trips_{spinners}_spinners rtt_per_s={:.0} median_us={median:.2} p99_us={p99:.2}",
                n as f64 / secs
            );
        }
        // Round trips (taken per child) while another child's flood of
        // argv[4] messages sits unread in the same inbox.
        "rtt-flood" => {
            let flood: usize = args.get(4).map_or(50_000, |a| a.parse().unwrap());
            let flooder = fork(
                &path,
                &["burst", &flood.to_string()],
                ForkOptions::default(),
            )
            .unwrap();
            let child = fork(&path, &["echo"], ForkOptions::default()).unwrap();
            let payload = Message::Bytes(vec![7u8; size]);
            child.send(payload.clone()).unwrap();
            child.recv().unwrap();
            // Let the flood arrive (it blocks at the channel's hard limit).
            std::thread::sleep(std::time::Duration::from_millis(300));
            let start = Instant::now();
            for _ in 0..n {
                child.send(payload.clone()).unwrap();
                child.recv().unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            flooder.kill("SIGKILL").unwrap();
            child.disconnect().unwrap();
            child.wait();
            println!(
                "round_trips_next_to_a_flood rtt_per_s={:.0}",
                n as f64 / secs
            );
        }
        "throughput" => {
            let child = fork(&peer, &["sink"], with(serialization)).unwrap();
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
        "hostcall" => {
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(hive::process::connected());
            }
            let ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
            println!("hostcall ns_per_call={ns:.1}");
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
        "population" => {
            // n idle children live, then fork -> first message `size` times
            // beside them (the sweep of the 100,000-processes issue).
            let start = Instant::now();
            let children: Vec<_> = (0..n)
                .map(|_| fork(&path, &["idle"], ForkOptions::default()).unwrap())
                .collect();
            for child in &children {
                child.recv().unwrap();
            }
            let fork_all_ms = start.elapsed().as_secs_f64() * 1e3;
            let (median, p99) = fork_to_first_message(&path, size);
            println!(
                "population {n} ready median_us={median:.1} p99_us={p99:.1} fork_all_ms={fork_all_ms:.0}"
            );
            // Hold them until stdin closes, then return with all of them
            // live: the host ends them (the teardown the harness times).
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            std::mem::forget(children);
        }
        "cycles" => {
            // `size` cycles of n idle children forked, then all ended; a
            // line after each, answered on stdin once the harness has read
            // our RSS.
            for cycle in 0..size {
                let children: Vec<_> = (0..n)
                    .map(|_| fork(&path, &["idle"], ForkOptions::default()).unwrap())
                    .collect();
                for child in &children {
                    child.recv().unwrap();
                }
                for child in &children {
                    child.disconnect().unwrap();
                }
                for child in &children {
                    child.wait();
                }
                drop(children);
                println!("cycle {cycle} done");
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            }
        }
        "fanin-merged" | "fanin-poll" => {
            // n children each send `size` messages; the parent takes them
            // all through the merged inbox, or by polling every child.
            let per = size.to_string();
            let warm = fork(&path, &["exit"], ForkOptions::default()).unwrap();
            warm.wait();
            let start = Instant::now();
            let children: Vec<_> = (0..n)
                .map(|_| fork(&path, &["burst", &per], ForkOptions::default()).unwrap())
                .collect();
            let total = n * size;
            let received = std::rc::Rc::new(std::cell::Cell::new(0usize));
            if what == "fanin-merged" {
                for child in &children {
                    let received = received.clone();
                    child.on_message(move |_| received.set(received.get() + 1));
                }
                hive::run();
            } else {
                let pollables: Vec<_> = children.iter().map(|c| c.subscribe()).collect();
                let mut open = vec![true; n];
                while open.iter().any(|o| *o) {
                    let live: Vec<usize> = (0..n).filter(|&i| open[i]).collect();
                    let refs: Vec<&hive::io::Pollable> =
                        live.iter().map(|&i| &pollables[i]).collect();
                    for ready in hive::io::poll(&refs) {
                        let i = live[ready as usize];
                        match children[i].next_event() {
                            Some(hive::ChildEvent::Message(_)) => received.set(received.get() + 1),
                            Some(_) => {}
                            None => open[i] = false,
                        }
                    }
                }
            }
            assert_eq!(received.get(), total);
            let us = start.elapsed().as_secs_f64() * 1e6 / total as f64;
            println!("{what}_{n}_children us_per_message={us:.2}");
        }
        "spawn" => {
            let run = || {
                let child = hive::spawn("/bin/true", &[], hive::SpawnOptions::default()).unwrap();
                child.wait();
            };
            run();
            let (median, p99) = percentiles(time_each(n, run));
            println!("spawn_true median_us={median:.1} p99_us={p99:.1}");
        }
        "exec" => {
            let run = || {
                let child = hive::exec("echo hello", hive::ExecOptions::default()).unwrap();
                assert_eq!(child.output().unwrap().stdout, b"hello\n");
            };
            run();
            let (median, p99) = percentiles(time_each(n, run));
            println!("exec_echo median_us={median:.1} p99_us={p99:.1}");
        }
        "spawnsync" => {
            let run = || {
                let r = hive::spawn_sync("/bin/true", &[], hive::SyncOptions::default()).unwrap();
                assert_eq!(r.status, Some(0));
            };
            run();
            let (median, p99) = percentiles(time_each(n, run));
            println!("spawnsync_true median_us={median:.1} p99_us={p99:.1}");
        }
        "pipeline" => {
            let run = || {
                let echo =
                    hive::spawn("echo", &["hello world"], hive::SpawnOptions::default()).unwrap();
                let wc = hive::spawn("wc", &["-w"], hive::SpawnOptions::default()).unwrap();
                hive::pipe(echo.stdout().unwrap(), wc.stdin().unwrap());
                let out = hive::io::read_to_end(&wc.stdout().unwrap());
                wc.wait();
                echo.wait();
                assert_eq!(String::from_utf8_lossy(&out).trim(), "2");
            };
            run();
            let (median, p99) = percentiles(time_each(n, run));
            println!("pipeline_echo_wc median_us={median:.1} p99_us={p99:.1}");
        }
        "cat" => {
            // n MiB through `cat`: written in 64 KiB pieces while reading the
            // output back, as Node's pipe benchmark does.
            let total = n << 20;
            let start = Instant::now();
            let cat = hive::spawn("cat", &[], hive::SpawnOptions::default()).unwrap();
            let stdout = cat.stdout().unwrap();
            let read = pump_through(cat.stdin().unwrap(), &stdout, total);
            assert_eq!(read, total);
            drop(stdout);
            cat.wait();
            let secs = start.elapsed().as_secs_f64();
            println!("cat_throughput MB_per_s={:.1}", total as f64 / secs / 1e6);
        }
        other => panic!("unknown benchmark {other}"),
    }
}
