//! `host run`: run a WASI program (a WASI 0.2 command component, or a
//! wasip1 core module) as the root process.

use crate::hive::{Hive, HiveConfig, NodeParent, RunOptions};
use crate::runtime::caps::{
    AllowedDir, AllowedProgram, ForkPolicy, Preopen, SpawnPolicy, parse_size,
};
use crate::runtime::exit::ExitStatus;
use crate::runtime::net::NetPolicy;

use crate::runtime::signal::Signal;
use anyhow::Context as _;
use clap::Parser;
use std::path::{Path, PathBuf};

/// Runs a WebAssembly program as a process: a WASI 0.2 command component,
/// or a wasip1 core module.
///
/// Everything after the guest goes to the guest, even words that look like
/// host options; its `argv[0]` is the guest's path as given. The guest's
/// exit code becomes the host's. A guest that traps prints the trap and its
/// wasm backtrace to stderr and exits with 134 (128 + SIGABRT); one killed
/// by signal N exits with 128 + N.
///
/// A guest gets nothing it was not given: no files without `--dir`, no
/// environment without `--env`/`--inherit-env`, no OS programs without
/// `--allow-spawn`, no network without `--allow-net`.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:\n  \
    host run target/guests/hello.wasm\n  \
    host run app.wasm --flag input.txt          # everything after app.wasm is the guest's\n  \
    host run --env NAME=value --env HOME app.wasm\n  \
    host run --inherit-env --env DEBUG=1 app.wasm\n  \
    host run --dir ./data::/data app.wasm       # ./data is /data in the guest\n  \
    host run --ro-dir .::/work --cwd /work rg.wasm TODO   # search . read-only\n  \
    host run --argv0 rg rg.wasm --version\n  \
    host run --max-memory 2G python.wasm\n  \
    host run --allow-spawn=ls,git app.wasm      # or --allow-spawn for any program\n  \
    host run --allow-net=127.0.0.1:8080 server.wasm   # or --allow-net for any address\n  \
    host run --allow-spawn --kill-grace-ms 500 supervisor.wasm\n  \
    host run --no-cache app.wasm                # or --cache-dir /tmp/hive-cache\n  \
    host run --max-procs 20000 actors.wasm\n  \
    host run legacy-wasip1.wasm                 # a wasip1 core module runs as is\n\n\
    Exit status: the guest's code; 134 if it trapped; 128+N if killed by signal N; \
    1 for a host error; 2 for a usage error.")]
pub struct RunCommand {
    /// Set an environment variable for the guest: `NAME=VALUE`, or `NAME` to
    /// pass the host's value through (skipped if the host has none).
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    env: Vec<(String, Option<String>)>,

    /// Pass the host's whole environment to the guest (`--env` entries
    /// still apply on top).
    #[arg(long)]
    inherit_env: bool,

    /// Give the guest a host directory, read-write: `HOST` (seen at the
    /// same path) or `HOST::GUEST`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<Preopen>,

    /// Give the guest a host directory it may only read: no create, write,
    /// truncate, rename or remove inside it (the guest gets
    /// `read-only`/`access-denied`). Forked children see it read-only too.
    #[arg(long = "ro-dir", value_name = "HOST[::GUEST]", value_parser = parse_ro_dir)]
    ro_dirs: Vec<Preopen>,

    /// The guest's initial working directory, a guest path inside a
    /// preopen (`--cwd /data`), so that relative paths such as `.` resolve
    /// there.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,

    /// Override the guest's `argv[0]`.
    #[arg(long, value_name = "NAME")]
    argv0: Option<String>,

    /// The most linear memory the guest may have (over all its memories),
    /// in bytes or with a K/M/G suffix (powers of 1024). A refused
    /// `memory.grow` prints one line naming this flag. The pool reserves
    /// this much address space per memory slot, which is why the default is
    /// 512M and not wasmtime's 4G.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "512M")]
    max_memory: u64,

    /// The most linear memory all guests together may have (the root and
    /// every fork), like `--max-memory` [default: three quarters of the
    /// machine's memory]. A refused `memory.grow` prints one line naming
    /// this flag.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_total_memory: Option<u64>,

    /// The most CPU time, in milliseconds, the guest and each process it
    /// starts may use (its code and its host calls; an OS child's
    /// `RLIMIT_CPU`, in whole seconds). Past it the process ends with
    /// SIGXCPU and one line naming this flag [default: no limit].
    #[arg(long, value_name = "MS")]
    max_cpu_ms: Option<u64>,

    /// The most host resources (handles: children, streams, pollables, HTTP
    /// requests, ...) the guest and each process it forks may hold at
    /// once; one more ends the process with one line naming this flag
    /// [default: 100,000, or `--max-procs` + 10,000 if more, so that a
    /// parent can hold a handle to every process the host may run].
    #[arg(long, value_name = "N")]
    max_resources: Option<u32>,

