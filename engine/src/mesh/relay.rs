//! Relays, members only: what a node does with a relay frame, and how it frames its own datagrams for
//! a peer it reaches through a relay.
//!
//! A relayed datagram is nested (STYLE.md §3): the end-to-end WireGuard message from A to B is the
//! payload of a [`RelayFrame`] (hop limit, source, destination), sent as a UDP packet between mesh
//! addresses on the relay port inside A's own session with the relay R. R opens only that outer
//! session; it sees the frame header and an end-to-end ciphertext it has no key for, and seals the
//! frame, its hop limit one lower, into its session with the next hop. B hands the payload to its
//! protocol core as a datagram from the relay path "through R" (see [`crate::proto::path`]).
//!
//! Nothing reaches this code unauthenticated: a frame is read only out of a packet that a peer's
//! session opened and whose source passed the peer's allowed IPs. On top of that a relay forwards
//! only frames whose source and destination are members it knows (never an open relay), only while
//! the hop limit lasts, never back to the peer it came from, and only within each sending peer's rate
//! ([`TokenBucket`](crate::mesh::bucket::TokenBucket)). Each refusal is a [`RelayDrop`], counted.
//!
//! # Routes, and why they cannot loop
//!
//! The next hop towards a member that is not a neighbour comes from [`RelayTable::set_routes`]: the
//! neighbour that vouched for the member's current record. Records flood hop by hop with a hop count
//! in their trailer; a node passes a version on when it is new to it, and for a version it holds it
//! switches to a neighbour that offers strictly fewer members in between (and passes that on). This is
//! destination-sequenced distance vector routing (DSDV): a node's next hop holds the same or a newer
//! version, and for the same version a strictly smaller hop count. Following next hops, the versions
//! never fall and, for one version, the hop counts strictly fall, so a chain of next hops cannot
//! come back to where it started: it ends at the member. While tables change (a newer version still
//! flooding, a restart), a transient loop is cut by the hop limit that every frame carries and every
//! relay lowers, by the rule that a frame never goes back to the peer it came from, and by a node
//! dropping its own frame when it returns.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use pnet_mesh_crypto::PublicKey;

use crate::PeerId;
use crate::config::{AllowedIp, ConfigError};
use crate::mesh::wire::WireError;
use crate::mesh::wire::relay::{FRAME_HEADER_LEN, KIND_FRAME, RelayFrame, relay_kind};
use crate::proto::ip;
use crate::proto::path::RelayPath;

/// The mesh-side UDP port of relay frames and path messages, unless configured.
pub const DEFAULT_RELAY_PORT: u16 = 51_803;
/// Hops a frame may take unless configured: two relays and room for a third.
pub const DEFAULT_HOP_LIMIT: u8 = 4;
/// Frames one peer may push through a relay per second unless configured (burst: twice that).
pub const DEFAULT_FRAMES_PER_SECOND: u32 = 500_000;
/// The most a frame adds to the datagram it carries: an IPv6 and a UDP header, the frame header,
/// and the outer transport header and tag.
pub const RELAY_OVERHEAD: usize = 40 + 8 + FRAME_HEADER_LEN + 32;

/// Settings of relaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Mesh-side UDP port of relay frames and path messages (default 51803).
    pub port: u16,
    /// Hops a frame this node starts may take (default 4, at most 16).
    pub hop_limit: u8,
    /// Frames one peer may push through this node per second, bursts of twice that (default 500000).
    pub frames_per_second: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            port: DEFAULT_RELAY_PORT,
            hop_limit: DEFAULT_HOP_LIMIT,
            frames_per_second: DEFAULT_FRAMES_PER_SECOND,
        }
    }
}

