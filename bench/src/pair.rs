//! Two endpoints that know each other, joined in memory: what the micro benchmarks and the in-memory
//! scenario drive. Only the public API of `pnet-mesh` is used.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::proto::constants::REKEY_TIMEOUT;
use pnet_mesh::{Datagram, Endpoint, EndpointConfig, PacketBuf, PeerConfig, PeerId, ip};

/// A's tunnel address and port, the source of A → B packets.
pub const A_TUNNEL: &str = "10.0.0.1:9";
/// B's tunnel address and port, the source of B → A packets.
pub const B_TUNNEL: &str = "10.0.0.2:9";

/// Each side's one peer is the other.
pub const PEER: PeerId = PeerId(0);

/// How far apart in (virtual) time successive handshakes of [`Pair::timed_handshake`] must be: past
/// REKEY_TIMEOUT, so `connect` sends a new initiation, and well past the responder's 20 ms flood limit.
pub const HANDSHAKE_SPACING: Duration = REKEY_TIMEOUT.saturating_add(Duration::from_secs(1));

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The initiator of [`Pair::establish`].
    A,
    /// The responder.
    B,
}

/// Endpoints `a` and `b`, each configured with the other as its only peer (endpoint known, a /32 of
/// allowed IPs), deterministic keys and RNGs.
#[derive(Debug)]
pub struct Pair {
    /// The initiator.
    pub a: Endpoint,
    /// The responder.
    pub b: Endpoint,
    /// A's UDP address, as B sees it.
    pub a_addr: SocketAddr,
    /// B's UDP address, as A sees it.
    pub b_addr: SocketAddr,
    /// A buffer for handshake messages and keepalives.
    wire: Vec<u8>,
}

fn parse(addr: &str) -> SocketAddr {
    // The constants above are valid socket addresses.
    addr.parse().unwrap_or_else(|e| unreachable!("{addr}: {e}"))
}

impl Pair {
    /// Two fresh endpoints whose clocks start at `now`, seeded from `seed`.
    ///
    /// # Errors
    /// A configuration the engine refused (a bug here).
    pub fn new(seed: u64, now: Instant) -> Result<Pair, String> {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a_key = PrivateKey::generate(&mut SeededRng::new(seed));
        let b_key = PrivateKey::generate(&mut SeededRng::new(seed + 1));
        let a_addr: SocketAddr = "192.0.2.1:51820".parse().map_err(|e| format!("{e}"))?;
        let b_addr: SocketAddr = "192.0.2.2:51820".parse().map_err(|e| format!("{e}"))?;
        let net = |s: &str| s.parse().map_err(|e| format!("allowed ip {s}: {e}"));
        let a_cfg = EndpointConfig::builder(a_key.clone())
            .clock_anchor(now, wall)
            .peer(
                PeerConfig::new(b_key.public_key())
                    .endpoint(b_addr)
                    .allowed_ip(net("10.0.0.2/32")?),
            )
            .build()
            .map_err(|e| format!("endpoint a: {e}"))?;
        let b_cfg = EndpointConfig::builder(b_key)
            .clock_anchor(now, wall)
            .peer(
                PeerConfig::new(a_key.public_key())
                    .endpoint(a_addr)
                    .allowed_ip(net("10.0.0.1/32")?),
            )
            .build()
            .map_err(|e| format!("endpoint b: {e}"))?;
        Ok(Pair {
            a: Endpoint::new(Arc::new(a_cfg), Box::new(SeededRng::new(seed + 2)), now),
            b: Endpoint::new(Arc::new(b_cfg), Box::new(SeededRng::new(seed + 3)), now),
            a_addr,
            b_addr,
            wire: vec![0; 2048],
        })
    }

    /// A pair with a confirmed session both ways: a handshake at `now`, then one packet each way.
    ///
    /// # Errors
    /// Whatever step failed.
    pub fn established(seed: u64, now: Instant) -> Result<Pair, String> {
        let mut pair = Pair::new(seed, now)?;
        pair.establish(now)?;
        Ok(pair)
    }

    /// Runs a handshake A → B at `now`, then sends one packet each way so that both sides hold a
    /// confirmed current keypair, and drains every event.
    ///
    /// # Errors
    /// Whatever step failed.
    pub fn establish(&mut self, now: Instant) -> Result<(), String> {
        self.a
            .connect(now, PEER)
            .map_err(|e| format!("connect: {e}"))?;
        self.pump(now);
        for side in [Side::A, Side::B] {
            let packet = udp_packet(64, side).ok_or("packet template")?;
            let mut buf = vec![0u8; buffer_len(packet.len())];
            buf[PacketBuf::HEADROOM..][..packet.len()].copy_from_slice(&packet);
            let (off, len) = self.seal(side, now, &mut buf, packet.len())?;
            self.open(side.other(), now, &mut buf[off..off + len])?;
            self.pump(now);
        }
        if !self.a.has_session(now, PEER) || !self.b.has_session(now, PEER) {
            return Err("no session after the handshake".into());
        }
        Ok(())
    }

