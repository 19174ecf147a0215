//! `wasi:http/incoming-handler` answering `200 [worker:<n>] hello world\n`.
//! `<n>` is a 7-digit id drawn once per instance, so the harness's per-worker
//! tally counts instances (with `wasmtime serve`'s default of one instance per
//! request every response names a new one).
use std::sync::OnceLock;
use wstd::http::{Body, Error, Request, Response};

static ID: OnceLock<u64> = OnceLock::new();

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let id = ID.get_or_init(|| {
        let mut b = [0u8; 8];
        wstd::rand::get_insecure_random_bytes(&mut b);
        1_000_000 + u64::from_le_bytes(b) % 9_000_000
    });
    let body = format!("[worker:{id}] hello world\n");
    // An explicit length, as Node's `res.end(s)` and hyper send, rather than chunked.
    Ok(Response::builder()
        .status(200)
        .header("content-length", body.len())
        .body(body.into())?)
}