impl RelayConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(ConfigError::invalid("relay.port", 0, "must not be 0"));
        }
        if !(1..=16).contains(&self.hop_limit) {
            return Err(ConfigError::invalid(
                "relay.hop_limit",
                self.hop_limit,
                "must be 1 to 16",
            ));
        }
        if self.frames_per_second == 0 {
            return Err(ConfigError::invalid(
                "relay.frames_per_second",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

drop_counters! {
    /// Why a relay frame was refused.
    enum RelayDrop;
    /// Relay frames refused, by reason.
    struct RelayDrops;
    /// Not a frame of this version, or a header that does not parse.
    Malformed,
    /// The frame's source is not a member this node knows.
    UnknownSource,
    /// No neighbour leads to the frame's destination.
    UnknownDestination,
    /// The hop limit ran out.
    HopLimit,
    /// The next hop would be the peer the frame came from.
    Loop,
    /// The next hop has no mesh address to send the frame to.
    NoAddress,
    /// The next hop is itself reached through a relay (frames are never nested twice).
    NestedPath,
    /// The sending peer is over its rate.
    RateLimited,
    /// The datagram is too large for a frame.
    TooLarge,
    /// No buffer, or the owning shard's queue was full.
    QueueFull,
    /// A path message (probe, candidates) while this node runs no discovery to answer it.
    NoProber,
}

/// What a node knows of a peer for relaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPeer {
    /// Its public key.
    pub key: PublicKey,
    /// Its mesh address (the destination of frames sent to it), if it has one.
    pub address: Option<IpAddr>,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// It is for this node: hand the payload to the protocol core as a datagram from `path`.
    Deliver {
        /// The relay path it came over (the peer it came from, and its source if known).
        path: RelayPath,
    },
    /// Send it on to `next` at `address` with `hop_limit`.
    Forward {
        /// The neighbour.
        next: PeerId,
        /// Its mesh address.
        address: IpAddr,
        /// The hop limit to write.
        hop_limit: u8,
    },
}

/// Where the frames of a datagram for a relayed peer go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTarget {
    /// The relay's mesh address.
    pub address: IpAddr,
    /// The destination member's key.
    pub destination: PublicKey,
}

/// A node's view for relaying: its own identity and addresses, its peers' keys and mesh addresses,
/// and the next hop towards members it does not reach directly. Built by the control side, read by
/// every data shard (an `Arc` snapshot, replaced whole).
#[derive(Debug, Clone)]
pub struct RelayTable {
    own_key: PublicKey,
    own_addresses: Vec<IpAddr>,
    port: u16,
    hop_limit: u8,
    peers: HashMap<PeerId, RelayPeer>,
    by_key: HashMap<PublicKey, PeerId>,
    next_hop: HashMap<PublicKey, PeerId>,
}

impl RelayTable {
    /// A table for the node `own_key` with `own_addresses`, relay `port` and `hop_limit`.
    pub fn new(own_key: PublicKey, own_addresses: Vec<IpAddr>, port: u16, hop_limit: u8) -> Self {
        RelayTable {
            own_key,
            own_addresses,
            port,
            hop_limit,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            next_hop: HashMap::new(),
        }
    }

    /// Forgets every peer (the learned routes are kept, to be set again).
    pub fn clear_peers(&mut self) {
        self.peers.clear();
        self.by_key.clear();
        self.next_hop.clear();
    }

    /// Adds or replaces a peer; its mesh address is its first host route.
    pub fn set_peer(&mut self, id: PeerId, key: PublicKey, allowed_ips: &[AllowedIp]) {
        let address = mesh_address(allowed_ips);
        if let Some(old) = self.peers.insert(id, RelayPeer { key, address }) {
            self.by_key.remove(&old.key);
        }
        self.by_key.insert(key, id);
    }

    /// Sets the next hop towards members that are not neighbours: `(member, neighbour)` pairs, the
    /// neighbour being the peer that vouched for the member's current record. Pairs naming unknown
    /// peers, or a member as its own next hop, are ignored.
    pub fn set_routes(&mut self, routes: impl IntoIterator<Item = (PublicKey, PublicKey)>) {
        self.next_hop = routes
            .into_iter()
            .filter(|(member, via)| member != via && *member != self.own_key)
            .filter_map(|(member, via)| self.by_key.get(&via).map(|id| (member, *id)))
            .collect();
    }

    /// The relay port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The hop limit of frames this node starts.
    pub fn hop_limit(&self) -> u8 {
        self.hop_limit
    }

    /// This node's key.
    pub fn own_key(&self) -> &PublicKey {
        &self.own_key
    }

    /// A peer's key and address.
    pub fn peer(&self, id: PeerId) -> Option<&RelayPeer> {
        self.peers.get(&id)
    }

    /// The peer holding `key`.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// The neighbour a frame for `member` goes to next (the member itself when it is a peer with no
    /// learned route).
    pub fn next_hop(&self, member: &PublicKey) -> Option<PeerId> {
        self.next_hop
            .get(member)
            .copied()
            .or_else(|| self.by_key.get(member).copied())
    }

    /// Our mesh address of `to`'s family.
    pub fn own_address_for(&self, to: IpAddr) -> Option<IpAddr> {
        self.own_addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == to.is_ipv4())
    }

    /// The frame target of a datagram this node sends along `path`.
    ///
    /// # Errors
    /// [`RelayDrop::UnknownDestination`] if the path's peer is unknown, [`RelayDrop::NoAddress`] if
    /// the relay has no mesh address.
    pub fn target(&self, path: RelayPath) -> Result<FrameTarget, RelayDrop> {
        let destination = self
            .peers
            .get(&path.peer)
            .ok_or(RelayDrop::UnknownDestination)?
            .key;
        let address = self
            .peers
            .get(&path.relay)
            .and_then(|r| r.address)
            .ok_or(RelayDrop::NoAddress)?;
        Ok(FrameTarget {
            address,
            destination,
        })
    }

    /// Decides what to do with `frame`, which arrived in the session of peer `from`.
    ///
    /// # Errors
    /// The [`RelayDrop`] that refuses it.
    pub fn route(&self, from: PeerId, frame: &RelayFrame<'_>) -> Result<FrameAction, RelayDrop> {
        let source = self.by_key.get(&frame.source).copied();
        if source.is_none() && frame.source != self.own_key {
            return Err(RelayDrop::UnknownSource);
        }
        if frame.destination == self.own_key {
            return Ok(FrameAction::Deliver {
                path: RelayPath {
                    relay: from,
                    peer: source.unwrap_or(PeerId(u32::MAX)),
                },
            });
        }
        if frame.source == self.own_key {
            // Our own frame came back: a loop somewhere.
            return Err(RelayDrop::Loop);
        }
        let hop_limit = frame.hop_limit.checked_sub(1).ok_or(RelayDrop::HopLimit)?;
        if hop_limit == 0 {
            return Err(RelayDrop::HopLimit);
        }
        let next = self
            .next_hop(&frame.destination)
            .ok_or(RelayDrop::UnknownDestination)?;
        if next == from {
            return Err(RelayDrop::Loop);
        }
        let address = self
            .peers
            .get(&next)
            .and_then(|p| p.address)
            .ok_or(RelayDrop::NoAddress)?;
        Ok(FrameAction::Forward {
            next,
            address,
            hop_limit,
        })
    }
}

