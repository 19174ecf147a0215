//! The embedding API: a [`Hive`] (engine, linker, loader and process
//! runtime, set up once per host and shared by every process), its
//! [`HiveConfig`], and the [`RunOptions`] of a root guest.

use crate::error::LoadError;
use crate::loader::cache::DiskCache;
use crate::loader::{LoadedModule, Loader};
use crate::node::Serialization;
use crate::node::peer::{self, NodeReader, NodeWire};
use crate::runtime::capacity::Capacity;
use crate::runtime::caps::{
    AllowedDir, Capabilities, ForkPolicy, Limits, Preopen, SpawnPolicy, TotalMemory,
};
use crate::runtime::exit::ExitStatus;
use crate::runtime::lifecycle::{End, Link};
use crate::runtime::net::NetPolicy;
use crate::runtime::proc::Proc;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::stdio::Stdio;
use crate::wasm::{ModuleSource, WasmSpec};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A busy guest yields to other tasks (and can
/// be killed) within one tick. 1 ms, not 10: with as many CPU-bound guests
/// as cores, a woken guest that the wake-up bump (`preempt.rs`) misses
/// waits at most this long — measured, 10 ms left a waiting guest 10% of
/// its round trips, 1 ms 65%. A yield costs about a microsecond.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The default `--max-memory`. The pool reserves this much address space
/// (plus a 32 MiB guard) for every memory slot up front; at 100,000
/// processes with two memory slots each, 512 MiB is 106 TiB of the 128 TiB
/// a Linux process can address, so a larger default could not stay the
/// pool's reservation. Most guests need far less; `--max-memory` raises it.
pub const DEFAULT_MAX_MEMORY: u64 = 512 << 20;

/// The default `--max-procs`: small enough that reserving its pool (~0.9 ms)
/// keeps a cached `host run` at or below `wasmtime run` (2048 slots cost
/// ~6 ms on top), large enough for most process trees. A fork into a warm
/// pooling slot reuses its memory mapping, copy-on-write image, table and
/// stack, which the on-demand allocator cannot (measured: 27.7 vs 38.5 µs
/// fork -> first message, even with reused fiber stacks), and the pool also
/// enforces the per-guest table and memory limits.
pub const DEFAULT_MAX_PROCS: u32 = 256;

/// The largest `--max-procs` served by the pooling allocator. Past it,
/// guests are allocated on demand: a pool costs start-up time and two
/// memory mappings per slot (its stacks' guard pages) whether the slot is
/// used or not, so 100,000 slots would cost 0.3 s and 200,000 of the
/// kernel's 65,530 mappings before the first fork.
pub const POOL_MAX_PROCS: u32 = 4096;

/// The most elements a guest's table may have, in either allocation mode
/// (the pool's default): a guest cannot grow a table of host memory
/// without bound.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

/// Host-wide settings.
#[derive(Debug, Clone)]
pub struct HiveConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The most wasm processes alive at once (the root included). The
    /// pooling allocator reserves slots for this many up front, at ~3 µs of
    /// start-up each (one guard-page `mprotect` per fiber stack, then its
    /// `munmap` at exit): see `DEFAULT_MAX_PROCS`.
    pub max_procs: u32,
    /// The most linear memory any guest may have, in bytes: the pool
    /// reserves this much address space per memory slot, and it bounds
    /// every process's own limit ([`RunOptions::max_memory`]).
    pub max_memory: u64,
    /// How long an OS child gets between SIGTERM and SIGKILL when its parent
    /// ends.
    pub kill_grace: Duration,
    /// The most linear memory all guests together may have
    /// (`--max-total-memory`); default: three quarters of the machine's.
    pub max_total_memory: u64,
    /// A `host` binary to run as the sentinel (`host __sentinel`), which
    /// ends the OS children's process groups if this host dies without
    /// cleaning up (`kill -9`). `host run` sets its own; an embedder
    /// without one gets no sentinel.
    pub sentinel: Option<PathBuf>,
}

impl Default for HiveConfig {
    fn default() -> Self {
        HiveConfig {
            cache_dir: DiskCache::default_dir(),
            max_procs: DEFAULT_MAX_PROCS,
            max_memory: DEFAULT_MAX_MEMORY,
            kill_grace: Duration::from_secs(3),
            max_total_memory: TotalMemory::default_limit(),
            sentinel: None,
        }
    }
}

