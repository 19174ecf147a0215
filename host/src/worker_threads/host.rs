//! `impl Host` for `hive:process/worker-threads`: thin calls into
//! `runtime::port` and `runtime::buffer`.

use super::{
    ArrayBuffer, Fallible, MessagePort, SharedBuffer, ThreadStart, Worker, WorkerThreadsView,
    deliver, give_back, take_outgoing,
};
use crate::bindings::ErrorCode;
use crate::bindings::hive::process::child_process::{ForkOptions, Serialization};
use crate::bindings::hive::process::worker_threads::{
    Host, HostArrayBuffer, HostMessagePort, HostSharedBuffer, HostWorker, Incoming, Outgoing,
    PortMessage, ThreadError, WaitResult, WorkerError, WorkerOptions,
};
use crate::child_process::{Child, ChildProcessView};
use crate::runtime::buffer::{self, AtomicOp, BufferBytes, SharedBytes};
use crate::runtime::event::{Envelope, Handle, Payload};
use crate::runtime::lifecycle::{Channel, End};
use crate::runtime::port;
use crate::runtime::signal::Signal;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

crate::types::types_host!(WorkerThreadsView<'_>);

impl WorkerThreadsView<'_> {
    fn total(&self) -> &Arc<crate::runtime::caps::TotalMemory> {
        self.child_process.hive.runtime().total_memory()
    }

    fn shared(&self, r: &Resource<SharedBuffer>) -> wasmtime::Result<&SharedBytes> {
        Ok(&self.table.get(r)?.0)
    }

    fn update(
        &mut self,
        r: Resource<SharedBuffer>,
        index: u64,
        op: AtomicOp,
        v: i32,
    ) -> Fallible<i32> {
        Ok(self.shared(&r)?.update(index, op, v).map_err(Into::into))
    }
}

impl Host for WorkerThreadsView<'_> {
    fn max_buffer_bytes(&mut self) -> wasmtime::Result<u64> {
        Ok(buffer::MAX_BUFFER_BYTES)
    }

    fn message_channel(
        &mut self,
    ) -> wasmtime::Result<(Resource<MessagePort>, Resource<MessagePort>)> {
        let (a, b) = port::channel();
        let a = self.table.push(MessagePort(Some(a)))?;
        let b = self.table.push(MessagePort(Some(b)))?;
        Ok((a, b))
    }

    fn start_worker(
        &mut self,
        module: String,
        options: WorkerOptions,
    ) -> wasmtime::Result<Result<(Resource<Worker>, Resource<MessagePort>), WorkerError>> {
        if !module.ends_with(".wasm") {
            // A worker is a wasm process; an OS program is `fork`'s.
            return Ok(Err(WorkerError::Start(ErrorCode::InvalidArgument)));
        }
        // `workerData` moves before the start (the worker may read it at
        // once); given back if the start fails.
        let (data, transfer) = match options.worker_data {
            Some(data) => {
                let reps: Vec<_> = data.transfer.iter().map(borrow_again).collect();
                let total = self.total().clone();
                match take_outgoing(self.table, &total, None, data)? {
                    Ok(msg) => (Some(msg), reps),
                    Err(e) => return Ok(Err(WorkerError::Data(e))),
                }
            }
            None => (None, Vec::new()),
        };
        let (parent_end, worker_end) = port::channel();
        let fork = ForkOptions {
            env: options.env,
            exec_argv: Vec::new(),
            silent: false,
            inherit_dirs: options.inherit_dirs,
            timeout_ms: None,
            kill_signal: None,
            max_procs: None,
            exec_path: None,
            serialization: Serialization::Json,
            limits: options.resource_limits,
            restarts: 0,
        };
        let thread = ThreadStart {
            port: worker_end,
            data,
        };
        let mut cp = ChildProcessView {
            ctx: self.child_process,
            table: self.table,
        };
        let started = cp.fork_thread(module, options.argv, fork, thread);
        let child = match started {
            Ok(child) => child,
            Err((e, thread)) => {
                if let Some(data) = thread.and_then(|t| t.data) {
                    give_back(self.table, &transfer, data);
                }
                return Ok(Err(WorkerError::Start(e.downcast()?)));
            }
        };
        let child = self.table.delete(child)?;
        let worker = Worker {
            id: child.id(),
            proc: child.proc().cloned(),
        };
        let worker = self.table.push(worker)?;
        let port = self.table.push(MessagePort(Some(parent_end)))?;
        Ok(Ok((worker, port)))
    }

    async fn send_to_parent(&mut self, msg: Outgoing) -> Fallible<bool> {
        let channel = self.process.me.channel.clone();
        self.send_over(channel, End::Child, msg).await
    }

    async fn send_to_child(&mut self, child: Resource<Child>, msg: Outgoing) -> Fallible<bool> {
        let channel = self.table.get(&child)?.channel();
        self.send_over(channel, End::Parent, msg).await
    }

    async fn send_to_worker(
        &mut self,
        worker: Resource<crate::cluster::Worker>,
        msg: Outgoing,
    ) -> Fallible<bool> {
        let child = self.table.get(&worker)?.child();
        self.send_to_child(child, msg).await
    }

    fn take_transferred(&mut self) -> wasmtime::Result<Option<Incoming>> {
        match self.process.transferred.take() {
            Some(msg) => Ok(Some(deliver(self.table, *msg)?)),
            None => Ok(None),
        }
    }

    fn is_main_thread(&mut self) -> wasmtime::Result<bool> {
        Ok(!self.ctx.is_worker())
    }

    fn thread_id(&mut self) -> wasmtime::Result<u32> {
        Ok(self.ctx.0.as_ref().map_or(0, |w| w.thread_id))
    }

    fn parent_port(&mut self) -> wasmtime::Result<Option<Resource<MessagePort>>> {
        match self.ctx.0.as_mut().and_then(|w| w.parent_port.take()) {
            Some(end) => Ok(Some(self.table.push(MessagePort(Some(end)))?)),
            None => Ok(None),
        }
    }

    fn worker_data(&mut self) -> wasmtime::Result<Option<PortMessage>> {
        if let Some(data) = self.ctx.0.as_mut().and_then(|w| w.data.take()) {
            return match deliver(self.table, data)? {
                Incoming::Message(msg) => Ok(Some(msg)),
                // Its handles did not fit: the value alone.
                Incoming::MessageError(_) => Ok(self.data_alone()),
            };
        }
        Ok(self.data_alone())
    }
}

