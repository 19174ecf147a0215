//! The engine, linker and module loading: everything set up once per host and
//! shared by every process (the root guest, forks, and later cluster workers).

use crate::bindings::GuestPre;
use crate::cache::{DiskCache, Lookup};
use crate::ctx::HostState;
use crate::error::ExitStatus;
use crate::os::SpawnPolicy;
use crate::signal::Signal;
use crate::table::{Proc, ProcessTable, SpawnSpec, Stdio};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A busy guest yields to other tasks (and can
/// be killed) within one tick.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
    /// The largest linear memory a guest may grow to, in bytes.
    pub max_memory: u64,
    /// How long an OS child gets between SIGTERM and SIGKILL when its parent
    /// ends.
    pub kill_grace: Duration,
}

impl Default for HiveConfig {
    fn default() -> Self {
        HiveConfig {
            cache_dir: DiskCache::default_dir(),
            max_procs: DEFAULT_MAX_PROCS,
            max_memory: 512 << 20,
            kill_grace: Duration::from_secs(3),
        }
    }
}

/// A directory made visible to a guest (`--dir HOST::GUEST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
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
    #[error("`{}` is not a WebAssembly file (it does not start with `\\0asm`)", path.display())]
    NotWasm { path: PathBuf },
    #[error(
        "`{path}` is a core WebAssembly module, not a component; Hive runs WASI 0.2 components: \
         build it for `wasm32-wasip2`, or adapt it with \
         `wasm-tools component new {path} --adapt wasi_snapshot_preview1.command.wasm -o out.wasm`"
    )]
    CoreModule { path: PathBuf },
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
            _ => ("ENOEXEC", -8),
        }
    }
}

/// A compiled, linked guest, ready to instantiate.
pub struct LoadedModule {
    pub pre: GuestPre<HostState>,
    stamp: (u64, Option<SystemTime>),
}

/// The host: engine, linker, caches and the process table. Cheap to clone.
#[derive(Clone)]
pub struct Hive {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    pub cache: Option<DiskCache>,
    modules: Mutex<HashMap<PathBuf, Arc<LoadedModule>>>,
    /// Per-path gates so concurrent loads of one module happen once.
    loading: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    pub table: ProcessTable,
    pub kill_grace: Duration,
    /// Live OS children, so the host can wait for them before it exits.
    pub os_children: Mutex<HashMap<u32, Arc<Proc>>>,
    pub os_reaped: tokio::sync::Notify,
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
        crate::ctx::add_to_linker(&mut linker)?;
        let hive = Hive {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: config.cache_dir.map(DiskCache::new),
                modules: Mutex::default(),
                loading: Mutex::default(),
                table: ProcessTable::new(config.max_procs),
                kill_grace: config.kill_grace,
                os_children: Mutex::default(),
                os_reaped: tokio::sync::Notify::new(),
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
        // One load per path at a time: a parent forking 1,000 children of a
        // module not loaded yet must compile (and hold in memory) one copy
        // of its code, not 1,000.
        let gate = self
            .inner
            .loading
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        // A plain stat, not tokio::fs: this runs on every fork, and a hop to
        // the blocking pool would cost more than the syscall itself.
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some(module) = self.inner.modules.lock().unwrap().get(path)
            && module.stamp == stamp
        {
            return Ok(module.clone());
        }
        let this = self.clone();
        let owned = path.to_owned();
        let pre = tokio::task::spawn_blocking(move || this.prepare(&owned, &meta))
            .await
            .expect("module preparation panicked")?;
        let module = Arc::new(LoadedModule { pre, stamp });
        self.inner
            .modules
            .lock()
            .unwrap()
            .insert(path.to_owned(), module.clone());
        Ok(module)
    }

    /// `path`'s module if it is loaded and unchanged: a stat and a lookup,
    /// cheap enough to call inside a guest's `fork`.
    pub fn cached(&self, path: &Path) -> Option<Arc<LoadedModule>> {
        let meta = std::fs::metadata(path).ok()?;
        let stamp = (meta.len(), meta.modified().ok());
        let modules = self.inner.modules.lock().unwrap();
        modules.get(path).filter(|m| m.stamp == stamp).cloned()
    }

    /// The failures `load` would report that are cheap to find out now: a
    /// missing or unreadable file, or one that is not a component.
    pub fn precheck(&self, path: &Path) -> Result<(), LoadError> {
        use std::io::Read;
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let mut head = [0u8; 8];
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let n = file.read(&mut head).map_err(read_err)?;
        check_header(path, &head[..n])
    }

