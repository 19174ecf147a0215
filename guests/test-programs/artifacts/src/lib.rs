//! Paths of the guests built for `wasm32-wasip2` by this crate's build script.
//!
//! Each guest `<name>` is at `target/guests/<name>.wasm`, exposed here as the
//! constant `<NAME>` (dashes become underscores), with a `foreach_<suite>!`
//! macro per test-program suite (`cli`, `proc`).

include!(concat!(env!("OUT_DIR"), "/gen.rs"));