impl WorkerThreadsView<'_> {
    /// `send-to-*`: `msg` over an IPC channel from end `from`, its handles
    /// in the envelope's handle slot (taken by `take-transferred`).
    async fn send_over(
        &mut self,
        channel: Option<Arc<Channel>>,
        from: End,
        msg: Outgoing,
    ) -> Fallible<bool> {
        let Some(channel) = channel.filter(|c| c.connected()) else {
            return Ok(Err(ThreadError::ChannelClosed));
        };
        if msg.transfer.is_empty() && msg.share.is_empty() {
            // A plain message: the channel's own send (its checks, Node's
            // rules), nothing to take out of the table.
            return Ok(channel
                .send(from, msg.data.into())
                .await
                .map_err(Into::into));
        }
        if !channel.to_inbox(from) {
            return Ok(Err(ThreadError::NotLocal));
        }
        let total = self.total().clone();
        let mut msg = match take_outgoing(self.table, &total, None, msg)? {
            Ok(msg) => msg,
            Err(e) => return Ok(Err(e)),
        };
        let cost = msg.cost();
        // The value travels as the message; the handles beside it.
        let payload = std::mem::replace(&mut msg.payload, Payload::Bytes(Vec::new()));
        let envelope = Envelope {
            payload,
            handles: vec![Handle(Box::new(msg))],
        };
        Ok(channel
            .forward(from, envelope, cost)
            .await
            .map_err(Into::into))
    }

    fn data_alone(&self) -> Option<PortMessage> {
        let payload = self.ctx.0.as_ref()?.data_payload.clone();
        payload.map(|payload| PortMessage {
            data: payload.into(),
            transferred: Vec::new(),
            shared: Vec::new(),
        })
    }
}

