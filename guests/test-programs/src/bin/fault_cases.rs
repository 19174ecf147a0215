//! The fault suite's guests (`host/tests/all/faults.rs`): `fault_cases
//! <fault>` forks a sibling that answers round trips, and a child that
//! commits `<fault>`; it prints the child's events (`error <code>`,
//! `exit <code> <signal>`), what the fault showed (`flood <n> in order`,
//! `forked <n> then <error>`), and `sibling <n>` when the sibling is done,
//! so a test sees that the fault stayed in its process.

#[path = "../sibling.rs"]
mod sibling;

use hive::{ForkOptions, process};
use std::cell::Cell;
use std::rc::Rc;

const FLOOD: u32 = 20_000;

fn main() {
    let argv = process::argv();
    let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
    if arg(1) == "child" {
        return child(&arg(2));
    }
    let me = arg(0);
    sibling::start(&me);
    let fault = arg(1);
    let mut options = ForkOptions::default();
    if fault == "procs" || fault == "os-procs" {
        // The child's subtree: itself and 4 more.
        options.max_procs = Some(5);
    }
    let child = Rc::new(hive::fork(&me, &["child", &fault], options).expect("fork"));
    let seen = Rc::new(Cell::new(0u32));
    let in_order = Rc::new(Cell::new(true));
    let (s, o) = (seen.clone(), in_order.clone());
    child.on_message(move |m| {
        let text = m.text();
        match text.parse::<u32>() {
            // The flood: every message, in order.
            Ok(n) => {
                o.set(o.get() && n == s.get());
                s.set(s.get() + 1);
                if s.get() == FLOOD {
                    println!("flood {} in order={}", s.get(), o.get());
                }
            }
            // The talker's report is for its own listener.
            Err(_) if text.starts_with("grandchild ") => {}
            Err(_) => println!("{text}"),
        }
    });
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
                    println!("grandchild down {}", signal.unwrap_or_default())
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
    hive::run();
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) + 1
}

fn child(fault: &str) {
    match fault {
        "echo" => sibling::echo(),
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
