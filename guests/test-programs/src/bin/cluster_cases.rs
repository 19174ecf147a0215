//! Cluster scenarios for `host/tests/all/cluster.rs`: `cluster_cases
//! <scenario> [args]`. The primary forks this same module as its workers;
//! a worker reads its orders from `CASE` and `WORKER_ARGS` in its
//! environment. Only the primary prints, so the output is deterministic.

use hive::cluster::{self, SchedulingPolicy, SetupOptions};
use hive::process;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

fn main() {
    if cluster::is_worker() {
        return worker();
    }
    let argv = process::argv();
    let case = argv.get(1).cloned().unwrap_or_default();
    let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
    match case.as_str() {
        "lifecycle" => lifecycle(),
        "distribution" => distribution(&arg(2), arg(3).parse().unwrap_or(3)),
        "exit-code" => exit_code(),
        "kill" => kill(),
        "in-use" => in_use(),
        "env" => env(),
        "messages" => messages(),
        "disconnect-all" => disconnect_all(),
        "reload" => reload(arg(2).parse().unwrap_or(10)),
        "restart" => restart(),
        "limits" => limits(),
        "restart-hold" => restart_hold(),
        "mixed" => mixed(&arg(2), &arg(3)),
        "exclusive" => exclusive(),
        "listen-close" => listen_close(arg(2).parse().unwrap_or(1000)),
        "reject-in-worker" => unreachable!("run as a worker only"),
        other => panic!("unknown scenario {other:?}"),
    }
}

fn setup(policy: SchedulingPolicy) {
    cluster::setup_primary(SetupOptions {
        scheduling_policy: Some(policy),
        ..Default::default()
    })
    .unwrap();
}

fn fork(case: &str, args: &str) -> cluster::Worker {
    cluster::fork_with_env(Some(vec![
        ("CASE".into(), case.into()),
        ("WORKER_ARGS".into(), args.into()),
    ]))
    .unwrap()
}

fn print_exits() {
    cluster::on_exit(|w, code, signal| {
        println!(
            "exit {} {} {} after-disconnect={:?} dead={}",
            w.id(),
            code.map_or("null".into(), |c| c.to_string()),
            signal.unwrap_or_else(|| "null".into()),
            w.exited_after_disconnect(),
            w.is_dead()
        );
    });
}

/// Node's event order for one worker that listens and is disconnected,
/// worker listeners before the cluster's.
fn lifecycle() {
    cluster::on_setup(|s| println!("setup policy={:?}", s.scheduling_policy));
    setup(SchedulingPolicy::RoundRobin);
    let worker = fork("serve", "0");
    println!("state {:?}", worker.state());
    cluster::on_fork(|w| println!("fork {}", w.id()));
    worker.on_online(|| println!("worker online"));
    cluster::on_online(|w| println!("cluster online {}", w.id()));
    worker.on_listening(|a| println!("worker listening {} port>0={}", a.address, a.port > 0));
    let w = worker.clone();
    cluster::on_listening(move |l, a| {
        println!("cluster listening {} {:?}", l.id(), w.state());
        println!("memory>0 {}", w.memory().is_some_and(|m| m > 0));
        println!("cpu>0 {}", w.cpu_us().is_some_and(|c| c > 0));
        let reply = get(a.port);
        println!("reply {reply}");
        w.disconnect().unwrap();
        println!("workers after disconnect {}", cluster::workers().len());
    });
    worker.on_disconnect(|| println!("worker disconnect"));
    cluster::on_disconnect(|w| {
        println!(
            "cluster disconnect {} connected={}",
            w.id(),
            w.is_connected()
        )
    });
    worker.on_exit(|code, signal| println!("worker exit {code:?} {signal:?}"));
    print_exits();
    hive::run();
    println!("state {:?}", worker.state());
}

/// One request to `port`: the answering worker's reply.
fn get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"hi\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply.trim().to_string()
}

