//! The `tcp-socket` resource: its states, and the `wasi:sockets/tcp`
//! methods over them.
//!
//! ```text
//! Unbound --bind--> Bound --listen--> Listening (own socket)
//!    |                 |
//!    |  (cluster worker, shared)
//!    +--bind--> Requested --listen--> Joined (the cluster's listener)
//!    |                 |
//!    +-----connect-----+--> Connecting --> Connected (also: accepted)
//! ```

use super::SocketsView;
use super::stream::{Reader, Writer};
use crate::bindings::wasi::sockets::tcp::{self as wit, ShutdownType};
use crate::bindings::wasi::sockets::tcp_create_socket;
use crate::runtime::listen::{Conn, Membership, OpenGuard};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::{TcpListener, TcpStream};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, Pollable, SocketError, SocketResult,
};
use wasmtime_wasi::sockets::SocketAddrUse;

/// The default listen backlog, as wasmtime-wasi's.
const DEFAULT_BACKLOG: u32 = 128;

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

enum State {
    /// Created, not bound.
    Unbound(tokio::net::TcpSocket),
    /// Bound to an address of its own.
    Bound(tokio::net::TcpSocket),
    /// A cluster worker's bind: the address waits for `listen`, which
    /// joins the cluster's listener for it.
    Requested(SocketAddr),
    /// Listening on its own socket.
    Listening(TcpListener),
    /// Listening through the cluster's listener.
    Joined(Arc<Membership>),
    /// `start-connect` was called.
    Connecting(ConnectFuture),
    /// The connect finished; `finish-connect` takes the result.
    Connected(io::Result<TcpStream>),
    /// Connected (or accepted), streams handed out.
    Open(Open),
    /// A failed connect, or streams taken twice: nothing more to do.
    Closed,
}

struct Open {
    /// Counts the connection as its worker's while it is open. First, so
    /// it drops first: the count is down before the socket can close, and
    /// a client that saw the close and reconnects finds the worker idle
    /// (least-connections).
    _open: OpenGuard,
    stream: Arc<TcpStream>,
    reader: Reader,
    writer: Writer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Bind,
    Listen,
    Connect,
}

/// A guest's TCP socket.
pub struct TcpSocket {
    state: State,
    family: IpAddressFamily,
    pending: Option<Pending>,
    backlog: u32,
    /// A connection a listening socket's pollable already accepted.
    ready: Option<Conn>,
}

impl TcpSocket {
    fn new(family: IpAddressFamily) -> io::Result<TcpSocket> {
        let socket = match family {
            IpAddressFamily::Ipv4 => tokio::net::TcpSocket::new_v4()?,
            IpAddressFamily::Ipv6 => {
                let s = tokio::net::TcpSocket::new_v6()?;
                socket2::SockRef::from(&s).set_only_v6(true)?;
                s
            }
        };
        Ok(TcpSocket {
            state: State::Unbound(socket),
            family,
            pending: None,
            backlog: DEFAULT_BACKLOG,
            ready: None,
        })
    }

    fn accepted(conn: Conn) -> TcpSocket {
        let family = family_of(conn.peer);
        let stream = Arc::new(conn.stream);
        TcpSocket {
            state: State::Open(Open {
                reader: Reader::new(stream.clone()),
                writer: Writer::new(stream.clone()),
                stream,
                _open: conn.open,
            }),
            family,
            pending: None,
            backlog: DEFAULT_BACKLOG,
            ready: None,
        }
    }

    /// The socket a socket option applies to, in the states that have one.
    fn fd(&self) -> SocketResult<socket2::SockRef<'_>> {
        Ok(match &self.state {
            State::Unbound(s) | State::Bound(s) => socket2::SockRef::from(s),
            State::Listening(l) => socket2::SockRef::from(l),
            State::Open(o) => socket2::SockRef::from(&*o.stream),
            _ => return Err(ErrorCode::InvalidState.into()),
        })
    }

    /// Polls a listening socket for a connection (kept until `accept`).
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        let conn = match &self.state {
            State::Listening(l) => match std::task::ready!(l.poll_accept(cx)) {
                Ok((stream, peer)) => Conn {
                    stream,
                    peer,
                    open: OpenGuard::none(),
                },
                Err(e) => return Poll::Ready(Err(e)),
            },
            State::Joined(m) => match std::task::ready!(m.poll_accept(cx)) {
                Ok(conn) => conn,
                Err(e) => return Poll::Ready(Err(e)),
            },
            _ => return Poll::Ready(Ok(())),
        };
        self.ready = Some(conn);
        Poll::Ready(Ok(()))
    }

    fn take_streams(open: &Open) -> (DynInputStream, DynOutputStream) {
        (Box::new(open.reader.clone()), Box::new(open.writer.clone()))
    }
}

