//! The seed's multi-process web server, as a Hive cluster (the Node
//! original is `node/cluster.js`, next to this crate):
//!
//! ```text
//! host run --allow-net target/guests/seed-cluster.wasm
//! [master] <pid> is running
//! [worker] <pid> started        (one per CPU)
//! $ curl localhost:8000
//! [worker:<pid>] hello world
//! ```
//!
//! `PORT` (`host run --env PORT=8080`) overrides the port, `WORKERS` the
//! number of workers, and `POLICY` how connections reach them: `rr` (the
//! default), `none` (shared), `least` (least-connections) or `hash`
//! (source-IP hash); `just bench` uses all four. Given a `.js` script as its argument, the primary
//! forks Node workers running it (`--allow-spawn` too): the seed's own
//! `node/cluster.js` works unchanged as that script.

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
        // A `.js` argument: Node workers running it (the seed's own code).
        let script = process::argv()
            .get(1)
            .filter(|a| a.ends_with(".js"))
            .cloned();
        cluster::setup_primary(cluster::SetupOptions {
            args: script.as_ref().map(|_| Vec::new()),
            exec: script,
            scheduling_policy: Some(policy()),
            ..Default::default()
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
