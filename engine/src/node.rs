//! [`Node`]: the protocol core on the shard runtime, behind one handle an application keeps.
//!
//! Datagrams travel as IPv4/IPv6 UDP packets between mesh addresses, so a stock WireGuard peer's
//! ordinary UDP socket talks to a node; raw IP packets can go in and out too (for a TUN bridge). Every
//! queue is bounded: the `try_` calls return [`NodeError::WouldBlock`], the blocking ones wait, and
//! [`Node::readiness`] is a descriptor for the caller's own event loop.

mod builder;
mod channels;
mod discovery;
mod error;
mod relay;
pub(crate) mod transmit;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh_crypto::PublicKey;
use pnet_mesh_shard::{BackendKind, PoolMemory, Runtime, RuntimeReport, ShardStatsSnapshot};

pub use builder::NodeBuilder;
pub use error::NodeError;
pub use relay::RelayStats;
use transmit::Transmitter;

use crate::PeerId;
use crate::config::PeerConfig;
use crate::event::Event;
use crate::proto::gso::GsoPacket;
use crate::proto::{DropCounters, SendError, ip};
use crate::runtime::channels::ChannelDriver;
use crate::runtime::discovery::{DiscoveryDriver, DiscoveryHub};
use crate::runtime::{Command, ControlRequest, Shared};
use crate::stats::PeerStats;

/// A running mesh node. Dropping it stops the shards.
///
/// ```no_run
/// use pnet_mesh::{Node, PeerConfig};
/// use pnet_mesh::crypto::{PrivateKey, PublicKey, rng::OsRng};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let peer_key = PublicKey::from_base64("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=")?;
/// let node = Node::builder(PrivateKey::generate(&mut OsRng))
///     .listen("0.0.0.0:0".parse()?)
///     .mesh_address("10.7.0.1".parse()?)
///     .peer(
///         PeerConfig::new(peer_key)
///             .endpoint("192.0.2.7:51820".parse()?)
///             .allowed_ip("10.7.0.2/32".parse()?),
///     )
///     .start()?;
/// node.send_to(b"hello", "10.7.0.2:9000".parse()?)?;
/// let mut buf = [0u8; 1500];
/// let (n, from) = node.recv_from(&mut buf)?;
/// println!("{n} bytes from {from}");
/// # Ok(())
/// # }
/// ```
pub struct Node {
    // Before the runtime: the drivers stop (on drop too) while the shards still run.
    discovery: Option<DiscoveryDriver>,
    channels: ChannelDriver,
    runtime: Runtime<Command>,
    tx: Transmitter,
    shared: Arc<Shared>,
    public_key: PublicKey,
    mesh_addresses: Vec<IpAddr>,
    datagram_port: u16,
    mtu: usize,
    data_shards: usize,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("public_key", &self.public_key)
            .field("listen", &self.runtime.local_addrs())
            .field("backend", &self.runtime.backend())
            .field("data_shards", &self.data_shards)
            .finish_non_exhaustive()
    }
}

/// An event with the wall-clock time the node saw it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeEvent {
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub event: Event,
}

/// A UDP datagram received from the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// Payload bytes written to the caller's buffer.
    pub len: usize,
    /// The sender's mesh address and port.
    pub from: SocketAddr,
    /// The destination port.
    pub to_port: u16,
    /// The peer whose session carried it.
    pub peer: PeerId,
}

/// How far [`Node::try_send_gso`] got through a super-packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GsoProgress {
    /// The first segment not yet sent.
    pub next: usize,
    /// How many segments the super-packet splits into.
    pub segments: usize,
}

impl GsoProgress {
    /// Whether every segment was sent.
    pub fn is_done(&self) -> bool {
        self.next >= self.segments
    }
}

