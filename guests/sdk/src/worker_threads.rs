//! Node's `worker_threads`: [`Worker`]s, [`MessageChannel`]s and
//! [`MessagePort`]s, transferable [`ArrayBuffer`]s and
//! [`SharedArrayBuffer`]s with atomics.
//!
//! ```no_run
//! use hive::worker_threads::{self as wt, Worker, WorkerOptions};
//!
//! fn main() {
//!     if wt::is_main_thread() {
//!         let worker = Worker::new("me.wasm", WorkerOptions::default()).unwrap();
//!         worker.on_message(|m| println!("worker says {}", m.data.text()));
//!         worker.on_exit(|code| println!("exit {code}"));
//!         worker.post_message(&"hi").unwrap();
//!     } else {
//!         let port = wt::parent_port().unwrap();
//!         let reply = port.clone();
//!         port.on_message(move |m| {
//!             reply.post_message(&m.data.text()).unwrap();
//!             reply.close();
//!         });
//!     }
//!     hive::run();
//! }
//! ```
//!
//! A worker is a wasm process of the same host (see the WIT's
//! `worker-threads`); what Node shares between threads lives in the host,
//! and a guest reaches a shared buffer's bytes through its calls.

use crate::bindings::hive::process::types::{ChildEventKind, ErrorInfo, Event};
use crate::bindings::hive::process::worker_threads as wit;
use crate::emitter::Listeners;
use crate::event_loop::{self, Handle, HandleId};
use crate::io::Pollable;
use crate::{Error, IntoMessage, Limits, Message};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub use wit::{ThreadError, WaitResult};

/// Node's name and message for a failed worker-threads call.
pub fn describe(e: ThreadError) -> &'static str {
    match e {
        ThreadError::SourcePort => "DataCloneError: Transfer list contains source port",
        ThreadError::PortDetached => {
            "DataCloneError: MessagePort in transfer list is already detached"
        }
        ThreadError::Duplicate => "DataCloneError: Transfer list contains duplicate",
        ThreadError::Detached => "TypeError: Cannot perform this on a detached ArrayBuffer",
        ThreadError::OutOfRange => "RangeError: offset is out of bounds",
        ThreadError::AllocationFailed => "RangeError: Array buffer allocation failed",
        ThreadError::InvalidJson => "ERR_INVALID_JSON",
        ThreadError::MessageTooLarge => "ERR_MESSAGE_TOO_LARGE",
        ThreadError::ChannelClosed => "ERR_IPC_CHANNEL_CLOSED",
        ThreadError::NestedTooDeep => "DataCloneError: ports nested more than 64 deep",
        ThreadError::NotLocal => {
            "DataCloneError: the receiver is not a process of this host (a Node program)"
        }
    }
}

/// Node's `isMainThread`.
pub fn is_main_thread() -> bool {
    wit::is_main_thread()
}

/// Node's `threadId`: 0 outside a worker.
pub fn thread_id() -> u32 {
    wit::thread_id()
}

thread_local! {
    static PARENT_PORT: RefCell<Option<Option<MessagePort>>> = const { RefCell::new(None) };
}

/// Node's `parentPort`: in a worker, its port to its parent (the same one
/// on every call); `None` outside a worker.
pub fn parent_port() -> Option<MessagePort> {
    PARENT_PORT.with(|p| {
        p.borrow_mut()
            .get_or_insert_with(|| wit::parent_port().map(MessagePort::adopt))
            .clone()
    })
}

/// Node's `workerData`: what the parent gave `WorkerOptions::worker_data`.
/// Its transferred items and shared buffers come with the first call only
/// (take them then); later calls return its data alone.
pub fn worker_data() -> Option<Received> {
    wit::worker_data().map(Received::from)
}

/// A message as it arrives (Node's `message` event's data).
pub struct Received {
    /// The value.
    pub data: Message,
    /// The transfer list's items, in order.
    pub transferred: Vec<Transferred>,
    /// The shared buffers, in order.
    pub shared: Vec<SharedArrayBuffer>,
}

/// One transferred item, as it arrives. Clones are the same item.
#[derive(Clone)]
pub enum Transferred {
    /// A buffer, now this process's.
    ArrayBuffer(ArrayBuffer),
    /// A port, now this process's.
    Port(MessagePort),
}

