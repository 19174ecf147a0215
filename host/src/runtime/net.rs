//! The network capability (`host run --allow-net[=HOST:PORT,...]`): which
//! socket addresses a guest may connect to, bind and listen on.
//!
//! wasmtime-wasi asks one yes/no question per address use
//! (`socket_addr_check`). The answers here:
//!
//! - connect (TCP) and send/receive (UDP): the peer must be listed;
//! - bind and listen: the local address must be listed — except the
//!   wildcard address with port 0, which wasmtime-wasi checks as the
//!   *implicit* bind before every connect or send. Allowing it grants
//!   nothing by itself: every peer is still checked, and a listen on the
//!   wildcard is checked as its own address;
//! - accept: always, since listening on the address was the permission.
//!
//! Name lookup has no per-name hook in wasmtime-wasi: only plain
//! `--allow-net` allows it; with a list, a lookup fails as the resolver
//! failing (`permanent-resolver-failure`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Which addresses a guest may use (`--allow-net`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetPolicy {
    /// No socket at all (the default, as Deno).
    #[default]
    Deny,
    /// Any address, and name lookup.
    All,
    /// Only these addresses; no name lookup.
    Only(Vec<NetRule>),
}

/// One `--allow-net` entry: an IP address and a port, or any port (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRule {
    /// The address (`0.0.0.0` or `::` for any).
    pub ip: IpAddr,
    /// `None` for `HOST:*`.
    pub port: Option<u16>,
}

impl NetRule {
    fn matches(&self, addr: SocketAddr) -> bool {
        canonical(self.ip) == canonical(addr.ip()) && self.port.is_none_or(|p| p == addr.port())
    }
}

/// IPv4-mapped IPv6 addresses are the IPv4 address they map.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl NetPolicy {
    /// Parses one `--allow-net` list entry: `IP:PORT`, `IP:*`, `[IPv6]:PORT`,
    /// `localhost:PORT` (both loopback addresses). Names other than
    /// `localhost` are refused: the check is made on addresses, and a name
    /// resolved now could point elsewhere when the guest connects.
    pub fn parse_entry(text: &str) -> Result<Vec<NetRule>, String> {
        let bad = |why: &str| {
            format!(
                "`{text}`: {why}; use `IP:PORT`, `IP:*`, `[IPv6]:PORT` or `localhost:PORT` \
                 (for example `--allow-net=127.0.0.1:8080,localhost:*`)"
            )
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port = match port {
            "*" => None,
            port => Some(port.parse::<u16>().map_err(|_| bad("bad port"))?),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ips: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
        } else {
            vec![host.parse::<IpAddr>().map_err(|_| {
                bad("not an IP address (host names other than `localhost` are not allowed)")
            })?]
        };
        Ok(ips.into_iter().map(|ip| NetRule { ip, port }).collect())
    }

    /// Whether `use_` of `addr` is allowed.
    pub fn allows(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let rules: &[NetRule] = match self {
            NetPolicy::Deny => &[],
            NetPolicy::All => return true,
            NetPolicy::Only(rules) => rules,
        };
        let listed = || rules.iter().any(|r| r.matches(addr));
        match use_ {
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                (addr.ip().is_unspecified() && addr.port() == 0) || listed()
            }
            SocketAddrUse::TcpAccept => true,
            _ => listed(),
        }
    }

    /// Applies this policy to a guest's WASI context (UDP and name lookup;
    /// TCP is Hive's own, `crate::sockets`, and asks the returned guard).
    /// A denied use is `access-denied` in the guest and one warning on
    /// stderr (the first per process) naming the flag that would allow it.
    pub fn apply(self: &Arc<Self>, wasi: &mut WasiCtxBuilder, who: String) -> Arc<NetGuard> {
        let guard = Arc::new(NetGuard {
            policy: self.clone(),
            who,
            warned: AtomicBool::new(false),
        });
        // UDP is always "enabled" so that every use reaches the address
        // check: a denial then says which flag would help, instead of
        // failing silently at socket creation.
        wasi.allow_udp(true)
            .allow_ip_name_lookup(**self == NetPolicy::All);
        if **self == NetPolicy::All {
            wasi.inherit_network();
        } else {
            let check = guard.clone();
            wasi.socket_addr_check(move |addr, use_| {
                Box::pin(std::future::ready(check.check(addr, use_)))
            });
        }
        guard
    }
}

