//! Worker threads beyond Node's own scenarios (host/tests/all/threads.rs):
//! what a hostile guest tries with buffers, ports and workers, limits, and
//! the lifetimes of what is shared. The main thread runs the case in
//! argv[1]; a worker (this module again) runs the worker side named in
//! its own argv[1].

use hive::worker_threads::{
    self as wt, ArrayBuffer, Outgoing, SharedArrayBuffer, Worker, WorkerOptions,
};
use hive::{Error, ErrorCode, Limits, process};
use std::cell::Cell;
use std::rc::Rc;

fn module() -> String {
    process::argv()[0].clone()
}

fn worker(args: &[&str], options: WorkerOptions<'_>) -> Worker {
    Worker::new(
        &module(),
        WorkerOptions {
            argv: args.iter().map(|s| s.to_string()).collect(),
            ..options
        },
    )
    .expect("worker")
}

/// Prints the worker's messages, error code and exit code, tagged.
fn traced(w: &Worker, tag: &'static str) {
    w.on_message(move |m| println!("{tag} message {}", m.data.text()));
    w.on_message_error(move |why| println!("{tag} messageerror {}", why.contains("max-resources")));
    w.on_error(move |e| println!("{tag} error {}", e.code));
    w.on_exit(move |code| println!("{tag} exit {code}"));
}

