//! `hive:process/process`: the current process — identity, the channel to
//! the parent, the event queue, signals and exit.

use crate::bindings::hive::process::process::Host;
use crate::bindings::{ChildEventKind, ErrorCode, Event, Message};
use crate::ctx::HostState;
use crate::inbox::Inbox;
use crate::message;
use crate::signal::Signal;
use crate::table::Proc;
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable};

impl Host for HostState {
    async fn pid(&mut self) -> wasmtime::Result<u32> {
        Ok(self.process.me.pid)
    }

    async fn ppid(&mut self) -> wasmtime::Result<u32> {
        Ok(self.process.ppid)
    }

    async fn argv(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.process.argv.clone())
    }

    async fn exit(&mut self, code: u8) -> wasmtime::Result<()> {
        Err(wasmtime_wasi::I32Exit(code.into()).into())
    }

    async fn connected(&mut self) -> wasmtime::Result<bool> {
        Ok(self
            .process
            .parent
            .as_ref()
            .is_some_and(|p| p.channel.connected()))
    }

    async fn send(&mut self, msg: Message) -> wasmtime::Result<Result<bool, ErrorCode>> {
        let Some(link) = &self.process.parent else {
            return Ok(Err(ErrorCode::ChannelClosed));
        };
        let cost = match message::validate(&msg) {
            Ok(cost) => cost,
            Err(code) => return Ok(Err(code)),
        };
        if !link.channel.connected() {
            return Ok(Err(ErrorCode::ChannelClosed));
        }
        let flow = link.channel.up.clone();
        let room = match flow.try_reserve(cost) {
            Some(room) => room,
            None => flow.reserve(cost).await,
        };
        let event = Event::Child(crate::bindings::ChildEvent {
            id: self.process.me.pid,
            kind: ChildEventKind::Message(msg),
        });
        link.parent.inbox.push(event, Some((flow, cost)));
        Ok(Ok(room))
    }

    async fn disconnect(&mut self) -> wasmtime::Result<Result<(), ErrorCode>> {
        let Some(link) = &self.process.parent else {
            return Ok(Err(ErrorCode::NotConnected));
        };
        if !link.channel.close() {
            return Ok(Err(ErrorCode::NotConnected));
        }
        link.report(self.process.me.pid, ChildEventKind::Disconnect);
        self.process.me.inbox.push(Event::Disconnect, None);
        Ok(Ok(()))
    }

    async fn handle_signal(
        &mut self,
        signal: String,
        handled: bool,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let Some(signal) = Signal::parse(&signal) else {
            return Ok(Err(ErrorCode::UnknownSignal));
        };
        if !signal.catchable() {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        self.process.me.set_handled(signal, handled);
        Ok(Ok(()))
    }

    async fn next_event(&mut self) -> wasmtime::Result<Option<Event>> {
        let me = &self.process.me;
        loop {
            if let Some(event) = me.inbox.try_pop() {
                return Ok(Some(event));
            }
            if !me.can_receive() {
                return Ok(None);
            }
            me.inbox
                .wait_until(|| me.inbox.has_any() || !me.can_receive())
                .await;
        }
    }

    async fn try_next_event(&mut self) -> wasmtime::Result<Option<Event>> {
        Ok(self.process.me.inbox.try_pop())
    }

    async fn subscribe(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = InboxReady::Process(self.process.me.clone());
        let resource = self.table.push(ready)?;
        wasmtime_wasi::p2::subscribe(&mut self.table, resource)
    }
}

/// A pollable over an inbox: for the whole process, or for one child.
pub enum InboxReady {
    /// Ready when the process has an event, or none can come.
    Process(Arc<Proc>),
    /// Ready when child `id` has an event, or has none left to come.
    Child {
        inbox: Arc<Inbox>,
        id: u32,
        child: Option<Arc<Proc>>,
    },
}

#[wasmtime_wasi::async_trait]
impl Pollable for InboxReady {
    async fn ready(&mut self) {
        match self {
            InboxReady::Process(me) => {
                me.inbox
                    .wait_until(|| me.inbox.has_any() || !me.can_receive())
                    .await
            }
            InboxReady::Child { inbox, id, child } => {
                let closed = || Proc::all_reported(child.as_ref());
                inbox.wait_until(|| inbox.has_child(*id) || closed()).await
            }
        }
    }
}
