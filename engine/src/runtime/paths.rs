//! The path prober on the node, run by the discovery driver's thread: path messages (probes, answers,
//! candidates) from the data shards in, probes out to explicit candidate addresses inside the
//! members' own sessions, and the prober's promotions and fallbacks carried out on the control shard.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pnet_mesh_crypto::PublicKey;

use crate::PeerId;
use crate::mesh::candidate::CandidateSource;
use crate::mesh::probe::{PathAction, PathProber, ProbeConfig, ProbeStats};
use crate::mesh::wire::relay::{
    CandidateMessage, KIND_CANDIDATES, KIND_PROBE, KIND_PROBE_ACK, MAX_CANDIDATES, MAX_PROBE_LEN,
    ProbeMessage, relay_kind,
};
use crate::node::transmit::Transmitter;
use crate::proto::ip;
use crate::proto::path;
use crate::runtime::{ControlRequest, Delivery, Shared};

/// How often a relayed member is told our candidates again.
const CANDIDATE_REPEAT: Duration = Duration::from_secs(5);

/// The prober and what it needs to reach members.
#[derive(Debug)]
pub(crate) struct PathDriver {
    prober: PathProber,
    /// Our own addresses worth trying: specific listen addresses and advertised endpoints.
    own: Vec<SocketAddr>,
    /// When each relayed member was last told our candidates.
    told: HashMap<PublicKey, Instant>,
    port: u16,
    /// This node's key (the member our candidate messages describe).
    own_key: PublicKey,
}

impl PathDriver {
    pub(crate) fn new(
        config: ProbeConfig,
        max_members: usize,
        own_key: PublicKey,
        own: Vec<SocketAddr>,
        port: u16,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        PathDriver {
            prober: PathProber::new(config, max_members, seed),
            own: own
                .into_iter()
                .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
                .collect(),
            told: HashMap::new(),
            port,
            own_key,
        }
    }

    pub(crate) fn stats(&self) -> ProbeStats {
        self.prober.stats()
    }

    /// `member` is reached through `relay` from now on, with these candidates.
    pub(crate) fn track(
        &mut self,
        now: Instant,
        member: PublicKey,
        relay: PublicKey,
        candidates: &[(CandidateSource, SocketAddr)],
    ) {
        self.prober.track(now, member, relay);
        for (source, addr) in candidates {
            self.prober.offer(now, &member, *addr, *source);
        }
    }

    /// `relay` (a neighbour, reached through `path`) may carry `member`'s traffic.
    pub(crate) fn offer_relay(
        &mut self,
        now: Instant,
        member: &PublicKey,
        relay: PublicKey,
        path: SocketAddr,
    ) {
        self.prober.offer_relay(now, member, relay, path);
    }

    /// Whether `relay` is not known to have stopped carrying `member`'s probes.
    pub(crate) fn relay_usable(&self, now: Instant, member: &PublicKey, relay: &PublicKey) -> bool {
        self.prober.relay_usable(now, member, relay)
    }

    /// Every member whose path is probed.
    pub(crate) fn tracked(&self) -> Vec<PublicKey> {
        self.prober.tracked().collect()
    }

    /// The node moved `member`'s endpoint.
    pub(crate) fn on_endpoint(&mut self, member: &PublicKey, endpoint: SocketAddr) {
        self.prober.on_endpoint(member, endpoint);
    }

    /// Whether `member`'s path is probed.
    pub(crate) fn is_tracked(&self, member: &PublicKey) -> bool {
        self.prober.is_tracked(member)
    }

    pub(crate) fn forget(&mut self, member: &PublicKey) {
        self.prober.forget(member);
        self.told.remove(member);
    }

