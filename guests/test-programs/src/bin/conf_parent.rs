//! Conformance parent: runs the scenario in argv[1] (JSON `{"parent": [...]}`)
//! and prints one line per event, the Hive twin of
//! `tests/conformance/node/parent.js`. Events print only while a step waits
//! (`wait`, `sleep`, `trace`), as Node's listeners fire only while its
//! interpreter awaits; the run ends with an implicit `trace`.
//!
//! `fork` forks `conf_child.wasm` next to this module unless its options
//! name a `module` (the runner's `wasm→node` kind passes
//! `tests/conformance/node/child.js`); `execPath`, `execArgv` and
//! `serialization` are Node's fork options.
use hive::{Child, ChildEvent, ForkOptions, Serialization, fork};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[path = "../conf_json.rs"]
mod conf_json;

fn kind(e: &ChildEvent) -> &'static str {
    match e {
        ChildEvent::Spawn => "spawn",
        ChildEvent::Online => "online",
        ChildEvent::Listening(_) => "listening",
        ChildEvent::Message(_) => "message",
        ChildEvent::Disconnect => "disconnect",
        ChildEvent::Exit(_) => "exit",
        ChildEvent::Close(_) => "close",
        ChildEvent::Error(_) => "error",
    }
}

fn line(e: &ChildEvent) -> String {
    let status = |s: &hive::ExitStatus| {
        let (c, sig) = hive::status_fields(s);
        format!("{c} {sig}")
    };
    match e {
        ChildEvent::Message(hive::Message::Json(t)) => format!("message {t}"),
        ChildEvent::Message(hive::Message::Bytes(b)) => format!("message bytes {}", b.len()),
        ChildEvent::Exit(s) => format!("exit {}", status(s)),
        ChildEvent::Close(s) => format!("close {}", status(s)),
        ChildEvent::Error(e) => format!("error {}", e.code),
        other => kind(other).to_string(),
    }
}

struct Parent {
    child: Option<Child>,
    seen: HashMap<&'static str, usize>,
    waited: HashMap<String, usize>,
    closed: bool,
}

impl Parent {
    fn child(&self) -> &Child {
        self.child.as_ref().expect("fork first")
    }

    /// Takes and prints one event; `false` once the child has closed.
    fn pull(&mut self, until: Option<Instant>) -> bool {
        if self.closed {
            if let Some(t) = until {
                std::thread::sleep(t.saturating_duration_since(Instant::now()));
            }
            return false;
        }
        let child = self.child().clone();
        let event = match until {
            None => child.next_event(),
            Some(deadline) => {
                // Wait for this child's event or the deadline.
                let pollable = poll_until(&child, deadline);
                if !pollable {
                    return false;
                }
                child.next_event()
            }
        };
        match event {
            Some(e) => {
                println!("{}", line(&e));
                *self.seen.entry(kind(&e)).or_default() += 1;
                if matches!(e, ChildEvent::Close(_)) {
                    self.closed = true;
                    // Events emitted in the same turn as `close` (a failed
                    // fork's `disconnect`) print before the script goes on,
                    // as in Node.
                    while child.wait_event_for(Duration::ZERO) {
                        let Some(late) = child.next_event() else {
                            break;
                        };
                        println!("{}", line(&late));
                        *self.seen.entry(kind(&late)).or_default() += 1;
                    }
                }
                true
            }
            None => {
                self.closed = true;
                false
            }
        }
    }
}

/// Blocks until `child` has an event (true) or `deadline` passes (false).
fn poll_until(child: &Child, deadline: Instant) -> bool {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if child.wait_event_for(deadline - now) {
            return true;
        }
    }
}