fn family_of(addr: SocketAddr) -> IpAddressFamily {
    match addr {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

/// The address checks WASI asks of every bind and connect: the socket's
/// family, and no IPv4-mapped IPv6 address (wasmtime-wasi's rules).
fn check_family(family: IpAddressFamily, addr: SocketAddr) -> SocketResult<()> {
    let ok = match (family, addr) {
        (IpAddressFamily::Ipv4, SocketAddr::V4(_)) => true,
        (IpAddressFamily::Ipv6, SocketAddr::V6(a)) => a.ip().to_ipv4_mapped().is_none(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ErrorCode::InvalidArgument.into())
    }
}

impl SocketsView<'_> {
    fn allowed(&self, addr: SocketAddr, use_: SocketAddrUse) -> SocketResult<()> {
        if self.ctx.net.check(addr, use_) {
            Ok(())
        } else {
            Err(ErrorCode::AccessDenied.into())
        }
    }

    fn socket(&mut self, this: &Resource<TcpSocket>) -> SocketResult<&mut TcpSocket> {
        Ok(self.table.get_mut(this)?)
    }

    /// Starts an operation: none may be in progress.
    fn begin(&mut self, this: &Resource<TcpSocket>, op: Pending) -> SocketResult<&mut TcpSocket> {
        let socket = self.socket(this)?;
        if socket.pending.is_some() {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        socket.pending = Some(op);
        Ok(socket)
    }

    fn set_keepalive_params(
        &mut self,
        this: &Resource<TcpSocket>,
        params: socket2::TcpKeepalive,
    ) -> SocketResult<()> {
        Ok(self.socket(this)?.fd()?.set_tcp_keepalive(&params)?)
    }

    fn finish(&mut self, this: &Resource<TcpSocket>, op: Pending) -> SocketResult<&mut TcpSocket> {
        let socket = self.socket(this)?;
        if socket.pending != Some(op) {
            return Err(ErrorCode::NotInProgress.into());
        }
        Ok(socket)
    }
}

impl tcp_create_socket::Host for SocketsView<'_> {
    fn create_tcp_socket(
        &mut self,
        address_family: IpAddressFamily,
    ) -> SocketResult<Resource<TcpSocket>> {
        let socket = TcpSocket::new(address_family)?;
        tracing::trace!(
            ?address_family,
            cluster = self.ctx.cluster.is_some(),
            "tcp socket"
        );
        Ok(self.table.push(socket)?)
    }
}

impl wit::Host for SocketsView<'_> {}

/// The generated TCP bindings turn a `SocketError` into the guest's
/// `error-code` through `wasi:sockets/network` (linked by wasmtime-wasi);
/// these answer the same way it does.
impl network::Host for SocketsView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<io::Error>().map(ErrorCode::from))
    }
}

