//! Configuration of an [`Endpoint`](crate::Endpoint): builders that validate every field before
//! anything starts, and errors that name the field and the value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Instant, SystemTime};

use pnet_mesh_crypto::{PresharedKey, PrivateKey, PublicKey};
use thiserror::Error;

use crate::proto::constants::{
    DEFAULT_EVENT_CAPACITY, DEFAULT_MTU, DEFAULT_RATE_LIMIT_ENTRIES, DEFAULT_STAGED_PACKETS,
    MAX_MTU, MIN_MTU, ProtocolTimes,
};

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One field is invalid. Prints as `peers[2].endpoint = "10.0.0.1:99999": port out of range`.
    #[error("{field} = \"{value}\": {reason}")]
    Invalid {
        /// Path of the field, e.g. `peers[1].allowed_ips[0]`.
        field: String,
        /// The offending value (secrets show only their length).
        value: String,
        /// What is wrong and what would be right.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The field path this error is about.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Invalid { field, .. } => field,
        }
    }

    /// The offending value as printed.
    pub fn value(&self) -> &str {
        match self {
            ConfigError::Invalid { value, .. } => value,
        }
    }
}

/// Checks one peer against the node's own key and the `others` already configured: a low-order or own
/// or duplicate public key, an unspecified or port-0 endpoint, or an allowed-IPs entry another peer
/// holds. Errors name the field as `peers[index].…`.
pub(crate) fn check_peer<'a>(
    index: usize,
    peer: &PeerConfig,
    own: &PublicKey,
    others: impl Iterator<Item = (usize, &'a PeerConfig)> + Clone,
) -> Result<(), ConfigError> {
    let key = &peer.public_key;
    if key.is_low_order() {
        return Err(ConfigError::invalid(
            format!("peers[{index}].public_key"),
            key,
            "is a low-order point; no session could be secure",
        ));
    }
    if key == own {
        return Err(ConfigError::invalid(
            format!("peers[{index}].public_key"),
            key,
            "is this node's own public key",
        ));
    }
    if let Some((j, _)) = others.clone().find(|(_, p)| p.public_key == *key) {
        return Err(ConfigError::invalid(
            format!("peers[{index}].public_key"),
            key,
            format!("duplicates peers[{j}]"),
        ));
    }
    if let Some(ep) = peer.endpoint
        && !crate::proto::path::is_relayed(&ep)
        && (ep.port() == 0 || ep.ip().is_unspecified())
    {
        return Err(ConfigError::invalid(
            format!("peers[{index}].endpoint"),
            ep,
            "needs a specific address and a non-zero port",
        ));
    }
    for (k, net) in peer.allowed_ips.iter().enumerate() {
        if let Some((owner, _)) = others.clone().find(|(_, p)| p.allowed_ips.contains(net)) {
            return Err(ConfigError::invalid(
                format!("peers[{index}].allowed_ips[{k}]"),
                net,
                format!("is already routed to peers[{owner}]"),
            ));
        }
        if peer.allowed_ips[..k].contains(net) {
            return Err(ConfigError::invalid(
                format!("peers[{index}].allowed_ips[{k}]"),
                net,
                "is listed twice",
            ));
        }
    }
    Ok(())
}

