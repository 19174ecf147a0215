//! The engine, linker and module loading: everything set up once per host and
//! shared by every process (the root guest, forks, and later cluster workers).

use crate::bindings::GuestPre;
use crate::cache::{Artifact, DiskCache, Lookup};
use crate::capability::{AllowedDir, Capabilities, ForkPolicy, TotalMemory};
use crate::ctx::{CoreState, HostState};
use crate::error::ExitStatus;
use crate::net::NetPolicy;
use crate::os::SpawnPolicy;
use crate::signal::Signal;
use crate::table::{Proc, ProcessTable, SpawnSpec, Stdio};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Module, PoolingAllocationConfig,
};

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

/// A directory made visible to a guest (`--dir HOST::GUEST`, or
/// `--ro-dir HOST::GUEST` for a read-only one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    /// Whether the guest may only read (wasmtime-wasi's read-only
    /// permissions: no create, write, truncate, rename or remove).
    pub read_only: bool,
}

impl Preopen {
    /// The flag that grants it, for messages: `--dir HOST` or `--ro-dir HOST`.
    pub fn flag(&self) -> String {
        let flag = if self.read_only { "--ro-dir" } else { "--dir" };
        format!("{flag} {}", self.host.display())
    }
}

/// The root guest to run.
#[derive(Clone)]
pub struct RunOptions {
    pub module: PathBuf,
    /// `argv[0]` for the guest; default: the module path as given.
    pub argv0: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
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
    /// The guest's initial working directory, a guest path
    /// (`wasi:cli/environment.initial-cwd`).
    pub cwd: Option<String>,
}

impl RunOptions {
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
            cwd: None,
        }
    }
}

/// Why a module cannot be run. Each message says what would fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is {what}, not a WebAssembly file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "`{}` is {bytes} bytes, more than the largest module Hive reads ({MAX_MODULE_BYTES} bytes)",
        path.display()
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("`{}` is not a WebAssembly file (it does not start with `\\0asm`)", path.display())]
    NotWasm { path: PathBuf },
    #[error(
        "`{path}` is a core WebAssembly module that imports `{import}`; Hive runs core modules \
         that import only `wasi_snapshot_preview1` (wasip1), and WASI 0.2 components: build it for \
         `wasm32-wasip1` or `wasm32-wasip2`, or make it a component with \
         `wasm-tools component new {path} --adapt wasi_snapshot_preview1.command.wasm -o out.wasm` \
         (the adapter is published with every wasmtime release)"
    )]
    CoreModule { path: PathBuf, import: String },
    #[error(
        "`{path}` uses the component model's async features (`stream`, `future` or async \
         functions, as WASI 0.3 components do), which Hive does not run yet: build it for WASI \
         0.2 (`wasm32-wasip2`)"
    )]
    Async {
        path: PathBuf,
        #[source]
        source: anyhow::Error,
    },
    #[error(
        "`{path}` is a library (reactor), not a command: it exports no {entry}, so there is \
         nothing to run; build it as a command (a binary with `fn main`)"
    )]
    Reactor { path: PathBuf, entry: &'static str },
    #[error("`{path}` is not a valid WebAssembly component")]
    Invalid {
        path: PathBuf,
        #[source]
        source: anyhow::Error,
    },
    #[error("`{path}` cannot be linked: it needs an import Hive does not provide")]
    Link {
        path: PathBuf,
        #[source]
        source: anyhow::Error,
    },
}

impl LoadError {
    /// The errno Node would report for this failure at spawn time.
    pub fn node_code(&self) -> (&'static str, i32) {
        match self {
            LoadError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ("ENOENT", -2)
            }
            LoadError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ("EACCES", -13)
            }
            LoadError::Read { .. } => ("EIO", -5),
            // execve(2) of something that is not a regular file.
            LoadError::NotAFile { .. } => ("EACCES", -13),
            _ => ("ENOEXEC", -8),
        }
    }
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Loaded modules kept for later forks beyond those in use.
const MAX_LOADED_MODULES: usize = 64;

/// A compiled, linked guest, ready to instantiate.
pub struct LoadedModule {
    pub program: Program,
    stamp: (u64, Option<SystemTime>),
}

/// The two kinds of WebAssembly program Hive runs.
#[derive(Clone)]
pub enum Program {
    /// A WASI 0.2 command component, with `hive:process` to fork and talk.
    Component(GuestPre<HostState>),
    /// A wasip1 core module (`_start`, imports only `wasi_snapshot_preview1`):
    /// WASI with the same args, env, preopens and stdio, and its exact exit
    /// code, but no `hive:process` — so no channel to its parent.
    Core(InstancePre<CoreState>),
}