/// `n` workers on one port under `policy`; 3n sequential requests; how
/// they were spread.
fn distribution(policy: &str, n: u32) {
    let policy = match policy {
        "rr" => SchedulingPolicy::RoundRobin,
        "none" => SchedulingPolicy::Shared,
        "least" => SchedulingPolicy::LeastConnections,
        "hash" => SchedulingPolicy::SourceIpHash,
        other => panic!("policy {other:?}"),
    };
    setup(policy);
    for _ in 0..n {
        fork("serve", "0");
    }
    let listening = Rc::new(RefCell::new(Vec::new()));
    cluster::on_listening(move |w, a| {
        let mut l = listening.borrow_mut();
        l.push((w.id(), a.port));
        if l.len() < n as usize {
            return;
        }
        let ports: Vec<u16> = l.iter().map(|(_, p)| *p).collect();
        println!("same port {}", ports.iter().all(|p| *p == ports[0]));
        let order: Vec<String> = (0..3 * n).map(|_| get(ports[0])).collect();
        let mut counts: Vec<usize> = (1..=n)
            .map(|id| {
                order
                    .iter()
                    .filter(|o| **o == format!("worker {id}"))
                    .count()
            })
            .collect();
        let periodic = order
            .iter()
            .enumerate()
            .all(|(i, o)| *o == order[i % n as usize]);
        counts.sort();
        println!("answered {}", order.len());
        println!("counts {counts:?} periodic={periodic}");
        let info = cluster::listeners();
        println!(
            "listeners {} policy={:?} handed={}",
            info.len(),
            info[0].policy,
            info[0].workers.iter().map(|w| w.connections).sum::<u64>()
        );
        cluster::disconnect(|| println!("all disconnected"));
    });
    print_exits();
    hive::run();
}

fn exit_code() {
    fork("exit", "7");
    print_exits();
    hive::run();
}

fn kill() {
    let worker = fork("block", "");
    let w = worker.clone();
    worker.on_online(move || {
        println!("kill {}", w.kill("SIGKILL").unwrap());
    });
    print_exits();
    hive::run();
}

/// A port the primary holds already: the worker's listen fails
/// `EADDRINUSE` (Node: the worker's server emits `error`, syscall `bind`).
fn in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    fork("serve", &port.to_string());
    cluster::on_message(|w, m| println!("message {} {}", w.id(), m.text()));
    print_exits();
    hive::run();
    drop(taken);
}

fn env() {
    cluster::fork_with_env(Some(vec![
        ("CASE".into(), "env".into()),
        ("GREETING".into(), "hello from the primary".into()),
    ]))
    .unwrap();
    cluster::on_message(|w, m| println!("message {} {}", w.id(), m.text()));
    print_exits();
    hive::run();
}

fn messages() {
    let worker = fork("echo", "");
    let w = worker.clone();
    worker.on_online(move || {
        w.send(&serde_json::json!({"n": 1})).unwrap();
    });
    let w = worker.clone();
    cluster::on_message(move |from, m| {
        println!("cluster message {} {}", from.id(), m.text());
        if m.text().contains("\"n\":1") {
            w.disconnect().unwrap();
        }
    });
    worker.on_message(|m| println!("worker message {}", m.text()));
    print_exits();
    hive::run();
}

fn disconnect_all() {
    for _ in 0..2 {
        fork("serve", "0");
    }
    let listening = Rc::new(RefCell::new(0));
    cluster::on_listening(move |_, _| {
        *listening.borrow_mut() += 1;
        if *listening.borrow() == 2 {
            cluster::disconnect(|| {
                println!("disconnect callback, workers {}", cluster::workers().len())
            });
        }
    });
    print_exits();
    hive::run();
}

/// Rolling reloads of 2 HTTP workers, one after another (the test loads
/// the port meanwhile and counts failed requests).
fn reload(times: u32) {
    for _ in 0..2 {
        fork("http", "");
    }
    let listening = Rc::new(RefCell::new(0));
    cluster::on_listening(move |_, a| {
        *listening.borrow_mut() += 1;
        if *listening.borrow() == 2 {
            println!("port {}", a.port);
            let options = cluster::ReloadOptions {
                drain: std::time::Duration::from_secs(2),
                ..Default::default()
            };
            again(times, 0, options);
        }
    });
    hive::run();
}

