//! [`DataPath`]: the transport half of a node, one per data shard. It owns the keypairs, send counters
//! and replay windows of the peers whose receiver indices map to its shard, and nothing else.
//!
//! It opens and seals in place, follows roaming, holds packets back while a handshake runs, and tells
//! the control plane what it needs through coalesced [`DataNotice`]s. Keys arrive only through
//! [`DataCommand::Install`], and only this data path ever uses or erases them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::allowed_ips::AllowedIps;
use super::constants::{ProtocolTimes, REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES};
use super::handoff::{AfterInstall, DataCommand, DataNotice, KeypairUpdate, PeerHandle};
use super::keypair::{Keypair, Keypairs, Retired, Slot};
use super::path;
use super::published::{self, Published};
use super::wire::{RESPONSE_LEN, TRANSPORT_HEADER_LEN, TransportHeader};
use super::{Datagram, DropCounters, DropReason, PacketBuf, SendError, Transmit, ip, wire_drop};
use crate::PeerId;
use crate::config::EndpointConfig;
use crate::event::Role;

/// Retirements of removed peers held at most (beyond that the index stays reserved: harmless).
const ORPHAN_CAPACITY: usize = 256;

/// Notices waiting for the control plane, one slot per kind.
#[derive(Debug, Default)]
struct Pending {
    need_handshake: bool,
    confirmed: bool,
    roamed: Option<SocketAddr>,
    /// Retired receiver indices (a peer retires at most two per handshake and three when cleared).
    retired: [u32; 8],
    retired_len: u8,
}

impl Pending {
    fn is_empty(&self) -> bool {
        !self.need_handshake && !self.confirmed && self.roamed.is_none() && self.retired_len == 0
    }
}

/// One peer as the data path sees it.
struct DataPeer {
    keypairs: Keypairs,
    endpoint: Option<SocketAddr>,
    /// When an authenticated packet last came from `endpoint`; `None` after the endpoint was set
    /// from outside, until the next packet (the hold of [`path::RELAY_ROAM_HOLD`] starts then).
    endpoint_heard: Option<Instant>,
    published: Arc<Published>,
    /// Packets waiting for a session; bounded, oldest dropped first.
    staged: VecDeque<Vec<u8>>,
    staged_capacity: usize,
    /// Spent staging buffers, reused so a long handshake does not allocate per packet.
    spare: Vec<Vec<u8>>,
    /// The handshake response to send, once its keypair is installed.
    response: Option<(SocketAddr, [u8; RESPONSE_LEN])>,
    want_keepalive: bool,
    in_work_queue: bool,
    /// Whether the receive-side "rekey before reject" handshake was already asked for this keypair.
    asked_last_minute: bool,
    pending: Pending,
    in_notice_queue: bool,
}

/// The transport half of a node for one data shard: the keypairs, send counters and replay windows
/// of the peers it owns.
pub struct DataPath {
    shard: u8,
    mtu: usize,
    times: ProtocolTimes,
    staged_capacity: usize,
    peers: Vec<Option<DataPeer>>,
    /// Our receiver index of each installed keypair → its peer.
    indices: HashMap<u32, PeerId>,
    routes: Arc<AllowedIps>,
    /// Peers with something to send, each at most once.
    work: VecDeque<PeerId>,
    /// Peers with pending notices, each at most once.
    notices: VecDeque<PeerId>,
    /// Retirements of removed peers, bounded (see `push_retired_for_removed`).
    orphans: VecDeque<DataNotice>,
    drops: DropCounters,
    retired_overflow: u64,
}

impl core::fmt::Debug for DataPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DataPath")
            .field("shard", &self.shard)
            .field("peers", &self.peers.iter().flatten().count())
            .field("keypairs", &self.indices.len())
            .finish_non_exhaustive()
    }
}

