//! The seed's fork demo, child side: a port of the seed's `child.js`
//! (`../seed-fork-main/node/child.js`), line for line.
use hive::{Message, process};

fn main() {
    println!("[child] ppid: {}", process::ppid());
    println!("[child] pid: {}", process::pid());
    process::on_message(|msg| {
        println!("[child] got a message");
        process::send(&format!("[child] message length is {}", js_length(&msg))).expect("send");
    });
    hive::set_timeout(1000, || {
        process::send("[child] heart beat 1").expect("send");
    });
    hive::set_timeout(2000, || {
        process::send("[child] heart beat 2").expect("send");
    });
    process::on_disconnect(|| println!("[child] disconnect"));
    hive::run();
}

/// `msg.length` as JavaScript computes it, as text: a string's length in
/// UTF-16 code units, an array's element count, a Buffer's byte count, and
/// `undefined` for anything else.
fn js_length(msg: &Message) -> String {
    match msg {
        Message::Bytes(b) => b.len().to_string(),
        Message::Json(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(s)) => s.encode_utf16().count().to_string(),
            Ok(serde_json::Value::Array(a)) => a.len().to_string(),
            _ => "undefined".into(),
        },
    }
}
