//! GSO super-packets: one IPv4/IPv6 TCP or UDP packet carrying many segments' worth of payload, as a
//! TUN device with offloads (`IFF_VNET_HDR`, `TUN_F_TSO*`, `TUN_F_USO*`) hands them out, split into
//! ordinary packets of at most `segment_size` payload bytes each.
//!
//! Each segment gets the super-packet's headers with the fixups the kernel's own segmentation makes:
//! IPv4 total length, identification (+1 per segment) and header checksum; IPv6 payload length; TCP
//! sequence number advanced by the payload before it, FIN and PSH kept only on the last segment and CWR
//! only on the first; UDP length. The TCP or UDP checksum is computed in full, since a super-packet
//! from a TUN device carries only a partial (pseudo-header) checksum.
//!
//! ```
//! use pnet_mesh::proto::gso::GsoPacket;
//! # let super_packet = {
//! #     let mut p = vec![0u8; 28 + 3000];
//! #     p[0] = 0x45; p[8] = 64; p[9] = 17;
//! #     p[12..16].copy_from_slice(&[10, 7, 0, 1]); p[16..20].copy_from_slice(&[10, 7, 0, 2]);
//! #     p
//! # };
//! let gso = GsoPacket::new(&super_packet, 1000)?;
//! assert_eq!(gso.segments(), 3);
//! let mut out = [0u8; 1500];
//! for i in 0..gso.segments() {
//!     let len = gso.write_segment(i, &mut out).expect("room for a segment");
//!     assert_eq!(len, 28 + 1000);
//! }
//! # Ok::<(), pnet_mesh::proto::gso::GsoError>(())
//! ```

use super::ip::{
    IPV4_HEADER_LEN, IPV6_HEADER_LEN, PROTO_TCP, PROTO_UDP, UDP_HEADER_LEN, fold, sum,
};

const TCP_MIN_HEADER_LEN: usize = 20;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Why bytes cannot be split as a super-packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GsoError {
    /// The segment size is zero.
    ZeroSegmentSize,
    /// Not IPv4 or IPv6, a header is truncated, or a length field is impossible.
    Malformed,
    /// An IPv4 fragment: the kernel never hands those out as super-packets.
    Fragment,
    /// Neither TCP nor UDP right after the IP header (IPv6 extension headers included).
    UnsupportedProtocol(u8),
    /// A segment would be longer than 65,535 bytes.
    SegmentTooLarge,
}

impl core::fmt::Display for GsoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GsoError::ZeroSegmentSize => f.write_str("segment size is zero"),
            GsoError::Malformed => f.write_str("malformed IP/TCP/UDP header"),
            GsoError::Fragment => f.write_str("IPv4 fragment cannot be segmented"),
            GsoError::UnsupportedProtocol(p) => {
                write!(f, "protocol {p} after the IP header is neither TCP nor UDP")
            }
            GsoError::SegmentTooLarge => f.write_str("segment longer than 65535 bytes"),
        }
    }
}

impl std::error::Error for GsoError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// A validated super-packet and its segment size; segments are written on demand.
#[derive(Debug, Clone, Copy)]
pub struct GsoPacket<'a> {
    packet: &'a [u8],
    ip_len: usize,
    headers_len: usize,
    segment_size: usize,
    v4: bool,
    transport: Transport,
}

