//! Cluster chaos (the limits issue, item 5; `just chaos`, bench/chaos.py):
//! workers killed at random while a load generator runs, under the
//! restart policy.
//!
//! `host run --allow-net --env PORT=8000 bench_chaos.wasm DURATION_MS
//! EVERY_MS [WORKER.js]`: the primary forks 2 workers serving HTTP on
//! `PORT` (wasm workers, or Node workers running `WORKER.js`, which then
//! needs `--allow-spawn`), sets a restart policy that re-forks a crashed
//! worker at once, prints `ready` once both listen, and then every
//! EVERY_MS kills a random worker with `SIGKILL`. After DURATION_MS it
//! stops, prints one JSON line — kills, restarts, and kill → replacement
//! listening (median, p99, µs) — and `settled` 500 ms later; it runs
//! until the host is told to stop.

use hive::{cluster, http, process};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const WORKERS: usize = 2;

#[derive(Default)]
struct State {
    ready: bool,
    kills: u32,
    /// When each kill whose replacement is not listening yet happened.
    waiting: Vec<Instant>,
    replacement_us: Vec<f64>,
}

fn main() {
    if !cluster::is_primary() {
        return worker();
    }
    let argv = process::argv();
    let arg = |i: usize, default: u64| argv.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (duration_ms, every_ms) = (arg(1, 30_000), arg(2, 200));
    let script = argv.get(3).filter(|a| a.ends_with(".js")).cloned();
    cluster::setup_primary(cluster::SetupOptions {
        args: script.as_ref().map(|_| Vec::new()),
        exec: script,
        ..Default::default()
    })
    .unwrap();
    cluster::set_restart_policy(Some(cluster::RestartPolicy {
        max_restarts: u32::MAX,
        window: Duration::from_secs(1),
        initial_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    }));
    let state = Rc::new(RefCell::new(State::default()));
    for _ in 0..WORKERS {
        cluster::fork().unwrap();
    }
    let s = state.clone();
    cluster::on_listening(move |_, _| {
        let mut st = s.borrow_mut();
        if !st.waiting.is_empty() {
            let at = st.waiting.remove(0);
            st.replacement_us.push(at.elapsed().as_secs_f64() * 1e6);
        }
        if !st.ready && cluster::workers().len() == WORKERS {
            st.ready = true;
            drop(st);
            println!("ready");
            start_chaos(s.clone(), duration_ms, every_ms);
        }
    });
    hive::run();
}

fn start_chaos(state: Rc<RefCell<State>>, duration_ms: u64, every_ms: u64) {
    let started = Instant::now();
    let s = state.clone();
    let chaos = hive::set_interval(every_ms, move || {
        let live: Vec<cluster::Worker> = cluster::workers()
            .into_iter()
            .filter(|w| w.state() == cluster::WorkerState::Listening)
            .collect();
        if live.is_empty() {
            return;
        }
        // Random enough: the clock's low bits.
        let pick = (started.elapsed().as_nanos() / 1000) as usize % live.len();
        let mut st = s.borrow_mut();
        st.kills += 1;
        st.waiting.push(Instant::now());
        drop(st);
        live[pick].kill("SIGKILL").unwrap();
    });
    hive::set_timeout(duration_ms, move || {
        hive::clear_timeout(chaos);
        let st = state.borrow();
        let mut samples = st.replacement_us.clone();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let at = |q: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        println!(
            "{}",
            serde_json::json!({
                "bench": "cluster_chaos",
                "kills": st.kills,
                "restarts": cluster::restarts(),
                "replaced": samples.len(),
                "replacement_median_us": at(0.5).round(),
                "replacement_p99_us": at(0.99).round(),
            })
        );
        // The workers stay (replaced as ever): once the last replacement
        // has settled, the driver counts descriptors and processes, then
        // ends the host.
        hive::set_timeout(500, || println!("settled"));
    });
}

fn worker() {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let pid = process::pid();
    http::create_server(move |_req, mut res| {
        res.write_head(200);
        res.end(format!("[worker:{pid}] hello world\n"));
    })
    .listen_on("127.0.0.1", port)
    .unwrap();
    hive::run();
}