impl Received {
    /// Transferred item `i`, if it is a port.
    pub fn port(&self, i: usize) -> Option<MessagePort> {
        self.transferred.get(i).cloned()?.into_port()
    }

    /// Transferred item `i`, if it is a buffer.
    pub fn buffer(&self, i: usize) -> Option<ArrayBuffer> {
        self.transferred.get(i).cloned()?.into_buffer()
    }
}

impl Transferred {
    /// The buffer, if it is one.
    pub fn into_buffer(self) -> Option<ArrayBuffer> {
        match self {
            Transferred::ArrayBuffer(b) => Some(b),
            Transferred::Port(_) => None,
        }
    }

    /// The port, if it is one.
    pub fn into_port(self) -> Option<MessagePort> {
        match self {
            Transferred::Port(p) => Some(p),
            Transferred::ArrayBuffer(_) => None,
        }
    }
}

impl From<wit::PortMessage> for Received {
    fn from(m: wit::PortMessage) -> Received {
        Received {
            data: m.data.into(),
            transferred: m
                .transferred
                .into_iter()
                .map(|t| match t {
                    wit::Transferred::ArrayBuffer(b) => {
                        Transferred::ArrayBuffer(ArrayBuffer(Rc::new(b)))
                    }
                    wit::Transferred::Port(p) => Transferred::Port(MessagePort::adopt(p)),
                })
                .collect(),
            shared: m.shared.into_iter().map(SharedArrayBuffer).collect(),
        }
    }
}

/// A message to post, with its transfer list and shared buffers (Node's
/// `postMessage(value, transferList)`).
pub struct Outgoing<'a> {
    data: Message,
    transfer: Vec<Transfer<'a>>,
    share: Vec<&'a SharedArrayBuffer>,
}

enum Transfer<'a> {
    Buffer(&'a ArrayBuffer),
    Port(&'a MessagePort),
}

impl<'a> Outgoing<'a> {
    /// A message of `data`.
    pub fn new(data: impl IntoMessage) -> Outgoing<'a> {
        Outgoing {
            data: data.into_message(),
            transfer: Vec::new(),
            share: Vec::new(),
        }
    }

    /// Moves `buffer` with the message: this process's handle is detached.
    pub fn transfer(mut self, buffer: &'a ArrayBuffer) -> Self {
        self.transfer.push(Transfer::Buffer(buffer));
        self
    }

    /// Moves `port` with the message.
    pub fn transfer_port(mut self, port: &'a MessagePort) -> Self {
        self.transfer.push(Transfer::Port(port));
        self
    }

    /// Shares `buffer` with the receiver.
    pub fn share(mut self, buffer: &'a SharedArrayBuffer) -> Self {
        self.share.push(buffer);
        self
    }

    fn to_wit(&self) -> wit::Outgoing<'_> {
        wit::Outgoing {
            data: self.data.clone().into(),
            transfer: self
                .transfer
                .iter()
                .map(|t| match t {
                    Transfer::Buffer(b) => wit::Transfer::ArrayBuffer(&b.0),
                    Transfer::Port(p) => wit::Transfer::Port(&p.0.port),
                })
                .collect(),
            share: self.share.iter().map(|b| &b.0).collect(),
        }
    }

    /// The ports it moves have left this process: they stop being its.
    fn sent(&self) {
        for t in &self.transfer {
            if let Transfer::Port(p) = t {
                p.0.detach();
            }
        }
    }
}

/// Bytes in the host that move between processes without a copy (Node's
/// transferable `ArrayBuffer`). Clones are the same buffer.
#[derive(Clone)]
pub struct ArrayBuffer(Rc<wit::ArrayBuffer>);

impl ArrayBuffer {
    /// `len` zero bytes.
    pub fn new(len: u64) -> Result<ArrayBuffer, ThreadError> {
        wit::ArrayBuffer::allocate(len).map(|b| ArrayBuffer(Rc::new(b)))
    }

    /// A buffer holding `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<ArrayBuffer, ThreadError> {
        wit::ArrayBuffer::from_bytes(bytes).map(|b| ArrayBuffer(Rc::new(b)))
    }

    /// Its size; 0 once transferred away.
    pub fn byte_length(&self) -> u64 {
        self.0.byte_length()
    }

    /// Whether it was transferred away.
    pub fn detached(&self) -> bool {
        self.0.detached()
    }

    /// A copy of `len` bytes from `offset`.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ThreadError> {
        self.0.read(offset, len)
    }

    /// All of its bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, ThreadError> {
        self.0.read(0, self.byte_length())
    }

    /// Writes `bytes` at `offset`.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), ThreadError> {
        self.0.write(offset, bytes)
    }

    /// Node's `markAsUntransferable`: copied, not moved, in a transfer list.
    pub fn mark_as_untransferable(&self) {
        self.0.mark_as_untransferable()
    }
}

