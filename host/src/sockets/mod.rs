//! `wasi:sockets/tcp` and `wasi:sockets/tcp-create-socket`, Hive's own.
//!
//! wasmtime-wasi creates every TCP socket inside its own `TcpSocket`, whose
//! constructors are crate-private, and asks only a yes/no question per
//! address. A cluster worker's `listen` must instead *join* a listener the
//! host owns (`runtime::listen`), so Hive links every other WASI interface
//! from wasmtime-wasi and provides these two itself: a guest using plain
//! `std::net::TcpListener::bind` in a cluster worker shares its primary's
//! port without knowing it. wasmtime-wasi's p2 TCP code was the model.
//!
//! Outside a cluster (and for `exclusive` listens) a socket is an ordinary
//! socket of the guest's own, checked against `--allow-net` at every bind,
//! listen and connect.

mod stream;
mod tcp;

pub use tcp::TcpSocket;

use crate::bindings::wasi::sockets::{tcp as wit_tcp, tcp_create_socket};
use crate::runtime::cluster::WorkerLink;
use crate::runtime::net::NetGuard;
use crate::runtime::proc::Proc;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// What Hive's TCP needs of a process.
pub struct SocketsCtx {
    /// Its `--allow-net` policy (shared with wasmtime-wasi's UDP check).
    pub net: Arc<NetGuard>,
    /// Set for a cluster worker.
    pub cluster: Option<Arc<WorkerLink>>,
    /// The process (its HTTP servers' requests go to its inbox).
    pub me: Arc<Proc>,
    /// Its HTTP servers (`hive:process/http`).
    pub servers: crate::http::Servers,
}

/// The TCP interfaces' view of a store.
pub struct SocketsView<'a> {
    pub ctx: &'a mut SocketsCtx,
    pub table: &'a mut ResourceTable,
}

/// The `HasData` marker that links the TCP interfaces over a [`SocketsView`].
pub struct HiveSockets;

impl HasData for HiveSockets {
    type Data<'a> = SocketsView<'a>;
}

/// Replaces wasmtime-wasi's `wasi:sockets/tcp` and `tcp-create-socket` in
/// `linker` (which must have them already) with Hive's.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SocketsView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    wit_tcp::add_to_linker::<T, HiveSockets>(linker, view)?;
    tcp_create_socket::add_to_linker::<T, HiveSockets>(linker, view)?;
    linker.allow_shadowing(false);
    crate::bindings::hive::process::http::add_to_linker::<T, HiveSockets>(linker, view)?;
    Ok(())
}
