//! One configured peer as the control plane holds it: keys, cookies, the handshake in flight, timers
//! and handshake counters. Its transport keys live in the data path that owns it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet_mesh_crypto::Tai64N;

use super::constants::ProtocolTimes;
use super::cookie::CookieGenerator;
use super::handshake::{InitiationState, PeerKeys};
use super::published::Published;
use super::timers::Timers;
use crate::config::{AllowedIp, PeerConfig};

/// Handshake counters behind [`PeerStats`](crate::PeerStats) (the transport ones are published by the
/// data path).
#[derive(Debug, Default, Clone)]
pub(crate) struct HandshakeCounters {
    /// Bytes of handshake messages received and sent.
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) initiated: u64,
    pub(crate) answered: u64,
}

pub(crate) struct Peer {
    pub(crate) keys: PeerKeys,
    pub(crate) cookies: CookieGenerator,
    pub(crate) endpoint: Option<SocketAddr>,
    /// Our initiation in flight, if any.
    pub(crate) handshake: Option<InitiationState>,
    pub(crate) last_initiation_sent: Option<Instant>,
    /// Newest TAI64N accepted from this peer: an initiation must carry a newer one.
    pub(crate) last_timestamp: Tai64N,
    /// When we last accepted an initiation from this peer (flood limit).
    pub(crate) last_initiation_consumed: Option<Instant>,
    pub(crate) last_handshake: Option<Instant>,
    pub(crate) timers: Timers,
    pub(crate) want_initiation: bool,
    pub(crate) in_work_queue: bool,
    pub(crate) is_up: bool,
    /// Whether a confirmed session exists (a new one then rotates the keypairs).
    pub(crate) has_session: bool,
    pub(crate) allowed_ips: Vec<AllowedIp>,
    pub(crate) persistent_keepalive: Option<u16>,
    pub(crate) counters: HandshakeCounters,
    /// What the owning data path publishes: activity for the timers, transport counters.
    pub(crate) published: Arc<Published>,
}

impl Peer {
    pub(crate) fn new(
        keys: PeerKeys,
        config: &PeerConfig,
        times: ProtocolTimes,
        epoch: Instant,
    ) -> Self {
        let cookies = CookieGenerator::new(keys.mac1_key, keys.cookie_key, &times);
        Peer {
            keys,
            cookies,
            endpoint: config.endpoint,
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
            want_initiation: false,
            in_work_queue: false,
            is_up: false,
            has_session: false,
            allowed_ips: config.allowed_ips.clone(),
            persistent_keepalive: config.persistent_keepalive,
            counters: HandshakeCounters::default(),
            published: Arc::new(Published::new(epoch)),
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
}
