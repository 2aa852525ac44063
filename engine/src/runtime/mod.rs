//! The protocol core on the shard runtime: the [`ControlPlane`] on the control shard, one [`DataPath`]
//! per data shard, and what they share with the application threads behind [`Node`](crate::Node).
//!
//! Nothing here knows the wire format beyond what the halves expose: the runtime moves buffers,
//! commands and notices; the halves decide.

pub(crate) mod channels;
mod control_shard;
mod data_shard;
pub(crate) mod discovery;
pub(crate) mod paths;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use pnet_mesh_crypto::PublicKey;
use std::time::{Instant, SystemTime};

use crossbeam_queue::ArrayQueue;
use pnet_mesh_shard::{
    Buf, BufferPool, DatagramHandler, Readiness, RecvBatch, SendBatch, ShardContext, SteeringRule,
};

use crate::PeerId;
use crate::config::{AllowedIp, ConfigError, PeerConfig};
use crate::event::Event;
use crate::mesh::relay::{RelayConfig, RelayDrops, RelayTable};
use crate::proto::allowed_ips::AllowedIps;
use crate::proto::path::RelayPath;
use crate::proto::{ControlPlane, DataCommand, DataNotice, DataPath, DropCounters};
use crate::stats::PeerStats;

pub(crate) use control_shard::ControlShard;
pub(crate) use data_shard::DataShard;

/// Transport messages (type 4) go to data shard `byte[4] % n`, the low byte of the receiver index;
/// everything else to the control shard.
pub(crate) const STEERING: SteeringRule = SteeringRule {
    type_byte: 4,
    index_offset: 4,
    min_len: 32,
};

/// Channel packets waiting for the channel driver, all data shards together (two windows' worth
/// of the default configuration).
const CHANNEL_QUEUE: usize = 1024;
/// Discovery messages waiting for the discovery driver.
const DISCOVERY_QUEUE: usize = 256;
/// Path messages (probes, candidates) waiting for the path driver.
const PATH_QUEUE: usize = 256;
/// Session changes waiting for the discovery driver.
const SESSION_NOTICE_QUEUE: usize = 1024;

/// What travels between shards and from the application to them.
#[derive(Debug)]
pub(crate) enum Command {
    /// Control plane → the data path of the receiving shard.
    Data(DataCommand),
    /// A data path → the control plane.
    Notice(DataNotice),
    /// Application → data shard: seal `buf[range]` (an IP packet at the headroom) for `peer` and send.
    Send { buf: Buf, len: usize, peer: PeerId },
    /// Application → data shard: as `Send`, but to the outer address `to` instead of the peer's
    /// endpoint (a path probe; a packet that waits for a handshake goes to the endpoint after all).
    SendTo {
        buf: Buf,
        len: usize,
        peer: PeerId,
        to: std::net::SocketAddr,
    },
    /// Data shard → data shard: seal the relay frame packet at the headroom for `peer` (the next hop,
    /// which this shard owns) and send.
    SendFrame { buf: Buf, len: usize, peer: PeerId },
    /// Control shard → data shard: `buf[range]` is a handshake message or cookie reply for a peer
    /// reached along `path`; frame it into the session with the path's relay.
    Relay {
        buf: Buf,
        range: Range<usize>,
        path: RelayPath,
    },
    /// Application → control shard.
    Control(ControlRequest),
}

/// A request of the application to the control plane; answers come back on the channel.
#[derive(Debug)]
pub(crate) enum ControlRequest {
    Connect(PeerId),
    Keepalive(PeerId),
    AddPeer(
        Box<PeerConfig>,
        std::sync::mpsc::SyncSender<Result<PeerId, ConfigError>>,
    ),
    UpdatePeer(
        PeerId,
        Box<PeerConfig>,
        std::sync::mpsc::SyncSender<Result<(), ConfigError>>,
    ),
    RemovePeer(PeerId, std::sync::mpsc::SyncSender<bool>),
    /// Reach the peer at this endpoint (a socket address or a relay path) from now on.
    SetEndpoint(PeerId, std::net::SocketAddr),
    PeerStats(std::sync::mpsc::SyncSender<Vec<(PeerId, PeerStats)>>),
}

