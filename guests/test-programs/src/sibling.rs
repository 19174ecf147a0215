//! What the fault and limits scenarios share: the sibling (`fault_cases`,
//! `limits_cases`): a fork of the same module (`<module> child echo`) that
//! echoes messages, driven through `ROUND_TRIPS` round trips one after
//! another while another child misbehaves. `sibling <n>` is printed when
//! they are done, so a test sees the fault stayed in its own process; and
//! how a scenario prints a child's end.

use hive::ForkOptions;
use std::cell::Cell;
use std::rc::Rc;

/// Round trips the sibling completes.
pub const ROUND_TRIPS: u32 = 200;

/// Forks the sibling of `me` and starts its round trips.
pub fn start(me: &str) {
    let echo = Rc::new(hive::fork(me, &["child", "echo"], ForkOptions::default()).expect("fork"));
    let done = Rc::new(Cell::new(0));
    let (e, d) = (echo.clone(), done.clone());
    echo.on_message(move |m| {
        d.set(d.get() + 1);
        if d.get() == ROUND_TRIPS {
            println!("sibling {}", d.get());
            e.kill("SIGTERM").ok();
        } else {
            e.send(m).unwrap();
        }
    });
    echo.send("ping").unwrap();
}

/// The sibling's side: echoes every message until it is killed.
pub fn echo() {
    hive::process::on_message(|m| {
        hive::process::send(m).unwrap();
    });
    hive::run();
}

/// Prints `child`'s `error`s (`error <code>`) and how it ended, at `close`
/// (an OS child's output may come after its `exit`): `exit <code>
/// <signal>`, `null` for what is not there.
pub fn print_end(child: &hive::Child) {
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