impl network::HostNetwork for SocketsView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::HostTcpSocket for SocketsView<'_> {
    fn start_bind(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let _ = self.table.get(&network)?;
        let addr = SocketAddr::from(local_address);
        let family = self.socket(&this)?.family;
        check_family(family, addr)?;
        if addr.ip().is_multicast() {
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.allowed(addr, SocketAddrUse::TcpBind)?;
        let shares = self.ctx.cluster.as_ref().is_some_and(|c| c.shares());
        let socket = self.socket(&this)?;
        if socket.pending.is_some() {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        let raw = match std::mem::replace(&mut socket.state, State::Closed) {
            State::Unbound(raw) => raw,
            other => {
                // Only an unbound socket binds; put back what was there.
                socket.state = other;
                return Err(ErrorCode::InvalidState.into());
            }
        };
        if shares {
            socket.state = State::Requested(addr);
        } else {
            // Every host-made listener reuses addresses the same way.
            let bound = raw.set_reuseaddr(true).and_then(|()| raw.bind(addr));
            match bound {
                Ok(()) => socket.state = State::Bound(raw),
                Err(e) => {
                    socket.state = State::Unbound(raw);
                    return Err(e.into());
                }
            }
        }
        socket.pending = Some(Pending::Bind);
        Ok(())
    }

    fn finish_bind(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        self.finish(&this, Pending::Bind)?.pending = None;
        Ok(())
    }

    fn start_connect(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<Network>,
        remote_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let _ = self.table.get(&network)?;
        let addr = SocketAddr::from(remote_address);
        let family = self.socket(&this)?.family;
        check_family(family, addr)?;
        if addr.ip().is_unspecified() || addr.port() == 0 || addr.ip().is_multicast() {
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.allowed(addr, SocketAddrUse::TcpConnect)?;
        let socket = self.socket(&this)?;
        if socket.pending.is_some() {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        let raw = match std::mem::replace(&mut socket.state, State::Closed) {
            State::Unbound(raw) | State::Bound(raw) => raw,
            other => {
                socket.state = other;
                return Err(ErrorCode::InvalidState.into());
            }
        };
        let mut connect: ConnectFuture = Box::pin(raw.connect(addr));
        // Start it now (the SYN goes out), as `start-connect` means.
        socket.state = match connect
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
        {
            Poll::Ready(result) => State::Connected(result),
            Poll::Pending => State::Connecting(connect),
        };
        socket.pending = Some(Pending::Connect);
        Ok(())
    }

    fn finish_connect(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let socket = self.finish(&this, Pending::Connect)?;
        if let State::Connecting(connect) = &mut socket.state {
            match connect
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop()))
            {
                Poll::Ready(result) => socket.state = State::Connected(result),
                Poll::Pending => return Err(ErrorCode::WouldBlock.into()),
            }
        }
        socket.pending = None;
        let State::Connected(result) = std::mem::replace(&mut socket.state, State::Closed) else {
            return Err(ErrorCode::InvalidState.into());
        };
        let stream = Arc::new(result?);
        let open = Open {
            reader: Reader::new(stream.clone()),
            writer: Writer::new(stream.clone()),
            stream,
            _open: OpenGuard::none(),
        };
        let (input, output) = TcpSocket::take_streams(&open);
        socket.state = State::Open(open);
        let input = self.table.push_child(input, &this)?;
        let output = self.table.push_child(output, &this)?;
        Ok((input, output))
    }

    fn start_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        let requested = match &self.socket(&this)?.state {
            State::Requested(addr) => Some(*addr),
            State::Bound(raw) => {
                let local = raw.local_addr()?;
                self.allowed(local, SocketAddrUse::TcpListen)?;
                None
            }
            _ => return Err(ErrorCode::InvalidState.into()),
        };
        // Join before touching the socket: a failed join leaves it bound.
        let joined = match (requested, self.ctx.cluster.clone()) {
            (Some(addr), Some(cluster)) => Some(cluster.join(addr)?),
            _ => None,
        };
        let socket = self.begin(&this, Pending::Listen)?;
        let backlog = socket.backlog;
        socket.state = match std::mem::replace(&mut socket.state, State::Closed) {
            State::Bound(raw) => match raw.listen(backlog) {
                Ok(listener) => State::Listening(listener),
                Err(e) => {
                    socket.pending = None;
                    return Err(e.into());
                }
            },
            State::Requested(_) => State::Joined(joined.expect("joined above")),
            _ => unreachable!("checked above"),
        };
        Ok(())
    }

    fn finish_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        self.finish(&this, Pending::Listen)?.pending = None;
        Ok(())
    }

    fn accept(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        let socket = self.socket(&this)?;
        if !matches!(socket.state, State::Listening(_) | State::Joined(_))
            || socket.pending.is_some()
        {
            return Err(ErrorCode::InvalidState.into());
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match socket.poll_accept(&mut cx) {
            Poll::Pending => return Err(ErrorCode::WouldBlock.into()),
            Poll::Ready(Err(e)) => return Err(e.into()),
            Poll::Ready(Ok(())) => {}
        }
        let conn = socket.ready.take().expect("poll_accept kept one");
        let accepted = TcpSocket::accepted(conn);
        let State::Open(open) = &accepted.state else {
            unreachable!("accepted sockets are open")
        };
        let (input, output) = TcpSocket::take_streams(open);
        let accepted = self.table.push(accepted)?;
        let input = self.table.push_child(input, &accepted)?;
        let output = self.table.push_child(output, &accepted)?;
        Ok((accepted, input, output))
    }

    fn local_address(&mut self, this: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        let socket = self.socket(&this)?;
        let addr = match &socket.state {
            State::Bound(s) => s.local_addr()?,
            State::Requested(addr) => *addr,
            State::Listening(l) => l.local_addr()?,
            State::Joined(m) => m.local(),
            State::Open(o) => o.stream.local_addr()?,
            _ => return Err(ErrorCode::InvalidState.into()),
        };
        Ok(addr.into())
    }

    fn remote_address(&mut self, this: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        match &self.socket(&this)?.state {
            State::Open(o) => Ok(o.stream.peer_addr()?.into()),
            _ => Err(ErrorCode::InvalidState.into()),
        }
    }

    fn is_listening(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        let socket = self.table.get(&this)?;
        Ok(matches!(
            socket.state,
            State::Listening(_) | State::Joined(_)
        ))
    }

    fn address_family(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&this)?.family)
    }

    fn set_listen_backlog_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let socket = self.socket(&this)?;
        socket.backlog = value.min(u32::MAX.into()) as u32;
        // A listening socket of its own takes the new size at once; a
        // shared listener keeps the host's.
        if let State::Listening(l) = &socket.state {
            socket2::SockRef::from(l).listen(socket.backlog.min(i32::MAX as u32) as i32)?;
        }
        Ok(())
    }

    fn keep_alive_enabled(&mut self, this: Resource<TcpSocket>) -> SocketResult<bool> {
        Ok(self.socket(&this)?.fd()?.keepalive()?)
    }

    fn set_keep_alive_enabled(
        &mut self,
        this: Resource<TcpSocket>,
        value: bool,
    ) -> SocketResult<()> {
        Ok(self.socket(&this)?.fd()?.set_keepalive(value)?)
    }

    fn keep_alive_idle_time(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(nanos(self.socket(&this)?.fd()?.tcp_keepalive_time()?))
    }

    fn set_keep_alive_idle_time(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        let params = socket2::TcpKeepalive::new().with_time(duration(value)?);
        self.set_keepalive_params(&this, params)
    }

    fn keep_alive_interval(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(nanos(self.socket(&this)?.fd()?.tcp_keepalive_interval()?))
    }

    fn set_keep_alive_interval(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        let params = socket2::TcpKeepalive::new().with_interval(duration(value)?);
        self.set_keepalive_params(&this, params)
    }

    fn keep_alive_count(&mut self, this: Resource<TcpSocket>) -> SocketResult<u32> {
        Ok(self.socket(&this)?.fd()?.tcp_keepalive_retries()?)
    }

    fn set_keep_alive_count(&mut self, this: Resource<TcpSocket>, value: u32) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let params = socket2::TcpKeepalive::new().with_retries(value);
        self.set_keepalive_params(&this, params)
    }

    fn hop_limit(&mut self, this: Resource<TcpSocket>) -> SocketResult<u8> {
        let socket = self.socket(&this)?;
        let fd = socket.fd()?;
        let hops = match socket.family {
            IpAddressFamily::Ipv4 => fd.ttl_v4()?,
            IpAddressFamily::Ipv6 => fd.unicast_hops_v6()?,
        };
        Ok(hops.min(255) as u8)
    }

    fn set_hop_limit(&mut self, this: Resource<TcpSocket>, value: u8) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let socket = self.socket(&this)?;
        let fd = socket.fd()?;
        match socket.family {
            IpAddressFamily::Ipv4 => fd.set_ttl_v4(value.into())?,
            IpAddressFamily::Ipv6 => fd.set_unicast_hops_v6(value.into())?,
        }
        Ok(())
    }

    fn receive_buffer_size(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.socket(&this)?.fd()?.recv_buffer_size()? as u64)
    }

    fn set_receive_buffer_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        let size = buffer_size(value)?;
        Ok(self.socket(&this)?.fd()?.set_recv_buffer_size(size)?)
    }

    fn send_buffer_size(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.socket(&this)?.fd()?.send_buffer_size()? as u64)
    }

    fn set_send_buffer_size(&mut self, this: Resource<TcpSocket>, value: u64) -> SocketResult<()> {
        let size = buffer_size(value)?;
        Ok(self.socket(&this)?.fd()?.set_send_buffer_size(size)?)
    }

    fn subscribe(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn shutdown(&mut self, this: Resource<TcpSocket>, how: ShutdownType) -> SocketResult<()> {
        let State::Open(open) = &self.socket(&this)?.state else {
            return Err(ErrorCode::InvalidState.into());
        };
        if matches!(how, ShutdownType::Receive | ShutdownType::Both) {
            open.reader.shutdown();
        }
        if matches!(how, ShutdownType::Send | ShutdownType::Both) {
            open.writer.shutdown();
        }
        Ok(())
    }

    fn drop(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Pollable for TcpSocket {
    async fn ready(&mut self) {
        match &mut self.state {
            State::Connecting(connect) => {
                let result = connect.as_mut().await;
                self.state = State::Connected(result);
            }
            State::Listening(_) | State::Joined(_) => {
                // An accept error shows up again in `accept`.
                let _ = std::future::poll_fn(|cx| self.poll_accept(cx)).await;
            }
            _ => {}
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    d.as_nanos().try_into().unwrap_or(u64::MAX)
}

/// A keep-alive time in nanoseconds as the kernel takes it (whole seconds,
/// at least one).
fn duration(nanos: u64) -> SocketResult<std::time::Duration> {
    if nanos == 0 {
        return Err(ErrorCode::InvalidArgument.into());
    }
    let secs = nanos.div_ceil(1_000_000_000).min(i32::MAX as u64);
    Ok(std::time::Duration::from_secs(secs))
}

fn buffer_size(value: u64) -> SocketResult<usize> {
    if value == 0 {
        return Err(ErrorCode::InvalidArgument.into());
    }
    // The kernel doubles and caps it; a huge request is just the cap.
    Ok(value.min(i32::MAX as u64 / 2) as usize)
}
