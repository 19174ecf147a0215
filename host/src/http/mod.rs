//! `hive:process/http`: HTTP servers whose connections the host owns and
//! parses with hyper. Each request reaches the process as an
//! `event.request` in its event queue, carrying `wasi:http` resources
//! (wasmtime-wasi-http's), so a server is a normal long-lived process.
//!
//! Why the host parses: guest-side HTTP over `wasi:io/poll` had bad tails
//! at 32 connections here, and an instance per request (`wasmtime serve`'s
//! default) costs ~200 µs; a long-lived process fed parsed requests costs
//! one event. wasmtime-wasi-http is the dependency because its resources
//! *are* `wasi:http/types`: guests use the standard API on them, and its
//! hyper glue turns a response into a hyper body. Only `wasi:http/types`
//! is linked (no outgoing client, so no TLS stack).

mod host;

use crate::runtime::event::{Event, Handle};
use crate::runtime::listen::{Conn, Membership};
use crate::runtime::proc::Proc;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks};

/// The response a guest gives (or the error it sets).
type Reply = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

/// A request waiting in a process's inbox, with where its response goes.
struct Pending {
    request: hyper::Request<Incoming>,
    reply: oneshot::Sender<Reply>,
}

/// The `wasi:http` state of a process: wasmtime-wasi-http's context and
/// hooks (no outgoing requests).
#[derive(Default)]
pub struct HttpState {
    ctx: WasiHttpCtx,
    hooks: NoOutgoing,
}

/// Hive guests may not make outgoing HTTP requests through `wasi:http`
/// (they are not linked); the hooks' other defaults are wasmtime's.
#[derive(Default)]
struct NoOutgoing;

/// A future wasmtime-wasi-http's hooks return.
type HookFuture<T> = Box<dyn Future<Output = Result<T, wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _: hyper::Request<HyperOutgoingBody>,
        _: Option<wasmtime_wasi_http::RequestOptions>,
        _: HookFuture<()>,
    ) -> HookFuture<(hyper::Response<HyperOutgoingBody>, HookFuture<()>)> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl HttpState {
    /// wasmtime-wasi-http's view over `table`.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.ctx,
            table,
            hooks: &mut self.hooks,
        }
    }
}

/// Turns a request taken from the inbox into the guest's resources: the
/// `incoming-request` and its `response-outparam`. A request hyper parsed
/// but `wasi:http` cannot hold (no authority) is answered 400 here.
pub fn open_request(
    view: &mut WasiHttpCtxView<'_>,
    request: Handle,
) -> wasmtime::Result<
    Option<(
        Resource<HostIncomingRequest>,
        Resource<HostResponseOutparam>,
    )>,
> {
    let Ok(pending) = request.0.downcast::<Pending>() else {
        wasmtime::bail!("an HTTP request event without a request");
    };
    let Pending { mut request, reply } = *pending;
    if request.uri().authority().is_none() && !request.headers().contains_key(hyper::header::HOST) {
        // HTTP/1.0 without Host: the guest's API needs an authority.
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("localhost"),
        );
    }
    let incoming = match view.new_incoming_request(Scheme::Http, request) {
        Ok(r) => r,
        Err(_) => {
            let _ = reply.send(Ok(status(400)));
            return Ok(None);
        }
    };
    let outparam = view.new_response_outparam(reply)?;
    Ok(Some((incoming, outparam)))
}

