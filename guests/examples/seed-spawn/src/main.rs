//! The seed's child_process demo, ported: `exec`, `execFile`, `spawn` with
//! inherited stdio, and `echo 'hello world' | wc -w` as two spawned children
//! piped together inside the host. A port of `node/main.js`.
//!
//! Run: `host run --allow-spawn target/guests/seed-spawn.wasm`
use hive::{ExecOptions, SpawnOptions, exec, exec_file, spawn};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn main() {
    exec("echo hello world", ExecOptions::default())
        .expect("exec")
        .on_output(|err, stdout, _| {
            assert!(err.is_none(), "exec failed: {err:?}");
            println!("[exec] {}", text(&stdout));
        });

    exec_file("echo", &["hi", "world"], ExecOptions::default())
        .expect("execFile")
        .on_output(|err, stdout, _| {
            assert!(err.is_none(), "execFile failed: {err:?}");
            println!("[execFile] {}", text(&stdout));
        });

    spawn("npm", &["--help"], SpawnOptions::inherit()).expect("spawn npm");

    // echo 'hello world' | wc -w — the bytes flow host-side, never through
    // this guest.
    let echo = spawn("echo", &["hello world"], SpawnOptions::default()).expect("spawn echo");
    let wc = spawn("wc", &["-w"], SpawnOptions::default()).expect("spawn wc");
    hive::pipe(
        echo.stdout().expect("echo stdout"),
        wc.stdin().expect("wc stdin"),
    );
    wc.on_stdout(|data| println!("{}", text(data)));

    hive::run();
}
