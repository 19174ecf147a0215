//! The README's "Writing a guest" example, exactly as printed there. Run it
//! from the checkout: `host run target/guests/readme.wasm` (it forks
//! `target/guests/worker.wasm`, the `worker` example).
use hive::{ForkOptions, fork, process};

fn main() {
    let child = fork(
        "target/guests/worker.wasm",
        &["arg"],
        ForkOptions::default(),
    )
    .unwrap();
    child.on_message(|msg| println!("child says {}", msg.text()));
    child.on_exit(|code, signal| println!("child exited: {code:?} {signal:?}"));
    child.send(&serde_json::json!({ "job": 1 })).unwrap();
    hive::set_timeout(1000, move || {
        child.disconnect().unwrap();
    });
    hive::run(); // Node's event loop: returns when nothing keeps the process alive
    println!("my pid is {}", process::pid());
}