/// Bytes several processes hold at once, with `Atomics` on its 32-bit
/// words (`index` counts words, as an `Int32Array` over it).
pub struct SharedArrayBuffer(wit::SharedBuffer);

impl SharedArrayBuffer {
    /// `len` zero bytes.
    pub fn new(len: u64) -> Result<SharedArrayBuffer, ThreadError> {
        wit::SharedBuffer::allocate(len).map(SharedArrayBuffer)
    }

    /// Its size in bytes.
    pub fn byte_length(&self) -> u64 {
        self.0.byte_length()
    }

    /// A copy of `len` bytes from `offset`.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ThreadError> {
        self.0.read(offset, len)
    }

    /// Writes `bytes` at `offset`.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), ThreadError> {
        self.0.write(offset, bytes)
    }

    /// `Atomics.load`.
    pub fn load(&self, index: u64) -> Result<i32, ThreadError> {
        self.0.load(index)
    }

    /// `Atomics.store`.
    pub fn store(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.store(index, value)
    }

    /// `Atomics.add`: the old value.
    pub fn add(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.add(index, value)
    }

    /// `Atomics.sub`: the old value.
    pub fn sub(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.sub(index, value)
    }

    /// `Atomics.and`: the old value.
    pub fn and(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.and(index, value)
    }

    /// `Atomics.or`: the old value.
    pub fn or(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.or(index, value)
    }

    /// `Atomics.xor`: the old value.
    pub fn xor(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.xor(index, value)
    }

    /// `Atomics.exchange`: the old value.
    pub fn exchange(&self, index: u64, value: i32) -> Result<i32, ThreadError> {
        self.0.exchange(index, value)
    }

    /// `Atomics.compareExchange`: the old value.
    pub fn compare_exchange(
        &self,
        index: u64,
        expected: i32,
        new: i32,
    ) -> Result<i32, ThreadError> {
        self.0.compare_exchange(index, expected, new)
    }

    /// `Atomics.wait`: blocks this guest (only) while word `index` is
    /// `expected`, until a `notify` or `timeout_ms`.
    pub fn wait(
        &self,
        index: u64,
        expected: i32,
        timeout_ms: Option<f64>,
    ) -> Result<WaitResult, ThreadError> {
        self.0.wait(index, expected, timeout_ms)
    }

    /// `Atomics.notify`: wakes up to `count` (`None`: all) waiters; how many.
    pub fn notify(&self, index: u64, count: Option<u32>) -> Result<u32, ThreadError> {
        self.0.notify(index, count)
    }
}

impl Clone for SharedArrayBuffer {
    /// Another handle to the same bytes.
    fn clone(&self) -> Self {
        SharedArrayBuffer(self.0.clone())
    }
}

/// Sends `msg` to the parent over this process's IPC channel (a fork's or
/// a cluster worker's `process.send`), with what it moves and shares: the
/// parent gets them with [`take_transferred`] in its message listener.
/// `Ok(false)` is backpressure, as `process::send`.
pub fn send_to_parent(msg: Outgoing<'_>) -> Result<bool, Error> {
    let room = wit::send_to_parent(&msg.to_wit())?;
    msg.sent();
    Ok(room)
}

/// Sends `msg` to a forked child (`child.send`), with what it moves and
/// shares.
pub fn send_to_child(child: &crate::Child, msg: Outgoing<'_>) -> Result<bool, Error> {
    let room = wit::send_to_child(child.wit(), &msg.to_wit())?;
    msg.sent();
    Ok(room)
}

/// Sends `msg` to a cluster worker (`worker.send`), with what it moves and
/// shares.
pub fn send_to_worker(worker: &crate::cluster::Worker, msg: Outgoing<'_>) -> Result<bool, Error> {
    let room = wit::send_to_worker(worker.wit(), &msg.to_wit())?;
    msg.sent();
    Ok(room)
}