/// A peer's mesh address: its first host route (`/32` or `/128`), else the first address it holds.
pub fn mesh_address(allowed_ips: &[AllowedIp]) -> Option<IpAddr> {
    allowed_ips
        .iter()
        .find(|a| a.prefix_len() == if a.addr().is_ipv4() { 32 } else { 128 })
        .or_else(|| allowed_ips.first())
        .map(|a| a.addr())
}

/// Reads a relay frame out of a UDP payload on the relay port; `Ok(None)` for the other kinds
/// (path messages, for the prober).
///
/// # Errors
/// [`RelayDrop::Malformed`] for a frame that does not parse.
pub fn parse_frame(udp_payload: &[u8]) -> Result<Option<RelayFrame<'_>>, RelayDrop> {
    match relay_kind(udp_payload) {
        Ok(KIND_FRAME) => RelayFrame::decode(udp_payload)
            .map(Some)
            .map_err(|_: WireError| RelayDrop::Malformed),
        Ok(_) => Ok(None),
        Err(_) => Err(RelayDrop::Malformed),
    }
}

/// Writes a whole frame packet into `out`: IP and UDP headers from `src` to `dst`, the frame header,
/// then `payload`. Returns its length.
///
/// # Errors
/// [`RelayDrop::TooLarge`] if the payload or the packet does not fit.
pub fn write_frame_packet(
    out: &mut [u8],
    src: SocketAddr,
    dst: SocketAddr,
    frame: &RelayFrame<'_>,
) -> Result<usize, RelayDrop> {
    let headers = ip::udp_headers_len(&dst);
    let len = frame
        .encode(out.get_mut(headers..).ok_or(RelayDrop::TooLarge)?)
        .ok_or(RelayDrop::TooLarge)?;
    ip::emit_udp(out, src, dst, len).ok_or(RelayDrop::TooLarge)
}

#[cfg(test)]
mod tests;
