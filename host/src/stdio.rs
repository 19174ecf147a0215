//! A process's stdio: the host's own, pipes, or memory (for embedders).

use std::sync::Arc;
use wasmtime_wasi::cli::{StdinStream, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// A process's stdio streams, shareable with children that inherit them.
#[derive(Clone)]
pub struct Stdio {
    /// Whether these are the host's own stdin/stdout/stderr (an OS child
    /// inheriting them then gets the real file descriptors).
    pub is_host: bool,
    /// Standard input.
    pub stdin: Arc<dyn StdinStream + Sync>,
    /// Standard output.
    pub stdout: Arc<dyn StdoutStream + Sync>,
    /// Standard error.
    pub stderr: Arc<dyn StdoutStream + Sync>,
}

impl Stdio {
    /// The host's own stdin, stdout and stderr.
    pub fn inherit() -> Stdio {
        Stdio {
            is_host: true,
            stdin: Arc::new(wasmtime_wasi::cli::stdin()),
            stdout: Arc::new(wasmtime_wasi::cli::stdout()),
            stderr: Arc::new(wasmtime_wasi::cli::stderr()),
        }
    }

    /// An empty stdin, and stdout and stderr kept in memory (for embedders
    /// and tests that drive the library in-process).
    pub fn capture() -> (Stdio, Captured) {
        const CAPACITY: usize = 64 << 20;
        let captured = Captured {
            stdout: MemoryOutputPipe::new(CAPACITY),
            stderr: MemoryOutputPipe::new(CAPACITY),
        };
        let stdio = Stdio {
            is_host: false,
            stdin: Arc::new(tokio::io::empty()),
            stdout: Arc::new(captured.stdout.clone()),
            stderr: Arc::new(captured.stderr.clone()),
        };
        (stdio, captured)
    }
}

/// Output captured by [`Stdio::capture`].
pub struct Captured {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Captured {
    /// Everything written to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.contents().to_vec()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.stderr.contents().to_vec()
    }
}
