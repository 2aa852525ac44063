//! [`NodeBuilder`]: every setting of a node, validated as a whole by [`start`](NodeBuilder::start).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use pnet_mesh_crypto::rng::OsRng;
use pnet_mesh_crypto::{PresharedKey, PrivateKey, PublicKey};
use pnet_mesh_shard::{Backend, Runtime, RuntimeConfig};

use super::{Node, NodeError};
use crate::PeerId;
use crate::config::{ConfigError, EndpointConfig, PeerConfig};
use crate::mesh::channel::ChannelConfig;
use crate::mesh::discovery::{Discovery, DiscoveryConfig};
use crate::mesh::relay::{RELAY_OVERHEAD, RelayConfig, RelayTable};
use crate::proto::ControlPlane;
use crate::proto::constants::{DEFAULT_EVENT_CAPACITY, DEFAULT_MTU, ProtocolTimes};
use crate::runtime::channels::ChannelHub;
use crate::runtime::discovery::{DiscoveryHub, wall_us};
use crate::runtime::{self, RelaySetup, STEERING, Shared};

/// The UDP port our [`Node::send_to`] sends from and [`Node::recv_from`] receives on, unless set.
pub const DEFAULT_DATAGRAM_PORT: u16 = 51_800;

/// The mesh-side UDP port of message channels, unless set.
pub const DEFAULT_CHANNEL_PORT: u16 = 51_801;

/// Packets waiting for the application, all data shards together, unless set.
pub const DEFAULT_RECEIVE_QUEUE: usize = 1024;

/// Settings of a [`Node`]; [`start`](Self::start) validates them and starts the shards.
#[derive(Debug)]
pub struct NodeBuilder {
    private_key: PrivateKey,
    listen: Vec<SocketAddr>,
    mesh_addresses: Vec<IpAddr>,
    mtu: u16,
    data_shards: Option<usize>,
    cores: Option<Vec<usize>>,
    pin_threads: bool,
    backend: Backend,
    peers: Vec<PeerConfig>,
    times: ProtocolTimes,
    steering_program: bool,
    receive_queue: usize,
    event_capacity: usize,
    datagram_port: u16,
    channel_port: u16,
    channels: ChannelConfig,
    discovery: Option<DiscoveryConfig>,
    relay: RelayConfig,
    relay_routes: Vec<(PublicKey, PublicKey)>,
    gso_gro: bool,
}

impl NodeBuilder {
    pub(super) fn new(private_key: PrivateKey) -> Self {
        NodeBuilder {
            private_key,
            listen: Vec::new(),
            mesh_addresses: Vec::new(),
            mtu: DEFAULT_MTU,
            data_shards: None,
            cores: None,
            pin_threads: false,
            backend: Backend::Auto,
            peers: Vec::new(),
            times: ProtocolTimes::default(),
            steering_program: true,
            receive_queue: DEFAULT_RECEIVE_QUEUE,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            datagram_port: DEFAULT_DATAGRAM_PORT,
            channel_port: DEFAULT_CHANNEL_PORT,
            channels: ChannelConfig::default(),
            discovery: None,
            relay: RelayConfig::default(),
            relay_routes: Vec::new(),
            gso_gro: true,
        }
    }

