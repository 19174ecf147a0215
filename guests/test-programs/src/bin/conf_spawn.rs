//! Conformance interpreter for OS-child scenarios (`cases/os-*.json`): the
//! Hive twin of `tests/conformance/node/spawn.js`, which documents the steps
//! and the exact lines. Keep the two in step.
//!
//! Events print only while a step waits (`wait`, `sleep`, `trace`), as
//! Node's listeners fire only while its interpreter awaits. stdout and
//! stderr are collected (read to the end once the child exited) and printed
//! at `close`.
use hive::os::{ExecError, ExecOutput, SpawnSyncResult};
use hive::{Child, ChildEvent, ExecOptions, SpawnOptions, Stdio, SyncOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn json(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn null_or<T: ToString>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn env(opts: &Value) -> Option<Vec<(String, String)>> {
    opts["env"].as_object().map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    })
}

fn shell(opts: &Value) -> Option<String> {
    match &opts["shell"] {
        Value::Bool(true) => Some("/bin/sh".into()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn stdio_kind(v: &Value) -> Stdio {
    match v.as_str() {
        Some("inherit") => Stdio::Inherit,
        Some("ignore") => Stdio::Ignore,
        _ => Stdio::Pipe,
    }
}

fn stdio(opts: &Value) -> [Stdio; 3] {
    match &opts["stdio"] {
        Value::Array(items) => [0, 1, 2].map(|i| items.get(i).map_or(Stdio::Pipe, stdio_kind)),
        other => [stdio_kind(other); 3],
    }
}

/// Node's exec error object, as spawn.js prints it. Spawn and buffer
/// errors carry no `killed`/`signal` fields in Node.
fn exec_error(e: &Option<ExecError>) -> String {
    let Some(e) = e else { return "null".into() };
    let no_kill_fields = e.error_code.is_some();
    let code = match (&e.error_code, e.code) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) => c.to_string(),
        (None, None) => "null".into(),
    };
    let (killed, signal) = if no_kill_fields {
        ("undefined".to_string(), "undefined".to_string())
    } else {
        (
            e.killed.to_string(),
            e.signal.clone().unwrap_or_else(|| "null".into()),
        )
    };
    format!(
        "{{code:{code},killed:{killed},signal:{signal},message:{}}}",
        json(&e.message)
    )
}

fn print_exec(name: &str, out: ExecOutput) {
    println!(
        "{name} error={} stdout={} stderr={}",
        exec_error(&out.error),
        json(&lossy(&out.stdout)),
        json(&lossy(&out.stderr))
    );
}

fn print_spawn_sync(r: SpawnSyncResult) {
    println!(
        "spawnSync status={} signal={} stdout={} stderr={} error={}",
        null_or(r.status),
        null_or(r.signal),
        json(&lossy(&r.stdout)),
        json(&lossy(&r.stderr)),
        null_or(r.error.map(|e| e.code))
    );
}

fn print_exec_sync(name: &str, result: Result<Vec<u8>, hive::ExecFailure>) {
    match result {
        Ok(out) => println!("{name} stdout={}", json(&lossy(&out))),
        Err(f) => println!(
            "{name} error status={} signal={} code={} stdout={} stderr={} message={}",
            null_or(f.error.code),
            null_or(f.error.signal.clone()),
            f.error
                .error_code
                .clone()
                .unwrap_or_else(|| "undefined".into()),
            json(&lossy(&f.stdout)),
            json(&lossy(&f.stderr)),
            json(&f.error.message)
        ),
    }
}

fn exec_options(opts: &Value) -> ExecOptions {
    ExecOptions {
        cwd: opts["cwd"].as_str().map(String::from),
        env: env(opts),
        shell: shell(opts),
        timeout_ms: opts["timeout"].as_u64(),
        kill_signal: opts["killSignal"].as_str().map(String::from),
        max_buffer: opts["maxBuffer"].as_u64(),
        ..Default::default()
    }
}

fn sync_options(opts: &Value) -> SyncOptions {
    SyncOptions {
        cwd: opts["cwd"].as_str().map(String::from),
        env: env(opts),
        argv0: opts["argv0"].as_str().map(String::from),
        shell: shell(opts),
        timeout_ms: opts["timeout"].as_u64(),
        kill_signal: opts["killSignal"].as_str().map(String::from),
        max_buffer: opts["maxBuffer"].as_u64(),
        input: opts["input"].as_str().map(|s| s.as_bytes().to_vec()),
        stderr: Stdio::Pipe,
        ..Default::default()
    }
}

/// The current spawned child and what the interpreter knows of it.
struct Current {
    child: Child,
    stdin: Option<hive::io::OutputStream>,
    stdout: Option<hive::io::InputStream>,
    stderr: Option<hive::io::InputStream>,
    /// Whether stdout/stderr were piped (Node's `child.stdout` non-null).
    piped: [bool; 2],
    collected: [Vec<u8>; 2],
    count_stdout: bool,
    closed: bool,
}

impl Current {
    /// Reads what the child wrote, to the end: called once it exited.
    fn collect(&mut self) {
        if let Some(s) = self.stdout.take() {
            self.collected[0] = hive::io::read_to_end(&s);
        }
        if let Some(s) = self.stderr.take() {
            self.collected[1] = hive::io::read_to_end(&s);
        }
    }
}

struct Interp {
    current: Option<Current>,
    seen: HashMap<&'static str, usize>,
    waited: HashMap<String, usize>,
}

impl Interp {
    /// Takes and prints one event; `false` once the current child closed
    /// (or there is none, or `until` passed).
    fn pull(&mut self, until: Option<Instant>) -> bool {
        let Some(cur) = self.current.as_mut().filter(|c| !c.closed) else {
            if let Some(t) = until {
                std::thread::sleep(t.saturating_duration_since(Instant::now()));
            }
            return false;
        };
        if let Some(deadline) = until {
            let now = Instant::now();
            if now >= deadline || !cur.child.wait_event_for(deadline - now) {
                return false;
            }
        }
        let Some(event) = cur.child.next_event() else {
            cur.closed = true;
            return false;
        };
        let kind = match &event {
            ChildEvent::Spawn => {
                println!("spawn");
                "spawn"
            }
            ChildEvent::Exit(s) => {
                let (c, sig) = hive::status_fields(s);
                println!("exit {c} {sig}");
                cur.collect();
                "exit"
            }
            ChildEvent::Error(e) => {
                println!(
                    "error {} {} {} {}",
                    e.code,
                    e.syscall.as_deref().unwrap_or("undefined"),
                    e.path.as_deref().unwrap_or("undefined"),
                    serde_json::to_string(&e.spawnargs).unwrap()
                );
                "error"
            }
            ChildEvent::Close(s) => {
                cur.collect();
                if cur.piped[0] {
                    if cur.count_stdout {
                        println!("stdout bytes {}", cur.collected[0].len());
                    } else {
                        println!("stdout {}", json(&lossy(&cur.collected[0])));
                    }
                }
                if cur.piped[1] {
                    println!("stderr {}", json(&lossy(&cur.collected[1])));
                }
                let (c, sig) = hive::status_fields(s);
                println!("close {c} {sig}");
                cur.closed = true;
                "close"
            }
            ChildEvent::Message(_)
            | ChildEvent::Disconnect
            | ChildEvent::Online
            | ChildEvent::Listening(_) => "other",
        };
        *self.seen.entry(kind).or_default() += 1;
        true
    }

    fn child(&self) -> &Child {
        &self.current.as_ref().expect("spawn first").child
    }
}

fn main() {
    let scenario: Value =
        serde_json::from_str(&std::env::args().nth(1).expect("scenario")).unwrap();
    let mut it = Interp {
        current: None,
        seen: HashMap::new(),
        waited: HashMap::new(),
    };
    let none = Value::Null;
    for step in scenario["parent"].as_array().unwrap() {
        let op = step[0].as_str().unwrap();
        match op {
            "spawn" => {
                let opts = step.get(3).unwrap_or(&none);
                let stdio = stdio(opts);
                let options = SpawnOptions {
                    cwd: opts["cwd"].as_str().map(String::from),
                    env: env(opts),
                    argv0: opts["argv0"].as_str().map(String::from),
                    stdio,
                    detached: opts["detached"].as_bool().unwrap_or(false),
                    shell: shell(opts),
                    timeout_ms: opts["timeout"].as_u64(),
                    kill_signal: opts["killSignal"].as_str().map(String::from),
                    ..Default::default()
                };
                let args = strings(&step[2]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let child = hive::spawn(step[1].as_str().unwrap(), &args, options).expect("spawn");
                it.current = Some(Current {
                    stdin: child.stdin(),
                    stdout: child.stdout(),
                    stderr: child.stderr(),
                    piped: [stdio[1] == Stdio::Pipe, stdio[2] == Stdio::Pipe],
                    collected: [Vec::new(), Vec::new()],
                    count_stdout: opts["countStdout"].as_bool().unwrap_or(false),
                    closed: false,
                    child,
                });
            }
            "write" => {
                let cur = it.current.as_ref().unwrap();
                let stdin = cur.stdin.as_ref().expect("piped stdin");
                hive::io::write_all(stdin, step[1].as_str().unwrap().as_bytes()).expect("write");
            }
            "end" => {
                it.current.as_mut().unwrap().stdin.take();
            }
            "kill" => {
                let signal = step.get(1).and_then(Value::as_str).unwrap_or("SIGTERM");
                match it.child().kill(signal) {
                    Ok(ok) => println!("kill {ok}"),
                    Err(e) => println!("kill error {e}"),
                }
            }
            "killed" => println!("killed {}", it.child().killed()),
            "pid" => println!(
                "pid {}",
                if it.child().pid().is_some() {
                    "number"
                } else {
                    "undefined"
                }
            ),
            "status" => {
                let (c, s) = it
                    .child()
                    .exit_status()
                    .map(|s| hive::status_fields(&s))
                    .unwrap_or(("null".into(), "null".into()));
                println!("exitCode {c} signalCode {s}");
            }
            "spawnargs" => println!(
                "spawnfile {} spawnargs {}",
                it.child().spawnfile(),
                serde_json::to_string(&it.child().spawnargs()).unwrap()
            ),
            "wait" => {
                let k = step[1].as_str().unwrap().to_string();
                let want = it.waited.get(&k).copied().unwrap_or(0) + 1;
                it.waited.insert(k.clone(), want);
                while it.seen.get(k.as_str()).copied().unwrap_or(0) < want {
                    if !it.pull(None) {
                        println!("(no {k})");
                        break;
                    }
                }
            }
            "sleep" => {
                let deadline = Instant::now() + Duration::from_millis(step[1].as_u64().unwrap());
                while it.pull(Some(deadline)) {}
            }
            "trace" => while it.pull(None) {},
            "exec" => {
                let opts = step.get(2).unwrap_or(&none);
                let child =
                    hive::exec(step[1].as_str().unwrap(), exec_options(opts)).expect("exec");
                print_exec("exec", child.output().expect("exec output"));
            }
            "execFile" => {
                let opts = step.get(3).unwrap_or(&none);
                let args = strings(&step[2]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let child = hive::exec_file(step[1].as_str().unwrap(), &args, exec_options(opts))
                    .expect("execFile");
                print_exec("execFile", child.output().expect("execFile output"));
            }
            "spawnSync" => {
                let opts = step.get(3).unwrap_or(&none);
                let args = strings(&step[2]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = hive::spawn_sync(step[1].as_str().unwrap(), &args, sync_options(opts))
                    .expect("spawnSync");
                print_spawn_sync(r);
            }
            "execSync" => {
                let opts = step.get(2).unwrap_or(&none);
                let r = hive::exec_sync(step[1].as_str().unwrap(), sync_options(opts))
                    .expect("execSync");
                print_exec_sync("execSync", r);
            }
            "execFileSync" => {
                let opts = step.get(3).unwrap_or(&none);
                let args = strings(&step[2]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = hive::exec_file_sync(step[1].as_str().unwrap(), &args, sync_options(opts))
                    .expect("execFileSync");
                print_exec_sync("execFileSync", r);
            }
            "pipeline" => {
                let spec = |v: &Value| (v[0].as_str().unwrap().to_owned(), strings(&v[1]));
                let (c1, a1) = spec(&step[1]);
                let (c2, a2) = spec(&step[2]);
                let a1: Vec<&str> = a1.iter().map(String::as_str).collect();
                let a2: Vec<&str> = a2.iter().map(String::as_str).collect();
                let first = hive::spawn(&c1, &a1, SpawnOptions::default()).expect("spawn");
                let second = hive::spawn(&c2, &a2, SpawnOptions::default()).expect("spawn");
                hive::pipe(first.stdout().unwrap(), second.stdin().unwrap());
                let out = hive::io::read_to_end(&second.stdout().unwrap());
                let status = second.wait();
                first.wait();
                println!(
                    "pipeline {} exit {}",
                    json(&lossy(&out)),
                    null_or(status.code)
                );
            }
            other => panic!("unknown step {other}"),
        }
    }
    while it.pull(None) {}
}