    /// Compiles (or fetches from the disk cache) and links a component.
    fn prepare(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<GuestPre<HostState>, LoadError> {
        let path_buf = || path.to_owned();
        let component = self.component(path, meta)?;
        let link = |source: anyhow::Error| LoadError::Link {
            path: path_buf(),
            source,
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| link(e.into()))?;
        GuestPre::new(pre).map_err(|e| {
            link(anyhow::Error::from(e).context(
                "the component does not export `wasi:cli/run`: build it as a command (a `fn main` binary)",
            ))
        })
    }

    /// The compiled component at `path`: from the disk cache when it has
    /// it (without reading the module when its identity is known), else
    /// compiled (and cached).
    fn component(&self, path: &Path, meta: &std::fs::Metadata) -> Result<Component, LoadError> {
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let invalid = |source| LoadError::Invalid {
            path: path.to_owned(),
            source,
        };
        let engine = &self.inner.engine;
        let Some(cache) = &self.inner.cache else {
            let bytes = std::fs::read(path).map_err(read_err)?;
            check_header(path, &bytes)?;
            return Component::new(engine, &bytes).map_err(|e| invalid(e.into()));
        };
        let start = std::time::Instant::now();
        let content = cache.module_content(path, meta).map_err(read_err)?;
        let key = DiskCache::key(engine, &content.hash);
        if let Some(component) = self.cache_lookup(cache, &key) {
            tracing::debug!(key, elapsed = ?start.elapsed(), "loaded from the cache");
            return Ok(component);
        }
        let bytes = match content.bytes {
            Some(bytes) => bytes,
            None => std::fs::read(path).map_err(read_err)?,
        };
        check_header(path, &bytes)?;
        // The file may have changed since its identity was looked up: key
        // what is compiled by what was read.
        let key = DiskCache::key(engine, &DiskCache::content_hash(&bytes));
        self.compile_and_store(cache, &key, &bytes).map_err(invalid)
    }

    /// Fills the disk cache with the component at `path`, compiling it
    /// unless the cache has it already (`host compile`), and records the
    /// file's identity so that a later start need not hash it.
    pub fn precompile(&self, path: &Path) -> anyhow::Result<()> {
        let Some(cache) = &self.inner.cache else {
            anyhow::bail!("the compiled-component cache is off");
        };
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let content = cache.module_content(path, &meta).map_err(read_err)?;
        let engine = &self.inner.engine;
        if self
            .cache_lookup(cache, &DiskCache::key(engine, &content.hash))
            .is_some()
        {
            return Ok(());
        }
        let bytes = match content.bytes {
            Some(bytes) => bytes,
            None => std::fs::read(path).map_err(read_err)?,
        };
        check_header(path, &bytes)?;
        let key = DiskCache::key(engine, &DiskCache::content_hash(&bytes));
        let component = Component::new(engine, &bytes).map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            source: e.into(),
        })?;
        cache
            .store(&key, &component)
            .context("failed to write the compiled-component cache")?;
        tracing::debug!(key, "compiled component");
        Ok(())
    }

    fn cache_lookup(&self, cache: &DiskCache, key: &str) -> Option<Component> {
        match cache.load(&self.inner.engine, key) {
            Lookup::Hit(component) => {
                tracing::debug!(key, "compiled component cache hit");
                return Some(component);
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

    fn compile_and_store(
        &self,
        cache: &DiskCache,
        key: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Component> {
        let start = std::time::Instant::now();
        let component = Component::new(&self.inner.engine, bytes)?;
        tracing::debug!(key, elapsed = ?start.elapsed(), "compiled component");
        if let Err(e) = cache.store(key, &component) {
            tracing::warn!(key, "failed to write the compiled-component cache: {e:#}");
        }
        Ok(component)
    }

    /// Runs the root guest to completion and returns its exit status. When it
    /// ends, every process it left behind is ended too (a process's children
    /// end with it).
    pub async fn run(&self, options: RunOptions) -> anyhow::Result<ExitStatus> {
        for dir in &options.dirs {
            anyhow::ensure!(
                dir.host.is_dir(),
                "`--dir {}`: no such directory",
                dir.host.display()
            );
        }
        let module = self.load(&options.module).await?;
        let argv0 = options
            .argv0
            .unwrap_or_else(|| options.module.display().to_string());
        let argv = std::iter::once(argv0).chain(options.args).collect();
        let spec = SpawnSpec {
            module: crate::table::ModuleSource::Ready(module),
            argv,
            env: options.env,
            dirs: options.dirs,
            stdio: options.stdio.unwrap_or_else(Stdio::inherit),
            ppid: std::process::id(),
            parent: None,
            allow_spawn: Arc::new(options.allow_spawn),
        };
        let handle = self.inner.table.spawn(self, spec, |_| {})?;
        Ok(handle.wait().await)
    }
}

impl Hive {
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
            let live: Vec<_> = self
                .inner
                .os_children
                .lock()
                .unwrap()
                .values()
                .filter(|p| p.os.is_some_and(|os| !os.detached))
                .cloned()
                .collect();
            if live.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                // The grace timers should have done this; do not hang.
                for proc in &live {
                    proc.signal(Signal::KILL);
                }
                let _ = tokio::time::timeout(Duration::from_millis(500), reaped).await;
                return;
            }
            let _ = tokio::time::timeout_at(deadline, reaped).await;
        }
    }
}

/// Tells a component from a core module from something else by its header.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(LoadError::CoreModule {
            path: path.to_owned(),
        }),
        Some([0, b'a', b's', b'm', ..]) => Ok(()),
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
