//! The worker the README example forks: answers each `{"job": N}` with
//! `{"done": N}`, and ends when its parent disconnects.
use hive::process;

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    println!("[worker] started with {arg:?}");
    process::on_message(|msg| {
        let job: serde_json::Value = msg.parse().unwrap_or_default();
        process::send(&serde_json::json!({ "done": job["job"] })).expect("send");
    });
    process::on_disconnect(|| println!("[worker] parent disconnected"));
    hive::run();
}
