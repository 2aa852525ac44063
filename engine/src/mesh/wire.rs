//! Mesh control messages, version 1: what members tell each other about members. They travel as UDP
//! payloads between mesh addresses on the discovery port (default 51802), inside the WireGuard
//! sessions, so the outer wire stays WireGuard and every message has an authenticated sender.
//!
//! # Message
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | 1; any other value is dropped (`UnsupportedVersion`) |
//! | 1 | 1 | `kind` | 1 `ANNOUNCE`; any other value is dropped (`Malformed`) |
//! | 2 | 1 | `flags` | 0x01 `SYNC`: the sender wants our whole table back; other bits zero |
//! | 3 | 1 | `count` | records that follow, 0 to [`MAX_RECORDS`] |
//! | 4 | … | records | `count` records, back to back; nothing may follow the last |
//!
//! # Record
//!
//! A record is a member's description of itself, made by that member and authenticated with the
//! mesh PSK; members pass it on unchanged, each adding what it observes (the trailer).
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 32 | `public_key` | the member's static key |
//! | 32 | 8 | `version` | microseconds since the UNIX epoch when the member issued it; a newer version replaces an older one, so a restarted member's records win over its old ones |
//! | 40 | 4 | `lifetime` | seconds a receiver keeps it without a newer version, 1 to 86400 |
//! | 44 | 1 | `flags` | 0x01 `LEFT`: the member left the mesh (a tombstone); other bits zero |
//! | 45 | 1 | `addresses` | prefix count, 0 to [`MAX_ADDRESSES`] |
//! | 46 | 1 | `endpoints` | endpoint count, 0 to [`MAX_ENDPOINTS`] |
//! | 47 | 1 | reserved | zero |
//! | 48 | … | prefixes | each: family (4 or 6), prefix length, 4 or 16 address bytes (host bits zero): the mesh addresses and routes the member claims |
//! | … | … | endpoints | each: family, 4 or 16 address bytes, port (2): UDP endpoints the member listens on |
//! | … | 16 | `mac` | keyed BLAKE2s-128 over every byte above, key = BLAKE2s-256(`"pnet-mesh member record v1"` ‖ mesh PSK) |
//! | … | 1, 7 or 19 | `observed` | the trailer, outside the MAC: family 0 (none), or family, address and port at which the member that sends this message reaches the record's member (its reflexive endpoint) |
//! | … | 1 | `hops` | also outside the MAC: members between the record's member and the receiver (0: the sender is the member); for one version, a receiver prefers the neighbour that offers fewer, so next hops follow shortest paths |
//!
//! The MAC proves a record was made by a holder of the mesh PSK: a peer that does not hold it cannot
//! make or alter one. Members are trusted with each other's records (every member holds the PSK);
//! the trailer is only a hint, and a WireGuard handshake decides whether the endpoint is real.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pnet_mesh_crypto::{PresharedKey, PublicKey, blake2s, constant_time_eq};
use zeroize::Zeroize;

use crate::config::AllowedIp;

/// The version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes before the first record.
pub const MESSAGE_HEADER_LEN: usize = 4;
/// Records in one message at most.
pub const MAX_RECORDS: usize = 32;
/// Prefixes one record may claim at most.
pub const MAX_ADDRESSES: usize = 8;
/// Endpoints one record may list at most.
pub const MAX_ENDPOINTS: usize = 4;
/// The longest lifetime a record may ask for, in seconds (one day).
pub const MAX_LIFETIME_SECS: u32 = 86_400;
/// Bytes of a record's fixed part.
pub const RECORD_FIXED_LEN: usize = 48;
/// Bytes of the record MAC.
pub const MAC_LEN: usize = 16;
/// The longest record on the wire (every count at its maximum, IPv6 throughout).
pub const MAX_RECORD_LEN: usize =
    RECORD_FIXED_LEN + MAX_ADDRESSES * 18 + MAX_ENDPOINTS * 19 + MAC_LEN + 19 + 1;

/// `ANNOUNCE`: records follow.
pub const KIND_ANNOUNCE: u8 = 1;
/// Message flag: answer with the whole table.
pub const FLAG_SYNC: u8 = 0x01;
/// Record flag: the member left.
pub const FLAG_LEFT: u8 = 0x01;

const RECORD_MAC_LABEL: &[u8] = b"pnet-mesh member record v1";

/// The key records are authenticated with, derived from the mesh PSK. Zeroized on drop.
#[derive(Clone)]
pub struct RecordKey([u8; 32]);