impl<'a> GsoPacket<'a> {
    /// Checks the headers of `packet`. The buffer's length is authoritative: a super-packet's IP length
    /// fields may not describe it (over 64 KiB they cannot).
    ///
    /// # Errors
    /// [`GsoError`] when it cannot be split.
    pub fn new(packet: &'a [u8], segment_size: usize) -> Result<Self, GsoError> {
        if segment_size == 0 {
            return Err(GsoError::ZeroSegmentSize);
        }
        let first = *packet.first().ok_or(GsoError::Malformed)?;
        let (v4, ip_len, proto) = match first >> 4 {
            4 => {
                let ihl = usize::from(first & 0x0f) * 4;
                if ihl < IPV4_HEADER_LEN || packet.len() < ihl {
                    return Err(GsoError::Malformed);
                }
                let frag = u16::from_be_bytes([byte(packet, 6)?, byte(packet, 7)?]);
                // More-fragments or a fragment offset.
                if frag & 0x3fff != 0 {
                    return Err(GsoError::Fragment);
                }
                (true, ihl, byte(packet, 9)?)
            }
            6 if packet.len() >= IPV6_HEADER_LEN => (false, IPV6_HEADER_LEN, byte(packet, 6)?),
            _ => return Err(GsoError::Malformed),
        };
        let (transport, l4_len) = match proto {
            PROTO_TCP => {
                let off = usize::from(byte(packet, ip_len + 12)? >> 4) * 4;
                if off < TCP_MIN_HEADER_LEN {
                    return Err(GsoError::Malformed);
                }
                (Transport::Tcp, off)
            }
            PROTO_UDP => (Transport::Udp, UDP_HEADER_LEN),
            other => return Err(GsoError::UnsupportedProtocol(other)),
        };
        let headers_len = ip_len + l4_len;
        if packet.len() < headers_len {
            return Err(GsoError::Malformed);
        }
        if headers_len + segment_size.min(packet.len() - headers_len) > usize::from(u16::MAX) {
            return Err(GsoError::SegmentTooLarge);
        }
        Ok(GsoPacket {
            packet,
            ip_len,
            headers_len,
            segment_size,
            v4,
            transport,
        })
    }

    /// How many segments it splits into (one, for a packet with no payload).
    pub fn segments(&self) -> usize {
        self.payload_len().div_ceil(self.segment_size).max(1)
    }

    /// The length of segment `i`, or `None` past the last.
    pub fn segment_len(&self, i: usize) -> Option<usize> {
        let start = i.checked_mul(self.segment_size)?;
        if i >= self.segments() {
            return None;
        }
        let chunk = (self.payload_len() - start.min(self.payload_len())).min(self.segment_size);
        Some(self.headers_len + chunk)
    }

    /// The headers' length (IP and TCP/UDP), repeated in every segment.
    pub fn headers_len(&self) -> usize {
        self.headers_len
    }

    /// Writes segment `i` at the start of `out` and returns its length; `None` past the last segment or
    /// when `out` is too short.
    pub fn write_segment(&self, i: usize, out: &mut [u8]) -> Option<usize> {
        let len = self.segment_len(i)?;
        let start = self.headers_len + i * self.segment_size;
        let chunk = len - self.headers_len;
        let seg = out.get_mut(..len)?;
        seg.get_mut(..self.headers_len)?
            .copy_from_slice(self.packet.get(..self.headers_len)?);
        seg.get_mut(self.headers_len..)?
            .copy_from_slice(self.packet.get(start..start + chunk)?);
        let last = i + 1 == self.segments();
        let l4_total = u16::try_from(len - self.ip_len).ok()?;
        let (ip, l4) = seg.split_at_mut(self.ip_len);
        let pseudo = if self.v4 {
            let total = u16::try_from(len).ok()?;
            ip.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
            let id = u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]).wrapping_add(i as u16);
            ip.get_mut(4..6)?.copy_from_slice(&id.to_be_bytes());
            ip.get_mut(10..12)?.fill(0);
            let csum = !fold(sum(ip, 0));
            ip.get_mut(10..12)?.copy_from_slice(&csum.to_be_bytes());
            sum(ip.get(12..20)?, u32::from(l4_total))
        } else {
            ip.get_mut(4..6)?.copy_from_slice(&l4_total.to_be_bytes());
            sum(ip.get(8..40)?, u32::from(l4_total))
        };
        match self.transport {
            Transport::Tcp => {
                let seq = u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?)
                    .wrapping_add((i * self.segment_size) as u32);
                l4.get_mut(4..8)?.copy_from_slice(&seq.to_be_bytes());
                let flags = l4.get_mut(13)?;
                if !last {
                    *flags &= !(TCP_FIN | TCP_PSH);
                }
                if i > 0 {
                    *flags &= !TCP_CWR;
                }
                l4.get_mut(16..18)?.fill(0);
                let csum = !fold(sum(l4, pseudo + u32::from(PROTO_TCP)));
                l4.get_mut(16..18)?.copy_from_slice(&csum.to_be_bytes());
            }
            Transport::Udp => {
                l4.get_mut(4..6)?.copy_from_slice(&l4_total.to_be_bytes());
                l4.get_mut(6..8)?.fill(0);
                let mut csum = !fold(sum(l4, pseudo + u32::from(PROTO_UDP)));
                if csum == 0 {
                    csum = 0xffff;
                }
                l4.get_mut(6..8)?.copy_from_slice(&csum.to_be_bytes());
            }
        }
        Some(len)
    }

    fn payload_len(&self) -> usize {
        self.packet.len() - self.headers_len
    }
}

