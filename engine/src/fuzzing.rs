//! Entry points for the cargo-fuzz targets in `engine/fuzz/` and for the stable test that replays their
//! corpus. Each target body is one call into this module. Not part of the stable API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh_crypto::PrivateKey;
use pnet_mesh_crypto::rng::SeededRng;

use crate::proto::wire::{self, CookieReply, Initiation, Response, TransportHeader};
use crate::{Datagram, Endpoint, EndpointConfig, PacketBuf, PeerConfig, ip};

/// Parses `data` with every WireGuard message codec; a parsed message must re-emit to the same bytes.
pub fn wire_message(data: &[u8]) {
    if let Ok(kind) = wire::peek_type(data) {
        let mut out = [0u8; 256];
        let roundtrip = match kind {
            wire::MessageType::Initiation => Initiation::parse(data)
                .ok()
                .and_then(|m| m.emit(&mut out).ok()),
            wire::MessageType::Response => Response::parse(data)
                .ok()
                .and_then(|m| m.emit(&mut out).ok()),
            wire::MessageType::CookieReply => CookieReply::parse(data)
                .ok()
                .and_then(|m| m.emit(&mut out).ok()),
            wire::MessageType::Transport => TransportHeader::parse(data)
                .ok()
                .and_then(|m| m.emit(&mut out).ok()),
        };
        if let Some(n) = roundtrip {
            assert_eq!(out.get(..n), data.get(..n), "codec roundtrip changed bytes");
        }
    }
}

/// Parses `data` as an inner IP packet and as a UDP datagram.
pub fn ip_header(data: &[u8]) {
    if let Ok(n) = ip::packet_len(data) {
        assert!(n <= data.len());
        let _ = ip::source(data);
        let _ = ip::destination(data);
    }
    if let Some(v) = ip::parse_udp(data) {
        assert!(v.payload.len() <= data.len());
    }
}

/// A pair of endpoints with a session, so fuzzed datagrams reach every stage of the receive path.
struct Primed {
    initiator: Endpoint,
    responder: Endpoint,
    now: Instant,
}

fn primed(under_load: bool) -> Primed {
    let now = Instant::now();
    let a_key = PrivateKey::from_bytes([1; 32]);
    let b_key = PrivateKey::from_bytes([2; 32]);
    let a_addr: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 1000));
    let b_addr: SocketAddr = SocketAddr::from(([192, 0, 2, 2], 2000));
    let cfg = |key: PrivateKey, peer: PrivateKey, ep: SocketAddr, ip: &str| {
        EndpointConfig::builder(key)
            .clock_anchor(
                now,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )
            .peer(
                PeerConfig::new(peer.public_key())
                    .endpoint(ep)
                    .allowed_ip(ip.parse().unwrap_or_else(|_| unreachable!())),
            )
            .build()
    };
    let (Ok(a_cfg), Ok(b_cfg)) = (
        cfg(a_key.clone(), b_key.clone(), b_addr, "10.0.0.2/32"),
        cfg(b_key, a_key, a_addr, "10.0.0.1/32"),
    ) else {
        unreachable!("fixed configuration is valid")
    };
    let mut a = Endpoint::new(Arc::new(a_cfg), Box::new(SeededRng::new(1)), now);
    let mut b = Endpoint::new(Arc::new(b_cfg), Box::new(SeededRng::new(2)), now);
    let mut wire = [0u8; 256];
    let _ = a.connect(now, crate::PeerId(0));
    if let Some(t) = a.poll_transmit(now, &mut wire)
        && let Datagram::Reply { len, .. } =
            b.handle_datagram(now, a_addr, wire.get_mut(..t.len).unwrap_or_default())
    {
        let _ = a.handle_datagram(now, b_addr, wire.get_mut(..len).unwrap_or_default());
    }
    while let Some(t) = a.poll_transmit(now, &mut wire) {
        let _ = b.handle_datagram(now, a_addr, wire.get_mut(..t.len).unwrap_or_default());
    }
    a.set_under_load(under_load);
    b.set_under_load(under_load);
    Primed {
        initiator: a,
        responder: b,
        now,
    }
}

/// Feeds `data` to a primed initiator and responder (the first byte picks under-load mode); neither may
/// panic, and a delivered packet must lie inside the input.
pub fn handle_datagram(data: &[u8]) {
    let under_load = data.first().is_some_and(|b| b & 1 == 1);
    let mut p = primed(under_load);
    let from = SocketAddr::from(([198, 51, 100, 7], 4444));
    for ep in [&mut p.initiator, &mut p.responder] {
        let mut buf = data.to_vec();
        if let Datagram::Deliver { packet, .. } = ep.handle_datagram(p.now, from, &mut buf) {
            assert!(packet.len() <= data.len());
        }
        let mut out = [0u8; 2048];
        while ep.poll_transmit(p.now, &mut out).is_some() {}
    }
}

/// Seals `data` as an IP packet from the primed initiator and opens it at the responder: if sealing
/// succeeds, the responder must deliver exactly the packet or drop it for its source.
pub fn seal_open(data: &[u8]) {
    let mut p = primed(false);
    let mut buf = vec![0u8; PacketBuf::HEADROOM + data.len() + PacketBuf::TAILROOM];
    let Ok(mut pkt) = PacketBuf::copy_from(&mut buf, data) else {
        return;
    };
    if let Ok(Some(t)) = p.initiator.send_packet(p.now, &mut pkt) {
        let mut wire = pkt.datagram().to_vec();
        assert_eq!(wire.len(), t.len);
        let from = SocketAddr::from(([192, 0, 2, 1], 1000));
        match p.responder.handle_datagram(p.now, from, &mut wire) {
            Datagram::Deliver { packet, .. } => assert_eq!(&packet[..], data),
            Datagram::Dropped(_) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}
