//! [`ControlPlane`]: the handshake half of a node, on one thread (the control shard). Handshakes,
//! cookies and the under-load decision, timers, peers and routing live here; transport keys never do.
//!
//! A finished handshake becomes a [`DataCommand::Install`] for the data path that owns the peer;
//! keepalives and key erasure are commands too. The data paths answer with [`DataNotice`]s and publish
//! each peer's activity, from which the timers here derive their deadlines.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh_crypto::rng::Rng;
use pnet_mesh_crypto::{PrivateKey, PublicKey, Tai64N};

use super::allowed_ips::AllowedIps;
use super::cookie::{CookieChecker, CookieReplyError, REPLY_LEN};
use super::data_path::DataPath;
use super::handoff::{AfterInstall, DataCommand, DataNotice, KeypairUpdate, PeerHandle};
use super::handshake::{self, HandshakeError, Identity, PeerKeys};
use super::index_table::IndexTable;
use super::keypair::Keypair;
use super::path;
use super::peer::Peer;
use super::published;
use super::rate_limit::RateLimiter;
use super::timers::TimerKind;
use super::wire::{
    self, CookieReply, INITIATION_LEN, Initiation, MessageType, RESPONSE_LEN, Response,
};
use super::{Datagram, DropCounters, DropReason, SendError, Transmit, wire_drop};
use crate::PeerId;
use crate::config::{AllowedIp, ConfigError, EndpointConfig, PeerConfig};
use crate::event::{Event, Role};
use crate::stats::PeerStats;

/// The handshake half of a node: handshakes, cookies, timers, peers and routing; never a transport
/// key after it is handed to the owning [`DataPath`].
///
/// # Use
/// After each input (`handle_*`, [`connect`](Self::connect), [`send_keepalive`](Self::send_keepalive),
/// peer changes), drain [`poll_transmit`](Self::poll_transmit), [`poll_command`](Self::poll_command)
/// (deliver each command to [`DataPath::handle_command`] of its shard) and
/// [`poll_event`](Self::poll_event); then sleep until [`poll_timeout`](Self::poll_timeout).
pub struct ControlPlane {
    config: Arc<EndpointConfig>,
    rng: Box<dyn Rng>,
    identity: Identity,
    checker: CookieChecker,
    limiter: RateLimiter,
    /// Peer slots by [`PeerId`]; a removed peer leaves `None`, reused by the next added one.
    peers: Vec<Option<Peer>>,
    by_key: HashMap<PublicKey, PeerId>,
    routes: Arc<AllowedIps>,
    indices: IndexTable,
    under_load: bool,
    events: VecDeque<Event>,
    events_dropped: u64,
    /// Peers with an initiation to send, each at most once.
    work: VecDeque<PeerId>,
    /// Commands for the data paths, by data shard. Each input adds a few; the driver drains them.
    commands: VecDeque<(u8, DataCommand)>,
    drops: DropCounters,
    /// Epoch of the instants the data paths publish.
    epoch: Instant,
}