/// The root guest to run.
#[derive(Clone)]
pub struct RunOptions {
    /// The `.wasm` to run (a component or a wasip1 core module).
    pub module: PathBuf,
    /// `argv[0]` for the guest; default: the module path as given.
    pub argv0: Option<String>,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// The environment, as given (nothing is inherited by default).
    pub env: Vec<(String, String)>,
    /// Directories the guest may reach (`--dir`, `--ro-dir`).
    pub dirs: Vec<Preopen>,
    /// The guest's stdio; default: the host's own.
    pub stdio: Option<Stdio>,
    /// Which OS programs the guest (and its children) may start.
    pub allow_spawn: SpawnPolicy,
    /// Which addresses the guest (and its children) may use.
    pub allow_net: NetPolicy,
    /// Which modules the guest (and its children) may fork; the root
    /// module's own directory is always added to a `Below` list.
    pub allow_fork: ForkPolicy,
    /// The guest's memory limit; default (and at most): the host's
    /// [`HiveConfig::max_memory`].
    pub max_memory: Option<u64>,
    /// The tree's other limits (`--max-cpu-ms`, `--max-resources`): the
    /// root's, and at most every descendant's.
    pub limits: Limits,
    /// The guest's initial working directory, a guest path
    /// (`wasi:cli/environment.initial-cwd`).
    pub cwd: Option<String>,
    /// A Node process that started this host with `fork`: the root guest's
    /// parent, across the channel it made (`NODE_CHANNEL_FD`).
    pub node_parent: Option<NodeParent>,
}

/// The channel to a Node parent (see [`RunOptions::node_parent`]).
#[derive(Clone)]
pub struct NodeParent {
    socket: Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>,
    serialization: Serialization,
}

impl NodeParent {
    /// The parent at the other end of `socket`, writing `serialization`.
    pub fn new(socket: std::os::fd::OwnedFd, serialization: Serialization) -> NodeParent {
        NodeParent {
            socket: Arc::new(std::sync::Mutex::new(Some(socket))),
            serialization,
        }
    }

    /// Connects to the parent (once: the socket has one root guest).
    fn connect(&self) -> anyhow::Result<(Arc<NodeWire>, NodeReader)> {
        let socket = self
            .socket
            .lock()
            .unwrap()
            .take()
            .context("a Node parent's channel serves one root guest")?;
        let socket = std::os::unix::net::UnixStream::from(socket);
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UnixStream::from_std(socket)?;
        Ok(peer::connect(socket, self.serialization))
    }
}

impl RunOptions {
    /// Options for running `module` with nothing granted.
    pub fn new(module: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            module: module.into(),
            argv0: None,
            args: Vec::new(),
            env: Vec::new(),
            dirs: Vec::new(),
            stdio: None,
            allow_spawn: SpawnPolicy::Deny,
            allow_net: NetPolicy::Deny,
            allow_fork: ForkPolicy::Below(Vec::new()),
            max_memory: None,
            limits: Limits::default(),
            cwd: None,
            node_parent: None,
        }
    }
}

/// The host: engine, loader and process runtime. Cheap to clone.
#[derive(Clone)]
pub struct Hive {
    inner: Arc<Inner>,
}

struct Inner {
    loader: Arc<Loader>,
    runtime: Runtime,
    /// The pool's per-memory capacity ([`HiveConfig::max_memory`]).
    max_memory: u64,
}

impl Hive {
    /// Builds the engine and linker. Starts a thread that advances the epoch
    /// for as long as this `Hive` lives.
    pub fn new(config: HiveConfig) -> anyhow::Result<Hive> {
        let start = std::time::Instant::now();
        let engine = Engine::new(&engine_config(&config))
            .map_err(anyhow::Error::from)
            .context("failed to create the engine")?;
        tracing::debug!(elapsed = ?start.elapsed(), "created the engine");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::filesystem::add_to_linker(&mut linker)?;
        crate::ctx::add_to_linker(&mut linker)?;
        let on_demand = config.max_procs > POOL_MAX_PROCS;
        let capacity = Capacity::new(
            on_demand,
            reserved_per_guest(config.max_memory),
            config.max_procs,
        );
        capacity.warn_if_short(config.max_memory);
        let runtime = Runtime::new(
            RuntimeConfig {
                max_procs: config.max_procs,
                kill_grace: config.kill_grace,
                max_total_memory: config.max_total_memory,
                sentinel: config.sentinel,
                capacity,
            },
            engine.clone(),
        );
        let loader = Loader::new(engine, linker, config.cache_dir.map(DiskCache::new));
        let hive = Hive {
            inner: Arc::new(Inner {
                loader: Arc::new(loader),
                runtime,
                max_memory: config.max_memory,
            }),
        };
        spawn_epoch_ticker(Arc::downgrade(&hive.inner));
        Ok(hive)
    }