/// Counters of one data shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataShardStats {
    /// Transport messages opened (authenticated) by this shard.
    pub opened: u64,
    /// Transport messages sealed by this shard.
    pub sealed: u64,
    /// Packets handed to the application.
    pub delivered: u64,
    /// Packets dropped because the application's receive queue was full.
    pub delivery_dropped: u64,
    /// Datagrams received here but owned by another shard, moved to it.
    pub misdelivered: u64,
    /// Application packets not sent (no endpoint, send batch full).
    pub send_failed: u64,
    /// Notices lost to a full channel.
    pub channel_dropped: u64,
    /// Retired receiver indices the control plane was not told of (they are freed with the peer).
    pub retirements_lost: u64,
}

/// What [`Node::stats`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeStats {
    /// The I/O backend in use.
    pub backend: BackendKind,
    /// Why io_uring is not in use, when it was wanted.
    pub io_uring_unavailable: Option<String>,
    /// Whether the reuseport steering program is attached.
    pub steering_program: bool,
    /// Per-peer counters, as `wg show` prints them.
    pub peers: Vec<(PeerId, PeerStats)>,
    /// Drops by reason, all shards together.
    pub drops: DropCounters,
    /// Runtime counters per shard, control shard first.
    pub shards: Vec<ShardStatsSnapshot>,
    /// Protocol counters per data shard.
    pub data_shards: Vec<DataShardStats>,
    /// Events lost because the application did not take them in time.
    pub events_dropped: u64,
    /// Commands for data shards (keypairs, keepalives) the control shard could neither deliver nor
    /// hold because the data shards' channels stayed full.
    pub control_backlog_dropped: u64,
    /// Whether the control shard considers itself under load (cookies required).
    pub under_load: bool,
    /// Cookie replies sent: one per initiation answered under load, never more.
    pub cookie_replies_sent: u64,
    /// Sources the handshake rate limiter tracks (bounded by its capacity).
    pub rate_limiter_entries: u64,
    /// The packet buffer pools: address space reserved at start, and how much of it traffic has
    /// made resident (it grows as deeper bursts touch more buffers, never past the reservation).
    pub buffer_pools: PoolMemory,
}

impl Node {
    /// Starts configuring a node that holds `private_key`.
    pub fn builder(private_key: pnet_mesh_crypto::PrivateKey) -> NodeBuilder {
        NodeBuilder::new(private_key)
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The bound UDP addresses, one per listen address (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.runtime.local_addrs()
    }

    /// The node's mesh addresses.
    pub fn mesh_addresses(&self) -> &[IpAddr] {
        &self.mesh_addresses
    }

    /// The I/O backend in use.
    pub fn backend(&self) -> BackendKind {
        self.runtime.backend()
    }

    /// What the runtime set up: backend, offloads, steering program, socket buffers, cores.
    pub fn report(&self) -> &RuntimeReport {
        self.runtime.report()
    }

    /// The mesh-side UDP port of [`send_to`](Self::send_to) and [`recv_from`](Self::recv_from).
    pub fn datagram_port(&self) -> u16 {
        self.datagram_port
    }

    /// The largest UDP payload [`send_to`](Self::send_to) takes towards `to`.
    pub fn max_datagram(&self, to: IpAddr) -> usize {
        self.tx.max_datagram(to)
    }

    // ---- datagrams -----------------------------------------------------------------------------------

    /// Sends `payload` as a UDP datagram from our mesh address and datagram port to `to`, blocking
    /// while the owning shard's queue is full.
    ///
    /// # Errors
    /// [`NodeError::TooLarge`], [`NodeError::NoRoute`], [`NodeError::NoMeshAddress`].
    pub fn send_to(&self, payload: &[u8], to: SocketAddr) -> Result<(), NodeError> {
        self.blocking(|| self.try_send_to(payload, to))
    }

    /// Like [`send_to`](Self::send_to), but returns [`NodeError::WouldBlock`] instead of waiting.
    ///
    /// # Errors
    /// As [`send_to`](Self::send_to), and [`NodeError::WouldBlock`].
    pub fn try_send_to(&self, payload: &[u8], to: SocketAddr) -> Result<(), NodeError> {
        self.try_send_udp(self.datagram_port, to, payload)
    }

    /// Sends `payload` from our mesh address and `from_port` to `to` (for forwarders that use many
    /// ports), blocking while the owning shard's queue is full.
    ///
    /// # Errors
    /// As [`send_to`](Self::send_to).
    pub fn send_udp(
        &self,
        from_port: u16,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), NodeError> {
        self.blocking(|| self.try_send_udp(from_port, to, payload))
    }

    /// Like [`send_udp`](Self::send_udp), but returns [`NodeError::WouldBlock`] instead of waiting.
    ///
    /// # Errors
    /// As [`try_send_to`](Self::try_send_to).
    pub fn try_send_udp(
        &self,
        from_port: u16,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), NodeError> {
        self.tx.try_send_udp(from_port, to, payload)
    }

    /// Receives the next UDP datagram addressed to our datagram port, blocking until one arrives.
    /// Packets that are not UDP to that port are dropped (use [`try_recv_udp`](Self::try_recv_udp) or
    /// [`try_recv_packet`](Self::try_recv_packet) to see every packet).
    ///
    /// # Errors
    /// [`NodeError::TooLarge`] if `buf` is too small for the datagram (which is then dropped).
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NodeError> {
        self.blocking_recv(None, || self.try_recv_from(buf))
    }

    /// Like [`recv_from`](Self::recv_from), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`NodeError::TimedOut`], or as [`recv_from`](Self::recv_from).
    pub fn recv_from_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, SocketAddr), NodeError> {
        self.blocking_recv(Some(timeout), || self.try_recv_from(buf))
    }