impl DataPath {
    /// An empty data path for data shard `shard` (peers arrive with [`DataCommand::AddPeer`]).
    pub fn new(config: &EndpointConfig, shard: u8, routes: Arc<AllowedIps>) -> Self {
        DataPath {
            shard,
            mtu: usize::from(config.mtu),
            times: config.times,
            staged_capacity: config.staged_packets,
            peers: Vec::new(),
            indices: HashMap::new(),
            routes,
            work: VecDeque::new(),
            notices: VecDeque::new(),
            orphans: VecDeque::with_capacity(ORPHAN_CAPACITY),
            drops: DropCounters::default(),
            retired_overflow: 0,
        }
    }

    /// The largest inner packet of the node.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The data shard this path serves.
    pub fn shard(&self) -> u8 {
        self.shard
    }

    /// Drops so far, per reason.
    pub fn drop_counters(&self) -> &DropCounters {
        &self.drops
    }

    /// Whether a session with `peer` can send now.
    pub fn has_session(&self, now: Instant, peer: PeerId) -> bool {
        self.peer(peer)
            .and_then(|p| p.keypairs.current.as_ref())
            .is_some_and(|k| k.can_send(now))
    }

    /// Keypairs installed here.
    pub fn keypairs(&self) -> usize {
        self.indices.len()
    }

    /// Whether this path owns `peer`.
    pub fn owns(&self, peer: PeerId) -> bool {
        self.peer(peer).is_some()
    }

    // ---- inputs --------------------------------------------------------------------------------------

    /// Applies a command from the control plane.
    pub fn handle_command(&mut self, command: DataCommand) {
        match command {
            DataCommand::Install(update) => self.install(*update),
            DataCommand::Keepalive { peer } => {
                if let Some(p) = self.peer_mut(peer) {
                    p.want_keepalive = true;
                    self.enqueue(peer);
                }
            }
            DataCommand::SetEndpoint { peer, endpoint } => {
                if let Some(p) = self.peer_mut(peer) {
                    p.endpoint = Some(endpoint);
                    p.endpoint_heard = None;
                }
            }
            DataCommand::DropStaged { peer } => {
                if let Some(p) = self.peer_mut(peer) {
                    p.drop_staged();
                    p.want_keepalive = false;
                }
            }
            DataCommand::ClearKeys { peer } => {
                let Some(p) = self.peer_mut(peer) else { return };
                let freed = p.keypairs.clear();
                p.drop_staged();
                p.want_keepalive = false;
                p.response = None;
                self.retire(peer, freed);
            }
            DataCommand::AddPeer(handle) => self.add_peer(handle),
            DataCommand::RemovePeer { peer } => {
                let Some(mut p) = self.peers.get_mut(peer.0 as usize).and_then(Option::take) else {
                    return;
                };
                let freed = p.keypairs.clear();
                // The control plane frees the indices of a removed peer when it hears of them.
                for index in freed.into_iter().flatten() {
                    self.indices.remove(&index);
                    self.push_retired_for_removed(peer, index);
                }
            }
            DataCommand::Routes(routes) => self.routes = routes,
        }
    }

    /// Takes over `handle`'s peer.
    pub fn add_peer(&mut self, handle: PeerHandle) {
        let slot = handle.peer.0 as usize;
        if self.peers.len() <= slot {
            self.peers.resize_with(slot + 1, || None);
        }
        let staged_capacity = self.staged_capacity;
        if let Some(s) = self.peers.get_mut(slot) {
            *s = Some(DataPeer {
                keypairs: Keypairs::default(),
                endpoint: handle.endpoint,
                endpoint_heard: None,
                published: handle.published,
                staged: VecDeque::with_capacity(staged_capacity.min(16)),
                staged_capacity,
                spare: Vec::new(),
                response: None,
                want_keepalive: false,
                in_work_queue: false,
                asked_last_minute: false,
                pending: Pending::default(),
                in_notice_queue: false,
            });
        }
    }

