//! The sans-I/O WireGuard protocol core.
//!
//! Bytes and time go in ([`Endpoint::handle_datagram`], [`Endpoint::send_packet`],
//! [`Endpoint::handle_timeout`]); bytes, deadlines and events come out (`poll_transmit`, `poll_timeout`,
//! `poll_event`). Nothing here opens a socket, reads a clock, sleeps or spawns.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod allowed_ips;
pub mod constants;
mod control;
mod cookie;
mod data_path;
mod endpoint;
pub mod gso;
mod handoff;
mod handshake;
mod index_table;
pub mod ip;
mod keypair;
pub mod path;
mod peer;
pub(crate) mod published;
mod rate_limit;
pub mod replay;
mod timers;
pub mod under_load;
pub mod wire;

use std::net::SocketAddr;

pub use control::ControlPlane;
pub use data_path::DataPath;
pub use endpoint::Endpoint;
pub use handoff::{DataCommand, DataNotice, KeypairUpdate, PeerHandle};
pub use index_table::shard_of_index;
use thiserror::Error;

/// What became of a received datagram. Handle it, then run the `poll_*` methods.
#[must_use]
#[derive(Debug)]
pub enum Datagram<'b> {
    /// An authenticated IP packet from `peer`, decrypted in place, padding trimmed, its source checked
    /// against the peer's allowed IPs.
    Deliver {
        /// The sender.
        peer: crate::PeerId,
        /// The inner IPv4 or IPv6 packet, inside the caller's buffer.
        packet: &'b mut [u8],
    },
    /// Send `buf[..len]` back to `to`: a handshake response or a cookie reply, written over the
    /// caller's buffer.
    Reply {
        /// Where to send it.
        to: SocketAddr,
        /// Bytes at the start of the buffer.
        len: usize,
    },
    /// Accepted with nothing to hand over (keepalive, handshake response, cookie reply).
    Consumed,
    /// Refused and counted. The buffer holds no plaintext.
    Dropped(DropReason),
}

/// A datagram to send: `len` bytes, from the start of the buffer that was passed in (for
/// [`Endpoint::poll_transmit`]) or [`PacketBuf::datagram`] (for [`Endpoint::send_packet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Length in bytes.
    pub len: usize,
    /// For a GSO batch, the size of each segment; `None` for a single datagram.
    pub segment_size: Option<u16>,
}

/// A caller-owned buffer holding one outgoing IP packet with room around it, so sealing needs no copy:
/// the transport header goes into the headroom, padding and tag into the tailroom.
#[derive(Debug)]
pub struct PacketBuf<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
}

impl<'b> PacketBuf<'b> {
    /// Room before the payload: transport header (16) + IPv6 header (40) + UDP header (8).
    pub const HEADROOM: usize = 16 + 40 + 8;
    /// Room after the payload: padding (up to 15) + tag (16).
    pub const TAILROOM: usize = 15 + 16;

    /// Wraps `buf` whose payload of `len` bytes starts at [`HEADROOM`](Self::HEADROOM).
    ///
    /// # Errors
    /// [`SendError::BufferTooSmall`] unless `buf` holds headroom, payload and tailroom.
    pub fn new(buf: &'b mut [u8], len: usize) -> Result<Self, SendError> {
        let needed = Self::HEADROOM + len + Self::TAILROOM;
        if buf.len() < needed {
            return Err(SendError::BufferTooSmall { needed });
        }
        Ok(PacketBuf {
            buf,
            start: Self::HEADROOM,
            end: Self::HEADROOM + len,
        })
    }

    /// Copies `payload` into `buf` at [`HEADROOM`](Self::HEADROOM) and wraps it.
    ///
    /// # Errors
    /// [`SendError::BufferTooSmall`] unless `buf` holds headroom, payload and tailroom.
    pub fn copy_from(buf: &'b mut [u8], payload: &[u8]) -> Result<Self, SendError> {
        let mut pb = Self::new(buf, payload.len())?;
        pb.payload_mut().copy_from_slice(payload);
        Ok(pb)
    }

    /// The current contents: the plaintext packet before sealing, the datagram after.
    pub fn payload(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// The plaintext packet, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.end).unwrap_or_default()
    }

    /// The sealed datagram after [`Endpoint::send_packet`] returned a [`Transmit`].
    pub fn datagram(&self) -> &[u8] {
        self.payload()
    }

    /// Where [`payload`](Self::payload) (or the sealed datagram) sits in the buffer.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.start..self.end
    }

    pub(crate) fn parts(&mut self) -> (&mut [u8], usize, usize) {
        (self.buf, self.start, self.end)
    }

    pub(crate) fn set_range(&mut self, start: usize, end: usize) {
        self.start = start;
        self.end = end;
    }
}

