//! Children (Node's `ChildProcess`): `fork`, messages, signals, events.

use crate::bindings::hive::process::child_process as wit;
use crate::bindings::hive::process::types::{ChildEventKind, Event};
use crate::emitter::Listeners;
use crate::event_loop::{self, Handle, HandleId};
use crate::io::{InputStream, OutputStream, Pollable};
use crate::{Error, ErrorInfo, ExitStatus, IntoMessage, Message};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Options for [`fork`] (Node's `fork` options).
#[derive(Debug, Clone)]
pub struct ForkOptions {
    /// Replace the child's environment (default: inherit this process's).
    pub env: Option<Vec<(String, String)>>,
    /// Arguments before the module path in the child's argv.
    pub exec_argv: Vec<String>,
    /// Pipe the child's stdio to this process instead of sharing it.
    pub silent: bool,
    /// Give the child this process's preopened directories (default true).
    pub inherit_dirs: bool,
    /// Kill the child with `kill_signal` after this many milliseconds
    /// (`0`: no timeout, as in Node).
    pub timeout_ms: Option<u64>,
    /// The signal for `timeout_ms` (default `SIGTERM`).
    pub kill_signal: Option<String>,
    /// The most live processes the child's subtree (it included) may have;
    /// default: what is left of this process's.
    pub max_procs: Option<u32>,
    /// The program that runs the module as an OS child (Node's `execPath`);
    /// default `node` for a module not ending in `.wasm`.
    pub exec_path: Option<String>,
    /// How messages travel to an OS child (Node's `serialization`).
    pub serialization: Serialization,
    /// The child's limits (beyond Node): each at most this process's own.
    pub limits: Limits,
    /// How many times it replaces one that ended (a supervisor's count,
    /// shown by `host ps`; beyond Node).
    pub restarts: u32,
}

/// A child's limits (the WIT's `child-process.limits`, which documents
/// each): `None` is this process's own; more than it fails the fork or
/// spawn with `invalid-argument`. A child that reaches one ends (only it),
/// and emits `error` with the limit's code (`ERR_WORKER_OUT_OF_MEMORY`,
/// `ERR_CPU_LIMIT`, `ERR_RESOURCE_LIMIT`) before `exit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of linear memory (a wasm child).
    pub max_memory: Option<u64>,
    /// Milliseconds of CPU time (wasm or OS; an OS child's in whole seconds).
    pub max_cpu_ms: Option<u64>,
    /// Host resources a wasm child may hold at once.
    pub max_resources: Option<u32>,
    /// An OS child's address space in bytes (`RLIMIT_AS`).
    pub max_address_space: Option<u64>,
    /// An OS child's open file descriptors (`RLIMIT_NOFILE`).
    pub max_open_files: Option<u64>,
}

impl From<Limits> for wit::Limits {
    fn from(l: Limits) -> wit::Limits {
        wit::Limits {
            max_memory: l.max_memory,
            max_cpu_ms: l.max_cpu_ms,
            max_resources: l.max_resources,
            max_address_space: l.max_address_space,
            max_open_files: l.max_open_files,
        }
    }
}

/// How messages travel to a Node child (Node's `serialization` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serialization {
    /// One JSON line per message (Node's default).
    #[default]
    Json,
    /// V8's structured-clone format.
    Advanced,
}

impl From<Serialization> for wit::Serialization {
    fn from(s: Serialization) -> Self {
        match s {
            Serialization::Json => wit::Serialization::Json,
            Serialization::Advanced => wit::Serialization::Advanced,
        }
    }
}

impl Default for ForkOptions {
    fn default() -> Self {
        ForkOptions {
            env: None,
            exec_argv: Vec::new(),
            silent: false,
            inherit_dirs: true,
            timeout_ms: None,
            kill_signal: None,
            max_procs: None,
            exec_path: None,
            serialization: Serialization::Json,
            limits: Limits::default(),
            restarts: 0,
        }
    }
}

/// An event of one child, in Node's order.
#[derive(Debug, Clone)]
pub enum ChildEvent {
    Spawn,
    /// A cluster worker is running (see [`crate::cluster`]).
    Online,
    /// A cluster worker listens.
    Listening(crate::cluster::Address),
    Message(Message),
    Disconnect,
    Exit(ExitStatus),
    Close(ExitStatus),
    Error(ErrorInfo),
}

