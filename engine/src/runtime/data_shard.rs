//! A data shard: transport messages opened in place and handed to the application, application
//! packets sealed in place and sent, keypairs installed on command, notices to the control shard.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use pnet_mesh_shard::{Buf, HEADROOM, RecvBatch, SendBatch, ShardContext, ShardId};

use super::{Command, Delivery, Shared};
use crate::PeerId;
use crate::mesh::bucket::TokenBucket;
use crate::mesh::relay::{self, FrameAction, RELAY_OVERHEAD, RelayDrop, RelayDrops, RelayTable};
use crate::mesh::wire::relay::RelayFrame;
use crate::proto::path::RelayPath;
use crate::proto::wire::{self, MessageType, TRANSPORT_HEADER_LEN, TransportHeader};
use crate::proto::{DataPath, Datagram, PacketBuf, shard_of_index};
use crate::proto::{ip, published};

/// What a sealed datagram is, for where it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealed {
    /// An application packet, keepalive or handshake message: relayed if its peer is.
    Datagram,
    /// A relay frame: never framed again.
    Frame,
    /// A path probe, to this outer address instead of the endpoint.
    To(SocketAddr),
}

enum RelayPort<'p> {
    Frame(RelayFrame<'p>),
    Refused,
    Other,
}

pub(crate) struct DataShard {
    path: DataPath,
    shared: Arc<Shared>,
    relay: Arc<RelayTable>,
    relay_version: u64,
    relay_drops: RelayDrops,
    relay_drops_dirty: bool,
    /// Per sending peer: what it may push through this node.
    buckets: HashMap<PeerId, TokenBucket>,
    data_shards: usize,
}

impl DataShard {
    pub(crate) fn new(path: DataPath, shared: Arc<Shared>) -> Self {
        let relay = shared.relay_table();
        DataShard {
            path,
            shared,
            relay,
            relay_version: 0,
            relay_drops: RelayDrops::default(),
            relay_drops_dirty: false,
            buckets: HashMap::new(),
            data_shards: 1,
        }
    }

    /// Reads the relay table again if the control side replaced it.
    fn refresh_relay(&mut self) {
        let version = self.shared.relay_version.load(Ordering::Acquire);
        if version != self.relay_version {
            self.relay_version = version;
            self.relay = self.shared.relay_table();
        }
    }

    fn relay_dropped(&mut self, reason: RelayDrop) {
        self.relay_drops.count(reason);
        self.relay_drops_dirty = true;
    }

    fn relay_counter(
        &self,
        pick: impl Fn(&super::RelayShardCounters) -> &std::sync::atomic::AtomicU64,
    ) {
        if let Some(c) = self.shared.relay_counters.get(self.index()) {
            published::add(pick(c), 1);
        }
    }

    fn index(&self) -> usize {
        usize::from(self.path.shard())
    }