/// What a file's header says it is.
enum Kind {
    Component,
    Core,
}

/// The host: engine, linker, caches and the process table. Cheap to clone.
#[derive(Clone)]
pub struct Hive {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    core_linker: std::sync::OnceLock<wasmtime::Linker<CoreState>>,
    pub cache: Option<DiskCache>,
    /// Loaded modules by file identity, so that every spelling of a path
    /// (`d/../d/m.wasm`, a hard link) is one entry; at most
    /// [`MAX_LOADED_MODULES`] that no process uses are kept.
    modules: Mutex<HashMap<FileId, Arc<LoadedModule>>>,
    /// Per-path gates so concurrent loads of one module happen once.
    loading: Mutex<HashMap<FileId, Arc<tokio::sync::Mutex<()>>>>,
    pub table: ProcessTable,
    pub kill_grace: Duration,
    /// The pool's per-memory capacity ([`HiveConfig::max_memory`]).
    pub max_memory: u64,
    /// Live OS children, so the host can wait for them before it exits.
    pub os_children: Mutex<HashMap<u32, Arc<Proc>>>,
    pub os_reaped: tokio::sync::Notify,
    /// All guests' linear memory together (`--max-total-memory`).
    pub total_memory: Arc<TotalMemory>,
    /// Makes running guests yield when a woken one finds no free worker.
    pub preempt: Arc<crate::preempt::Preempt>,
    /// The sentinel's program ([`HiveConfig::sentinel`]).
    sentinel_program: Option<PathBuf>,
    /// Started with the first OS child (`None` if it could not start).
    sentinel: std::sync::OnceLock<Option<crate::sentinel::Sentinel>>,
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
        let hive = Hive {
            inner: Arc::new(Inner {
                total_memory: TotalMemory::new(config.max_total_memory),
                preempt: crate::preempt::Preempt::new(
                    engine.clone(),
                    tokio::runtime::Handle::try_current()
                        .map_or(1, |rt| rt.metrics().num_workers()),
                ),
                engine,
                linker,
                core_linker: std::sync::OnceLock::new(),
                cache: config.cache_dir.map(DiskCache::new),
                modules: Mutex::default(),
                loading: Mutex::default(),
                table: ProcessTable::new(config.max_procs),
                kill_grace: config.kill_grace,
                max_memory: config.max_memory,
                os_children: Mutex::default(),
                os_reaped: tokio::sync::Notify::new(),
                sentinel_program: config.sentinel,
                sentinel: std::sync::OnceLock::new(),
            }),
        };
        spawn_epoch_ticker(Arc::downgrade(&hive.inner));
        Ok(hive)
    }

    /// Loads `path` (relative to the host's working directory, which never
    /// changes): from memory if it was loaded before and has not changed,
    /// else from the disk cache, else by compiling it (and caching the result).
    pub async fn load(&self, path: &Path) -> Result<Arc<LoadedModule>, LoadError> {
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        if let Some(module) = self.cached(path) {
            return Ok(module);
        }
        // A plain stat, not tokio::fs: this runs on every fork, and a hop to
        // the blocking pool would cost more than the syscall itself.
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let id = file_id(&meta);
        // One load per file at a time: a parent forking 1,000 children of a
        // module not loaded yet must compile (and hold in memory) one copy
        // of its code, not 1,000.
        let gate = self
            .inner
            .loading
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some(module) = self.inner.modules.lock().unwrap().get(&id)
            && module.stamp == stamp
        {
            return Ok(module.clone());
        }
        let this = self.clone();
        let owned = path.to_owned();
        let program = tokio::task::spawn_blocking(move || this.prepare(&owned, &meta)).await;
        // Waiters already hold the gate; a later load makes a new one.
        self.inner.loading.lock().unwrap().remove(&id);
        let program = program.expect("module preparation panicked")?;
        let module = Arc::new(LoadedModule { program, stamp });
        let mut modules = self.inner.modules.lock().unwrap();
        modules.insert(id, module.clone());
        if modules.len() > MAX_LOADED_MODULES {
            // Keep what processes use (they hold a clone); drop the rest.
            modules.retain(|_, m| Arc::strong_count(m) > 1);
        }
        Ok(module)
    }

    /// `path`'s module if it is loaded and unchanged: a stat and a lookup,
    /// cheap enough to call inside a guest's `fork`.
    pub fn cached(&self, path: &Path) -> Option<Arc<LoadedModule>> {
        let meta = std::fs::metadata(path).ok()?;
        let stamp = (meta.len(), meta.modified().ok());
        let modules = self.inner.modules.lock().unwrap();
        modules
            .get(&file_id(&meta))
            .filter(|m| m.stamp == stamp)
            .cloned()
    }

    /// The failures `load` would report that are cheap to find out now: a
    /// missing or unreadable file, or one that is not a component.
    pub fn precheck(&self, path: &Path) -> Result<(), LoadError> {
        self.precheck_kind(path).map(drop)
    }

    fn precheck_kind(&self, path: &Path) -> Result<Kind, LoadError> {
        use std::io::Read;
        let mut head = [0u8; 8];
        let mut file = open_module(path)?;
        let n = file.read(&mut head).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        check_header(path, &head[..n])
    }

    /// Compiles (or fetches from the disk cache) and links a program.
    fn prepare(&self, path: &Path, meta: &std::fs::Metadata) -> Result<Program, LoadError> {
        let path_buf = || path.to_owned();
        if let Kind::Core = self.precheck_kind(path)? {
            return self.prepare_core(path, meta).map(Program::Core);
        }
        let component = self.compiled(path, meta, |engine, bytes| {
            Component::new(engine, bytes).map_err(|source| {
                let source = anyhow::Error::from(source);
                // wasmparser names the feature it lacks; that is the only
                // place the distinction exists before we would enable it.
                if format!("{source:#}").contains("requires the component model async feature") {
                    LoadError::Async {
                        path: path_buf(),
                        source,
                    }
                } else {
                    LoadError::Invalid {
                        path: path_buf(),
                        source,
                    }
                }
            })
        })?;
        let link = |source: anyhow::Error| LoadError::Link {
            path: path_buf(),
            source,
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| link(e.into()))?;
        GuestPre::new(pre)
            .map(Program::Component)
            .map_err(|_| LoadError::Reactor {
                path: path_buf(),
                entry: "`wasi:cli/run`",
            })
    }

    /// Compiles and links a wasip1 core module.
    fn prepare_core(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<InstancePre<CoreState>, LoadError> {
        let module = self.compiled(path, meta, |engine, bytes| {
            Module::new(engine, bytes).map_err(|e| LoadError::Invalid {
                path: path.to_owned(),
                source: e.into(),
            })
        })?;
        if let Some(import) = module
            .imports()
            .find(|i| i.module() != "wasi_snapshot_preview1")
        {
            return Err(LoadError::CoreModule {
                path: path.to_owned(),
                import: format!("{}::{}", import.module(), import.name()),
            });
        }
        if module.get_export("_start").is_none() {
            return Err(LoadError::Reactor {
                path: path.to_owned(),
                entry: "`_start`",
            });
        }
        self.core_linker()
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Link {
                path: path.to_owned(),
                source: e.into(),
            })
    }

    /// The linker for wasip1 modules, made on first use (most hosts never
    /// run one, and it has a hundred functions to register).
    fn core_linker(&self) -> &wasmtime::Linker<CoreState> {
        self.inner.core_linker.get_or_init(|| {
            let mut linker = wasmtime::Linker::new(&self.inner.engine);
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut CoreState| &mut s.wasi)
                .expect("wasip1 functions are defined once");
            // wasmtime-wasi traps on codes from 126 up (shells reserve
            // them); a wasip1 program gets the whole 0..=255, as a
            // component does through `hive:process/process.exit`.
            linker.allow_shadowing(true);
            linker
                .func_wrap(
                    "wasi_snapshot_preview1",
                    "proc_exit",
                    |_: wasmtime::Caller<'_, CoreState>, code: u32| -> wasmtime::Result<()> {
                        match i32::try_from(code) {
                            Ok(code @ 0..=255) => Err(wasmtime_wasi::I32Exit(code).into()),
                            _ => Err(wasmtime::format_err!(
                                "exit with code {code}, outside 0..=255"
                            )),
                        }
                    },
                )
                .expect("proc_exit has this signature");
            crate::filesystem::add_to_core_linker(&mut linker)
                .expect("path_symlink has this signature");
            linker
        })
    }

    /// The compiled program at `path` (a component or a core module): from
    /// the disk cache when it has it (without reading the module when its
    /// identity is known), else compiled by `compile` (and cached).
    fn compiled<A: Artifact>(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        compile: impl FnOnce(&Engine, &[u8]) -> Result<A, LoadError>,
    ) -> Result<A, LoadError> {
        let engine = &self.inner.engine;
        let Some(cache) = &self.inner.cache else {
            let bytes = read_module(path)?;
            check_header(path, &bytes)?;
            return compile(engine, &bytes);
        };
        let start = std::time::Instant::now();
        let content = cache.module_content(path, meta)?;
        let key = DiskCache::key(engine, &content.hash);
        if let Some(compiled) = self.cache_lookup(cache, &key) {
            tracing::debug!(key, elapsed = ?start.elapsed(), "loaded from the cache");
            return Ok(compiled);
        }
        let bytes = match content.bytes {
            Some(bytes) => bytes,
            None => read_module(path)?,
        };
        check_header(path, &bytes)?;
        // The file may have changed since its identity was looked up: key
        // what is compiled by what was read.
        let key = DiskCache::key(engine, &DiskCache::content_hash(&bytes));
        let start = std::time::Instant::now();
        let compiled = compile(engine, &bytes)?;
        tracing::debug!(key, elapsed = ?start.elapsed(), "compiled component");
        if let Err(e) = cache.store(&key, &compiled) {
            tracing::warn!(key, "failed to write the compiled-component cache: {e:#}");
        }
        Ok(compiled)
    }

    /// Fills the disk cache with the program at `path` (a component or a
    /// wasip1 module), compiling it unless the cache has it already (`host
    /// compile`), and records the file's identity so that a later start
    /// need not hash it.
    pub fn precompile(&self, path: &Path) -> anyhow::Result<()> {
        match self.precheck_kind(path)? {
            Kind::Component => self.precompile_as::<Component>(path, |e, b| Component::new(e, b)),
            Kind::Core => self.precompile_as::<Module>(path, |e, b| Module::new(e, b)),
        }
    }

    fn precompile_as<A: Artifact>(
        &self,
        path: &Path,
        compile: impl FnOnce(&Engine, &[u8]) -> wasmtime::Result<A>,
    ) -> anyhow::Result<()> {
        let Some(cache) = &self.inner.cache else {
            anyhow::bail!("the compiled-component cache is off");
        };
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let content = cache.module_content(path, &meta)?;
        let engine = &self.inner.engine;
        if self
            .cache_lookup::<A>(cache, &DiskCache::key(engine, &content.hash))
            .is_some()
        {
            return Ok(());
        }
        let bytes = match content.bytes {
            Some(bytes) => bytes,
            None => read_module(path)?,
        };
        check_header(path, &bytes)?;
        let key = DiskCache::key(engine, &DiskCache::content_hash(&bytes));
        let compiled = compile(engine, &bytes).map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            source: e.into(),
        })?;
        cache
            .store(&key, &compiled)
            .context("failed to write the compiled-component cache")?;
        tracing::debug!(key, "compiled component");
        Ok(())
    }

    fn cache_lookup<A: Artifact>(&self, cache: &DiskCache, key: &str) -> Option<A> {
        match cache.load(&self.inner.engine, key) {
            Lookup::Hit(compiled) => {
                tracing::debug!(key, "compiled component cache hit");
                return Some(compiled);
            }
            Lookup::Corrupt(why) => {
                tracing::warn!(
                    key,
                    why,
                    "discarded a corrupt compiled-component cache entry"
                )
            }
            Lookup::Miss => tracing::debug!(key, "compiled component cache miss"),
        }
        None
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
            crate::capability::format_size(max_memory),
            crate::capability::format_size(pool_max)
        );
        let module = self.load(&options.module).await?;
        // The root module's own directory is always forkable.
        let fork = match options.allow_fork {
            ForkPolicy::All => ForkPolicy::All,
            ForkPolicy::Below(mut dirs) => {
                let own = crate::capability::lexical(&options.module);
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
        let spec = SpawnSpec {
            module: crate::table::ModuleSource::Ready(module),
            argv,
            env: options.env,
            dirs,
            stdio: options.stdio.unwrap_or_else(Stdio::inherit),
            ppid: std::process::id(),
            parent: None,
            caps: Arc::new(Capabilities {
                spawn: options.allow_spawn,
                net: Arc::new(options.allow_net),
                max_memory,
                fork,
            }),
            cwd: options.cwd,
            budget: self.inner.table.budget.clone(),
        };
        Ok(self.inner.table.spawn(self, spec, |_| {})?)
    }
}

