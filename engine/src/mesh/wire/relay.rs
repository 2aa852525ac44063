//! Relay frames and candidate exchange, version 1: UDP payloads between mesh addresses on the relay
//! port (default 51803), inside each hop's own WireGuard session.
//!
//! # Relay frame (`kind` 1)
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | 1 |
//! | 1 | 1 | `kind` | 1 `FRAME` |
//! | 2 | 1 | `hop_limit` | hops the frame may still take; a relay forwards it with one less and drops it at 0 |
//! | 3 | 1 | reserved | zero |
//! | 4 | 32 | `source` | the member that sealed the payload |
//! | 36 | 32 | `destination` | the member it is for |
//! | 68 | … | `payload` | an end-to-end WireGuard message from `source` to `destination` (types 1 to 4), 1 to [`MAX_RELAY_PAYLOAD`] bytes |
//!
//! A relay opens only its own session's layer: the payload is the two ends' message, sealed with keys
//! the relay never has.
//!
//! # Candidates (`kind` 2)
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | 1 |
//! | 1 | 1 | `kind` | 2 `CANDIDATES` |
//! | 2 | 1 | `count` | candidates that follow, 0 to [`MAX_CANDIDATES`] |
//! | 3 | 1 | reserved | zero |
//! | 4 | 32 | `member` | the member the candidates lead to |
//! | 36 | … | candidates | each: source (1 known route, 2 reflexive, 3 advertised), family (4 or 6), 4 or 16 address bytes, port (2) |
//!
//! # Probe and probe answer (`kind` 3 and 4)
//!
//! Sent inside the end-to-end session of the two members, but to an explicit candidate address
//! instead of the session's endpoint: an answer is proof, authenticated by that session, that the
//! path works.
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | 1 |
//! | 1 | 1 | `kind` | 3 `PROBE` or 4 `PROBE_ACK` |
//! | 2 | 2 | reserved | zero |
//! | 4 | 8 | `nonce` | chosen by the prober, echoed by the answer (big-endian) |
//! | 12 | 1 | `family` | 4 or 6 |
//! | 13 | 4 or 16 | `address` | probe: where it was sent; answer: where the probe came from (the prober's reflexive endpoint) |
//! | … | 2 | `port` | of that address |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pnet_mesh_crypto::PublicKey;

use super::{VERSION, WireError};
use crate::mesh::candidate::CandidateSource;

/// `FRAME`.
pub const KIND_FRAME: u8 = 1;
/// `CANDIDATES`.
pub const KIND_CANDIDATES: u8 = 2;
/// Bytes before a frame's payload.
pub const FRAME_HEADER_LEN: usize = 68;
/// The longest payload a frame carries (a transport message of a 1420-byte packet, with room).
pub const MAX_RELAY_PAYLOAD: usize = 1500;
/// Candidates in one message at most.
pub const MAX_CANDIDATES: usize = 8;
/// Bytes before the first candidate.
pub const CANDIDATES_HEADER_LEN: usize = 36;
/// `PROBE`.
pub const KIND_PROBE: u8 = 3;
/// `PROBE_ACK`.
pub const KIND_PROBE_ACK: u8 = 4;
/// The longest probe message (an IPv6 address).
pub const MAX_PROBE_LEN: usize = 13 + 16 + 2;

/// A probe or its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeMessage {
    /// An answer (`PROBE_ACK`) rather than a probe.
    pub ack: bool,
    /// The prober's nonce.
    pub nonce: u64,
    /// Probe: the address it was sent to; answer: the address the probe came from.
    pub address: SocketAddr,
}

