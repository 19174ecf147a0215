//! How a process ended, and how that becomes the host's exit code.

use super::signal::Signal;

/// How a process ended: an exit code, or the signal that ended it.
///
/// This is what a parent sees in `exit`/`close` events and what `host run`
/// turns into its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The process exited by itself with this code (0..=255), or with a
    /// negative errno when it never started (Node's `close(-2, null)`).
    Code(i32),
    /// The process was ended by this signal. A trapped wasm guest reports
    /// `SIGABRT`, as an aborted Node process does.
    Signal(Signal),
}

impl ExitStatus {
    /// The exit code for the host process: the code itself, or `128 + n` for
    /// signal `n` (as shells, spin and just do); signals are below 64.
    pub fn code(&self) -> u8 {
        match *self {
            ExitStatus::Code(code) => u8::try_from(code).unwrap_or(1),
            ExitStatus::Signal(signal) => 128 + signal.number(),
        }
    }

    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(signal) => write!(f, "signal {}", signal.name()),
        }
    }
}
