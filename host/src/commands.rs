//! The `host` command line.

mod compile;
mod ps;
mod run;
mod serve;

use crate::runtime::exit::ExitStatus;
use clap::{Parser, Subcommand};
pub use compile::CompileCommand;
pub use ps::PsCommand;
pub use run::RunCommand;
pub use serve::ServeCommand;

/// Hive: run WebAssembly components as processes, with Node.js semantics.
#[derive(Debug, Parser)]
#[command(name = "host", version, propagate_version = true)]
#[command(
    after_help = "Example:\n  host run target/guests/seed-fork-main.wasm\n  host run --dir ./data::/data --env GREETING=hi app.wasm arg1 arg2\n  host serve --workers 2 proxy.wasm   # a wasi:http component, long-lived instances\n  host compile app.wasm   # fill the compiled-component cache ahead of time\n  host ps                 # the process trees of this user's running hosts"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(Box<RunCommand>),
    Serve(ServeCommand),
    Compile(CompileCommand),
    Ps(PsCommand),
    /// The host's sentinel (see `sentinel.rs`); started by the host itself.
    #[command(name = "__sentinel", hide = true)]
    Sentinel {
        #[arg(long)]
        grace_ms: u64,
        /// Where the host's pids cgroups are (their common prefix).
        #[arg(long)]
        cgroups: Option<std::path::PathBuf>,
    },
}

impl Cli {
    /// Runs the chosen subcommand and returns the exit status for the host.
    pub fn execute(self) -> anyhow::Result<ExitStatus> {
        match self.command {
            Command::Run(run) => run.execute(),
            Command::Serve(serve) => serve.execute(),
            Command::Compile(compile) => compile.execute(),
            Command::Ps(ps) => ps.execute(),
            Command::Sentinel { grace_ms, cgroups } => {
                let grace = std::time::Duration::from_millis(grace_ms);
                crate::runtime::sentinel::serve(grace, cgroups);
                Ok(ExitStatus::Code(0))
            }
        }
    }
}

/// Sends `tracing` output to stderr, filtered by `HOST_LOG` (default: warnings).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HOST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
