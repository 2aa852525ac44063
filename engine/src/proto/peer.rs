//! One configured peer: its keys, sessions, handshake in flight, timers and counters.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pnet_mesh_crypto::Tai64N;

use super::constants::ProtocolTimes;
use super::cookie::CookieGenerator;
use super::handshake::{InitiationState, PeerKeys};
use super::keypair::{Keypair, Keypairs};
use super::timers::Timers;
use crate::config::{AllowedIp, PeerConfig};

/// What a sealed transport message carried (the timers treat them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// An IP packet.
    Data,
    /// Nothing: a keepalive.
    Keepalive,
}

/// Counters behind [`PeerStats`](crate::PeerStats).
#[derive(Debug, Default, Clone)]
pub(crate) struct PeerCounters {
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) rx_packets: u64,
    pub(crate) tx_packets: u64,
    pub(crate) rx_keepalives: u64,
    pub(crate) handshakes_initiated: u64,
    pub(crate) handshakes_answered: u64,
    pub(crate) staged_dropped: u64,
}

pub(crate) struct Peer {
    pub(crate) keys: PeerKeys,
    pub(crate) cookies: CookieGenerator,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) keypairs: Keypairs,
    /// Our initiation in flight, if any.
    pub(crate) handshake: Option<InitiationState>,
    pub(crate) last_initiation_sent: Option<Instant>,
    /// Newest TAI64N accepted from this peer: an initiation must carry a newer one.
    pub(crate) last_timestamp: Tai64N,
    /// When we last accepted an initiation from this peer (flood limit).
    pub(crate) last_initiation_consumed: Option<Instant>,
    pub(crate) last_handshake: Option<Instant>,
    pub(crate) timers: Timers,
    /// Packets waiting for a session; bounded, oldest dropped first.
    pub(crate) staged: VecDeque<Vec<u8>>,
    pub(crate) staged_capacity: usize,
    /// Spent staging buffers, reused so a long handshake does not allocate per packet.
    pub(crate) spare: Vec<Vec<u8>>,
    pub(crate) want_initiation: bool,
    pub(crate) want_keepalive: bool,
    pub(crate) in_work_queue: bool,
    pub(crate) is_up: bool,
    pub(crate) allowed_ips: Vec<AllowedIp>,
    pub(crate) persistent_keepalive: Option<u16>,
    pub(crate) counters: PeerCounters,
}

impl Peer {
    pub(crate) fn new(
        keys: PeerKeys,
        config: &PeerConfig,
        staged_capacity: usize,
        times: ProtocolTimes,
    ) -> Self {
        let cookies = CookieGenerator::new(keys.mac1_key, keys.cookie_key, &times);
        Peer {
            keys,
            cookies,
            endpoint: config.endpoint,
            keypairs: Keypairs::default(),
            handshake: None,
            last_initiation_sent: None,
            last_timestamp: Tai64N::ZERO,
            last_initiation_consumed: None,
            last_handshake: None,
            timers: Timers::new(
                config
                    .persistent_keepalive
                    .map(|s| Duration::from_secs(u64::from(s))),
                times,
            ),
            staged: VecDeque::with_capacity(staged_capacity.min(16)),
            staged_capacity,
            spare: Vec::new(),
            want_initiation: false,
            want_keepalive: false,
            in_work_queue: false,
            is_up: false,
            allowed_ips: config.allowed_ips.clone(),
            persistent_keepalive: config.persistent_keepalive,
            counters: PeerCounters::default(),
        }
    }

    /// The peer's configuration as it stands (for validating changes against it).
    pub(crate) fn config_view(&self) -> PeerConfig {
        let mut c = PeerConfig::new(self.keys.public);
        c.endpoint = self.endpoint;
        c.allowed_ips = self.allowed_ips.clone();
        c.persistent_keepalive = self.persistent_keepalive;
        c
    }

    /// Accounts for a transport message of `len` bytes just sealed for this peer.
    pub(crate) fn record_sent(&mut self, now: Instant, len: usize, kind: Sealed) {
        self.counters.tx_bytes += len as u64;
        self.counters.tx_packets += 1;
        match kind {
            Sealed::Data => self.timers.activity.data_sent(now),
            Sealed::Keepalive => self.timers.activity.authenticated_sent(now),
        }
    }

    /// The current keypair if it may send at `now`.
    pub(crate) fn sending_keypair(&mut self, now: Instant) -> Option<&mut Keypair> {
        self.keypairs.current.as_mut().filter(|k| k.can_send(now))
    }

    /// Holds a copy of `packet` until a session exists; drops the oldest when full.
    pub(crate) fn stage(&mut self, packet: &[u8]) {
        if self.staged.len() >= self.staged_capacity {
            if let Some(old) = self.staged.pop_front() {
                self.spare.push(old);
            }
            self.counters.staged_dropped += 1;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        self.staged.push_back(buf);
    }

    /// Drops every staged packet (the handshake failed).
    pub(crate) fn drop_staged(&mut self) {
        self.counters.staged_dropped += self.staged.len() as u64;
        while let Some(b) = self.staged.pop_front() {
            self.spare.push(b);
        }
    }
}
