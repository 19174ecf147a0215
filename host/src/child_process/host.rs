//! `impl Host` and `impl HostChild` for `hive:process/child-process`: thin
//! calls into `fork.rs`, `spawn.rs` and the runtime.

use super::{Child, ChildProcessView, MAX_EPIPE_EVENTS};
use crate::bindings::hive::process::child_process::{
    ExecOptions, ExecOutput, ForkOptions, Host, HostChild, SpawnOptions, SpawnSyncResult,
    SyncOptions,
};
use crate::bindings::{ChildEventKind, ErrorCode, HostError, Message, WitExitStatus};
use crate::os::DEFAULT_SHELL;
use crate::process::InboxReady;
use crate::runtime::lifecycle::{self, End};
use crate::runtime::message::SendError;
use crate::runtime::pipe::{self, Pipe, PipeReader};
use crate::runtime::proc::Proc;
use crate::runtime::signal::Signal;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

crate::types::types_host!(ChildProcessView<'_>);

impl Host for ChildProcessView<'_> {
    fn fork(
        &mut self,
        module: String,
        args: Vec<String>,
        options: ForkOptions,
    ) -> Result<Resource<Child>, HostError> {
        ChildProcessView::fork(self, module, args, options)
    }

    fn spawn(
        &mut self,
        command: String,
        args: Vec<String>,
        options: SpawnOptions,
    ) -> Result<Resource<Child>, HostError> {
        // The cwd, the PATH search and the exec touch what the guest named.
        crate::runtime::blocking(|| ChildProcessView::spawn(self, command, args, options))
    }

    fn exec(
        &mut self,
        command: String,
        options: ExecOptions,
    ) -> Result<Resource<Child>, HostError> {
        let shell = options
            .shell
            .clone()
            .unwrap_or_else(|| DEFAULT_SHELL.into());
        crate::runtime::blocking(|| {
            ChildProcessView::exec(self, &command, &[], Some(shell), options)
        })
    }

    fn exec_file(
        &mut self,
        file: String,
        args: Vec<String>,
        options: ExecOptions,
    ) -> Result<Resource<Child>, HostError> {
        let shell = options.shell.clone();
        crate::runtime::blocking(|| ChildProcessView::exec(self, &file, &args, shell, options))
    }

    async fn spawn_sync(
        &mut self,
        command: String,
        args: Vec<String>,
        options: SyncOptions,
    ) -> Result<SpawnSyncResult, HostError> {
        ChildProcessView::spawn_sync(self, command, args, options).await
    }

    async fn exec_sync(
        &mut self,
        command: String,
        options: SyncOptions,
    ) -> Result<ExecOutput, HostError> {
        let shell = options
            .shell
            .clone()
            .unwrap_or_else(|| DEFAULT_SHELL.into());
        ChildProcessView::exec_sync(self, &command, &[], Some(shell), options).await
    }

    async fn exec_file_sync(
        &mut self,
        file: String,
        args: Vec<String>,
        options: SyncOptions,
    ) -> Result<ExecOutput, HostError> {
        let shell = options.shell.clone();
        ChildProcessView::exec_sync(self, &file, &args, shell, options).await
    }

    fn pipe(
        &mut self,
        source: Resource<DynInputStream>,
        sink: Resource<DynOutputStream>,
    ) -> wasmtime::Result<()> {
        let source = self.table.delete(source)?;
        let sink = self.table.delete(sink)?;
        pipe::copy(source, sink);
        Ok(())
    }
}

impl ChildProcessView<'_> {
    fn push_reader(
        &mut self,
        reader: Option<PipeReader>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        Ok(match reader {
            Some(r) => Some(self.table.push(Box::new(r) as DynInputStream)?),
            None => None,
        })
    }
}

