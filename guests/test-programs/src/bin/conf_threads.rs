//! Conformance worker_threads program: the Rust twin of
//! `tests/conformance/node/threads.js`. As the main thread it runs the case
//! its scenario (argv[1], JSON) names and prints one line per event; as a
//! worker (started from this same module) it runs the worker side of the
//! case in its argv[1]. Keep the two in step: the runner compares their
//! traces line by line.

use hive::worker_threads::{
    self as wt, ArrayBuffer, Outgoing, Received, SharedArrayBuffer, ThreadError, Worker,
    WorkerOptions,
};
use hive::{Error, Message, process};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

fn print(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
}

/// What the Node twin prints for a DataCloneError or TypeError.
fn reason(e: &Error) -> String {
    match e {
        Error::Thread(ThreadError::SourcePort) => "DataCloneError source-port".into(),
        Error::Thread(ThreadError::PortDetached) => "DataCloneError port-detached".into(),
        Error::Thread(ThreadError::Duplicate) => "DataCloneError duplicate".into(),
        Error::Thread(ThreadError::Detached) => "TypeError detached".into(),
        other => format!("{other}"),
    }
}

/// A message's JSON, as `JSON.stringify` printed it on the other side.
fn show(m: &Received) -> String {
    match &m.data {
        Message::Json(text) => text.clone(),
        Message::Bytes(b) => format!("{b:?}"),
    }
}

fn module() -> String {
    process::argv()[0].clone()
}

/// A worker running `args`, its events printed (tagged when `args` has a
/// second item).
fn start(args: &[&str], options: WorkerOptions<'_>) -> Worker {
    let options = WorkerOptions {
        argv: args.iter().map(|s| s.to_string()).collect(),
        ..options
    };
    let w = Worker::new(&module(), options).expect("worker");
    let tag = args.get(1).map(|t| format!("{t} ")).unwrap_or_default();
    let t = tag.clone();
    w.on_online(move || print(format!("{t}online")));
    let t = tag.clone();
    w.on_message(move |m| print(format!("{t}message {}", show(m))));
    let t = tag.clone();
    w.on_error(move |_| print(format!("{t}error")));
    w.on_exit(move |code| print(format!("{tag}exit {code}")));
    w
}