    /// Like [`recv_from`](Self::recv_from), but returns [`NodeError::WouldBlock`] when nothing waits.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from), and [`NodeError::WouldBlock`].
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NodeError> {
        loop {
            let r = self.try_recv_udp(buf)?;
            if r.to_port == self.datagram_port {
                return Ok((r.len, r.from));
            }
        }
    }

    /// The next UDP datagram to any port of ours, with its destination port and peer.
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] when nothing waits; [`NodeError::TooLarge`] when `buf` is too small.
    pub fn try_recv_udp(&self, buf: &mut [u8]) -> Result<Received, NodeError> {
        loop {
            let delivery = self.shared.deliveries.pop().ok_or(NodeError::WouldBlock)?;
            let packet = delivery.buf.as_slice().get(delivery.range.clone());
            let outcome = packet.and_then(ip::parse_udp).map(|udp| {
                if udp.payload.len() > buf.len() {
                    return Err(NodeError::TooLarge {
                        len: udp.payload.len(),
                        max: buf.len(),
                    });
                }
                if let Some(dst) = buf.get_mut(..udp.payload.len()) {
                    dst.copy_from_slice(udp.payload);
                }
                Ok(Received {
                    len: udp.payload.len(),
                    from: udp.src,
                    to_port: udp.dst.port(),
                    peer: delivery.peer,
                })
            });
            self.shared.release(delivery.buf);
            match outcome {
                Some(result) => return result,
                // Not UDP (or a fragment): nothing for a datagram reader.
                None => continue,
            }
        }
    }

    // ---- raw IP packets ------------------------------------------------------------------------------

    /// Sends one IPv4 or IPv6 packet to the peer its destination routes to, without waiting.
    ///
    /// # Errors
    /// [`NodeError::TooLarge`], [`NodeError::NoRoute`], [`NodeError::InvalidPacket`],
    /// [`NodeError::WouldBlock`].
    pub fn try_send_packet(&self, packet: &[u8]) -> Result<(), NodeError> {
        self.try_send_with(|dst| {
            dst.get_mut(..packet.len())?.copy_from_slice(packet);
            Some(packet.len())
        })
    }

    /// Sends a batch of IP packets; returns how many were queued (stops at the first that would block,
    /// skips and counts none silently: an invalid packet ends the batch with its error).
    ///
    /// # Errors
    /// The error of the first packet that could not be queued, if no packet was.
    pub fn try_send_packets<'a>(
        &self,
        packets: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize, NodeError> {
        let mut sent = 0;
        for p in packets {
            match self.try_send_packet(p) {
                Ok(()) => sent += 1,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(sent)
    }

    /// Sends a GSO super-packet (one TCP or UDP packet carrying many segments of payload, as a TUN
    /// device with offloads hands them out) as ordinary packets of at most `segment_size` payload bytes,
    /// blocking while a queue is full. Returns the number of segments sent. See [`GsoPacket`] for the
    /// header fixups.
    ///
    /// # Errors
    /// [`NodeError::Segmentation`] when it cannot be split; as
    /// [`try_send_packet`](Self::try_send_packet) for each segment (the segments before it were sent).
    pub fn send_gso(&self, packet: &[u8], segment_size: usize) -> Result<usize, NodeError> {
        let gso = GsoPacket::new(packet, segment_size)?;
        for i in 0..gso.segments() {
            self.blocking(|| self.try_send_segment(&gso, i))?;
        }
        Ok(gso.segments())
    }

    /// Sends the segments of a GSO super-packet from segment `first` on, until one would block.
    /// Call again with [`GsoProgress::next`] until [`GsoProgress::is_done`].
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] if not even segment `first` could be queued; otherwise as
    /// [`send_gso`](Self::send_gso).
    pub fn try_send_gso(
        &self,
        packet: &[u8],
        segment_size: usize,
        first: usize,
    ) -> Result<GsoProgress, NodeError> {
        let gso = GsoPacket::new(packet, segment_size)?;
        let segments = gso.segments();
        let mut next = first.min(segments);
        while next < segments {
            match self.try_send_segment(&gso, next) {
                Ok(()) => next += 1,
                Err(NodeError::WouldBlock) if next > first => break,
                Err(e) => return Err(e),
            }
        }
        Ok(GsoProgress { next, segments })
    }

    fn try_send_segment(&self, gso: &GsoPacket<'_>, i: usize) -> Result<(), NodeError> {
        if let Some(len) = gso.segment_len(i).filter(|&len| len > self.mtu) {
            return Err(NodeError::TooLarge { len, max: self.mtu });
        }
        self.try_send_with(|dst| gso.write_segment(i, dst))
    }

    /// The next authenticated inner IP packet, written into `buf`, with the peer it came from.
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] when nothing waits; [`NodeError::TooLarge`] when `buf` is too small
    /// (the packet is dropped).
    pub fn try_recv_packet(&self, buf: &mut [u8]) -> Result<(usize, PeerId), NodeError> {
        let delivery = self.shared.deliveries.pop().ok_or(NodeError::WouldBlock)?;
        let packet = delivery
            .buf
            .as_slice()
            .get(delivery.range.clone())
            .unwrap_or_default();
        let result = match buf.get_mut(..packet.len()) {
            Some(dst) => {
                dst.copy_from_slice(packet);
                Ok((packet.len(), delivery.peer))
            }
            None => Err(NodeError::TooLarge {
                len: packet.len(),
                max: buf.len(),
            }),
        };
        self.shared.release(delivery.buf);
        result
    }

    /// The next authenticated inner IP packet, waiting up to `timeout` (`None`: for ever).
    ///
    /// # Errors
    /// [`NodeError::TimedOut`], or as [`try_recv_packet`](Self::try_recv_packet).
    pub fn recv_packet_timeout(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(usize, PeerId), NodeError> {
        self.blocking_recv(timeout, || self.try_recv_packet(buf))
    }

    /// Receives up to `bufs.len()` packets without waiting; returns `(length, peer)` for each filled
    /// buffer, in order.
    pub fn try_recv_packets(
        &self,
        bufs: &mut [&mut [u8]],
        out: &mut Vec<(usize, PeerId)>,
    ) -> usize {
        out.clear();
        for b in bufs.iter_mut() {
            match self.try_recv_packet(b) {
                Ok(r) => out.push(r),
                Err(_) => break,
            }
        }
        out.len()
    }

    // ---- events, readiness, stats --------------------------------------------------------------------

    /// The next event, oldest first.
    pub fn poll_event(&self) -> Option<NodeEvent> {
        self.shared.events.pop().map(|e| NodeEvent {
            at: e.at,
            event: e.event,
        })
    }

    /// Waits up to `timeout` for an event.
    pub fn wait_event(&self, timeout: Duration) -> Option<NodeEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.poll_event() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.shared.readiness.clear();
            if let Some(e) = self.poll_event() {
                return Some(e);
            }
            self.shared
                .readiness
                .wait(Some(left.min(Duration::from_millis(50))));
        }
    }

    /// A descriptor that becomes readable when a packet or an event waits. Clear it with
    /// [`clear_readiness`](Self::clear_readiness) *before* draining, so nothing that arrives meanwhile
    /// is missed.
    pub fn readiness(&self) -> BorrowedFd<'_> {
        self.shared.readiness.as_fd()
    }

    /// Makes the [`readiness`](Self::readiness) descriptor unreadable until something new arrives.
    pub fn clear_readiness(&self) {
        self.shared.readiness.clear();
    }

    /// Per-peer counters, drops by reason, per-shard counters and the backend.
    pub fn stats(&self) -> NodeStats {
        let report = self.runtime.report();
        let mut drops = DropCounters::default();
        for d in &self.shared.drops {
            if let Ok(d) = d.lock() {
                drops.merge(&d);
            }
        }
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        NodeStats {
            backend: report.backend,
            io_uring_unavailable: report.io_uring_unavailable.clone(),
            steering_program: report.steering_program,
            peers: self.peer_stats().unwrap_or_default(),
            drops,
            shards: self.runtime.all_stats(),
            data_shards: self
                .shared
                .data_counters
                .iter()
                .map(|c| DataShardStats {
                    opened: get(&c.opened),
                    sealed: get(&c.sealed),
                    delivered: get(&c.delivered),
                    delivery_dropped: get(&c.delivery_dropped),
                    misdelivered: get(&c.misdelivered),
                    send_failed: get(&c.send_failed),
                    channel_dropped: get(&c.channel_dropped),
                    retirements_lost: get(&c.retirements_lost),
                })
                .collect(),
            events_dropped: self.shared.events_dropped.load(Ordering::Relaxed),
            control_backlog_dropped: self.shared.control_backlog_dropped.load(Ordering::Relaxed),
            under_load: self.shared.under_load.load(Ordering::Relaxed),
            cookie_replies_sent: self.shared.cookie_replies_sent.load(Ordering::Relaxed),
            rate_limiter_entries: self.shared.rate_limiter_entries.load(Ordering::Relaxed),
            buffer_pools: self.runtime.buffer_memory(),
        }
    }

    /// Every peer's counters, as `wg show` prints them.
    ///
    /// # Errors
    /// [`NodeError::Closed`] if the control shard does not answer.
    pub fn peer_stats(&self) -> Result<Vec<(PeerId, PeerStats)>, NodeError> {
        self.ask(ControlRequest::PeerStats)
    }

    // ---- peers ---------------------------------------------------------------------------------------

    /// Adds a peer while running (a host-name endpoint is resolved now).
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the field and value.
    pub fn add_peer(&self, config: PeerConfig) -> Result<PeerId, NodeError> {
        let config = builder::resolve_endpoint(0, config)?;
        self.ask(|reply| ControlRequest::AddPeer(Box::new(config), reply))?
            .map_err(NodeError::Config)
    }

    /// Changes a running peer's PSK, endpoint, allowed IPs or persistent keepalive.
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the field and value.
    pub fn update_peer(&self, peer: PeerId, config: PeerConfig) -> Result<(), NodeError> {
        let config = builder::resolve_endpoint(peer.0 as usize, config)?;
        self.ask(|reply| ControlRequest::UpdatePeer(peer, Box::new(config), reply))?
            .map_err(NodeError::Config)
    }

    /// Removes a peer: its keys are erased and its routes dropped. Returns whether it existed.
    ///
    /// # Errors
    /// [`NodeError::Closed`] if the control shard does not answer.
    pub fn remove_peer(&self, peer: PeerId) -> Result<bool, NodeError> {
        self.ask(|reply| ControlRequest::RemovePeer(peer, reply))
    }

    /// Starts a handshake with `peer` now (otherwise the first packet to it does).
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] if the control shard's queue is full.
    pub fn connect(&self, peer: PeerId) -> Result<(), NodeError> {
        self.tx.tell(ControlRequest::Connect(peer))
    }

    /// Sends a keepalive to `peer` (a handshake first if there is no session).
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] if the control shard's queue is full.
    pub fn send_keepalive(&self, peer: PeerId) -> Result<(), NodeError> {
        self.tx.tell(ControlRequest::Keepalive(peer))
    }

    /// Stops the channel driver and the shards, and waits for them.
    pub fn shutdown(self) {
        drop(self.discovery);
        drop(self.channels);
        self.runtime.shutdown();
    }

    // ---- helpers -------------------------------------------------------------------------------------

    /// Builds a packet with `fill` in a buffer of the owning shard and hands it over.
    fn try_send_with(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<(), NodeError> {
        self.tx.try_send_with(fill)
    }

    fn blocking(&self, mut op: impl FnMut() -> Result<(), NodeError>) -> Result<(), NodeError> {
        let mut backoff = Duration::from_micros(20);
        loop {
            match op() {
                Err(NodeError::WouldBlock) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(2));
                }
                other => return other,
            }
        }
    }

    fn blocking_recv<T>(
        &self,
        timeout: Option<Duration>,
        mut op: impl FnMut() -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match op() {
                Err(NodeError::WouldBlock) => {}
                other => return other,
            }
            self.shared.readiness.clear();
            match op() {
                Err(NodeError::WouldBlock) => {}
                other => return other,
            }
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(NodeError::TimedOut);
                    }
                    Some(left)
                }
                None => None,
            };
            // Bounded waits: another reader may have cleared the signal meant for us.
            let slice = Duration::from_millis(50);
            self.shared
                .readiness
                .wait(Some(left.map_or(slice, |l| l.min(slice))));
        }
    }

    fn ask<T>(
        &self,
        request: impl FnOnce(std::sync::mpsc::SyncSender<T>) -> ControlRequest,
    ) -> Result<T, NodeError> {
        self.tx.ask(request)
    }
}