/// The ports, buffers and shared buffers of the IPC message being handled
/// (call it in a `process::on_message` or `Child::on_message` listener;
/// the next event drops them). Its `data` is empty: the value is the
/// message's.
pub fn take_transferred() -> Option<Received> {
    match wit::take_transferred()? {
        wit::Incoming::Message(m) => Some(m.into()),
        wit::Incoming::MessageError(_) => None,
    }
}

/// Node's `new MessageChannel()`: `(port1, port2)`.
pub fn message_channel() -> (MessagePort, MessagePort) {
    let (a, b) = wit::message_channel();
    (MessagePort::adopt(a), MessagePort::adopt(b))
}

/// Node's `receiveMessageOnPort`: the oldest queued message, taken now,
/// whatever the loop would do with it.
pub fn receive_message_on_port(port: &MessagePort) -> Option<Received> {
    loop {
        match port.0.port.try_receive()? {
            wit::Incoming::Message(m) => return Some(m.into()),
            // Nothing to return for it: the next one, as Node skips it.
            wit::Incoming::MessageError(_) => continue,
        }
    }
}

#[derive(Default)]
struct PortEvents {
    message: Listeners<Received>,
    message_error: Listeners<str>,
    close: Listeners<()>,
}

struct PortInner {
    /// Cached, and dropped before the port (its parent resource).
    pollable: RefCell<Option<Rc<Pollable>>>,
    port: wit::MessagePort,
    id: HandleId,
    events: Rc<PortEvents>,
    /// Delivering messages (`start`, or a `message` listener).
    started: Cell<bool>,
    referenced: Cell<bool>,
    /// Closed, or moved to another process: the loop has forgotten it.
    done: Cell<bool>,
    /// Its entry in the loop.
    watched: RefCell<std::rc::Weak<Watched>>,
}

/// A port as the loop holds it: weakly until it is started or listened
/// to, so a port the program dropped without either closes (Node collects
/// it); then strongly, until it is closed or moved.
struct Watched {
    kept: RefCell<Option<Rc<PortInner>>>,
    port: std::rc::Weak<PortInner>,
}

impl Handle for Watched {
    fn has_ref(&self) -> bool {
        self.port.upgrade().is_some_and(|p| p.has_ref())
    }

    fn pollable(&self) -> Option<Rc<Pollable>> {
        self.port.upgrade()?.pollable()
    }

    fn poll_io(&self) -> bool {
        // Gone: the program dropped it (and with it the host's handle).
        self.port.upgrade().is_some_and(|p| p.poll_io())
    }
}

impl PortInner {
    /// The port moved to another process: no events here any more.
    fn detach(&self) {
        if !self.done.replace(true) {
            event_loop::unregister(self.id);
        }
    }

    /// Delivers every queued message (if started); then, once nothing can
    /// come, `close`. Returns whether the port is still open.
    fn drain(&self) -> bool {
        if self.done.get() {
            return false;
        }
        if self.started.get() {
            while let Some(incoming) = self.port.try_receive() {
                match incoming {
                    wit::Incoming::Message(m) => self.events.message.emit(&m.into()),
                    wit::Incoming::MessageError(why) => self.events.message_error.emit(&why),
                }
                if self.done.get() {
                    return false;
                }
            }
        }
        if self.port.is_closed() {
            self.detach();
            // On the next turn, as Node: every port's messages of this
            // turn come first (a channel closed here delivers the peer's
            // queue, then `close` on both ends).
            let events = self.events.clone();
            event_loop::defer(move || events.close.emit(&()));
            return false;
        }
        true
    }
}

impl Handle for PortInner {
    /// Node's `hasRef()`: a started, referenced, open port keeps the
    /// process alive.
    fn has_ref(&self) -> bool {
        self.started.get() && self.referenced.get() && !self.done.get()
    }

    fn pollable(&self) -> Option<Rc<Pollable>> {
        if !self.started.get() {
            // Not started: its messages wait, and only `close` could come,
            // which a port nobody listens to need not wake the loop for.
            return None;
        }
        Some(
            self.pollable
                .borrow_mut()
                .get_or_insert_with(|| Rc::new(self.port.subscribe()))
                .clone(),
        )
    }

    fn poll_io(&self) -> bool {
        self.drain()
    }
}

/// One end of a message channel (Node's `MessagePort`). Clones are the
/// same port.
#[derive(Clone)]
pub struct MessagePort(Rc<PortInner>);

