//! A Node process at one end of a channel: its IPC socket as a [`Wire`]
//! (our messages out: written by their sender when nothing is queued, else
//! by a writer task) and a reader task (its messages in, sent on through
//! the channel as if the peer were a process of this host).
//!
//! Flow control needs nothing new: a message to the peer is charged to the
//! channel's flow until the writer has written it, so a peer that stops
//! reading makes `send` return `false` and then wait, as for any child; a
//! message from the peer is sent on with the channel's own `send`, which
//! waits while the receiver is over its limit — and while the reader
//! waits, it does not read, so the peer's writes back up, as Node's do.
//!
//! Handles travel as Node's do (`node.md` §2.5): a message with a
//! [`PassedHandle`] is written as `{"cmd":"NODE_HANDLE","type":…,"msg":…}`
//! with the descriptor attached (`SCM_RIGHTS`), and nothing after it is
//! written until the peer answers `NODE_HANDLE_ACK` (or, after three
//! `NODE_HANDLE_NACK`s, gives up on the handle). A descriptor the peer
//! sends is paired with its next `NODE_HANDLE` message, acknowledged, and
//! delivered with the message; one nobody takes is closed when the message
//! is dropped.

use super::{PassedHandle, Serialization, json, scm, v8};
use crate::runtime::event::{Envelope, Handle, Payload};
use crate::runtime::flow::Flow;
use crate::runtime::lifecycle::{Channel, End, Wire};
use crate::runtime::message::{self, MAX_MESSAGE_BYTES};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// How many times a handle the peer refused (`NODE_HANDLE_NACK`) is sent
/// again before it is given up, as Node does.
const MAX_HANDLE_RETRIES: u32 = 3;

/// Descriptors received and kept for the `NODE_HANDLE` messages that
/// will claim them (Node sends one per message, right with it).
const MAX_PENDING_FDS: usize = scm::MAX_FDS;

/// Bytes of queued frames written together.
const BATCH_BYTES: usize = 256 * 1024;

/// A frame for the writer, and what it is charged to.
struct Frame {
    bytes: Vec<u8>,
    /// Descriptors attached to it (a `NODE_HANDLE` message).
    fds: Vec<OwnedFd>,
    charge: Option<(Arc<Flow>, usize)>,
}

impl Frame {
    fn release(&mut self) {
        if let Some((flow, cost)) = self.charge.take() {
            flow.release(cost);
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        self.release();
    }
}

/// What the writer task is asked to do.
enum Out {
    /// Write a message frame (after any handle before it was answered).
    Frame(Frame),
    /// Write what is queued, then close.
    Close,
}

/// What the reader tells the writer.
enum Control {
    /// Write this internal frame at once (an answer to the peer's handle).
    Internal(Vec<u8>),
    /// The peer answered our handle: `true` for `NODE_HANDLE_ACK`.
    Answered(bool),
}

/// Our side of a Node peer's IPC socket, writing.
///
/// A message is written at once by whoever sends it when nothing is queued
/// before it and the socket takes it whole (the usual case: one syscall,
/// no task hop); otherwise it is queued for the writer task, which owns
/// the order until its queue is empty again.
pub struct NodeWire {
    serialization: Serialization,
    out: mpsc::UnboundedSender<Out>,
    writer: Arc<Writer>,
}

/// The socket's writing half, shared by senders and the writer task.
struct Writer {
    socket: OwnedWriteHalf,
    /// Frames handed to the writer task and not yet written (a handle
    /// frame: not yet answered); `None` once closed. While it is above
    /// zero only the task writes, so frames never interleave.
    queued: Mutex<Option<usize>>,
    /// Set when the writer task is done: closed, all written.
    finished: tokio::sync::watch::Sender<bool>,
}

impl Writer {
    /// Writes `frame` now if nothing is queued and the socket takes it;
    /// else queues (what is left of) it for the writer task.
    fn write_or_queue(&self, mut frame: Frame, out: &mpsc::UnboundedSender<Out>) {
        let mut queued = self.queued.lock().unwrap();
        let Some(count) = queued.as_mut() else {
            return; // closed: dropping the frame gives back its bytes
        };
        if *count == 0 && frame.fds.is_empty() {
            match self.socket.try_write(&frame.bytes) {
                Ok(n) if n == frame.bytes.len() => return,
                Ok(n) => {
                    frame.bytes.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!("a Node peer's channel failed: {e}");
                    *queued = None;
                    return;
                }
            }
        }
        *count += 1;
        // Under the lock, so that the queue's order is the senders' order.
        let _ = out.send(Out::Frame(frame));
    }

