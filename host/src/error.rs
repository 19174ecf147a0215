//! The library's errors: why a module cannot run, and how an error chain
//! reads in one line.

use std::path::PathBuf;

/// The largest `.wasm` Hive reads (an 18 MB Python component is large).
pub const MAX_MODULE_BYTES: u64 = 512 << 20;

/// Why a module cannot be run. Each message says what would fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read (missing, not permitted, I/O).
    #[error("failed to read `{path}`")]
    Read {
        /// The module file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error("`{}` is {what}, not a WebAssembly file", path.display())]
    /// Not a regular file (a directory, a FIFO, a device).
    NotAFile {
        /// The module file.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    #[error(
        "`{}` is {bytes} bytes, more than the largest module Hive reads ({MAX_MODULE_BYTES} bytes)",
        path.display()
    )]
    /// Larger than [`MAX_MODULE_BYTES`].
    TooLarge {
        /// The module file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    #[error("`{}` is not a WebAssembly file (it does not start with `\\0asm`)", path.display())]
    /// No WebAssembly header.
    NotWasm {
        /// The module file.
        path: PathBuf,
    },
    #[error(
        "`{path}` is a core WebAssembly module that imports `{import}`; Hive runs core modules \
         that import only `wasi_snapshot_preview1` (wasip1), and WASI 0.2 components: build it for \
         `wasm32-wasip1` or `wasm32-wasip2`, or make it a component with \
         `wasm-tools component new {path} --adapt wasi_snapshot_preview1.command.wasm -o out.wasm` \
         (the adapter is published with every wasmtime release)"
    )]
    /// A core module that imports more than wasip1.
    CoreModule {
        /// The module file.
        path: PathBuf,
        /// The first import Hive does not provide (`module::name`).
        import: String,
    },
    #[error(
        "`{path}` uses the component model's async features (`stream`, `future` or async \
         functions, as WASI 0.3 components do), which Hive does not run yet: build it for WASI \
         0.2 (`wasm32-wasip2`)"
    )]
    /// A component that uses the component model's async features.
    Async {
        /// The module file.
        path: PathBuf,
        /// The validator's complaint.
        #[source]
        source: anyhow::Error,
    },
    #[error(
        "`{path}` is a library (reactor), not a command: it exports no {entry}, so there is \
         nothing to run; build it as a command (a binary with `fn main`)"
    )]
    /// A library without an entry point.
    Reactor {
        /// The module file.
        path: PathBuf,
        /// The entry point it lacks.
        entry: &'static str,
    },
    #[error("`{path}` is not a valid WebAssembly component")]
    /// Not a valid component or module.
    Invalid {
        /// The module file.
        path: PathBuf,
        /// The validator's complaint.
        #[source]
        source: anyhow::Error,
    },
    #[error("`{path}` cannot be linked: it needs an import Hive does not provide")]
    /// It imports something Hive does not provide.
    Link {
        /// The module file.
        path: PathBuf,
        /// The linker's complaint.
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

/// Formats an error with its whole source chain, `a: b: c`.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
