//! `hive:process/worker-threads`: workers (a wasm process with a port to
//! its parent instead of an IPC channel), message ports that travel in
//! messages, transferable and shared buffers.
//!
//! The runtime keeps the WIT-free parts: `runtime::port` (the channels),
//! `runtime::buffer` (the bytes and the atomics). Here are the resources a
//! guest holds and the conversion of a message, with its handles, at the
//! edge of each guest's table.

mod host;

use crate::bindings::hive::process::worker_threads::{
    self as wit, Incoming, Outgoing, ThreadError, Transfer,
};
use crate::child_process::ChildProcessCtx;
use crate::runtime::buffer::{BufferBytes, BufferError, SharedBytes};
use crate::runtime::caps::TotalMemory;
use crate::runtime::message::SendError;
use crate::runtime::port::{self, PortEnd, PortMessage, TransferError, Transferred};
use crate::runtime::proc::Proc;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource, ResourceTable, ResourceTableError};

/// A transferable buffer, as one guest holds it (`array-buffer`).
pub struct ArrayBuffer {
    /// `None` once transferred away (detached).
    bytes: Option<BufferBytes>,
    /// `mark-as-untransferable`: copied when in a transfer list.
    untransferable: bool,
}

/// A guest's handle to a shared buffer (`shared-buffer`).
pub struct SharedBuffer(Arc<SharedBytes>);

/// A guest's end of a message channel (`message-port`); `None` once it
/// was transferred away.
pub struct MessagePort(Option<PortEnd>);

/// A worker, as its parent holds it (`worker`).
pub struct Worker {
    id: u32,
    /// The running (or ended) process; `None` when it never started.
    proc: Option<Arc<Proc>>,
}

/// What a worker is started with: its end of the channel to its parent
/// and its `workerData`.
pub struct ThreadStart {
    /// The worker's end of the channel to its parent (`parent-port`).
    pub port: PortEnd,
    /// `workerData`, with what it moves and shares.
    pub data: Option<PortMessage>,
}

/// What `hive:process/worker-threads` knows of the process it serves:
/// nothing unless it is a worker (boxed: every process has one, and most
/// are not workers).
#[derive(Default)]
pub struct ThreadCtx(Option<Box<WorkerSelf>>);

/// A worker's own side.
struct WorkerSelf {
    /// Its thread id (its pid).
    thread_id: u32,
    /// Its parent port, until the guest takes it.
    parent_port: Option<PortEnd>,
    /// `workerData` with its handles, until the guest first takes it.
    data: Option<PortMessage>,
    /// `workerData`'s value, for every later `worker-data` call.
    data_payload: Option<crate::runtime::event::Payload>,
}

impl ThreadCtx {
    /// The context of worker `thread_id`, started with `start`.
    pub fn worker(thread_id: u32, start: ThreadStart) -> ThreadCtx {
        ThreadCtx(Some(Box::new(WorkerSelf {
            thread_id,
            parent_port: Some(start.port),
            data_payload: start.data.as_ref().map(|d| d.payload.clone()),
            data: start.data,
        })))
    }

    /// Whether the process is a worker.
    pub fn is_worker(&self) -> bool {
        self.0.is_some()
    }
}

/// The interface's view of a store.
pub struct WorkerThreadsView<'a> {
    /// The interface's context.
    pub ctx: &'a mut ThreadCtx,
    /// What a worker inherits, as a fork does.
    pub child_process: &'a mut ChildProcessCtx,
    /// The process: its IPC channel, and the handles of its last message.
    pub process: &'a mut crate::process::ProcessCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// The `HasData` marker that links `hive:process/worker-threads`.
pub struct HiveWorkerThreads;

impl HasData for HiveWorkerThreads {
    type Data<'a> = WorkerThreadsView<'a>;
}

impl From<BufferError> for ThreadError {
    fn from(e: BufferError) -> ThreadError {
        match e {
            BufferError::AllocationFailed => ThreadError::AllocationFailed,
            BufferError::OutOfRange => ThreadError::OutOfRange,
        }
    }
}

impl From<TransferError> for ThreadError {
    fn from(e: TransferError) -> ThreadError {
        match e {
            TransferError::SourcePort => ThreadError::SourcePort,
            TransferError::Duplicate => ThreadError::Duplicate,
            TransferError::Detached => ThreadError::PortDetached,
            TransferError::TooDeep => ThreadError::NestedTooDeep,
        }
    }
}

impl From<SendError> for ThreadError {
    fn from(e: SendError) -> ThreadError {
        match e {
            SendError::TooLarge => ThreadError::MessageTooLarge,
            SendError::InvalidJson => ThreadError::InvalidJson,
            SendError::ChannelClosed | SendError::NeverStarted => ThreadError::ChannelClosed,
        }
    }
}

/// Either a guest-visible failure or a trap (a handle that is not there).
type Fallible<T> = wasmtime::Result<Result<T, ThreadError>>;

