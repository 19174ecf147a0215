//! The one `bindgen!` for the `hive:process` WIT package, and the edge
//! where the runtime's own types become the WIT's.
//!
//! Every import is `trappable` (it returns `wasmtime::Result`, so a host
//! invariant break or a deliberate exit traps), and `error-code` is a
//! trappable error type: a function that fails returns a [`HostError`],
//! which is either a guest-visible `error-code` or a trap, so `?` serves
//! both. We use wasmtime's own `wasmtime::Error` throughout.
//!
//! Only the functions that can block are `async` (a guest blocks in them
//! on its fiber without blocking a thread); everything else is sync.
//!
//! No `tracing` flag: a span per host call cost 11% of message throughput
//! (measured with perf); the slow paths (fork, exit) log by hand instead.

/// What `bindgen!` generates, undocumented by nature: the WIT's own docs
/// (`wit/`) are the reference for every item.
#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "hive:process/guest",
        imports: {
            // Only these functions are `async`; they are the only ones that
            // wait: for an event, for room in a receiver's queue (`send` past
            // the hard limit), or for an OS program to finish.
            "hive:process/process.next-event": async | trappable,
            "hive:process/process.send": async | trappable,
            "hive:process/child-process.[method]child.send": async | trappable,
            "hive:process/cluster.[method]worker.send": async | trappable,
            "hive:process/child-process.[method]child.next-event": async | trappable,
            "hive:process/child-process.[method]child.output": async | trappable,
            "hive:process/child-process.spawn-sync": async | trappable,
            "hive:process/child-process.exec-sync": async | trappable,
            "hive:process/child-process.exec-file-sync": async | trappable,
            "hive:process/worker-threads.[method]message-port.post-message": async | trappable,
            "hive:process/worker-threads.[method]shared-buffer.wait": async | trappable,
            "hive:process/worker-threads.send-to-parent": async | trappable,
            "hive:process/worker-threads.send-to-child": async | trappable,
            "hive:process/worker-threads.send-to-worker": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        trappable_error_type: {
            "hive:process/types.error-code" => crate::bindings::HostError,
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
        with: {
            // Every WASI interface is wasmtime-wasi's, except the two that
            // create and use TCP sockets: Hive owns those (`crate::sockets`),
            // so that a cluster worker's `listen` joins the host's listener.
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/instance-network": wasmtime_wasi::p2::bindings::sockets::instance_network,
            "wasi:sockets/udp": wasmtime_wasi::p2::bindings::sockets::udp,
            "wasi:sockets/udp-create-socket": wasmtime_wasi::p2::bindings::sockets::udp_create_socket,
            "wasi:sockets/ip-name-lookup": wasmtime_wasi::p2::bindings::sockets::ip_name_lookup,
            "wasi:sockets/tcp.tcp-socket": crate::sockets::TcpSocket,
            "hive:process/child-process.child": crate::child_process::Child,
            "hive:process/cluster.worker": crate::cluster::Worker,
            "hive:process/worker-threads.array-buffer": crate::worker_threads::ArrayBuffer,
            "hive:process/worker-threads.shared-buffer": crate::worker_threads::SharedBuffer,
            "hive:process/worker-threads.message-port": crate::worker_threads::MessagePort,
            "hive:process/worker-threads.worker": crate::worker_threads::Worker,
        },
    });
}

pub use generated::*;

use crate::runtime::budget::TooManyProcesses;
use crate::runtime::event::{self, ChildEvent, Payload, StartError};
use crate::runtime::exit;
use crate::runtime::message::SendError;
pub use hive::process::types::{
    ChildEvent as WitChildEvent, ChildEventKind, ErrorCode, ErrorInfo, Event,
    ExitStatus as WitExitStatus, ListenAddress, Message,
};

/// A failed host call: a guest-visible `error-code`, or a trap (what
/// `trappable_error_type` makes of `error-code`; `?` serves both).
#[derive(Debug)]
pub struct HostError(wasmtime::Error);

impl HostError {
    /// The guest's `error-code`, or the trap.
    pub fn downcast(self) -> wasmtime::Result<ErrorCode> {
        self.0.downcast()
    }
}

impl From<ErrorCode> for HostError {
    fn from(code: ErrorCode) -> HostError {
        HostError(code.into())
    }
}

impl From<wasmtime::Error> for HostError {
    fn from(trap: wasmtime::Error) -> HostError {
        HostError(trap)
    }
}

impl From<wasmtime::component::ResourceTableError> for HostError {
    fn from(e: wasmtime::component::ResourceTableError) -> HostError {
        HostError(e.into())
    }
}

