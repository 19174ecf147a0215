//! `hive:process/http` responses (`http_cases`): the one-call `respond`
//! and the streamed `wasi:http` body, and what the host does with a
//! response a guest gets wrong — a status or header it must refuse, a
//! `content-length` that lies, a dropped response, an exit with a request
//! in flight.

use std::io::{BufRead, Read, Write};
use test_programs_artifacts::HTTP_CASES;

/// The host running `http_cases`, killed when the test ends.
struct Server {
    _host: crate::util::Host,
    out: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let (host, out) = crate::util::spawn_host(["run", "--allow-net=127.0.0.1:*", HTTP_CASES]);
        let mut server = Server {
            _host: host,
            out,
            port: 0,
        };
        let line = server.line();
        server.port = line
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}"));
        server
    }

    /// The next line the primary prints.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// `GET path` on a connection of its own, as the client read it.
    fn get(&self, path: &str) -> Reply {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        Reply::parse(&raw)
    }
}

/// A response: status code, headers (names lower-cased) and body (chunks
/// joined).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A chunked body's bytes.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let at = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..at]).unwrap(), 16).unwrap();
        raw = &raw[at + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The whole-response fast path: status, body and a `Content-Length`; a
/// megabyte body whole.
#[test]
fn respond_sends_a_whole_response() {
    let server = Server::start();
    let hello = server.get("/hello");
    assert_eq!((hello.status, &hello.body[..]), (200, &b"hello"[..]));
    assert_eq!(hello.header("content-length"), Some("5"));
    let big = server.get("/big");
    assert_eq!(big.status, 200);
    assert_eq!(big.header("content-length"), Some("1048576"));
    assert!(big.body.len() == 1 << 20 && big.body.iter().all(|&b| b == b'x'));
    let missing = server.get("/nowhere");
    assert_eq!(
        (missing.status, &missing.body[..]),
        (404, &b"not found"[..])
    );
}

/// `write` streams through `wasi:http`'s resources: the head first (its
/// headers, no `Content-Length`), then a chunked body.
#[test]
fn write_streams_a_chunked_body() {
    let server = Server::start();
    let reply = server.get("/stream");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-kind"), Some("stream"));
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.body, b"abc");
}

/// A hostile guest's response never reaches the wire as it wrote it: a
/// status that does not exist, the headers `wasi:http` forbids a guest
/// (`connection`, `transfer-encoding`, `host`), a header name that is not
/// a token, a value that would inject a header — each answered 500, on
/// both paths — and a `content-length` that lies is replaced by the
/// body's. The server keeps serving after each.
#[test]
fn refused_responses_are_500() {
    let server = Server::start();
    for path in [
        "/status",
        "/status-stream",
        "/connection",
        "/transfer-encoding",
        "/host",
        "/name",
        "/value",
        "/value-stream",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 500, "{path}: {reply:?}");
        assert!(
            reply.header("injected").is_none() && reply.header("x-split").is_none(),
            "{path}: {reply:?}"
        );
        assert_eq!(server.get("/hello").status, 200, "after {path}");
    }
    let length = server.get("/length");
    assert_eq!(length.header("content-length"), Some("5"));
    assert_eq!(length.body, b"five!");
}

/// A response dropped unsent is a 500; a request in flight when its
/// server's process exits is a 503 (the connection outlives the process's
/// task), and the parent sees the exit.
#[test]
fn dropped_and_orphaned_requests_are_answered() {
    let mut server = Server::start();
    assert_eq!(server.get("/drop").status, 500);
    let reply = server.get("/exit");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(server.line(), "exit 7");
}