    /// Let the guest start OS programs (`spawn`, `exec`, ...): any program,
    /// or only those listed, by name (`ls`) or path (`/bin/ls`). Children
    /// never get more than their parent. `exec` runs `/bin/sh`, so it needs
    /// `sh` — which, like any shell, can run anything.
    /// Each entry is resolved once, when the host starts, to the file it
    /// names (a bare name over the host's `PATH`, symlinks followed): a
    /// guest may run exactly those files, whatever `PATH` it passes.
    #[arg(long, value_name = "PROG,...", num_args = 0..=1, require_equals = true, value_delimiter = ',', value_parser = AllowedProgram::new)]
    allow_spawn: Option<Vec<AllowedProgram>>,

    /// Let the guest use the network (TCP and UDP): any address and name
    /// lookup, or only the addresses listed — `IP:PORT`, `IP:*` (any port),
    /// `[IPv6]:PORT`, `localhost:PORT`. An entry allows connecting to it and
    /// binding or listening on it; with a list, name lookup fails. A denied
    /// use is `access-denied` in the guest and a warning naming this flag.
    #[arg(long, value_name = "HOST:PORT,...", num_args = 0..=1, require_equals = true, value_delimiter = ',', value_parser = parse_net_entry)]
    allow_net: Option<Vec<NetEntry>>,

    /// Let the guest fork modules outside its own directory: any, or those
    /// below the directories listed. Without it a guest forks only modules
    /// in the root module's directory (and below); any other path is
    /// refused with `EACCES`, whether or not it exists.
    #[arg(long, value_name = "DIR,...", num_args = 0..=1, require_equals = true, value_delimiter = ',', value_parser = parse_fork_dir)]
    allow_fork: Option<Vec<AllowedDir>>,

    /// Milliseconds an OS child gets between SIGTERM and SIGKILL when its
    /// parent ends.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    kill_grace_ms: u64,

    /// Do not read or write the compiled-component cache.
    #[arg(long)]
    no_cache: bool,

    /// Where compiled components are cached [default: $XDG_CACHE_HOME/hive
    /// or ~/.cache/hive].
    #[arg(long, env = "HOST_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// The most wasm processes alive at once, the root guest included. The
    /// pool is reserved up front, costing ~3 µs of start-up per slot (one
    /// guard page per fiber stack): raise it for more live guests.
    #[arg(long, env = "HOST_MAX_PROCS", default_value_t = crate::hive::DEFAULT_MAX_PROCS, value_name = "N")]
    max_procs: u32,

    #[command(flatten)]
    wasmtime: WasmtimeFlags,

    /// The guest (`.wasm`) and the arguments passed to it. Everything after
    /// the guest goes to the guest, even words that spell a host option
    /// (`--dir`, `--help`, `--`): a wrapper `host run tool.wasm "$@"` can
    /// never widen the sandbox.
    #[arg(
        value_name = "GUEST.wasm",
        trailing_var_arg = true,
        required = true,
        num_args = 1..
    )]
    module_and_args: Vec<String>,
}

/// `wasmtime run` flags a user may carry over. None is accepted: each is
/// a usage error that names Hive's flag for the same thing, or says that
/// there is none.
#[derive(Debug, clap::Args)]
struct WasmtimeFlags {
    #[arg(short = 'S', long = "wasi", hide = true, value_parser = wasi_flag)]
    wasi: Vec<String>,
    #[arg(short = 'W', long = "wasm", hide = true, value_parser = wasm_flag)]
    wasm: Vec<String>,
    #[arg(short = 'O', long = "optimize", hide = true, value_parser = no_equivalent("-O"))]
    optimize: Vec<String>,
    #[arg(short = 'C', long = "codegen", hide = true, value_parser = codegen_flag)]
    codegen: Vec<String>,
    #[arg(short = 'D', long = "debug", hide = true, value_parser = no_equivalent("-D"))]
    debug: Vec<String>,
    #[arg(long = "invoke", hide = true, value_parser = invoke_flag)]
    invoke: Vec<String>,
    #[arg(long = "preload", hide = true, value_parser = no_equivalent("--preload"))]
    preload: Vec<String>,
}

fn wasi_flag(value: &str) -> Result<String, String> {
    let name = value.split('=').next().unwrap_or(value);
    Err(match name {
        "inherit-env" => "that is `wasmtime run` syntax: Hive's flag is `--inherit-env`".into(),
        "inherit-network" | "network" | "tcp" | "udp" | "allow-ip-name-lookup" => {
            "that is `wasmtime run` syntax: Hive's flag is `--allow-net` \
             (any address) or `--allow-net=HOST:PORT,...`"
                .into()
        }
        "preview2" => "Hive runs wasip1 modules directly: drop the flag".into(),
        _ => format!("that is `wasmtime run` syntax; Hive has no equivalent of `-S {name}`"),
    })
}