impl Hive {
    /// Has the sentinel end OS process group `pgid` if the host dies.
    pub(crate) fn watch_group(&self, pgid: u32) {
        if let Some(sentinel) = self.sentinel() {
            sentinel.watch(pgid);
        }
    }

    /// Group `pgid`'s leader was reaped.
    pub(crate) fn group_reaped(&self, pgid: u32) {
        if let Some(sentinel) = self.sentinel() {
            sentinel.reaped(pgid);
        }
    }

    fn sentinel(&self) -> Option<&crate::sentinel::Sentinel> {
        self.inner
            .sentinel
            .get_or_init(|| {
                let program = self.inner.sentinel_program.as_ref()?;
                crate::sentinel::Sentinel::start(program, self.inner.kill_grace)
                    .inspect_err(|e| {
                        tracing::warn!(
                            "could not start the sentinel ({e}): OS children may outlive a killed host"
                        )
                    })
                    .ok()
            })
            .as_ref()
    }
}

impl Hive {
    /// The live OS children that are not detached (that end with the host).
    fn attached_os_children(&self) -> Vec<Arc<Proc>> {
        let children = self.inner.os_children.lock().unwrap();
        let attached = children
            .values()
            .filter(|p| p.os.is_some_and(|os| !os.detached));
        attached.cloned().collect()
    }

