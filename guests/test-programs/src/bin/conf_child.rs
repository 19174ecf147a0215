//! Conformance child: runs the steps in argv[1] (JSON), the Hive twin of
//! `tests/conformance/node/child.js`. Steps: `["send", v]`, `["exit", n]`,
//! `["listen"]`, `["echo"]`, `["disconnect"]`, `["spin"]`, `["block"]`,
//! `["abort"]`, `["handle", signal, code]`, `["after", ms, step]`,
//! `["print", text]`.
use hive::process;
use serde_json::Value;

#[path = "../conf_json.rs"]
mod conf_json;

fn run_step(step: &Value) {
    let op = step[0].as_str().expect("step name");
    match op {
        "send" => {
            let text = conf_json::stringify(&step[1]).expect("a sendable value");
            process::send(hive::Message::Json(text)).expect("send");
        }
        "exit" => process::exit(step[1].as_u64().unwrap() as u8),
        "listen" => process::on_message(|_| {}),
        "echo" => process::on_message(|msg| {
            process::send(msg).expect("echo");
        }),
        "disconnect" => process::disconnect().expect("disconnect"),
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "block" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "abort" => std::process::abort(),
        "handle" => {
            let code = step[2].as_u64().unwrap() as u8;
            process::on_signal(step[1].as_str().unwrap(), move |_| process::exit(code)).unwrap();
        }
        "after" => {
            let inner = step[2].clone();
            hive::set_timeout(step[1].as_u64().unwrap(), move || run_step(&inner));
        }
        "print" => println!("{}", step[1].as_str().unwrap()),
        other => panic!("unknown child step {other}"),
    }
}

fn main() {
    let steps: Value = serde_json::from_str(&std::env::args().nth(1).expect("steps")).unwrap();
    for step in steps.as_array().unwrap() {
        run_step(step);
    }
    hive::run();
}
