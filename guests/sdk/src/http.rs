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
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
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
/// answers 500.
pub struct Response {
    outparam: Option<ResponseOutparam>,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
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

    /// Sends the response with `body` (Node's `res.end(body)`), with its
    /// `Content-Length`.
    pub fn end(mut self, body: impl AsRef<[u8]>) {
        let body = body.as_ref();
        let Some(outparam) = self.outparam.take() else {
            return;
        };
        let fields = Fields::new();
        for (name, value) in &self.headers {
            let _ = fields.append(name, value);
        }
        let _ = fields.set("content-length", &[body.len().to_string().into_bytes()]);
        let response = OutgoingResponse::new(fields);
        let _ = response.set_status_code(self.status);
        let Ok(out) = response.body() else { return };
        ResponseOutparam::set(outparam, Ok(response));
        if let Ok(stream) = out.write() {
            for chunk in body.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
        }
        let _ = OutgoingBody::finish(out, None);
    }
}
