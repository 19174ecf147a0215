//! `host serve`: serve a `wasi:http` proxy component, as `wasmtime serve`
//! does, but with long-lived instances reused across requests behind one
//! host-owned listener.

use crate::hive::{Hive, HiveConfig, ServeOptions};
use crate::runtime::exit::ExitStatus;
use crate::runtime::listen::Policy;
use crate::runtime::signal::Signal;
use anyhow::Context as _;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Serves HTTP with a `wasi:http` proxy component (one that exports
/// `wasi:http/incoming-handler`, what `wasmtime serve` runs).
///
/// The host owns the listener and parses HTTP (keep-alive, pipelining,
/// chunked bodies); each of `--workers` instances is created once and
/// handles one request at a time, reused across requests (`wasmtime
/// serve` makes an instance per request by default). An instance that
/// traps is replaced. Instances get no files, network or programs;
/// outgoing HTTP requests are denied.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:\n  \
    host serve app.wasm                        # http://127.0.0.1:8080/, one instance per CPU\n  \
    host serve --addr 0.0.0.0:8000 --workers 4 --policy least-connections app.wasm\n\n\
    Exit status: 128+N when ended by signal N (SIGTERM, SIGINT); 1 if it cannot start.")]
pub struct ServeCommand {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// How many instances serve at once (default: one per CPU).
    #[arg(long)]
    workers: Option<u32>,

    /// How connections reach the instances: `round-robin`, `least-connections`,
    /// `source-ip-hash`, or `shared`.
    #[arg(long, default_value = "round-robin", value_parser = parse_policy)]
    policy: Policy,

    /// Set an environment variable for the instances: `NAME=VALUE`.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// The compiled-component cache directory.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// The `wasi:http` proxy component.
    module: PathBuf,
}

fn parse_policy(text: &str) -> Result<Policy, String> {
    Ok(match text {
        "round-robin" | "rr" => Policy::RoundRobin,
        "least-connections" => Policy::LeastConnections,
        "source-ip-hash" => Policy::SourceIpHash,
        "shared" | "none" => Policy::Shared,
        other => {
            return Err(format!(
                "unknown policy `{other}`: use round-robin, least-connections, source-ip-hash or shared"
            ));
        }
    })
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => Err(format!("`{text}`: use NAME=VALUE")),
    }
}

impl ServeCommand {
    /// Serves until SIGTERM or SIGINT.
    pub fn execute(self) -> anyhow::Result<ExitStatus> {
        let defaults = HiveConfig::default();
        let config = HiveConfig {
            cache_dir: self.cache_dir.or(defaults.cache_dir.clone()),
            sentinel: std::env::current_exe().ok(),
            ..defaults
        };
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("failed to start the tokio runtime")?;
        let status = runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let hive = Hive::new(config)?;
            // `host ps` reaches this host here, until it ends.
            let _control = crate::control::serve(hive.runtime().clone());
            let options = ServeOptions {
                module: self.module,
                addr: self.addr,
                workers,
                policy: self.policy,
                env: self.env,
            };
            let serving = hive.serve(options, |addr| {
                println!("Serving HTTP on http://{addr}/");
            });
            let status = tokio::select! {
                failed = serving => return Err(failed.unwrap_err()),
                _ = term.recv() => ExitStatus::Signal(Signal::TERM),
                _ = int.recv() => ExitStatus::Signal(Signal::INT),
            };
            hive.shutdown_to_exit().await;
            anyhow::Ok(status)
        });
        runtime.shutdown_background();
        status
    }
}
