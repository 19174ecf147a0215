//! The fault suite's guests (`host/tests/all/faults.rs`, and
//! `bench/faults.py`): `fault_cases <fault> [script.js]` forks a sibling
//! (see `sibling.rs`) and a child that commits `<fault>` (`none`: no
//! child); it prints the child's events (`error <code>`, `exit <code>
//! <signal>`), what the fault showed (`flood <n> in order=<bool>`, `forked
//! <n> then <error>`), and `sibling <n>` when the sibling is done, so a
//! test sees that the fault stayed in its process. The `node-*` faults
//! fork the Node program `script.js` (`guests/test-programs/node/
//! fault_child.js`).

#[path = "../sibling.rs"]
mod sibling;

use hive::{ForkOptions, Message, process};
use std::cell::Cell;
use std::rc::Rc;

const FLOOD: u32 = 20_000;
/// Numbered messages a Node child sends (`node-garbage`) or echoes
/// (`node-bad-json`), one in every hundred followed (or replaced) by a
/// line that is not a message.
const NODE_MESSAGES: u32 = 1_000;

fn main() {
    let argv = process::argv();
    let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
    if arg(1) == "child" {
        return child(&arg(2));
    }
    let me = arg(0);
    sibling::start(&me);
    let fault = arg(1);
    // A Node child's script, for the `node-*` faults.
    let script = arg(2);
    if fault != "none" {
        sibling::commit(move || start(&me, &fault, &script));
    }
    hive::run();
}

/// Prints `text`, unless this is a bench run (where the fault repeats).
fn say(text: &str) {
    if !sibling::measuring() {
        println!("{text}");
    }
}

/// Forks the child that commits `fault`, with what watches it.
fn start(me: &str, fault: &str, script: &str) -> hive::Child {
    let mut options = ForkOptions::default();
    match fault {
        // The child's subtree: itself and 4 more.
        "procs" | "os-procs" | "os-bomb" => options.max_procs = Some(5),
        // An infinite loop ends at its timeout, as Node's `timeout`.
        "spin" => options.timeout_ms = Some(300),
        _ => {}
    }
    let child = match fault {
        "node-garbage" => hive::fork(script, &["garbage"], options),
        "node-bad-json" => hive::fork(script, &["echo"], options),
        _ => hive::fork(me, &["child", fault], options),
    }
    .expect("fork");
    watch_numbers(&child, fault);
    if fault == "node-bad-json" {
        // Every hundredth message is not JSON: refused by `send`, and
        // never delivered; the others are echoed, in order.
        let mut refused = Vec::new();
        for n in 0..NODE_MESSAGES {
            if skipped(fault, n) {
                refused.push(child.send(Message::Json("{\"n\": ".into())).unwrap_err());
            } else {
                child.send(&n.to_string()).unwrap();
            }
        }
        say(&format!("refused {}: {}", refused.len(), refused[0]));
    }
    if fault == "talker" {
        // Killed mid-conversation with its own child, which it reports:
        // the grandchild ends with it (no orphans), and says so.
        let c = child.clone();
        child.on_message(move |m| {
            if let Ok(pid) = m
                .text()
                .strip_prefix("grandchild ")
                .unwrap_or("")
                .parse::<u32>()
            {
                process::monitor(pid).unwrap();
                process::on_down(|_, _, _, signal| {
                    say(&format!("grandchild down {}", signal.unwrap_or_default()))
                });
                let c = c.clone();
                // Let them talk a while first.
                hive::set_timeout(50, move || {
                    c.kill("SIGKILL").unwrap();
                });
            }
        });
    }
    if fault == "blocked" {
        // Killed while it waits in a host call.
        let c = child.clone();
        child.on_message(move |m| {
            if m.text() == "waiting" {
                c.kill("SIGKILL").unwrap();
            }
        });
    }
    sibling::print_end(&child);
    child
}

/// Whether `n` is one of the numbers `fault` never delivers.
fn skipped(fault: &str, n: u32) -> bool {
    fault == "node-bad-json" && n % 100 == 50
}