impl From<SendError> for NodeError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::TooLarge { len, max } => NodeError::TooLarge { len, max },
            SendError::NoRoute(ip) => NodeError::NoRoute(ip),
            SendError::InvalidPacket => NodeError::InvalidPacket,
            other => NodeError::Send(other),
        }
    }
}

/// The node the builder assembled.
// The builder's validated pieces, passed once from `NodeBuilder::start`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_node(
    runtime: Runtime<Command>,
    shared: Arc<Shared>,
    public_key: PublicKey,
    mesh_addresses: Vec<IpAddr>,
    datagram_port: u16,
    mtu: usize,
    data_shards: usize,
    channels: std::sync::Arc<crate::runtime::channels::ChannelHub>,
    discovery: Option<(DiscoveryHub, Vec<(PeerId, PublicKey)>)>,
) -> Result<Node, NodeError> {
    let tx = Transmitter {
        commander: runtime.commander(),
        pool: runtime.buffer_pool(),
        shared: shared.clone(),
        mesh_addresses: mesh_addresses.clone(),
        mtu,
        data_shards,
    };
    let channels =
        ChannelDriver::start(channels, shared.clone(), tx.clone()).map_err(|source| {
            NodeError::Io {
                what: "start the channel driver thread",
                source,
            }
        })?;
    let discovery = discovery
        .map(|(hub, configured)| {
            DiscoveryDriver::start(
                Arc::new(hub),
                shared.clone(),
                tx.clone(),
                configured,
                runtime.local_addrs().to_vec(),
            )
        })
        .transpose()
        .map_err(|source| NodeError::Io {
            what: "start the discovery driver thread",
            source,
        })?;
    Ok(Node {
        discovery,
        channels,
        runtime,
        tx,
        shared,
        public_key,
        mesh_addresses,
        datagram_port,
        mtu,
        data_shards,
    })
}
