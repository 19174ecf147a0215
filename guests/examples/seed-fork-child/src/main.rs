//! The seed's fork demo, child side: a faithful port of `../seed-fork-main/node/child.js`.
use hive::process;

fn main() {
    println!("[child] ppid {}, pid {}", process::ppid(), process::pid());

    process::on_message(|msg| {
        println!(
            "[child] message from parent: {}",
            match &msg {
                hive::Message::Json(t) => t.clone(),
                hive::Message::Bytes(b) => format!("{b:?}"),
            }
        );
        // `msg.length` of a string is its length in UTF-16 code units.
        let length = msg.text().encode_utf16().count();
        process::send(&serde_json::json!({ "length": length })).expect("send");
    });

    hive::set_timeout(1000, || {
        process::send(&serde_json::json!({ "heartbeat": 1 })).expect("send");
    });
    hive::set_timeout(2000, || {
        process::send(&serde_json::json!({ "heartbeat": 2 })).expect("send");
    });

    process::on_disconnect(|| println!("[child] parent disconnected"));
    hive::run();
}
