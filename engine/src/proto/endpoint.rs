//! [`Endpoint`]: one WireGuard node as a single-threaded state machine.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh_crypto::rng::Rng;
use pnet_mesh_crypto::{PrivateKey, PublicKey, Tai64N};

use super::allowed_ips::AllowedIps;
use super::constants::{REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES};
use super::cookie::{CookieChecker, CookieReplyError, REPLY_LEN};
use super::handshake::{self, HandshakeError, Identity, PeerKeys};
use super::index_table::IndexTable;
use super::keypair::{Keypair, Slot};
use super::peer::{Peer, Sealed};
use super::rate_limit::RateLimiter;
use super::timers::TimerKind;
use super::wire::{
    self, CookieReply, INITIATION_LEN, Initiation, MessageType, RESPONSE_LEN, Response,
    TRANSPORT_HEADER_LEN, TransportHeader, WireError,
};
use super::{Datagram, DropCounters, DropReason, PacketBuf, SendError, Transmit, ip};
use crate::PeerId;
use crate::config::{ConfigError, EndpointConfig, PeerConfig};
use crate::event::{Event, Role};
use crate::stats::PeerStats;

/// One WireGuard node, sans I/O: every input carries the time, every output is bytes, a deadline or an
/// event.
///
/// # Use
/// After each input ([`handle_datagram`](Self::handle_datagram), [`send_packet`](Self::send_packet),
/// [`handle_timeout`](Self::handle_timeout), [`connect`](Self::connect)), poll in this order until each
/// returns `None`: [`poll_transmit`](Self::poll_transmit), [`poll_timeout`](Self::poll_timeout),
/// [`poll_event`](Self::poll_event).
///
/// # Panics
/// Never on network input: every received byte is checked, and a bad datagram becomes
/// [`Datagram::Dropped`].
pub struct Endpoint {
    config: Arc<EndpointConfig>,
    rng: Box<dyn Rng>,
    identity: Identity,
    checker: CookieChecker,
    limiter: RateLimiter,
    /// Peer slots by [`PeerId`]; a removed peer leaves `None`, reused by the next added one.
    peers: Vec<Option<Peer>>,
    by_key: HashMap<PublicKey, PeerId>,
    routes: AllowedIps,
    indices: IndexTable,
    under_load: bool,
    events: VecDeque<Event>,
    events_dropped: u64,
    /// Peers with something to send, each at most once.
    work: VecDeque<PeerId>,
    drops: DropCounters,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("public_key", &self.identity.public)
            .field("peers", &self.peers.iter().flatten().count())
            .field("under_load", &self.under_load)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Builds the node from a validated configuration, with `rng` as its only source of randomness and
    /// `now` as the present.
    ///
    /// Peers with a persistent keepalive and a known endpoint are contacted at once, as wireguard-go
    /// does when an interface comes up: the first [`poll_transmit`](Self::poll_transmit) yields their
    /// handshake initiations.
    pub fn new(config: Arc<EndpointConfig>, rng: Box<dyn Rng>, now: Instant) -> Self {
        let identity = Identity::new(PrivateKey::from_bytes(*config.private_key.as_bytes()));
        let checker = CookieChecker::new(identity.mac1_key, identity.cookie_key, &config.times);
        let mut peers = Vec::with_capacity(config.peers.len());
        let mut by_key = HashMap::with_capacity(config.peers.len());
        let mut routes = AllowedIps::new();
        for (i, pc) in config.peers.iter().enumerate() {
            let id = PeerId(i as u32);
            let keys = PeerKeys::new(
                &identity,
                pc.public_key,
                pc.preshared_key.as_ref().map(|k| *k.as_bytes()),
            );
            peers.push(Some(Peer::new(
                keys,
                pc,
                config.staged_packets,
                config.times,
            )));
            by_key.insert(pc.public_key, id);
            for net in &pc.allowed_ips {
                routes.insert(*net, id);
            }
        }
        let mut endpoint = Endpoint {
            limiter: RateLimiter::new(config.rate_limit_entries),
            events: VecDeque::with_capacity(config.event_capacity.min(1024)),
            work: VecDeque::with_capacity(peers.len()),
            indices: IndexTable::with_capacity(peers.len() * 4),
            config,
            rng,
            identity,
            checker,
            peers,
            by_key,
            routes,
            under_load: false,
            events_dropped: 0,
            drops: DropCounters::default(),
        };
        for id in 0..endpoint.peers.len() {
            let id = PeerId(id as u32);
            if endpoint
                .peer(id)
                .is_some_and(|p| p.persistent_keepalive.is_some() && p.endpoint.is_some())
            {
                endpoint.send_keepalive(id);
            }
        }
        // No timer starts at creation: every deadline is armed by an event.
        let _ = now;
        endpoint
    }