    /// `n` queued frames are written (or answered).
    fn done(&self, n: usize) {
        if let Some(count) = self.queued.lock().unwrap().as_mut() {
            *count -= n;
        }
    }
}

impl NodeWire {
    /// Writes one of Node's own messages (the cluster protocol), uncharged;
    /// with a descriptor, as a `NODE_HANDLE` of type `net.Native`.
    pub fn send_internal(&self, msg: &serde_json::Value, fd: Option<OwnedFd>) {
        let text = match &fd {
            None => msg.to_string(),
            Some(_) => serde_json::json!({"cmd": "NODE_HANDLE", "type": "net.Native", "msg": msg})
                .to_string(),
        };
        let Ok(bytes) = encode(self.serialization, &Payload::Json(text)) else {
            return;
        };
        let frame = Frame {
            bytes,
            fds: fd.into_iter().collect(),
            charge: None,
        };
        self.writer.write_or_queue(frame, &self.out);
    }
}

impl Wire for NodeWire {
    fn send(&self, envelope: Envelope, charge: (Arc<Flow>, usize)) {
        let Envelope { payload, handles } = envelope;
        let mut handle = handles
            .into_iter()
            .find_map(|h| h.0.downcast::<PassedHandle>().ok());
        let encoded = match &handle {
            None => encode(self.serialization, &payload),
            Some(h) => {
                let text = match &payload {
                    Payload::Json(text) => text.clone(),
                    Payload::Bytes(_) => {
                        let line = json::encode(&payload);
                        String::from_utf8(line[..line.len() - 1].to_vec()).expect("JSON is UTF-8")
                    }
                };
                let wrapped = format!(
                    r#"{{"cmd":"NODE_HANDLE","type":{},"msg":{text}}}"#,
                    serde_json::Value::from(h.kind.clone())
                );
                encode(self.serialization, &Payload::Json(wrapped))
            }
        };
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(e) => {
                // Every Hive message has a form on the wire; should one not,
                // drop it rather than put a bad frame there.
                tracing::warn!("a message for a Node peer could not be encoded: {e}");
                charge.0.release(charge.1);
                return;
            }
        };
        let fds = handle.take().map(|h| vec![h.fd]).unwrap_or_default();
        // If the writer is gone (the socket failed), dropping the frame
        // releases its charge.
        let frame = Frame {
            bytes,
            fds,
            charge: Some(charge),
        };
        self.writer.write_or_queue(frame, &self.out);
    }

    fn close(&self) {
        let mut queued = self.writer.queued.lock().unwrap();
        if let Some(count) = queued.as_mut() {
            *count += 1;
            let _ = self.out.send(Out::Close);
        }
    }

    fn flushed(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut finished = self.writer.finished.subscribe();
        Box::pin(async move {
            let _ = finished.wait_for(|done| *done).await;
        })
    }
}

/// A payload as one frame in `serialization`.
fn encode(serialization: Serialization, payload: &Payload) -> Result<Vec<u8>, String> {
    match serialization {
        Serialization::Json => Ok(json::encode(payload)),
        Serialization::Advanced => v8::encode(payload)
            .map(|body| v8::frame(&body))
            .map_err(|e| e.to_string()),
    }
}

/// The reading side of a Node peer's IPC socket, until it is attached to
/// its channel.
pub struct NodeReader {
    read: OwnedReadHalf,
    serialization: Serialization,
    control: mpsc::UnboundedSender<Control>,
    writer: Arc<Writer>,
    /// Set for a cluster worker: where its `NODE_CLUSTER` messages go.
    cluster: Option<Arc<super::cluster::NodeWorker>>,
}

/// Connects to a Node peer over `socket`: the wire to give the channel,
/// and the reader to [`NodeReader::run`] once the channel exists.
pub fn connect(socket: UnixStream, serialization: Serialization) -> (Arc<NodeWire>, NodeReader) {
    let (read, write) = socket.into_split();
    let (out, queue) = mpsc::unbounded_channel();
    let (control, controls) = mpsc::unbounded_channel();
    let writer = Arc::new(Writer {
        socket: write,
        queued: Mutex::new(Some(0)),
        finished: tokio::sync::watch::Sender::new(false),
    });
    tokio::spawn(write_frames(writer.clone(), queue, controls));
    let wire = Arc::new(NodeWire {
        serialization,
        out,
        writer: writer.clone(),
    });
    let reader = NodeReader {
        read,
        serialization,
        control,
        writer,
        cluster: None,
    };
    (wire, reader)
}