fn byte(packet: &[u8], at: usize) -> Result<u8, GsoError> {
    packet.get(at).copied().ok_or(GsoError::Malformed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A super-packet: IPv4 (id 0x1234, DF) or IPv6, then TCP (seq, flags) or UDP, then `payload`.
    fn super_packet(v4: bool, tcp: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let ip_len = if v4 { IPV4_HEADER_LEN } else { IPV6_HEADER_LEN };
        let l4_len = if tcp { 20 } else { UDP_HEADER_LEN };
        let mut p = vec![0u8; ip_len + l4_len];
        if v4 {
            p[0] = 0x45;
            p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
            p[6] = 0x40;
            p[8] = 64;
            p[9] = if tcp { PROTO_TCP } else { PROTO_UDP };
            p[12..16].copy_from_slice(&[10, 7, 0, 1]);
            p[16..20].copy_from_slice(&[10, 7, 0, 2]);
        } else {
            p[0] = 0x60;
            p[6] = if tcp { PROTO_TCP } else { PROTO_UDP };
            p[7] = 64;
            p[8..24].copy_from_slice(&[0xfd, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p[24..40].copy_from_slice(&[0xfd, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        }
        let l4 = &mut p[ip_len..];
        l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&5201u16.to_be_bytes());
        if tcp {
            l4[4..8].copy_from_slice(&seq.to_be_bytes());
            l4[12] = 5 << 4;
            l4[13] = flags;
            l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            // A partial checksum, as a TUN device leaves it: the segmenter must not trust it.
            l4[16..18].copy_from_slice(&0xbeefu16.to_be_bytes());
        }
        p.extend_from_slice(payload);
        p
    }

    /// Verifies every checksum of a segment and returns (ip_len, l4_len).
    fn check_segment(seg: &[u8], tcp: bool) -> (usize, usize) {
        let v4 = seg[0] >> 4 == 4;
        let ip_len = if v4 { IPV4_HEADER_LEN } else { IPV6_HEADER_LEN };
        if v4 {
            assert_eq!(usize::from(u16::from_be_bytes([seg[2], seg[3]])), seg.len());
            assert_eq!(fold(sum(&seg[..20], 0)), 0xffff, "IPv4 header checksum");
        } else {
            assert_eq!(
                usize::from(u16::from_be_bytes([seg[4], seg[5]])),
                seg.len() - 40
            );
        }
        let l4 = &seg[ip_len..];
        let addrs = if v4 { &seg[12..20] } else { &seg[8..40] };
        let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
        let pseudo = sum(addrs, u32::from(proto) + l4.len() as u32);
        assert_eq!(fold(sum(l4, pseudo)), 0xffff, "transport checksum");
        if !tcp {
            assert_eq!(usize::from(u16::from_be_bytes([l4[4], l4[5]])), l4.len());
        }
        (ip_len, if tcp { 20 } else { UDP_HEADER_LEN })
    }

    proptest! {
        #[test]
        fn segments_carry_the_payload_in_order_with_valid_headers(
            v4: bool,
            tcp: bool,
            seq: u32,
            payload in prop::collection::vec(any::<u8>(), 0..9000),
            segment_size in 1usize..2000,
        ) {
            let flags = TCP_FIN | TCP_PSH | TCP_CWR | 0x10;
            let sp = super_packet(v4, tcp, seq, flags, &payload);
            let gso = GsoPacket::new(&sp, segment_size).unwrap();
            let n = gso.segments();
            prop_assert_eq!(n, payload.len().div_ceil(segment_size).max(1));
            let mut joined = Vec::new();
            let mut out = vec![0u8; 4096];
            for i in 0..n {
                let len = gso.write_segment(i, &mut out).unwrap();
                prop_assert_eq!(Some(len), gso.segment_len(i));
                let seg = &out[..len];
                let (ip_len, l4_len) = check_segment(seg, tcp);
                let body = &seg[ip_len + l4_len..];
                prop_assert!(body.len() <= segment_size);
                if v4 {
                    prop_assert_eq!(u16::from_be_bytes([seg[4], seg[5]]), 0x1234u16.wrapping_add(i as u16));
                }
                if tcp {
                    let s = u32::from_be_bytes(seg[ip_len + 4..ip_len + 8].try_into().unwrap());
                    prop_assert_eq!(s, seq.wrapping_add(joined.len() as u32));
                    let f = seg[ip_len + 13];
                    let last = i + 1 == n;
                    prop_assert_eq!(f & (TCP_FIN | TCP_PSH) != 0, last);
                    prop_assert_eq!(f & TCP_CWR != 0, i == 0);
                    prop_assert!(f & 0x10 != 0, "ACK kept");
                }
                joined.extend_from_slice(body);
            }
            prop_assert_eq!(joined, payload);
            prop_assert_eq!(gso.write_segment(n, &mut out), None);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), seg in 0usize..300) {
            if let Ok(gso) = GsoPacket::new(&bytes, seg) {
                let mut out = [0u8; 512];
                for i in 0..gso.segments() + 1 {
                    let _ = gso.write_segment(i, &mut out);
                }
            }
        }
    }

    #[test]
    fn unsplittable_packets_are_refused_with_the_reason() {
        let udp = super_packet(true, false, 0, 0, &[1; 100]);
        assert_eq!(
            GsoPacket::new(&udp, 0).unwrap_err(),
            GsoError::ZeroSegmentSize
        );
        let mut frag = udp.clone();
        frag[6] = 0x20; // more fragments
        assert_eq!(GsoPacket::new(&frag, 50).unwrap_err(), GsoError::Fragment);
        let mut icmp = udp.clone();
        icmp[9] = 1;
        assert_eq!(
            GsoPacket::new(&icmp, 50).unwrap_err(),
            GsoError::UnsupportedProtocol(1)
        );
        let mut v6_ext = super_packet(false, true, 0, 0, &[1; 100]);
        v6_ext[6] = 0; // hop-by-hop options
        assert_eq!(
            GsoPacket::new(&v6_ext, 50).unwrap_err(),
            GsoError::UnsupportedProtocol(0)
        );
        assert_eq!(
            GsoPacket::new(&udp[..24], 50).unwrap_err(),
            GsoError::Malformed
        );
        let mut short_tcp = super_packet(true, true, 0, 0, &[]);
        short_tcp[32] = 4 << 4; // data offset 16 bytes
        assert_eq!(
            GsoPacket::new(&short_tcp, 50).unwrap_err(),
            GsoError::Malformed
        );
        let mut out = [0u8; 60];
        let gso = GsoPacket::new(&udp, 50).unwrap();
        assert_eq!(gso.write_segment(0, &mut out), None, "output too short");
    }
}
