//! A `wasi:http` proxy component for `host serve` (host/tests/all/serve.rs):
//! every request gets 200 and `instance <id> request <n>`, `<id>` random
//! per instance and `<n>` the requests this instance answered, so reuse
//! shows; `/trap` traps (the host replaces the instance). As a command
//! (`host run`) it does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

static ID: AtomicU64 = AtomicU64::new(0);
static ANSWERED: AtomicU64 = AtomicU64::new(0);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if request.path_with_query().as_deref() == Some("/trap") {
            panic!("asked to trap");
        }
        if ID.load(Ordering::Relaxed) == 0 {
            ID.store(
                wasip2::random::random::get_random_u64() | 1,
                Ordering::Relaxed,
            );
        }
        let n = ANSWERED.fetch_add(1, Ordering::Relaxed) + 1;
        let body = format!("instance {} request {n}\n", ID.load(Ordering::Relaxed));
        let headers = Fields::new();
        headers
            .set("content-length", &[body.len().to_string().into_bytes()])
            .unwrap();
        let response = OutgoingResponse::new(headers);
        let out_body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let stream = out_body.write().unwrap();
        stream.blocking_write_and_flush(body.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(out_body, None).unwrap();
    }
}

wasip2::http::proxy::export!(Hello);

fn main() {}
