//! The soak (the limits issue, item 4; `just soak` runs it long, and
//! `host/tests/all/faults.rs` short): `fault_soak MESSAGES DEPTH KILL_MS`.
//!
//! The root sends MESSAGES numbered messages down a chain of DEPTH
//! guests, as fast as `send` takes them (past the soft limit `send` says
//! `false` and the root waits a tick) with at most `WINDOW` in the chain
//! (a kill's loss is reported up at once); the last guest sends each one back
//! up, so every message crosses the chain twice and returns to the root.
//! The guest in the middle of the chain supervises the rest of it
//! (`hive::supervisor`) and kills its child at random every ~KILL_MS
//! (`SIGKILL`): the killed subtree and what was inside it go, the
//! supervisor starts it again, and the middle counts what it had sent down
//! and never got back. The root checks that every number came back in
//! order (no duplicate, no reordering), and that sent = returned + lost in
//! the killed subtrees; it prints one JSON line, then `settled`, and stays
//! up until the host is told to stop.

use hive::process;
use hive::supervisor::{ChildSpec, RestartPolicy, Supervisor};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The most messages in the chain at once (sent, not yet back or lost).
const WINDOW: u64 = 4096;

fn main() {
    let argv = process::argv();
    let arg = |i: usize, default: u64| argv.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (messages, depth, kill_ms) = (arg(1, 1_000_000), arg(2, 10), arg(3, 200));
    // A chain guest: `fault_soak - DEPTH KILL_MS LEVEL`.
    if argv.get(1).map(String::as_str) == Some("-") {
        return link(depth, kill_ms, arg(4, 1));
    }
    root(messages, depth, kill_ms);
}

/// The root: source and sink.
fn root(messages: u64, depth: u64, kill_ms: u64) {
    let me = process::argv()[0].clone();
    let first = hive::fork(
        &me,
        &["-", &depth.to_string(), &kill_ms.to_string(), "1"],
        hive::ForkOptions::default(),
    )
    .expect("fork");
    let started = Instant::now();
    let next_back = Rc::new(Cell::new(0u64));
    let (returned, in_order, lost, kills) = (
        Rc::new(Cell::new(0u64)),
        Rc::new(Cell::new(true)),
        Rc::new(Cell::new(0u64)),
        Rc::new(Cell::new(0u64)),
    );
    let first = Rc::new(first);
    let sent = Rc::new(Cell::new(0u64));
    // Send in slices from the loop, so returning messages are taken too.
    let f = first.clone();
    let s = sent.clone();
    let pump = Rc::new(RefCell::new(None::<hive::TimerId>));
    let p = pump.clone();
    let (rw, lw) = (returned.clone(), lost.clone());
    *pump.borrow_mut() = Some(hive::set_interval(1, move || {
        for _ in 0..1000 {
            // End-to-end flow control: at most WINDOW in the chain.
            if s.get() - rw.get() - lw.get() >= WINDOW {
                return;
            }
            if s.get() == messages {
                let _ = f.send(&serde_json::json!({ "done": true }));
                if let Some(t) = p.borrow_mut().take() {
                    hive::clear_timeout(t);
                }
                return;
            }
            // Sent either way; `false` is backpressure: the rest of this
            // slice waits for the next tick.
            let more = f.send(&s.get().to_string()).expect("send");
            s.set(s.get() + 1);
            if !more {
                return;
            }
        }
    }));
    let (r, o, l, k, n) = (
        returned.clone(),
        in_order.clone(),
        lost.clone(),
        kills.clone(),
        next_back.clone(),
    );
    first.on_message(move |m| {
        let text = m.text();
        if let Ok(seq) = text.parse::<u64>() {
            if r.get() == 0 {
                // The chain is up: the driver counts descriptors now.
                println!("ready");
            }
            // In order, none twice: each is greater than the last.
            o.set(o.get() && seq >= n.get());
            n.set(seq + 1);
            r.set(r.get() + 1);
            return;
        }
        let account: serde_json::Value = serde_json::from_str(&text).unwrap();
        // A kill's loss, as the middle counted it.
        if let Some(n) = account["lost_now"].as_u64() {
            l.set(l.get() + n);
            return;
        }
        // The middle's final account: its kills, and its total loss, which
        // must be what it reported kill by kill.
        k.set(account["kills"].as_u64().unwrap());
        let total_agrees = account["lost"].as_u64() == Some(l.get());
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "bench": "soak",
                "messages": messages,
                "depth": depth,
                "returned": r.get(),
                "lost": l.get(),
                "kills": k.get(),
                "in_order": o.get(),
                "accounted": total_agrees && r.get() + l.get() == messages,
                "seconds": (elapsed * 100.0).round() / 100.0,
                "hops_per_s": ((2 * depth * r.get()) as f64 / elapsed).round(),
            })
        );
        hive::set_timeout(300, || println!("settled"));
        // Up until the host is told to stop: it measures what is left.
        hive::set_interval(60_000, || {});
    });
    hive::run();
}

