//! `impl Host` and `impl HostWorker` for `hive:process/cluster`: settings
//! and `fork` here, the rest delegated to the worker's `Child`.

use super::Worker;
use crate::bindings::hive::process::child_process::{ForkOptions, HostChild};
use crate::bindings::hive::process::cluster::{
    Host, HostWorker, ListenerInfo, PrimarySettings, SchedulingPolicy, SetupOptions, WorkerLoad,
    WorkerState,
};
use crate::bindings::{ErrorCode, HostError, Message};
use crate::child_process::ChildProcessView;
use crate::child_process::fork::AsWorker;
use crate::runtime::argv::has_nul;
use crate::runtime::cluster::{Cluster, WorkerState as State};
use std::sync::Arc;
use wasmtime::component::Resource;

impl ChildProcessView<'_> {
    /// The primary's cluster, made on first use.
    fn cluster(&mut self) -> Result<Arc<Cluster>, HostError> {
        if self.ctx.cluster.worker.is_some() {
            // Node: `cluster.fork` and `setupPrimary` exist only in the primary.
            return Err(ErrorCode::InvalidArgument.into());
        }
        let me = self.ctx.me.pid;
        let registry = self.ctx.hive.runtime().listeners().clone();
        let policy = self.ctx.cluster.settings.scheduling_policy.into();
        Ok(self
            .ctx
            .cluster
            .primary
            .get_or_insert_with(|| Cluster::new(me, registry, policy))
            .clone())
    }
}

impl Host for ChildProcessView<'_> {
    fn available_parallelism(&mut self) -> wasmtime::Result<u32> {
        Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
    }

    fn is_primary(&mut self) -> wasmtime::Result<bool> {
        Ok(self.ctx.cluster.worker.is_none())
    }

    fn is_worker(&mut self) -> wasmtime::Result<bool> {
        Ok(self.ctx.cluster.worker.is_some())
    }

    fn worker_id(&mut self) -> wasmtime::Result<Option<u32>> {
        Ok(self.ctx.cluster.worker.as_ref().map(|w| w.record.id))
    }

    fn setup_primary(&mut self, options: SetupOptions) -> Result<PrimarySettings, HostError> {
        let cluster = self.cluster()?;
        let strings = options
            .exec
            .iter()
            .chain(options.exec_path.iter())
            .chain(options.args.iter().flatten())
            .chain(options.exec_argv.iter().flatten());
        if options.exec.as_ref().is_some_and(|e| e.is_empty())
            || strings.into_iter().any(|s| has_nul(s))
        {
            return Err(ErrorCode::InvalidArgument.into());
        }
        // Workers never get more than this process has: refused here
        // rather than at each fork.
        if let Some(limits) = &options.limits
            && let Err(why) = self.ctx.caps.narrowed(&limits.into())
        {
            tracing::warn!(
                "guest `{}` (pid {}) may not give its workers those limits: {why}",
                self.ctx.me.name,
                self.ctx.me.pid
            );
            return Err(ErrorCode::InvalidArgument.into());
        }
        let s = &mut self.ctx.cluster.settings;
        if let Some(exec) = options.exec {
            s.exec = exec;
        }
        if let Some(args) = options.args {
            s.args = args;
        }
        if let Some(exec_argv) = options.exec_argv {
            s.exec_argv = exec_argv;
        }
        if options.exec_path.is_some() {
            s.exec_path = options.exec_path;
        }
        if let Some(serialization) = options.serialization {
            s.serialization = serialization;
        }
        if let Some(silent) = options.silent {
            s.silent = silent;
        }
        if let Some(policy) = options.scheduling_policy {
            s.scheduling_policy = policy;
            cluster.set_default_policy(policy.into());
        }
        if let Some(limits) = options.limits {
            s.limits = limits;
        }
        Ok(s.clone())
    }

    fn settings(&mut self) -> wasmtime::Result<PrimarySettings> {
        Ok(self.ctx.cluster.settings.clone())
    }

    fn fork(
        &mut self,
        env: Option<Vec<(String, String)>>,
        restarts: u32,
    ) -> Result<Resource<Worker>, HostError> {
        let cluster = self.cluster()?;
        let id = cluster.next_id();
        let s = self.ctx.cluster.settings.clone();
        // Node: `{...process.env, ...env, NODE_UNIQUE_ID: id}`. A Node worker
        // needs `NODE_UNIQUE_ID` to run its cluster code; a wasm worker
        // knows it is one from the host, and Node deletes the variable in
        // the worker anyway.
        let mut vars = self.ctx.env.clone();
        for (k, v) in env.into_iter().flatten() {
            vars.retain(|(name, _)| *name != k);
            vars.push((k, v));
        }
        let node = s.exec_path.is_some() || !s.exec.ends_with(".wasm");
        if node {
            vars.push(("NODE_UNIQUE_ID".into(), id.to_string()));
        }
        let options = ForkOptions {
            env: Some(vars),
            exec_argv: s.exec_argv,
            silent: s.silent,
            inherit_dirs: None,
            timeout_ms: None,
            kill_signal: None,
            max_procs: None,
            exec_path: s.exec_path,
            serialization: s.serialization,
            // The primary's, unless `setup-primary` narrowed them.
            limits: s.limits,
            restarts,
        };
        let (child, record) = self.fork_child(
            s.exec,
            s.args,
            options,
            Some(AsWorker { cluster, id }),
            &mut None,
        )?;
        let record = record.expect("a worker fork has a record");
        Ok(self.table.push(Worker { record, child })?)
    }

    fn hold_listeners_on_crash(&mut self, ms: u32) -> wasmtime::Result<()> {
        if self.cluster().is_ok() {
            let hold = std::time::Duration::from_millis(u64::from(ms));
            let registry = self.ctx.hive.runtime().listeners();
            registry.hold_on_crash(self.ctx.me.pid, hold);
        }
        Ok(())
    }

    fn set_listener_policy(&mut self, port: u16, policy: SchedulingPolicy) -> wasmtime::Result<()> {
        if let Ok(cluster) = self.cluster() {
            cluster.set_port_policy(port, policy.into());
            if port == 0 {
                self.ctx.cluster.settings.scheduling_policy = policy;
            }
        }
        Ok(())
    }

    fn listeners(&mut self) -> wasmtime::Result<Vec<ListenerInfo>> {
        let Some(cluster) = &self.ctx.cluster.primary else {
            return Ok(Vec::new());
        };
        Ok(cluster
            .listeners()
            .into_iter()
            .map(|l| ListenerInfo {
                address: l.local.ip().to_string(),
                port: l.local.port(),
                policy: l.policy.into(),
                workers: l
                    .workers
                    .into_iter()
                    .map(|w| WorkerLoad {
                        id: w.worker,
                        open: w.open.min(u32::MAX as usize) as u32,
                        connections: w.connections,
                        requests: w.requests,
                    })
                    .collect(),
            })
            .collect())
    }

    fn set_exclusive(&mut self, exclusive: bool) -> wasmtime::Result<()> {
        if let Some(w) = &self.ctx.cluster.worker {
            w.record.set_exclusive(exclusive);
        }
        Ok(())
    }

    fn disconnect_worker(&mut self) -> wasmtime::Result<()> {
        if let Some(w) = &self.ctx.cluster.worker {
            w.record.leave();
        }
        Ok(())
    }
}

