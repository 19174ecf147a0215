//! Integration tests: the real `host` binary on real guests, with exact
//! stdout, stderr and exit status. One test binary (the wasmtime pattern).

mod child_process;
mod cli;
mod net;
mod process;
mod signals;
mod util;