/// One process's network policy, and whether it was told about a denial.
pub struct NetGuard {
    policy: Arc<NetPolicy>,
    who: String,
    warned: AtomicBool,
}

impl NetGuard {
    /// A guard for `who` under `policy` (a process whose sockets the host
    /// makes on its behalf: a Node worker's listeners).
    pub fn new(policy: Arc<NetPolicy>, who: String) -> Arc<NetGuard> {
        Arc::new(NetGuard {
            policy,
            who,
            warned: AtomicBool::new(false),
        })
    }

    /// Whether `use_` of `addr` is allowed; the first denial logs which
    /// `--allow-net` entry would allow it.
    pub fn check(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let allowed = self.policy.allows(addr, use_);
        if !allowed && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{} may not {} `{addr}`: allow it with `--allow-net={}` (or `--allow-net` for any address)",
                self.who,
                describe(use_),
                suggestion(addr, use_),
            );
        }
        allowed
    }
}

fn describe(use_: SocketAddrUse) -> &'static str {
    match use_ {
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => "bind",
        SocketAddrUse::TcpListen => "listen on",
        SocketAddrUse::TcpAccept => "accept from",
        SocketAddrUse::TcpConnect => "connect to",
        SocketAddrUse::UdpSend => "send to",
        SocketAddrUse::UdpReceive => "receive from",
    }
}

/// The `--allow-net` entry that would allow `use_` of `addr`: any port
/// for an ephemeral bind, and for a listen (a denied listen is always on a
/// port the kernel chose: a listed bind makes its listen allowed).
fn suggestion(addr: SocketAddr, use_: SocketAddrUse) -> String {
    let any_port = addr.port() == 0 || matches!(use_, SocketAddrUse::TcpListen);
    match addr {
        SocketAddr::V4(a) if any_port => format!("{}:*", a.ip()),
        SocketAddr::V6(a) if any_port => format!("[{}]:*", a.ip()),
        addr => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(entries: &[&str]) -> NetPolicy {
        NetPolicy::Only(
            entries
                .iter()
                .flat_map(|e| NetPolicy::parse_entry(e).unwrap())
                .collect(),
        )
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parse() {
        assert_eq!(
            NetPolicy::parse_entry("127.0.0.1:80").unwrap(),
            vec![NetRule {
                ip: Ipv4Addr::LOCALHOST.into(),
                port: Some(80)
            }]
        );
        assert_eq!(NetPolicy::parse_entry("localhost:*").unwrap().len(), 2);
        assert_eq!(
            NetPolicy::parse_entry("[::1]:9").unwrap()[0].ip,
            IpAddr::from(Ipv6Addr::LOCALHOST)
        );
        for bad in [
            "127.0.0.1",
            "example.com:80",
            "1.2.3.4:99999",
            ":80",
            "1.2.3.4:x",
        ] {
            assert!(NetPolicy::parse_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_listed_peers() {
        let p = only(&["127.0.0.1:8080"]);
        assert!(p.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        assert!(p.allows(addr("[::ffff:127.0.0.1]:8080"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("127.0.0.1:8081"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("10.0.0.1:8080"), SocketAddrUse::UdpSend));
        // The implicit bind before a connect, and nothing more.
        assert!(p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("[::]:0"), SocketAddrUse::UdpBind));
        assert!(!p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("127.0.0.1:0"), SocketAddrUse::TcpBind));
        let any_port = only(&["127.0.0.1:*"]);
        assert!(any_port.allows(addr("127.0.0.1:0"), SocketAddrUse::TcpBind));
        assert!(any_port.allows(addr("127.0.0.1:41234"), SocketAddrUse::TcpListen));
        assert!(!NetPolicy::Deny.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        // Denied at the connect, so the warning names the real target.
        assert!(NetPolicy::Deny.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(!NetPolicy::Deny.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert!(NetPolicy::All.allows(addr("8.8.8.8:53"), SocketAddrUse::UdpSend));
    }
}
