//! Sockets: for each listen address a SO_REUSEPORT group with fixed positions (control first, data
//! shard k at k + 1), behind a plain bind probe so that a second node never silently joins the group.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};

use crate::backend::ShardSockets;
use crate::config::{RuntimeConfig, StartError};

/// What the kernel granted, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Granted {
    pub(crate) recv_buffer: usize,
    pub(crate) send_buffer: usize,
}

/// The sockets of every shard, and the addresses actually bound.
#[derive(Debug)]
pub(crate) struct Groups {
    pub(crate) per_shard: Vec<ShardSockets>,
    pub(crate) locals: Vec<SocketAddr>,
    pub(crate) granted: Granted,
    pub(crate) steering_attached: bool,
}

fn socket_err(addr: SocketAddr, what: &'static str) -> impl FnOnce(io::Error) -> StartError {
    move |source| StartError::Socket { addr, what, source }
}

/// Binds a plain socket (no SO_REUSEPORT) to `addr`: fails with [`StartError::AddrInUse`] if anyone
/// holds it, and resolves port 0 to a free port. IPv6 probes are IPv6-only, like the group after
/// them, so that an IPv4 group on the same port does not count as taking it.
fn probe(addr: SocketAddr) -> Result<SocketAddr, StartError> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))
        .map_err(socket_err(addr, "socket"))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)
            .map_err(socket_err(addr, "IPV6_V6ONLY"))?;
    }
    match s.bind(&addr.into()) {
        Ok(()) => s
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| StartError::Socket {
                addr,
                what: "read the probed address",
                source: io::Error::other("not an IP address"),
            }),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(StartError::AddrInUse { addr }),
        Err(e) => Err(StartError::Socket {
            addr,
            what: "bind",
            source: e,
        }),
    }
}

fn member(addr: SocketAddr, config: &RuntimeConfig) -> Result<(Socket, Granted), StartError> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))
        .map_err(socket_err(addr, "socket"))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)
            .map_err(socket_err(addr, "IPV6_V6ONLY"))?;
    }
    s.set_reuse_port(true)
        .map_err(socket_err(addr, "SO_REUSEPORT"))?;
    // The kernel caps these at net.core.rmem_max/wmem_max (and doubles what it grants); report it.
    let _ = s.set_recv_buffer_size(config.socket_buffer);
    let _ = s.set_send_buffer_size(config.socket_buffer);
    let granted = Granted {
        recv_buffer: s.recv_buffer_size().unwrap_or(0),
        send_buffer: s.send_buffer_size().unwrap_or(0),
    };
    s.set_nonblocking(true)
        .map_err(socket_err(addr, "O_NONBLOCK"))?;
    s.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            StartError::AddrInUse { addr }
        } else {
            StartError::Socket {
                addr,
                what: "bind",
                source: e,
            }
        }
    })?;
    Ok((s, granted))
}

/// Builds one group per listen address for `shards` shards (position = shard index) and attaches the
/// steering program when configured.
pub(crate) fn build(
    config: &RuntimeConfig,
    shards: usize,
    data_shards: usize,
) -> Result<Groups, StartError> {
    let mut per_shard: Vec<ShardSockets> = (0..shards)
        .map(|_| ShardSockets {
            sockets: Vec::new(),
            locals: Vec::new(),
        })
        .collect();
    let mut locals = Vec::new();
    let mut granted = Granted::default();
    let mut steering_attached = config.steering.is_some() && config.attach_steering_program;
    for &requested in &config.listen {
        // A port 0 after the first address takes the port the first was given, so that a node on
        // 0.0.0.0:0 and [::]:0 listens on one port for both families, as WireGuard does.
        let requested = match locals.first() {
            Some(first) if requested.port() == 0 => {
                SocketAddr::new(requested.ip(), SocketAddr::port(first))
            }
            _ => requested,
        };
        // The probe socket closes before the group binds: with port 0 the resolved port is reused.
        let addr = probe(requested)?;
        let mut group = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (s, g) = member(addr, config)?;
            granted = g;
            group.push(s);
        }
        if let (Some(rule), true, Some(first)) = (
            config.steering,
            config.attach_steering_program,
            group.first(),
        ) && let Err(e) = crate::steer::attach(first, &rule, data_shards)
        {
            warn!(error = %e, %addr, "cBPF steering program not attached; ownership channels carry every datagram");
            steering_attached = false;
        }
        for (shard, s) in group.into_iter().enumerate() {
            let udp: UdpSocket = s.into();
            let local = udp
                .local_addr()
                .map_err(socket_err(addr, "local address"))?;
            if let Some(slot) = per_shard.get_mut(shard) {
                slot.sockets.push(udp);
                slot.locals.push(local);
            }
        }
        info!(%addr, shards, recv_buffer = granted.recv_buffer, send_buffer = granted.send_buffer, "listening");
        locals.push(addr);
    }
    Ok(Groups {
        per_shard,
        locals,
        granted,
        steering_attached,
    })
}