/// A guest of the chain at `level`: forwards down what comes from above,
/// and up what comes from below. The last one turns messages around; the
/// middle one supervises (and kills at random) the rest of the chain.
fn link(depth: u64, kill_ms: u64, level: u64) {
    let me = process::argv()[0].clone();
    if level == depth {
        // The end of the chain: everything goes back up, `done` too.
        process::on_message(|m| {
            let _ = process::send(m);
        });
        return hive::run();
    }
    let args: Vec<String> = vec![
        "-".into(),
        depth.to_string(),
        kill_ms.to_string(),
        (level + 1).to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if level != depth / 2 {
        let below = Rc::new(hive::fork(&me, &args, hive::ForkOptions::default()).expect("fork"));
        let b = below.clone();
        // A failed send is a subtree being torn down by a kill: it goes.
        process::on_message(move |m| {
            let _ = b.send(m);
        });
        below.on_message(|m| {
            let _ = process::send(m);
        });
        return hive::run();
    }
    middle(&me, &args, kill_ms);
}

/// What the middle has sent down and not yet seen come back, in order.
#[derive(Default)]
struct Middle {
    /// Numbers sent down to the current child, not back yet.
    outstanding: VecDeque<u64>,
    /// Messages from above while no child runs (between a kill and its
    /// restart): sent when the new one starts.
    waiting: VecDeque<hive::Message>,
    lost: u64,
    kills: u64,
    /// `done` came from above: when everything sent down is back (or
    /// lost), the account goes up.
    done: bool,
    /// The `done` message, sent again if a kill took it.
    done_msg: Option<hive::Message>,
    up: bool,
}

fn middle(me: &str, args: &[&str], kill_ms: u64) {
    let state = Rc::new(RefCell::new(Middle::default()));
    let supervisor = Supervisor::one_for_one()
        .policy(RestartPolicy {
            max_restarts: u32::MAX,
            window: Duration::from_secs(1),
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        })
        .child(ChildSpec::fork("rest", me, args))
        .start();
    // Wires the running child: what it sends back goes up.
    let wire = {
        let state = state.clone();
        move |child: &hive::Child| {
            let s = state.clone();
            child.on_message(move |m| {
                let mut st = s.borrow_mut();
                if let Ok(seq) = m.text().parse::<u64>() {
                    if st.outstanding.front() == Some(&seq) {
                        st.outstanding.pop_front();
                    }
                    process::send(m).unwrap();
                } else if st.done && !st.up {
                    // `done` came back: nothing is outstanding any more.
                    st.up = true;
                    let account = serde_json::json!({ "lost": st.lost, "kills": st.kills });
                    process::send(&account.to_string()).unwrap();
                }
            });
            let s = state.clone();
            child.on_exit(move |_, _| {
                // Whatever it had not sent back went with it; `done`, if it
                // had it, goes down again to the next one.
                let mut st = s.borrow_mut();
                let now = st.outstanding.len() as u64;
                st.lost += now;
                st.outstanding.clear();
                // Up at once: the root's window counts it as gone.
                process::send(&serde_json::json!({ "lost_now": now }).to_string()).unwrap();
                if st.done && !st.up {
                    let again = st.done_msg.clone().expect("done came");
                    st.waiting.push_back(again);
                }
            });
        }
    };
    let send_down = {
        let state = state.clone();
        let supervisor = supervisor.clone();
        move |m: hive::Message| {
            let child = supervisor.child("rest");
            let mut st = state.borrow_mut();
            match child {
                Some(child) => {
                    // A child killed a moment ago refuses it (its channel
                    // closed before its `exit` came): not accepted, so it
                    // waits for the next one.
                    if child.send(m.clone()).is_err() {
                        st.waiting.push_back(m);
                        return;
                    }
                    if let Ok(seq) = m.text().parse::<u64>() {
                        st.outstanding.push_back(seq);
                    } else {
                        st.done = true;
                        st.done_msg = Some(m);
                    }
                }
                None => st.waiting.push_back(m),
            }
        }
    };
    wire(&supervisor.child("rest").unwrap());
    {
        let (state, supervisor, wire, send_down) = (
            state.clone(),
            supervisor.clone(),
            wire.clone(),
            send_down.clone(),
        );
        supervisor.clone().on_restart(move |_| {
            let child = supervisor.child("rest").unwrap();
            wire(&child);
            let waiting: Vec<hive::Message> = state.borrow_mut().waiting.drain(..).collect();
            for m in waiting {
                send_down(m);
            }
        });
    }
    process::on_message(send_down);
    // Random kills: every KILL_MS on average, not after `done`.
    let started = Instant::now();
    let (s, sup) = (state.clone(), supervisor.clone());
    let next = Rc::new(Cell::new(kill_ms));
    let n = next.clone();
    hive::set_interval(1, move || {
        let elapsed = started.elapsed().as_millis() as u64;
        if elapsed < n.get() || s.borrow().done {
            return;
        }
        // The clock's low bits pick the next gap: 0.5 to 1.5 KILL_MS.
        let jitter = (started.elapsed().as_nanos() as u64 / 1000) % kill_ms.max(1);
        n.set(elapsed + kill_ms / 2 + jitter);
        if let Some(child) = sup.child("rest") {
            s.borrow_mut().kills += 1;
            child.kill("SIGKILL").unwrap();
        }
    });
    hive::run();
}