    /// The process runtime.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The program loader.
    pub(crate) fn loader(&self) -> &Arc<Loader> {
        &self.inner.loader
    }

    /// Loads `path` (relative to the host's working directory, which never
    /// changes): from memory if it was loaded before and has not changed,
    /// else from the disk cache, else by compiling it (and caching the result).
    pub async fn load(&self, path: &Path) -> Result<Arc<LoadedModule>, LoadError> {
        self.inner.loader.load(path).await
    }

    /// Fills the disk cache with the program at `path` (`host compile`).
    pub fn precompile(&self, path: &Path) -> anyhow::Result<()> {
        self.inner.loader.precompile(path)
    }

    /// Ends every process this host runs: wasm processes at once, OS
    /// children with SIGTERM, then SIGKILL after the grace period; waits
    /// until every wasm process has ended (its store dropped) and every OS
    /// child that is not detached has been reaped.
    pub async fn shutdown(&self) {
        self.inner.runtime.shutdown(true).await
    }

    /// [`Hive::shutdown`] for a host about to exit: waits only for the OS
    /// children. The wasm processes are killed, and the process's exit
    /// takes their memory back far faster than dropping each store would
    /// (100,000 idle guests: 1.3 s, against 4.2 s).
    pub async fn shutdown_to_exit(&self) {
        self.inner.runtime.shutdown(false).await
    }

    /// Runs the root guest to completion and returns its exit status. When it
    /// ends, every process it left behind is ended too (a process's children
    /// end with it).
    pub async fn run(&self, options: RunOptions) -> anyhow::Result<ExitStatus> {
        Ok(self.start(options).await?.wait().await)
    }

    /// Starts the root guest; [`Hive::run`] without the wait.
    pub(crate) async fn start(&self, options: RunOptions) -> anyhow::Result<Arc<Proc>> {
        for dir in &options.dirs {
            match std::fs::metadata(&dir.host) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => anyhow::bail!(
                    "`{}`: `{}` is a file, not a directory; preopen its directory instead",
                    dir.flag(),
                    dir.host.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    anyhow::bail!("`{}`: no such directory", dir.flag())
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!("`{}`", dir.flag())));
                }
            }
        }
        let mut dirs = options.dirs;
        if let Some(cwd) = &options.cwd {
            let root = cwd_preopen(&dirs, cwd)?;
            dirs.push(root);
        }
        let pool_max = self.inner.max_memory;
        let max_memory = options.max_memory.unwrap_or(pool_max);
        anyhow::ensure!(
            max_memory <= pool_max,
            "a memory limit of {} is more than this host's pool allows ({})",
            crate::runtime::caps::format_size(max_memory),
            crate::runtime::caps::format_size(pool_max)
        );
        let module = self.load(&options.module).await?;
        anyhow::ensure!(
            !matches!(module.program, crate::loader::Program::Proxy(_)),
            "`{}` is a wasi:http proxy component (it exports `wasi:http/incoming-handler` and no `wasi:cli/run`): serve it with `host serve {}`",
            options.module.display(),
            options.module.display()
        );
        // The root module's own directory is always forkable.
        let fork = match options.allow_fork {
            ForkPolicy::All => ForkPolicy::All,
            ForkPolicy::Below(mut dirs) => {
                let own = crate::runtime::caps::lexical(&options.module);
                let own = own.parent().unwrap_or(Path::new("/"));
                dirs.push(AllowedDir::new(own).with_context(|| {
                    format!(
                        "failed to resolve the directory of `{}`",
                        options.module.display()
                    )
                })?);
                ForkPolicy::Below(dirs)
            }
        };
        let argv0 = options
            .argv0
            .unwrap_or_else(|| options.module.display().to_string());
        let argv = std::iter::once(argv0).chain(options.args).collect();
        // The root guest is the host process, as the OS sees it: its pid is
        // the host's and its ppid the host's parent's — so that what a Node
        // parent (`child.pid`) or a Node child (`process.ppid`) sees and
        // what the guest prints agree, and `kill PID` reaches it. Guests it
        // forks get virtual pids.
        let (link, reader) = match &options.node_parent {
            Some(parent) => {
                let (wire, reader) = parent.connect()?;
                (Link::Remote(wire), Some(reader))
            }
            None => (Link::None, None),
        };
        let (pid, ppid) = (
            Some(std::process::id()),
            std::os::unix::process::parent_id(),
        );
        let spec = WasmSpec {
            module: ModuleSource::Ready(module),
            argv,
            env: options.env,
            dirs,
            stdio: options.stdio.unwrap_or_else(Stdio::inherit),
            pid,
            ppid,
            parent: None,
            link,
            pipes: Vec::new(),
            caps: Arc::new(Capabilities {
                spawn: options.allow_spawn,
                net: Arc::new(options.allow_net),
                max_memory,
                fork,
                limits: options.limits,
            }),
            cwd: options.cwd,
            budget: self.runtime().processes().budget.clone(),
            cluster: None,
            serve: None,
            restarts: 0,
            thread: None,
        };
        let root = crate::wasm::start(self, spec)?;
        if let (Some(reader), Some(channel)) = (reader, &root.channel) {
            tokio::spawn(reader.run(channel.clone(), End::Parent));
        }
        Ok(root)
    }
}