fn main() {
    let scenario: Value =
        serde_json::from_str(&std::env::args().nth(1).expect("scenario")).unwrap();
    let mut p = Parent {
        child: None,
        seen: HashMap::new(),
        waited: HashMap::new(),
        closed: false,
    };
    for step in scenario["parent"].as_array().unwrap() {
        let op = step[0].as_str().unwrap();
        match op {
            "fork" => {
                let steps = step[1].to_string();
                let opts = &step[2];
                let missing = opts["missing"].as_bool().unwrap_or(false);
                let mut options = ForkOptions {
                    silent: opts["silent"].as_bool().unwrap_or(false),
                    timeout_ms: opts["timeout"].as_u64(),
                    kill_signal: opts["killSignal"].as_str().map(String::from),
                    exec_path: opts["execPath"].as_str().map(String::from),
                    exec_argv: opts["execArgv"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| a.as_str().expect("execArgv strings").to_string())
                        .collect(),
                    serialization: match opts["serialization"].as_str() {
                        None | Some("json") => Serialization::Json,
                        Some("advanced") => Serialization::Advanced,
                        Some(other) => panic!("unknown serialization {other}"),
                    },
                    ..Default::default()
                };
                let me = std::env::args().next().unwrap();
                let dir = &me[..me.rfind('/').unwrap()];
                let module = match opts["module"].as_str() {
                    // Another child (the runner's `node/child.js`): as
                    // `node/parent.js` does, a missing child is a program
                    // that is not there.
                    Some(module) => {
                        if missing {
                            options.exec_path = Some("/nonexistent/bin/node".into());
                        }
                        module.to_string()
                    }
                    // Missing, in a directory it may fork from (elsewhere
                    // the answer is EACCES, whether or not it exists).
                    None if missing => format!("{dir}/nonexistent/conf_child.wasm"),
                    None => format!("{dir}/conf_child.wasm"),
                };
                match fork(&module, &[&steps], options) {
                    Ok(child) => {
                        p.child = Some(child);
                        p.closed = false;
                    }
                    Err(e) => println!("fork error {e}"),
                }
            }
            "send" => {
                let text = conf_json::stringify(&step[1]).expect("sendable");
                match p.child().send(hive::Message::Json(text)) {
                    Ok(ok) => println!("send {ok}"),
                    Err(e) => println!("send false\nsend error {e}"),
                }
            }
            // Node's `send` without a callback: a failure is an `error`
            // event (Hive reports a dead channel's write that way anyway).
            "send-event" => {
                let text = conf_json::stringify(&step[1]).expect("sendable");
                match p.child().send(hive::Message::Json(text)) {
                    Ok(ok) => println!("send {ok}"),
                    Err(e) => println!("send false\nerror {e}"),
                }
            }
            "disconnect" => {
                if let Err(e) = p.child().disconnect() {
                    println!("error {e}");
                }
            }
            "kill" => {
                let signal = step.get(1).and_then(Value::as_str).unwrap_or("SIGTERM");
                match p.child().kill(signal) {
                    Ok(ok) => println!("kill {ok}"),
                    Err(e) => println!("kill error {e}"),
                }
            }
            "connected" => println!("connected {}", p.child().connected()),
            "killed" => println!("killed {}", p.child().killed()),
            "pid" => println!(
                "pid {}",
                if p.child().pid().is_some() {
                    "number"
                } else {
                    "undefined"
                }
            ),
            "status" => {
                let (c, s) = p
                    .child()
                    .exit_status()
                    .map(|s| hive::status_fields(&s))
                    .unwrap_or(("null".into(), "null".into()));
                println!("exitCode {c} signalCode {s}");
            }
            "wait" => {
                let k = step[1].as_str().unwrap().to_string();
                let want = p.waited.get(&k).copied().unwrap_or(0) + 1;
                p.waited.insert(k.clone(), want);
                while p.seen.get(k.as_str()).copied().unwrap_or(0) < want {
                    if !p.pull(None) {
                        println!("(no {k})");
                        break;
                    }
                }
            }
            "sleep" => {
                let deadline = Instant::now() + Duration::from_millis(step[1].as_u64().unwrap());
                while p.pull(Some(deadline)) {}
            }
            "trace" => while p.pull(None) {},
            other => panic!("unknown parent step {other}"),
        }
    }
    if p.child.is_some() {
        while p.pull(None) {}
    }
}
