//! `host serve`: a `wasi:http` proxy component (`serve_hello`) served by
//! long-lived instances behind one host-owned listener.

use crate::util::Test;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use test_programs_artifacts::*;

struct Served(Child, u16);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(workers: u32) -> Served {
    serve_with(workers, &[])
}

/// [`serve`] with `envs` set for the host.
fn serve_with(workers: u32, envs: &[(&str, &str)]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            &workers.to_string(),
            SERVE_HELLO,
        ])
        .env("HOST_CACHE_DIR", crate::util::shared_cache())
        .envs(envs.iter().copied())
        .env_remove("HOST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("Serving HTTP on http://127.0.0.1:")
        .and_then(|l| l.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    Served(child, port)
}

/// One request: status line and body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply.lines().next().unwrap_or_default().to_owned();
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// Two instances, each created once and reused: six requests go to two
/// instances in turn, and each instance's count goes up.
#[test]
fn instances_are_reused() {
    let served = serve(2);
    let mut seen: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for _ in 0..6 {
        let (status, body) = get(served.1, "/");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let mut words = body.split_whitespace();
        let id = words.nth(1).unwrap().to_owned();
        let n = words.nth(1).unwrap().parse().unwrap();
        seen.entry(id).or_default().push(n);
    }
    let counts: Vec<Vec<u64>> = seen.into_values().collect();
    assert_eq!(counts, vec![vec![1, 2, 3], vec![1, 2, 3]]);
}

/// `host ps` sees a `host serve` too: its instances and its listener.
#[test]
fn host_ps_sees_a_served_host() {
    let runtime = crate::util::temp_dir("ps-serve-runtime");
    let xdg = runtime.to_str().unwrap();
    let served = serve_with(2, &[("XDG_RUNTIME_DIR", xdg)]);
    assert_eq!(get(served.1, "/").0, "HTTP/1.1 200 OK");
    let out = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["ps", "--json", "--host", &served.0.id().to_string()])
        .env("XDG_RUNTIME_DIR", xdg)
        .output()
        .unwrap();
    let reply: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let procs = reply["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2, "{reply}");
    assert!(procs.iter().all(|p| p["kind"] == "wasm"), "{reply}");
    let listener = &reply["listeners"][0];
    assert_eq!(
        listener["address"],
        format!("127.0.0.1:{}", served.1),
        "{reply}"
    );
}

/// A request that traps its instance gets 500; the instance is replaced
/// and the next requests are answered.
#[test]
fn a_trapping_instance_is_replaced() {
    let served = serve(1);
    assert_eq!(get(served.1, "/").0, "HTTP/1.1 200 OK");
    let (status, _) = get(served.1, "/trap");
    assert!(
        status.is_empty() || status.starts_with("HTTP/1.1 5"),
        "{status}"
    );
    let mut ok = false;
    for _ in 0..50 {
        let (status, body) = get(served.1, "/");
        if status == "HTTP/1.1 200 OK" && body.ends_with("request 1\n") {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ok, "no fresh instance answered");
}

/// A command component is not a proxy: `host serve` says to `host run`
/// it; a proxy-only one given to `host run` is told the reverse.
#[test]
fn serve_needs_a_proxy_component() {
    Test::new()
        .args(["serve", "--addr", "127.0.0.1:0", CLI_HELLO])
        .status(1)
        .any_stderr()
        .stderr_contains("is not a wasi:http proxy component")
        .stderr_contains("run it with `host run`")
        .check();
}
