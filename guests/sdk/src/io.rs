//! Streams and pollables, whatever they come from (a child's stdio, a
//! file, a socket): the `wasi:io` types and blocking helpers.

use crate::bindings::hive::process::child_process as wit;

pub use crate::bindings::wasi::io::poll::{Pollable, poll};
pub use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// How much one read asks for.
pub(crate) const CHUNK: u64 = 64 * 1024;

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