    /// SIGKILLs every OS child, with its group, now.
    pub(crate) fn kill_os_children(&self) {
        for proc in self.attached_os_children() {
            if proc.os.is_some_and(|os| os.group) {
                let _ = crate::unix::kill_group(proc.pid, Signal::KILL.number());
            }
            proc.signal(Signal::KILL);
        }
    }

    /// Ends every process this host runs: wasm processes at once, OS
    /// children with SIGTERM, then SIGKILL after the grace period; waits
    /// until every OS child that is not detached has been reaped.
    pub async fn shutdown(&self) {
        // Every process that ends SIGTERMs its OS children and SIGKILLs them
        // after the grace period (`table::finish`): here we only wait for
        // them to be reaped, with a margin for the kill to land.
        self.inner.table.kill_all();
        let deadline =
            tokio::time::Instant::now() + self.inner.kill_grace + Duration::from_millis(500);
        loop {
            let reaped = self.inner.os_reaped.notified();
            if self.attached_os_children().is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                // The grace timers should have done this; do not hang.
                self.kill_os_children();
                let _ = tokio::time::timeout(Duration::from_millis(500), reaped).await;
                return;
            }
            let _ = tokio::time::timeout_at(deadline, reaped).await;
        }
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

/// The largest `.wasm` Hive reads (an 18 MB Python component is large).
pub const MAX_MODULE_BYTES: u64 = 512 << 20;

/// Opens a module file without ever blocking and only if it is a regular
/// file of at most [`MAX_MODULE_BYTES`]: a FIFO, `/dev/tty` or
/// `/dev/stdin` would block a reader forever (and steal the host's input),
/// `/dev/zero` would never end. The type is checked before opening (a stat
/// does not block), the open does not wait (`O_NONBLOCK`), and the opened
/// file is checked again, in case the path was swapped in between.
pub fn open_module(path: &Path) -> Result<std::fs::File, LoadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let check = |meta: std::fs::Metadata| {
        if !meta.is_file() {
            return Err(LoadError::NotAFile {
                path: path.to_owned(),
                what: if meta.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                },
            });
        }
        if meta.len() > MAX_MODULE_BYTES {
            return Err(LoadError::TooLarge {
                path: path.to_owned(),
                bytes: meta.len(),
            });
        }
        Ok(())
    };
    check(std::fs::metadata(path).map_err(read_err)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    check(file.metadata().map_err(read_err)?)?;
    Ok(file)
}

/// Reads a whole module through [`open_module`].
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let mut file = open_module(path)?;
    let mut bytes = Vec::new();
    // Bounded even if the file grows after the check.
    (&mut file)
        .take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            bytes: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Tells a component from a core module from something else by its header.
fn check_header(path: &Path, bytes: &[u8]) -> Result<Kind, LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Ok(Kind::Core),
        Some([0, b'a', b's', b'm', ..]) => Ok(Kind::Component),
        _ => Err(LoadError::NotWasm {
            path: path.to_owned(),
        }),
    }
}

fn engine_config(config: &HiveConfig) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    // Linear memories reserve only what they may use, so that the pool fits
    // `max_procs` guests in the address space (the 4 GiB default would not).
    c.memory_reservation(config.max_memory);
    c.memory_guard_size(32 << 20);
    c.memory_reservation_for_growth(0);
    let n = config.max_procs.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .max_memory_size(config.max_memory as usize);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

fn spawn_epoch_ticker(hive: Weak<Inner>) {
    std::thread::Builder::new()
        .name("hive-epoch".into())
        .spawn(move || {
            while let Some(inner) = hive.upgrade() {
                inner.engine.increment_epoch();
                drop(inner);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("failed to start the epoch thread");
}
