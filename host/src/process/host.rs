//! `impl Host` for `hive:process/process`: thin calls into the runtime.

use super::{InboxReady, ProcessView};
use crate::bindings::hive::process::process::{Host, ProcessInfo};
use crate::bindings::hive::process::types::HttpRequest;
use crate::bindings::{ErrorCode, Event, HostError, Message};
use crate::runtime::event::{ChildEvent, Event as RuntimeEvent};
use crate::runtime::lifecycle::End;
use crate::runtime::signal::Signal;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

crate::types::types_host!(ProcessView<'_>);

impl Host for ProcessView<'_> {
    fn pid(&mut self) -> wasmtime::Result<u32> {
        Ok(self.ctx.me.pid)
    }

    fn ppid(&mut self) -> wasmtime::Result<u32> {
        Ok(self.ctx.ppid)
    }

    fn argv(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.argv.clone())
    }

    fn exit(&mut self, code: u8) -> wasmtime::Result<()> {
        Err(wasmtime_wasi::I32Exit(code.into()).into())
    }

    fn connected(&mut self) -> wasmtime::Result<bool> {
        Ok(self.ctx.me.channel.as_ref().is_some_and(|c| c.connected()))
    }

    async fn send(&mut self, msg: Message) -> Result<bool, HostError> {
        let Some(channel) = &self.ctx.me.channel else {
            return Err(ErrorCode::ChannelClosed.into());
        };
        Ok(channel.send(End::Child, msg.into()).await?)
    }

    fn disconnect(&mut self) -> Result<(), HostError> {
        match &self.ctx.me.channel {
            Some(channel) if channel.disconnect() => Ok(()),
            _ => Err(ErrorCode::NotConnected.into()),
        }
    }

    fn handle_signal(&mut self, signal: String, handled: bool) -> Result<(), HostError> {
        let signal = Signal::parse(&signal).ok_or(ErrorCode::UnknownSignal)?;
        if !signal.catchable() {
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.ctx.me.set_handled(signal, handled);
        Ok(())
    }

    async fn next_event(&mut self) -> wasmtime::Result<Option<Event>> {
        loop {
            // Only with something queued: an idle guest waits here on its
            // fiber stack, and `try_next_event`'s frame would make that
            // stack a page deeper (bench/stack_depth.py: 4,136 bytes, one
            // page is 4,096) for every idle guest.
            if self.ctx.me.inbox.has_any()
                && let Some(event) = self.try_next_event()?
            {
                return Ok(Some(event));
            }
            let me = &self.ctx.me;
            if !me.can_receive() {
                // An event queued while `can_receive` looked (a child's
                // last `close`, just before it stopped counting) is taken.
                return self.try_next_event();
            }
            me.inbox
                .wait_until(|| me.inbox.has_any() || !me.can_receive())
                .await;
        }
    }

    fn try_next_event(&mut self) -> wasmtime::Result<Option<Event>> {
        // Handles of the last message not taken are dropped now.
        self.ctx.transferred = None;
        while let Some(mut event) = self.ctx.me.inbox.try_pop() {
            let envelope = match &mut event {
                RuntimeEvent::Message(envelope)
                | RuntimeEvent::Child {
                    event: ChildEvent::Message(envelope),
                    ..
                } => Some(envelope),
                _ => None,
            };
            if let Some(handle) = envelope.and_then(|e| e.handles.pop()) {
                self.ctx.transferred = handle.0.downcast().ok();
            }
            if let RuntimeEvent::Down { monitor, .. } = &event
                && self.ctx.watching.monitors.remove(monitor).is_none()
            {
                // Cancelled (`demonitor`) after it was queued.
                continue;
            }
            let RuntimeEvent::Request { server, request } = event else {
                return Ok(Some(event.into()));
            };
            // A request the guest's API cannot hold was answered already.
            let mut view = self.http.view(self.table);
            if let Some((request, response)) = crate::http::open_request(&mut view, request)? {
                return Ok(Some(Event::Request(HttpRequest {
                    server,
                    request,
                    response,
                })));
            }
        }
        Ok(None)
    }

    fn monitor(&mut self, pid: u32) -> Result<u32, HostError> {
        let target = self.watchable(pid)?;
        let watching = &mut self.ctx.watching;
        watching.next += 1;
        let id = watching.next;
        watching
            .monitors
            .insert(id, std::sync::Arc::downgrade(&target));
        target.watch(&self.ctx.me, Some(id));
        Ok(id)
    }

    fn demonitor(&mut self, id: u32) -> wasmtime::Result<()> {
        if let Some(target) = self
            .ctx
            .watching
            .monitors
            .remove(&id)
            .and_then(|t| t.upgrade())
        {
            target.unwatch(&self.ctx.me, Some(id));
        }
        // A `down` already queued for it is dropped when taken.
        Ok(())
    }

    fn link(&mut self, pid: u32) -> Result<(), HostError> {
        let target = self.watchable(pid)?;
        let watching = &mut self.ctx.watching;
        if !watching
            .links
            .iter()
            .any(|l| std::ptr::eq(l.as_ptr(), std::sync::Arc::as_ptr(&target)))
        {
            watching.links.push(std::sync::Arc::downgrade(&target));
        }
        target.watch(&self.ctx.me, None);
        Ok(())
    }

    fn unlink(&mut self, pid: u32) -> wasmtime::Result<()> {
        let me = self.ctx.me.clone();
        self.ctx.watching.links.retain(|l| match l.upgrade() {
            Some(target) if target.pid == pid => {
                target.unwatch(&me, None);
                false
            }
            Some(_) => true,
            None => false,
        });
        Ok(())
    }

    fn subtree(&mut self) -> wasmtime::Result<Vec<ProcessInfo>> {
        let me = &self.ctx.me;
        Ok(me
            .subtree()
            .into_iter()
            .map(|p| ProcessInfo {
                pid: p.pid,
                ppid: p.parent_pid().unwrap_or(self.ctx.ppid),
                os: p.is_os(),
                name: p.name.clone(),
                memory: p.memory_bytes(),
                cpu_us: p.cpu_us(),
                restarts: p.restarts,
            })
            .collect())
    }

    fn subscribe(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = InboxReady::Process(self.ctx.me.clone());
        let resource = self.table.push(ready)?;
        wasmtime_wasi::p2::subscribe(self.table, resource)
    }
}

impl ProcessView<'_> {
    /// Live descendant `pid`, if this process may watch one more process.
    fn watchable(
        &mut self,
        pid: u32,
    ) -> Result<std::sync::Arc<crate::runtime::proc::Proc>, HostError> {
        if self.ctx.watching.full() {
            tracing::warn!(
                "guest `{}` (pid {}) holds {} monitors and links, the most a process may",
                self.ctx.me.name,
                self.ctx.me.pid,
                super::MAX_WATCHING
            );
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.ctx
            .me
            .descendant(pid)
            .ok_or_else(|| ErrorCode::NoSuchProcess.into())
    }
}
