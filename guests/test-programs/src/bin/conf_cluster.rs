//! Conformance cluster program, the wasm twin of
//! `tests/conformance/node/cluster.js`; the contract between the two is
//! `tests/conformance/node/CLUSTER.md`: keep all three in step. As the
//! primary it runs the scenario in argv[1] (JSON `{"primary": [...],
//! "worker": [...]}`) and prints one line per event; as a worker
//! (`cluster::is_worker()`) it runs the steps in the env var
//! `CONF_WORKER_STEPS` and prints nothing.
//!
//! The primary's steps run inside the event loop: a step that waits
//! (`wait`, `sleep`, and `setup`/`fork` until their own line printed, where
//! Node yields a tick) stores what it waits for and returns; the listener
//! whose line completes that event, or the timer, runs the next steps.
//! Each event is counted on the line the SDK emits last (the worker's for
//! `message`), so both of its lines print before the steps go on.
use hive::cluster::{self, Address, SchedulingPolicy, SetupOptions, Worker, WorkerState};
use hive::{Message, TimerId, process};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// How long a `wait` (or the end of the scenario) waits before giving up.
const PATIENCE: u64 = 4000;

fn main() {
    if cluster::is_worker() {
        worker()
    } else {
        primary()
    }
}

/// Node's `err.code` for an I/O error.
fn code(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::AddrInUse => "EADDRINUSE".into(),
        K::AddrNotAvailable => "EADDRNOTAVAIL".into(),
        K::PermissionDenied => "EACCES".into(),
        K::ConnectionRefused => "ECONNREFUSED".into(),
        K::ConnectionReset => "ECONNRESET".into(),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------- worker

fn worker() {
    let me = cluster::worker_id().expect("a worker has an id");
    let steps: Value =
        serde_json::from_str(&std::env::var("CONF_WORKER_STEPS").unwrap_or_else(|_| "[]".into()))
            .expect("CONF_WORKER_STEPS is JSON");
    let send = |v: &Value| {
        process::send(v).expect("send");
    };
    let mut servers = Vec::new();
    for step in steps.as_array().expect("worker steps") {
        let a = &step[1];
        match step[0].as_str().expect("step name") {
            "listen" => {
                let port = match a["port"].as_str() {
                    Some("taken") => std::env::var("CONF_TAKEN_PORT").unwrap().parse().unwrap(),
                    _ => a["port"].as_u64().unwrap_or(0) as u16,
                };
                let host = a["host"].as_str().unwrap_or("127.0.0.1");
                match TcpListener::bind((host, port)) {
                    Ok(server) => servers.push(server),
                    // std's `bind` is Node's bind and listen; its error
                    // carries no syscall.
                    Err(e) => send(&json!({"error": code(&e), "syscall": "bind"})),
                }
            }
            "send" => send(a),
            "env" => {
                let value = std::env::var(a.as_str().unwrap()).ok();
                send(&json!({"env": a, "value": value}));
            }
            "argv" => send(&json!({"argv": &process::argv()[1..]})),
            "echo" => process::on_message(|m| {
                process::send(m).expect("echo");
            }),
            "exit" => process::exit(a.as_u64().unwrap() as u8),
            "crash" => panic!("crash"),
            // Node's `cluster.worker.disconnect()`.
            "disconnect" => cluster::disconnect_worker().expect("disconnect"),
            "block" => {
                hive::set_interval(1 << 30, || {});
            }
            other => panic!("unknown worker step {other}"),
        }
    }
    // std's accept blocks and wasm has no threads: the servers answer once
    // the steps are done, until a disconnect makes `accept` fail.
    for server in &servers {
        for stream in server.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.write_all(me.to_string().as_bytes());
        }
    }
    hive::run();
}

// --------------------------------------------------------------- primary

#[derive(Default)]
struct State {
    steps: Vec<Value>,
    next: usize,
    worker_steps: Value,
    /// id -> Worker, kept after the cluster drops them.
    workers: BTreeMap<u32, Worker>,
    /// Event kind -> how many.
    seen: HashMap<String, usize>,
    /// Real port numbers, in order of first appearance: P1, P2, ...
    ports: Vec<u16>,
    /// While collecting: (id, line).
    collected: Option<Vec<(u32, String)>>,
    taken: Option<TcpListener>,
    answers: Vec<String>,
    waiting: Option<Wait>,
    /// `setup` events that print nothing (the runner's `exec`).
    quiet_setups: usize,
}

