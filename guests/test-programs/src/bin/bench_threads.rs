//! `just bench-threads` (bench/threads.py): worker_threads on Hive, the
//! twin of bench/node/threads.js. `bench_threads MODE N [ARG]` prints
//! `key=value` figures; a worker (this module again) plays the other side.
//!
//! Modes: `start N` (new worker → `online`), `rtt N` (16 B over the
//! parent port and back), `transfer N READ` (a 1 MiB buffer there and
//! back by transfer; READ=1: the worker reads every byte first), `atomics
//! N` (`Atomics.add`), `pingpong N` (wait/notify between two threads).

use hive::worker_threads::{
    self as wt, ArrayBuffer, Outgoing, Received, SharedArrayBuffer, Worker, WorkerOptions,
};
use hive::{Message, process};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

const MIB: u64 = 1 << 20;

fn module() -> String {
    process::argv()[0].clone()
}

fn report(samples: &mut [f64], unit: &str) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!("median_{unit}={:.3} p99_{unit}={:.3}", at(0.5), at(0.99));
}

fn new_worker(role: &str, options: WorkerOptions<'_>) -> Worker {
    Worker::new(
        &module(),
        WorkerOptions {
            argv: vec![role.into()],
            ..options
        },
    )
    .unwrap()
}

/// Starts `n` workers one after the other: each from `new Worker` to its
/// `online`, then terminated.
fn start(n: usize) {
    let samples = Rc::new(RefCell::new(Vec::with_capacity(n)));
    fn next(left: usize, samples: Rc<RefCell<Vec<f64>>>) {
        if left == 0 {
            report(&mut samples.borrow_mut(), "us");
            return;
        }
        let t0 = Instant::now();
        let w = new_worker("idle", WorkerOptions::default());
        let (w2, s) = (w.clone(), samples.clone());
        w.on_online(move || {
            s.borrow_mut().push(t0.elapsed().as_secs_f64() * 1e6);
            w2.terminate();
        });
        w.on_exit(move |_| next(left - 1, samples.clone()));
    }
    next(n, samples);
}

/// `n` round trips with worker `w`: `send(None)` posts the first message,
/// `send(Some(reply))` the next one, each timed until its reply.
fn round_trips(w: Worker, n: usize, send: impl Fn(&Worker, Option<&Received>) + 'static) {
    let samples = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let t0 = Rc::new(Cell::new(Instant::now()));
    let send = Rc::new(send);
    let (w2, s, t, next) = (w.clone(), samples.clone(), t0.clone(), send.clone());
    w.on_message(move |m| {
        s.borrow_mut().push(t.get().elapsed().as_secs_f64() * 1e6);
        if s.borrow().len() == n {
            report(&mut s.borrow_mut(), "us");
            w2.terminate();
            return;
        }
        t.set(Instant::now());
        next(&w2, Some(m));
    });
    t0.set(Instant::now());
    send(&w, None);
}

/// `n` round trips of a 16-byte message over the parent port.
fn rtt(n: usize) {
    let w = new_worker("echo", WorkerOptions::default());
    let msg = Message::Json("\"0123456789abcd\"".into());
    round_trips(w, n, move |w, _| w.post_message(msg.clone()).unwrap());
}

/// `n` round trips of a 1 MiB buffer, transferred both ways.
fn transfer(n: usize, read: bool) {
    let role = if read { "bounce-read" } else { "bounce" };
    let w = new_worker(role, WorkerOptions::default());
    round_trips(w, n, |w, reply| {
        let buf = match reply {
            Some(m) => m.buffer(0).unwrap(),
            None => ArrayBuffer::new(MIB).unwrap(),
        };
        w.post(Outgoing::new("b").transfer(&buf)).unwrap();
    });
}

/// `n` `Atomics.add`s on one word.
fn atomics(n: usize) {
    let sab = SharedArrayBuffer::new(8).unwrap();
    let t0 = Instant::now();
    for _ in 0..n {
        sab.add(0, 1).unwrap();
    }
    let ns = t0.elapsed().as_secs_f64() * 1e9 / n as f64;
    assert_eq!(sab.load(0).unwrap(), n as i32);
    println!("ns_per_op={ns:.2}");
}

/// `n` wait/notify round trips: this thread sets word 0 to 1 and waits for
/// 0; the worker waits for 1 and sets it back.
fn pingpong(n: usize) {
    let sab = SharedArrayBuffer::new(8).unwrap();
    let w = new_worker(
        "pong",
        WorkerOptions {
            worker_data: Some(Outgoing::new(&n).share(&sab)),
            ..Default::default()
        },
    );
    let w2 = w.clone();
    w.on_online(move || {
        let t0 = Instant::now();
        for _ in 0..n {
            sab.store(0, 1).unwrap();
            sab.notify(0, None).unwrap();
            while sab.load(0).unwrap() == 1 {
                sab.wait(0, 1, None).unwrap();
            }
        }
        println!(
            "median_us={:.3}",
            t0.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        w2.terminate();
    });
}

fn worker(role: &str) {
    let parent = wt::parent_port().unwrap();
    let p = parent.clone();
    match role {
        "idle" => {}
        "echo" => parent.on_message(move |m| p.post_message(m.data.clone()).unwrap()),
        "bounce" | "bounce-read" => {
            let read = role == "bounce-read";
            parent.on_message(move |m| {
                let buf = m.buffer(0).unwrap();
                if read {
                    let bytes = buf.to_vec().unwrap();
                    assert_eq!(bytes.len() as u64, MIB);
                }
                p.post(Outgoing::new("b").transfer(&buf)).unwrap();
            })
        }
        "pong" => {
            let data = wt::worker_data().unwrap();
            let n: usize = data.data.parse().unwrap();
            let sab = data.shared.into_iter().next().unwrap();
            for _ in 0..n {
                while sab.load(0).unwrap() == 0 {
                    sab.wait(0, 0, None).unwrap();
                }
                sab.store(0, 0).unwrap();
                sab.notify(0, None).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
    hive::run();
}

fn main() {
    let argv = process::argv();
    if !wt::is_main_thread() {
        return worker(&argv[1]);
    }
    let n: usize = argv[2].parse().unwrap();
    match argv[1].as_str() {
        "start" => start(n),
        "rtt" => rtt(n),
        "transfer" => transfer(n, argv.get(3).is_some_and(|r| r == "1")),
        "atomics" => atomics(n),
        "pingpong" => pingpong(n),
        other => panic!("unknown mode {other}"),
    }
    hive::run();
}