impl RecordKey {
    /// Derives the record key of a mesh PSK.
    pub fn new(mesh_psk: &PresharedKey) -> RecordKey {
        RecordKey(blake2s::hash(&[RECORD_MAC_LABEL, mesh_psk.as_bytes()]))
    }

    fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        blake2s::mac(&self.0, &[bytes])
    }
}

impl Drop for RecordKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

/// A member's description of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member's static key.
    pub public_key: PublicKey,
    /// Issue time in µs since the UNIX epoch; newer replaces older.
    pub version: u64,
    /// Seconds a receiver keeps it.
    pub lifetime_secs: u32,
    /// A tombstone: the member left.
    pub left: bool,
    /// Mesh addresses and routes the member claims.
    pub addresses: Vec<AllowedIp>,
    /// UDP endpoints the member listens on.
    pub endpoints: Vec<SocketAddr>,
}

/// A record as it arrived: authenticated, with the sender's observation of its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRecord {
    /// The record.
    pub record: MemberRecord,
    /// Where the sending member reaches the record's member, if it said.
    pub observed: Option<SocketAddr>,
    /// Members between the record's member and us, as the sender says.
    pub hops: u8,
}

/// Why a message or one of its records was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its fields say.
    Truncated,
    /// A version this code does not speak.
    UnsupportedVersion,
    /// An unknown kind, a reserved bit or byte set, a bad family or prefix, bytes after the last record.
    Malformed,
    /// More records, prefixes or endpoints than allowed, or a lifetime past the maximum.
    Oversized,
    /// The record's MAC does not verify under our mesh PSK.
    BadMac,
}

/// A decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// The sender asks for our whole table.
    pub sync: bool,
    /// Records that follow.
    pub count: usize,
}

impl MessageHeader {
    /// Writes the header; `None` if `out` is too short.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let header = out.get_mut(..MESSAGE_HEADER_LEN)?;
        let count = u8::try_from(self.count).ok()?;
        header.copy_from_slice(&[
            VERSION,
            KIND_ANNOUNCE,
            if self.sync { FLAG_SYNC } else { 0 },
            count,
        ]);
        Some(MESSAGE_HEADER_LEN)
    }

    /// Reads the header of `message`; the records follow it.
    ///
    /// # Errors
    /// [`WireError`] for a short, foreign-version, unknown-kind or over-full message.
    pub fn decode(message: &[u8]) -> Result<(MessageHeader, &[u8]), WireError> {
        let Some((header, rest)) = message.split_first_chunk::<MESSAGE_HEADER_LEN>() else {
            return Err(WireError::Truncated);
        };
        let [version, kind, flags, count] = *header;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion);
        }
        if kind != KIND_ANNOUNCE || flags & !FLAG_SYNC != 0 {
            return Err(WireError::Malformed);
        }
        let count = usize::from(count);
        if count > MAX_RECORDS {
            return Err(WireError::Oversized);
        }
        Ok((
            MessageHeader {
                sync: flags & FLAG_SYNC != 0,
                count,
            },
            rest,
        ))
    }
}

impl MemberRecord {
    /// Bytes this record takes on the wire with the given trailer.
    pub fn encoded_len(&self, observed: Option<SocketAddr>) -> usize {
        RECORD_FIXED_LEN
            + self
                .addresses
                .iter()
                .map(|a| 2 + ip_len(a.addr()))
                .sum::<usize>()
            + self
                .endpoints
                .iter()
                .map(|e| 3 + ip_len(e.ip()))
                .sum::<usize>()
            + MAC_LEN
            + observed.map_or(1, |o| 3 + ip_len(o.ip()))
            + 1
    }

    /// Writes the record, its MAC under `key` and the trailer; returns the bytes written, or `None`
    /// if `out` is too short or a count is past its maximum.
    pub fn encode(
        &self,
        key: &RecordKey,
        observed: Option<SocketAddr>,
        hops: u8,
        out: &mut [u8],
    ) -> Option<usize> {
        if self.addresses.len() > MAX_ADDRESSES || self.endpoints.len() > MAX_ENDPOINTS {
            return None;
        }
        let mut w = Writer { out, at: 0 };
        w.put(self.public_key.as_bytes())?;
        w.put(&self.version.to_be_bytes())?;
        w.put(&self.lifetime_secs.to_be_bytes())?;
        w.put(&[
            if self.left { FLAG_LEFT } else { 0 },
            self.addresses.len() as u8,
            self.endpoints.len() as u8,
            0,
        ])?;
        for a in &self.addresses {
            w.put(&[family(a.addr()), a.prefix_len()])?;
            w.put_ip(a.addr())?;
        }
        for e in &self.endpoints {
            w.put(&[family(e.ip())])?;
            w.put_ip(e.ip())?;
            w.put(&e.port().to_be_bytes())?;
        }
        let mac = key.mac(w.out.get(..w.at)?);
        w.put(&mac)?;
        match observed {
            None => w.put(&[0])?,
            Some(o) => {
                w.put(&[family(o.ip())])?;
                w.put_ip(o.ip())?;
                w.put(&o.port().to_be_bytes())?;
            }
        }
        w.put(&[hops])?;
        Some(w.at)
    }

