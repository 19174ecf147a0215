//! `host compile`: fill the compiled-component cache ahead of time.

use crate::hive::{Hive, HiveConfig};
use crate::runtime::exit::ExitStatus;
use clap::Parser;
use std::path::PathBuf;

/// Compiles WebAssembly components into the compiled-component cache, so
/// that their first `host run` (or `fork`) starts as fast as later ones.
///
/// Like `wasmtime compile`, but the result goes to the cache `host run`
/// reads (keyed by the component's content and the engine's settings), not
/// to a separate file: run the `.wasm` as usual. A component already in the
/// cache is not compiled again.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:\n  \
    host compile target/guests/app.wasm\n  \
    HOST_CACHE_DIR=/var/cache/hive host compile a.wasm b.wasm\n\n\
    Exit status: 0 when every component is in the cache; 1 otherwise.")]
pub struct CompileCommand {
    /// Where compiled components are cached [default: $XDG_CACHE_HOME/hive
    /// or ~/.cache/hive].
    #[arg(long, env = "HOST_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// The components to compile.
    #[arg(value_name = "GUEST.wasm", required = true, num_args = 1..)]
    modules: Vec<PathBuf>,
}

impl CompileCommand {
    /// Compiles every module given into the cache.
    pub fn execute(self) -> anyhow::Result<ExitStatus> {
        let defaults = HiveConfig::default();
        let config = HiveConfig {
            cache_dir: self.cache_dir.or(defaults.cache_dir.clone()),
            // Nothing runs: no pool to reserve (the pool's size is not part
            // of the cache key).
            max_procs: 1,
            ..defaults
        };
        anyhow::ensure!(
            config.cache_dir.is_some(),
            "no cache directory: set HOST_CACHE_DIR or HOME, or pass --cache-dir"
        );
        let hive = Hive::new(config)?;
        for module in &self.modules {
            hive.precompile(module)?;
        }
        Ok(ExitStatus::Code(0))
    }
}
