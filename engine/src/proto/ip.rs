//! The inner packets: IPv4/IPv6 header checks after decryption, addresses for routing, and the
//! IPv4/IPv6 + UDP headers the node writes around application datagrams.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// IPv4 header length without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_HEADER_LEN: usize = 40;
/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_TCP: u8 = 6;

/// Why bytes are not an acceptable inner IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpError {
    /// Version nibble not 4 or 6 ("dishonest packet type").
    BadVersion,
    /// The header's length field disagrees with the bytes (WIREGUARD_CHECKLIST case 32).
    BadLength,
}

/// Checks the version and length of a decrypted packet and returns its true length (the rest is padding).
///
/// # Errors
/// [`IpError`] for any other version or an inconsistent length field.
pub fn packet_len(plain: &[u8]) -> Result<usize, IpError> {
    match plain.first().map(|b| b >> 4) {
        Some(4) => match be16(plain, 2) {
            Some(tot)
                if plain.len() >= IPV4_HEADER_LEN
                    && tot >= IPV4_HEADER_LEN
                    && tot <= plain.len() =>
            {
                Ok(tot)
            }
            _ => Err(IpError::BadLength),
        },
        Some(6) => match be16(plain, 4) {
            Some(p) if plain.len() >= IPV6_HEADER_LEN && p + IPV6_HEADER_LEN <= plain.len() => {
                Ok(p + IPV6_HEADER_LEN)
            }
            _ => Err(IpError::BadLength),
        },
        _ => Err(IpError::BadVersion),
    }
}

/// The big-endian 16-bit field at `at`, if the bytes are there.
fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
    Some(usize::from(u16::from_be_bytes(b)))
}

/// The source address of a packet that passed [`packet_len`].
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    address(packet, 12, 8)
}

/// The destination address of a packet that passed [`packet_len`].
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    address(packet, 16, 24)
}