    /// Reads one record from the front of `bytes` and checks its MAC under `key`; returns it and
    /// the bytes after it. A record whose MAC fails is never returned, so nothing in it is used.
    ///
    /// # Errors
    /// [`WireError`]; after one, the rest of the message cannot be framed.
    pub fn decode<'a>(
        key: &RecordKey,
        bytes: &'a [u8],
    ) -> Result<(ReceivedRecord, &'a [u8]), WireError> {
        let mut r = Reader { bytes, at: 0 };
        let public_key = PublicKey::from_bytes(r.array::<32>()?);
        let version = u64::from_be_bytes(r.array()?);
        let lifetime_secs = u32::from_be_bytes(r.array()?);
        let [flags, n_addresses, n_endpoints, reserved] = r.array::<4>()?;
        if flags & !FLAG_LEFT != 0 || reserved != 0 {
            return Err(WireError::Malformed);
        }
        if usize::from(n_addresses) > MAX_ADDRESSES
            || usize::from(n_endpoints) > MAX_ENDPOINTS
            || lifetime_secs > MAX_LIFETIME_SECS
        {
            return Err(WireError::Oversized);
        }
        if lifetime_secs == 0 {
            return Err(WireError::Malformed);
        }
        let mut addresses = Vec::with_capacity(usize::from(n_addresses));
        for _ in 0..n_addresses {
            let [fam, len] = r.array::<2>()?;
            let addr = r.ip(fam)?;
            let prefix = AllowedIp::new(addr, len).ok_or(WireError::Malformed)?;
            if prefix.addr() != addr {
                return Err(WireError::Malformed);
            }
            addresses.push(prefix);
        }
        let mut endpoints = Vec::with_capacity(usize::from(n_endpoints));
        for _ in 0..n_endpoints {
            let [fam] = r.array::<1>()?;
            endpoints.push(r.endpoint(fam)?);
        }
        let signed = r.at;
        let mac = r.array::<MAC_LEN>()?;
        let [fam] = r.array::<1>()?;
        let observed = match fam {
            0 => None,
            f => Some(r.endpoint(f)?),
        };
        let [hops] = r.array::<1>()?;
        let expected = key.mac(bytes.get(..signed).ok_or(WireError::Truncated)?);
        if !constant_time_eq(&mac, &expected) {
            return Err(WireError::BadMac);
        }
        let rest = bytes.get(r.at..).ok_or(WireError::Truncated)?;
        Ok((
            ReceivedRecord {
                record: MemberRecord {
                    public_key,
                    version,
                    lifetime_secs,
                    left: flags & FLAG_LEFT != 0,
                    addresses,
                    endpoints,
                },
                observed,
                hops,
            },
            rest,
        ))
    }
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

fn ip_len(ip: IpAddr) -> usize {
    if ip.is_ipv4() { 4 } else { 16 }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.out
            .get_mut(self.at..self.at + bytes.len())?
            .copy_from_slice(bytes);
        self.at += bytes.len();
        Some(())
    }

    fn put_ip(&mut self, ip: IpAddr) -> Option<()> {
        match ip {
            IpAddr::V4(a) => self.put(&a.octets()),
            IpAddr::V6(a) => self.put(&a.octets()),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let chunk = self
            .bytes
            .get(self.at..self.at + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(WireError::Truncated)?;
        self.at += N;
        Ok(chunk)
    }

    fn ip(&mut self, family: u8) -> Result<IpAddr, WireError> {
        match family {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => Err(WireError::Malformed),
        }
    }

    fn endpoint(&mut self, family: u8) -> Result<SocketAddr, WireError> {
        let ip = self.ip(family)?;
        let port = u16::from_be_bytes(self.array()?);
        if port == 0 || ip.is_unspecified() {
            return Err(WireError::Malformed);
        }
        Ok(SocketAddr::new(ip, port))
    }
}

pub mod relay;

#[cfg(test)]
mod tests;