impl From<&hive::process::child_process::Limits> for crate::runtime::caps::Requested {
    fn from(l: &hive::process::child_process::Limits) -> Self {
        crate::runtime::caps::Requested {
            max_memory: l.max_memory,
            max_cpu_ms: l.max_cpu_ms,
            max_resources: l.max_resources,
            max_address_space: l.max_address_space,
            max_open_files: l.max_open_files,
        }
    }
}

impl From<Message> for Payload {
    fn from(msg: Message) -> Payload {
        match msg {
            Message::Json(text) => Payload::Json(text),
            Message::Bytes(bytes) => Payload::Bytes(bytes),
        }
    }
}

impl From<Payload> for Message {
    fn from(payload: Payload) -> Message {
        match payload {
            Payload::Json(text) => Message::Json(text),
            Payload::Bytes(bytes) => Message::Bytes(bytes),
        }
    }
}

impl From<event::Envelope> for Message {
    /// The message a guest sees. A guest cannot hold a handle yet, so any
    /// that came with it are dropped (closed) here.
    fn from(envelope: event::Envelope) -> Message {
        envelope.payload.into()
    }
}

impl From<event::Event> for Event {
    fn from(event: event::Event) -> Event {
        match event {
            event::Event::Message(envelope) => Event::Message(envelope.into()),
            event::Event::Disconnect => Event::Disconnect,
            event::Event::Signal(signal) => Event::Signal(signal.name().to_owned()),
            event::Event::Child { id, event } => Event::Child(WitChildEvent {
                id,
                kind: event.into(),
            }),
            event::Event::Down {
                monitor,
                pid,
                status,
            } => Event::Down(hive::process::types::ProcessDown {
                monitor,
                pid,
                status: status.into(),
            }),
            // Opened into resources by `process::next-event` (it needs the
            // table); never converted as a value.
            event::Event::Request { .. } => unreachable!("requests are opened, not converted"),
        }
    }
}

impl From<ChildEvent> for ChildEventKind {
    fn from(event: ChildEvent) -> ChildEventKind {
        match event {
            ChildEvent::Spawn => ChildEventKind::Spawn,
            ChildEvent::Online => ChildEventKind::Online,
            ChildEvent::Listening(addr) => ChildEventKind::Listening(ListenAddress {
                address: addr.ip().to_string(),
                port: addr.port(),
                address_type: if addr.is_ipv4() { 4 } else { 6 },
            }),
            ChildEvent::Message(envelope) => ChildEventKind::Message(envelope.into()),
            ChildEvent::Disconnect(taken) => {
                // Taken now: from here on the parent sees it disconnected.
                taken.mark();
                ChildEventKind::Disconnect
            }
            ChildEvent::Exit(status, taken) => {
                // Taken now: from here on the parent sees how it ended.
                taken.mark();
                ChildEventKind::Exit(status.into())
            }
            ChildEvent::Close(status) => ChildEventKind::Close(status.into()),
            ChildEvent::Error(error) => ChildEventKind::Error((*error).into()),
        }
    }
}

impl From<StartError> for ErrorInfo {
    fn from(e: StartError) -> ErrorInfo {
        ErrorInfo {
            code: e.code,
            errno: e.errno,
            syscall: e.syscall,
            path: e.path,
            message: e.message,
            spawnargs: e.spawnargs,
        }
    }
}

impl From<exit::ExitStatus> for WitExitStatus {
    fn from(status: exit::ExitStatus) -> Self {
        match status {
            exit::ExitStatus::Code(code) => WitExitStatus {
                code: Some(code),
                signal: None,
            },
            exit::ExitStatus::Signal(signal) => WitExitStatus {
                code: None,
                signal: Some(signal.name().to_owned()),
            },
        }
    }
}

impl From<SendError> for ErrorCode {
    fn from(e: SendError) -> ErrorCode {
        match e {
            SendError::ChannelClosed | SendError::NeverStarted => ErrorCode::ChannelClosed,
            SendError::TooLarge => ErrorCode::MessageTooLarge,
            SendError::InvalidJson => ErrorCode::InvalidJson,
        }
    }
}

impl From<SendError> for HostError {
    fn from(e: SendError) -> HostError {
        ErrorCode::from(e).into()
    }
}

impl From<TooManyProcesses> for HostError {
    fn from(e: TooManyProcesses) -> HostError {
        tracing::debug!("refused: {e}");
        ErrorCode::TooManyProcesses.into()
    }
}
