//! `impl Host` for `hive:process/http`, over the process's network view
//! (`crate::sockets`): the same `--allow-net` check and, in a cluster
//! worker, the same shared listeners as a `wasi:sockets` listen.

use super::{Server, ServerState, start_accepting, status, whole_response};
use crate::bindings::hive::process::http::{Host, ServerInfo};
use crate::bindings::{ErrorCode, HostError};
use crate::runtime::listen::{Key, Policy, Registry};
use crate::sockets::SocketsView;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::p2::types::HostResponseOutparam;

crate::types::types_host!(SocketsView<'_>);

impl Host for SocketsView<'_> {
    fn listen(&mut self, address: String, port: u16) -> Result<ServerInfo, HostError> {
        let ip: IpAddr = if address.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST.into()
        } else {
            address.parse().map_err(|_| ErrorCode::InvalidArgument)?
        };
        let addr = SocketAddr::new(ip, port);
        let net = &self.ctx.net;
        if !net.check(addr, SocketAddrUse::TcpBind) || !net.check(addr, SocketAddrUse::TcpListen) {
            return Err(ErrorCode::Denied.into());
        }
        let joined = match &self.ctx.cluster {
            Some(worker) if worker.shares() => worker.join(addr),
            // A listener of its own: a registry of one.
            _ => Arc::new(Registry::default())
                .join(
                    Key {
                        cluster: self.ctx.me.pid,
                        requested: addr,
                    },
                    Policy::RoundRobin,
                    0,
                )
                .map(Arc::new),
        };
        let membership = joined.map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => ErrorCode::AddressInUse,
            std::io::ErrorKind::PermissionDenied => ErrorCode::Denied,
            _ => ErrorCode::InvalidArgument,
        })?;
        let servers = &mut self.ctx.servers;
        // Forget the servers that are done (closed and drained): a guest
        // that listens and closes in a loop does not grow this map.
        servers.open.retain(|_, s| s.state.active());
        servers.next += 1;
        let id = servers.next;
        let port = membership.local().port();
        let state = ServerState::new(self.ctx.me.clone(), id);
        // On the process's own task, with the connections it accepts.
        let accept = start_accepting(state.clone(), membership.clone());
        servers.open.insert(
            id,
            Server {
                membership: Some(membership),
                state,
                accept,
            },
        );
        Ok(ServerInfo { id, port })
    }

    fn close(&mut self, id: u32) -> wasmtime::Result<()> {
        // It drains (its connections finish) and then stops counting.
        if let Some(membership) = self
            .ctx
            .servers
            .open
            .get_mut(&id)
            .and_then(|s| s.membership.take())
        {
            membership.leave();
        }
        Ok(())
    }

    fn is_listening(&mut self, id: u32) -> wasmtime::Result<bool> {
        Ok(self
            .ctx
            .servers
            .open
            .get(&id)
            .is_some_and(|s| s.state.active()))
    }

    fn respond(
        &mut self,
        response: Resource<HostResponseOutparam>,
        code: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Result<(), HostError> {
        let outparam = self.table.delete(response)?;
        match whole_response(code, headers, body) {
            Some(response) => {
                (outparam.send)(Ok(response));
                Ok(())
            }
            None => {
                (outparam.send)(Ok(status(500)));
                Err(ErrorCode::InvalidArgument.into())
            }
        }
    }
}