fn main_thread(case: &str) {
    match case {
        // Sizes, offsets and indices a guest picks to get more than it may.
        "hostile-buffers" => {
            println!(
                "past the largest: {}",
                name(ArrayBuffer::new((1 << 30) + 1).err())
            );
            println!("u64::MAX: {}", name(SharedArrayBuffer::new(u64::MAX).err()));
            // --max-total-memory 64M: what all buffers hold together.
            let a = ArrayBuffer::new(40 << 20).expect("40 MiB fits");
            println!("past the total: {}", name(ArrayBuffer::new(40 << 20).err()));
            drop(a);
            println!("freed: {}", ArrayBuffer::new(40 << 20).is_ok());
            let b = ArrayBuffer::from_bytes(&[1, 2, 3]).unwrap();
            println!("read past end: {}", name(b.read(2, 2).err()));
            println!("read wrapping: {}", name(b.read(u64::MAX, 2).err()));
            println!("write past end: {}", name(b.write(3, &[1]).err()));
            let s = SharedArrayBuffer::new(10).unwrap();
            println!("index past the words: {}", name(s.load(2).err()));
            println!("huge index: {}", name(s.add(u64::MAX, 1).err()));
            println!("wait out of range: {}", name(s.wait(9, 0, Some(1.0)).err()));
            println!(
                "notify out of range: {}",
                name(s.notify(1 << 40, None).err())
            );
            println!("wait timed out: {:?}", s.wait(0, 0, Some(5.0)).unwrap());
            println!("wait not equal: {:?}", s.wait(0, 1, None).unwrap());
            println!("negative timeout: {:?}", s.wait(0, 0, Some(-1.0)).unwrap());
            // Timeouts no `Duration` holds: converted before the word is
            // looked at (1e300 ms panicked the host's conversion).
            for ms in [1e300, f64::INFINITY, f64::NAN, f64::NEG_INFINITY] {
                println!("timeout {ms:e}: {:?}", s.wait(0, 1, Some(ms)).unwrap());
            }
            println!("shared bytes: {}", name(s.read(0, u64::MAX).err()));
        }
        // A worker gets more handles than it may hold: `messageerror`, and
        // it keeps running; a plain message after it arrives.
        "full-table" => {
            let w = worker(
                &["echo"],
                WorkerOptions {
                    resource_limits: Limits {
                        max_resources: Some(40),
                        ..Limits::default()
                    },
                    ..Default::default()
                },
            );
            traced(&w, "worker");
            let shared: Vec<_> = (0..100)
                .map(|_| SharedArrayBuffer::new(4).unwrap())
                .collect();
            let mut msg = Outgoing::new("many");
            for s in &shared {
                msg = msg.share(s);
            }
            w.post(msg).unwrap();
            w.post_message("plain").unwrap();
            w.post_message("bye").unwrap();
        }
        // What a sender can still do with what it transferred.
        "detached" => {
            let (a, b) = wt::message_channel();
            let (c, d) = wt::message_channel();
            let buf = ArrayBuffer::from_bytes(&[7; 16]).unwrap();
            a.post(Outgoing::new(&1).transfer(&buf).transfer_port(&c))
                .unwrap();
            println!("detached {} {}", buf.detached(), buf.byte_length());
            println!("read: {}", name(buf.read(0, 1).err()));
            // The moved port's queue went with it: posting on the old
            // handle is dropped, as on a closed port.
            c.post_message("lost").unwrap();
            println!(
                "transfer it again: {}",
                name(a.post(Outgoing::new(&2).transfer_port(&c)).err())
            );
            let got = wt::receive_message_on_port(&b).unwrap();
            let moved = got.port(1).unwrap();
            let bytes = got.buffer(0).unwrap().to_vec().unwrap();
            println!(
                "arrived {} bytes, all 7: {}",
                bytes.len(),
                bytes.iter().all(|&x| x == 7)
            );
            d.post_message("through the moved port").unwrap();
            let m = wt::receive_message_on_port(&moved).unwrap();
            println!("moved port got {}", m.data.text());
            println!(
                "nothing else: {}",
                wt::receive_message_on_port(&moved).is_none()
            );
        }
        // `terminate` ends a worker asleep in `wait` and one in `loop {}`.
        "terminate-blocked" => {
            for side in ["wait", "spin"] {
                let w = worker(&[side], WorkerOptions::default());
                let w2 = w.clone();
                w.on_message(move |_| {
                    w2.terminate();
                });
                w.on_exit(move |code| println!("{side} exit {code}"));
            }
        }
        // `resourceLimits`: a worker past its memory ends alone.
        "memory-limit" => {
            let w = worker(
                &["allocate"],
                WorkerOptions {
                    resource_limits: Limits {
                        max_memory: Some(2 << 20),
                        ..Limits::default()
                    },
                    ..Default::default()
                },
            );
            traced(&w, "worker");
        }
        // A worker has its parent's capabilities and never more.
        "capabilities" => {
            let more = Worker::new(
                &module(),
                WorkerOptions {
                    resource_limits: Limits {
                        max_memory: Some(1 << 40),
                        ..Limits::default()
                    },
                    ..Default::default()
                },
            );
            println!("more memory than the parent: {}", name(more.err()));
            let os = Worker::new("/bin/true", WorkerOptions::default());
            println!("an OS program: {}", name(os.err()));
            let w = Worker::new("/nonexistent/x.wasm", WorkerOptions::default()).unwrap();
            traced(&w, "missing");
            let w = worker(&["capabilities"], WorkerOptions::default());
            traced(&w, "worker");
        }
        // Workers of workers; the main thread's end ends them all.
        "nested" => {
            let w = worker(&["nest"], WorkerOptions::default());
            let ids = Rc::new(Cell::new(0));
            let me = w.thread_id();
            w.on_message(move |m| {
                let inner: u32 = m.data.text().parse().unwrap();
                println!("inner worker has its own id: {}", inner != me && inner != 0);
                ids.set(inner);
                println!("main ends");
                process::exit(0);
            });
        }
        // A shared buffer outlives the worker that made it.
        "outlives" => {
            let w = worker(&["make-shared"], WorkerOptions::default());
            let kept = Rc::new(std::cell::RefCell::new(None));
            let k = kept.clone();
            w.on_message(move |m| {
                *k.borrow_mut() = m.shared.first().cloned();
            });
            w.on_exit(move |code| {
                let sab = kept.borrow_mut().take().unwrap();
                println!("exit {code}; it wrote {}", sab.load(0).unwrap());
                println!("still usable: {:?}", sab.add(0, 1));
            });
        }
        // A buffer makes a round trip through a worker: no copy, bytes intact.
        "round-trip" => {
            let w = worker(&["bounce"], WorkerOptions::default());
            let buf = ArrayBuffer::new(1 << 20).unwrap();
            buf.write((1 << 20) - 1, &[42]).unwrap();
            w.post(Outgoing::new("buf").transfer(&buf)).unwrap();
            let w2 = w.clone();
            w.on_message(move |m| {
                let back = m.buffer(0).unwrap();
                println!(
                    "back: {} bytes, last {:?}",
                    back.byte_length(),
                    back.read((1 << 20) - 1, 1).unwrap()
                );
                w2.terminate();
            });
        }
        // Ends queued in each other's queues, with a 1 MiB buffer each
        // time, then dropped: 200 MiB under --max-total-memory 64M fits
        // only if every cycle is freed.
        "cycles" => {
            for i in 0..200 {
                let (x1, x2) = wt::message_channel();
                let (y1, y2) = wt::message_channel();
                let buf = ArrayBuffer::new(1 << 20).unwrap_or_else(|e| panic!("round {i}: {e:?}"));
                x1.post(Outgoing::new(&1).transfer_port(&y1).transfer(&buf))
                    .unwrap();
                y2.post(Outgoing::new(&2).transfer_port(&x2)).unwrap();
            }
            println!("200 cycles freed");
        }
        // Ports and buffers over a fork's IPC channel, both ways: a forked
        // child (not a worker) gets a port and a shared buffer, talks on
        // the port, and sends a buffer back.
        "fork-transfer" => {
            let no_channel =
                wt::send_to_parent(Outgoing::new(&1).share(&SharedArrayBuffer::new(4).unwrap()));
            println!("root without a channel: {}", name(no_channel.err()));
            let (port1, port2) = wt::message_channel();
            let counter = SharedArrayBuffer::new(4).unwrap();
            let child = hive::fork(&module(), &["fork-child"], Default::default()).unwrap();
            let room = wt::send_to_child(
                &child,
                Outgoing::new("here").transfer_port(&port2).share(&counter),
            );
            println!("sent: {room:?}");
            let p1 = port1.clone();
            port1.on_message(move |m| {
                println!("port from the parent's side got {}", m.data.text());
                p1.close();
            });
            let c = counter.clone();
            child.on_message(move |m| {
                let back = wt::take_transferred().expect("a buffer came with it");
                let buf = back.buffer(0).unwrap();
                println!(
                    "child sent {} with {} bytes: {:?}; counter {}",
                    m.text(),
                    buf.byte_length(),
                    buf.to_vec().unwrap(),
                    c.load(0).unwrap()
                );
            });
            child.on_exit(|code, _| println!("child exit {code:?}"));
        }
        other => panic!("unknown case {other}"),
    }
    hive::run();
}

