//! The one `bindgen!` for the `hive:process` WIT package.
//!
//! Host functions are `async` (guests block in them on a fiber without
//! blocking a thread) and `trappable` (they return `wasmtime::Result`, so a
//! host invariant break or a deliberate exit traps). Guest-visible errors are
//! plain `result<_, error-code>` values inside that. We use wasmtime's own
//! `wasmtime::Error` throughout (not `anyhow: true`).
//!
//! No `tracing` flag: a span per host call cost 11% of message throughput
//! (measured with perf); the slow paths (fork, exit) log by hand instead.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "hive:process/guest",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi": wasmtime_wasi::p2::bindings,
        "hive:process/child-process.child": crate::child_process::Child,
    },
});

pub use hive::process::types::{
    ChildEvent, ChildEventKind, ErrorCode, ErrorInfo, Event, ExitStatus as WitExitStatus, Message,
};