fn wasm_flag(value: &str) -> Result<String, String> {
    let name = value.split('=').next().unwrap_or(value);
    Err(match name {
        "max-memory-size" => {
            "that is `wasmtime run` syntax: Hive's flag is `--max-memory SIZE`".into()
        }
        _ => format!(
            "that is `wasmtime run` syntax; Hive has no equivalent of `-W {name}` \
             (it chooses the wasm features itself)"
        ),
    })
}

fn codegen_flag(value: &str) -> Result<String, String> {
    let name = value.split('=').next().unwrap_or(value);
    Err(match name {
        "cache" => "that is `wasmtime run` syntax: Hive's flag is `--no-cache`".into(),
        "cache-config" => "that is `wasmtime run` syntax: Hive's flag is `--cache-dir DIR`".into(),
        _ => format!("that is `wasmtime run` syntax; Hive has no equivalent of `-C {name}`"),
    })
}

fn invoke_flag(_: &str) -> Result<String, String> {
    Err(
        "that is `wasmtime run` syntax; Hive has no `--invoke`: it runs commands \
         (`wasi:cli/run`, or a wasip1 `_start`)"
            .into(),
    )
}

fn no_equivalent(flag: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |_| {
        Err(format!(
            "that is `wasmtime run` syntax; Hive has no equivalent of `{flag}`"
        ))
    }
}

fn parse_env(text: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (text, None),
    };
    if name.is_empty() {
        return Err(format!(
            "`{text}` has no variable name: use `--env NAME=VALUE` or `--env NAME`"
        ));
    }
    Ok((name.to_owned(), value))
}

fn parse_dir(text: &str) -> Result<Preopen, String> {
    preopen(text, false)
}

fn parse_ro_dir(text: &str) -> Result<Preopen, String> {
    preopen(text, true)
}