/// Checks that `peer`'s relay (`via`) is another of `others`, reached directly.
pub(crate) fn check_via<'a>(
    index: usize,
    peer: &PeerConfig,
    mut others: impl Iterator<Item = (usize, &'a PeerConfig)>,
) -> Result<(), ConfigError> {
    let key = &peer.public_key;
    if let Some(relay) = &peer.via {
        if relay == key {
            return Err(ConfigError::invalid(
                format!("peers[{index}].via"),
                relay,
                "is the peer itself; name another peer that reaches it",
            ));
        }
        match others.find(|(_, p)| p.public_key == *relay) {
            None => {
                return Err(ConfigError::invalid(
                    format!("peers[{index}].via"),
                    relay,
                    "is not a peer of this node; add the relay as a peer first",
                ));
            }
            Some((j, p))
                if p.via.is_some()
                    || p.endpoint
                        .is_some_and(|e| crate::proto::path::is_relayed(&e)) =>
            {
                return Err(ConfigError::invalid(
                    format!("peers[{index}].via"),
                    relay,
                    format!("names peers[{j}], which is itself reached through a relay"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// An allowed-IPs entry: an address and prefix length, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedIp {
    addr: IpAddr,
    prefix_len: u8,
}

impl AllowedIp {
    /// `addr/prefix_len` with the host bits cleared, or `None` if the length exceeds the family's.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let masked = match addr {
            IpAddr::V4(a) if prefix_len <= 32 => {
                let bits = u32::from(a);
                let mask = if prefix_len == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix_len)
                };
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(a) if prefix_len <= 128 => {
                let bits = u128::from(a);
                let mask = if prefix_len == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix_len)
                };
                IpAddr::V6((bits & mask).into())
            }
            _ => return None,
        };
        Some(AllowedIp {
            addr: masked,
            prefix_len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        AllowedIp::new(ip, self.prefix_len).is_some_and(|n| n.addr == self.addr)
    }
}

/// Splits `addr/len` (or a bare `addr`) into the parsed address, the length text if any, and the
/// family's longest prefix; shared by allowed IPs and interface addresses.
pub(crate) fn split_prefix(s: &str) -> Result<(IpAddr, Option<&str>, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    Ok((addr, len, max))
}

impl FromStr for AllowedIp {
    type Err = String;

    /// Parses `10.0.0.0/8`, `fd00::/64`, or a bare address (a /32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len, max) = split_prefix(s.trim())?;
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .map_err(|_| format!("prefix length `{l}` is not a number"))?,
            None => max,
        };
        AllowedIp::new(addr, len).ok_or_else(|| format!("prefix length {len} exceeds {max}"))
    }
}

impl fmt::Display for AllowedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// One peer: its public key and what we may say to it.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub(crate) public_key: PublicKey,
    pub(crate) preshared_key: Option<PresharedKey>,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) allowed_ips: Vec<AllowedIp>,
    pub(crate) persistent_keepalive: Option<u16>,
    /// A host name with a port, resolved when a [`Node`](crate::Node) starts.
    pub(crate) endpoint_name: Option<String>,
    /// The member whose session carries this peer's traffic, instead of an endpoint of its own.
    pub(crate) via: Option<PublicKey>,
}

impl PeerConfig {
    /// A peer known by `public_key`, with no endpoint, no allowed IPs and no PSK yet.
    pub fn new(public_key: PublicKey) -> Self {
        PeerConfig {
            public_key,
            preshared_key: None,
            endpoint: None,
            allowed_ips: Vec::new(),
            persistent_keepalive: None,
            endpoint_name: None,
            via: None,
        }
    }

    /// Reaches the peer through the peer `relay` instead of at an endpoint of its own (wg-quick
    /// `Via`, a PNet Mesh key): every datagram for it travels as the payload of a relay frame inside
    /// the session with `relay`, which forwards it without being able to open it. `relay` must be
    /// another peer of this node, reached directly; the path stays pinned (the mesh prober never
    /// promotes it). Replaces any endpoint.
    pub fn via(mut self, relay: PublicKey) -> Self {
        self.via = Some(relay);
        self
    }

    /// Where to reach the peer, as `host:port` (a name or an address); a [`Node`](crate::Node) resolves
    /// it when it starts and fails naming this field if it cannot.
    pub fn endpoint_name(mut self, host_and_port: impl Into<String>) -> Self {
        self.endpoint_name = Some(host_and_port.into());
        self
    }

    /// Mixes `psk` into every handshake with this peer (wg-quick `PresharedKey`).
    pub fn preshared_key(mut self, psk: PresharedKey) -> Self {
        self.preshared_key = Some(psk);
        self
    }

    /// Where to reach the peer before it reaches us (wg-quick `Endpoint`).
    pub fn endpoint(mut self, endpoint: SocketAddr) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Adds an allowed-IPs entry (wg-quick `AllowedIPs`).
    pub fn allowed_ip(mut self, net: AllowedIp) -> Self {
        self.allowed_ips.push(net);
        self
    }

    /// Sends a keepalive every `seconds` of silence (wg-quick `PersistentKeepalive`); 0 turns it off.
    pub fn persistent_keepalive(mut self, seconds: u16) -> Self {
        self.persistent_keepalive = (seconds > 0).then_some(seconds);
        self
    }

    /// The peer's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The configured allowed IPs.
    pub fn allowed_ips(&self) -> &[AllowedIp] {
        &self.allowed_ips
    }
}

