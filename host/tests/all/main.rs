//! Integration tests: the real `host` binary on real guests, with exact
//! stdout, stderr and exit status. One test binary (the wasmtime pattern).

mod bridge;
mod capacity;
mod cli;
mod cluster;
mod faults;
mod fork;
mod http;
mod limits;
mod net;
mod node;
mod os;
mod serve;
mod signals;
mod supervisor;
mod threads;
mod util;