fn address(packet: &[u8], v4_offset: usize, v6_offset: usize) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(v4_offset..v4_offset + 4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let b: [u8; 16] = packet.get(v6_offset..v6_offset + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// Length of the IP + UDP headers for a datagram between addresses of this family.
pub fn udp_headers_len(dst: &SocketAddr) -> usize {
    match dst {
        SocketAddr::V4(_) => IPV4_HEADER_LEN + UDP_HEADER_LEN,
        SocketAddr::V6(_) => IPV6_HEADER_LEN + UDP_HEADER_LEN,
    }
}

/// Writes IPv4 or IPv6 and UDP headers into `packet[..udp_headers_len(dst)]` around the `payload_len`
/// bytes that already sit right after them, with a correct UDP checksum (mandatory for IPv6). Returns
/// the packet length, or `None` if the families differ, the buffer is short or the size overflows.
pub fn emit_udp(
    packet: &mut [u8],
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
) -> Option<usize> {
    let hdr = udp_headers_len(&dst);
    let total = hdr + payload_len;
    if packet.len() < total {
        return None;
    }
    let udp_len = u16::try_from(UDP_HEADER_LEN + payload_len).ok()?;
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let tot = u16::try_from(total).ok()?;
            let ip = packet.get_mut(..IPV4_HEADER_LEN)?;
            ip.copy_from_slice(&[
                0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, PROTO_UDP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            ip.get_mut(2..4)?.copy_from_slice(&tot.to_be_bytes());
            ip.get_mut(12..16)?.copy_from_slice(&s.octets());
            ip.get_mut(16..20)?.copy_from_slice(&d.octets());
            let csum = !fold(sum(ip, 0));
            ip.get_mut(10..12)?.copy_from_slice(&csum.to_be_bytes());
            let pseudo = sum(
                &s.octets(),
                sum(&d.octets(), u32::from(PROTO_UDP) + u32::from(udp_len)),
            );
            write_udp(
                packet.get_mut(IPV4_HEADER_LEN..total)?,
                src.port(),
                dst.port(),
                udp_len,
                pseudo,
            )?;
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = packet.get_mut(..IPV6_HEADER_LEN)?;
            ip.fill(0);
            *ip.get_mut(0)? = 0x60;
            ip.get_mut(4..6)?.copy_from_slice(&udp_len.to_be_bytes());
            *ip.get_mut(6)? = PROTO_UDP;
            *ip.get_mut(7)? = 64;
            ip.get_mut(8..24)?.copy_from_slice(&s.octets());
            ip.get_mut(24..40)?.copy_from_slice(&d.octets());
            let pseudo = sum(
                &s.octets(),
                sum(&d.octets(), u32::from(PROTO_UDP) + u32::from(udp_len)),
            );
            write_udp(
                packet.get_mut(IPV6_HEADER_LEN..total)?,
                src.port(),
                dst.port(),
                udp_len,
                pseudo,
            )?;
        }
        _ => return None,
    }
    Some(total)
}

fn write_udp(
    udp: &mut [u8],
    src_port: u16,
    dst_port: u16,
    udp_len: u16,
    pseudo: u32,
) -> Option<()> {
    udp.get_mut(0..2)?.copy_from_slice(&src_port.to_be_bytes());
    udp.get_mut(2..4)?.copy_from_slice(&dst_port.to_be_bytes());
    udp.get_mut(4..6)?.copy_from_slice(&udp_len.to_be_bytes());
    udp.get_mut(6..8)?.fill(0);
    let mut csum = !fold(sum(udp, pseudo));
    if csum == 0 {
        // Zero means "no checksum" in UDP; a computed zero is sent as all ones.
        csum = 0xffff;
    }
    udp.get_mut(6..8)?.copy_from_slice(&csum.to_be_bytes());
    Some(())
}

/// The ones'-complement sum of `data` as 16-bit big-endian words, added to `init` (RFC 1071).
///
/// Eight bytes at a time: a 32-bit word `(a << 16) + b` is congruent to `a + b` modulo `0xffff`, so
/// adding 32-bit halves into a 64-bit accumulator and folding at the end gives the same sum with a
/// quarter of the additions (the checksum of every datagram the node builds runs through here).
pub(crate) fn sum(data: &[u8], init: u32) -> u32 {
    let mut acc = u64::from(init);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let w = u64::from_be_bytes(bytes);
        // Each half is below 2^32, so 2^32 of these additions cannot overflow.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for c in &mut pairs {
        if let [hi, lo] = c {
            acc += u64::from(u16::from_be_bytes([*hi, *lo]));
        }
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit ones'-complement sum to 16 bits.
pub(crate) fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The UDP destination port of an IPv4 (unfragmented) or IPv6 (no extension headers) packet,
/// without checking the rest: a cheap look for steering packets to their reader.
pub fn udp_destination_port(packet: &[u8]) -> Option<u16> {
    let at = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes(packet.get(6..8)?.try_into().ok()?);
            if *packet.get(9)? != PROTO_UDP || frag & 0x1fff != 0 {
                return None;
            }
            ihl
        }
        6 if *packet.get(6)? == PROTO_UDP => IPV6_HEADER_LEN,
        _ => return None,
    };
    Some(u16::from_be_bytes(
        packet.get(at + 2..at + 4)?.try_into().ok()?,
    ))
}

/// A UDP datagram read out of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpView<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// Reads a UDP datagram out of an IPv4 (no fragments) or IPv6 (no extension headers) packet.
/// Checksums are not verified: the packet was authenticated by the tunnel.
pub fn parse_udp(packet: &[u8]) -> Option<UdpView<'_>> {
    let len = packet_len(packet).ok()?;
    let packet = packet.get(..len)?;
    let (src_ip, dst_ip, udp) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes(packet.get(6..8)?.try_into().ok()?);
            if *packet.get(9)? != PROTO_UDP || ihl < IPV4_HEADER_LEN || frag & 0x3fff != 0 {
                return None;
            }
            (source(packet)?, destination(packet)?, packet.get(ihl..)?)
        }
        _ => {
            if *packet.get(6)? != PROTO_UDP {
                return None;
            }
            (
                source(packet)?,
                destination(packet)?,
                packet.get(IPV6_HEADER_LEN..)?,
            )
        }
    };
    let ulen = usize::from(u16::from_be_bytes(udp.get(4..6)?.try_into().ok()?));
    if ulen < UDP_HEADER_LEN || ulen > udp.len() {
        return None;
    }
    Some(UdpView {
        src: SocketAddr::new(src_ip, u16::from_be_bytes(udp.get(0..2)?.try_into().ok()?)),
        dst: SocketAddr::new(dst_ip, u16::from_be_bytes(udp.get(2..4)?.try_into().ok()?)),
        payload: udp.get(UDP_HEADER_LEN..ulen)?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn verify_udp_checksum(packet: &[u8]) -> bool {
        let v = parse_udp(packet).unwrap();
        let (hdr, proto_len) = match v.src {
            SocketAddr::V4(_) => (IPV4_HEADER_LEN, packet.len() - IPV4_HEADER_LEN),
            SocketAddr::V6(_) => (IPV6_HEADER_LEN, packet.len() - IPV6_HEADER_LEN),
        };
        let (s, d): (Vec<u8>, Vec<u8>) = match (v.src.ip(), v.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets().to_vec(), d.octets().to_vec()),
            (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets().to_vec(), d.octets().to_vec()),
            _ => unreachable!(),
        };
        let total = sum(
            &packet[hdr..],
            sum(&s, sum(&d, u32::from(PROTO_UDP) + proto_len as u32)),
        );
        fold(total) == 0xffff
    }

    proptest! {
        #[test]
        fn udp_roundtrips_with_valid_checksums(payload in prop::collection::vec(any::<u8>(), 0..1400), v6: bool, sp: u16, dp: u16) {
            let (src, dst): (SocketAddr, SocketAddr) = if v6 {
                (SocketAddr::new("fd77::1".parse().unwrap(), sp), SocketAddr::new("fd77::2".parse().unwrap(), dp))
            } else {
                (SocketAddr::new("10.77.0.1".parse().unwrap(), sp), SocketAddr::new("10.77.0.2".parse().unwrap(), dp))
            };
            let hdr = udp_headers_len(&dst);
            let mut buf = vec![0u8; hdr + payload.len() + 7];
            buf[hdr..hdr + payload.len()].copy_from_slice(&payload);
            let n = emit_udp(&mut buf, src, dst, payload.len()).unwrap();
            prop_assert_eq!(packet_len(&buf).unwrap(), n, "trailing bytes are padding");
            let view = parse_udp(&buf[..n]).unwrap();
            prop_assert_eq!(view.src, src);
            prop_assert_eq!(view.dst, dst);
            prop_assert_eq!(view.payload, &payload[..]);
            prop_assert!(verify_udp_checksum(&buf[..n]));
            prop_assert_eq!(source(&buf), Some(src.ip()));
            prop_assert_eq!(destination(&buf), Some(dst.ip()));
        }

        #[test]
        fn wide_sum_matches_the_word_by_word_definition(
            data in prop::collection::vec(any::<u8>(), 0..3000),
            init in 0u32..0x0010_0000,
        ) {
            let mut naive = u64::from(init);
            for c in data.chunks(2) {
                naive += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
            }
            while naive > 0xffff {
                naive = (naive & 0xffff) + (naive >> 16);
            }
            prop_assert_eq!(u64::from(fold(sum(&data, init))), naive);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(n) = packet_len(&bytes) {
                prop_assert!(n <= bytes.len());
            }
            let _ = parse_udp(&bytes);
            let _ = source(&bytes);
            let _ = destination(&bytes);
        }
    }

    #[test]
    fn dishonest_lengths_are_refused() {
        let mut v4 = [0u8; 40];
        v4[0] = 0x45;
        v4[3] = 41; // tot_len 41 > 40 bytes
        assert_eq!(packet_len(&v4), Err(IpError::BadLength));
        v4[3] = 19;
        assert_eq!(packet_len(&v4), Err(IpError::BadLength));
        v4[3] = 28;
        assert_eq!(packet_len(&v4), Ok(28));
        let mut v6 = [0u8; 60];
        v6[0] = 0x60;
        v6[5] = 21;
        assert_eq!(packet_len(&v6), Err(IpError::BadLength));
        v6[5] = 20;
        assert_eq!(packet_len(&v6), Ok(60));
        assert_eq!(packet_len(&[0x55; 40]), Err(IpError::BadVersion));
        assert_eq!(packet_len(&[]), Err(IpError::BadVersion));
    }
}
