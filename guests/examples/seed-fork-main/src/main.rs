//! The seed's fork demo, parent side: a port of the seed's `main.js`
//! (`node/main.js` here), line for line.
//!
//! Build: `just guests`. Run: `host run target/guests/seed-fork-main.wasm [CHILD]`
//! (the child defaults to `seed-fork-child.wasm` beside this module; a child
//! not ending in `.wasm`, e.g. `node/child.js`, runs under `node` and needs
//! `--allow-spawn`).
use hive::{ForkOptions, fork, process};

fn main() {
    let module_path = std::env::args().nth(1).unwrap_or_else(|| {
        let me = std::env::args().next().unwrap_or_default();
        match me.rfind('/') {
            Some(i) => format!("{}/seed-fork-child.wasm", &me[..i]),
            None => "seed-fork-child.wasm".into(),
        }
    });
    // const child = cp.fork('./child.js');
    let child = fork(&module_path, &[], ForkOptions::default()).expect("fork");
    println!("[main] pid: {}", process::pid());
    println!(
        "[main] child pid: {}",
        child.pid().map_or("undefined".into(), |p| p.to_string())
    );
    child.on_message(|msg| {
        println!("[main] got a message");
        // '[main] message: ' + msg — a string message prints as itself.
        println!("[main] message: {}", msg.text());
    });
    child.on_exit(|_, _| println!("[main] child process exited"));
    println!("[main] sent a message");
    child.send("hello world").expect("send");
    let c = child.clone();
    hive::set_timeout(3000, move || c.disconnect().expect("disconnect"));
    hive::run();
}