    fn install(&mut self, update: KeypairUpdate) {
        let KeypairUpdate {
            peer,
            keypair,
            endpoint,
            then,
        } = update;
        let index = keypair.local_index;
        let Some(p) = self.peer_mut(peer) else {
            // The peer was removed meanwhile: the keypair dies here, its index goes back.
            drop(keypair);
            self.push_retired_for_removed(peer, index);
            return;
        };
        p.endpoint = Some(endpoint);
        p.endpoint_heard = None;
        p.asked_last_minute = false;
        let retired = match then {
            AfterInstall::Respond(response) => {
                p.response = Some((endpoint, response));
                p.keypairs.install_responder(keypair)
            }
            AfterInstall::Confirm => {
                // Confirm the session to the responder: staged packets, or else a keepalive.
                if p.staged.is_empty() {
                    p.want_keepalive = true;
                }
                p.keypairs.install_initiator(keypair)
            }
        };
        self.indices.insert(index, peer);
        self.retire(peer, retired);
        self.enqueue(peer);
    }

    /// Processes one transport message (type 4), in place in `buf`: size → receiver index → age and
    /// counter limits → replay check → open → replay commit → roaming and timers → inner header and
    /// allowed-IPs source check.
    pub fn handle_transport<'b>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &'b mut [u8],
    ) -> Datagram<'b> {
        let times = self.times;
        let header = match TransportHeader::parse(buf) {
            Ok(h) => h,
            Err(e) => return self.dropped(wire_drop(e)),
        };
        let Some(&peer_id) = self.indices.get(&header.receiver) else {
            return self.dropped(DropReason::UnknownReceiverIndex);
        };
        let Some(peer) = self
            .peers
            .get_mut(peer_id.0 as usize)
            .and_then(Option::as_mut)
        else {
            return self.dropped(DropReason::UnknownReceiverIndex);
        };
        let Some(slot) = peer.keypairs.slot_of(header.receiver) else {
            return self.dropped(DropReason::UnknownReceiverIndex);
        };
        let Some(kp) = peer.keypairs.get_mut(slot) else {
            return self.dropped(DropReason::UnknownReceiverIndex);
        };
        if kp.is_expired(now) {
            return self.dropped(DropReason::KeypairExpired);
        }
        // Once the last usable counter has been received the keypair is spent, even for counters
        // still inside the window (kernel `decrypt_packet`, WIREGUARD_CHECKLIST case 28).
        if header.counter >= REJECT_AFTER_MESSAGES
            || kp
                .replay
                .latest()
                .is_some_and(|l| l >= REJECT_AFTER_MESSAGES - 1)
        {
            return self.dropped(DropReason::CounterLimit);
        }
        if !kp.replay.check(header.counter) {
            return self.dropped(DropReason::Replayed);
        }
        let datagram_len = buf.len();
        let (_, body) = buf.split_at_mut(TRANSPORT_HEADER_LEN);
        let Some(plain) = kp.open(header.counter, body) else {
            return self.dropped(DropReason::TransportDecryptFailed);
        };
        let plain_len = plain.len();
        // Authenticated from here on.
        kp.replay.commit(header.counter);
        let current_is_old_initiator = peer.keypairs.current.as_ref().is_some_and(|k| {
            k.role == Role::Initiator
                && now.saturating_duration_since(k.created)
                    >= times
                        .reject_after_time
                        .saturating_sub(times.keepalive_timeout + times.rekey_timeout)
        });
        let published = &peer.published;
        published::add(&published.rx_bytes, datagram_len as u64);
        published::add(&published.rx_packets, 1);
        published.authenticated_received(now);
        let mut retired: Retired = [None, None];
        let confirmed = slot == Slot::Next;
        if confirmed {
            retired = peer.keypairs.confirm_next();
            peer.asked_last_minute = false;
            peer.pending.confirmed = true;
        }
        // The endpoint follows the source of the latest authenticated packet (whitepaper §2.1), but a
        // packet that came through a relay never moves a direct endpoint (see `path`).
        if peer.endpoint == Some(path::bind(from, peer_id)) {
            peer.endpoint_heard = Some(now);
        }
        let heard = *peer.endpoint_heard.get_or_insert(now);
        let roam_to = path::roam_target(
            peer.endpoint,
            from,
            peer_id,
            now.saturating_duration_since(heard) < path::RELAY_ROAM_HOLD,
        );
        let roamed = roam_to.is_some();
        if let Some(to) = roam_to {
            peer.endpoint = Some(to);
            peer.endpoint_heard = Some(now);
            peer.pending.roamed = Some(to);
        }
        let last_minute = current_is_old_initiator && !peer.asked_last_minute;
        if last_minute {
            peer.asked_last_minute = true;
            peer.pending.need_handshake = true;
        }
        let has_staged = !peer.staged.is_empty();
        let is_keepalive = plain_len == 0;
        if is_keepalive {
            published::add(&peer.published.rx_keepalives, 1);
        } else {
            peer.published.data_received(now);
        }
        if confirmed || roamed || last_minute {
            self.notice(peer_id);
        }
        if confirmed {
            self.retire(peer_id, retired);
            // Packets staged while we were waiting can go now.
            if has_staged {
                self.enqueue(peer_id);
            }
        }
        if is_keepalive {
            return Datagram::Consumed;
        }
        let plain = buf
            .get_mut(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + plain_len)
            .unwrap_or_default();
        let packet_len = match ip::packet_len(plain) {
            Ok(n) => n,
            Err(_) => {
                plain.fill(0);
                return self.dropped(DropReason::InvalidInnerPacket);
            }
        };
        let allowed = ip::source(plain).and_then(|src| self.routes.lookup(src)) == Some(peer_id);
        if !allowed {
            plain.fill(0);
            return self.dropped(DropReason::SourceNotAllowed);
        }
        let packet = plain.get_mut(..packet_len).unwrap_or_default();
        Datagram::Deliver {
            peer: peer_id,
            packet,
        }
    }

    /// Seals the IP packet in `pkt` for `peer` (already routed and checked by [`route_packet`](super::route_packet)).
    ///
    /// Returns `Ok(Some(transmit))` with the datagram now in [`PacketBuf::datagram`], or `Ok(None)` when
    /// the packet was held until a handshake completes (a [`DataNotice::NeedHandshake`] is pending).
    ///
    /// # Errors
    /// [`SendError`]: larger than the MTU, no endpoint, or a short buffer.
    pub fn send_packet(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        pkt: &mut PacketBuf<'_>,
    ) -> Result<Option<Transmit>, SendError> {
        self.send_packet_up_to(now, peer_id, pkt, self.mtu)
    }

    /// [`send_packet`](Self::send_packet) for a packet of up to `max_len` bytes instead of the MTU: a
    /// relay frame, which wraps a full-MTU datagram of another session.
    ///
    /// # Errors
    /// As `send_packet`, with `max_len` as the limit.
    pub fn send_packet_up_to(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        pkt: &mut PacketBuf<'_>,
        max_len: usize,
    ) -> Result<Option<Transmit>, SendError> {
        let rekey_after = self.times.rekey_after_time;
        let mtu = max_len;
        let (buf, start, end) = pkt.parts();
        let len = end - start;
        if len > mtu {
            return Err(SendError::TooLarge { len, max: mtu });
        }
        let Some(peer) = self
            .peers
            .get_mut(peer_id.0 as usize)
            .and_then(Option::as_mut)
        else {
            return Err(SendError::NoEndpoint);
        };
        let Some(to) = peer.endpoint else {
            return Err(SendError::NoEndpoint);
        };
        let Some(kp) = peer.keypairs.current.as_mut().filter(|k| k.can_send(now)) else {
            let payload = buf.get(start..end).ok_or(SendError::InvalidPacket)?;
            peer.stage(payload);
            peer.pending.need_handshake = true;
            self.notice(peer_id);
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
        peer.published.sent(now, total, true);
        if rekey {
            peer.pending.need_handshake = true;
            self.notice(peer_id);
        }
        Ok(Some(Transmit {
            to,
            len: total,
            segment_size: None,
        }))
    }

    // ---- outputs -------------------------------------------------------------------------------------

    /// Writes the next handshake response, released staged packet or keepalive into `out` (at least
    /// 92 bytes, and MTU + 32 for staged packets).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        let rekey_after = self.times.rekey_after_time;
        let mtu = self.mtu;
        while let Some(&id) = self.work.front() {
            let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                self.work.pop_front();
                continue;
            };
            if let Some((to, response)) = peer.response.take()
                && let Some(dst) = out.get_mut(..RESPONSE_LEN)
            {
                dst.copy_from_slice(&response);
                return Some(Transmit {
                    to,
                    len: RESPONSE_LEN,
                    segment_size: None,
                });
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
                            // A staged relay frame was checked against its own, larger limit.
                            kp.seal(out, len, mtu.max(len)).ok()
                        }
                        None => None,
                    };
                    let rekey = needs_rekey_on_send(kp, now, rekey_after);
                    peer.spare.push(staged);
                    let Some(total) = sealed else {
                        published::add(&peer.published.staged_dropped, 1);
                        continue;
                    };
                    peer.published.sent(now, total, true);
                    if rekey {
                        peer.pending.need_handshake = true;
                        self.notice(id);
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
                        peer.published.sent(now, total, false);
                        return Some(Transmit {
                            to,
                            len: total,
                            segment_size: None,
                        });
                    }
                }
            } else if !peer.staged.is_empty() || peer.want_keepalive {
                // Nothing can be sealed without a session: ask for one, keep the packets.
                peer.want_keepalive = false;
                peer.pending.need_handshake = true;
                self.notice(id);
            }
            self.work.pop_front();
            if let Some(p) = self.peer_mut(id) {
                p.in_work_queue = false;
            }
        }
        None
    }

    /// Writes a pending handshake response into `out`, if one waits: the single-threaded
    /// [`Endpoint`](super::Endpoint) answers an initiation in place with it.
    pub fn take_response(&mut self, out: &mut [u8]) -> Option<Transmit> {
        for &id in &self.work {
            let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                continue;
            };
            if peer.response.is_some() {
                let dst = out.get_mut(..RESPONSE_LEN)?;
                let (to, response) = peer.response.take()?;
                dst.copy_from_slice(&response);
                return Some(Transmit {
                    to,
                    len: RESPONSE_LEN,
                    segment_size: None,
                });
            }
        }
        None
    }

    /// The next notice for the control plane.
    pub fn poll_notice(&mut self) -> Option<DataNotice> {
        while let Some(&peer) = self.notices.front() {
            let p = self
                .peers
                .get_mut(peer.0 as usize)
                .and_then(Option::as_mut)
                .map(|p| &mut p.pending);
            let notice = p.and_then(|pending| take_notice(peer, pending));
            if notice.is_some() {
                return notice;
            }
            self.notices.pop_front();
            if let Some(p) = self.peer_mut(peer) {
                p.in_notice_queue = false;
            }
        }
        self.orphans.pop_front()
    }

    /// Puts back a notice the control plane could not take (its channel was full).
    pub fn restore_notice(&mut self, notice: DataNotice) {
        match notice {
            DataNotice::NeedHandshake { peer } => {
                if let Some(p) = self.peer_mut(peer) {
                    p.pending.need_handshake = true;
                    self.notice(peer);
                }
            }
            DataNotice::Confirmed { peer } => {
                if let Some(p) = self.peer_mut(peer) {
                    p.pending.confirmed = true;
                    self.notice(peer);
                }
            }
            DataNotice::Roamed { peer, endpoint } => {
                if let Some(p) = self.peer_mut(peer) {
                    p.pending.roamed.get_or_insert(endpoint);
                    self.notice(peer);
                }
            }
            DataNotice::Retired { peer, index } => self.push_retired_for_removed(peer, index),
        }
    }

    // ---- helpers -------------------------------------------------------------------------------------

    fn peer(&self, id: PeerId) -> Option<&DataPeer> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut DataPeer> {
        self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    fn enqueue(&mut self, id: PeerId) {
        if let Some(p) = self.peer_mut(id)
            && !p.in_work_queue
        {
            p.in_work_queue = true;
            self.work.push_back(id);
        }
    }

    fn notice(&mut self, id: PeerId) {
        if let Some(p) = self.peer_mut(id)
            && !p.in_notice_queue
        {
            p.in_notice_queue = true;
            self.notices.push_back(id);
        }
    }

    /// Forgets retired keypairs' indices here and tells the control plane.
    fn retire(&mut self, peer: PeerId, indices: impl IntoIterator<Item = Option<u32>>) {
        let mut any = false;
        for index in indices.into_iter().flatten() {
            self.indices.remove(&index);
            match self.peer_mut(peer) {
                Some(p) if usize::from(p.pending.retired_len) < p.pending.retired.len() => {
                    if let Some(slot) = p
                        .pending
                        .retired
                        .get_mut(usize::from(p.pending.retired_len))
                    {
                        *slot = index;
                    }
                    p.pending.retired_len += 1;
                    any = true;
                }
                _ => self.retired_overflow += 1,
            }
        }
        if any {
            self.notice(peer);
        }
    }

    /// Retirements of a peer that is gone wait in a queue of their own, bounded by the keypairs a
    /// data path can hold.
    fn push_retired_for_removed(&mut self, peer: PeerId, index: u32) {
        if self.orphans.len() < ORPHAN_CAPACITY {
            self.orphans.push_back(DataNotice::Retired { peer, index });
        } else {
            self.retired_overflow += 1;
        }
    }

    /// Retired indices the control plane could not be told of (pending slots full, or the queue of a
    /// removed peer's retirements full); the control plane then frees them only when the peer goes.
    pub fn retirements_lost(&self) -> u64 {
        self.retired_overflow
    }

    fn dropped<'b>(&mut self, reason: DropReason) -> Datagram<'b> {
        self.drops.count(reason);
        Datagram::Dropped(reason)
    }
}