/// Checks the numbered messages `child` sends (a flood, a Node child's):
/// each the one due, none lost, none twice; `<what> <n> in order=<bool>`
/// once they are all in. Other messages are printed.
fn watch_numbers(child: &hive::Child, fault: &str) {
    let (what, due) = match fault {
        "flood" => ("flood", FLOOD),
        "node-garbage" => ("node sent", NODE_MESSAGES),
        "node-bad-json" => ("node echoed", NODE_MESSAGES - NODE_MESSAGES / 100),
        _ => ("", 0),
    };
    let fault = fault.to_owned();
    let next = Cell::new(0u32);
    let count = Cell::new(0u32);
    let in_order = Cell::new(true);
    let c = child.clone();
    child.on_message(move |m| {
        let text = m.text();
        let Ok(n) = text.parse::<u32>() else {
            // The talker's report is for its own listener.
            if !text.starts_with("grandchild ") {
                say(&text);
            }
            return;
        };
        in_order.set(in_order.get() && n == next.get());
        count.set(count.get() + 1);
        next.set((n + 1..).find(|&k| !skipped(&fault, k)).unwrap());
        if count.get() == due {
            say(&format!("{what} {due} in order={}", in_order.get()));
            if fault == "node-bad-json" {
                c.disconnect().unwrap();
            }
        }
    });
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) + 1
}

fn child(fault: &str) {
    match fault {
        "echo" => sibling::echo(),
        "pinger" => sibling::pinger(),
        "trap" => panic!("a guest that traps"),
        "stack" => {
            recurse(0);
        }
        "flood" => {
            // As fast as it can; `send` past the soft limit says `false`
            // and the host applies backpressure, never a loss.
            for n in 0..FLOOD {
                process::send(&n.to_string()).unwrap();
            }
        }
        "procs" => {
            // Forks until its subtree is full.
            let me = process::argv()[0].clone();
            let mut children = Vec::new();
            loop {
                match hive::fork(&me, &["child", "idle"], ForkOptions::default()) {
                    Ok(c) => children.push(c),
                    Err(e) => {
                        process::send(&format!("forked {} then {e}", children.len())).unwrap();
                        break;
                    }
                }
            }
            for c in &children {
                c.kill("SIGTERM").unwrap();
            }
        }
        "os-procs" => {
            // Starts OS programs until its subtree is full.
            let mut children = Vec::new();
            loop {
                match hive::os::spawn("sleep", &["30"], hive::os::SpawnOptions::default()) {
                    Ok(c) => children.push(c),
                    Err(e) => {
                        process::send(&format!("spawned {} then {e}", children.len())).unwrap();
                        break;
                    }
                }
            }
            for c in &children {
                c.kill("SIGKILL").unwrap();
            }
        }
        "os-bomb" => {
            // A shell forking until the kernel refuses (its share's pids
            // cgroup): how many it got; then wasm forks, until what the
            // shell left behind and they fill the share.
            let bomb = hive::os::spawn(
                "sh",
                &[
                    "-c",
                    "n=0; while :; do sleep 30 >/dev/null 2>&1 & n=$((n+1)); echo $n; done",
                ],
                hive::os::SpawnOptions::default(),
            )
            .expect("spawn");
            let out = Rc::new(std::cell::RefCell::new(String::new()));
            let err = Rc::new(std::cell::RefCell::new(String::new()));
            let (o, e) = (out.clone(), err.clone());
            bomb.on_stdout(move |b| o.borrow_mut().push_str(&String::from_utf8_lossy(b)));
            bomb.on_stderr(move |b| e.borrow_mut().push_str(&String::from_utf8_lossy(b)));
            bomb.on_close(move |code, _| {
                let out = out.borrow();
                let forked = out.lines().last().unwrap_or("0");
                let refused = err.borrow().contains("fork");
                let me = process::argv()[0].clone();
                let mut children = Vec::new();
                let stop = loop {
                    match hive::fork(&me, &["child", "idle"], ForkOptions::default()) {
                        Ok(c) => children.push(c),
                        Err(e) => break e,
                    }
                };
                process::send(&format!(
                    "bomb forked {forked} (refused={refused}), sh exit {}; then forked {} then {stop}",
                    code.unwrap_or(-1),
                    children.len()
                ))
                .unwrap();
                for c in &children {
                    c.kill("SIGKILL").unwrap();
                }
            });
            hive::run();
        }
        "talker" => {
            // Talks with its own child until it is killed.
            let me = process::argv()[0].clone();
            let echo =
                Rc::new(hive::fork(&me, &["child", "echo"], ForkOptions::default()).unwrap());
            process::send(&format!("grandchild {}", echo.pid().unwrap())).unwrap();
            let e = echo.clone();
            echo.on_message(move |m| {
                e.send(m).unwrap();
            });
            echo.send("ping").unwrap();
            hive::run();
        }
        "spin" => {
            // An infinite loop, never yielding.
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "idle" => {
            // Alive until killed.
            hive::set_interval(60_000, || {});
            hive::run();
        }
        "blocked" => {
            process::send("waiting").unwrap();
            // Blocked in a host call until killed.
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        other => panic!("unknown fault {other:?}"),
    }
}