/// An authenticated inner IP packet waiting for the application, in a shard buffer.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) buf: Buf,
    pub(crate) range: Range<usize>,
    pub(crate) peer: PeerId,
    /// Where the outer datagram came from (a socket address, or a relay path).
    pub(crate) from: std::net::SocketAddr,
}

/// An event with the wall-clock time it happened.
#[derive(Debug, Clone)]
pub(crate) struct TimedEvent {
    pub(crate) at: SystemTime,
    pub(crate) event: Event,
}

/// How a node relays, from its settings.
#[derive(Debug)]
pub(crate) struct RelaySetup {
    /// The table with the configured peers.
    pub(crate) table: RelayTable,
    pub(crate) config: RelayConfig,
    /// Configured next hops `(member, neighbour)`.
    pub(crate) static_routes: Vec<(PublicKey, PublicKey)>,
}

/// Relay counters of one data shard, written by it alone.
#[derive(Debug, Default)]
pub(crate) struct RelayShardCounters {
    /// Frames passed on to a next hop.
    pub(crate) forwarded: AtomicU64,
    /// Frames for this node, handed to the protocol core.
    pub(crate) delivered: AtomicU64,
    /// Frames this node started (datagrams for peers reached through a relay).
    pub(crate) originated: AtomicU64,
    /// Refusals, refreshed after each batch that counted one.
    pub(crate) drops: Mutex<RelayDrops>,
}

/// Counters of one data shard, written by it alone.
#[derive(Debug, Default)]
pub(crate) struct DataShardCounters {
    /// Transport messages this shard opened (authenticated).
    pub(crate) opened: AtomicU64,
    /// Transport messages this shard sealed.
    pub(crate) sealed: AtomicU64,
    /// Packets handed to the application.
    pub(crate) delivered: AtomicU64,
    /// Packets dropped because the application's receive queue was full.
    pub(crate) delivery_dropped: AtomicU64,
    /// Datagrams this shard received but does not own, moved to their owner.
    pub(crate) misdelivered: AtomicU64,
    /// Application packets that could not be sent (no endpoint, short buffer, send batch full).
    pub(crate) send_failed: AtomicU64,
    /// Notices or commands lost to a full channel.
    pub(crate) channel_dropped: AtomicU64,
    /// Retired indices the control plane was not told of (the data path's pending slots were full).
    pub(crate) retirements_lost: AtomicU64,
}

/// What the shards share with the application threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) deliveries: ArrayQueue<Delivery>,
    /// Packets for the channel port, for the channel driver (not the application).
    pub(crate) channel_deliveries: ArrayQueue<Delivery>,
    /// The mesh-side UDP port of channels.
    pub(crate) channel_port: u16,
    /// Wakes the channel driver.
    pub(crate) channel_wake: Readiness,
    /// The mesh-side UDP port of discovery, when discovery runs.
    pub(crate) discovery_port: Option<u16>,
    /// Packets for the discovery port, for the discovery driver.
    pub(crate) discovery_deliveries: ArrayQueue<Delivery>,
    /// Session changes (up, down, roaming) for the discovery driver, copied from the events.
    pub(crate) session_notices: ArrayQueue<Event>,
    /// Wakes the discovery driver.
    pub(crate) discovery_wake: Readiness,
    pub(crate) events: ArrayQueue<TimedEvent>,
    pub(crate) events_dropped: AtomicU64,
    /// Commands for data shards the control shard could neither send nor hold.
    pub(crate) control_backlog_dropped: AtomicU64,
    pub(crate) readiness: Readiness,
    pub(crate) routes: RwLock<Arc<AllowedIps>>,
    /// Drops per reason, per shard (index = shard id), refreshed after each batch.
    pub(crate) drops: Vec<Mutex<DropCounters>>,
    /// Index = data shard.
    pub(crate) data_counters: Vec<DataShardCounters>,
    pub(crate) under_load: std::sync::atomic::AtomicBool,
    /// Cookie replies the control shard sent (one per initiation it answered under load).
    pub(crate) cookie_replies_sent: std::sync::atomic::AtomicU64,
    /// Sources in the control plane's handshake rate limiter, as last published.
    pub(crate) rate_limiter_entries: std::sync::atomic::AtomicU64,
    pub(crate) pool: std::sync::OnceLock<BufferPool>,
    /// What data shards relay by, replaced whole; `relay_version` tells them to read it again.
    pub(crate) relay: RwLock<Arc<RelayTable>>,
    pub(crate) relay_version: AtomicU64,
    /// Next hops `(member, neighbour)`: the configured ones, then the learned ones; its lock also
    /// orders rebuilds of `relay`.
    relay_routes: Mutex<Vec<(PublicKey, PublicKey)>>,
    /// The configured next hops (they win over learned ones).
    static_routes: Vec<(PublicKey, PublicKey)>,
    pub(crate) relay_config: RelayConfig,
    /// Index = data shard.
    pub(crate) relay_counters: Vec<RelayShardCounters>,
    /// Path messages (relay port, not frames) for the prober in the discovery driver.
    pub(crate) path_deliveries: ArrayQueue<Delivery>,
}

