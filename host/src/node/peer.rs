//! A Node process at one end of a channel: its IPC socket as a [`Wire`]
//! (our messages out, written by a task of their own) and a reader task
//! (its messages in, sent on through the channel as if the peer were a
//! process of this host).
//!
//! Flow control needs nothing new: a message to the peer is charged to the
//! channel's flow until the writer has written it, so a peer that stops
//! reading makes `send` return `false` and then wait, as for any child; a
//! message from the peer is sent on with the channel's own `send`, which
//! waits while the receiver is over its limit — and while the reader
//! waits, it does not read, so the peer's writes back up, as Node's do.

use super::{Serialization, json, v8};
use crate::runtime::event::Payload;
use crate::runtime::flow::Flow;
use crate::runtime::lifecycle::{Channel, End, Wire};
use crate::runtime::message::{self, MAX_MESSAGE_BYTES};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// What the writer task is asked to do.
enum Out {
    /// Write a frame, then release its charge.
    Frame(Vec<u8>, Arc<Flow>, usize),
    /// Write what is queued, then close.
    Close,
}

/// Our side of a Node peer's IPC socket, writing.
pub struct NodeWire {
    serialization: Serialization,
    out: mpsc::UnboundedSender<Out>,
}

impl Wire for NodeWire {
    fn send(&self, payload: Payload, (flow, cost): (Arc<Flow>, usize)) {
        let frame = match self.serialization {
            Serialization::Json => json::encode(&payload),
            Serialization::Advanced => match v8::encode(&payload) {
                Ok(body) => v8::frame(&body),
                Err(e) => {
                    // Every Hive message has a V8 form; should one not,
                    // drop it rather than put a bad frame on the wire.
                    tracing::warn!("a message for a Node peer could not be encoded: {e}");
                    flow.release(cost);
                    return;
                }
            },
        };
        if let Err(mpsc::error::SendError(Out::Frame(_, flow, cost))) =
            self.out.send(Out::Frame(frame, flow, cost))
        {
            // The writer is gone (the socket failed): nobody will write it.
            flow.release(cost);
        }
    }

    fn close(&self) {
        let _ = self.out.send(Out::Close);
    }
}

/// The reading side of a Node peer's IPC socket, until it is attached to
/// its channel.
pub struct NodeReader {
    read: OwnedReadHalf,
    serialization: Serialization,
}

/// Connects to a Node peer over `socket`: the wire to give the channel,
/// and the reader to [`NodeReader::run`] once the channel exists.
pub fn connect(socket: UnixStream, serialization: Serialization) -> (Arc<NodeWire>, NodeReader) {
    let (read, write) = socket.into_split();
    let (out, queue) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(write, queue));
    let wire = Arc::new(NodeWire { serialization, out });
    (
        wire,
        NodeReader {
            read,
            serialization,
        },
    )
}

/// The writer task: frames in order, several per write when they queue up.
async fn write_frames(mut socket: OwnedWriteHalf, mut queue: mpsc::UnboundedReceiver<Out>) {
    let mut batch = Vec::new();
    let mut charges = Vec::new();
    let mut closing = false;
    while !closing {
        let Some(first) = queue.recv().await else {
            break;
        };
        let mut next = Some(first);
        // Take what else is queued now, up to a batch's worth.
        while let Some(out) = next.take() {
            match out {
                Out::Frame(frame, flow, cost) => {
                    batch.extend_from_slice(&frame);
                    charges.push((flow, cost));
                }
                Out::Close => closing = true,
            }
            if !closing && batch.len() < 256 * 1024 {
                next = queue.try_recv().ok();
            }
        }
        let written = socket.write_all(&batch).await;
        batch.clear();
        for (flow, cost) in charges.drain(..) {
            flow.release(cost);
        }
        if let Err(e) = written {
            tracing::debug!("a Node peer's channel failed: {e}");
            break;
        }
    }
    // Whatever was still queued will never be written: give it back.
    queue.close();
    while let Ok(out) = queue.try_recv() {
        if let Out::Frame(_, flow, cost) = out {
            flow.release(cost);
        }
    }
    let _ = socket.shutdown().await;
}

impl NodeReader {
    /// Reads the peer's messages until the socket ends, sending each on
    /// through `channel` as coming from end `from`; then disconnects the
    /// channel (Node's EOF is a disconnect).
    pub async fn run(mut self, channel: Arc<Channel>, from: End) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = json::LineReader::new(MAX_MESSAGE_BYTES);
        let mut frames = Vec::new();
        let mut pending = Vec::new();
        loop {
            let n = match self.read.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("reading a Node peer's channel failed: {e}");
                    break;
                }
            };
            match self.serialization {
                Serialization::Json => lines.feed(&buf[..n], &mut |line| {
                    pending.push(line.map_err(|e| e.to_string()))
                }),
                Serialization::Advanced => {
                    frames.extend_from_slice(&buf[..n]);
                    match v8::split_frames(&frames, MAX_MESSAGE_BYTES) {
                        Ok((bodies, used)) => {
                            for body in bodies {
                                pending.push(advanced_message(&frames[body]));
                            }
                            frames.drain(..used);
                        }
                        Err(e) => {
                            // A frame we cannot even delimit: nothing after
                            // it can be trusted.
                            channel.protocol_error(from, format!("invalid IPC frame: {e}"));
                            break;
                        }
                    }
                }
            }
            for message in pending.drain(..) {
                if !deliver(&channel, from, message).await {
                    return;
                }
            }
        }
        let left = match self.serialization {
            Serialization::Json => lines.finish().map(|e| e.to_string()),
            Serialization::Advanced => (!frames.is_empty()).then(|| {
                format!(
                    "the channel ended in the middle of a frame ({} bytes)",
                    frames.len()
                )
            }),
        };
        if let Some(e) = left {
            channel.protocol_error(from, format!("invalid IPC message: {e}"));
        }
        channel.disconnect();
    }
}

/// Decodes one advanced frame into a line-like result.
fn advanced_message(body: &[u8]) -> Result<json::Line, String> {
    let payload = v8::decode(body).map_err(|e| e.to_string())?;
    if let Payload::Json(text) = &payload
        && text.starts_with('{')
        && text.contains("\"cmd\"")
        && let Ok(json::Line::Internal(value)) = json::decode_line(text.as_bytes())
    {
        return Ok(json::Line::Internal(value));
    }
    Ok(json::Line::Message(payload))
}

/// Sends one decoded message on; false once the channel is closed.
async fn deliver(channel: &Channel, from: End, message: Result<json::Line, String>) -> bool {
    match message {
        Ok(json::Line::Message(payload)) => {
            let cost = message::cost(&payload);
            channel.forward(from, payload, cost).await.is_ok() || channel.connected()
        }
        Ok(json::Line::Internal(value)) => {
            tracing::trace!(%value, "an internal message from a Node peer");
            true
        }
        Err(e) => {
            channel.protocol_error(from, format!("invalid IPC message: {e}"));
            true
        }
    }
}