    /// The endpoint on `side`.
    pub fn endpoint(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// `side`'s UDP address.
    pub fn addr(&self, side: Side) -> SocketAddr {
        match side {
            Side::A => self.a_addr,
            Side::B => self.b_addr,
        }
    }

    /// Seals the IP packet of `len` bytes that sits at [`PacketBuf::HEADROOM`] in `buf` with
    /// `from`'s [`Endpoint::send_packet`]; returns where the datagram now is in `buf` (offset, length).
    ///
    /// # Errors
    /// The [`SendError`](pnet_mesh::SendError), or "staged" when there was no session (see
    /// [`try_seal`](Self::try_seal)).
    #[inline]
    pub fn seal(
        &mut self,
        from: Side,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(usize, usize), String> {
        self.try_seal(from, now, buf, len)?
            .ok_or_else(|| "packet staged: no session".into())
    }

    /// As [`seal`](Self::seal), but `Ok(None)` when the endpoint held the packet for a handshake.
    ///
    /// # Errors
    /// The [`SendError`](pnet_mesh::SendError).
    #[inline]
    pub fn try_seal(
        &mut self,
        from: Side,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Option<(usize, usize)>, String> {
        let base = buf.as_ptr() as usize;
        let mut pkt = PacketBuf::new(buf, len).map_err(|e| format!("{e}"))?;
        match self.endpoint(from).send_packet(now, &mut pkt) {
            Ok(Some(t)) => Ok(Some((pkt.datagram().as_ptr() as usize - base, t.len))),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("send_packet: {e}")),
        }
    }

    /// Opens the transport datagram in `datagram` at `to` with [`Endpoint::handle_datagram`]; returns
    /// the length of the delivered packet.
    ///
    /// # Errors
    /// Anything but [`Datagram::Deliver`].
    #[inline]
    pub fn open(&mut self, to: Side, now: Instant, datagram: &mut [u8]) -> Result<usize, String> {
        let from = self.addr(to.other());
        match self.endpoint(to).handle_datagram(now, from, datagram) {
            Datagram::Deliver { packet, .. } => Ok(packet.len()),
            Datagram::Dropped(r) => Err(format!("dropped: {r}")),
            Datagram::Reply { .. } => Err("a reply instead of a delivery".into()),
            Datagram::Consumed => Err("consumed instead of delivered".into()),
        }
    }

    /// Moves everything either side wants to send (handshake messages, replies, keepalives, staged
    /// packets) to the other until both are quiet, and drains both event queues. Returns the number of
    /// datagrams moved.
    pub fn pump(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        loop {
            let before = moved;
            for side in [Side::A, Side::B] {
                loop {
                    let ep = match side {
                        Side::A => &mut self.a,
                        Side::B => &mut self.b,
                    };
                    let Some(t) = ep.poll_transmit(now, &mut self.wire) else {
                        break;
                    };
                    moved += 1;
                    self.deliver(side.other(), now, t.len, &mut moved);
                }
            }
            while self.a.poll_event().is_some() || self.b.poll_event().is_some() {}
            if moved == before || moved > 10_000 {
                return moved;
            }
        }
    }

    /// Hands `wire[..len]` to `to`, and its replies back and forth (a bounded number of times).
    fn deliver(&mut self, to: Side, now: Instant, mut len: usize, moved: &mut usize) {
        let mut side = to;
        for _ in 0..4 {
            let from = self.addr(side.other());
            let ep = match side {
                Side::A => &mut self.a,
                Side::B => &mut self.b,
            };
            let Some(buf) = self.wire.get_mut(..len) else {
                return;
            };
            match ep.handle_datagram(now, from, buf) {
                Datagram::Reply { len: n, .. } => {
                    *moved += 1;
                    len = n;
                    side = side.other();
                }
                _ => return,
            }
        }
    }

    /// One complete handshake A → B at `now`, timed phase by phase with the real clock:
    /// `[create, consume + response, complete]`, i.e. `connect` + `poll_transmit` at A,
    /// `handle_datagram` of the initiation at B, `handle_datagram` of the response at A. What follows
    /// (A's keepalive, events) is delivered untimed. Successive calls need `now` at least
    /// [`HANDSHAKE_SPACING`] apart.
    ///
    /// # Errors
    /// A step that did not do what a handshake needs.
    pub fn timed_handshake(&mut self, now: Instant) -> Result<[Duration; 3], String> {
        let t0 = Instant::now();
        self.a
            .connect(now, PEER)
            .map_err(|e| format!("connect: {e}"))?;
        let init = self
            .a
            .poll_transmit(now, &mut self.wire)
            .ok_or("connect queued no initiation")?;
        let t1 = Instant::now();
        let reply = self
            .b
            .handle_datagram(now, self.a_addr, &mut self.wire[..init.len]);
        let Datagram::Reply { len, .. } = reply else {
            return Err(format!("the initiation got no response: {reply:?}"));
        };
        let t2 = Instant::now();
        let done = self
            .a
            .handle_datagram(now, self.b_addr, &mut self.wire[..len]);
        let t3 = Instant::now();
        if !matches!(done, Datagram::Consumed) {
            return Err(format!("the response was not consumed: {done:?}"));
        }
        self.pump(now);
        Ok([t1 - t0, t2 - t1, t3 - t2])
    }

    /// A handshake initiation from A at `now` (after `connect`), copied out.
    ///
    /// # Errors
    /// When A queued none.
    pub fn initiation(&mut self, now: Instant) -> Result<Vec<u8>, String> {
        self.a
            .connect(now, PEER)
            .map_err(|e| format!("connect: {e}"))?;
        let t = self
            .a
            .poll_transmit(now, &mut self.wire)
            .ok_or("connect queued no initiation")?;
        Ok(self.wire[..t.len].to_vec())
    }
}

impl Side {
    /// The other endpoint.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// An IPv4/UDP packet of `len` bytes in all (`len` ≥ 28) from `from`'s tunnel address to the other's,
/// made with [`ip::emit_udp`]; the UDP payload is a byte pattern.
pub fn udp_packet(len: usize, from: Side) -> Option<Vec<u8>> {
    let (src, dst) = match from {
        Side::A => (parse(A_TUNNEL), parse(B_TUNNEL)),
        Side::B => (parse(B_TUNNEL), parse(A_TUNNEL)),
    };
    let hdr = ip::udp_headers_len(&dst);
    let payload = len.checked_sub(hdr)?;
    let mut packet = vec![0u8; len];
    for (i, b) in packet.iter_mut().enumerate().skip(hdr) {
        *b = i as u8;
    }
    ip::emit_udp(&mut packet, src, dst, payload)?;
    Some(packet)
}

/// IPv4 + UDP header bytes in front of the application payload of [`udp_packet`].
pub const UDP_IPV4_HEADERS: usize = ip::IPV4_HEADER_LEN + ip::UDP_HEADER_LEN;

/// The buffer a [`PacketBuf`] of a `len`-byte packet needs.
pub const fn buffer_len(len: usize) -> usize {
    PacketBuf::HEADROOM + len + PacketBuf::TAILROOM
}

/// Bytes of a transport message carrying a `len`-byte packet under `mtu`: 16-byte header, the packet
/// padded to a multiple of 16 (but not past the MTU), 16-byte tag (whitepaper §5.4.6).
pub const fn transport_len(len: usize, mtu: usize) -> usize {
    16 + padded_len(len, mtu) + 16
}

/// The packet length after WireGuard's padding.
pub const fn padded_len(len: usize, mtu: usize) -> usize {
    let padded = len.div_ceil(16) * 16;
    let cap = if mtu > len { mtu } else { len };
    if padded < cap { padded } else { cap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_pair_moves_packets_both_ways_at_every_size() {
        let now = Instant::now();
        let mut pair = Pair::established(1, now).unwrap();
        for len in [28, 64, 100, 128, 512, 1280, 1419, 1420] {
            for side in [Side::A, Side::B] {
                let packet = udp_packet(len, side).unwrap();
                let mut buf = vec![0u8; buffer_len(len)];
                buf[PacketBuf::HEADROOM..][..len].copy_from_slice(&packet);
                let (off, wire) = pair.seal(side, now, &mut buf, len).unwrap();
                assert_eq!(wire, transport_len(len, 1420), "{len}");
                assert_eq!(
                    pair.open(side.other(), now, &mut buf[off..off + wire]),
                    Ok(len)
                );
                assert_eq!(&buf[off + 16..off + 16 + len], &packet[..]);
            }
        }
    }

    #[test]
    fn handshakes_repeat_at_the_spacing() {
        let mut now = Instant::now();
        let mut pair = Pair::new(5, now).unwrap();
        for _ in 0..5 {
            now += HANDSHAKE_SPACING;
            pair.timed_handshake(now).unwrap();
            assert!(pair.a.has_session(now, PEER));
        }
        assert!(pair.a.indices_in_use() + pair.b.indices_in_use() <= 8);
    }

    #[test]
    fn padding_follows_the_whitepaper() {
        assert_eq!(padded_len(0, 1420), 0);
        assert_eq!(padded_len(1, 1420), 16);
        assert_eq!(padded_len(64, 1420), 64);
        assert_eq!(padded_len(1419, 1420), 1420);
        assert_eq!(padded_len(1420, 1420), 1420);
        assert_eq!(padded_len(1418, 1419), 1419);
    }
}