impl ProbeMessage {
    /// Writes the message; returns its length, or `None` if `out` is short.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let kind = if self.ack { KIND_PROBE_ACK } else { KIND_PROBE };
        let mut at = 0;
        let mut put = |bytes: &[u8]| -> Option<()> {
            out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
            at += bytes.len();
            Some(())
        };
        put(&[VERSION, kind, 0, 0])?;
        put(&self.nonce.to_be_bytes())?;
        match self.address.ip() {
            IpAddr::V4(a) => {
                put(&[4])?;
                put(&a.octets())?;
            }
            IpAddr::V6(a) => {
                put(&[6])?;
                put(&a.octets())?;
            }
        }
        put(&self.address.port().to_be_bytes())?;
        Some(at)
    }

    /// Reads a probe or an answer; nothing may follow it.
    ///
    /// # Errors
    /// [`WireError`] for a short, foreign-version or malformed message.
    pub fn decode(bytes: &[u8]) -> Result<ProbeMessage, WireError> {
        let Some((header, rest)) = bytes.split_first_chunk::<13>() else {
            return Err(WireError::Truncated);
        };
        let ack = match relay_kind(header)? {
            KIND_PROBE => false,
            KIND_PROBE_ACK => true,
            _ => return Err(WireError::Malformed),
        };
        let [_, _, r0, r1, n @ .., family] = *header;
        if r0 != 0 || r1 != 0 {
            return Err(WireError::Malformed);
        }
        let nonce = u64::from_be_bytes(n);
        let (ip, rest) = match family {
            4 => rest
                .split_first_chunk::<4>()
                .map(|(a, r)| (IpAddr::V4(Ipv4Addr::from(*a)), r)),
            6 => rest
                .split_first_chunk::<16>()
                .map(|(a, r)| (IpAddr::V6(Ipv6Addr::from(*a)), r)),
            _ => return Err(WireError::Malformed),
        }
        .ok_or(WireError::Truncated)?;
        let Some((port, rest)) = rest.split_first_chunk::<2>() else {
            return Err(WireError::Truncated);
        };
        if !rest.is_empty() {
            return Err(WireError::Malformed);
        }
        Ok(ProbeMessage {
            ack,
            nonce,
            address: SocketAddr::new(ip, u16::from_be_bytes(*port)),
        })
    }
}

/// A decoded relay frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayFrame<'a> {
    /// Hops left.
    pub hop_limit: u8,
    /// The member that sealed the payload.
    pub source: PublicKey,
    /// The member it is for.
    pub destination: PublicKey,
    /// The end-to-end WireGuard message.
    pub payload: &'a [u8],
}

impl RelayFrame<'_> {
    /// Writes the frame into `out`; returns its length, or `None` if `out` is short or the payload
    /// is empty or too long.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        if self.payload.is_empty() || self.payload.len() > MAX_RELAY_PAYLOAD {
            return None;
        }
        let len = FRAME_HEADER_LEN + self.payload.len();
        let (header, payload) = out
            .get_mut(..len)?
            .split_first_chunk_mut::<FRAME_HEADER_LEN>()?;
        let (prefix, keys) = header.split_first_chunk_mut::<4>()?;
        *prefix = [VERSION, KIND_FRAME, self.hop_limit, 0];
        let (source, destination) = keys.split_first_chunk_mut::<32>()?;
        *source = *self.source.as_bytes();
        destination.copy_from_slice(self.destination.as_bytes());
        payload.copy_from_slice(self.payload);
        Some(len)
    }

    /// Reads a frame.
    ///
    /// # Errors
    /// [`WireError`] for a short or foreign-version frame, another kind, a reserved byte set, or a
    /// payload that is empty or too long.
    pub fn decode(bytes: &[u8]) -> Result<RelayFrame<'_>, WireError> {
        let Some((header, payload)) = bytes.split_first_chunk::<FRAME_HEADER_LEN>() else {
            return Err(WireError::Truncated);
        };
        check_prefix(header, KIND_FRAME)?;
        let [_, _, hop_limit, reserved, ..] = *header;
        if reserved != 0 {
            return Err(WireError::Malformed);
        }
        if payload.is_empty() {
            return Err(WireError::Truncated);
        }
        if payload.len() > MAX_RELAY_PAYLOAD {
            return Err(WireError::Oversized);
        }
        Ok(RelayFrame {
            hop_limit,
            source: key_at(header, 4)?,
            destination: key_at(header, 36)?,
            payload,
        })
    }
}

/// Candidate paths to a member, as exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateMessage {
    /// The member they lead to.
    pub member: PublicKey,
    /// Each with how the sender knows it.
    pub candidates: Vec<(CandidateSource, SocketAddr)>,
}