/// What the steps wait for, and what runs once it holds (or timed out).
struct Wait {
    until: Box<dyn Fn(&State) -> bool>,
    timer: TimerId,
    then: fn(),
}

impl State {
    fn seen(&self, kind: &str) -> usize {
        self.seen.get(kind).copied().unwrap_or(0)
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

fn port_name(port: u16) -> String {
    with(|s| {
        if !s.ports.contains(&port) {
            s.ports.push(port);
        }
        format!("P{}", s.ports.iter().position(|p| *p == port).unwrap() + 1)
    })
}

fn addr(a: &Address) -> String {
    format!("{} {}", a.address, port_name(a.port))
}

fn json_text(m: &Message) -> String {
    match m {
        Message::Json(text) => text.clone(),
        Message::Bytes(b) => format!("bytes {}", b.len()),
    }
}

fn or_null<T: ToString>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// One event line; `count`: the line that counts the event for `wait`.
fn line(kind: &str, id: Option<u32>, text: String, count: bool) {
    with(|s| match (&mut s.collected, id) {
        (Some(kept), Some(id)) => kept.push((id, text)),
        _ => println!("{text}"),
    });
    if count {
        with(|s| *s.seen.entry(kind.into()).or_default() += 1);
        wake();
    }
}

fn flush() {
    let Some(mut kept) = with(|s| s.collected.take()) else {
        return;
    };
    kept.sort_by_key(|(id, _)| *id); // stable: each worker's lines keep their order
    for (_, text) in kept {
        println!("{text}");
    }
}

/// Whether `until` holds now; if not, the steps pause and `then` runs once
/// it does, or after PATIENCE, when `timeout` runs first.
fn until(
    holds: impl Fn(&State) -> bool + 'static,
    timeout: impl FnOnce() + 'static,
    then: fn(),
) -> bool {
    if with(|s| holds(s)) {
        return true;
    }
    let timer = hive::set_timeout(PATIENCE, move || {
        if with(|s| s.waiting.take()).is_some() {
            timeout();
            then();
        }
    });
    let until = Box::new(holds);
    with(|s| s.waiting = Some(Wait { until, timer, then }));
    false
}

/// After an event was counted: goes on if that is what the steps wait for.
fn wake() {
    let ready = with(|s| {
        let holds = s.waiting.as_ref().is_some_and(|w| (w.until)(s));
        if holds { s.waiting.take() } else { None }
    });
    if let Some(w) = ready {
        hive::clear_timeout(w.timer);
        (w.then)();
    }
}

/// Waits (a step) until `kind` was counted `n` times in all.
fn wait(kind: &str, n: usize, label: String) -> bool {
    let k = kind.to_owned();
    until(
        move |s| s.seen(&k) >= n,
        move || println!("(timeout: {label})"),
        resume,
    )
}

fn attach(w: &Worker) {
    let id = w.id();
    w.on_online(move || line("online", Some(id), format!("worker {id} online"), false));
    w.on_listening(move |a| {
        let text = format!("worker {id} listening {}", addr(a));
        line("listening", Some(id), text, false)
    });
    // The SDK emits `message` on the cluster first: this line is the last.
    w.on_message(move |m| {
        let text = format!("worker {id} message {}", json_text(&m));
        line("message", Some(id), text, true)
    });
    w.on_disconnect(move || {
        line(
            "disconnect",
            Some(id),
            format!("worker {id} disconnect"),
            false,
        )
    });
    w.on_exit(move |c, s| {
        let text = format!("worker {id} exit {} {}", or_null(c), or_null(s));
        line("exit", Some(id), text, false)
    });
    w.on_error(move |e| {
        line(
            "error",
            Some(id),
            format!("worker {id} error {}", e.code),
            true,
        )
    });
}

fn listen_to_cluster() {
    cluster::on_setup(|_| {
        let quiet = with(|s| s.quiet_setups.checked_sub(1).map(|n| s.quiet_setups = n));
        if quiet.is_none() {
            line("setup", None, "cluster setup".into(), true);
        }
    });
    cluster::on_fork(|w| {
        line(
            "fork",
            Some(w.id()),
            format!("cluster fork {}", w.id()),
            true,
        )
    });
    cluster::on_online(|w| {
        line(
            "online",
            Some(w.id()),
            format!("cluster online {}", w.id()),
            true,
        )
    });
    cluster::on_listening(|w, a| {
        let text = format!("cluster listening {} {}", w.id(), addr(a));
        line("listening", Some(w.id()), text, true)
    });
    cluster::on_message(|w, m| {
        let text = format!("cluster message {} {}", w.id(), json_text(m));
        line("message", Some(w.id()), text, false)
    });
    cluster::on_disconnect(|w| {
        line(
            "disconnect",
            Some(w.id()),
            format!("cluster disconnect {}", w.id()),
            true,
        )
    });
    cluster::on_exit(|w, c, s| {
        let text = format!("cluster exit {} {} {}", w.id(), or_null(c), or_null(s));
        line("exit", Some(w.id()), text, true)
    });
}

/// One TCP connection to 127.0.0.1:port: what the server wrote before EOF,
/// or `error <code>`.
fn get(port: u16) -> String {
    let mut text = String::new();
    match TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| s.read_to_string(&mut text)) {
        Ok(_) => text,
        Err(e) => format!("error {}", code(&e)),
    }
}

fn primary() {
    let scenario: Value = serde_json::from_str(&process::argv()[1]).expect("the scenario, as JSON");
    // The runner's `cluster wasm→node` column: what to fork instead of this
    // module. Node sets it without setupPrimary(), so it prints no `setup`.
    if let Some(exec) = scenario["exec"].as_str() {
        cluster::setup_primary(options(None, None, None, Some(exec.into()))).expect("exec");
        with(|s| s.quiet_setups += 1);
    }
    listen_to_cluster();
    with(|s| {
        s.steps = scenario["primary"]
            .as_array()
            .expect("primary steps")
            .clone();
        s.worker_steps = scenario.get("worker").cloned().unwrap_or(json!([]));
    });
    resume();
    hive::run();
    println!("(the event loop ended before the scenario)");
}

fn options(
    args: Option<Vec<String>>,
    silent: Option<bool>,
    policy: Option<SchedulingPolicy>,
    exec: Option<String>,
) -> SetupOptions {
    SetupOptions {
        exec,
        args,
        silent,
        scheduling_policy: policy,
        ..Default::default()
    }
}

/// Runs steps until one waits; after the last, the end.
fn resume() {
    loop {
        let step = with(|s| {
            let step = s.steps.get(s.next).cloned();
            s.next += 1;
            step
        });
        let Some(step) = step else { break };
        if !run_step(&step) {
            return;
        }
    }
    // The end: every worker has both disconnected and exited.
    let n = with(|s| s.workers.len());
    let done = move |s: &State| s.seen("exit") >= n && s.seen("disconnect") >= n;
    let alive = || {
        flush();
        let alive: Vec<u32> = with(|s| s.workers.values().cloned().collect::<Vec<_>>())
            .iter()
            .filter(|w| !w.is_dead())
            .map(Worker::id)
            .collect();
        println!("(end: workers still alive {})", json!(alive));
    };
    if until(done, alive, finish) {
        finish();
    }
}

fn finish() {
    flush();
    std::io::stdout().flush().unwrap();
    process::exit(0);
}

/// Runs one primary step; `false` if the steps now wait (something else
/// calls [`resume`]).
fn run_step(step: &Value) -> bool {
    let (op, a, b) = (step[0].as_str().expect("step name"), &step[1], &step[2]);
    let w = || {
        let id = a.as_u64().expect("a worker id") as u32;
        with(|s| s.workers.get(&id).cloned()).expect("a forked worker")
    };
    match op {
        "setup" => {
            let policy = a["policy"].as_str().map(|p| match p {
                "none" => SchedulingPolicy::Shared,
                _ => SchedulingPolicy::RoundRobin,
            });
            let args = a["args"].as_array().map(|args| {
                args.iter()
                    .map(|x| x.as_str().unwrap().to_owned())
                    .collect()
            });
            cluster::setup_primary(options(args, a["silent"].as_bool(), policy, None))
                .expect("setup");
            // Node emits `setup` on the next tick: let it print.
            let n = with(|s| s.seen("setup")) + 1;
            return wait("setup", n, format!("setup line {n}"));
        }
        "fork" => {
            let mut env: Vec<(String, String)> = a["env"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let (steps, taken) = with(|s| {
                let steps = a.get("steps").unwrap_or(&s.worker_steps).to_string();
                let taken = s.taken.as_ref().map(|t| t.local_addr().unwrap().port());
                (steps, taken)
            });
            env.push(("CONF_WORKER_STEPS".into(), steps));
            if let Some(port) = taken {
                env.push(("CONF_TAKEN_PORT".into(), port.to_string()));
            }
            let worker = match cluster::fork_with_env(Some(env)) {
                Ok(worker) => worker,
                Err(e) => {
                    println!("(fork error {e})");
                    return true;
                }
            };
            attach(&worker);
            with(|s| s.workers.insert(worker.id(), worker));
            // Node emits `fork` on the next tick: let it print.
            let n = with(|s| s.seen("fork")) + 1;
            return wait("fork", n, format!("fork line {n}"));
        }
        "wait" => {
            let kind = a.as_str().unwrap();
            let n = b.as_u64().unwrap_or(1) as usize;
            return wait(kind, n, format!("wait {kind} {n}"));
        }
        "sleep" => {
            hive::set_timeout(a.as_u64().unwrap(), resume);
            return false;
        }
        "send" => {
            if let Err(e) = w().send(b) {
                println!("(send error {e})");
            }
        }
        "kill" => {
            if let Err(e) = w().kill(b.as_str().unwrap_or("SIGTERM")) {
                println!("(kill error {e})");
            }
        }
        "disconnect" => {
            if let Err(e) = w().disconnect() {
                println!("(disconnect error {e})");
            }
        }
        "disconnect-all" => {
            cluster::disconnect(|| line("disconnect-all", None, "disconnect-all done".into(), true))
        }
        "is-dead" => println!("worker {a} isDead {}", w().is_dead()),
        "is-connected" => println!("worker {a} isConnected {}", w().is_connected()),
        "state" => {
            let state = match w().state() {
                WorkerState::None => "none",
                WorkerState::Online => "online",
                WorkerState::Listening => "listening",
                WorkerState::Disconnected => "disconnected",
                WorkerState::Dead => "dead",
            };
            println!("worker {a} state {state}");
        }
        "exited-after-disconnect" => {
            let e = w().exited_after_disconnect();
            println!(
                "worker {a} exitedAfterDisconnect {}",
                e.map_or("undefined".into(), |e| e.to_string())
            );
        }
        "workers" => {
            let ids: Vec<u32> = cluster::workers().iter().map(Worker::id).collect();
            println!("workers {}", json!(ids));
        }
        "occupy" => {
            let server = TcpListener::bind("127.0.0.1:0").expect("occupy");
            with(|s| s.taken = Some(server));
        }
        "get" => {
            let n = a.as_u64().unwrap();
            let port = with(|s| s.ports.first().copied().unwrap_or(0));
            let answers: Vec<String> = (0..n).map(|_| get(port)).collect();
            let answered = answers
                .iter()
                .filter(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
                .count();
            println!("get {n} answered {answered}");
            with(|s| s.answers = answers);
        }
        "distribution" => {
            let counts: Vec<String> = with(|s| {
                s.workers
                    .keys()
                    .map(|id| s.answers.iter().filter(|x| **x == id.to_string()).count())
                    .map(|c| c.to_string())
                    .collect()
            });
            println!("distribution {}", counts.join(" "));
        }
        "periodic" => {
            let yes = with(|s| {
                let r = &s.answers;
                let mut distinct = r.clone();
                distinct.sort();
                distinct.dedup();
                let k = distinct.len();
                k > 0 && (k..r.len()).all(|i| r[i] == r[i - k])
            });
            println!("periodic {}", if yes { "yes" } else { "no" });
        }
        "collect" => with(|s| s.collected = Some(Vec::new())),
        "flush" => flush(),
        "die" => process::exit(0),
        other => panic!("unknown primary step {other}"),
    }
    true
}