impl From<ChildEventKind> for ChildEvent {
    fn from(kind: ChildEventKind) -> Self {
        match kind {
            ChildEventKind::Spawn => ChildEvent::Spawn,
            ChildEventKind::Online => ChildEvent::Online,
            ChildEventKind::Listening(a) => ChildEvent::Listening(crate::cluster::Address {
                address: a.address,
                port: a.port,
                address_type: a.address_type,
            }),
            ChildEventKind::Message(m) => ChildEvent::Message(m.into()),
            ChildEventKind::Disconnect => ChildEvent::Disconnect,
            ChildEventKind::Exit(s) => ChildEvent::Exit(s),
            ChildEventKind::Close(s) => ChildEvent::Close(s),
            ChildEventKind::Error(e) => ChildEvent::Error(e),
        }
    }
}

/// A child's listeners, one list per event.
#[derive(Default)]
struct Events {
    spawn: Listeners<()>,
    message: Listeners<Message>,
    disconnect: Listeners<()>,
    exit: Listeners<ExitStatus>,
    close: Listeners<ExitStatus>,
    error: Listeners<ErrorInfo>,
}

struct ChildInner {
    handle: wit::Child,
    id: u32,
    /// Started by `exec`/`exec_file`: Node's `execFile` listens for the
    /// child's `error` itself (and hands it to the callback, if any), so an
    /// exec child's `error` is never thrown.
    exec: bool,
    events: Events,
    pending_messages: RefCell<VecDeque<Message>>,
    closed: RefCell<bool>,
}

/// A child process. Cloning gives another handle to the same child.
#[derive(Clone)]
pub struct Child(Rc<ChildInner>);

/// Forks `module` (a `.wasm` path) with `args` (Node's `child_process.fork`).
///
/// Returns at once; the child then emits `spawn`, or `error` + `close` if
/// the module cannot be started. Fails synchronously only for invalid
/// arguments or the process limit.
pub fn fork(module: &str, args: &[&str], options: ForkOptions) -> Result<Child, Error> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let wit_options = wit::ForkOptions {
        env: options.env,
        exec_argv: options.exec_argv,
        silent: options.silent,
        inherit_dirs: Some(options.inherit_dirs),
        timeout_ms: options.timeout_ms,
        kill_signal: options.kill_signal,
        max_procs: options.max_procs,
        exec_path: options.exec_path,
        serialization: options.serialization.into(),
        limits: options.limits.into(),
        restarts: options.restarts,
    };
    Ok(Child::register(
        wit::fork(module, &args, &wit_options)?,
        false,
    ))
}

impl Handle for ChildInner {
    /// A child keeps the loop alive until its `close` (it is unregistered then).
    fn has_ref(&self) -> bool {
        true
    }

    fn deliver(self: Rc<Self>, event: Event) {
        if let Event::Child(event) = event {
            self.dispatch(event.kind.into());
        }
    }
}

impl ChildInner {
    /// After `close`: no event is left, and nothing for the loop to wait for.
    fn mark_closed(&self) {
        *self.closed.borrow_mut() = true;
        event_loop::unregister(HandleId::Child(self.id));
    }

    /// Delivers one event to this child's listeners.
    fn dispatch(&self, event: ChildEvent) {
        match event {
            ChildEvent::Spawn => self.events.spawn.emit(&()),
            // Only cluster workers have these, and they are `cluster::Worker`s.
            ChildEvent::Online | ChildEvent::Listening(_) => {}
            ChildEvent::Message(msg) => {
                if self.events.message.is_empty() {
                    self.pending_messages.borrow_mut().push_back(msg);
                } else {
                    self.events.message.emit(&msg);
                }
            }
            ChildEvent::Disconnect => self.events.disconnect.emit(&()),
            ChildEvent::Exit(s) => self.events.exit.emit(&s),
            ChildEvent::Close(s) => {
                self.mark_closed();
                self.events.close.emit(&s);
            }
            ChildEvent::Error(e) => {
                if self.events.error.is_empty() {
                    if self.exec {
                        // Node: an exec child's spawn error goes to its
                        // callback (`on_output`, through `close`).
                        return;
                    }
                    // Node: an 'error' event without a listener is thrown.
                    eprintln!("Uncaught Error: {} ({})", e.message, e.code);
                    crate::process::exit(1);
                }
                self.events.error.emit(&e);
            }
        }
    }
}

