//! `--allow-net`: plain `std::net` guests connect and serve under it, and
//! nothing else gets through.

use crate::util::Test;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use test_programs_artifacts::*;

/// A one-shot TCP server on 127.0.0.1 answering `pong LINE`.
fn server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        stream.write_all(format!("pong {line}").as_bytes()).unwrap();
    });
    (port, thread)
}

fn denied(what: &str, addr: &str, entry: &str) -> String {
    format!(
        "may not {what} `{addr}`: allow it with `--allow-net={entry}` (or `--allow-net` for any address)"
    )
}

#[test]
pub fn cli_net() {
    for flag in [
        "--allow-net".to_owned(),
        "--allow-net=127.0.0.1:PORT".into(),
        "--allow-net=localhost:*".into(),
    ] {
        let (port, server) = server();
        let flag = flag.replace("PORT", &port.to_string());
        Test::new()
            .args([
                "run",
                &flag,
                CLI_NET,
                "connect",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout("reply: pong ping\n")
            .check();
        server.join().unwrap();
    }
}

#[test]
fn connect_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = format!("127.0.0.1:{port}");
    for flags in [
        &[][..],
        &["--allow-net=127.0.0.1:1"],
        &["--allow-net=[::1]:*"],
    ] {
        Test::new()
            .args(["run"])
            .args(flags.iter().copied())
            .args([CLI_NET, "connect", &target])
            .stdout("connect: PermissionDenied\n")
            .stderr_contains(&denied("connect to", &target, &target))
            .status(1)
            .check();
    }
    // Decided before any syscall: nothing reached the listener.
    assert!(listener.accept().is_err());
    // A forked child has its parent's permission, not more.
    Test::new()
        .args([
            "run",
            "--allow-net=127.0.0.1:1",
            CLI_NET,
            "fork",
            "connect",
            &target,
        ])
        .stdout("connect: PermissionDenied\n")
        .stderr_contains(&denied("connect to", &target, &target))
        .status(1)
        .check();
    assert!(listener.accept().is_err());
}

#[test]
fn forked_child_inherits_permission() {
    let (port, server) = server();
    Test::new()
        .args([
            "run",
            &format!("--allow-net=127.0.0.1:{port}"),
            CLI_NET,
            "fork",
            "connect",
        ])
        .args([format!("127.0.0.1:{port}")])
        .stdout("reply: pong ping\n")
        .check();
    server.join().unwrap();
}

/// A guest serving on 127.0.0.1 with `TcpListener`: the test connects to it.
#[test]
fn serve_allowed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .args([
            "run",
            "--allow-net=127.0.0.1:*",
            CLI_NET,
            "serve",
            "127.0.0.1:0",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOST_CACHE_DIR", crate::util::shared_cache())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line
        .strip_prefix("listening on ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"hello\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "pong: hello\n");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "served hello\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_denied() {
    for (flags, addr, entry) in [
        (&[][..], "127.0.0.1:0", "127.0.0.1:*"),
        (&["--allow-net=127.0.0.1:80"], "127.0.0.1:0", "127.0.0.1:*"),
        // The wildcard bind is allowed (it is the implicit one before a
        // connect); listening on it is not.
        (&["--allow-net=127.0.0.1:*"], "0.0.0.0:0", "0.0.0.0:*"),
    ] {
        Test::new()
            .args(["run"])
            .args(flags.iter().copied())
            .args([CLI_NET, "serve", addr])
            .stdout("serve: PermissionDenied\n")
            .stderr_contains(&if addr.starts_with("0.0.0.0") {
                "may not listen on `0.0.0.0:".to_owned()
            } else {
                denied("bind", addr, entry)
            })
            .stderr_contains(&format!("allow it with `--allow-net={entry}`"))
            .status(1)
            .check();
    }
}

#[test]
fn udp_and_lookup() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = socket.local_addr().unwrap().to_string();
    Test::new()
        .args([
            "run",
            &format!("--allow-net={target}"),
            CLI_NET,
            "udp",
            &target,
        ])
        .stdout("sent\n")
        .check();
    let mut buf = [0; 16];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    Test::new()
        .args(["run", "--allow-net=127.0.0.1:1", CLI_NET, "udp", &target])
        .stdout("udp: PermissionDenied\n")
        .stderr_contains(&denied("send to", &target, &target))
        .status(1)
        .check();
    // Name lookup: plain --allow-net only; with a list it fails as the
    // resolver failing (wasmtime-wasi has no per-name hook).
    Test::new()
        .args(["run", "--allow-net", CLI_NET, "lookup", "localhost"])
        .any_stdout()
        .check();
    Test::new()
        .args([
            "run",
            "--allow-net=localhost:*",
            CLI_NET,
            "lookup",
            "localhost",
        ])
        .stdout("lookup: Uncategorized\n")
        .status(1)
        .check();
}

#[test]
fn bad_entries_are_usage_errors() {
    for (entry, why) in [
        ("", "an empty list allows nothing"),
        ("127.0.0.1", "no port"),
        ("example.com:80", "not an IP address"),
        ("127.0.0.1:http", "bad port"),
    ] {
        Test::new()
            .args(["run", &format!("--allow-net={entry}"), CLI_HELLO])
            .stderr_contains(why)
            .status(2)
            .check();
    }
}