    // ---- getters -------------------------------------------------------------------------------------

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public
    }

    /// The peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// The peer whose allowed IPs route `addr`.
    pub fn route(&self, addr: std::net::IpAddr) -> Option<PeerId> {
        self.routes.lookup(addr)
    }

    /// Drops so far, per reason.
    pub fn drop_counters(&self) -> &DropCounters {
        &self.drops
    }

    /// Events discarded because the event queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Whether a usable session with `peer` exists.
    pub fn has_session(&self, now: Instant, peer: PeerId) -> bool {
        self.peer(peer)
            .and_then(|p| p.keypairs.current.as_ref())
            .is_some_and(|k| k.can_send(now))
    }

    /// The data shard that owns `peer`'s sessions: every receiver index of the peer maps to it (see
    /// [`shard_of_index`](crate::proto::shard_of_index)). Peers are spread round-robin in configuration
    /// order.
    pub fn peer_shard(&self, peer: PeerId) -> u8 {
        (peer.0 % u32::from(self.config.data_shards.max(1))) as u8
    }

    /// Receiver indices in use (handshakes in flight and keypairs).
    pub fn indices_in_use(&self) -> usize {
        self.indices.len()
    }

    /// `peer`'s counters, as `wg show` prints them.
    pub fn peer_stats(&self, peer: PeerId) -> Option<PeerStats> {
        let p = self.peer(peer)?;
        Some(PeerStats {
            public_key: p.keys.public,
            endpoint: p.endpoint,
            allowed_ips: p.allowed_ips.clone(),
            last_handshake: p.last_handshake.map(|t| self.wall_clock(t)),
            rx_bytes: p.counters.rx_bytes,
            tx_bytes: p.counters.tx_bytes,
            rx_packets: p.counters.rx_packets,
            tx_packets: p.counters.tx_packets,
            rx_keepalives: p.counters.rx_keepalives,
            handshakes_initiated: p.counters.handshakes_initiated,
            handshakes_answered: p.counters.handshakes_answered,
            staged_dropped: p.counters.staged_dropped,
            persistent_keepalive: p.persistent_keepalive,
        })
    }

    /// The peers configured now.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| PeerId(i as u32))
    }

    // ---- inputs --------------------------------------------------------------------------------------

    /// Tells the endpoint whether the node is under load. Under load, handshake messages must carry a
    /// valid mac2 (or get a cookie reply) and each source is rate limited.
    pub fn set_under_load(&mut self, under_load: bool) {
        self.under_load = under_load;
    }

    /// Starts a handshake with `peer` now (unless one was sent less than REKEY_TIMEOUT ago).
    ///
    /// # Errors
    /// [`SendError::NoEndpoint`] if the peer's address is unknown.
    pub fn connect(&mut self, now: Instant, peer: PeerId) -> Result<(), SendError> {
        let p = self.peer(peer).ok_or(SendError::NoEndpoint)?;
        if p.endpoint.is_none() {
            return Err(SendError::NoEndpoint);
        }
        self.send_initiation(now, peer, false);
        Ok(())
    }

    /// Queues a keepalive to `peer` (sent by [`poll_transmit`](Self::poll_transmit); a handshake first if
    /// there is no session).
    pub fn send_keepalive(&mut self, peer: PeerId) {
        if let Some(p) = self.peer_mut(peer) {
            p.want_keepalive = true;
            self.enqueue(peer);
        }
    }

    /// Processes one received datagram, in place in `buf`.
    pub fn handle_datagram<'b>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &'b mut [u8],
    ) -> Datagram<'b> {
        let kind = match wire::peek_type(buf) {
            Ok(kind) => kind,
            Err(e) => return self.dropped(wire_drop(e)),
        };
        let outcome = match kind {
            MessageType::Transport => return self.handle_transport(now, from, buf),
            MessageType::CookieReply => self.handle_cookie_reply(now, buf),
            // Handshake messages: mac1 always, and under load mac2 (or a cookie reply) and the rate
            // limit, before any Diffie-Hellman.
            MessageType::Initiation => {
                match self.check_macs(now, from, buf, Initiation::MAC1_OFFSET) {
                    Ok(None) => self.handle_initiation(now, from, buf),
                    other => other,
                }
            }
            MessageType::Response => match self.check_macs(now, from, buf, Response::MAC1_OFFSET) {
                Ok(None) => self.handle_response(now, from, buf),
                other => other,
            },
        };
        match outcome {
            Ok(Some(len)) => Datagram::Reply { to: from, len },
            Ok(None) => Datagram::Consumed,
            Err(reason) => self.dropped(reason),
        }
    }

    /// Seals the IP packet in `pkt` for the peer its destination routes to.
    ///
    /// Returns `Ok(Some(transmit))` with the datagram now in [`PacketBuf::datagram`], or `Ok(None)` when
    /// the packet was held until a handshake completes (run [`poll_transmit`](Self::poll_transmit)).
    ///
    /// # Errors
    /// [`SendError`]: larger than the MTU, not an IP packet, no route, no endpoint, or a short buffer.
    pub fn send_packet(
        &mut self,
        now: Instant,
        pkt: &mut PacketBuf<'_>,
    ) -> Result<Option<Transmit>, SendError> {
        let rekey_after = self.config.times.rekey_after_time;
        let mtu = usize::from(self.config.mtu);
        let (buf, start, end) = pkt.parts();
        let len = end - start;
        let payload = buf.get(start..end).ok_or(SendError::InvalidPacket)?;
        if len > mtu {
            return Err(SendError::TooLarge { len, max: mtu });
        }
        if ip::packet_len(payload).map_err(|_| SendError::InvalidPacket)? != len {
            return Err(SendError::InvalidPacket);
        }
        let dst = ip::destination(payload).ok_or(SendError::InvalidPacket)?;
        let peer_id = self.routes.lookup(dst).ok_or(SendError::NoRoute(dst))?;
        let Some(peer) = self
            .peers
            .get_mut(peer_id.0 as usize)
            .and_then(Option::as_mut)
        else {
            return Err(SendError::NoRoute(dst));
        };
        let Some(to) = peer.endpoint else {
            return Err(SendError::NoEndpoint);
        };
        let Some(kp) = peer.sending_keypair(now) else {
            peer.stage(payload);
            self.send_initiation(now, peer_id, false);
            return Ok(None);
        };
        let header_at =
            start
                .checked_sub(TRANSPORT_HEADER_LEN)
                .ok_or(SendError::BufferTooSmall {
                    needed: PacketBuf::HEADROOM + len + PacketBuf::TAILROOM,
                })?;
        let total = kp.seal(buf.get_mut(header_at..).unwrap_or_default(), len, mtu)?;
        let rekey = needs_rekey_on_send(kp, now, rekey_after);
        pkt.set_range(header_at, header_at + total);
        peer.record_sent(now, total, Sealed::Data);
        if rekey {
            self.send_initiation(now, peer_id, false);
        }
        Ok(Some(Transmit {
            to,
            len: total,
            segment_size: None,
        }))
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let id = PeerId(i as u32);
            while let Some(kind) = {
                let jitter = self.jitter();
                self.peer_mut(id)
                    .and_then(|p| p.timers.take_expired(now, jitter))
            } {
                self.on_timer(now, id, kind);
            }
        }
    }

    // ---- outputs -------------------------------------------------------------------------------------

    /// Writes the next handshake message, keepalive or released staged packet into `out` (at least
    /// 148 bytes, and MTU + 32 for staged packets).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        let rekey_after = self.config.times.rekey_after_time;
        let mtu = usize::from(self.config.mtu);
        while let Some(&id) = self.work.front() {
            let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                self.work.pop_front();
                continue;
            };
            if peer.want_initiation {
                peer.want_initiation = false;
                if let Some(t) = self.create_initiation(now, id, out) {
                    return Some(t);
                }
                continue;
            }
            let to = peer.endpoint;
            if let (Some(to), Some(kp)) = (
                to,
                peer.keypairs.current.as_mut().filter(|k| k.can_send(now)),
            ) {
                if let Some(staged) = peer.staged.pop_front() {
                    let len = staged.len();
                    let sealed = match out.get_mut(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + len)
                    {
                        Some(dst) => {
                            dst.copy_from_slice(&staged);
                            kp.seal(out, len, mtu).ok()
                        }
                        None => None,
                    };
                    let rekey = needs_rekey_on_send(kp, now, rekey_after);
                    peer.spare.push(staged);
                    let Some(total) = sealed else {
                        peer.counters.staged_dropped += 1;
                        continue;
                    };
                    peer.record_sent(now, total, Sealed::Data);
                    if rekey {
                        self.send_initiation(now, id, false);
                    }
                    return Some(Transmit {
                        to,
                        len: total,
                        segment_size: None,
                    });
                }
                if peer.want_keepalive {
                    peer.want_keepalive = false;
                    if let Ok(total) = kp.seal(out, 0, mtu) {
                        peer.record_sent(now, total, Sealed::Keepalive);
                        return Some(Transmit {
                            to,
                            len: total,
                            segment_size: None,
                        });
                    }
                }
            } else if (!peer.staged.is_empty() || peer.want_keepalive) && peer.handshake.is_none() {
                // Nothing can be sealed without a session: ask for one (rate limited), keep the packets.
                // With a handshake in flight its retransmit timer is already in charge.
                peer.want_keepalive = false;
                self.send_initiation(now, id, false);
                if self.peer(id).is_some_and(|p| p.want_initiation) {
                    continue;
                }
            }
            self.work.pop_front();
            if let Some(p) = self.peer_mut(id) {
                p.in_work_queue = false;
            }
        }
        None
    }

    /// The earliest instant [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flatten()
            .filter_map(|p| p.timers.next_deadline())
            .min()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- sending helpers -----------------------------------------------------------------------------

    /// Asks for an initiation to `peer`, at most one per REKEY_TIMEOUT (whitepaper §6.1).
    fn send_initiation(&mut self, now: Instant, peer_id: PeerId, is_retry: bool) {
        let rekey_timeout = self.config.times.rekey_timeout;
        let Some(peer) = self.peer_mut(peer_id) else {
            return;
        };
        if !is_retry {
            peer.timers.handshake_attempts = 0;
        }
        if peer
            .last_initiation_sent
            .is_some_and(|t| now.saturating_duration_since(t) < rekey_timeout)
        {
            return;
        }
        if peer.endpoint.is_none() {
            return;
        }
        peer.want_initiation = true;
        self.enqueue(peer_id);
    }

    fn create_initiation(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        out: &mut [u8],
    ) -> Option<Transmit> {
        let jitter = self.jitter();
        let wall = self.wall_clock(now);
        let to = self.peer(peer_id)?.endpoint?;
        let msg_buf = out.get_mut(..INITIATION_LEN)?;
        if let Some(old) = self.peer_mut(peer_id)?.handshake.take() {
            self.indices.remove(old.local_index);
        }
        let shard = self.peer_shard(peer_id);
        let local_index =
            self.indices
                .allocate(self.rng.as_mut(), peer_id, shard, self.config.data_shards);
        let ephemeral = PrivateKey::generate(self.rng.as_mut());
        let peer = self
            .peers
            .get_mut(peer_id.0 as usize)
            .and_then(Option::as_mut)?;
        let timestamp = Tai64N::from_system_time(wall);
        let Ok((msg, state)) = handshake::create_initiation(
            &self.identity,
            &peer.keys,
            local_index,
            ephemeral,
            timestamp,
        ) else {
            self.indices.remove(local_index);
            return None;
        };
        msg.emit(msg_buf).ok()?;
        peer.cookies.add_macs(now, msg_buf, Initiation::MAC1_OFFSET);
        peer.handshake = Some(state);
        peer.last_initiation_sent = Some(now);
        peer.counters.handshakes_initiated += 1;
        peer.counters.tx_bytes += INITIATION_LEN as u64;
        peer.timers.activity.authenticated_sent(now);
        peer.timers.handshake_initiated(now, jitter);
        Some(Transmit {
            to,
            len: INITIATION_LEN,
            segment_size: None,
        })
    }

    fn on_timer(&mut self, now: Instant, id: PeerId, kind: TimerKind) {
        let max_attempts = self.config.times.max_handshake_attempts();
        match kind {
            TimerKind::RetransmitHandshake => {
                let Some(peer) = self.peer_mut(id) else {
                    return;
                };
                if peer.timers.handshake_attempts > max_attempts {
                    peer.timers.handshake_given_up(now);
                    peer.drop_staged();
                    peer.want_keepalive = false;
                    let old = peer.handshake.take().map(|s| s.local_index);
                    self.free_indices(old);
                    self.push_event(Event::HandshakeFailed { peer: id });
                } else {
                    peer.timers.handshake_attempts += 1;
                    self.send_initiation(now, id, true);
                }
            }
            TimerKind::SendKeepalive => {
                let Some(peer) = self.peer_mut(id) else {
                    return;
                };
                if peer.sending_keypair(now).is_some() {
                    peer.want_keepalive = true;
                    self.enqueue(id);
                }
            }
            TimerKind::NewHandshake => self.send_initiation(now, id, false),
            TimerKind::ZeroKeyMaterial => {
                let Some(peer) = self.peer_mut(id) else {
                    return;
                };
                let freed = peer.keypairs.clear();
                let pending = peer.handshake.take().map(|s| s.local_index);
                let was_up = core::mem::replace(&mut peer.is_up, false);
                self.free_indices(freed.into_iter().flatten().chain(pending));
                if was_up {
                    self.push_event(Event::PeerDown { peer: id });
                }
            }
            TimerKind::PersistentKeepalive => self.send_keepalive(id),
        }
    }

    // ---- small helpers -------------------------------------------------------------------------------

    fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    fn enqueue(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
            && !p.in_work_queue
        {
            p.in_work_queue = true;
            self.work.push_back(id);
        }
    }

    fn free_indices(&mut self, indices: impl IntoIterator<Item = u32>) {
        for i in indices {
            self.indices.remove(i);
        }
    }

    /// The endpoint follows the source of the latest authenticated packet (roaming, whitepaper §2.1).
    fn roam(&mut self, id: PeerId, from: SocketAddr) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if peer.endpoint == Some(from) {
            return;
        }
        let old = peer.endpoint.replace(from);
        self.push_event(Event::EndpointChanged {
            peer: id,
            old,
            new: from,
        });
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.event_capacity {
            self.events_dropped += 1;
        } else {
            self.events.push_back(event);
        }
    }

    fn dropped<'b>(&mut self, reason: DropReason) -> Datagram<'b> {
        self.drops.count(reason);
        Datagram::Dropped(reason)
    }

    fn jitter(&mut self) -> Duration {
        let max = self
            .config
            .times
            .jitter_max
            .as_micros()
            .min(u128::from(u32::MAX - 1)) as u32
            + 1;
        Duration::from_micros(u64::from(self.rng.next_u32() % max))
    }

    fn wall_clock(&self, at: Instant) -> SystemTime {
        let (anchor, wall) = self.config.clock_anchor;
        let shifted = if at >= anchor {
            wall.checked_add(at - anchor)
        } else {
            wall.checked_sub(anchor - at)
        };
        shifted.unwrap_or(wall)
    }
}

/// Whether sending on `kp` should start a rekey (whitepaper §6.2: the initiator rekeys after
/// REKEY_AFTER_TIME or REKEY_AFTER_MESSAGES).
fn needs_rekey_on_send(kp: &Keypair, now: Instant, rekey_after: Duration) -> bool {
    kp.role == Role::Initiator
        && (now.saturating_duration_since(kp.created) >= rekey_after
            || kp.send_counter() >= REKEY_AFTER_MESSAGES)
}

fn wire_drop(e: WireError) -> DropReason {
    match e {
        WireError::TooShort { .. } => DropReason::TooShort,
        WireError::UnknownType(_) => DropReason::UnknownType,
        WireError::ReservedNonZero => DropReason::ReservedNonZero,
        _ => DropReason::BadLength,
    }
}

fn handshake_drop(e: HandshakeError) -> DropReason {
    match e {
        HandshakeError::LowOrderKey => DropReason::LowOrderKey,
        HandshakeError::DecryptFailed => DropReason::HandshakeDecryptFailed,
        HandshakeError::UnknownPeer => DropReason::UnknownPeer,
    }
}

mod peers;
mod receive;

#[cfg(test)]
mod tests;