/// Another borrow of a transfer item's handle, to find it again later in
/// the same call.
fn borrow_again(
    item: &crate::bindings::hive::process::worker_threads::Transfer,
) -> crate::bindings::hive::process::worker_threads::Transfer {
    use crate::bindings::hive::process::worker_threads::Transfer;
    match item {
        Transfer::ArrayBuffer(b) => Transfer::ArrayBuffer(Resource::new_borrow(b.rep())),
        Transfer::Port(p) => Transfer::Port(Resource::new_borrow(p.rep())),
    }
}

impl HostArrayBuffer for WorkerThreadsView<'_> {
    fn allocate(&mut self, byte_length: u64) -> Fallible<Resource<ArrayBuffer>> {
        let bytes = match BufferBytes::zeroed(self.total(), byte_length) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(Ok(self.table.push(ArrayBuffer {
            bytes: Some(bytes),
            untransferable: false,
        })?))
    }

    fn from_bytes(&mut self, bytes: Vec<u8>) -> Fallible<Resource<ArrayBuffer>> {
        let bytes = match BufferBytes::from_vec(self.total(), bytes) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(Ok(self.table.push(ArrayBuffer {
            bytes: Some(bytes),
            untransferable: false,
        })?))
    }

    fn byte_length(&mut self, r: Resource<ArrayBuffer>) -> wasmtime::Result<u64> {
        Ok(self
            .table
            .get(&r)?
            .bytes
            .as_ref()
            .map_or(0, |b| b.len() as u64))
    }

    fn detached(&mut self, r: Resource<ArrayBuffer>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&r)?.bytes.is_none())
    }

    fn read(&mut self, r: Resource<ArrayBuffer>, offset: u64, len: u64) -> Fallible<Vec<u8>> {
        let Some(bytes) = &self.table.get(&r)?.bytes else {
            return Ok(Err(ThreadError::Detached));
        };
        Ok(bytes
            .read(offset, len)
            .map(<[u8]>::to_vec)
            .map_err(Into::into))
    }

    fn write(&mut self, r: Resource<ArrayBuffer>, offset: u64, data: Vec<u8>) -> Fallible<()> {
        let Some(bytes) = &mut self.table.get_mut(&r)?.bytes else {
            return Ok(Err(ThreadError::Detached));
        };
        Ok(bytes.write(offset, &data).map_err(Into::into))
    }

    fn mark_as_untransferable(&mut self, r: Resource<ArrayBuffer>) -> wasmtime::Result<()> {
        self.table.get_mut(&r)?.untransferable = true;
        Ok(())
    }

    fn drop(&mut self, r: Resource<ArrayBuffer>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostSharedBuffer for WorkerThreadsView<'_> {
    fn allocate(&mut self, byte_length: u64) -> Fallible<Resource<SharedBuffer>> {
        let bytes = match SharedBytes::zeroed(self.total(), byte_length) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(Ok(self.table.push(SharedBuffer(bytes))?))
    }

    fn byte_length(&mut self, r: Resource<SharedBuffer>) -> wasmtime::Result<u64> {
        Ok(self.shared(&r)?.len() as u64)
    }

    fn clone(&mut self, r: Resource<SharedBuffer>) -> wasmtime::Result<Resource<SharedBuffer>> {
        let bytes = self.table.get(&r)?.0.clone();
        Ok(self.table.push(SharedBuffer(bytes))?)
    }

    fn read(&mut self, r: Resource<SharedBuffer>, offset: u64, len: u64) -> Fallible<Vec<u8>> {
        Ok(self.shared(&r)?.read(offset, len).map_err(Into::into))
    }

    fn write(&mut self, r: Resource<SharedBuffer>, offset: u64, data: Vec<u8>) -> Fallible<()> {
        Ok(self.shared(&r)?.write(offset, &data).map_err(Into::into))
    }

    fn load(&mut self, r: Resource<SharedBuffer>, index: u64) -> Fallible<i32> {
        Ok(self.shared(&r)?.load(index).map_err(Into::into))
    }

    fn store(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        Ok(self.shared(&r)?.store(index, value).map_err(Into::into))
    }

    fn add(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        self.update(r, index, AtomicOp::Add, value)
    }

    fn sub(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        self.update(r, index, AtomicOp::Sub, value)
    }

    fn and(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        self.update(r, index, AtomicOp::And, value)
    }

    fn or(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        self.update(r, index, AtomicOp::Or, value)
    }

    fn xor(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        self.update(r, index, AtomicOp::Xor, value)
    }

    fn exchange(&mut self, r: Resource<SharedBuffer>, index: u64, value: i32) -> Fallible<i32> {
        self.update(r, index, AtomicOp::Exchange, value)
    }

    fn compare_exchange(
        &mut self,
        r: Resource<SharedBuffer>,
        index: u64,
        expected: i32,
        replacement: i32,
    ) -> Fallible<i32> {
        Ok(self
            .shared(&r)?
            .compare_exchange(index, expected, replacement)
            .map_err(Into::into))
    }

    async fn wait(
        &mut self,
        r: Resource<SharedBuffer>,
        index: u64,
        expected: i32,
        timeout_ms: Option<f64>,
    ) -> Fallible<WaitResult> {
        let bytes = self.table.get(&r)?.0.clone();
        // As `Atomics.wait`: NaN and +∞ wait for ever, a negative timeout
        // (−∞ too) is 0; one too long for a `Duration` is for ever.
        let timeout = timeout_ms
            .filter(|ms| !ms.is_nan())
            .and_then(|ms| Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).ok());
        Ok(match bytes.wait(index, expected, timeout).await {
            Ok(buffer::WaitResult::Ok) => Ok(WaitResult::Ok),
            Ok(buffer::WaitResult::NotEqual) => Ok(WaitResult::NotEqual),
            Ok(buffer::WaitResult::TimedOut) => Ok(WaitResult::TimedOut),
            Err(e) => Err(e.into()),
        })
    }

    fn notify(
        &mut self,
        r: Resource<SharedBuffer>,
        index: u64,
        count: Option<u32>,
    ) -> Fallible<u32> {
        Ok(self.shared(&r)?.notify(index, count).map_err(Into::into))
    }

    fn drop(&mut self, r: Resource<SharedBuffer>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl HostMessagePort for WorkerThreadsView<'_> {
    async fn post_message(&mut self, r: Resource<MessagePort>, msg: Outgoing) -> Fallible<()> {
        let total = self.total().clone();
        let msg = match take_outgoing(self.table, &total, Some(&r), msg)? {
            Ok(msg) => msg,
            Err(e) => return Ok(Err(e)),
        };
        // A detached port drops what is posted on it, as a closed one.
        if let Some(end) = &self.table.get(&r)?.0 {
            end.post(msg).await;
        }
        Ok(Ok(()))
    }

    fn try_receive(&mut self, r: Resource<MessagePort>) -> wasmtime::Result<Option<Incoming>> {
        let Some(msg) = self.table.get(&r)?.0.as_ref().and_then(|e| e.try_receive()) else {
            return Ok(None);
        };
        Ok(Some(deliver(self.table, msg)?))
    }

    fn is_closed(&mut self, r: Resource<MessagePort>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&r)?.0.as_ref().is_none_or(|e| e.is_closed()))
    }

    fn close(&mut self, r: Resource<MessagePort>) -> wasmtime::Result<()> {
        if let Some(end) = &self.table.get(&r)?.0 {
            end.close();
        }
        Ok(())
    }

    fn subscribe(&mut self, r: Resource<MessagePort>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, r)
    }

    fn drop(&mut self, r: Resource<MessagePort>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for MessagePort {
    async fn ready(&mut self) {
        // A detached port has nothing to wait for: `is-closed` says so.
        if let Some(end) = &self.0 {
            end.ready().await;
        }
    }
}

impl HostWorker for WorkerThreadsView<'_> {
    fn thread_id(&mut self, r: Resource<Worker>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.id)
    }

    fn terminate(&mut self, r: Resource<Worker>) -> wasmtime::Result<bool> {
        let worker = self.table.get(&r)?;
        // SIGKILL: not catchable, and the worker's exit code is 1.
        Ok(worker.proc.as_ref().is_some_and(|p| p.kill(Signal::KILL)))
    }

    fn drop(&mut self, r: Resource<Worker>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
