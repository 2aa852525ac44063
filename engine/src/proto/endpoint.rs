//! [`Endpoint`]: one WireGuard node as a single-threaded state machine — a [`ControlPlane`] and one
//! [`DataPath`] per data shard, wired together in process.
//!
//! The runtime runs the same two halves on separate threads and passes the same commands and notices
//! over channels; here they are handed across at once, which is what tests, fuzzers and the in-memory
//! benchmark drive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use pnet_mesh_crypto::PublicKey;
use pnet_mesh_crypto::rng::Rng;

use super::control::ControlPlane;
use super::data_path::DataPath;
use super::wire::{self, MessageType, TransportHeader};
use super::{
    Datagram, DropCounters, PacketBuf, SendError, Transmit, route_packet, shard_of_index, wire_drop,
};
use crate::PeerId;
use crate::config::{ConfigError, EndpointConfig, PeerConfig};
use crate::event::Event;
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
    control: ControlPlane,
    data: Vec<DataPath>,
    /// Transport messages whose receiver index maps to no data path (only with a malformed count).
    drops: DropCounters,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("control", &self.control)
            .field("data", &self.data)
            .finish()
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
        let control = ControlPlane::new(config, rng, now);
        let data = (0..control.config().data_shards.max(1))
            .map(|shard| control.data_path(shard))
            .collect();
        let mut endpoint = Endpoint {
            control,
            data,
            drops: DropCounters::default(),
        };
        endpoint.pump(now);
        endpoint
    }

    // ---- getters -------------------------------------------------------------------------------------

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.control.public_key()
    }

    /// The peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.control.peer_by_key(key)
    }

    /// The peer whose allowed IPs route `addr`.
    pub fn route(&self, addr: std::net::IpAddr) -> Option<PeerId> {
        self.control.route(addr)
    }

    /// Drops so far, per reason, control plane and data paths together.
    pub fn drop_counters(&self) -> DropCounters {
        let mut all = self.drops.clone();
        all.merge(self.control.drop_counters());
        for d in &self.data {
            all.merge(d.drop_counters());
        }
        all
    }

    /// Events discarded because the event queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.control.events_dropped()
    }

    /// Whether a usable session with `peer` exists.
    pub fn has_session(&self, now: Instant, peer: PeerId) -> bool {
        self.data
            .get(usize::from(self.control.peer_shard(peer)))
            .is_some_and(|d| d.has_session(now, peer))
    }

    /// The data shard that owns `peer`'s sessions: every receiver index of the peer maps to it (see
    /// [`shard_of_index`](crate::proto::shard_of_index)). Peers are spread round-robin by id.
    pub fn peer_shard(&self, peer: PeerId) -> u8 {
        self.control.peer_shard(peer)
    }

    /// Receiver indices in use (handshakes in flight and keypairs).
    pub fn indices_in_use(&self) -> usize {
        self.control.indices_in_use()
    }

    /// `peer`'s counters, as `wg show` prints them.
    pub fn peer_stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.control.peer_stats(peer)
    }

    /// The peers configured now.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.control.peer_ids()
    }

    // ---- inputs --------------------------------------------------------------------------------------

    /// Tells the endpoint whether the node is under load. Under load, handshake messages must carry a
    /// valid mac2 (or get a cookie reply) and each source is rate limited.
    pub fn set_under_load(&mut self, under_load: bool) {
        self.control.set_under_load(under_load);
    }

    /// Starts a handshake with `peer` now (unless one was sent less than REKEY_TIMEOUT ago).
    ///
    /// # Errors
    /// [`SendError::NoEndpoint`] if the peer's address is unknown.
    pub fn connect(&mut self, now: Instant, peer: PeerId) -> Result<(), SendError> {
        self.control.connect(now, peer)
    }

    /// Queues a keepalive to `peer` (sent by [`poll_transmit`](Self::poll_transmit); a handshake first if
    /// there is no session).
    pub fn send_keepalive(&mut self, peer: PeerId) {
        self.control.send_keepalive(peer);
        self.deliver_commands();
    }

    /// Adds a peer while running; see [`ControlPlane::add_peer`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and value.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, ConfigError> {
        let id = self.control.add_peer(config)?;
        self.deliver_commands();
        Ok(id)
    }

    /// Changes a running peer; see [`ControlPlane::update_peer`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and value.
    pub fn update_peer(&mut self, peer: PeerId, config: PeerConfig) -> Result<(), ConfigError> {
        self.control.update_peer(peer, config)?;
        self.deliver_commands();
        Ok(())
    }

    /// Removes a peer; see [`ControlPlane::remove_peer`].
    pub fn remove_peer(&mut self, peer: PeerId) -> bool {
        let removed = self.control.remove_peer(peer);
        self.deliver_commands();
        removed
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
            Err(e) => {
                let reason = wire_drop(e);
                self.drops.count(reason);
                return Datagram::Dropped(reason);
            }
        };
        if kind == MessageType::Transport {
            let shards = self.data.len() as u8;
            let shard = TransportHeader::parse(buf)
                .map(|h| shard_of_index(h.receiver, shards))
                .unwrap_or(0);
            let Some(path) = self.data.get_mut(usize::from(shard)) else {
                return Datagram::Dropped(super::DropReason::UnknownReceiverIndex);
            };
            let outcome = path.handle_transport(now, from, buf);
            // Notices and the commands they cause never touch `buf`.
            Self::pump_parts(&mut self.control, &mut self.data, now);
            return outcome;
        }
        let outcome = self.control.handle_handshake(now, from, buf);
        self.pump(now);
        if kind == MessageType::Initiation && matches!(outcome, Datagram::Consumed) {
            // The response was handed to the owning data path with its keypair; send it now, in
            // place of the initiation.
            for path in &mut self.data {
                if let Some(t) = path.take_response(buf) {
                    return Datagram::Reply {
                        to: t.to,
                        len: t.len,
                    };
                }
            }
        }
        outcome
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
        let peer = route_packet(
            self.control.routes(),
            usize::from(self.control.config().mtu),
            pkt,
        )?;
        let shard = usize::from(self.control.peer_shard(peer));
        let path = self.data.get_mut(shard).ok_or(SendError::NoEndpoint)?;
        let sent = path.send_packet(now, peer, pkt);
        Self::pump_parts(&mut self.control, &mut self.data, now);
        sent
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.control.handle_timeout(now);
        self.pump(now);
    }

    // ---- outputs -------------------------------------------------------------------------------------

    /// Writes the next handshake message, keepalive or released staged packet into `out` (at least
    /// 148 bytes, and MTU + 32 for staged packets).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        loop {
            if let Some(t) = self.control.poll_transmit(now, out) {
                return Some(t);
            }
            let mut sent = None;
            for path in &mut self.data {
                if let Some(t) = path.poll_transmit(now, out) {
                    sent = Some(t);
                    break;
                }
            }
            // Whatever the data paths noticed (no session: a handshake) comes back to the control plane.
            let more = Self::pump_parts(&mut self.control, &mut self.data, now);
            if sent.is_some() {
                return sent;
            }
            if !more {
                return None;
            }
        }
    }

    /// The earliest instant [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.control.poll_timeout()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.control.poll_event()
    }

    // ---- wiring --------------------------------------------------------------------------------------

    fn pump(&mut self, now: Instant) {
        Self::pump_parts(&mut self.control, &mut self.data, now);
    }

    /// Hands the control plane's commands to the data paths (inputs that carry no time: their notices
    /// wait for the next input that does).
    fn deliver_commands(&mut self) {
        while let Some((shard, command)) = self.control.poll_command() {
            if let Some(path) = self.data.get_mut(usize::from(shard)) {
                path.handle_command(command);
            }
        }
    }

    /// Hands commands to the data paths and notices back until both are quiet. Returns whether
    /// anything moved.
    fn pump_parts(control: &mut ControlPlane, data: &mut [DataPath], now: Instant) -> bool {
        let mut moved = false;
        loop {
            let mut progress = false;
            while let Some((shard, command)) = control.poll_command() {
                progress = true;
                if let Some(path) = data.get_mut(usize::from(shard)) {
                    path.handle_command(command);
                }
            }
            for path in data.iter_mut() {
                while let Some(notice) = path.poll_notice() {
                    progress = true;
                    control.handle_notice(now, notice);
                }
            }
            if !progress {
                return moved;
            }
            moved = true;
        }
    }
}

#[cfg(test)]
mod tests;
