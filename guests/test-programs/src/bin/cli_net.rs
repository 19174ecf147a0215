//! Plain `std::net` on wasm32-wasip2, as any Rust program would use it.
//!
//! - `cli_net connect ADDR`: connect over TCP, send `ping`, print the reply;
//! - `cli_net serve ADDR`: listen, print `listening on PORT`, answer one
//!   connection's line with `pong: LINE`;
//! - `cli_net udp ADDR`: send one datagram;
//! - `cli_net lookup NAME`: resolve a name;
//! - `cli_net fork ARGS...`: the same in a forked child.
//!
//! Failures print `MODE: ERROR-KIND` and exit 1.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

fn fail(mode: &str, e: std::io::Error) -> ! {
    println!("{mode}: {:?}", e.kind());
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let addr = args.get(2).cloned().unwrap_or_default();
    match mode {
        "fork" => {
            let rest: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            let child = hive::fork(&args[0], &rest, hive::ForkOptions::default()).expect("fork");
            let status = child.wait();
            std::process::exit(status.code.unwrap_or(1));
        }
        "connect" => {
            let mut stream = TcpStream::connect(&addr).unwrap_or_else(|e| fail(mode, e));
            stream
                .write_all(b"ping\n")
                .unwrap_or_else(|e| fail(mode, e));
            let mut reply = String::new();
            stream
                .read_to_string(&mut reply)
                .unwrap_or_else(|e| fail(mode, e));
            println!("reply: {}", reply.trim_end());
        }
        "serve" => {
            let listener = TcpListener::bind(&addr).unwrap_or_else(|e| fail(mode, e));
            let port = listener.local_addr().unwrap().port();
            println!("listening on {port}");
            let (mut stream, _) = listener.accept().unwrap_or_else(|e| fail(mode, e));
            let mut line = String::new();
            BufReader::new(&stream)
                .read_line(&mut line)
                .unwrap_or_else(|e| fail(mode, e));
            stream
                .write_all(format!("pong: {}", line).as_bytes())
                .unwrap_or_else(|e| fail(mode, e));
            println!("served {}", line.trim_end());
        }
        "udp" => {
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| fail(mode, e));
            socket
                .send_to(b"ping", &addr)
                .unwrap_or_else(|e| fail(mode, e));
            println!("sent");
        }
        "lookup" => {
            let addrs = (addr.as_str(), 0)
                .to_socket_addrs()
                .unwrap_or_else(|e| fail(mode, e));
            println!("resolved {} addresses", addrs.count());
        }
        _ => panic!("usage: cli_net connect|serve|udp|lookup|fork ADDR"),
    }
}