/// A validated configuration. Build it with [`EndpointConfig::builder`].
#[derive(Debug)]
pub struct EndpointConfig {
    pub(crate) private_key: PrivateKey,
    pub(crate) peers: Vec<PeerConfig>,
    pub(crate) mtu: u16,
    pub(crate) clock_anchor: (Instant, SystemTime),
    pub(crate) staged_packets: usize,
    pub(crate) event_capacity: usize,
    pub(crate) rate_limit_entries: usize,
    pub(crate) data_shards: u8,
    pub(crate) times: ProtocolTimes,
}

impl EndpointConfig {
    /// Starts a configuration for a node holding `private_key`.
    pub fn builder(private_key: PrivateKey) -> EndpointConfigBuilder {
        EndpointConfigBuilder {
            private_key,
            peers: Vec::new(),
            mtu: DEFAULT_MTU,
            clock_anchor: None,
            staged_packets: DEFAULT_STAGED_PACKETS,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            rate_limit_entries: DEFAULT_RATE_LIMIT_ENTRIES,
            data_shards: 1,
            times: ProtocolTimes::default(),
        }
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.private_key.public_key()
    }

    /// The inner-packet MTU.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The peers, in [`PeerId`](crate::PeerId) order.
    pub fn peers(&self) -> &[PeerConfig] {
        &self.peers
    }
}

/// Builder for [`EndpointConfig`]; [`build`](Self::build) validates every field.
#[derive(Debug)]
pub struct EndpointConfigBuilder {
    private_key: PrivateKey,
    peers: Vec<PeerConfig>,
    mtu: u16,
    clock_anchor: Option<(Instant, SystemTime)>,
    staged_packets: usize,
    event_capacity: usize,
    rate_limit_entries: usize,
    data_shards: u8,
    times: ProtocolTimes,
}

impl EndpointConfigBuilder {
    /// Adds a peer; its [`PeerId`](crate::PeerId) is its position in the order of these calls.
    pub fn peer(mut self, peer: PeerConfig) -> Self {
        self.peers.push(peer);
        self
    }

    /// The largest inner packet, default 1420 (wg-quick `MTU`).
    pub fn mtu(mut self, mtu: u16) -> Self {
        self.mtu = mtu;
        self
    }

    /// Ties the `Instant`s the endpoint is given to wall-clock time, for TAI64N timestamps and the
    /// `latest handshake` of the stats. Defaults to the moment of [`build`](Self::build).
    pub fn clock_anchor(mut self, instant: Instant, wall: SystemTime) -> Self {
        self.clock_anchor = Some((instant, wall));
        self
    }

    /// Packets held per peer while its handshake completes, default 128; the oldest is dropped when full.
    pub fn staged_packets(mut self, n: usize) -> Self {
        self.staged_packets = n;
        self
    }

    /// Capacity of the event queue, default 1024; events beyond it are dropped and counted.
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n;
        self
    }

    /// Sources the under-load rate limiter tracks at most, default 65,536.
    pub fn rate_limit_entries(mut self, n: usize) -> Self {
        self.rate_limit_entries = n;
        self
    }

    /// Number of data shards the sessions are spread over (default 1): receiver indices are drawn so
    /// that the runtime's steering rule (byte 4 modulo this count) finds each session's owner.
    pub fn data_shards(mut self, n: u8) -> Self {
        self.data_shards = n;
        self
    }

    /// The protocol's time constants; default the specification's. Tests shrink them with
    /// [`ProtocolTimes::scaled`] to run rekeys in seconds; anything else changes wire behaviour.
    pub fn protocol_times(mut self, times: ProtocolTimes) -> Self {
        self.times = times;
        self
    }

    /// Validates and freezes the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field and its value: an MTU out of range, a
    /// low-order or duplicate peer key, our own key as a peer, an unspecified or port-0 endpoint, an
    /// allowed-IPs entry claimed by two peers, or a zero capacity.
    pub fn build(self) -> Result<EndpointConfig, ConfigError> {
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(ConfigError::invalid(
                "mtu",
                self.mtu,
                format!("must be between {MIN_MTU} and {MAX_MTU}"),
            ));
        }
        if self.times.rekey_timeout.is_zero()
            || self.times.reject_after_time <= self.times.rekey_after_time
        {
            return Err(ConfigError::invalid(
                "protocol_times",
                format!("{:?}", self.times),
                "needs a non-zero rekey timeout and reject-after longer than rekey-after",
            ));
        }
        if self.data_shards == 0 || self.data_shards > 254 {
            return Err(ConfigError::invalid(
                "data_shards",
                self.data_shards,
                "must be between 1 and 254",
            ));
        }
        for (name, value) in [
            ("staged_packets", self.staged_packets),
            ("event_capacity", self.event_capacity),
            ("rate_limit_entries", self.rate_limit_entries),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(name, value, "must be at least 1"));
            }
        }
        let own = self.private_key.public_key();
        for (i, peer) in self.peers.iter().enumerate() {
            let earlier = self.peers[..i].iter().enumerate();
            check_peer(i, peer, &own, earlier)?;
            let others = self.peers.iter().enumerate().filter(|(j, _)| *j != i);
            check_via(i, peer, others)?;
        }
        if self.peers.len() > u32::MAX as usize / 4 {
            return Err(ConfigError::invalid(
                "peers",
                self.peers.len(),
                "too many peers",
            ));
        }
        Ok(EndpointConfig {
            private_key: self.private_key,
            peers: self.peers,
            mtu: self.mtu,
            clock_anchor: self
                .clock_anchor
                .unwrap_or_else(|| (Instant::now(), SystemTime::now())),
            staged_packets: self.staged_packets,
            event_capacity: self.event_capacity,
            rate_limit_entries: self.rate_limit_entries,
            data_shards: self.data_shards,
            times: self.times,
        })
    }
}