/// What `host serve` runs: a `wasi:http` proxy component, as long-lived
/// instances behind one listener.
pub struct ServeOptions {
    /// The component (it exports `wasi:http/incoming-handler`).
    pub module: PathBuf,
    /// Where to listen.
    pub addr: std::net::SocketAddr,
    /// How many instances serve at once (each one request at a time).
    pub workers: u32,
    /// How connections reach them.
    pub policy: crate::runtime::listen::Policy,
    /// Their environment.
    pub env: Vec<(String, String)>,
}

impl Hive {
    /// Serves a `wasi:http` proxy component (what `wasmtime serve` runs)
    /// with `workers` long-lived instances, reused across requests, behind
    /// one host-owned listener and `policy`. An instance that traps is
    /// replaced at once. Calls `ready` with the bound address; returns
    /// only on failure to start.
    pub async fn serve(
        &self,
        options: ServeOptions,
        ready: impl FnOnce(std::net::SocketAddr),
    ) -> anyhow::Result<std::convert::Infallible> {
        let module = self.load(&options.module).await?;
        anyhow::ensure!(
            module.proxy.is_some(),
            "`{}` is not a wasi:http proxy component (it exports no `wasi:http/incoming-handler`): run it with `host run`",
            options.module.display()
        );
        let key = crate::runtime::listen::Key {
            cluster: std::process::id(),
            requested: options.addr,
        };
        let registry = self.runtime().listeners().clone();
        let join = |id: u32| {
            registry
                .join(key, options.policy, id)
                .map(Arc::new)
                .with_context(|| format!("cannot listen on {}", options.addr))
        };
        let first = join(1)?;
        // The port outlives any one instance: a replacement finds the
        // connections that came meanwhile waiting.
        let _hold = first.hold();
        let local = first.local();
        let start = |membership: Arc<crate::runtime::listen::Membership>| {
            let spec = WasmSpec {
                module: ModuleSource::Ready(module.clone()),
                argv: vec![options.module.display().to_string()],
                env: options.env.clone(),
                dirs: Vec::new(),
                stdio: Stdio::inherit(),
                pid: None,
                ppid: std::process::id(),
                parent: None,
                link: Link::None,
                pipes: Vec::new(),
                caps: Arc::new(Capabilities {
                    spawn: SpawnPolicy::Deny,
                    net: Arc::new(NetPolicy::Deny),
                    max_memory: self.inner.max_memory,
                    fork: ForkPolicy::Below(Vec::new()),
                    limits: Limits::default(),
                }),
                cwd: None,
                budget: self.runtime().processes().budget.clone(),
                cluster: None,
                serve: Some(membership),
                restarts: 0,
                thread: None,
            };
            crate::wasm::start(self, spec).map_err(anyhow::Error::from)
        };
        let mut running = tokio::task::JoinSet::new();
        let mut next_id = 1;
        let mut membership = Some(first);
        for _ in 0..options.workers.max(1) {
            let m = match membership.take() {
                Some(m) => m,
                None => join(next_id)?,
            };
            next_id += 1;
            let proc = start(m)?;
            running.spawn(async move { proc.wait().await });
        }
        // Every instance is on the listener: connections now go round.
        ready(local);
        // Supervise: an instance that ended (a trap) is replaced.
        while let Some(ended) = running.join_next().await {
            tracing::warn!(status = ?ended.ok(), "a wasi:http instance ended; starting another");
            let proc = start(join(next_id)?)?;
            next_id += 1;
            running.spawn(async move { proc.wait().await });
        }
        unreachable!("the supervisor always has instances")
    }
}