impl Shared {
    pub(crate) fn new(
        data_shards: usize,
        receive_queue: usize,
        event_capacity: usize,
        routes: Arc<AllowedIps>,
        channel_port: u16,
        discovery_port: Option<u16>,
        relay: RelaySetup,
    ) -> std::io::Result<Self> {
        let RelaySetup {
            table: relay,
            config: relay_config,
            static_routes,
        } = relay;
        Ok(Shared {
            deliveries: ArrayQueue::new(receive_queue.max(1)),
            channel_deliveries: ArrayQueue::new(CHANNEL_QUEUE),
            channel_port,
            channel_wake: Readiness::new()?,
            discovery_port,
            discovery_deliveries: ArrayQueue::new(DISCOVERY_QUEUE),
            session_notices: ArrayQueue::new(SESSION_NOTICE_QUEUE),
            discovery_wake: Readiness::new()?,
            events: ArrayQueue::new(event_capacity.max(1)),
            events_dropped: AtomicU64::new(0),
            control_backlog_dropped: AtomicU64::new(0),
            readiness: Readiness::new()?,
            routes: RwLock::new(routes),
            drops: (0..=data_shards)
                .map(|_| Mutex::new(DropCounters::default()))
                .collect(),
            data_counters: (0..data_shards)
                .map(|_| DataShardCounters::default())
                .collect(),
            under_load: std::sync::atomic::AtomicBool::new(false),
            cookie_replies_sent: std::sync::atomic::AtomicU64::new(0),
            rate_limiter_entries: std::sync::atomic::AtomicU64::new(0),
            pool: std::sync::OnceLock::new(),
            relay: RwLock::new(Arc::new(relay)),
            relay_version: AtomicU64::new(0),
            relay_routes: Mutex::new(static_routes.clone()),
            static_routes,
            relay_config,
            relay_counters: (0..data_shards)
                .map(|_| RelayShardCounters::default())
                .collect(),
            path_deliveries: ArrayQueue::new(PATH_QUEUE),
        })
    }

    /// Rebuilds the relay table for the node's peers as they are now (the control shard, after a
    /// change of peers).
    pub(crate) fn rebuild_relay<'a>(
        &self,
        peers: impl Iterator<Item = (PeerId, PublicKey, &'a [AllowedIp])>,
    ) {
        let Ok(routes) = self.relay_routes.lock() else {
            return;
        };
        let Ok(mut table) = self.relay.write() else {
            return;
        };
        let mut next = RelayTable::clone(&table);
        next.clear_peers();
        for (id, key, allowed_ips) in peers {
            next.set_peer(id, key, allowed_ips);
        }
        next.set_routes(routes.iter().copied());
        *table = Arc::new(next);
        self.relay_version.fetch_add(1, Ordering::Release);
    }

    /// Replaces the learned next hops (the discovery driver).
    pub(crate) fn set_relay_routes(&self, learned: Vec<(PublicKey, PublicKey)>) {
        let Ok(mut held) = self.relay_routes.lock() else {
            return;
        };
        let routes: Vec<(PublicKey, PublicKey)> = self
            .static_routes
            .iter()
            .copied()
            .chain(
                learned
                    .into_iter()
                    .filter(|(m, _)| !self.static_routes.iter().any(|(s, _)| s == m)),
            )
            .collect();
        if *held == routes {
            return;
        }
        let Ok(mut table) = self.relay.write() else {
            return;
        };
        let mut next = RelayTable::clone(&table);
        next.set_routes(routes.iter().copied());
        *table = Arc::new(next);
        *held = routes;
        self.relay_version.fetch_add(1, Ordering::Release);
    }