#[cfg(test)]
mod tests {
    use pnet_mesh_crypto::rng::SeededRng;

    use super::*;

    fn key(seed: u64) -> PrivateKey {
        PrivateKey::generate(&mut SeededRng::new(seed))
    }

    #[test]
    fn each_rule_names_field_and_value() {
        let err = EndpointConfig::builder(key(1))
            .mtu(100)
            .build()
            .unwrap_err();
        assert_eq!((err.field(), err.value()), ("mtu", "100"));

        let low = PublicKey::from_base64("4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=").unwrap();
        let err = EndpointConfig::builder(key(1))
            .peer(PeerConfig::new(low))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "peers[0].public_key");
        assert_eq!(err.value(), "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=");

        let own = key(1).public_key();
        let err = EndpointConfig::builder(key(1))
            .peer(PeerConfig::new(own))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "peers[0].public_key");

        let p = key(2).public_key();
        let err = EndpointConfig::builder(key(1))
            .peer(PeerConfig::new(p))
            .peer(PeerConfig::new(p))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "peers[1].public_key");
        assert!(err.to_string().contains("duplicates peers[0]"), "{err}");

        let err = EndpointConfig::builder(key(1))
            .peer(PeerConfig::new(p).endpoint("10.0.0.1:0".parse().unwrap()))
            .build()
            .unwrap_err();
        assert_eq!(
            (err.field(), err.value()),
            ("peers[0].endpoint", "10.0.0.1:0")
        );

        let net: AllowedIp = "10.0.0.0/24".parse().unwrap();
        let err = EndpointConfig::builder(key(1))
            .peer(PeerConfig::new(p).allowed_ip(net))
            .peer(PeerConfig::new(key(3).public_key()).allowed_ip(net))
            .build()
            .unwrap_err();
        assert_eq!(
            (err.field(), err.value()),
            ("peers[1].allowed_ips[0]", "10.0.0.0/24")
        );
        assert_eq!(
            err.to_string(),
            "peers[1].allowed_ips[0] = \"10.0.0.0/24\": is already routed to peers[0]"
        );

        let err = EndpointConfig::builder(key(1))
            .staged_packets(0)
            .build()
            .unwrap_err();
        assert_eq!((err.field(), err.value()), ("staged_packets", "0"));
    }

    #[test]
    fn allowed_ip_parsing() {
        let n: AllowedIp = "10.1.2.3/16".parse().unwrap();
        assert_eq!(n.to_string(), "10.1.0.0/16");
        assert!(n.contains("10.1.200.1".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        let h: AllowedIp = "fd77::1".parse().unwrap();
        assert_eq!(h.to_string(), "fd77::1/128");
        assert!("10.0.0.0/33".parse::<AllowedIp>().is_err());
        assert!("nonsense/8".parse::<AllowedIp>().is_err());
        assert_eq!("0.0.0.0/0".parse::<AllowedIp>().unwrap().prefix_len(), 0);
    }
}
