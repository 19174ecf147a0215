//! An `error` event nobody listens for is thrown, as Node throws it: a fork
//! of a module that does not exist, with only a `close` listener, prints the
//! uncaught error and exits 1 (`close` never runs). Node, for the same
//! shape: `spawn('does-not-exist').on('close', ..)` prints
//! `Error: spawn does-not-exist ENOENT` with its stack and exits 1.
//!
//! `exec-file`: an exec child's spawn error goes to its callback instead
//! (Node's `execFile` listens for `error` itself), and nothing is thrown.
use hive::{ExecOptions, ForkOptions, exec_file, fork};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => {
            let missing = format!("{}.missing.wasm", args[0]);
            let child = fork(&missing, &[], ForkOptions::default()).expect("fork");
            child.on_close(|code, signal| println!("close {code:?} {signal:?}"));
        }
        Some("exec-file") => {
            exec_file("hive-no-such-program", &["x"], ExecOptions::default())
                .expect("execFile")
                .on_output(|err, _, _| {
                    let err = err.expect("an error");
                    println!("callback {:?} {}", err.error_code, err.message);
                });
        }
        Some(other) => panic!("unknown scenario {other}"),
    }
    hive::run();
}