fn preopen(text: &str, read_only: bool) -> Result<Preopen, String> {
    let (host, guest) = match text.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (text, text),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{text}`: use `HOST` or `HOST::GUEST`"));
    }
    Ok(Preopen {
        host: PathBuf::from(host),
        guest: guest.to_owned(),
        read_only,
    })
}

fn parse_fork_dir(text: &str) -> Result<AllowedDir, String> {
    if text.is_empty() {
        return Err(
            "an empty list allows nothing more: give `--allow-fork` alone for any \
                    module, or list directories"
                .into(),
        );
    }
    match std::fs::metadata(text) {
        Ok(meta) if meta.is_dir() => {
            AllowedDir::new(Path::new(text)).map_err(|e| format!("`{text}`: {e}"))
        }
        Ok(_) => Err(format!("`{text}` is not a directory")),
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}

/// One `--allow-net` entry (`localhost` is two rules).
#[derive(Debug, Clone)]
struct NetEntry(Vec<crate::runtime::net::NetRule>);

fn parse_net_entry(text: &str) -> Result<NetEntry, String> {
    if text.is_empty() {
        // `--allow-net=$HOSTS` with `$HOSTS` unset must not mean "any".
        return Err(
            "an empty list allows nothing: give `--allow-net` alone for any \
                    address, or list `HOST:PORT` entries"
                .into(),
        );
    }
    NetPolicy::parse_entry(text).map(NetEntry)
}

/// How long the host waits, once the root guest ended, for the last
/// messages to its Node parent to be written.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGTERM, SIGINT and SIGHUP sent to the host.
struct HostSignals([tokio::signal::unix::Signal; 3]);

impl HostSignals {
    fn new() -> std::io::Result<HostSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(HostSignals([
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ]))
    }

    /// Delivers each signal to the root guest, as if sent to it: a root
    /// with a handler gets it as an event and decides; one without ends at
    /// once (so the host exits 128+N), and the tree ends with it. A signal
    /// while the tree is already ending skips the rest of the grace period.
    async fn forward(mut self, hive: Hive, root: std::sync::Arc<crate::runtime::proc::Proc>) {
        let [term, int, hup] = &mut self.0;
        loop {
            let signal = tokio::select! {
                _ = term.recv() => Signal::TERM,
                _ = int.recv() => Signal::INT,
                _ = hup.recv() => Signal::HUP,
            };
            tracing::debug!(signal = signal.name(), "host received a signal");
            if root.status().is_some() {
                hive.runtime().kill_os_children();
            } else {
                root.signal(signal);
            }
        }
    }
}

impl RunCommand {
    /// Runs the guest to completion; returns its exit status.
    pub fn execute(self) -> anyhow::Result<ExitStatus> {
        let defaults = HiveConfig::default();
        let config = HiveConfig {
            max_procs: self.max_procs,
            max_memory: crate::runtime::caps::whole_pages(self.max_memory),
            kill_grace: std::time::Duration::from_millis(self.kill_grace_ms),
            cache_dir: match (self.no_cache, self.cache_dir) {
                (true, _) => None,
                (false, Some(dir)) => Some(dir),
                (false, None) => defaults.cache_dir.clone(),
            },
            max_total_memory: self.max_total_memory.unwrap_or(defaults.max_total_memory),
            sentinel: std::env::current_exe().ok(),
        };
        // Started by Node's `fork` (`NODE_CHANNEL_FD`): the root guest's
        // parent channel is that socket.
        let node_parent = match crate::node::parent_channel() {
            None => None,
            Some(Ok(channel)) => Some(NodeParent::new(channel.0, channel.1)),
            Some(Err(e)) => anyhow::bail!("{e}; unset it to run without a parent channel"),
        };
        // The channel's variables are the host's, never the guest's.
        let mut env: Vec<(String, String)> = if self.inherit_env {
            std::env::vars()
                .filter(|(name, _)| !crate::node::is_channel_var(name))
                .collect()
        } else {
            Vec::new()
        };
        for (name, value) in self.env {
            let Some(value) = value.or_else(|| std::env::var(&name).ok()) else {
                continue;
            };
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
        }
        let allow_net = match self.allow_net {
            None => NetPolicy::Deny,
            Some(list) if list.is_empty() => NetPolicy::All,
            Some(list) => NetPolicy::Only(list.into_iter().flat_map(|e| e.0).collect()),
        };
        let mut module_and_args = self.module_and_args.into_iter();
        let module = module_and_args.next().expect("clap requires the guest");
        let options = RunOptions {
            module: module.into(),
            argv0: self.argv0,
            args: module_and_args.collect(),
            env,
            dirs: self.dirs.into_iter().chain(self.ro_dirs).collect(),
            stdio: None,
            allow_spawn: match self.allow_spawn {
                None => SpawnPolicy::Deny,
                Some(list) if list.is_empty() => SpawnPolicy::All,
                Some(list) => SpawnPolicy::Only(list),
            },
            allow_net,
            allow_fork: match self.allow_fork {
                None => ForkPolicy::Below(Vec::new()),
                Some(dirs) if dirs.is_empty() => ForkPolicy::All,
                Some(dirs) => ForkPolicy::Below(dirs),
            },
            max_memory: None,
            limits: crate::runtime::caps::Limits {
                max_cpu_ms: self.max_cpu_ms,
                max_resources: self
                    .max_resources
                    .unwrap_or_else(|| crate::runtime::caps::default_max_resources(self.max_procs)),
                ..Default::default()
            },
            cwd: self.cwd,
            node_parent: node_parent.clone(),
        };
        // A guest that can reach the cache could read its secret or plant
        // entries that later runs would trust: run this one without it, and
        // make a new secret afterwards.
        let exposed = config.cache_dir.as_ref().and_then(|cache| {
            crate::loader::cache::exposed_by(cache, &options.dirs)
                .map(|dir| (cache.clone(), dir.flag()))
        });
        let mut config = config;
        if let Some((cache, flag)) = &exposed {
            tracing::warn!(
                "the compiled-component cache `{}` is inside `{flag}`, which the guest can reach: \
                 running without the cache (give `--cache-dir` a directory outside every preopen)",
                cache.display()
            );
            config.cache_dir = None;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("failed to start the tokio runtime")?;
        let status = runtime.block_on(async {
            let hive = Hive::new(config)?;
            // `host ps` reaches this host here, until it ends.
            let _control = crate::control::serve(hive.runtime().clone());
            // Before the guest runs: from here on SIGTERM, SIGINT and SIGHUP
            // no longer end the host at once, leaving the tree behind.
            let signals = HostSignals::new().context("failed to handle signals")?;
            let root = hive.start(options).await?;
            let forwarding = tokio::spawn(signals.forward(hive.clone(), root.clone()));
            let status = root.wait().await;
            // What the root sent its Node parent last is still being
            // written: let it go out before the host exits.
            if let Some(channel) = &root.channel {
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, channel.flushed()).await;
            }
            // The root is gone: end whatever is left (OS children get
            // SIGTERM, then SIGKILL after the grace period).
            hive.shutdown_to_exit().await;
            forwarding.abort();
            Ok(status)
        });
        // Guests blocked reading stdin live on a worker thread; do not wait.
        runtime.shutdown_background();
        if let Some((cache, _)) = exposed {
            crate::loader::cache::forget_secret(&cache);
        }
        // A Node parent tells how its child ended from `exit(code, signal)`:
        // a root ended by a signal ends the host by that signal, as a Node
        // child would end (a shell sees the same 128+N either way).
        if let (Some(_), Ok(ExitStatus::Signal(signal))) = (&node_parent, &status) {
            crate::runtime::unix::die_by(signal.number());
        }
        status
    }
}