impl core::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("public_key", &self.identity.public)
            .field("peers", &self.peers.iter().flatten().count())
            .field("under_load", &self.under_load)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Builds the control plane from a validated configuration, with `rng` as its only source of
    /// randomness and `now` as the present. Build each shard's data path with
    /// [`data_path`](Self::data_path).
    ///
    /// Peers with a persistent keepalive and a known endpoint are contacted at once, as wireguard-go
    /// does when an interface comes up: the first [`poll_transmit`](Self::poll_transmit) yields their
    /// handshake initiations.
    pub fn new(config: Arc<EndpointConfig>, rng: Box<dyn Rng>, now: Instant) -> Self {
        let identity = Identity::new(PrivateKey::from_bytes(*config.private_key.as_bytes()));
        let checker = CookieChecker::new(identity.mac1_key, identity.cookie_key, &config.times);
        let epoch = config.clock_anchor.0.min(now);
        let mut peers = Vec::with_capacity(config.peers.len());
        let mut by_key = HashMap::with_capacity(config.peers.len());
        for (i, pc) in config.peers.iter().enumerate() {
            let keys = PeerKeys::new(
                &identity,
                pc.public_key,
                pc.preshared_key.as_ref().map(|k| *k.as_bytes()),
            );
            peers.push(Some(Peer::new(keys, pc, config.times, epoch)));
            by_key.insert(pc.public_key, PeerId(i as u32));
        }
        // Endpoints name their own peer; a relayed peer's names its relay (validated to exist).
        for (i, pc) in config.peers.iter().enumerate() {
            let id = PeerId(i as u32);
            if let Some(Some(p)) = peers.get_mut(i) {
                p.endpoint = endpoint_of(id, pc, &by_key);
            }
        }
        let mut control = ControlPlane {
            limiter: RateLimiter::new(config.rate_limit_entries),
            events: VecDeque::with_capacity(config.event_capacity.min(1024)),
            work: VecDeque::with_capacity(peers.len()),
            commands: VecDeque::with_capacity(usize::from(config.data_shards.max(1)) * 4),
            indices: IndexTable::with_capacity(peers.len() * 4),
            routes: Arc::new(AllowedIps::new()),
            config,
            rng,
            identity,
            checker,
            peers,
            by_key,
            under_load: false,
            events_dropped: 0,
            drops: DropCounters::default(),
            epoch,
        };
        control.routes = Arc::new(control.build_routes());
        for id in 0..control.peers.len() {
            let id = PeerId(id as u32);
            if control
                .peer(id)
                .is_some_and(|p| p.persistent_keepalive.is_some() && p.endpoint.is_some())
            {
                control.send_initiation(now, id, false);
            }
        }
        control
    }

    /// A data path for data shard `shard` holding the peers it owns now.
    pub fn data_path(&self, shard: u8) -> DataPath {
        let mut path = DataPath::new(&self.config, shard, self.routes.clone());
        for id in self.peer_ids() {
            if self.peer_shard(id) == shard
                && let Some(handle) = self.peer_handle(id)
            {
                path.add_peer(handle);
            }
        }
        path
    }

    // ---- getters -------------------------------------------------------------------------------------

    /// The configuration the control plane started with.
    pub fn config(&self) -> &Arc<EndpointConfig> {
        &self.config
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public
    }

    /// The peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// The allowed-IPs table as it stands (shared with the data paths).
    pub fn routes(&self) -> &Arc<AllowedIps> {
        &self.routes
    }

    /// The peer whose allowed IPs route `addr`.
    pub fn route(&self, addr: std::net::IpAddr) -> Option<PeerId> {
        self.routes.lookup(addr)
    }

    /// Drops so far, per reason (handshake messages only; transport drops are counted by the data
    /// paths).
    pub fn drop_counters(&self) -> &DropCounters {
        &self.drops
    }

    /// Events discarded because the event queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Whether the node considers itself under load.
    pub fn is_under_load(&self) -> bool {
        self.under_load
    }

    /// Sources the per-source handshake limiter tracks now (bounded by its capacity).
    pub fn rate_limiter_entries(&self) -> usize {
        self.limiter.len()
    }

    /// The data shard that owns `peer`'s sessions: every receiver index of the peer maps to it (see
    /// [`shard_of_index`](crate::proto::shard_of_index)). Peers are spread round-robin by id.
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
        let data = &p.published;
        Some(PeerStats {
            public_key: p.keys.public,
            endpoint: p.endpoint,
            allowed_ips: p.allowed_ips.clone(),
            last_handshake: p.last_handshake.map(|t| self.wall_clock(t)),
            rx_bytes: p.counters.rx_bytes + published::get(&data.rx_bytes),
            tx_bytes: p.counters.tx_bytes + published::get(&data.tx_bytes),
            rx_packets: published::get(&data.rx_packets),
            tx_packets: published::get(&data.tx_packets),
            rx_keepalives: published::get(&data.rx_keepalives),
            handshakes_initiated: p.counters.initiated,
            handshakes_answered: p.counters.answered,
            staged_dropped: published::get(&data.staged_dropped),
            persistent_keepalive: p.persistent_keepalive,
        })
    }

    /// Moves `peer` to `endpoint` (a socket address, or a relay path) as roaming would, for the owner
    /// of the path choice (the mesh prober's promotion and fallback).
    pub fn set_endpoint(&mut self, peer: PeerId, endpoint: SocketAddr) {
        self.roam(peer, endpoint, true);
    }

    /// Every peer's id, public key and allowed IPs.
    pub fn peer_keys(&self) -> impl Iterator<Item = (PeerId, PublicKey, &[AllowedIp])> + '_ {
        self.peers.iter().enumerate().filter_map(|(i, p)| {
            p.as_ref()
                .map(|p| (PeerId(i as u32), p.keys.public, p.allowed_ips.as_slice()))
        })
    }

    /// Every peer's id.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| PeerId(i as u32))
    }

    // ---- inputs --------------------------------------------------------------------------------------

    /// Tells the control plane whether the node is under load. Under load, handshake messages must carry
    /// a valid mac2 (or get a cookie reply) and each source is rate limited.
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

    /// Asks the owning data path for a keepalive to `peer` (it asks for a handshake first if there is
    /// no session).
    pub fn send_keepalive(&mut self, peer: PeerId) {
        if self.peer(peer).is_some() {
            self.command(peer, DataCommand::Keepalive { peer });
        }
    }

    /// Processes one handshake message (types 1-3), in place in `buf`. A transport message is
    /// [`DropReason::UnknownType`] here: it belongs to a data path.
    ///
    /// Returns [`Datagram::Reply`] for a cookie reply written over `buf`, [`Datagram::Consumed`]
    /// otherwise (a handshake response leaves through the data path, after its keypair is installed).
    pub fn handle_handshake(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Datagram<'static> {
        let kind = match wire::peek_type(buf) {
            Ok(kind) => kind,
            Err(e) => return self.dropped(wire_drop(e)),
        };
        let outcome = match kind {
            MessageType::Transport => Err(DropReason::UnknownType),
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

    /// Takes a notice from a data path.
    pub fn handle_notice(&mut self, now: Instant, notice: DataNotice) {
        match notice {
            DataNotice::NeedHandshake { peer } => self.send_initiation(now, peer, false),
            DataNotice::Confirmed { peer } => self.confirmed(now, peer),
            DataNotice::Roamed { peer, endpoint } => self.roam(peer, endpoint, false),
            DataNotice::Retired { peer, index } => {
                if self.indices.get(index) == Some(peer) {
                    self.indices.remove(index);
                }
            }
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let id = PeerId(i as u32);
            while let Some(kind) = {
                let jitter = self.jitter();
                self.peer_mut(id).and_then(|p| {
                    let activity = p.published.activity();
                    p.timers.take_expired(now, jitter, &activity)
                })
            } {
                self.on_timer(now, id, kind);
            }
        }
    }

    // ---- outputs -------------------------------------------------------------------------------------

    /// Writes the next handshake initiation into `out` (at least 148 bytes).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        while let Some(id) = self.work.pop_front() {
            let Some(peer) = self.peer_mut(id) else {
                continue;
            };
            peer.in_work_queue = false;
            if core::mem::take(&mut peer.want_initiation)
                && let Some(t) = self.create_initiation(now, id, out)
            {
                return Some(t);
            }
        }
        None
    }

    /// The next command for a data path, with the data shard it is for.
    pub fn poll_command(&mut self) -> Option<(u8, DataCommand)> {
        self.commands.pop_front()
    }

    /// The earliest instant [`handle_timeout`](Self::handle_timeout) has work, from the stored
    /// deadlines and the activity the data paths published so far. Activity published later can only
    /// bring a deadline forward from "none", so a driver on another thread than the data paths should
    /// not sleep longer than [`max_sleep`](Self::max_sleep).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flatten()
            .filter_map(|p| p.timers.next_deadline(&p.published.activity()))
            .min()
    }

    /// Whether output waits to be polled (a handshake to send, a command for a data path) although no
    /// input arrived: a driver must then poll at once rather than sleep. Peers with a persistent
    /// keepalive are queued so at construction.
    pub fn has_output(&self) -> bool {
        !self.work.is_empty() || !self.commands.is_empty() || !self.events.is_empty()
    }

    /// The longest a driver may sleep without missing a deadline derived from activity published on
    /// another thread by more than this: a twentieth of REKEY_TIMEOUT (250 ms by default), well inside
    /// the timers' own jitter.
    pub fn max_sleep(&self) -> Duration {
        self.config.times.rekey_timeout / 20
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- handshake steps -----------------------------------------------------------------------------

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
        if !peer.in_work_queue {
            peer.in_work_queue = true;
            self.work.push_back(peer_id);
        }
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
        peer.counters.initiated += 1;
        peer.counters.tx_bytes += INITIATION_LEN as u64;
        peer.published.authenticated_sent(now);
        peer.timers.handshake_initiated(now, jitter);
        let attempt = peer.timers.handshake_attempts;
        self.push_event(Event::HandshakeInitiated {
            peer: peer_id,
            attempt,
        });
        Some(Transmit {
            to,
            len: INITIATION_LEN,
            segment_size: None,
        })
    }

    /// The responder's keypair was confirmed by the initiator's first transport message.
    fn confirmed(&mut self, now: Instant, id: PeerId) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        peer.timers.handshake_complete();
        peer.last_handshake = Some(now);
        let rotated = core::mem::replace(&mut peer.has_session, true);
        let was_up = core::mem::replace(&mut peer.is_up, true);
        self.push_event(Event::HandshakeCompleted {
            peer: id,
            role: Role::Responder,
        });
        if rotated {
            self.push_event(Event::KeypairRotated { peer: id });
        }
        if !was_up {
            self.push_event(Event::PeerUp { peer: id });
        }
    }

    fn on_timer(&mut self, now: Instant, id: PeerId, kind: TimerKind) {
        let max_attempts = self.config.times.max_handshake_attempts();
        match kind {
            TimerKind::RetransmitHandshake => {
                let Some(peer) = self.peer_mut(id) else {
                    return;
                };
                if peer.timers.handshake_attempts > max_attempts {
                    let activity = peer.published.activity();
                    peer.timers.handshake_given_up(now, &activity);
                    let old = peer.handshake.take().map(|s| s.local_index);
                    self.free_indices(old);
                    self.command(id, DataCommand::DropStaged { peer: id });
                    self.push_event(Event::HandshakeFailed { peer: id });
                } else {
                    peer.timers.handshake_attempts += 1;
                    self.send_initiation(now, id, true);
                }
            }
            TimerKind::SendKeepalive => {
                if self.peer(id).is_some_and(|p| p.has_session) {
                    self.command(id, DataCommand::Keepalive { peer: id });
                }
            }
            TimerKind::NewHandshake => self.send_initiation(now, id, false),
            TimerKind::ZeroKeyMaterial => {
                let Some(peer) = self.peer_mut(id) else {
                    return;
                };
                let pending = peer.handshake.take().map(|s| s.local_index);
                peer.has_session = false;
                let was_up = core::mem::replace(&mut peer.is_up, false);
                self.free_indices(pending);
                self.command(id, DataCommand::ClearKeys { peer: id });
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

    fn peer_handle(&self, id: PeerId) -> Option<PeerHandle> {
        let p = self.peer(id)?;
        Some(PeerHandle {
            peer: id,
            published: p.published.clone(),
            endpoint: p.endpoint,
        })
    }

    /// Queues `command` for the data path that owns `peer`.
    fn command(&mut self, peer: PeerId, command: DataCommand) {
        let shard = self.peer_shard(peer);
        self.commands.push_back((shard, command));
    }

    /// Hands a finished handshake's keypair to the owning data path.
    fn install(
        &mut self,
        peer: PeerId,
        keypair: Keypair,
        endpoint: SocketAddr,
        then: AfterInstall,
    ) {
        self.command(
            peer,
            DataCommand::Install(Box::new(KeypairUpdate {
                peer,
                keypair,
                endpoint,
                then,
            })),
        );
    }

    fn free_indices(&mut self, indices: impl IntoIterator<Item = u32>) {
        for i in indices {
            self.indices.remove(i);
        }
    }

    /// The endpoint follows the source of the latest authenticated packet (roaming, whitepaper §2.1).
    /// `tell_data_path` is false when the data path itself saw it.
    fn roam(&mut self, id: PeerId, from: SocketAddr, tell_data_path: bool) {
        let from = path::bind(from, id);
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if peer.endpoint == Some(from) {
            return;
        }
        let old = peer.endpoint.replace(from);
        if tell_data_path {
            self.command(
                id,
                DataCommand::SetEndpoint {
                    peer: id,
                    endpoint: from,
                },
            );
        }
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

    fn dropped(&mut self, reason: DropReason) -> Datagram<'static> {
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

fn handshake_drop(e: HandshakeError) -> DropReason {
    match e {
        HandshakeError::LowOrderKey => DropReason::LowOrderKey,
        HandshakeError::DecryptFailed => DropReason::HandshakeDecryptFailed,
        HandshakeError::UnknownPeer => DropReason::UnknownPeer,
    }
}

mod peers;
mod receive;

/// Where `config` says peer `id` is reached: through its relay's session (a relay path), at its
/// endpoint, or not yet.
pub(crate) fn endpoint_of(
    id: PeerId,
    config: &PeerConfig,
    by_key: &HashMap<PublicKey, PeerId>,
) -> Option<SocketAddr> {
    match &config.via {
        Some(relay) => by_key.get(relay).map(|r| path::bind(path::via(*r), id)),
        None => config.endpoint.map(|e| path::bind(e, id)),
    }
}
