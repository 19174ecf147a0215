//! `host run`: run a WASI 0.2 command component as the root process.

use crate::engine::{Hive, HiveConfig, Preopen, RunOptions};
use crate::error::ExitStatus;
use crate::os::SpawnPolicy;
use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;

/// Runs a WebAssembly component (a WASI 0.2 command) as a process.
///
/// Arguments after the guest go to the guest; its `argv[0]` is the guest's
/// path as given. The guest's exit code becomes the host's. A guest that
/// traps prints the trap and its wasm backtrace to stderr and exits with 134
/// (128 + SIGABRT); one killed by signal N exits with 128 + N.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:\n  \
    host run target/guests/hello.wasm\n  \
    host run --env NAME=value --env HOME app.wasm --flag input.txt\n  \
    host run --dir ./data::/data app.wasm   # ./data is /data in the guest\n\n\
    Exit status: the guest's code; 134 if it trapped; 128+N if killed by signal N; \
    1 for a host error; 2 for a usage error.")]
pub struct RunCommand {
    /// Set an environment variable for the guest: `NAME=VALUE`, or `NAME` to
    /// pass the host's value through (skipped if the host has none).
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    env: Vec<(String, Option<String>)>,

    /// Give the guest a host directory: `HOST` (seen at the same path) or
    /// `HOST::GUEST`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<Preopen>,

    /// Override the guest's `argv[0]`.
    #[arg(long, value_name = "NAME")]
    argv0: Option<String>,

    /// Let the guest start OS programs (`spawn`, `exec`, ...): any program,
    /// or only those listed, by name (`ls`) or path (`/bin/ls`). Children
    /// never get more than their parent. `exec` runs `/bin/sh`, so it needs
    /// `sh` — which, like any shell, can run anything.
    #[arg(long, value_name = "PROG,...", num_args = 0..=1, require_equals = true, value_delimiter = ',', default_missing_value = "")]
    allow_spawn: Option<Vec<String>>,

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
    #[arg(long, env = "HOST_MAX_PROCS", default_value_t = crate::engine::DEFAULT_MAX_PROCS, value_name = "N")]
    max_procs: u32,

    /// The guest component (`.wasm`) to run.
    #[arg(value_name = "GUEST.wasm")]
    module: PathBuf,

    /// Arguments passed to the guest.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
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
    let (host, guest) = match text.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (text, text),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{text}`: use `--dir HOST` or `--dir HOST::GUEST`"));
    }
    Ok(Preopen {
        host: PathBuf::from(host),
        guest: guest.to_owned(),
    })
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<ExitStatus> {
        let defaults = HiveConfig::default();
        let config = HiveConfig {
            max_procs: self.max_procs,
            kill_grace: std::time::Duration::from_millis(self.kill_grace_ms),
            cache_dir: match (self.no_cache, self.cache_dir) {
                (true, _) => None,
                (false, Some(dir)) => Some(dir),
                (false, None) => defaults.cache_dir.clone(),
            },
            ..defaults
        };
        let env = self
            .env
            .into_iter()
            .filter_map(|(name, value)| match value {
                Some(value) => Some((name, value)),
                None => std::env::var(&name).ok().map(|value| (name, value)),
            })
            .collect();
        let options = RunOptions {
            module: self.module,
            argv0: self.argv0,
            args: self.args,
            env,
            dirs: self.dirs,
            stdio: None,
            allow_spawn: match self.allow_spawn {
                None => SpawnPolicy::Deny,
                Some(list) => {
                    let list: Vec<String> = list.into_iter().filter(|p| !p.is_empty()).collect();
                    if list.is_empty() {
                        SpawnPolicy::All
                    } else {
                        SpawnPolicy::Only(list)
                    }
                }
            },
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("failed to start the tokio runtime")?;
        let status = runtime.block_on(async {
            let hive = Hive::new(config)?;
            let status = hive.run(options).await;
            // The root is gone: end whatever is left (OS children get
            // SIGTERM, then SIGKILL after the grace period).
            hive.shutdown().await;
            status
        });
        // Guests blocked reading stdin live on a worker thread; do not wait.
        runtime.shutdown_background();
        status
    }
}
