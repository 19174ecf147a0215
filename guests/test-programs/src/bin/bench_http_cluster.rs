//! The seed's cluster (guests/examples/seed-cluster) with a scheduling
//! policy: the Hive rows of the HTTP bench (bench/run.py, bench/http/run.py).
//!
//! `host run --allow-net --env PORT=8000 --env WORKERS=2 --env POLICY=least
//! bench_http_cluster.wasm`: `POLICY` is `rr` (the default), `none`
//! (shared), `least` (least-connections) or `hash` (source-ip-hash), and
//! goes to `cluster::SetupOptions::scheduling_policy`. Prints the seed's
//! `[master] <pid> is running` and `[worker] <pid> started` lines; each
//! response is `[worker:<pid>] hello world\n`.

use hive::{cluster, http, process};

fn policy() -> cluster::SchedulingPolicy {
    use cluster::SchedulingPolicy as P;
    match std::env::var("POLICY").as_deref() {
        Ok("rr") | Ok("") | Err(_) => P::RoundRobin,
        Ok("none") => P::Shared,
        Ok("least") => P::LeastConnections,
        Ok("hash") => P::SourceIpHash,
        Ok(other) => {
            eprintln!("POLICY={other}: want rr, none, least or hash");
            process::exit(2);
        }
    }
}

fn main() {
    if cluster::is_primary() {
        println!("[master] {} is running", process::pid());
        cluster::setup_primary(cluster::SetupOptions {
            exec: None,
            args: None,
            exec_argv: None,
            exec_path: None,
            serialization: None,
            silent: None,
            scheduling_policy: Some(policy()),
        })
        .unwrap();
        let workers = std::env::var("WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(cluster::available_parallelism);
        for _ in 0..workers {
            cluster::fork().unwrap();
        }
        cluster::on_exit(|worker, _code, _signal| {
            println!("[master] worker {} died", worker.pid().unwrap_or(0));
        });
        hive::run();
    } else {
        let port = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8000);
        http::create_server(|_req, mut res| {
            res.write_head(200);
            res.end(format!("[worker:{}] hello world\n", process::pid()));
        })
        .listen_on("0.0.0.0", port)
        .unwrap();
        println!("[worker] {} started", process::pid());
        hive::run();
    }
}