    /// Adds a UDP address to listen on; at least one is required. Each address has its own sockets
    /// (IPv6 ones are IPv6-only), and a datagram leaves from the one of its destination's family:
    /// listen on `0.0.0.0:P` and `[::]:P` for both. Port 0 picks a free port, and a port 0 after the
    /// first address takes the first one's port; read them back with [`Node::local_addrs`].
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push(addr);
        self
    }

    /// Adds one of the node's own mesh addresses (the source of its datagrams; at most one per family
    /// is used).
    pub fn mesh_address(mut self, addr: IpAddr) -> Self {
        self.mesh_addresses.push(addr);
        self
    }

    /// The largest inner packet, default 1420 (wg-quick `MTU`).
    pub fn mtu(mut self, mtu: u16) -> Self {
        self.mtu = mtu;
        self
    }

    /// Data shards (threads that seal and open); default: one per available core.
    pub fn data_shards(mut self, n: usize) -> Self {
        self.data_shards = Some(n);
        self
    }

    /// Pins the shards to these cores, control shard first (default: not pinned).
    pub fn cores(mut self, cores: Vec<usize>) -> Self {
        self.cores = Some(cores);
        self.pin_threads = true;
        self
    }

    /// The I/O backend: io_uring when the probe passes (default), or forced.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Adds a peer; its [`PeerId`](crate::PeerId) is its position in the order of these calls.
    pub fn peer(mut self, peer: PeerConfig) -> Self {
        self.peers.push(peer);
        self
    }

    /// The protocol's time constants (tests shorten them with [`ProtocolTimes::scaled`]).
    pub fn protocol_times(mut self, times: ProtocolTimes) -> Self {
        self.times = times;
        self
    }

    /// Whether to attach the reuseport steering program (default true). Without it every datagram
    /// still reaches its owning shard, one channel hop later.
    pub fn steering_program(mut self, attach: bool) -> Self {
        self.steering_program = attach;
        self
    }

    /// Packets that may wait for the application before new ones are dropped (default 1024).
    pub fn receive_queue(mut self, n: usize) -> Self {
        self.receive_queue = n;
        self
    }

    /// Events that may wait for the application before new ones are dropped (default 1024).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n;
        self
    }

    /// The mesh-side UDP port of [`Node::send_to`] and [`Node::recv_from`] (default 51800).
    pub fn datagram_port(mut self, port: u16) -> Self {
        self.datagram_port = port;
        self
    }

    /// The mesh-side UDP port message channels use (default 51801); packets to it never reach
    /// [`Node::recv_from`] or [`Node::try_recv_udp`].
    pub fn channel_port(mut self, port: u16) -> Self {
        self.channel_port = port;
        self
    }

    /// Limits of message channels: maximum message, reassembly memory per peer, send buffer,
    /// window and channels per peer (the fragment size follows the MTU).
    pub fn channels(mut self, config: ChannelConfig) -> Self {
        self.channels = config;
        self
    }

    /// Joins a mesh: discovery with `mesh_psk` and the default settings (see
    /// [`discovery`](Self::discovery)).
    pub fn mesh_psk(self, mesh_psk: PresharedKey) -> Self {
        self.discovery(DiscoveryConfig::new(mesh_psk))
    }

    /// Crypto discovery: the node tells its peers about itself and learns the other members of the
    /// mesh from them, adding each as a peer keyed with the mesh PSK and handshaking with it directly.
    /// Configured peers with no PSK of their own use the mesh PSK too, so a node with a wrong one
    /// completes no handshake at all. Off unless set.
    pub fn discovery(mut self, config: DiscoveryConfig) -> Self {
        self.discovery = Some(config);
        self
    }

    /// Relaying: the relay port, the hop limit of frames this node starts, and how many frames a
    /// second one peer may push through it. A node forwards frames only between members it knows
    /// (its peers); see [`crate::mesh::relay`].
    pub fn relay(mut self, config: RelayConfig) -> Self {
        self.relay = config;
        self
    }

    /// A static route: frames for `member` go to the peer `via` (a neighbour), ahead of any route
    /// discovery learns. With routes from several nodes a configuration can contain a loop; the hop
    /// limit of every frame bounds it.
    pub fn relay_route(mut self, member: PublicKey, via: PublicKey) -> Self {
        self.relay_routes.push((member, via));
        self
    }

    /// Whether to use UDP GSO/GRO where the kernel has them (default true).
    pub fn gso_gro(mut self, on: bool) -> Self {
        self.gso_gro = on;
        self
    }

    /// Validates every setting, binds the sockets and starts the shards.
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the first bad field and its value (`peers[2].endpoint =
    /// "10.0.0.1:99999": …`), or [`NodeError::Start`] when a socket or the backend cannot be set up.
    pub fn start(self) -> Result<Node, NodeError> {
        if self.listen.is_empty() {
            return Err(ConfigError::invalid("listen", "[]", "needs at least one address").into());
        }
        if self.datagram_port == 0 {
            return Err(ConfigError::invalid("datagram_port", 0, "must not be 0").into());
        }
        if self.channel_port == 0 || self.channel_port == self.datagram_port {
            return Err(ConfigError::invalid(
                "channel_port",
                self.channel_port,
                "must be non-zero and differ from datagram_port",
            )
            .into());
        }
        if let Some(d) = &self.discovery {
            d.validate()?;
            if d.port == self.datagram_port || d.port == self.channel_port {
                return Err(ConfigError::invalid(
                    "discovery.port",
                    d.port,
                    "must differ from datagram_port and channel_port",
                )
                .into());
            }
        }
        self.relay.validate()?;
        let ports = [self.datagram_port, self.channel_port]
            .into_iter()
            .chain(self.discovery.as_ref().map(|d| d.port));
        if ports.clone().any(|p| p == self.relay.port) {
            return Err(ConfigError::invalid(
                "relay.port",
                self.relay.port,
                "must differ from datagram_port, channel_port and discovery.port",
            )
            .into());
        }
        let channels = ChannelConfig {
            max_fragment: ChannelConfig::fragment_for_mtu(self.mtu),
            ..self.channels
        };
        channels.validate()?;
        if self.receive_queue == 0 {
            return Err(ConfigError::invalid("receive_queue", 0, "must be at least 1").into());
        }
        for (i, a) in self.mesh_addresses.iter().enumerate() {
            if a.is_unspecified() || a.is_multicast() {
                return Err(ConfigError::invalid(
                    format!("mesh_addresses[{i}]"),
                    a,
                    "must be a unicast address",
                )
                .into());
            }
        }
        let data_shards = self.data_shards.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(254)
        });
        let shards_u8 = u8::try_from(data_shards)
            .ok()
            .filter(|n| (1..=254).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid("data_shards", data_shards, "must be between 1 and 254")
            })?;
        let mut config = EndpointConfig::builder(self.private_key)
            .mtu(self.mtu)
            .data_shards(shards_u8)
            .protocol_times(self.times)
            .event_capacity(self.event_capacity);
        let mut configured = Vec::with_capacity(self.peers.len());
        for (i, mut peer) in self.peers.into_iter().enumerate() {
            if let Some(d) = &self.discovery
                && peer.preshared_key.is_none()
            {
                peer.preshared_key = Some(d.mesh_psk.clone());
            }
            let peer = resolve_endpoint(i, peer)?;
            configured.push((
                PeerId(i as u32),
                peer.public_key,
                peer.allowed_ips.clone(),
                peer.endpoint.is_some(),
            ));
            config = config.peer(peer);
        }
        let config = Arc::new(config.build()?);
        let public_key = config.public_key();
        let mtu = usize::from(config.mtu());
        let now = Instant::now();
        let discovery = self.discovery.map(|d| {
            let mesh_psk = d.mesh_psk.clone();
            // Room for the IPv6 and UDP headers: a message fits either family.
            let max_message = mtu.saturating_sub(48);
            let mut discovery = Discovery::new(
                public_key,
                &self.mesh_addresses,
                d,
                max_message,
                now,
                wall_us(),
            );
            for (_, key, allowed_ips, reachable) in &configured {
                discovery.add_configured(now, *key, allowed_ips.clone(), *reachable);
            }
            let ids = configured
                .iter()
                .map(|(id, key, _, _)| (*id, *key))
                .collect();
            (DiscoveryHub::new(discovery, mesh_psk), ids)
        });
        let control = ControlPlane::new(config, Box::new(OsRng), now);
        let mut relay = RelayTable::new(
            public_key,
            self.mesh_addresses.clone(),
            self.relay.port,
            self.relay.hop_limit,
        );
        for (id, key, allowed_ips) in control.peer_keys() {
            relay.set_peer(id, key, allowed_ips);
        }
        relay.set_routes(self.relay_routes.iter().copied());
        let shared = Arc::new(
            Shared::new(
                data_shards,
                self.receive_queue,
                self.event_capacity,
                control.routes().clone(),
                self.channel_port,
                discovery.as_ref().map(|(hub, _)| hub.port()),
                RelaySetup {
                    table: relay,
                    config: self.relay,
                    static_routes: self.relay_routes,
                },
            )
            .map_err(|source| NodeError::Io {
                what: "create the readiness eventfd",
                source,
            })?,
        );
        let mut handlers = runtime::handlers(control, &shared).into_iter();
        let mut runtime_config = RuntimeConfig::new(self.listen)
            .data_shards(data_shards)
            .backend(self.backend)
            .steering(STEERING)
            .attach_steering_program(self.steering_program)
            .max_datagram((mtu + 64 + RELAY_OVERHEAD).max(1500))
            .gso(self.gso_gro)
            .gro(self.gso_gro)
            .pin_threads(self.pin_threads);
        if let Some(cores) = self.cores {
            runtime_config = runtime_config.cpus(cores);
        }
        let runtime = Runtime::start(runtime_config, move |_| {
            // `start` asks for shards in order, control first: exactly the handlers built above.
            handlers
                .next()
                .expect("one handler per shard, built for the same shard count")
        })?;
        let _ = shared.pool.set(runtime.buffer_pool());
        tracing::info!(
            backend = %runtime.backend(),
            data_shards,
            steering_program = runtime.report().steering_program,
            listen = ?runtime.local_addrs(),
            "node started"
        );
        super::new_node(
            runtime,
            shared,
            public_key,
            self.mesh_addresses,
            self.datagram_port,
            mtu,
            data_shards,
            Arc::new(ChannelHub::new(channels)),
            discovery,
        )
    }
}

/// Resolves a peer's `endpoint_name` into its endpoint (the first address), naming the field on
/// failure.
pub(crate) fn resolve_endpoint(
    index: usize,
    mut peer: PeerConfig,
) -> Result<PeerConfig, NodeError> {
    let Some(name) = peer.endpoint_name.take() else {
        return Ok(peer);
    };
    let field = format!("peers[{index}].endpoint");
    let (host, port) = name
        .rsplit_once(':')
        .ok_or_else(|| ConfigError::invalid(&field, &name, "needs host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ConfigError::invalid(&field, &name, "port out of range"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| ConfigError::invalid(&field, &name, format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::invalid(&field, &name, "resolves to no address"))?;
    peer.endpoint = Some(addr);
    Ok(peer)
}
