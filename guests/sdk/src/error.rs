//! The SDK's error type and Node's names for the host's error codes.

use crate::ErrorCode;

/// Why a call failed.
///
/// More variants may come (an error an event carries, say), so a `match`
/// needs a `_` arm.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The host refused the call synchronously.
    Code(ErrorCode),
    /// A worker-threads call failed (Node's `DataCloneError`, ...).
    Thread(crate::worker_threads::ThreadError),
}

impl From<crate::worker_threads::ThreadError> for Error {
    fn from(e: crate::worker_threads::ThreadError) -> Self {
        Error::Thread(e)
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::Code(code)
    }
}

/// By hand: the generated `Debug` of `ThreadError` carries every case's
/// WIT documentation, ~3 KiB of data that every guest calling `unwrap` on
/// an SDK result would hold in its memory image (2 KiB more USS per idle
/// guest, measured at 10,000); its name and Node's message say enough.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // In full: its documentation names the flag that fixes it
            // (`--allow-net`, ...), which an `unwrap` then shows.
            Error::Code(code) => f.debug_tuple("Code").field(code).finish(),
            Error::Thread(e) => f
                .debug_tuple("Thread")
                .field(&e.name())
                .field(&crate::worker_threads::describe(*e))
                .finish(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Code(ErrorCode::Denied) => write!(
                f,
                "EPERM: this guest may not start OS programs (run the host with `--allow-spawn`)"
            ),
            Error::Code(code) => write!(f, "{}", node_code(*code)),
            Error::Thread(e) => f.write_str(crate::worker_threads::describe(*e)),
        }
    }
}

impl std::error::Error for Error {}

/// Node's name for an error code (`ERR_IPC_CHANNEL_CLOSED`, ...).
pub fn node_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "ERR_INVALID_ARG_VALUE",
        ErrorCode::InvalidJson => "ERR_INVALID_JSON",
        ErrorCode::MessageTooLarge => "ERR_MESSAGE_TOO_LARGE",
        ErrorCode::ChannelClosed => "ERR_IPC_CHANNEL_CLOSED",
        ErrorCode::NotConnected => "ERR_IPC_DISCONNECTED",
        ErrorCode::UnknownSignal => "ERR_UNKNOWN_SIGNAL",
        ErrorCode::TooManyProcesses => "EAGAIN",
        ErrorCode::Denied => "EPERM",
        ErrorCode::NotADirectory => "ENOTDIR",
        ErrorCode::AddressInUse => "EADDRINUSE",
        ErrorCode::NoSuchProcess => "ESRCH",
    }
}
