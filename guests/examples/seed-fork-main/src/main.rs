//! The seed's fork demo, parent side: a faithful port of `node/main.js`.
//!
//! Build: `just guests`. Run: `host run target/guests/seed-fork-main.wasm [CHILD.wasm]`
//! (the child defaults to `seed-fork-child.wasm` beside this module).
use hive::{ForkOptions, fork, process};

fn main() {
    let module_path = std::env::args().nth(1).unwrap_or_else(|| {
        let me = std::env::args().next().unwrap_or_default();
        match me.rfind('/') {
            Some(i) => format!("{}/seed-fork-child.wasm", &me[..i]),
            None => "seed-fork-child.wasm".into(),
        }
    });
    let child = fork(&module_path, &[], ForkOptions::default()).expect("fork");
    println!(
        "[main] pid {}, forked child pid {}",
        process::pid(),
        child.pid().map_or("undefined".into(), |p| p.to_string())
    );

    child.on_message(|msg| {
        println!("[main] message from child: {}", msg_json(&msg));
    });
    child.on_exit(|code, signal| {
        println!(
            "[main] child exited with code {} and signal {}",
            code.map_or("null".into(), |c| c.to_string()),
            signal.unwrap_or_else(|| "null".into())
        );
    });

    child.send(&"hello world").expect("send");

    let c = child.clone();
    hive::set_timeout(3000, move || {
        println!("[main] disconnecting");
        c.disconnect().expect("disconnect");
    });
    hive::run();
}

fn msg_json(msg: &hive::Message) -> String {
    match msg {
        hive::Message::Json(text) => text.clone(),
        hive::Message::Bytes(b) => serde_json::json!({"type": "Buffer", "data": b}).to_string(),
    }
}
