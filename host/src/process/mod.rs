//! `hive:process/process`: the current process — identity, the channel to
//! the parent, the event queue, signals and exit.

mod host;

use crate::runtime::inbox::Inbox;
use crate::runtime::proc::Proc;
use std::sync::Arc;
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::p2::Pollable;

/// What `hive:process/process` knows of the process it serves.
pub struct ProcessCtx {
    /// The process this interface serves.
    pub me: Arc<Proc>,
    /// Its parent's pid (the host's own pid for the root guest).
    pub ppid: u32,
    /// Its arguments, `argv[0]` first.
    pub argv: Vec<String>,
    /// What it monitors and is linked to (`process.monitor`, `link`).
    pub watching: Watching,
    /// The handles of the message event it took last, until it takes
    /// them (`worker-threads.take-transferred`) or its next event.
    pub transferred: Option<Box<crate::runtime::port::PortMessage>>,
}

/// The processes a process watches: its monitors by id and its links.
#[derive(Default)]
pub struct Watching {
    next: u32,
    monitors: std::collections::HashMap<u32, std::sync::Weak<Proc>>,
    links: Vec<std::sync::Weak<Proc>>,
}

/// The most monitors and links a process holds at once: each is an entry
/// in another process's list, which a guest must not grow without bound.
pub const MAX_WATCHING: usize = 10_000;

impl Watching {
    /// Forgets monitors and links of processes that have ended.
    fn prune(&mut self) {
        let live = |p: &std::sync::Weak<Proc>| p.upgrade().is_some_and(|p| p.status().is_none());
        self.monitors.retain(|_, p| live(p));
        self.links.retain(live);
    }

    fn full(&mut self) -> bool {
        if self.monitors.len() + self.links.len() < MAX_WATCHING {
            return false;
        }
        self.prune();
        self.monitors.len() + self.links.len() >= MAX_WATCHING
    }
}

/// `hive:process/process`'s view of a store: its context and the resource
/// table.
pub struct ProcessView<'a> {
    /// The interface's context.
    pub ctx: &'a mut ProcessCtx,
    /// The store's resource table (pollables).
    pub table: &'a mut ResourceTable,
    /// `wasi:http`'s state, to open the requests the process takes.
    pub http: &'a mut crate::http::HttpState,
}

/// The `HasData` marker that links `hive:process/process` over a
/// [`ProcessView`].
pub struct HiveProcess;

impl HasData for HiveProcess {
    type Data<'a> = ProcessView<'a>;
}

/// A pollable over an inbox: for the whole process, or for one child.
pub enum InboxReady {
    /// Ready when the process has an event, or none can come.
    Process(Arc<Proc>),
    /// Ready when child `id` has an event, or has none left to come.
    Child {
        /// The parent's inbox, where the child's events wait.
        inbox: Arc<Inbox>,
        /// The child, as its events name it.
        id: u32,
        /// The running child (`None` when it never started).
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