    /// One turn: path messages in, timers, then everything the prober wants done. `key_of` maps a
    /// delivering peer to its key, `id_of` a key to its peer, `address_of` a member to its mesh
    /// address. Returns when it next has work.
    pub(crate) fn turn(
        &mut self,
        now: Instant,
        shared: &Shared,
        tx: &Transmitter,
        deliveries: Vec<(Delivery, Option<PublicKey>)>,
        id_of: &dyn Fn(&PublicKey) -> Option<PeerId>,
        address_of: &dyn Fn(&PublicKey) -> Option<IpAddr>,
    ) -> Option<Instant> {
        for (delivery, key) in deliveries {
            let from = delivery.from;
            let udp = delivery
                .buf
                .as_slice()
                .get(delivery.range.clone())
                .and_then(ip::parse_udp);
            if let (Some(udp), Some(key)) = (udp, key) {
                self.handle(now, key, from, udp.payload);
            }
            shared.release(delivery.buf);
        }
        if self.prober.poll_timeout().is_some_and(|t| t <= now) {
            self.prober.handle_timeout(now);
        }
        while let Some(t) = self.prober.poll_transmit() {
            let mut out = [0u8; MAX_PROBE_LEN];
            let (Some(len), Some(dst)) = (t.message.encode(&mut out), address_of(&t.member)) else {
                continue;
            };
            let to = SocketAddr::new(dst, self.port);
            let _ = tx.try_send_udp_via(
                self.port,
                to,
                out.get(..len).unwrap_or_default(),
                Some(t.to),
            );
        }
        while let Some(action) = self.prober.poll_action() {
            let (member, endpoint) = match action {
                PathAction::UseDirect { member, endpoint } => (member, Some(endpoint)),
                PathAction::UseRelay { member, relay } => (member, id_of(&relay).map(path::via)),
            };
            if let (Some(id), Some(endpoint)) = (id_of(&member), endpoint) {
                let _ = tx.tell(ControlRequest::SetEndpoint(id, endpoint));
            }
        }
        while let Some(e) = self.prober.poll_event() {
            tracing::debug!(event = ?e, "path");
            shared.push_event(e);
        }
        self.tell_candidates(now, tx, address_of);
        self.prober.poll_timeout()
    }

    fn handle(&mut self, now: Instant, from: PublicKey, outer: SocketAddr, payload: &[u8]) {
        match relay_kind(payload) {
            Ok(KIND_PROBE | KIND_PROBE_ACK) => {
                if let Ok(m) = ProbeMessage::decode(payload) {
                    self.prober.handle_message(now, from, outer, &m);
                }
            }
            Ok(KIND_CANDIDATES) => {
                // A member's own candidates, or its relay's word on them.
                if let Ok(m) = CandidateMessage::decode(payload)
                    && (m.member == from || self.prober.relay_of(&m.member) == Some(from))
                {
                    for (source, addr) in m.candidates {
                        self.prober.offer(now, &m.member, addr, source);
                    }
                }
            }
            _ => {}
        }
    }

    /// Tells each relayed member where it might reach us directly, now and then.
    fn tell_candidates(
        &mut self,
        now: Instant,
        tx: &Transmitter,
        address_of: &dyn Fn(&PublicKey) -> Option<IpAddr>,
    ) {
        let relayed = self.relayed_members();
        if relayed.is_empty() {
            self.told.clear();
            return;
        }
        let own_key = self.own_key;
        let mut candidates: Vec<(CandidateSource, SocketAddr)> = self
            .prober
            .own_reflexive()
            .map(|a| (CandidateSource::Reflexive, a))
            .chain(self.own.iter().map(|a| (CandidateSource::Advertised, *a)))
            .collect();
        candidates.truncate(MAX_CANDIDATES);
        if candidates.is_empty() {
            return;
        }
        let message = CandidateMessage {
            member: own_key,
            candidates,
        };
        let mut out = [0u8; 36 + MAX_CANDIDATES * 20];
        let Some(len) = message.encode(&mut out) else {
            return;
        };
        let prober = &self.prober;
        self.told
            .retain(|m, _| prober.is_tracked(m) && prober.direct(m).is_none());
        for member in relayed {
            if self
                .told
                .get(&member)
                .is_some_and(|t| now.saturating_duration_since(*t) < CANDIDATE_REPEAT)
            {
                continue;
            }
            let Some(dst) = address_of(&member) else {
                continue;
            };
            let to = SocketAddr::new(dst, self.port);
            if tx
                .try_send_udp(self.port, to, out.get(..len).unwrap_or_default())
                .is_ok()
            {
                self.told.insert(member, now);
            }
        }
    }

    fn relayed_members(&self) -> Vec<PublicKey> {
        self.prober
            .tracked()
            .filter(|m| self.prober.direct(m).is_none())
            .collect()
    }
}