impl HostWorker for ChildProcessView<'_> {
    fn id(&mut self, w: Resource<Worker>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&w)?.record.id)
    }

    fn child_id(&mut self, w: Resource<Worker>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&w)?.record.child_id)
    }

    fn pid(&mut self, w: Resource<Worker>) -> wasmtime::Result<Option<u32>> {
        let child = self.table.get(&w)?.child();
        HostChild::pid(self, child)
    }

    async fn send(&mut self, w: Resource<Worker>, msg: Message) -> Result<bool, HostError> {
        let child = self.table.get(&w)?.child();
        HostChild::send(self, child, msg).await
    }

    fn kill(&mut self, w: Resource<Worker>, signal: String) -> Result<bool, HostError> {
        let child = self.table.get(&w)?.child();
        HostChild::kill(self, child, signal)
    }

    fn disconnect(&mut self, w: Resource<Worker>) -> Result<(), HostError> {
        let worker = self.table.get(&w)?;
        let (record, child) = (worker.record.clone(), worker.child());
        if !HostChild::connected(self, Resource::new_borrow(child.rep()))? {
            return Err(ErrorCode::NotConnected.into());
        }
        // Stop routing first, so no connection reaches a worker on its way out.
        record.leave();
        if record.request_disconnect() {
            // A Node worker closes its servers and then its channel.
            return Ok(());
        }
        HostChild::disconnect(self, child)
    }

    fn is_dead(&mut self, w: Resource<Worker>) -> wasmtime::Result<bool> {
        let child = self.table.get(&w)?.child();
        Ok(HostChild::exit_status(self, child)?.is_some())
    }

    fn is_connected(&mut self, w: Resource<Worker>) -> wasmtime::Result<bool> {
        let child = self.table.get(&w)?.child();
        HostChild::connected(self, child)
    }

    fn exited_after_disconnect(&mut self, w: Resource<Worker>) -> wasmtime::Result<Option<bool>> {
        let record = self.table.get(&w)?.record.clone();
        if record.exited_after_disconnect() {
            // Node sets it as `disconnect()` is called.
            return Ok(Some(true));
        }
        let ended = !self.is_connected(Resource::new_borrow(w.rep()))? || self.is_dead(w)?;
        Ok(ended.then_some(false))
    }

    fn memory(&mut self, w: Resource<Worker>) -> wasmtime::Result<Option<u64>> {
        Ok(self.wasm_proc(w)?.and_then(|p| p.memory_bytes()))
    }

    fn cpu_us(&mut self, w: Resource<Worker>) -> wasmtime::Result<Option<u64>> {
        Ok(self.wasm_proc(w)?.and_then(|p| p.cpu_us()))
    }

    fn state(&mut self, w: Resource<Worker>) -> wasmtime::Result<WorkerState> {
        let record = self.table.get(&w)?.record.clone();
        let connected = self.is_connected(Resource::new_borrow(w.rep()))?;
        let dead = self.is_dead(w)?;
        Ok(match record.state(connected, dead) {
            State::None => WorkerState::None,
            State::Online => WorkerState::Online,
            State::Listening => WorkerState::Listening,
            State::Disconnected => WorkerState::Disconnected,
            State::Dead => WorkerState::Dead,
        })
    }

    fn drop(&mut self, w: Resource<Worker>) -> wasmtime::Result<()> {
        let worker = self.table.delete(w)?;
        self.table.delete(worker.child)?;
        Ok(())
    }
}

impl ChildProcessView<'_> {
    /// Worker `w`'s process, if it is a wasm one (the metrics are a wasm
    /// process's).
    fn wasm_proc(
        &mut self,
        w: Resource<Worker>,
    ) -> wasmtime::Result<Option<Arc<crate::runtime::proc::Proc>>> {
        let child = self.table.get(&w)?.child();
        Ok(self
            .table
            .get(&child)?
            .proc()
            .filter(|p| !p.is_os())
            .cloned())
    }
}