impl Child {
    /// The WIT handle (`worker_threads::send_to_child`).
    pub(crate) fn wit(&self) -> &wit::Child {
        &self.0.handle
    }

    /// Wraps a new child handle and lets the event loop dispatch to it.
    /// `exec`: started by `exec`/`exec_file` (its `error` is not thrown).
    pub(crate) fn register(handle: wit::Child, exec: bool) -> Child {
        let id = handle.id();
        let inner = Rc::new(ChildInner {
            handle,
            id,
            exec,
            events: Events::default(),
            pending_messages: RefCell::default(),
            closed: RefCell::new(false),
        });
        event_loop::register(HandleId::Child(id), inner.clone());
        Child(inner)
    }

    /// For `exec`/`exec_file` children: blocks until the child closed and
    /// returns its buffered output (Node's callback arguments).
    pub fn output(&self) -> Option<crate::os::ExecOutput> {
        self.0.handle.output()
    }

    /// For `exec`/`exec_file` children: calls `f(error, stdout, stderr)`
    /// once the child closed, as Node's `exec` callback.
    pub fn on_output(
        &self,
        f: impl FnOnce(Option<crate::os::ExecError>, Vec<u8>, Vec<u8>) + 'static,
    ) {
        let this = self.clone();
        let mut f = Some(f);
        self.on_close(move |_, _| {
            if let (Some(f), Some(out)) = (f.take(), this.output()) {
                f(out.error, out.stdout, out.stderr);
            }
        });
    }

    /// Reads the child's stdout in the event loop (Node's
    /// `child.stdout.on('data')`); takes the stream. `false` if there is no
    /// piped stdout (or it was taken).
    pub fn on_stdout(&self, f: impl FnMut(&[u8]) + 'static) -> bool {
        match self.stdout() {
            Some(stream) => {
                crate::io::on_data(stream, f, || {});
                true
            }
            None => false,
        }
    }

    /// As [`Child::on_stdout`], for stderr.
    pub fn on_stderr(&self, f: impl FnMut(&[u8]) + 'static) -> bool {
        match self.stderr() {
            Some(stream) => {
                crate::io::on_data(stream, f, || {});
                true
            }
            None => false,
        }
    }

    /// The id events carry: the pid once spawned.
    pub fn id(&self) -> u32 {
        self.0.id
    }

    /// The program started (Node's `spawnfile`).
    pub fn spawnfile(&self) -> String {
        self.0.handle.spawnfile()
    }

    /// The full argv, `argv[0]` included (Node's `spawnargs`).
    pub fn spawnargs(&self) -> Vec<String> {
        self.0.handle.spawnargs()
    }

    /// The pid, `None` if spawning failed.
    pub fn pid(&self) -> Option<u32> {
        self.0.handle.pid()
    }

    /// Sends a message. `Ok(false)` is backpressure (queued, receiver behind).
    pub fn send(&self, msg: impl IntoMessage) -> Result<bool, Error> {
        Ok(self.0.handle.send(&msg.into_message().into())?)
    }

    /// Closes the channel; both sides see `disconnect`.
    pub fn disconnect(&self) -> Result<(), Error> {
        Ok(self.0.handle.disconnect()?)
    }

    /// Whether the channel is open.
    pub fn connected(&self) -> bool {
        self.0.handle.connected()
    }

    /// Sends a signal (`"SIGTERM"`, `"SIGKILL"`, ...). `Ok(false)` once exited.
    pub fn kill(&self, signal: &str) -> Result<bool, Error> {
        Ok(self.0.handle.kill(signal)?)
    }

    /// Whether a `kill` delivered a signal.
    pub fn killed(&self) -> bool {
        self.0.handle.killed()
    }