fn main_thread(case: &str) {
    match case {
        "worker-data" => {
            let data = Outgoing::new(&serde_json::json!({"a": 1, "b": "x"}));
            start(
                &["worker-data"],
                WorkerOptions {
                    worker_data: Some(data),
                    ..Default::default()
                },
            );
        }
        "exit-code" => {
            start(&["exit-code"], WorkerOptions::default());
        }
        "terminate" => {
            let w = start(&["terminate"], WorkerOptions::default());
            let terminated = Rc::new(Cell::new(None));
            let (t, w2) = (terminated.clone(), w.clone());
            w.on_message(move |_| t.set(Some(w2.terminate())));
            let w2 = w.clone();
            // Node's promise settles after 'exit': 1 when it ended a running
            // worker; a second `terminate` finds it ended.
            w.on_exit(move |_| {
                if terminated.get() == Some(true) {
                    print("terminated 1");
                }
                print(if w2.terminate() {
                    "again running"
                } else {
                    "again ended"
                });
            });
        }
        "uncaught" => {
            start(&["uncaught"], WorkerOptions::default());
        }
        "port-transfer" => {
            let (port1, port2) = wt::message_channel();
            let got = Rc::new(RefCell::new(Vec::new()));
            let exits = Rc::new(RefCell::new(Vec::new()));
            for (side, port) in [("a", port1), ("b", port2)] {
                let w = Worker::new(
                    &module(),
                    WorkerOptions {
                        argv: vec!["port-transfer".into(), side.into()],
                        ..Default::default()
                    },
                )
                .unwrap();
                let got = got.clone();
                w.on_message(move |m| {
                    let mut got = got.borrow_mut();
                    got.push(m.data.text());
                    if got.len() == 2 {
                        got.sort();
                        got.iter().for_each(print);
                    }
                });
                let exits = exits.clone();
                w.on_exit(move |code| {
                    let mut exits = exits.borrow_mut();
                    exits.push(format!("{side} exit {code}"));
                    if exits.len() == 2 {
                        exits.sort();
                        exits.iter().for_each(print);
                    }
                });
                w.post(Outgoing::new("port").transfer_port(&port)).unwrap();
            }
        }
        "transfer-detaches" => {
            let w = start(&["transfer-detaches"], WorkerOptions::default());
            let ab = ArrayBuffer::from_bytes(&[1, 2, 3, 4]).unwrap();
            w.post(Outgoing::new("buffer").transfer(&ab)).unwrap();
            print(format!("after byteLength {}", ab.byte_length()));
            if let Err(e) = ab.write(0, &[1]) {
                print(reason(&Error::Thread(e)));
            }
        }
        "untransferable" => {
            let w = start(&["transfer-detaches"], WorkerOptions::default());
            let ab = ArrayBuffer::from_bytes(&[1, 2, 3, 4]).unwrap();
            ab.mark_as_untransferable();
            w.post(Outgoing::new("buffer").transfer(&ab)).unwrap();
            print(format!("after byteLength {}", ab.byte_length()));
        }
        "data-clone-errors" => {
            let (port1, port2) = wt::message_channel();
            let (other, _other2) = wt::message_channel();
            let ab = ArrayBuffer::new(4).unwrap();
            let tries: [(&str, Outgoing<'_>); 5] = [
                ("source", Outgoing::new(&1).transfer_port(&port1)),
                (
                    "duplicate buffer",
                    Outgoing::new(&1).transfer(&ab).transfer(&ab),
                ),
                (
                    "duplicate port",
                    Outgoing::new(&1)
                        .transfer_port(&other)
                        .transfer_port(&other),
                ),
                ("moved", Outgoing::new(&1).transfer_port(&other)),
                ("moved again", Outgoing::new(&1).transfer_port(&other)),
            ];
            for (what, msg) in tries {
                match port1.post(msg) {
                    Ok(()) => print(format!("{what} ok")),
                    Err(e) => print(format!("{what} {}", reason(&e))),
                }
            }
            while let Some(m) = wt::receive_message_on_port(&port2) {
                print(format!("received {}", show(&m)));
            }
            port1.close();
        }
        "receive-message-on-port" => {
            let (port1, port2) = wt::message_channel();
            port1.post_message(&1).unwrap();
            port1.post_message("two").unwrap();
            port1
                .post_message(&serde_json::json!({"three": 3}))
                .unwrap();
            for _ in 0..4 {
                match wt::receive_message_on_port(&port2) {
                    Some(m) => print(format!("received {}", show(&m))),
                    None => print("undefined"),
                }
            }
            port1.close();
        }
        "atomics-wait-notify" => {
            let sab = SharedArrayBuffer::new(8).unwrap();
            let w = start(
                &["atomics-wait-notify"],
                WorkerOptions {
                    worker_data: Some(Outgoing::new("sab").share(&sab)),
                    ..Default::default()
                },
            );
            let ia = sab.clone();
            w.on_message(move |m| {
                if m.data.text() == "waiting" {
                    let ia = ia.clone();
                    // As the Node twin: give it time to sleep in `wait`.
                    hive::set_timeout(50, move || {
                        ia.store(0, 21).unwrap();
                        ia.notify(0, None).unwrap();
                    });
                }
            });
            w.on_exit(move |_| print(format!("main reads {}", sab.load(1).unwrap())));
        }
        "port-close" => {
            let (port1, port2) = wt::message_channel();
            port2.on_message(|m| print(format!("port2 message {}", show(m))));
            port2.on_close(|| print("port2 close"));
            port1.on_close(|| print("port1 close"));
            port1.post_message(&1).unwrap();
            port1.post_message(&2).unwrap();
            port1.close();
            print("closed");
        }
        "fifo" => {
            let w = Worker::new(
                &module(),
                WorkerOptions {
                    argv: vec!["fifo".into()],
                    ..Default::default()
                },
            )
            .unwrap();
            let (next, ok) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(true)));
            w.on_message(move |m| {
                if m.data.text() != next.get().to_string() {
                    ok.set(false);
                }
                next.set(next.get() + 1);
                if next.get() == 10_000 {
                    print(format!("10000 in order {}", ok.get()));
                }
            });
            w.on_exit(|code| print(format!("exit {code}")));
        }
        "unref" => {
            let w = start(&["unref"], WorkerOptions::default());
            let w2 = w.clone();
            w.on_online(move || {
                w2.unref();
                print("main done");
            });
        }
        other => panic!("unknown case {other}"),
    }
    hive::run();
}