impl DataPeer {
    /// Holds a copy of `packet` until a session exists; drops the oldest when full.
    fn stage(&mut self, packet: &[u8]) {
        if self.staged.len() >= self.staged_capacity {
            if let Some(old) = self.staged.pop_front() {
                self.spare.push(old);
            }
            published::add(&self.published.staged_dropped, 1);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        self.staged.push_back(buf);
    }

    /// Drops every staged packet (the handshake failed).
    fn drop_staged(&mut self) {
        published::add(&self.published.staged_dropped, self.staged.len() as u64);
        while let Some(b) = self.staged.pop_front() {
            self.spare.push(b);
        }
    }
}

/// The first pending notice of one peer, clearing its slot.
fn take_notice(peer: PeerId, pending: &mut Pending) -> Option<DataNotice> {
    if pending.retired_len > 0 {
        pending.retired_len -= 1;
        let index = *pending.retired.get(usize::from(pending.retired_len))?;
        return Some(DataNotice::Retired { peer, index });
    }
    if let Some(endpoint) = pending.roamed.take() {
        return Some(DataNotice::Roamed { peer, endpoint });
    }
    if core::mem::take(&mut pending.confirmed) {
        return Some(DataNotice::Confirmed { peer });
    }
    if core::mem::take(&mut pending.need_handshake) {
        return Some(DataNotice::NeedHandshake { peer });
    }
    debug_assert!(pending.is_empty());
    None
}

/// Whether sending on `kp` should start a rekey (whitepaper §6.2: the initiator rekeys after
/// REKEY_AFTER_TIME or REKEY_AFTER_MESSAGES).
fn needs_rekey_on_send(kp: &Keypair, now: Instant, rekey_after: Duration) -> bool {
    kp.role == Role::Initiator
        && (now.saturating_duration_since(kp.created) >= rekey_after
            || kp.send_counter() >= REKEY_AFTER_MESSAGES)
}
