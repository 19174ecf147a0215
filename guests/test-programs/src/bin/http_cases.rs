//! HTTP responses for `host/tests/all/http.rs`: `http_cases` forks itself
//! as a server (`http_cases serve`), prints `port <n>` once it listens and
//! `exit <code>` when the server ends, and stays up (the test ends the
//! host). The server's routes are what a hostile or careless guest does
//! with a response: a status or header the host must refuse, a
//! `content-length` that lies, a streamed body, an exit with a request in
//! flight.

use hive::process;

fn main() {
    let argv = process::argv();
    if argv.get(1).map(String::as_str) == Some("serve") {
        return serve();
    }
    let child = hive::fork(&argv[0], &["serve"], hive::ForkOptions::default()).expect("fork");
    child.on_message(|m| println!("port {}", m.parse::<serde_json::Value>().unwrap()["port"]));
    child.on_exit(|code, _| {
        println!("exit {}", code.unwrap_or(-1));
        // Up until the test ends the host: a request in flight when the
        // server exited is still answered (503).
        hive::set_interval(60_000, || {});
    });
    hive::run();
}

fn serve() {
    let server = hive::http::create_server(|req, mut res| match req.path().as_str() {
        "/hello" => res.end("hello"),
        "/stream" => {
            res.set_header("x-kind", "stream");
            res.write("a");
            res.write("b");
            res.end("c");
        }
        "/big" => res.end(vec![b'x'; 1 << 20]),
        "/status" => {
            res.write_head(1000);
            res.end("no such status")
        }
        "/status-stream" => {
            res.write_head(42);
            assert!(!res.write("no such status"));
        }
        "/connection" => {
            res.set_header("connection", "upgrade");
            res.end("forbidden")
        }
        "/transfer-encoding" => {
            res.set_header("transfer-encoding", "gzip");
            res.end("forbidden")
        }
        "/host" => {
            res.set_header("host", "elsewhere");
            res.end("forbidden")
        }
        "/name" => {
            res.set_header("bad name", "v");
            res.end("not a token")
        }
        "/value" => {
            res.set_header("x-split", "a\r\nInjected: yes");
            res.end("not a value")
        }
        "/value-stream" => {
            res.set_header("x-split", "a\r\nInjected: yes");
            assert!(!res.write("not a value"));
        }
        "/length" => {
            res.set_header("content-length", "999");
            res.end("five!")
        }
        "/drop" => drop(res),
        "/exit" => process::exit(7),
        _ => {
            res.write_head(404);
            res.end("not found")
        }
    });
    let server = server.listen(0).expect("listen");
    process::send(&serde_json::json!({ "port": server.port() })).unwrap();
    hive::run();
}