    pub(crate) fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        self.shared.pool.get_or_init(|| ctx.buffer_pool());
        self.data_shards = ctx.data_shards().max(1);
        self.refresh_relay();
        let me = self.path.shard();
        let data_shards = ctx.data_shards() as u8;
        let shared = self.shared.clone();
        let counters = shared.data_counters.get(self.index());
        let mut delivered_any = false;
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            let stride = meta.stride.max(1);
            let Some((buf, range)) = rx.buffer_mut(i) else {
                continue;
            };
            // A single datagram in a small buffer goes to the application as it is; out of a large
            // (GRO) receive buffer it is copied into a small one, so the application never holds
            // the receive ring's 64 KiB buffers.
            let single = meta.len <= stride
                && self
                    .shared
                    .pool
                    .get()
                    .is_some_and(|p| buf.len() <= p.small_len());
            let Some(data) = buf.get_mut(range.clone()) else {
                continue;
            };
            // Set when a single datagram's buffer is to be handed to the application as it is.
            let mut keep: Option<(core::ops::Range<usize>, PeerId, Option<u16>)> = None;
            for (k, segment) in data.chunks_mut(stride).enumerate() {
                // Every segment is checked: a GRO batch is steered by its first datagram only.
                let owner = match wire::peek_type(segment) {
                    Ok(MessageType::Transport) => TransportHeader::parse(segment).ok().map(|h| {
                        ShardId::data(usize::from(shard_of_index(h.receiver, data_shards)))
                    }),
                    _ => Some(ShardId::CONTROL),
                };
                if let Some(owner) = owner
                    && owner != ShardId::data(usize::from(me))
                {
                    if let Some(c) = counters {
                        published::add(&c.misdelivered, 1);
                    }
                    ctx.forward_copy(owner, meta.from, meta.local, segment);
                    continue;
                }
                match self.path.handle_transport(now, meta.from, segment) {
                    Datagram::Deliver { peer, packet } => {
                        if let Some(c) = counters {
                            published::add(&c.opened, 1);
                        }
                        // Read once: it picks the relay, a driver or the application.
                        let port = ip::udp_destination_port(packet);
                        if port == Some(self.relay.port()) {
                            match self.frame_in(packet) {
                                RelayPort::Frame(frame) => {
                                    self.on_frame(ctx, now, peer, frame, meta.local, tx);
                                    continue;
                                }
                                RelayPort::Refused => continue,
                                RelayPort::Other => {}
                            }
                        }
                        let at = range.start + k * stride + TRANSPORT_HEADER_LEN;
                        let packet_range = at..at + packet.len();
                        if single {
                            keep = Some((packet_range, peer, port));
                        } else {
                            delivered_any |= self.deliver_copy(peer, meta.from, packet, port);
                        }
                    }
                    Datagram::Consumed => {
                        if let Some(c) = counters {
                            published::add(&c.opened, 1);
                        }
                    }
                    Datagram::Reply { .. } | Datagram::Dropped(_) => {}
                }
            }
            if let Some((packet_range, peer, port)) = keep
                && let Some((buf, _)) = rx.take(i)
            {
                let delivery = Delivery {
                    buf,
                    range: packet_range,
                    peer,
                    from: meta.from,
                };
                delivered_any |= self.deliver(delivery, port);
            }
        }
        if delivered_any {
            self.shared.readiness.signal();
        }
        self.drain(ctx, now, tx);
    }

    /// Queues a packet (UDP to `port`, if it is UDP) for the driver of that port or else the
    /// application; drops and counts it when the queue is full.
    fn deliver(&self, delivery: Delivery, port: Option<u16>) -> bool {
        let counters = self.shared.data_counters.get(self.index());
        if let Some((queue, wake)) = port.and_then(|port| self.shared.driver_for(port)) {
            // For the channel or discovery driver; it wakes on its own descriptor, not the
            // application's.
            match queue.push(delivery) {
                Ok(()) => wake.signal(),
                Err(d) => {
                    if let Some(c) = counters {
                        published::add(&c.delivery_dropped, 1);
                    }
                    self.shared.release(d.buf);
                }
            }
            return false;
        }
        match self.shared.deliveries.push(delivery) {
            Ok(()) => {
                if let Some(c) = counters {
                    published::add(&c.delivered, 1);
                }
                true
            }
            Err(d) => {
                if let Some(c) = counters {
                    published::add(&c.delivery_dropped, 1);
                }
                self.shared.release(d.buf);
                false
            }
        }
    }

    /// A segment of a GRO batch: copied into a buffer of its own.
    fn deliver_copy(
        &self,
        peer: PeerId,
        from: SocketAddr,
        packet: &[u8],
        port: Option<u16>,
    ) -> bool {
        let Some(pool) = self.shared.pool.get() else {
            return false;
        };
        let Some(mut buf) = pool.take_small(ShardId::data(self.index())) else {
            if let Some(c) = self.shared.data_counters.get(self.index()) {
                published::add(&c.delivery_dropped, 1);
            }
            return false;
        };
        let range = HEADROOM..HEADROOM + packet.len();
        match buf.as_mut_slice().get_mut(range.clone()) {
            Some(dst) => dst.copy_from_slice(packet),
            None => {
                pool.release(buf);
                return false;
            }
        }
        self.deliver(
            Delivery {
                buf,
                range,
                peer,
                from,
            },
            port,
        )
    }

    pub(crate) fn on_command(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        command: Command,
        tx: &mut SendBatch,
    ) {
        self.shared.pool.get_or_init(|| ctx.buffer_pool());
        self.data_shards = ctx.data_shards().max(1);
        self.refresh_relay();
        match command {
            Command::Data(command) => self.path.handle_command(command),
            Command::Send { buf, len, peer } => {
                self.send(ctx, now, buf, len, peer, Sealed::Datagram, tx);
            }
            Command::SendTo { buf, len, peer, to } => {
                self.send(ctx, now, buf, len, peer, Sealed::To(to), tx);
            }
            Command::SendFrame { buf, len, peer } => {
                self.send(ctx, now, buf, len, peer, Sealed::Frame, tx);
            }
            Command::Relay { buf, range, path } => self.relay_out(ctx, now, buf, range, path, tx),
            Command::Notice(_) | Command::Control(_) => {}
        }
        self.drain(ctx, now, tx);
    }

    /// Seals a packet in its own buffer and sends it (framed for a relay if its peer is reached
    /// through one), or holds it for a handshake.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        mut buf: Buf,
        len: usize,
        peer: PeerId,
        kind: Sealed,
        tx: &mut SendBatch,
    ) {
        let counters = self.shared.data_counters.get(self.index());
        let limit = match kind {
            Sealed::Datagram | Sealed::To(_) => self.path.mtu(),
            Sealed::Frame => self.path.mtu() + RELAY_OVERHEAD,
        };
        let sealed = match PacketBuf::new(buf.as_mut_slice(), len) {
            Ok(mut pkt) => match self.path.send_packet_up_to(now, peer, &mut pkt, limit) {
                Ok(Some(t)) => Some((t.to, pkt.range())),
                // Held (copied) until the handshake completes.
                Ok(None) => None,
                Err(e) => {
                    tracing::trace!(error = %e, "packet not sent");
                    if let Some(c) = counters {
                        published::add(&c.send_failed, 1);
                    }
                    None
                }
            },
            Err(_) => {
                if let Some(c) = counters {
                    published::add(&c.send_failed, 1);
                }
                None
            }
        };
        let Some((to, range)) = sealed else {
            self.shared.release(buf);
            return;
        };
        if let Some(c) = counters {
            published::add(&c.sealed, 1);
        }
        let (to, kind) = match kind {
            // A probe through a relay names the relay only: the frame is for this peer.
            Sealed::To(to) => (crate::proto::path::bind(to, peer), Sealed::Datagram),
            other => (to, other),
        };
        self.transmit(ctx, now, buf, range, to, kind, tx);
    }

    /// Sends the sealed datagram `buf[range]` to `to`: out of a socket, or framed into the session
    /// with the relay when `to` is a relay path.
    #[allow(clippy::too_many_arguments)]
    fn transmit(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        buf: Buf,
        range: Range<usize>,
        to: SocketAddr,
        kind: Sealed,
        tx: &mut SendBatch,
    ) {
        if let Some(path) = RelayPath::from_addr(&to) {
            if kind == Sealed::Frame {
                self.shared.release(buf);
                return self.relay_dropped(RelayDrop::NestedPath);
            }
            return self.relay_out(ctx, now, buf, range, path, tx);
        }
        if let Err((_, buf)) = tx.push_buf(buf, range, to) {
            if let Some(c) = self.shared.data_counters.get(self.index()) {
                published::add(&c.send_failed, 1);
            }
            self.shared.release(buf);
        }
    }

    /// What an opened packet to the relay port is: a frame, a refused one (counted), or a path
    /// message for the prober (delivered as usual, if discovery runs one).
    fn frame_in<'p>(&mut self, packet: &'p [u8]) -> RelayPort<'p> {
        let Some(udp) = ip::parse_udp(packet) else {
            return RelayPort::Other;
        };
        match relay::parse_frame(udp.payload) {
            Ok(Some(frame)) => RelayPort::Frame(frame),
            Ok(None) if self.shared.discovery_port.is_none() => {
                self.relay_dropped(RelayDrop::NoProber);
                RelayPort::Refused
            }
            Ok(None) => RelayPort::Other,
            Err(reason) => {
                self.relay_dropped(reason);
                RelayPort::Refused
            }
        }
    }

    /// A frame that arrived in `from`'s session: for us (to the protocol core, as a datagram from the
    /// relay path), or on to the next hop.
    fn on_frame(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        from: PeerId,
        frame: RelayFrame<'_>,
        local: SocketAddr,
        tx: &mut SendBatch,
    ) {
        let action = match self.relay.route(from, &frame) {
            Ok(a) => a,
            Err(reason) => return self.relay_dropped(reason),
        };
        match action {
            FrameAction::Deliver { path } => {
                let owner = match wire::peek_type(frame.payload) {
                    Ok(MessageType::Transport) => match TransportHeader::parse(frame.payload) {
                        Ok(h) => ShardId::data(usize::from(shard_of_index(
                            h.receiver,
                            self.data_shards as u8,
                        ))),
                        Err(_) => return self.relay_dropped(RelayDrop::Malformed),
                    },
                    Ok(_) => ShardId::CONTROL,
                    Err(_) => return self.relay_dropped(RelayDrop::Malformed),
                };
                self.relay_counter(|c| &c.delivered);
                // Through the shard channel even to ourselves: the datagram is opened in a buffer
                // of its own, exactly as one from a socket.
                ctx.forward_copy(owner, path.to_addr(), local, frame.payload);
            }
            FrameAction::Forward {
                next,
                address,
                hop_limit,
            } => {
                let rate = self.shared.relay_config.frames_per_second;
                let bucket = self
                    .buckets
                    .entry(from)
                    .or_insert_with(|| TokenBucket::new(now, rate));
                if !bucket.take(now, rate) {
                    return self.relay_dropped(RelayDrop::RateLimited);
                }
                let onward = RelayFrame { hop_limit, ..frame };
                if self.send_frame(ctx, now, address, &onward, next, tx) {
                    self.relay_counter(|c| &c.forwarded);
                }
            }
        }
    }

    /// Frames the sealed datagram `buf[range]` for the peer at the end of `path` and sends it into
    /// the session with the path's relay.
    fn relay_out(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        buf: Buf,
        range: Range<usize>,
        path: RelayPath,
        tx: &mut SendBatch,
    ) {
        let target = match self.relay.target(path) {
            Ok(t) => t,
            Err(reason) => {
                self.shared.release(buf);
                return self.relay_dropped(reason);
            }
        };
        let frame = RelayFrame {
            hop_limit: self.relay.hop_limit(),
            source: *self.relay.own_key(),
            destination: target.destination,
            payload: buf.as_slice().get(range).unwrap_or_default(),
        };
        let sent = self.send_frame(ctx, now, target.address, &frame, path.relay, tx);
        self.shared.release(buf);
        if sent {
            self.relay_counter(|c| &c.originated);
        }
    }

    /// Writes `frame` as a packet to `address` on the relay port in a fresh buffer and seals it for
    /// `next` here or on the shard that owns it. Returns whether it went.
    fn send_frame(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        address: std::net::IpAddr,
        frame: &RelayFrame<'_>,
        next: PeerId,
        tx: &mut SendBatch,
    ) -> bool {
        let port = self.relay.port();
        let Some(src) = self.relay.own_address_for(address) else {
            self.relay_dropped(RelayDrop::NoAddress);
            return false;
        };
        let Some(mut out) = self
            .shared
            .pool
            .get()
            .and_then(|p| p.take_small(ShardId::data(self.index())))
        else {
            self.relay_dropped(RelayDrop::QueueFull);
            return false;
        };
        let written =
            out.as_mut_slice()
                .get_mut(HEADROOM..)
                .map_or(Err(RelayDrop::TooLarge), |area| {
                    let room = area.len().saturating_sub(PacketBuf::TAILROOM);
                    relay::write_frame_packet(
                        area.get_mut(..room).unwrap_or_default(),
                        SocketAddr::new(src, port),
                        SocketAddr::new(address, port),
                        frame,
                    )
                });
        let len = match written {
            Ok(len) => len,
            Err(reason) => {
                self.shared.release(out);
                self.relay_dropped(reason);
                return false;
            }
        };
        let owner = ShardId::data((next.0 as usize) % self.data_shards);
        if owner == ShardId::data(self.index()) {
            self.send(ctx, now, out, len, next, Sealed::Frame, tx);
            return true;
        }
        match ctx.send_command(
            owner,
            Command::SendFrame {
                buf: out,
                len,
                peer: next,
            },
        ) {
            Ok(()) => true,
            Err(Command::SendFrame { buf, .. }) => {
                self.shared.release(buf);
                self.relay_dropped(RelayDrop::QueueFull);
                false
            }
            Err(_) => false,
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub(crate) fn on_timeout(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        tx: &mut SendBatch,
    ) {
        self.drain(ctx, now, tx);
    }

    /// Sends what the data path produced (responses, released packets, keepalives) and its notices.
    fn drain(&mut self, ctx: &mut ShardContext<'_, Command>, now: Instant, tx: &mut SendBatch) {
        while tx.remaining() > 0 {
            let shard = ShardId::data(self.index());
            let Some(mut buf) = self.shared.pool.get().and_then(|p| p.take_small(shard)) else {
                break;
            };
            let Some(t) = buf
                .as_mut_slice()
                .get_mut(HEADROOM..)
                .and_then(|out| self.path.poll_transmit(now, out))
            else {
                self.shared.release(buf);
                break;
            };
            if let Some(c) = self.shared.data_counters.get(self.index()) {
                published::add(&c.sealed, 1);
            }
            self.transmit(
                ctx,
                now,
                buf,
                HEADROOM..HEADROOM + t.len,
                t.to,
                Sealed::Datagram,
                tx,
            );
        }
        while let Some(notice) = self.path.poll_notice() {
            if let Err(Command::Notice(notice)) =
                ctx.send_command(ShardId::CONTROL, Command::Notice(notice))
            {
                self.path.restore_notice(notice);
                if let Some(c) = self.shared.data_counters.get(self.index()) {
                    published::add(&c.channel_dropped, 1);
                }
                break;
            }
        }
        self.shared
            .publish_drops(self.index() + 1, self.path.drop_counters());
        if self.relay_drops_dirty
            && let Some(c) = self.shared.relay_counters.get(self.index())
            && let Ok(mut d) = c.drops.lock()
        {
            d.clone_from(&self.relay_drops);
            self.relay_drops_dirty = false;
        }
        if let Some(c) = self.shared.data_counters.get(self.index()) {
            c.retirements_lost.store(
                self.path.retirements_lost(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}
