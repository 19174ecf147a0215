//! A connected TCP socket's `input-stream` and `output-stream`: reads and
//! writes straight on the socket (`try_read`/`try_write`), with no task and
//! no copy on the hot path, as wasmtime-wasi's own TCP streams.

use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// The most a single `read` returns, and what `check-write` permits.
const CHUNK: usize = 64 * 1024;

fn failed(e: io::Error) -> StreamError {
    StreamError::LastOperationFailed(e.into())
}

/// The reading half of a connected socket.
#[derive(Clone)]
pub struct Reader {
    stream: Arc<TcpStream>,
    /// Set by `shutdown(receive)`, end of stream or a read error.
    closed: Arc<AtomicBool>,
}

impl Reader {
    pub fn new(stream: Arc<TcpStream>) -> Reader {
        Reader {
            stream,
            closed: Arc::default(),
        }
    }

    /// `shutdown(receive)`: the stream reads as closed from now on.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Read);
    }
}

#[async_trait::async_trait]
impl InputStream for Reader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StreamError::Closed);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = BytesMut::zeroed(size.min(CHUNK));
        match self.stream.try_read(&mut buf) {
            Ok(0) => {
                self.closed.store(true, Ordering::Release);
                Err(StreamError::Closed)
            }
            Ok(n) => {
                buf.truncate(n);
                Ok(buf.freeze())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Bytes::new()),
            Err(e) => {
                self.closed.store(true, Ordering::Release);
                Err(failed(e))
            }
        }
    }
}

#[async_trait::async_trait]
impl Pollable for Reader {
    async fn ready(&mut self) {
        if !self.closed.load(Ordering::Acquire) {
            // An error here shows up in the next `read`.
            let _ = self.stream.readable().await;
        }
    }
}

#[derive(Default)]
struct WriteState {
    /// Bytes accepted by `write` that the socket has not taken yet.
    pending: Bytes,
    /// `shutdown(send)` was asked for (done once `pending` is written).
    shutdown: bool,
    /// The first write error; every later call reports it.
    error: Option<io::ErrorKind>,
}

/// The writing half of a connected socket.
#[derive(Clone)]
pub struct Writer {
    stream: Arc<TcpStream>,
    state: Arc<Mutex<WriteState>>,
}

impl Writer {
    pub fn new(stream: Arc<TcpStream>) -> Writer {
        Writer {
            stream,
            state: Arc::default(),
        }
    }

    /// `shutdown(send)`: no more writes; the peer sees the end of the
    /// stream once what was written has gone out.
    pub fn shutdown(&self) {
        let mut state = self.state.lock().unwrap();
        state.shutdown = true;
        if state.pending.is_empty() {
            let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        } else {
            drop(state);
            self.finish_in_background();
        }
    }

    /// Writes what is pending without blocking; returns whether all of it
    /// went out.
    fn push(&self, state: &mut WriteState) -> StreamResult<bool> {
        if let Some(kind) = state.error {
            return Err(failed(kind.into()));
        }
        while !state.pending.is_empty() {
            match self.stream.try_write(&state.pending) {
                Ok(n) => {
                    let _ = state.pending.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    state.error = Some(e.kind());
                    state.pending = Bytes::new();
                    return Err(if e.kind() == io::ErrorKind::BrokenPipe {
                        StreamError::Closed
                    } else {
                        failed(e)
                    });
                }
            }
        }
        if state.shutdown {
            let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        }
        Ok(true)
    }

    /// Bytes written but not yet taken by the socket still go out after
    /// the guest let go of the stream (as a closed fd's do).
    fn finish_in_background(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.clone();
        rt.spawn(async move {
            loop {
                if me.stream.writable().await.is_err() {
                    me.state.lock().unwrap().pending = Bytes::new();
                    return;
                }
                let mut state = me.state.lock().unwrap();
                match me.push(&mut state) {
                    Ok(false) => continue,
                    _ => return,
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl OutputStream for Writer {
    fn write(&mut self, mut bytes: Bytes) -> StreamResult<()> {
        let mut state = self.state.lock().unwrap();
        if state.shutdown {
            return Err(StreamError::Closed);
        }
        if !state.pending.is_empty() {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes without permission (check-write returned 0)",
                bytes.len()
            )));
        }
        if bytes.len() > CHUNK {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes, more than check-write permitted",
                bytes.len()
            )));
        }
        // Straight onto the socket; only what it does not take waits.
        match self.stream.try_write(&bytes) {
            Ok(n) => {
                let _ = bytes.split_to(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                state.error = Some(e.kind());
                return Err(failed(e));
            }
        }
        state.pending = bytes;
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        let mut state = self.state.lock().unwrap();
        self.push(&mut state).map(|_| ())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let mut state = self.state.lock().unwrap();
        if state.shutdown {
            return Err(StreamError::Closed);
        }
        Ok(if self.push(&mut state)? { CHUNK } else { 0 })
    }
}

#[async_trait::async_trait]
impl Pollable for Writer {
    async fn ready(&mut self) {
        loop {
            {
                let mut state = self.state.lock().unwrap();
                if !matches!(self.push(&mut state), Ok(false)) {
                    return;
                }
            }
            if self.stream.writable().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The last handle (the guest's stream; the socket keeps a clone).
        if Arc::strong_count(&self.state) == 1 && !self.state.lock().unwrap().pending.is_empty() {
            self.finish_in_background();
        }
    }
}