fn worker(case: &str, side: Option<&str>) {
    let parent = wt::parent_port().expect("a worker has a parent port");
    match case {
        "worker-data" => {
            let data = wt::worker_data().expect("worker data");
            parent
                .post_message(Message::Json(format!(
                    r#"{{"data":{},"isMainThread":{},"hasThreadId":{}}}"#,
                    show(&data),
                    wt::is_main_thread(),
                    wt::thread_id() > 0
                )))
                .unwrap();
        }
        "exit-code" => {
            for n in 1..=3 {
                parent.post_message(&n).unwrap();
            }
            process::exit(7);
        }
        "terminate" => {
            parent.post_message("spinning").unwrap();
            hive::set_interval(1000, || {});
        }
        "uncaught" => panic!("boom"),
        "port-transfer" => {
            let side = side.expect("a side").to_owned();
            let p = parent.clone();
            let once = Cell::new(false);
            parent.on_message(move |m| {
                if once.replace(true) {
                    return;
                }
                let port = m.port(0).expect("the port came with the message");
                let (reply, report, me) = (port.clone(), p.clone(), side.clone());
                port.on_message(move |m| {
                    report
                        .post_message(&format!("{me} got {}", m.data.text()))
                        .unwrap();
                    if me == "b" {
                        reply.post_message("pong").unwrap();
                    }
                    reply.close();
                });
                if side == "a" {
                    port.post_message("ping").unwrap();
                }
                // Node's `once`: the parent port is no longer listened to.
                p.unref();
            });
        }
        "transfer-detaches" => {
            let p = parent.clone();
            parent.on_message(move |m| {
                let ab = m.buffer(0).expect("the buffer came with the message");
                let bytes = ab.to_vec().unwrap();
                p.post_message(Message::Json(format!(
                    r#"{{"byteLength":{},"bytes":{}}}"#,
                    ab.byte_length(),
                    serde_json::to_string(&bytes).unwrap()
                )))
                .unwrap();
                p.unref();
            });
        }
        "atomics-wait-notify" => {
            let data = wt::worker_data().expect("worker data");
            let ia = data.shared.into_iter().next().expect("the shared buffer");
            parent.post_message("waiting").unwrap();
            let result = ia.wait(0, 0, Some(5000.0)).unwrap();
            let seen = ia.load(0).unwrap();
            ia.store(1, 42).unwrap();
            let result = match result {
                wt::WaitResult::Ok | wt::WaitResult::NotEqual => "ok",
                wt::WaitResult::TimedOut => "timed-out",
            };
            parent
                .post_message(Message::Json(format!(
                    r#"{{"result":"{result}","seen":{seen}}}"#
                )))
                .unwrap();
        }
        "fifo" => {
            for n in 0..10_000 {
                parent.post_message(&n).unwrap();
            }
        }
        "unref" => {
            hive::set_interval(1000, || {});
        }
        other => panic!("unknown worker case {other}"),
    }
    hive::run();
}

fn main() {
    let argv = process::argv();
    if wt::is_main_thread() {
        let scenario: serde_json::Value = serde_json::from_str(&argv[1]).expect("a scenario");
        main_thread(scenario["case"].as_str().expect("a case"));
    } else {
        worker(&argv[1], argv.get(2).map(String::as_str));
    }
}
