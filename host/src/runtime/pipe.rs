//! Output pipes from a child to its parent guest, and the host-side copy
//! behind `pipe()`.
//!
//! A child's stdout or stderr is read by a host task (the *pump*) into a
//! bounded [`Pipe`]; the parent guest reads it through a [`PipeReader`]
//! (a WASI `input-stream`). `close` waits until every pipe's source ended;
//! output nobody took by the time the parent handled `exit` is drained, as
//! Node's `flushStdio` does.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, InputStream, Pollable, StreamError};

// Every buffer size on the way between a child's stdio and its parent, in
// one place.

/// Bytes a pipe holds before its pump stops reading (backpressure reaches
/// the writer through the OS pipe or the wasm child's stdout).
pub const CAPACITY: usize = 256 * 1024;

/// One read from a child's output (or a `pipe()` source) at most.
pub const READ_CHUNK: usize = 64 * 1024;

/// Bytes a guest may write to an OS child's stdin before it must wait: a
/// few kernel pipe buffers, so the writer task always has the next one.
pub const STDIN_BUDGET: usize = 256 * 1024;

/// Bytes buffered in each direction of a `silent` fork's stdio.
pub const SILENT_FORK_CAPACITY: usize = 64 * 1024;

/// Kernel buffer for the pipes to and from an OS child (the Linux default
/// is 64 KiB; 1 MiB is the unprivileged maximum).
pub const KERNEL_PIPE_BUFFER: usize = 1 << 20;

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// The source reached end-of-file.
    eof: bool,
    /// A reader was handed out.
    taken: bool,
    /// The reader read end-of-file or was dropped.
    finished: bool,
    /// Nobody will read: discard what arrives.
    drain: bool,
}

/// A buffered pipe from a child's output to its parent.
#[derive(Default)]
pub struct Pipe {
    state: Mutex<State>,
    changed: Notify,
}

impl Pipe {
    /// Starts a pump from `source` into a new pipe.
    pub fn pump(source: impl AsyncRead + Send + Unpin + 'static) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe::default());
        tokio::spawn(pump(source, pipe.clone()));
        pipe
    }

    /// The parent's end, once (`None` when already taken).
    pub fn take_reader(self: &Arc<Self>) -> Option<PipeReader> {
        let mut state = self.state.lock().unwrap();
        if state.taken {
            return None;
        }
        state.taken = true;
        Some(PipeReader(self.clone()))
    }

    /// The child exited: if nobody took this pipe, nobody will read it
    /// after `close`, so drain it (Node's `flushStdio`).
    pub fn drain_if_untaken(&self) {
        let mut state = self.state.lock().unwrap();
        if !state.taken {
            state.drain = true;
            state.chunks.clear();
            state.len = 0;
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Nobody will ever read this pipe (its reader's process ended).
    pub fn abandon(&self) {
        let mut state = self.state.lock().unwrap();
        state.drain = true;
        state.finished = true;
        state.chunks.clear();
        state.len = 0;
        drop(state);
        self.changed.notify_waiters();
    }

    /// Waits until the source has ended (or the reader is gone). What is
    /// still buffered stays readable: `close` does not wait for the guest
    /// to read it, which would deadlock a guest that reads only after
    /// `close` (the SDK's event loop dispatches buffered data before
    /// `close`, as Node does).
    pub async fn finished(&self) {
        loop {
            let changed = self.changed.notified();
            {
                let s = self.state.lock().unwrap();
                if s.finished || s.eof {
                    return;
                }
            }
            changed.await;
        }
    }
}

async fn pump(mut source: impl AsyncRead + Send + Unpin, pipe: Arc<Pipe>) {
    loop {
        // Wait for room (or for nobody to care any more).
        loop {
            let changed = pipe.changed.notified();
            {
                let s = pipe.state.lock().unwrap();
                if s.len < CAPACITY || s.drain || s.finished {
                    break;
                }
            }
            changed.await;
        }
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let n = source.read_buf(&mut buf).await.unwrap_or(0);
        {
            let mut s = pipe.state.lock().unwrap();
            if n == 0 {
                s.eof = true;
            } else if !s.drain && !s.finished {
                s.len += n;
                s.chunks.push_back(buf.freeze());
            }
        }
        pipe.changed.notify_waiters();
        if n == 0 {
            return;
        }
    }
}

/// The parent's end of a [`Pipe`]: a WASI `input-stream`.
pub struct PipeReader(Arc<Pipe>);

impl InputStream for PipeReader {
    fn read(&mut self, size: usize) -> Result<Bytes, StreamError> {
        let mut s = self.0.state.lock().unwrap();
        let Some(front) = s.chunks.front_mut() else {
            if s.eof {
                s.finished = true;
                drop(s);
                self.0.changed.notify_waiters();
                return Err(StreamError::Closed);
            }
            return Ok(Bytes::new());
        };
        let out = if front.len() >= size {
            front.split_to(size)
        } else if s.chunks.len() == 1 {
            s.chunks.pop_front().expect("front exists")
        } else {
            // Hand out as much as asked in one read: fewer guest calls.
            let mut out = BytesMut::with_capacity(size.min(s.len));
            while let Some(chunk) = s.chunks.front_mut() {
                let want = size - out.len();
                if want == 0 {
                    break;
                }
                if chunk.len() <= want {
                    out.extend_from_slice(&s.chunks.pop_front().expect("front exists"));
                } else {
                    out.extend_from_slice(&chunk.split_to(want));
                }
            }
            out.freeze()
        };
        s.len -= out.len();
        drop(s);
        self.0.changed.notify_waiters();
        Ok(out)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PipeReader {
    async fn ready(&mut self) {
        loop {
            let changed = self.0.changed.notified();
            {
                let s = self.0.state.lock().unwrap();
                if !s.chunks.is_empty() || s.eof {
                    return;
                }
            }
            changed.await;
        }
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap();
        s.finished = true;
        s.chunks.clear();
        s.len = 0;
        drop(s);
        self.0.changed.notify_waiters();
    }
}

/// Copies `source` into `sink` until end-of-file, then drops `sink` (which
/// closes it, so its reader sees end-of-file). Runs as a host task.
pub fn copy(mut source: DynInputStream, mut sink: DynOutputStream) {
    tokio::spawn(async move {
        let mut copied = 0usize;
        loop {
            let bytes = match source.blocking_read(READ_CHUNK).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::debug!(copied, "pipe source ended: {e:?}");
                    break;
                }
            };
            copied += bytes.len();
            if let Err(e) = sink.blocking_write_and_flush(bytes).await {
                tracing::debug!(copied, "pipe sink failed: {e:?}");
                break;
            }
        }
    });
}