    /// The next hops in use: `(member, neighbour)`, configured ones first.
    pub(crate) fn relay_routes(&self) -> Vec<(PublicKey, PublicKey)> {
        self.relay_routes
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The relay table as it stands.
    pub(crate) fn relay_table(&self) -> Arc<RelayTable> {
        self.relay
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    pub(crate) fn publish_drops(&self, shard: usize, drops: &DropCounters) {
        if let Some(slot) = self.drops.get(shard)
            && let Ok(mut d) = slot.lock()
        {
            d.clone_from(drops);
        }
    }

    pub(crate) fn push_event(&self, event: Event) {
        if self.discovery_port.is_some()
            && matches!(
                event,
                Event::PeerUp { .. }
                    | Event::PeerDown { .. }
                    | Event::HandshakeCompleted { .. }
                    | Event::EndpointChanged { .. }
            )
        {
            // Lost only if the driver is a thousand changes behind; its periodic sync repairs that.
            let _ = self.session_notices.push(event);
            self.discovery_wake.signal();
        }
        let timed = TimedEvent {
            at: SystemTime::now(),
            event,
        };
        if self.events.push(timed).is_err() {
            self.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.readiness.signal();
    }

    /// The queue and wake-up of the driver that serves UDP port `port` inside the mesh, if one does
    /// (channels, discovery); packets to other ports are the application's.
    pub(crate) fn driver_for(&self, port: u16) -> Option<(&ArrayQueue<Delivery>, &Readiness)> {
        if port == self.channel_port {
            Some((&self.channel_deliveries, &self.channel_wake))
        } else if Some(port) == self.discovery_port {
            Some((&self.discovery_deliveries, &self.discovery_wake))
        } else if port == self.relay_config.port && self.discovery_port.is_some() {
            // Path messages: the prober runs in the discovery driver (without discovery the data
            // shard refuses them before they get here).
            Some((&self.path_deliveries, &self.discovery_wake))
        } else {
            None
        }
    }

    /// Gives a buffer back to its pool (or frees it before the pool is known, which cannot happen
    /// once the runtime started).
    pub(crate) fn release(&self, buf: Buf) {
        if let Some(pool) = self.pool.get() {
            pool.release(buf);
        }
    }
}

/// The handler of every shard: the control plane on shard 0, a data path on the others.
pub(crate) enum ShardHandler {
    Control(Box<ControlShard>),
    Data(Box<DataShard>),
}

impl DatagramHandler for ShardHandler {
    type Command = Command;

    fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        match self {
            ShardHandler::Control(c) => c.on_recv(ctx, now, rx, tx),
            ShardHandler::Data(d) => d.on_recv(ctx, now, rx, tx),
        }
    }

    fn on_command(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        command: Command,
        tx: &mut SendBatch,
    ) {
        match self {
            ShardHandler::Control(c) => c.on_command(ctx, now, command, tx),
            ShardHandler::Data(d) => d.on_command(ctx, now, command, tx),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ShardHandler::Control(c) => c.poll_timeout(),
            ShardHandler::Data(d) => d.poll_timeout(),
        }
    }

    fn on_timeout(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        tx: &mut SendBatch,
    ) {
        match self {
            ShardHandler::Control(c) => c.on_timeout(ctx, now, tx),
            ShardHandler::Data(d) => d.on_timeout(ctx, now, tx),
        }
    }
}

/// Builds the handler of every shard: `control` for shard 0 and its data paths for the others.
pub(crate) fn handlers(control: ControlPlane, shared: &Arc<Shared>) -> Vec<ShardHandler> {
    let data_shards = control.config().data_shards.max(1);
    let mut all: Vec<ShardHandler> = Vec::with_capacity(usize::from(data_shards) + 1);
    let paths: Vec<DataPath> = (0..data_shards).map(|k| control.data_path(k)).collect();
    all.push(ShardHandler::Control(Box::new(ControlShard::new(
        control,
        shared.clone(),
    ))));
    for path in paths {
        all.push(ShardHandler::Data(Box::new(DataShard::new(
            path,
            shared.clone(),
        ))));
    }
    all
}