/// The preopen that makes `--cwd DIR` work: DIR's host directory, again, at
/// guest path `.`.
///
/// wasi-libc (and so Rust's std on wasip2) never asks for
/// `wasi:cli/environment.initial-cwd`: its working directory starts at `/`,
/// and it resolves a relative path against the preopens by name, where a
/// preopen named `.` matches any path no other preopen names. So that
/// preopen is what makes `.` mean DIR. `initial-cwd` reports DIR too, for
/// guests that read it.
fn cwd_preopen(dirs: &[Preopen], cwd: &str) -> anyhow::Result<Preopen> {
    let flag = format!("--cwd {cwd}");
    if dirs
        .iter()
        .any(|d| matches!(d.guest.as_str(), "." | "/" | "./"))
    {
        anyhow::bail!(
            "`{flag}`: a preopen at guest path `.` or `/` already decides what relative paths \
             mean; drop one of them"
        );
    }
    let wanted = Path::new(cwd);
    anyhow::ensure!(
        wanted.is_absolute()
            && !wanted
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir)),
        "`{flag}`: give an absolute guest path without `..`, inside a preopen (e.g. `--dir ./data::/data --cwd /data`)"
    );
    // The preopen with the longest guest path that contains DIR.
    let found = dirs
        .iter()
        .filter_map(|d| {
            let rest = wanted.strip_prefix(Path::new("/").join(&d.guest)).ok()?;
            Some((d, rest))
        })
        .max_by_key(|(d, _)| d.guest.len());
    let Some((dir, rest)) = found else {
        anyhow::bail!(
            "`{flag}`: `{cwd}` is not inside any preopen; give it one, e.g. `--dir HOST::{cwd}`"
        );
    };
    let host = dir.host.join(rest);
    anyhow::ensure!(
        host.is_dir(),
        "`{flag}`: `{}` (in `{}`) is not a directory",
        host.display(),
        dir.flag()
    );
    // A relative path whose first name is another preopen's goes there.
    for other in dirs {
        let first = other
            .guest
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        if !first.is_empty() && host.join(first).exists() {
            tracing::warn!(
                "`{flag}`: relative paths under `{first}` reach the preopen `/{}`, not `{}`: \
                 give that preopen another guest path",
                other.guest.trim_start_matches('/'),
                host.join(first).display()
            );
        }
    }
    Ok(Preopen {
        host,
        guest: ".".into(),
        read_only: dir.read_only,
    })
}

/// The guard after (and before) every linear memory.
const MEMORY_GUARD: u64 = 32 << 20;

/// The address space one guest allocated on demand reserves: its memory
/// (`--max-memory`) with a guard on each side, and its fiber stack.
fn reserved_per_guest(max_memory: u64) -> u64 {
    let stack = 2 << 20; // wasmtime's default async_stack_size, and a guard page
    max_memory
        .saturating_add(2 * MEMORY_GUARD)
        .saturating_add(stack + 4096)
}

fn engine_config(config: &HiveConfig) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    // Linear memories reserve only what they may use, so that `max_procs`
    // guests fit in the address space (the 4 GiB default would not). Both
    // allocation strategies get the same tunables, so they share compiled
    // code (and its cache).
    c.memory_reservation(config.max_memory);
    c.memory_guard_size(MEMORY_GUARD);
    c.memory_reservation_for_growth(0);
    let n = config.max_procs.max(1);
    if n > POOL_MAX_PROCS {
        // On demand: nothing reserved up front, so start-up stays flat at
        // any --max-procs; each fork maps its own memory (copy-on-write from
        // the module's image, as in the pool) and reuses a cached stack.
        c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        c.with_host_stack(Arc::new(crate::stacks::StackCache::default()));
        return c;
    }
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(config.max_memory as usize);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

fn spawn_epoch_ticker(hive: Weak<Inner>) {
    std::thread::Builder::new()
        .name("hive-epoch".into())
        .spawn(move || {
            while let Some(inner) = hive.upgrade() {
                inner.loader.engine().increment_epoch();
                drop(inner);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("failed to start the epoch thread");
}