/// A forked child of `fork-transfer` (a process with an IPC channel).
fn fork_child() {
    process::on_message(|m| {
        let got = wt::take_transferred().expect("handles came with it");
        let port = got.port(0).unwrap();
        let counter = got.shared.first().unwrap();
        counter.add(0, 5).unwrap();
        port.post_message(&format!("{} through a port from a fork", m.text()))
            .unwrap();
        let buf = ArrayBuffer::from_bytes(&[1, 2, 3]).unwrap();
        wt::send_to_parent(Outgoing::new("bytes").transfer(&buf)).unwrap();
        println!("child's buffer detached: {}", buf.detached());
        port.close();
        process::disconnect().unwrap();
    });
    hive::run();
}

fn worker_side(case: &str) {
    let parent = wt::parent_port().expect("a parent port");
    match case {
        "echo" => {
            let p = parent.clone();
            let q = parent.clone();
            parent.on_message_error(move |why| {
                q.post_message(&format!("messageerror: {why}")).unwrap();
            });
            parent.on_message(move |m| {
                p.post_message(&format!("{} ({} shared)", m.data.text(), m.shared.len()))
                    .unwrap();
                if m.data.text() == "bye" {
                    p.close();
                }
            });
        }
        "wait" => {
            let s = SharedArrayBuffer::new(4).unwrap();
            parent.post_message("waiting").unwrap();
            let r = s.wait(0, 0, None);
            unreachable!("woke: {r:?}");
        }
        "spin" => {
            parent.post_message("spinning").unwrap();
            #[allow(clippy::empty_loop)]
            loop {}
        }
        "allocate" => {
            let mut held = Vec::new();
            for _ in 0..100 {
                held.push(vec![1u8; 1 << 20]);
            }
            println!("allocated {}", held.len());
        }
        "capabilities" => {
            let send = process::send("x").err();
            let spawn = hive::spawn("/bin/true", &[], Default::default()).err();
            parent
                .post_message(&format!(
                    "process.send: {}, spawn: {}",
                    send == Some(Error::Code(ErrorCode::ChannelClosed)),
                    spawn == Some(Error::Code(ErrorCode::Denied)),
                ))
                .unwrap();
            parent.close();
        }
        "nest" => {
            let inner = worker(&["idle"], WorkerOptions::default());
            parent.post_message(&inner.thread_id().to_string()).unwrap();
        }
        "idle" => {
            hive::set_interval(1000, || {});
        }
        "make-shared" => {
            let s = SharedArrayBuffer::new(4).unwrap();
            s.store(0, 99).unwrap();
            parent.post(Outgoing::new("sab").share(&s)).unwrap();
        }
        "bounce" => {
            let p = parent.clone();
            parent.on_message(move |m| {
                let buf = m.buffer(0).unwrap();
                p.post(Outgoing::new("back").transfer(&buf)).unwrap();
            });
        }
        other => panic!("unknown worker case {other}"),
    }
    hive::run();
}

/// An error's name, as the WIT spells it.
fn name(e: Option<impl Into<Error>>) -> String {
    match e.map(Into::into) {
        None => "none".into(),
        Some(Error::Thread(e)) => e.name().into(),
        Some(Error::Code(c)) => c.name().into(),
        Some(other) => format!("{other}"),
    }
}

fn main() {
    let argv = process::argv();
    if argv[1] == "fork-child" {
        fork_child();
    } else if wt::is_main_thread() {
        main_thread(&argv[1]);
    } else {
        worker_side(&argv[1]);
    }
}
