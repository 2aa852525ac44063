//! Per-peer statistics, as `wg show` reports them.

use std::net::SocketAddr;
use std::time::SystemTime;

use pnet_mesh_crypto::PublicKey;

use crate::config::AllowedIp;

/// One peer's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// Where its packets go now.
    pub endpoint: Option<SocketAddr>,
    /// Its allowed IPs.
    pub allowed_ips: Vec<AllowedIp>,
    /// Wall-clock time of the latest completed handshake.
    pub last_handshake: Option<SystemTime>,
    /// Bytes of authenticated datagrams received (as `wg show` "transfer: received").
    pub rx_bytes: u64,
    /// Bytes of datagrams sent (as `wg show` "transfer: sent").
    pub tx_bytes: u64,
    /// Authenticated transport messages received, keepalives included.
    pub rx_packets: u64,
    /// Transport messages sent, keepalives included.
    pub tx_packets: u64,
    /// Keepalives received.
    pub rx_keepalives: u64,
    /// Handshake initiations sent.
    pub handshakes_initiated: u64,
    /// Handshake initiations answered.
    pub handshakes_answered: u64,
    /// Staged packets dropped because the queue was full or the handshake failed.
    pub staged_dropped: u64,
    /// The persistent keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
}