impl CandidateMessage {
    /// Writes the message; `None` if `out` is short or there are too many candidates.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let count = u8::try_from(self.candidates.len())
            .ok()
            .filter(|n| usize::from(*n) <= MAX_CANDIDATES)?;
        let mut at = CANDIDATES_HEADER_LEN;
        out.get_mut(..at)?.copy_from_slice(
            &[
                &[VERSION, KIND_CANDIDATES, count, 0][..],
                &self.member.as_bytes()[..],
            ]
            .concat(),
        );
        for (source, addr) in &self.candidates {
            let source = match source {
                CandidateSource::KnownRoute => 1,
                CandidateSource::Reflexive => 2,
                CandidateSource::Advertised => 3,
            };
            let (family, ip): (u8, Vec<u8>) = match addr.ip() {
                IpAddr::V4(a) => (4, a.octets().to_vec()),
                IpAddr::V6(a) => (6, a.octets().to_vec()),
            };
            let entry = [&[source, family][..], &ip, &addr.port().to_be_bytes()].concat();
            out.get_mut(at..at + entry.len())?.copy_from_slice(&entry);
            at += entry.len();
        }
        Some(at)
    }

    /// Reads a message; nothing may follow the last candidate.
    ///
    /// # Errors
    /// [`WireError`] by the same rules as records.
    pub fn decode(bytes: &[u8]) -> Result<CandidateMessage, WireError> {
        let Some((header, mut rest)) = bytes.split_first_chunk::<CANDIDATES_HEADER_LEN>() else {
            return Err(WireError::Truncated);
        };
        check_prefix(header, KIND_CANDIDATES)?;
        let [_, _, count, reserved, ..] = *header;
        let count = usize::from(count);
        if count > MAX_CANDIDATES {
            return Err(WireError::Oversized);
        }
        if reserved != 0 {
            return Err(WireError::Malformed);
        }
        let member = key_at(header, 4)?;
        let mut candidates = Vec::with_capacity(count);
        for _ in 0..count {
            let Some((&[source, family], after)) = rest.split_first_chunk::<2>() else {
                return Err(WireError::Truncated);
            };
            let source = match source {
                1 => CandidateSource::KnownRoute,
                2 => CandidateSource::Reflexive,
                3 => CandidateSource::Advertised,
                _ => return Err(WireError::Malformed),
            };
            let (ip, after) = match family {
                4 => after
                    .split_first_chunk::<4>()
                    .map(|(a, r)| (IpAddr::V4(Ipv4Addr::from(*a)), r)),
                6 => after
                    .split_first_chunk::<16>()
                    .map(|(a, r)| (IpAddr::V6(Ipv6Addr::from(*a)), r)),
                _ => return Err(WireError::Malformed),
            }
            .ok_or(WireError::Truncated)?;
            let Some((port, after)) = after.split_first_chunk::<2>() else {
                return Err(WireError::Truncated);
            };
            let port = u16::from_be_bytes(*port);
            if port == 0 || ip.is_unspecified() {
                return Err(WireError::Malformed);
            }
            candidates.push((source, SocketAddr::new(ip, port)));
            rest = after;
        }
        if !rest.is_empty() {
            return Err(WireError::Malformed);
        }
        Ok(CandidateMessage { member, candidates })
    }
}

/// The kind byte of a relay-port message, after checking its version.
///
/// # Errors
/// [`WireError::Truncated`] or [`WireError::UnsupportedVersion`].
pub fn relay_kind(bytes: &[u8]) -> Result<u8, WireError> {
    match bytes {
        [VERSION, kind, ..] => Ok(*kind),
        [_, _, ..] => Err(WireError::UnsupportedVersion),
        _ => Err(WireError::Truncated),
    }
}

fn check_prefix(header: &[u8], kind: u8) -> Result<(), WireError> {
    if relay_kind(header)? != kind {
        return Err(WireError::Malformed);
    }
    Ok(())
}

fn key_at(bytes: &[u8], at: usize) -> Result<PublicKey, WireError> {
    bytes
        .get(at..at + 32)
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(PublicKey::from_bytes)
        .ok_or(WireError::Truncated)
}
