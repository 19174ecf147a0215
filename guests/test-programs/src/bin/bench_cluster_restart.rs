//! Worker replacement time, measured in the primary (`just bench`,
//! bench/run.py; Node's twin is bench/http/cluster-restart.js).
//!
//! `host run --allow-net --env PORT=8000 bench_cluster_restart.wasm [KILLS]
//! [SETTLE_MS]`: the primary forks 2 workers that serve HTTP on `PORT`
//! (`hive::http::create_server`, as the seed cluster). Once both listen it
//! KILLS times (default 50) kills the oldest worker with `SIGKILL`
//! (`Worker::kill`), forks a replacement from the `exit` event, and waits
//! for the replacement's `listening` (`cluster::on_listening`), then
//! SETTLE_MS (default 20) before the next kill. Prints one JSON line:
//! medians and p99 in µs of exit → listening, kill → listening and
//! kill → exit.

use hive::{cluster, http, process};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

const WORKERS: usize = 2;

#[derive(Default)]
struct State {
    live: Vec<cluster::Worker>,
    listening: usize,
    kills_left: usize,
    settle_ms: u64,
    victim: Option<u32>,
    replacement: Option<u32>,
    killed_at: Option<Instant>,
    exited_at: Option<Instant>,
    exit_to_listening: Vec<f64>,
    kill_to_listening: Vec<f64>,
    kill_to_exit: Vec<f64>,
}

type Shared = Rc<RefCell<State>>;

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn us(since: Instant, to: Instant) -> f64 {
    to.duration_since(since).as_secs_f64() * 1e6
}

fn kill_next(state: &Shared) {
    let mut s = state.borrow_mut();
    if s.kills_left == 0 {
        let (el50, el99) = percentiles(s.exit_to_listening.clone());
        let (kl50, kl99) = percentiles(s.kill_to_listening.clone());
        let (ke50, ke99) = percentiles(s.kill_to_exit.clone());
        let out = serde_json::json!({
            "bench": "cluster_restart",
            "workers": WORKERS,
            "kills": s.exit_to_listening.len(),
            "exit_to_listening_median_us": el50.round(),
            "exit_to_listening_p99_us": el99.round(),
            "kill_to_listening_median_us": kl50.round(),
            "kill_to_listening_p99_us": kl99.round(),
            "kill_to_exit_median_us": ke50.round(),
            "kill_to_exit_p99_us": ke99.round(),
        });
        println!("{out}");
        for w in &s.live {
            let _ = w.kill("SIGKILL");
        }
        process::exit(0);
    }
    s.kills_left -= 1;
    let victim = s.live.remove(0);
    s.victim = Some(victim.id());
    s.replacement = None;
    s.exited_at = None;
    s.killed_at = Some(Instant::now());
    drop(s);
    victim.kill("SIGKILL").unwrap();
}

fn settle_then_kill(state: &Shared) {
    let ms = state.borrow().settle_ms;
    let state = state.clone();
    hive::set_timeout(ms, move || kill_next(&state));
}

fn main() {
    if !cluster::is_primary() {
        let port = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8000);
        http::create_server(|_req, mut res| {
            res.write_head(200);
            res.end(format!("[worker:{}] hello world\n", process::pid()));
        })
        .listen_on("127.0.0.1", port)
        .unwrap();
        hive::run();
        return;
    }
    let argv = process::argv();
    let arg = |i: usize, default: u64| argv.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let state: Shared = Rc::new(RefCell::new(State {
        kills_left: arg(1, 50) as usize,
        settle_ms: arg(2, 20),
        ..State::default()
    }));
    {
        let state = state.clone();
        cluster::on_exit(move |worker, _code, _signal| {
            let mut s = state.borrow_mut();
            if s.victim != Some(worker.id()) || s.replacement.is_some() {
                return;
            }
            s.exited_at = Some(Instant::now());
            let replacement = cluster::fork().unwrap();
            s.replacement = Some(replacement.id());
            s.live.push(replacement);
        });
    }
    {
        let state = state.clone();
        cluster::on_listening(move |worker, _address| {
            let now = Instant::now();
            let mut s = state.borrow_mut();
            if s.replacement == Some(worker.id()) {
                let (killed, exited) = (s.killed_at.unwrap(), s.exited_at.unwrap());
                s.exit_to_listening.push(us(exited, now));
                s.kill_to_listening.push(us(killed, now));
                s.kill_to_exit.push(us(killed, exited));
                s.replacement = None;
                s.victim = None;
                drop(s);
                settle_then_kill(&state);
            } else if s.victim.is_none() && s.killed_at.is_none() {
                s.listening += 1;
                if s.listening == WORKERS {
                    drop(s);
                    settle_then_kill(&state);
                }
            }
        });
    }
    for _ in 0..WORKERS {
        let worker = cluster::fork().unwrap();
        state.borrow_mut().live.push(worker);
    }
    hive::run();
}