impl MessagePort {
    /// Wraps a port handle and lets the loop watch it.
    fn adopt(port: wit::MessagePort) -> MessagePort {
        let id = event_loop::next_port_id();
        let inner = Rc::new(PortInner {
            pollable: RefCell::default(),
            port,
            id,
            events: Rc::default(),
            started: Cell::new(false),
            referenced: Cell::new(true),
            done: Cell::new(false),
            watched: RefCell::default(),
        });
        let watched = Rc::new(Watched {
            kept: RefCell::new(None),
            port: Rc::downgrade(&inner),
        });
        *inner.watched.borrow_mut() = Rc::downgrade(&watched);
        event_loop::register(id, watched);
        MessagePort(inner)
    }

    /// Posts `data` to the other end (Node's `postMessage(value)`).
    pub fn post_message(&self, data: impl IntoMessage) -> Result<(), Error> {
        self.post(Outgoing::new(data))
    }

    /// Posts a message with a transfer list and shared buffers.
    pub fn post(&self, msg: Outgoing<'_>) -> Result<(), Error> {
        self.0.port.post_message(&msg.to_wit())?;
        msg.sent();
        Ok(())
    }

    /// Calls `f` for every message, and starts the port (Node's
    /// `on('message')`).
    pub fn on_message(&self, mut f: impl FnMut(&Received) + 'static) {
        self.0.events.message.add(move |m| f(m));
        self.start();
    }

    /// Calls `f` for a message that could not be delivered whole.
    pub fn on_message_error(&self, mut f: impl FnMut(&str) + 'static) {
        self.0.events.message_error.add(move |m| f(m));
        self.keep();
    }

    /// Calls `f` once the channel has closed, after the last message.
    pub fn on_close(&self, mut f: impl FnMut() + 'static) {
        self.0.events.close.add(move |_| f());
        self.keep();
    }

    /// Delivers queued and future messages to the listeners (Node's
    /// `start()`).
    pub fn start(&self) {
        self.0.started.set(true);
        self.keep();
    }

    /// Started or listened to, the loop keeps it (Node: a port with a
    /// listener stays alive when the program drops it).
    fn keep(&self) {
        if let Some(watched) = self.0.watched.borrow().upgrade() {
            *watched.kept.borrow_mut() = Some(self.0.clone());
        }
    }

    /// Closes the channel: the other end sees `close` after its queued
    /// messages; so does this end.
    pub fn close(&self) {
        self.0.port.close();
    }

    /// Node's `port.ref()`.
    pub fn ref_(&self) {
        self.0.referenced.set(true);
    }

    /// Node's `port.unref()`: the port no longer keeps the process alive.
    pub fn unref(&self) {
        self.0.referenced.set(false);
    }

    /// Node's `hasRef()`.
    pub fn has_ref(&self) -> bool {
        self.0.has_ref()
    }
}

/// Options for [`Worker::new`] (Node's `new Worker` options).
#[derive(Default)]
pub struct WorkerOptions<'a> {
    /// Arguments after the module (`argv` = [module, argv...]).
    pub argv: Vec<String>,
    /// `None`: a copy of this process's environment.
    pub env: Option<Vec<(String, String)>>,
    /// `workerData`, with what it moves and shares.
    pub worker_data: Option<Outgoing<'a>>,
    /// `resourceLimits`: `max_memory`, `max_cpu_ms`, `max_resources`.
    pub resource_limits: Limits,
    /// See this process's preopened directories (default `true`).
    pub inherit_dirs: Option<bool>,
}

#[derive(Default)]
struct WorkerEvents {
    online: Listeners<()>,
    error: Listeners<ErrorInfo>,
    exit: Listeners<i32>,
}

struct WorkerInner {
    handle: wit::Worker,
    id: u32,
    port: MessagePort,
    events: WorkerEvents,
    referenced: Cell<bool>,
    exited: Cell<bool>,
}

impl Handle for WorkerInner {
    /// A worker keeps its parent alive until it exits, unless unref'd.
    fn has_ref(&self) -> bool {
        self.referenced.get() && !self.exited.get()
    }