fn again(left: u32, replaced: usize, options: cluster::ReloadOptions) {
    thread_local! {
        /// The most requests the live workers had answered before a reload.
        static COUNTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    if left == 0 {
        println!("reloaded, replaced {replaced}");
        println!("requests counted {}", COUNTED.get() > 0);
        // The test stops its clients on that line; shut down after.
        hive::set_timeout(1000, || cluster::disconnect(|| println!("done")));
        return;
    }
    hive::set_timeout(100, move || {
        // 100 ms into serving the clients: what the workers counted.
        let requests: u64 = cluster::listeners()
            .iter()
            .flat_map(|l| l.workers.iter().map(|w| w.requests))
            .sum();
        COUNTED.set(COUNTED.get().max(requests));
        cluster::reload(options, move |n| again(left - 1, replaced + n, options));
    });
}

/// A mixed cluster: a wasm worker and a Node worker (running `script`,
/// the seed's cluster code) behind one port.
fn mixed(port: &str, script: &str) {
    cluster::fork_with_env(Some(vec![
        ("CASE".into(), "http-on".into()),
        ("PORT".into(), port.into()),
    ]))
    .unwrap();
    cluster::setup_primary(SetupOptions {
        exec: Some(script.into()),
        args: Some(Vec::new()),
        ..Default::default()
    })
    .unwrap();
    cluster::fork_with_env(Some(vec![("PORT".into(), port.into())])).unwrap();
    let listening = Rc::new(RefCell::new(0));
    cluster::on_listening(move |w, a| {
        println!("listening {} {}", w.id(), a.port);
        *listening.borrow_mut() += 1;
    });
    hive::run();
}

/// `set-exclusive`: a worker's exclusive listen is a socket of its own
/// (no `listening` for the primary), its shared one joins the cluster's.
fn exclusive() {
    fork("exclusive", "");
    cluster::on_listening(|w, _| println!("listening {}", w.id()));
    cluster::on_message(|w, m| {
        println!("message {} {}", w.id(), m.text());
        println!("shared listeners {}", cluster::listeners().len());
        w.disconnect().unwrap();
    });
    print_exits();
    hive::run();
}

/// A guest that opens and closes HTTP servers in a loop: the host forgets
/// each once it is done, so the loop ends, the process exits, and the
/// ports are free again.
fn listen_close(times: u32) {
    let mut last = 0;
    for _ in 0..times {
        let server = hive::http::create_server(|_, res| res.end(""))
            .listen(0)
            .unwrap();
        last = server.port();
        server.close();
    }
    hive::run();
    println!(
        "closed {times}, last port free {}",
        TcpListener::bind(("127.0.0.1", last)).is_ok()
    );
}

/// A worker that crashes is forked again by the restart policy; one that
/// exits 0 is not; past the limit, none is.
fn restart() {
    cluster::set_restart_policy(Some(cluster::RestartPolicy {
        max_restarts: 2,
        window: std::time::Duration::from_secs(60),
        ..Default::default()
    }));
    cluster::on_fork(|w| println!("fork {}", w.id()));
    // Each worker says the restarts the host counts for it (what `host ps`
    // shows) before it exits.
    cluster::on_message(|w, m| println!("worker {} {}", w.id(), m.text()));
    cluster::on_exit(|w, code, signal| println!("exit {} {code:?} {signal:?}", w.id()));
    fork("restarts-then-exit", "3");
    hive::run();
    println!("restarts {}", cluster::restarts());
}

/// A restart policy holds the port while the replacement starts: the
/// only worker is killed once it listens (`killed` once it exited), and is
/// forked again
/// 300 ms later; a client connecting meanwhile waits for it.
fn restart_hold() {
    cluster::set_restart_policy(Some(cluster::RestartPolicy {
        max_restarts: 5,
        window: std::time::Duration::from_secs(60),
        initial_delay: std::time::Duration::from_millis(300),
        max_delay: std::time::Duration::from_millis(300),
    }));
    let first = std::cell::Cell::new(true);
    cluster::on_listening(move |w, _| {
        if first.replace(false) {
            w.kill("SIGKILL").unwrap();
        } else {
            println!("replacement listening");
        }
    });
    // Once it is gone (off the listener too), not as the kill is sent: a
    // connection in between would reach it as it dies.
    let once = std::cell::Cell::new(true);
    cluster::on_exit(move |_, _, _| {
        if once.replace(false) {
            println!("killed");
        }
    });
    fork("http-on", "");
    hive::run();
}

/// `setup_primary`'s `limits` narrow every worker's (more than the
/// primary has is refused): a worker past its 4 MiB ends, as a fork would.
fn limits() {
    let asking = |max_memory| SetupOptions {
        limits: Some(hive::Limits {
            max_memory: Some(max_memory),
            ..Default::default()
        }),
        ..Default::default()
    };
    match cluster::setup_primary(asking(1 << 40)) {
        Ok(_) => println!("setup with 1T: accepted"),
        Err(e) => println!("setup with 1T: {e}"),
    }
    cluster::setup_primary(asking(4 << 20)).unwrap();
    println!(
        "settings max-memory {:?}",
        cluster::settings().limits.max_memory
    );
    cluster::on_exit(|w, code, signal| println!("exit {} {code:?} {signal:?}", w.id()));
    let worker = fork("hog", "");
    worker.on_error(|e| println!("error {}", e.code));
    hive::run();
}

// ---- workers ----

fn worker() {
    let id = cluster::worker_id().unwrap();
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    match var("CASE").as_str() {
        "serve" => {
            let port = var("WORKER_ARGS");
            let listener = match TcpListener::bind(format!("127.0.0.1:{port}")) {
                Ok(l) => l,
                Err(e) => {
                    let code = match e.kind() {
                        std::io::ErrorKind::AddrInUse => "EADDRINUSE".to_string(),
                        std::io::ErrorKind::PermissionDenied => "EACCES".to_string(),
                        other => format!("{other:?}"),
                    };
                    process::send(&serde_json::json!({"error": code})).unwrap();
                    return;
                }
            };
            // Ends when the primary disconnects this worker: `accept`
            // then fails.
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut buf = [0; 3];
                let _ = stream.read_exact(&mut buf);
                let _ = stream.write_all(format!("worker {id}\n").as_bytes());
            }
        }
        "exit" => process::exit(var("WORKER_ARGS").parse().unwrap()),
        "hog" => {
            let v = std::hint::black_box(vec![1u8; 16 << 20]);
            println!("hog: got {}", v.len());
        }
        "restarts-then-exit" => {
            let me = process::subtree().remove(0);
            process::send(&format!("restarts {}", me.restarts)).unwrap();
            process::exit(var("WORKER_ARGS").parse().unwrap())
        }
        "http-on" => {
            let pid = process::pid();
            let port = var("PORT").parse().unwrap();
            hive::http::create_server(move |_req, mut res| {
                res.write_head(200);
                res.end(format!("[worker:{pid}] hello world\n"));
            })
            .listen_on("0.0.0.0", port)
            .unwrap();
            hive::run();
        }
        "exclusive" => {
            cluster::set_exclusive(true);
            let own = TcpListener::bind("127.0.0.1:0").unwrap();
            cluster::set_exclusive(false);
            let shared = TcpListener::bind("127.0.0.1:0").unwrap();
            let ports = (
                own.local_addr().unwrap().port(),
                shared.local_addr().unwrap().port(),
            );
            let listeners = (own, shared);
            let (own, shared) = ports;
            process::send(&serde_json::json!({"different ports": own != shared})).unwrap();
            // Listening (both sockets open) until the primary disconnects it.
            hive::run();
            drop(listeners);
        }
        "http" => {
            let pid = process::pid();
            hive::http::create_server(move |_req, mut res| {
                res.write_head(200);
                res.end(format!("worker {pid}\n"));
            })
            .listen(0)
            .unwrap();
            hive::run();
        }
        "block" => loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
        "env" => {
            process::send(&serde_json::json!({ "greeting": var("GREETING") })).unwrap();
        }
        "echo" => {
            process::on_message(|m| {
                process::send(m).unwrap();
            });
            hive::run();
        }
        other => panic!("unknown worker case {other:?}"),
    }
}