/// The writer task: queued frames in order, several per write when they
/// queue up; after a frame with a handle, nothing until the peer has
/// answered it.
async fn write_frames(
    writer: Arc<Writer>,
    mut queue: mpsc::UnboundedReceiver<Out>,
    mut controls: mpsc::UnboundedReceiver<Control>,
) {
    let socket = &writer.socket;
    let mut batch: Vec<u8> = Vec::new();
    let mut written: Vec<Frame> = Vec::new();
    // The handle frame the peer has not answered yet, and how often sent.
    let mut unanswered: Option<(Frame, u32)> = None;
    let mut closing = false;
    let mut controls_open = true;
    let result: std::io::Result<()> = async {
        loop {
            if closing && unanswered.is_none() {
                return Ok(());
            }
            tokio::select! {
                biased;
                control = controls.recv(), if controls_open => match control {
                    Some(Control::Internal(bytes)) => {
                        write_all(socket, &bytes).await?;
                        writer.done(1);
                    }
                    Some(Control::Answered(ack)) => {
                        let Some((mut frame, sent)) = unanswered.take() else { continue };
                        if !ack && sent <= MAX_HANDLE_RETRIES {
                            send_frame(socket, &frame).await?;
                            unanswered = Some((frame, sent + 1));
                        } else {
                            if !ack {
                                tracing::warn!("a Node peer refused a handle {sent} times: dropped it");
                            }
                            frame.release();
                            writer.done(1);
                        }
                    }
                    None => controls_open = false,
                },
                out = queue.recv(), if unanswered.is_none() && !closing => {
                    let mut next = match out {
                        Some(out) => Some(out),
                        None => return Ok(()),
                    };
                    // Take what else is queued now, up to a batch's worth,
                    // stopping after a frame with a handle.
                    let mut frames = 0;
                    while let Some(out) = next.take() {
                        frames += 1;
                        match out {
                            Out::Close => closing = true,
                            Out::Frame(frame) if !frame.fds.is_empty() => {
                                write_all(socket, &batch).await?;
                                batch.clear();
                                written.clear();
                                send_frame(socket, &frame).await?;
                                // Counted done once answered.
                                frames -= 1;
                                unanswered = Some((frame, 1));
                                break;
                            }
                            Out::Frame(frame) => {
                                batch.extend_from_slice(&frame.bytes);
                                written.push(frame);
                            }
                        }
                        if !closing && batch.len() < BATCH_BYTES {
                            next = queue.try_recv().ok();
                        }
                    }
                    write_all(socket, &batch).await?;
                    batch.clear();
                    // Written: dropping the frames gives back their bytes.
                    written.clear();
                    writer.done(frames);
                }
                // Waiting for an answer to a handle frame, and the reader
                // that would bring it is gone (the peer died: a killed Node
                // worker with a connection in hand). It never comes.
                else => {
                    if let Some((mut frame, _)) = unanswered.take() {
                        frame.release();
                        writer.done(1);
                    }
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!("a Node peer's channel failed: {e}");
    }
    // Closed: nobody writes any more, and whatever was still queued never
    // will be written (dropping it gives back its bytes).
    *writer.queued.lock().unwrap() = None;
    queue.close();
    while queue.try_recv().is_ok() {}
    // The peer sees the end of the channel.
    let _ = crate::runtime::unix::shutdown_write(socket.as_ref());
    writer.finished.send_replace(true);
}

/// Writes all of `bytes` (the socket is non-blocking).
async fn write_all(socket: &OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes one frame with its descriptors attached to its first byte.
async fn send_frame(socket: &OwnedWriteHalf, frame: &Frame) -> std::io::Result<()> {
    let fds: Vec<_> = frame.fds.iter().map(AsRawFd::as_raw_fd).collect();
    let stream: &UnixStream = socket.as_ref();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            scm::send_with_fds(stream, &frame.bytes, &fds)
        }) {
            Ok(sent) => break sent,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    write_all(socket, &frame.bytes[sent..]).await
}

impl NodeReader {
    /// Makes the peer a cluster worker served by `worker`.
    pub fn serve_cluster(&mut self, worker: Arc<super::cluster::NodeWorker>) {
        self.cluster = Some(worker);
    }

    /// Reads the peer's messages until the socket ends, sending each on
    /// through `channel` as coming from end `from`; then disconnects the
    /// channel (Node's EOF is a disconnect).
    pub async fn run(self, channel: Arc<Channel>, from: End) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = json::LineReader::new(MAX_MESSAGE_BYTES);
        let mut frames = Vec::new();
        let mut pending = Vec::new();
        // Descriptors received, waiting for their `NODE_HANDLE` message.
        let mut fds: Vec<OwnedFd> = Vec::new();
        let mut broken = None;
        let stream: &UnixStream = self.read.as_ref();
        loop {
            let read = loop {
                if let Err(e) = stream.readable().await {
                    break Err(e);
                }
                match stream.try_io(Interest::READABLE, || {
                    scm::recv_with_fds(stream, &mut buf, &mut fds)
                }) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    other => break other,
                }
            };
            if fds.len() > MAX_PENDING_FDS {
                // A peer that sends descriptors without their messages
                // would run the host out of them: keep the newest few.
                tracing::warn!("a Node peer sent descriptors without their messages: closed them");
                fds.drain(..fds.len() - MAX_PENDING_FDS);
            }
            let n = match read {
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
                    let split = v8::split_frames(&frames, MAX_MESSAGE_BYTES);
                    for body in split.bodies {
                        pending.push(advanced_message(&frames[body]));
                    }
                    frames.drain(..split.used);
                    if let Some(e) = split.error {
                        // A frame we cannot even delimit: the frames before
                        // it go on; nothing after it can be trusted.
                        broken = Some(format!("invalid IPC frame: {e}"));
                    }
                }
            }
            for message in pending.drain(..) {
                if !self.deliver(&channel, from, message, &mut fds).await {
                    return;
                }
            }
            if let Some(e) = broken.take() {
                channel.protocol_error(from, e);
                frames.clear();
                break;
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

    /// Sends one decoded message on; false once the channel is closed.
    async fn deliver(
        &self,
        channel: &Channel,
        from: End,
        message: Result<json::Line, String>,
        fds: &mut Vec<OwnedFd>,
    ) -> bool {
        let envelope = match message {
            Ok(json::Line::Message(payload)) => Envelope::from(payload),
            Ok(json::Line::Internal(value)) => match self.internal(value, fds) {
                Some(envelope) => envelope,
                None => return true,
            },
            Err(e) => {
                channel.protocol_error(from, format!("invalid IPC message: {e}"));
                return true;
            }
        };
        let cost = message::cost(&envelope.payload);
        channel.forward(from, envelope, cost).await.is_ok() || channel.connected()
    }

    /// One of Node's own messages: a handle's arrival or an answer to ours
    /// is handled here; a user message that came with a handle is returned.
    fn internal(&self, value: serde_json::Value, fds: &mut Vec<OwnedFd>) -> Option<Envelope> {
        match value["cmd"].as_str() {
            Some("NODE_HANDLE_ACK") => {
                let _ = self.control.send(Control::Answered(true));
                None
            }
            Some("NODE_HANDLE_NACK") => {
                let _ = self.control.send(Control::Answered(false));
                None
            }
            Some("NODE_HANDLE") => {
                if fds.is_empty() {
                    self.answer("NODE_HANDLE_NACK");
                    return None;
                }
                let fd = fds.remove(0);
                // Node answers first, then delivers.
                self.answer("NODE_HANDLE_ACK");
                let kind = value["type"].as_str().unwrap_or("net.Native").to_owned();
                let msg = value.get("msg").cloned().unwrap_or(serde_json::Value::Null);
                if let Some(cmd) = msg.get("cmd").and_then(|c| c.as_str())
                    && json::is_internal_cmd(cmd)
                {
                    // Node's own traffic with a handle (cluster): not a
                    // user message; the descriptor closes here.
                    tracing::debug!(cmd, "an internal message with a handle from a Node peer");
                    return None;
                }
                Some(Envelope {
                    payload: Payload::Json(msg.to_string()),
                    handles: vec![Handle(Box::new(PassedHandle { fd, kind }))],
                })
            }
            Some("NODE_CLUSTER") if self.cluster.is_some() => {
                if let Some(worker) = &self.cluster {
                    worker.on_message(value);
                }
                None
            }
            other => {
                tracing::trace!(cmd = ?other, "an internal message from a Node peer");
                None
            }
        }
    }

    /// Queues an internal answer (`NODE_HANDLE_ACK`/`NACK`) for the peer.
    fn answer(&self, cmd: &str) {
        let text = format!(r#"{{"cmd":"{cmd}"}}"#);
        if let Ok(bytes) = encode(self.serialization, &Payload::Json(text)) {
            // Counted as queued, so no sender writes in the middle of it.
            let mut queued = self.writer.queued.lock().unwrap();
            if let Some(count) = queued.as_mut() {
                *count += 1;
                let _ = self.control.send(Control::Internal(bytes));
            }
        }
    }
}

/// Decodes one advanced frame into a line-like result.
fn advanced_message(body: &[u8]) -> Result<json::Line, String> {
    let payload = v8::decode(body).map_err(|e| e.to_string())?;
    if message::is_internal(&payload)
        && let Payload::Json(text) = &payload
        && let Ok(value) = serde_json::from_str(text)
    {
        return Ok(json::Line::Internal(value));
    }
    Ok(json::Line::Message(payload))
}