/// A bodiless response with `code`.
fn status(code: u16) -> hyper::Response<HyperOutgoingBody> {
    let mut response = hyper::Response::new(full(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(code).expect("a valid status");
    response
}

/// `body` as a response body, all of it at once.
fn full(body: Bytes) -> HyperOutgoingBody {
    Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A whole response from a guest's parts (`http.respond`), or `None` if
/// one is not valid HTTP or is a header a guest may not set.
fn whole_response(
    code: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Option<hyper::Response<HyperOutgoingBody>> {
    use hyper::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
    let mut map = hyper::HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        if wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&name) {
            return None;
        }
        if name != CONTENT_LENGTH {
            map.append(name, HeaderValue::from_bytes(&value).ok()?);
        }
    }
    map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut response = hyper::Response::new(full(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(code).ok()?;
    *response.headers_mut() = map;
    Some(response)
}

/// A server of a process: while it accepts, and after (draining) until its
/// last connection closes, requests can still come.
pub struct Server {
    /// Its place on the listener; `None` once closed (the listening socket
    /// closes with the last membership, as Node's `server.close()`).
    membership: Option<Arc<Membership>>,
    state: Arc<ServerState>,
    accept: futures_util::future::AbortHandle,
}

/// The servers a process listens with.
#[derive(Default)]
pub struct Servers {
    next: u32,
    open: HashMap<u32, Server>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What a server's accept loop and connections share.
pub struct ServerState {
    proc: Arc<Proc>,
    id: u32,
    /// Accepting new connections.
    accepting: std::sync::atomic::AtomicBool,
    /// Open connections.
    connections: std::sync::atomic::AtomicUsize,
    /// Stopped accepting: every response from now on says
    /// `Connection: close`, so each client's connection ends after the
    /// request it has in flight and the client reconnects to a worker that
    /// accepts (a graceful disconnect, a rolling reload).
    draining: tokio::sync::watch::Sender<bool>,
    /// Counted in the process's live servers.
    counted: std::sync::atomic::AtomicBool,
}

impl ServerState {
    pub(crate) fn new(proc: Arc<Proc>, id: u32) -> Arc<ServerState> {
        proc.server_listening(true);
        Arc::new(ServerState {
            proc,
            id,
            accepting: true.into(),
            connections: Default::default(),
            draining: tokio::sync::watch::Sender::new(false),
            counted: true.into(),
        })
    }

    /// Whether requests can still come: accepting, or connections open.
    pub fn active(&self) -> bool {
        self.accepting.load(Ordering::Acquire) || self.connections.load(Ordering::Acquire) > 0
    }

    /// No more connections: open ones drain.
    fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
        self.draining.send_replace(true);
        self.settle();
    }

    /// Once inactive, stops counting as a live server of the process (and
    /// wakes it, so its loop sees there is nothing left to wait for).
    fn settle(&self) {
        if !self.active() && self.counted.swap(false, Ordering::AcqRel) {
            self.proc.server_listening(false);
        }
    }
}

/// Accepts the server's connections for as long as it listens and the
/// process runs, serving each with hyper on the process's own task (a
/// companion: see `runtime::preempt`).
/// Starts accepting `membership`'s connections for `state`'s process, on
/// its own task; the returned handle stops it. The host accepts, not the
/// guest, so the listener hands this worker its turns at once, before its
/// task has even run (`Membership::accept_eagerly`).
pub(crate) fn start_accepting(
    state: Arc<ServerState>,
    membership: Arc<Membership>,
) -> futures_util::future::AbortHandle {
    membership.accept_eagerly();
    let proc = state.proc.clone();
    let (accepting, abort) = futures_util::future::abortable(accept_loop(state, membership));
    proc.spawn_companion(async move {
        let _ = accepting.await;
    });
    abort
}

async fn accept_loop(state: Arc<ServerState>, membership: Arc<Membership>) {
    loop {
        let conn = tokio::select! {
            conn = std::future::poll_fn(|cx| membership.poll_accept(cx)) => match conn {
                Ok(conn) => conn,
                // Left the listener (disconnect, close).
                Err(_) => break,
            },
            _ = state.proc.wait() => break,
        };
        state.connections.fetch_add(1, Ordering::AcqRel);
        state.proc.spawn_companion(serve(state.clone(), conn));
    }
    state.stop_accepting();
}

/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a draining connection may stay idle before it is closed.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one connection: each request becomes an event in the process's
/// inbox, and its response whatever the guest sets (500 if it drops the
/// outparam unset, 503 if the process ends first). Once the server drains,
/// responses say `Connection: close`; an idle connection is closed after
/// [`DRAIN_IDLE`].
async fn serve(state: Arc<ServerState>, conn: Conn) {
    let Conn { stream, open, .. } = conn;
    let svc_state = state.clone();
    let counters = open.counters();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let state = svc_state.clone();
        let counters = counters.clone();
        async move {
            let (reply, response) = oneshot::channel();
            state.proc.inbox.push(
                Event::Request {
                    server: state.id,
                    request: Handle(Box::new(Pending { request, reply })),
                },
                None,
            );
            let mut response = tokio::select! {
                r = response => match r {
                    Ok(Ok(response)) => response,
                    // Its store went with the process: not the guest's doing.
                    Err(_) if state.proc.status().is_some() => status(503),
                    _ => status(500),
                },
                _ = state.proc.wait() => status(503),
            };
            let gone = state.proc.status().is_some();
            if let Some(c) = &counters {
                c.requests.fetch_add(1, Ordering::Relaxed);
            }
            if gone || *state.draining.borrow() {
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // A client that does not finish its headers in time (slowloris) is
        // closed; hyper answers oversized headers with 431 by itself.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(wasmtime_wasi_http::io::TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = state.draining.subscribe();
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async {
            let _ = draining.wait_for(|d| *d).await;
            tokio::time::sleep(DRAIN_IDLE).await;
        } => {
            // Idle past the drain time (or slow): finish what is in flight.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
        _ = state.proc.wait() => {
            // The process is gone (killed, crashed): the request in flight
            // gets its 503 and the connection closes, so the client
            // reconnects to a worker that lives — not a stream of 503s on
            // a keep-alive connection nobody serves.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
    drop(open);
    state.connections.fetch_sub(1, Ordering::AcqRel);
    state.settle();
}
