//! HTTP servers (Node's `http.createServer`): the host owns the
//! connections and parses HTTP; each request arrives in the event loop and
//! calls the server's handler with a [`Request`] and a [`Response`].
//!
//! ```no_run
//! hive::http::create_server(|req, res| {
//!     res.write_head(200);
//!     res.end(format!("you asked for {}\n", req.path()));
//! })
//! .listen(8000)
//! .unwrap();
//! hive::run();
//! ```
//!
//! In a cluster worker, `listen` shares the cluster's port (as a
//! `std::net` listen does) and the primary sees `listening`.

use crate::Error;
use crate::bindings::hive::process::http as wit;
use crate::bindings::hive::process::types::{Event, HttpRequest};
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, OutputStream,
    ResponseOutparam,
};
use crate::event_loop::{self, Handle, HandleId};
use std::cell::RefCell;
use std::rc::Rc;

type Handler = Box<dyn FnMut(Request, Response)>;

/// A server not yet listening (Node's `http.Server` before `listen`).
pub struct Server {
    handler: Handler,
}

/// Node's `http.createServer(handler)`.
pub fn create_server(handler: impl FnMut(Request, Response) + 'static) -> Server {
    Server {
        handler: Box::new(handler),
    }
}

struct Listening {
    id: u32,
    handler: RefCell<Handler>,
}

/// A listening server: its id and port.
#[derive(Clone)]
pub struct ServerHandle(Rc<Listening>, u16);

impl Server {
    /// Listens on 127.0.0.1:`port` (0: any free port; Node's default host
    /// is every address, `listen_on("0.0.0.0", port)`).
    pub fn listen(self, port: u16) -> Result<ServerHandle, Error> {
        self.listen_on("127.0.0.1", port)
    }

    /// Listens on `address:port`.
    pub fn listen_on(self, address: &str, port: u16) -> Result<ServerHandle, Error> {
        let info = wit::listen(address, port)?;
        let listening = Rc::new(Listening {
            id: info.id,
            handler: RefCell::new(self.handler),
        });
        event_loop::register(HandleId::Server(info.id), listening.clone());
        Ok(ServerHandle(listening, info.port))
    }
}

impl ServerHandle {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.1
    }

    /// Stops accepting connections (Node's `server.close()`).
    pub fn close(&self) {
        wit::close(self.0.id);
    }
}

impl Handle for Listening {
    /// While the host still accepts for it (not after `close`, or after a
    /// cluster worker was disconnected).
    fn has_ref(&self) -> bool {
        wit::is_listening(self.id)
    }

    /// A server that is done (closed and drained) is forgotten.
    fn poll_io(&self) -> bool {
        wit::is_listening(self.id)
    }

    fn deliver(self: Rc<Self>, event: Event) {
        let Event::Request(HttpRequest {
            request, response, ..
        }) = event
        else {
            return;
        };
        let request = Request(request);
        let response = Response {
            outparam: Some(response),
            status: 200,
            headers: Vec::new(),
            streaming: None,
        };
        (self.handler.borrow_mut())(request, response);
    }
}

/// An incoming request (Node's `IncomingMessage`).
pub struct Request(IncomingRequest);

impl Request {
    /// `GET`, `POST`, ...
    pub fn method(&self) -> String {
        match self.0.method() {
            Method::Get => "GET".into(),
            Method::Head => "HEAD".into(),
            Method::Post => "POST".into(),
            Method::Put => "PUT".into(),
            Method::Delete => "DELETE".into(),
            Method::Connect => "CONNECT".into(),
            Method::Options => "OPTIONS".into(),
            Method::Trace => "TRACE".into(),
            Method::Patch => "PATCH".into(),
            Method::Other(m) => m,
        }
    }

    /// The path and query (Node's `req.url`).
    pub fn path(&self) -> String {
        self.0.path_with_query().unwrap_or_else(|| "/".into())
    }

    /// The values of header `name`.
    pub fn header(&self, name: &str) -> Vec<Vec<u8>> {
        self.0.headers().get(name)
    }

    /// Reads the whole body.
    pub fn body(self) -> Vec<u8> {
        let mut out = Vec::new();
        let Ok(body) = self.0.consume() else {
            return out;
        };
        if let Ok(stream) = body.stream() {
            while let Ok(chunk) = stream.blocking_read(64 * 1024) {
                out.extend_from_slice(&chunk);
            }
        }
        out
    }
}

/// The response to a request (Node's `ServerResponse`). Dropping it unsent
/// answers 500; dropping it after `write` without `end` aborts the body
/// (the client sees the connection close mid-response).
pub struct Response {
    outparam: Option<ResponseOutparam>,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    /// Once `write` has sent the head: the body being streamed (the stream
    /// first, as it must be dropped before the body is finished).
    streaming: Option<(OutputStream, OutgoingBody)>,
}

impl Response {
    /// Sets the status (Node's `res.writeHead(status)`).
    pub fn write_head(&mut self, status: u16) -> &mut Self {
        self.status = status;
        self
    }

    /// Adds a header (Node's `res.setHeader`).
    pub fn set_header(&mut self, name: &str, value: &str) -> &mut Self {
        self.headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }

    /// Streams `chunk` (Node's `res.write`): the first call sends the head
    /// without a `Content-Length`, so the body is chunked, through
    /// `wasi:http`'s resources. Blocks (the event loop too) until the host
    /// has taken the chunk. `false` if the response cannot be written: a
    /// header or status the host refused (it answered 500), or a client
    /// that is gone.
    pub fn write(&mut self, chunk: impl AsRef<[u8]>) -> bool {
        if self.streaming.is_none() && !self.send_head() {
            return false;
        }
        let Some((stream, _)) = &self.streaming else {
            return false;
        };
        chunk
            .as_ref()
            .chunks(4096)
            .all(|c| stream.blocking_write_and_flush(c).is_ok())
    }

    /// Sends the status and headers, for a body `write` streams.
    fn send_head(&mut self) -> bool {
        let Some(outparam) = self.outparam.take() else {
            return false;
        };
        let refuse = |outparam| {
            ResponseOutparam::set(outparam, Err(ErrorCode::InternalError(None)));
            false
        };
        let fields = Fields::new();
        if self
            .headers
            .iter()
            .any(|(name, value)| fields.append(name, value).is_err())
        {
            return refuse(outparam);
        }
        let response = OutgoingResponse::new(fields);
        if response.set_status_code(self.status).is_err() {
            return refuse(outparam);
        }
        let Ok(body) = response.body() else {
            return refuse(outparam);
        };
        ResponseOutparam::set(outparam, Ok(response));
        match body.write() {
            Ok(stream) => {
                self.streaming = Some((stream, body));
                true
            }
            Err(()) => false,
        }
    }

    /// Sends the response with `body` (Node's `res.end(body)`). Unless
    /// `write` started a streamed body, in one host call, with its
    /// `Content-Length`; a header that is not valid HTTP, or one a guest
    /// may not set (`connection`, `transfer-encoding`, ...), makes the host
    /// answer 500 instead.
    pub fn end(mut self, body: impl AsRef<[u8]>) {
        if let Some(outparam) = self.outparam.take() {
            let _ = wit::respond(outparam, self.status, &self.headers, body.as_ref());
            return;
        }
        let body = body.as_ref();
        if !body.is_empty() {
            self.write(body);
        }
        if let Some((stream, body)) = self.streaming.take() {
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
        }
    }
}
