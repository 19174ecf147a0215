//! Loading programs: reading a `.wasm` safely, telling a component from a
//! core module, compiling (or fetching from the disk cache) and linking,
//! and keeping what was loaded for later forks.

use crate::bindings::GuestPre;
pub mod cache;
mod file;

pub use file::{open_module, read_module};

use crate::ctx::{CoreState, HostState};
use crate::error::LoadError;
use anyhow::Context as _;
use cache::{Artifact, DiskCache, Lookup};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstancePre, Module};

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
    /// Its `wasi:http/incoming-handler`, if it exports one (what `host
    /// serve` calls; a component may export `wasi:cli/run` too).
    pub proxy: Option<wasmtime_wasi_http::p2::bindings::ProxyPre<HostState>>,
    stamp: (u64, Option<SystemTime>),
    /// The linear memory an instance has once instantiated, learnt from
    /// the first (0 until then): what a fork of it needs from
    /// `--max-total-memory` before it starts.
    pub initial_memory: std::sync::atomic::AtomicU64,
}

/// A prepared program, and its HTTP handler if it has one.
type Prepared = (
    Program,
    Option<wasmtime_wasi_http::p2::bindings::ProxyPre<HostState>>,
);

/// The kinds of WebAssembly program Hive runs.
#[derive(Clone)]
pub enum Program {
    /// A WASI 0.2 command component, with `hive:process` to fork and talk.
    Component(GuestPre<HostState>),
    /// A `wasi:http` proxy component (exports `wasi:http/incoming-handler`,
    /// what `wasmtime serve` runs): served by `host serve`.
    Proxy(wasmtime_wasi_http::p2::bindings::ProxyPre<HostState>),
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

/// Compiles, links and keeps programs for one engine.
pub struct Loader {
    engine: Engine,
    linker: Linker<HostState>,
    core_linker: OnceLock<wasmtime::Linker<CoreState>>,
    cache: Option<DiskCache>,
    /// Loaded modules by file identity, so that every spelling of a path
    /// (`d/../d/m.wasm`, a hard link) is one entry; at most
    /// [`MAX_LOADED_MODULES`] that no process uses are kept.
    modules: Mutex<HashMap<FileId, Arc<LoadedModule>>>,
    /// Per-file gates so concurrent loads of one module happen once.
    loading: Mutex<HashMap<FileId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Loader {
    /// A loader for `engine` that links components with `linker` and keeps
    /// compiled code in `cache`.
    pub fn new(engine: Engine, linker: Linker<HostState>, cache: Option<DiskCache>) -> Loader {
        Loader {
            engine,
            linker,
            core_linker: OnceLock::new(),
            cache,
            modules: Mutex::default(),
            loading: Mutex::default(),
        }
    }

    /// The engine programs are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads `path` (relative to the host's working directory, which never
    /// changes): from memory if it was loaded before and has not changed,
    /// else from the disk cache, else by compiling it (and caching the result).
    pub async fn load(self: &Arc<Self>, path: &Path) -> Result<Arc<LoadedModule>, LoadError> {
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
        let gate = self.loading.lock().unwrap().entry(id).or_default().clone();
        let _loading = gate.lock().await;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some(module) = self.modules.lock().unwrap().get(&id)
            && module.stamp == stamp
        {
            return Ok(module.clone());
        }
        let this = self.clone();
        let owned = path.to_owned();
        let program = tokio::task::spawn_blocking(move || this.prepare(&owned, &meta)).await;
        // Waiters already hold the gate; a later load makes a new one.
        self.loading.lock().unwrap().remove(&id);
        let (program, proxy) = program.expect("module preparation panicked")?;
        let module = Arc::new(LoadedModule {
            program,
            proxy,
            stamp,
            initial_memory: Default::default(),
        });
        let mut modules = self.modules.lock().unwrap();
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
        let modules = self.modules.lock().unwrap();
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
    fn prepare(&self, path: &Path, meta: &std::fs::Metadata) -> Result<Prepared, LoadError> {
        let path_buf = || path.to_owned();
        if let Kind::Core = self.precheck_kind(path)? {
            return self
                .prepare_core(path, meta)
                .map(|p| (Program::Core(p), None));
        }
        let component = self.compiled(path, meta, compile_component)?;
        let link = |source: anyhow::Error| LoadError::Link {
            path: path_buf(),
            source,
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| link(e.into()))?;
        let proxy = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre.clone()).ok();
        match (GuestPre::new(pre), proxy) {
            (Ok(guest), proxy) => Ok((Program::Component(guest), proxy)),
            (Err(_), Some(proxy)) => Ok((Program::Proxy(proxy.clone()), Some(proxy))),
            (Err(_), None) => Err(LoadError::Reactor {
                path: path_buf(),
                entry: "`wasi:cli/run`",
            }),
        }
    }

    /// Compiles and links a wasip1 core module.
    fn prepare_core(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<InstancePre<CoreState>, LoadError> {
        let module = self.compiled(path, meta, compile_core)?;
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
        self.core_linker.get_or_init(|| {
            let mut linker = wasmtime::Linker::new(&self.engine);
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
    /// identity is known), else compiled by `compile` (and cached; a cache
    /// that cannot be written is only warned about).
    fn compiled<A: Artifact>(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        compile: Compile<A>,
    ) -> Result<A, LoadError> {
        let (compiled, stored) = self.compile_and_store(path, meta, compile)?;
        if let Err(e) = stored {
            tracing::warn!("failed to write the compiled-component cache: {e:#}");
        }
        Ok(compiled)
    }

    /// [`Loader::compiled`], and whether the cache was written.
    fn compile_and_store<A: Artifact>(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        compile: Compile<A>,
    ) -> Result<(A, anyhow::Result<()>), LoadError> {
        let engine = &self.engine;
        let Some(cache) = &self.cache else {
            let bytes = read_module(path)?;
            check_header(path, &bytes)?;
            let compiled = compile(path, engine, &bytes)?;
            // Nothing to store: the cache is off on purpose.
            return Ok((compiled, Ok(())));
        };
        let start = std::time::Instant::now();
        let content = cache.module_content(path, meta)?;
        let key = DiskCache::key(engine, &content.hash);
        if let Some(compiled) = self.cache_lookup(cache, &key) {
            tracing::debug!(key, elapsed = ?start.elapsed(), "loaded from the cache");
            return Ok((compiled, Ok(())));
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
        let compiled = compile(path, engine, &bytes)?;
        tracing::debug!(key, elapsed = ?start.elapsed(), "compiled component");
        let stored = cache
            .store(&key, &compiled)
            .context("failed to write the compiled-component cache");
        Ok((compiled, stored))
    }

    /// Fills the disk cache with the program at `path` (a component or a
    /// wasip1 module), compiling it unless the cache has it already (`host
    /// compile`), and records the file's identity so that a later start
    /// need not hash it.
    pub fn precompile(&self, path: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(self.cache.is_some(), "the compiled-component cache is off");
        let meta = std::fs::metadata(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        match self.precheck_kind(path)? {
            Kind::Component => self.compile_and_store(path, &meta, compile_component)?.1,
            Kind::Core => self.compile_and_store(path, &meta, compile_core)?.1,
        }
    }

    fn cache_lookup<A: Artifact>(&self, cache: &DiskCache, key: &str) -> Option<A> {
        match cache.load(&self.engine, key) {
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

/// How a program's bytes become an artifact.
type Compile<A> = fn(&Path, &Engine, &[u8]) -> Result<A, LoadError>;

fn compile_component(path: &Path, engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    Component::new(engine, bytes).map_err(|source| {
        let source = anyhow::Error::from(source);
        // wasmparser names the feature it lacks; that is the only place the
        // distinction exists before we would enable it.
        if format!("{source:#}").contains("requires the component model async feature") {
            LoadError::Async {
                path: path.to_owned(),
                source,
            }
        } else {
            LoadError::Invalid {
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn compile_core(path: &Path, engine: &Engine, bytes: &[u8]) -> Result<Module, LoadError> {
    Module::new(engine, bytes).map_err(|e| LoadError::Invalid {
        path: path.to_owned(),
        source: e.into(),
    })
}