/// Why an outgoing packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// Larger than the MTU.
    #[error("packet of {len} bytes exceeds the mtu of {max} bytes")]
    TooLarge {
        /// Packet length.
        len: usize,
        /// The MTU.
        max: usize,
    },
    /// The buffer cannot hold the sealed message.
    #[error("buffer too small: {needed} bytes needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// Not an IPv4 or IPv6 packet with consistent lengths.
    #[error("not a well-formed IPv4 or IPv6 packet")]
    InvalidPacket,
    /// No peer's allowed IPs hold the destination.
    #[error("no peer's allowed ips contain the destination {0}")]
    NoRoute(std::net::IpAddr),
    /// The peer has no endpoint to send to yet (it has never contacted us and none is configured).
    #[error("peer has no known endpoint")]
    NoEndpoint,
    /// The keypair reached REJECT_AFTER_MESSAGES.
    #[error("the session's message counter is exhausted")]
    KeypairExhausted,
}

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Why a received datagram was dropped. Each drop is counted per reason; no reason carries bytes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DropReason { $( $(#[$doc])* $name, )* }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$name, )* ];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// A stable snake_case name, for stats and logs.
            pub fn name(self) -> &'static str {
                match self { $( DropReason::$name => stringify!($name), )* }
            }
        }
    };
}

drop_reasons! {
    /// Fewer than 4 bytes.
    TooShort,
    /// Message type 0 or 5-255.
    UnknownType,
    /// A reserved header byte is not zero.
    ReservedNonZero,
    /// Wrong length for the message type.
    BadLength,
    /// The datagram was truncated by a short receive buffer.
    Truncated,
    /// mac1 did not verify.
    Mac1Invalid,
    /// Under load, the source exceeded its handshake rate.
    RateLimited,
    /// A handshake AEAD (static, timestamp, empty) did not verify.
    HandshakeDecryptFailed,
    /// A Diffie-Hellman result was zero (low-order key).
    LowOrderKey,
    /// The initiation's static key is not a configured peer.
    UnknownPeer,
    /// The initiation's timestamp is not newer than the last accepted one (replay).
    StaleTimestamp,
    /// A second initiation from the peer within 20 ms.
    InitiationFlood,
    /// A response for no initiation of ours in flight.
    UnexpectedResponse,
    /// The receiver index names nothing of ours.
    UnknownReceiverIndex,
    /// A cookie reply when no mac1 of ours is outstanding.
    CookieReplyUnexpected,
    /// A cookie reply that did not decrypt.
    CookieReplyDecryptFailed,
    /// The keypair is older than REJECT_AFTER_TIME.
    KeypairExpired,
    /// The counter is at or past REJECT_AFTER_MESSAGES.
    CounterLimit,
    /// The counter was already received, or is older than the window.
    Replayed,
    /// The transport tag did not verify.
    TransportDecryptFailed,
    /// The plaintext is not a consistent IPv4 or IPv6 packet.
    InvalidInnerPacket,
    /// The inner source address is not in the sender's allowed IPs.
    SourceNotAllowed,
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Drop counters, one per [`DropReason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters([0; DropReason::COUNT])
    }
}

impl DropCounters {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &DropCounters) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine += theirs;
        }
    }

    pub(crate) fn count(&mut self, reason: DropReason) {
        if let Some(c) = self.0.get_mut(reason as usize) {
            *c += 1;
        }
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason as usize).copied().unwrap_or(0)
    }

    /// Total drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// The drop reason for a message that failed its wire checks.
pub(crate) fn wire_drop(e: wire::WireError) -> DropReason {
    match e {
        wire::WireError::TooShort { .. } => DropReason::TooShort,
        wire::WireError::UnknownType(_) => DropReason::UnknownType,
        wire::WireError::ReservedNonZero => DropReason::ReservedNonZero,
        _ => DropReason::BadLength,
    }
}

/// Checks the IP packet in `pkt` (no larger than `mtu`, its header length matching) and finds the
/// peer its destination routes to in `routes`.
///
/// # Errors
/// [`SendError::TooLarge`], [`SendError::InvalidPacket`] or [`SendError::NoRoute`].
pub fn route_packet(
    routes: &allowed_ips::AllowedIps,
    mtu: usize,
    pkt: &PacketBuf<'_>,
) -> Result<crate::PeerId, SendError> {
    let payload = pkt.payload();
    let len = payload.len();
    if len > mtu {
        return Err(SendError::TooLarge { len, max: mtu });
    }
    if ip::packet_len(payload).map_err(|_| SendError::InvalidPacket)? != len {
        return Err(SendError::InvalidPacket);
    }
    let dst = ip::destination(payload).ok_or(SendError::InvalidPacket)?;
    routes.lookup(dst).ok_or(SendError::NoRoute(dst))
}
