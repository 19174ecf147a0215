//! Streams and pollables, whatever they come from (a child's stdio, a
//! file, a socket): the `wasi:io` types, blocking helpers, and reading a
//! stream in the event loop (Node's `stream.on('data')`).

use crate::bindings::hive::process::child_process as wit;
use crate::event_loop::{self, Handle};
use std::cell::RefCell;
use std::rc::Rc;

pub use crate::bindings::wasi::io::poll::{Pollable, poll};
pub use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// How much one read asks for.
const CHUNK: u64 = 64 * 1024;

/// Reads a stream to its end (blocking).
pub fn read_to_end(stream: &InputStream) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(CHUNK) {
            Ok(chunk) => out.extend(chunk),
            Err(StreamError::Closed) => return out,
            Err(StreamError::LastOperationFailed(_)) => return out,
        }
    }
}

/// Writes all of `bytes` to a stream (blocking).
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

/// Copies `source` into `sink` inside the host (Node's
/// `a.stdout.pipe(b.stdin)`): the bytes never enter this guest; `sink` is
/// closed when `source` ends.
pub fn pipe(source: InputStream, sink: OutputStream) {
    wit::pipe(source, sink);
}

/// Reads `stream` in the event loop: `on_data` for every chunk, `on_end`
/// at end-of-file (Node's `stream.on('data')` / `on('end')`). The stream
/// keeps the process alive until it ends.
pub fn on_data(
    stream: InputStream,
    on_data: impl FnMut(&[u8]) + 'static,
    on_end: impl FnOnce() + 'static,
) {
    let reader = Reader {
        state: RefCell::new(Some(ReaderState {
            stream,
            on_data: Box::new(on_data),
            on_end: Some(Box::new(on_end)),
        })),
    };
    event_loop::register(event_loop::next_stream_id(), Rc::new(reader));
}

/// A stream the loop reads whenever it has data.
struct Reader {
    /// `None` while its listeners run (a listener that turns the loop
    /// again does not read this stream under itself).
    state: RefCell<Option<ReaderState>>,
}

struct ReaderState {
    stream: InputStream,
    on_data: OnData,
    on_end: Option<Box<dyn FnOnce()>>,
}

type OnData = Box<dyn FnMut(&[u8])>;

impl Handle for Reader {
    fn has_ref(&self) -> bool {
        true
    }

    /// Ready when the stream has data (or ended): the loop wakes for a
    /// child's output as it comes, as Node does. The loop drops this
    /// pollable at the end of its wait, before it reads (and maybe drops)
    /// the stream — the host traps on a stream dropped before its pollable.
    fn pollable(&self) -> Option<Rc<Pollable>> {
        self.state
            .borrow()
            .as_ref()
            .map(|s| Rc::new(s.stream.subscribe()))
    }

    /// Reads what the stream has, never blocking, and calls the listeners.
    fn poll_io(&self) -> bool {
        let Some(mut reader) = self.state.borrow_mut().take() else {
            return true;
        };
        let mut ended = false;
        loop {
            match reader.stream.read(CHUNK) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => (reader.on_data)(&chunk),
                Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            if let Some(f) = reader.on_end.take() {
                f();
            }
            return false;
        }
        *self.state.borrow_mut() = Some(reader);
        true
    }
}