/// Takes a message out of the sender's table, as Node's `postMessage`
/// does: every check first (the payload, the transfer list), then the
/// moves, so a refused message detaches nothing. `source` is the port it is
/// posted on, if any.
pub(crate) fn take_outgoing(
    table: &mut ResourceTable,
    total: &Arc<TotalMemory>,
    source: Option<&Resource<MessagePort>>,
    msg: Outgoing,
) -> Fallible<PortMessage> {
    let payload = crate::runtime::event::Payload::from(msg.data);
    if let Err(e) = crate::runtime::message::validate(&payload) {
        return Ok(Err(e.into()));
    }
    // A buffer twice, by its handle (a port twice is `check_transfer`'s).
    let mut buffers = std::collections::HashSet::new();
    for item in &msg.transfer {
        if let Transfer::ArrayBuffer(b) = item
            && !buffers.insert(b.rep())
        {
            return Ok(Err(ThreadError::Duplicate));
        }
    }
    {
        let source = match source {
            Some(s) => table.get(s)?.0.as_ref(),
            None => None,
        };
        let mut ports = Vec::new();
        for item in &msg.transfer {
            if let Transfer::Port(p) = item {
                match &table.get(p)?.0 {
                    Some(end) if !end.closed() => ports.push(end),
                    _ => return Ok(Err(ThreadError::PortDetached)),
                }
            }
        }
        if let Err(e) = port::check_transfer(source, ports.iter().copied()) {
            return Ok(Err(e.into()));
        }
        if let Some(Err(e)) = source.map(|s| s.check_nesting(&ports)) {
            return Ok(Err(e.into()));
        }
    }
    // Copies of untransferable buffers first: the one step that can fail.
    let mut copies = Vec::new();
    for item in &msg.transfer {
        if let Transfer::ArrayBuffer(b) = item {
            let buffer = table.get(b)?;
            if buffer.untransferable
                && let Some(bytes) = &buffer.bytes
            {
                match bytes.copy(total) {
                    Ok(copy) => copies.push(copy),
                    Err(e) => return Ok(Err(e.into())),
                }
            }
        }
    }
    let mut copies = copies.into_iter();
    let mut transferred = Vec::with_capacity(msg.transfer.len());
    for item in msg.transfer {
        transferred.push(match item {
            Transfer::ArrayBuffer(b) => {
                let buffer = table.get_mut(&b)?;
                if buffer.untransferable && buffer.bytes.is_some() {
                    Transferred::Buffer(copies.next())
                } else {
                    Transferred::Buffer(buffer.bytes.take())
                }
            }
            Transfer::Port(p) => {
                Transferred::Port(table.get_mut(&p)?.0.take().expect("checked above"))
            }
        });
    }
    let mut shared = Vec::with_capacity(msg.share.len());
    for b in &msg.share {
        shared.push(table.get(b)?.0.clone());
    }
    Ok(Ok(PortMessage {
        payload,
        transferred,
        shared,
    }))
}

/// Gives the handles of a message that could not be sent back to the
/// sender's resources (`worker` failing after its `worker-data` moved).
pub(crate) fn give_back(table: &mut ResourceTable, reps: &[Transfer], msg: PortMessage) {
    for (item, moved) in reps.iter().zip(msg.transferred) {
        match (item, moved) {
            (Transfer::ArrayBuffer(b), Transferred::Buffer(bytes)) => {
                if let Ok(buffer) = table.get_mut(b)
                    && buffer.bytes.is_none()
                {
                    buffer.bytes = bytes;
                }
            }
            (Transfer::Port(p), Transferred::Port(end)) => {
                if let Ok(port) = table.get_mut(p) {
                    end.arrive();
                    port.0 = Some(end);
                }
            }
            _ => {}
        }
    }
}

/// Puts a message's handles in the receiver's table. If the table is full
/// (`max-resources`), what was put is taken out again and the message
/// becomes a `messageerror`, its handles closed.
pub(crate) fn deliver(table: &mut ResourceTable, msg: PortMessage) -> wasmtime::Result<Incoming> {
    // What is in the table so far, to take out again if one does not fit.
    enum Pushed {
        Buffer(Resource<ArrayBuffer>),
        Port(Resource<MessagePort>),
        Shared(Resource<SharedBuffer>),
    }
    let mut pushed: Vec<Pushed> = Vec::new();
    let result = (|| -> Result<wit::PortMessage, ResourceTableError> {
        let mut transferred = Vec::with_capacity(msg.transferred.len());
        for item in msg.transferred {
            transferred.push(match item {
                Transferred::Buffer(bytes) => {
                    let r = table.push(ArrayBuffer {
                        bytes,
                        untransferable: false,
                    })?;
                    pushed.push(Pushed::Buffer(Resource::new_own(r.rep())));
                    wit::Transferred::ArrayBuffer(r)
                }
                Transferred::Port(end) => {
                    end.arrive();
                    let r = table.push(MessagePort(Some(end)))?;
                    pushed.push(Pushed::Port(Resource::new_own(r.rep())));
                    wit::Transferred::Port(r)
                }
            });
        }
        let mut shared = Vec::with_capacity(msg.shared.len());
        for bytes in msg.shared {
            let r = table.push(SharedBuffer(bytes))?;
            pushed.push(Pushed::Shared(Resource::new_own(r.rep())));
            shared.push(r);
        }
        Ok(wit::PortMessage {
            data: msg.payload.into(),
            transferred,
            shared,
        })
    })();
    match result {
        Ok(msg) => Ok(Incoming::Message(msg)),
        Err(ResourceTableError::Full) => {
            for handle in pushed {
                match handle {
                    Pushed::Buffer(r) => drop(table.delete(r)),
                    Pushed::Port(r) => drop(table.delete(r)),
                    Pushed::Shared(r) => drop(table.delete(r)),
                }
            }
            Ok(Incoming::MessageError(
                "the message's handles do not fit in this process's resource table \
                 (raise max-resources)"
                    .into(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}