impl HostChild for ChildProcessView<'_> {
    fn id(&mut self, child: Resource<Child>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&child)?.id)
    }

    fn spawnfile(&mut self, child: Resource<Child>) -> wasmtime::Result<String> {
        Ok(self.table.get(&child)?.spawnfile.clone())
    }

    fn spawnargs(&mut self, child: Resource<Child>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&child)?.spawnargs.clone())
    }

    fn pid(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<u32>> {
        Ok(self.table.get(&child)?.proc.as_ref().map(|p| p.pid))
    }

    async fn send(&mut self, handle: Resource<Child>, msg: Message) -> Result<bool, HostError> {
        let child = self.table.get(&handle)?;
        let Some(channel) = &child.channel else {
            return Err(ErrorCode::ChannelClosed.into());
        };
        match channel.send(End::Parent, msg.into()).await {
            Err(SendError::NeverStarted) => {
                // A fork that never started (`lifecycle::failed_start`):
                // queued nowhere, reported as an event, after the start
                // error — up to a bound, so a guest that sends in a loop
                // without ever taking its events cannot grow its inbox
                // without end.
                let child = self.table.get_mut(&handle)?;
                child.epipes += 1;
                if child.epipes > MAX_EPIPE_EVENTS {
                    return Err(ErrorCode::ChannelClosed.into());
                }
                lifecycle::epipe(&self.ctx.me, child.id);
                Ok(true)
            }
            sent => Ok(sent?),
        }
    }

    fn disconnect(&mut self, child: Resource<Child>) -> Result<(), HostError> {
        let child = self.table.get(&child)?;
        match (&child.proc, &child.channel) {
            (Some(_), Some(channel)) if channel.disconnect_by_parent() => Ok(()),
            _ => Err(ErrorCode::NotConnected.into()),
        }
    }

    fn connected(&mut self, child: Resource<Child>) -> wasmtime::Result<bool> {
        let child = self.table.get(&child)?;
        Ok(child
            .channel
            .as_ref()
            .is_some_and(|c| c.connected_for_parent()))
    }

    fn kill(&mut self, child: Resource<Child>, signal: String) -> Result<bool, HostError> {
        let signal = Signal::parse(&signal).ok_or(ErrorCode::UnknownSignal)?;
        let child = self.table.get(&child)?;
        Ok(child.proc.as_ref().is_some_and(|p| p.kill(signal)))
    }

    fn killed(&mut self, child: Resource<Child>) -> wasmtime::Result<bool> {
        let child = self.table.get(&child)?;
        Ok(child.proc.as_ref().is_some_and(|p| p.was_killed()))
    }

    fn exit_status(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<WitExitStatus>> {
        Ok(self.table.get(&child)?.status().map(WitExitStatus::from))
    }

    async fn next_event(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<ChildEventKind>> {
        let inbox = self.ctx.me.inbox.clone();
        let child = self.table.get(&child)?;
        let id = child.id;
        let proc = child.proc.clone();
        let closed = || Proc::all_reported(proc.as_ref());
        loop {
            if let Some(event) = inbox.try_pop_child(id) {
                return Ok(Some(event.into()));
            }
            if closed() {
                // `close` is queued before the child counts as closed: one
                // queued between the take above and that check is taken now.
                return Ok(inbox.try_pop_child(id).map(Into::into));
            }
            inbox.wait_until(|| inbox.has_child(id) || closed()).await;
        }
    }

    fn subscribe(&mut self, child: Resource<Child>) -> wasmtime::Result<Resource<DynPollable>> {
        let c = self.table.get(&child)?;
        let ready = InboxReady::Child {
            inbox: self.ctx.me.inbox.clone(),
            id: c.id,
            child: c.proc.clone(),
        };
        let resource = self.table.push(ready)?;
        wasmtime_wasi::p2::subscribe(self.table, resource)
    }

    fn stdin(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynOutputStream>>> {
        let stream = self.table.get_mut(&child)?.stdin.take();
        Ok(match stream {
            Some(s) => Some(self.table.push(s)?),
            None => None,
        })
    }

    fn stdout(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let reader = self
            .table
            .get(&child)?
            .stdout
            .as_ref()
            .and_then(Pipe::take_reader);
        self.push_reader(reader)
    }

    fn stderr(
        &mut self,
        child: Resource<Child>,
    ) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let reader = self
            .table
            .get(&child)?
            .stderr
            .as_ref()
            .and_then(Pipe::take_reader);
        self.push_reader(reader)
    }

    async fn output(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<ExecOutput>> {
        let Some(mut output) = self.table.get_mut(&child)?.output.take() else {
            return Ok(None);
        };
        let ready = output.wait_for(Option::is_some).await;
        Ok(ready.ok().and_then(|o| o.clone()))
    }

    fn drop(&mut self, child: Resource<Child>) -> wasmtime::Result<()> {
        self.table.delete(child)?;
        Ok(())
    }
}
