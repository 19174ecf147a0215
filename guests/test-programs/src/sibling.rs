//! What the fault and limits scenarios share (`fault_cases`,
//! `limits_cases`): the sibling, a subtree beside the faulty child that
//! keeps working — a pinger (`<module> child pinger`) sending numbered
//! messages to its own echo (`<module> child echo`) one round trip after
//! another, checking each comes back in order — and how a scenario commits
//! its fault and prints a child's end.
//!
//! Two modes. A test: the pinger does `ROUND_TRIPS` round trips and
//! reports `sibling <n>`, which the scenario prints; the fault is committed
//! once. The bench (`bench/faults.py`, env `FAULT_WINDOW_MS`): the pinger
//! runs round trips for that long, the fault is committed again each time
//! its process ends, and the scenario prints `sibling-rate <round trips/s>
//! faults <n>` and exits — the sibling's rate under a fault that never
//! stops, to set beside its rate with no fault (`none`).

use hive::{Child, ForkOptions, process};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Round trips the sibling completes in a test.
pub const ROUND_TRIPS: u32 = 200;

thread_local! {
    /// Faulty children started so far.
    static FAULTS: Cell<u32> = const { Cell::new(0) };
    /// The faulty child now running (and the pinger), kept alive.
    static KEPT: RefCell<Vec<Child>> = const { RefCell::new(Vec::new()) };
}

/// The bench's window, if this is a bench run.
fn window() -> Option<Duration> {
    let ms = std::env::var("FAULT_WINDOW_MS").ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// Whether the fault repeats for a bench window (so a scenario prints
/// nothing per faulty child).
pub fn measuring() -> bool {
    window().is_some()
}

/// Forks the sibling of `me`: its report is printed, and in the bench it
/// ends this run.
pub fn start(me: &str) {
    let pinger = hive::fork(me, &["child", "pinger"], ForkOptions::default()).expect("fork");
    pinger.on_message(|m| {
        let text = m.text();
        match text.strip_prefix("rate ") {
            Some(rate) => {
                println!("sibling-rate {rate} faults {}", FAULTS.get());
                process::exit(0);
            }
            None => println!("{text}"),
        }
    });
    KEPT.with_borrow_mut(|kept| kept.push(pinger));
}

/// Commits the fault: `fork` starts the faulty child, its listeners
/// attached. Once in a test; in the bench, again each time it closes.
pub fn commit(fork: impl Fn() -> Child + 'static) {
    again(Rc::new(fork));
}

fn again(fork: Rc<dyn Fn() -> Child>) {
    let child = fork();
    FAULTS.set(FAULTS.get() + 1);
    if measuring() {
        let fork = fork.clone();
        child.on_close(move |_, _| again(fork.clone()));
    }
    KEPT.with_borrow_mut(|kept| {
        kept.truncate(1);
        kept.push(child);
    });
}

/// The pinger's side: numbered round trips with its own echo, each
/// checked; reports `sibling <n>` (or `sibling out of order ...`), or in
/// the bench `rate <per second>`, to its parent.
pub fn pinger() {
    let me = process::argv()[0].clone();
    let echo = Rc::new(hive::fork(&me, &["child", "echo"], ForkOptions::default()).expect("fork"));
    let window = window();
    let done = Rc::new(Cell::new(0u32));
    // Timed from the first answer (the echo has started by then).
    let since = Rc::new(Cell::new(None::<Instant>));
    let (e, d) = (echo.clone(), done.clone());
    echo.on_message(move |m| {
        let got = m.text();
        if got != d.get().to_string() {
            process::send(&format!(
                "sibling out of order: {got} where {} was due",
                d.get()
            ))
            .unwrap();
            e.kill("SIGTERM").ok();
            return;
        }
        let started = *since.get().get_or_insert_with(Instant::now);
        since.set(Some(started));
        d.set(d.get() + 1);
        let report = match window {
            Some(w) if started.elapsed() >= w => {
                let rate = f64::from(d.get() - 1) / started.elapsed().as_secs_f64();
                Some(format!("rate {rate:.0}"))
            }
            None if d.get() == ROUND_TRIPS => Some(format!("sibling {}", d.get())),
            _ => None,
        };
        match report {
            Some(report) => {
                process::send(&report).unwrap();
                e.kill("SIGTERM").ok();
            }
            None => {
                e.send(&d.get().to_string()).unwrap();
            }
        }
    });
    echo.send("0").unwrap();
    hive::run();
}

/// The echo's side: answers every message until it is killed.
pub fn echo() {
    process::on_message(|m| {
        process::send(m).unwrap();
    });
    hive::run();
}

/// Prints `child`'s `error`s (`error <code>`) and how it ended, at `close`
/// (an OS child's output may come after its `exit`): `exit <code>
/// <signal>`, `null` for what is not there. Nothing in the bench.
pub fn print_end(child: &Child) {
    if measuring() {
        child.on_error(|_| {});
        return;
    }
    child.on_error(|e| println!("error {}", e.code));
    child.on_close(|code, signal| {
        let show = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        println!(
            "exit {} {}",
            show(code.map(|c| c.to_string())),
            show(signal)
        );
    });
}