    /// How the child ended, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.0.handle.exit_status()
    }

    pub fn on_spawn(&self, mut f: impl FnMut() + 'static) {
        self.0.events.spawn.add(move |_| f());
    }

    /// Calls `f` for each message; messages that arrived before the first
    /// listener are replayed on the next turn of the loop (as Node does).
    pub fn on_message(&self, mut f: impl FnMut(Message) + 'static) {
        self.0.events.message.add(move |msg| f(msg.clone()));
        let inner = self.0.clone();
        event_loop::defer(move || {
            // Popped in a statement of its own: a `while let` would hold
            // the borrow while the listeners run, and one that calls
            // `recv` would panic.
            loop {
                let next = inner.pending_messages.borrow_mut().pop_front();
                let Some(msg) = next else { break };
                inner.dispatch(ChildEvent::Message(msg));
            }
        });
    }

    pub fn on_disconnect(&self, mut f: impl FnMut() + 'static) {
        self.0.events.disconnect.add(move |_| f());
    }

    /// `f(code, signal)` when the child exits.
    pub fn on_exit(&self, mut f: impl FnMut(Option<i32>, Option<String>) + 'static) {
        self.0.events.exit.add(move |s| f(s.code, s.signal.clone()));
    }

    /// `f(code, signal)` after exit once stdio and the channel are closed.
    pub fn on_close(&self, mut f: impl FnMut(Option<i32>, Option<String>) + 'static) {
        self.0
            .events
            .close
            .add(move |s| f(s.code, s.signal.clone()));
    }

    pub fn on_error(&self, f: impl FnMut(&ErrorInfo) + 'static) {
        self.0.events.error.add(f);
    }

    /// Takes this child's next event, blocking; `None` after `close`. The
    /// event is not dispatched to listeners.
    pub fn next_event(&self) -> Option<ChildEvent> {
        let event: ChildEvent = self.0.handle.next_event()?.into();
        if matches!(event, ChildEvent::Close(_)) {
            self.0.mark_closed();
        }
        Some(event)
    }

    /// A pollable ready when this child has an event waiting (or none left
    /// to come), for `wasi:io/poll` over many children. The merged event
    /// loop ([`crate::run`]) costs O(1) per event; polling N of these costs
    /// O(N) per call.
    pub fn subscribe(&self) -> Pollable {
        self.0.handle.subscribe()
    }

    /// Blocks until this child has an event waiting (or none left to come),
    /// returning `true`, or until `timeout` passes, returning `false`.
    pub fn wait_event_for(&self, timeout: std::time::Duration) -> bool {
        use crate::bindings::wasi::clocks::monotonic_clock;
        let ready = self.0.handle.subscribe();
        let timer =
            monotonic_clock::subscribe_duration(timeout.as_nanos().min(u64::MAX as u128) as u64);
        crate::io::poll(&[&ready, &timer]).contains(&0)
    }

    /// Blocks until the child's next message; `None` once it closed. Other
    /// events taken meanwhile are dispatched to their listeners.
    pub fn recv(&self) -> Option<Message> {
        if let Some(msg) = self.0.pending_messages.borrow_mut().pop_front() {
            return Some(msg);
        }
        loop {
            let event: ChildEvent = self.0.handle.next_event()?.into();
            match event {
                ChildEvent::Message(msg) => return Some(msg),
                other => self.0.dispatch(other),
            }
        }
    }

    /// Blocks until the child closed and returns how it exited. Events
    /// taken meanwhile are dispatched to their listeners.
    pub fn wait(&self) -> ExitStatus {
        loop {
            if *self.0.closed.borrow() {
                break;
            }
            match self.0.handle.next_event() {
                Some(kind) => self.0.dispatch(kind.into()),
                None => break,
            }
        }
        self.exit_status().unwrap_or(ExitStatus {
            code: None,
            signal: None,
        })
    }

    /// The child's stdin when forked `silent` (at most once).
    pub fn stdin(&self) -> Option<OutputStream> {
        self.0.handle.stdin()
    }

    /// The child's stdout when forked `silent` (at most once).
    pub fn stdout(&self) -> Option<InputStream> {
        self.0.handle.stdout()
    }

    /// The child's stderr when forked `silent` (at most once).
    pub fn stderr(&self) -> Option<InputStream> {
        self.0.handle.stderr()
    }
}

/// Formats an exit status's fields as Node prints them: `code`/`signal`
/// with `null` for the absent one.
pub fn status_fields(status: &ExitStatus) -> (String, String) {
    (
        status.code.map_or("null".into(), |c| c.to_string()),
        status.signal.clone().unwrap_or_else(|| "null".into()),
    )
}