    fn deliver(self: Rc<Self>, event: Event) {
        let Event::Child(event) = event else { return };
        match event.kind {
            ChildEventKind::Online => self.events.online.emit(&()),
            ChildEventKind::Error(e) => {
                if self.events.error.is_empty() {
                    // Node: an 'error' event without a listener is thrown.
                    eprintln!("Uncaught Error: {} ({})", e.message, e.code);
                    crate::process::exit(1);
                }
                self.events.error.emit(&e)
            }
            ChildEventKind::Exit(status) => {
                // What it posted before it ended comes first.
                self.port.0.drain();
                self.exit(status.code.unwrap_or(1));
            }
            ChildEventKind::Close(status) => {
                event_loop::unregister(HandleId::Child(self.id));
                // One that never started has `close` alone: Node's `exit` 1.
                if !self.exited.get() {
                    self.exit(status.code.filter(|c| *c >= 0).unwrap_or(1));
                }
            }
            _ => {}
        }
    }
}

impl WorkerInner {
    fn exit(&self, code: i32) {
        self.exited.set(true);
        self.port.0.detach();
        self.events.exit.emit(&code);
    }
}

/// A worker (Node's `Worker`): a wasm process of this host running
/// `module`, with a port to this process. Clones are the same worker.
#[derive(Clone)]
pub struct Worker(Rc<WorkerInner>);

impl Worker {
    /// Node's `new Worker(module, options)`.
    pub fn new(module: &str, options: WorkerOptions<'_>) -> Result<Worker, Error> {
        let data = options.worker_data.as_ref().map(Outgoing::to_wit);
        let wit_options = wit::WorkerOptions {
            argv: options.argv.clone(),
            env: options.env.clone(),
            worker_data: data,
            resource_limits: options.resource_limits.into(),
            inherit_dirs: options.inherit_dirs,
        };
        let (handle, port) = wit::start_worker(module, &wit_options).map_err(|e| match e {
            wit::WorkerError::Start(code) => Error::Code(code),
            wit::WorkerError::Data(e) => Error::Thread(e),
        })?;
        if let Some(data) = &options.worker_data {
            data.sent();
        }
        let port = MessagePort::adopt(port);
        // The worker, not its port, keeps this process alive.
        port.unref();
        let id = handle.thread_id();
        let inner = Rc::new(WorkerInner {
            handle,
            id,
            port,
            events: WorkerEvents::default(),
            referenced: Cell::new(true),
            exited: Cell::new(false),
        });
        event_loop::register(HandleId::Child(id), inner.clone());
        Ok(Worker(inner))
    }

    /// Node's `worker.threadId` (its pid).
    pub fn thread_id(&self) -> u32 {
        self.0.id
    }

    /// Posts `data` to the worker's `parentPort`.
    pub fn post_message(&self, data: impl IntoMessage) -> Result<(), Error> {
        self.0.port.post_message(data)
    }

    /// Posts a message with a transfer list and shared buffers.
    pub fn post(&self, msg: Outgoing<'_>) -> Result<(), Error> {
        self.0.port.post(msg)
    }

    /// Node's `worker.terminate()`: ends it now (its exit code is then 1);
    /// `false` if it had ended already.
    pub fn terminate(&self) -> bool {
        self.0.handle.terminate()
    }

    /// The worker is running (Node's `online`).
    pub fn on_online(&self, mut f: impl FnMut() + 'static) {
        self.0.events.online.add(move |_| f());
    }

    /// A message from the worker (Node's `message`).
    pub fn on_message(&self, f: impl FnMut(&Received) + 'static) {
        self.0.port.on_message(f);
    }

    /// A message that could not be delivered whole (Node's `messageerror`).
    pub fn on_message_error(&self, f: impl FnMut(&str) + 'static) {
        self.0.port.on_message_error(f);
    }

    /// An uncaught trap in the worker, or a limit (Node's `error`).
    pub fn on_error(&self, mut f: impl FnMut(&ErrorInfo) + 'static) {
        self.0.events.error.add(move |e| f(e));
    }

    /// The worker ended with this exit code (Node's `exit`, always last).
    pub fn on_exit(&self, mut f: impl FnMut(i32) + 'static) {
        self.0.events.exit.add(move |c| f(*c));
    }

    /// Node's `worker.ref()`.
    pub fn ref_(&self) {
        self.0.referenced.set(true);
    }

    /// Node's `worker.unref()`: it no longer keeps this process alive.
    pub fn unref(&self) {
        self.0.referenced.set(false);
    }
}
