//! Entry points for the cargo-fuzz targets in `engine/fuzz/` and for the stable test that replays their
//! corpus. Each target body is one call into this module. Not part of the stable API.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
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

/// The fixed keys, addresses and validated configurations of the primed pair, built once per process.
/// Validation and public-key derivation are the same for every input; doing them once leaves the
/// handshakes themselves (about a dozen X25519 operations) as the cost of each fuzzing execution.
struct Fixture {
    initiator: Arc<EndpointConfig>,
    responder: Arc<EndpointConfig>,
    /// The instant the first handshake runs at; every input sees the same relative times.
    start: Instant,
}

/// Where the initiator sits (its peer entry at the responder).
const INITIATOR_ADDR: ([u8; 4], u16) = ([192, 0, 2, 1], 1000);
/// Where the responder sits.
const RESPONDER_ADDR: ([u8; 4], u16) = ([192, 0, 2, 2], 2000);
/// The source of fuzzed datagrams: neither peer's configured endpoint.
const FUZZ_SOURCE: ([u8; 4], u16) = ([198, 51, 100, 7], 4444);
/// When the primed pair receives fuzzed datagrams, after its first handshake: late enough that the
/// initiator may start a second one (REKEY_TIMEOUT, 5 s) and that a fresh initiation is no flood.
const PRIMED_AGE: Duration = Duration::from_secs(6);

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let start = Instant::now();
        let a_key = PrivateKey::from_bytes([1; 32]);
        let b_key = PrivateKey::from_bytes([2; 32]);
        let cfg = |key: PrivateKey, peer: &PrivateKey, ep: ([u8; 4], u16), ip: &str| {
            EndpointConfig::builder(key)
                .clock_anchor(
                    start,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                )
                .peer(
                    PeerConfig::new(peer.public_key())
                        .endpoint(SocketAddr::from(ep))
                        .allowed_ip(ip.parse().unwrap_or_else(|_| unreachable!())),
                )
                .build()
        };
        let (Ok(a_cfg), Ok(b_cfg)) = (
            cfg(a_key.clone(), &b_key, RESPONDER_ADDR, "10.0.0.2/32"),
            cfg(b_key, &a_key, INITIATOR_ADDR, "10.0.0.1/32"),
        ) else {
            unreachable!("fixed configuration is valid")
        };
        Fixture {
            initiator: Arc::new(a_cfg),
            responder: Arc::new(b_cfg),
            start,
        }
    })
}

/// A pair of endpoints with a session, so fuzzed datagrams reach every stage of the receive path.
struct Primed {
    initiator: Endpoint,
    responder: Endpoint,
    now: Instant,
}

/// Two endpoints after one complete handshake (initiation, response, confirming keepalive) and with a
/// second initiation from the initiator in flight, so a response can reach `consume_response`. Fully
/// deterministic: fixed keys, seeded RNGs, fixed relative times.
fn primed(under_load: bool) -> Primed {
    let f = fixture();
    let start = f.start;
    let a_addr = SocketAddr::from(INITIATOR_ADDR);
    let b_addr = SocketAddr::from(RESPONDER_ADDR);
    let mut a = Endpoint::new(f.initiator.clone(), Box::new(SeededRng::new(1)), start);
    let mut b = Endpoint::new(f.responder.clone(), Box::new(SeededRng::new(2)), start);
    let mut wire = [0u8; 256];
    let _ = a.connect(start, crate::PeerId(0));
    if let Some(t) = a.poll_transmit(start, &mut wire)
        && let Datagram::Reply { len, .. } =
            b.handle_datagram(start, a_addr, wire.get_mut(..t.len).unwrap_or_default())
    {
        let _ = a.handle_datagram(start, b_addr, wire.get_mut(..len).unwrap_or_default());
    }
    while let Some(t) = a.poll_transmit(start, &mut wire) {
        let _ = b.handle_datagram(start, a_addr, wire.get_mut(..t.len).unwrap_or_default());
    }
    let now = start + PRIMED_AGE;
    let _ = a.connect(now, crate::PeerId(0));
    while a.poll_transmit(now, &mut wire).is_some() {}
    a.set_under_load(under_load);
    b.set_under_load(under_load);
    Primed {
        initiator: a,
        responder: b,
        now,
    }
}

/// Feeds one datagram to a primed initiator and to a primed responder; neither may panic, and a
/// delivered packet must lie inside the input.
///
/// The first input byte is a mode, not part of the datagram: its low bit puts both endpoints under
/// load (mac2 required, or else a cookie reply), so every message type reaches both paths.
pub fn handle_datagram(data: &[u8]) {
    let Some((&mode, datagram)) = data.split_first() else {
        return;
    };
    let mut p = primed(mode & 1 == 1);
    let from = SocketAddr::from(FUZZ_SOURCE);
    for ep in [&mut p.initiator, &mut p.responder] {
        let mut buf = datagram.to_vec();
        if let Datagram::Deliver { packet, .. } = ep.handle_datagram(p.now, from, &mut buf) {
            assert!(packet.len() <= datagram.len());
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
        let from = SocketAddr::from(INITIATOR_ADDR);
        match p.responder.handle_datagram(p.now, from, &mut wire) {
            Datagram::Deliver { packet, .. } => assert_eq!(&packet[..], data),
            Datagram::Dropped(_) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}

/// The mesh PSK of [`mesh_control`]'s primed node; `engine/fuzz/seeds.py` makes records with it.
pub const MESH_CONTROL_PSK: [u8; 32] = [0x42; 32];

/// A discovery message, first through the codecs (a record that decodes re-encodes to the same
/// bytes), then into a node's discovery from a member and from a configured peer that is no
/// member; the table stays within its bound and nothing panics.
pub fn mesh_control(data: &[u8]) {
    use crate::mesh::discovery::{Discovery, DiscoveryConfig};
    use crate::mesh::wire::{MAX_RECORD_LEN, MemberRecord, MessageHeader, RecordKey};
    use pnet_mesh_crypto::{PresharedKey, PublicKey};

    let psk = PresharedKey::from_bytes(MESH_CONTROL_PSK);
    let key = RecordKey::new(&psk);
    if let Ok((header, mut rest)) = MessageHeader::decode(data) {
        for _ in 0..header.count {
            let Ok((received, after)) = MemberRecord::decode(&key, rest) else {
                break;
            };
            let mut out = [0u8; MAX_RECORD_LEN];
            let n = received
                .record
                .encode(&key, received.observed, received.hops, &mut out)
                .expect("a decoded record fits the largest record");
            assert_eq!(
                out.get(..n),
                rest.get(..n),
                "record roundtrip changed bytes"
            );
            rest = after;
        }
    }
    let now = Instant::now();
    let wall = 1_800_000_000_000_000;
    let member = PublicKey::from_bytes([2; 32]);
    let outsider = PublicKey::from_bytes([3; 32]);
    let mut config = DiscoveryConfig::new(psk);
    config.max_members = 16;
    let own = PublicKey::from_bytes([1; 32]);
    let mut discovery = Discovery::new(
        own,
        &["10.0.0.1".parse().expect("literal")],
        config,
        1392,
        now,
        wall,
    );
    for (k, a) in [(member, "10.0.0.2/32"), (outsider, "10.0.0.3/32")] {
        discovery.add_configured(now, k, vec![a.parse().expect("literal")], false);
    }
    // The member shows its record, so it may vouch.
    let mut hello = vec![0u8; 256];
    let _ = MessageHeader {
        sync: false,
        count: 1,
    }
    .encode(&mut hello);
    let record = MemberRecord {
        public_key: member,
        version: wall,
        lifetime_secs: 60,
        left: false,
        addresses: vec!["10.0.0.2/32".parse().expect("literal")],
        endpoints: Vec::new(),
    };
    let n = record
        .encode(&key, None, 0, hello.get_mut(4..).unwrap_or_default())
        .unwrap_or(0);
    hello.truncate(4 + n);
    discovery.handle_message(now, member, &hello);
    discovery.handle_message(now, member, data);
    discovery.handle_message(now + Duration::from_millis(1), outsider, data);
    discovery.handle_timeout(now + Duration::from_secs(61), wall + 61_000_000);
    while discovery.poll_action().is_some() {}
    while discovery.poll_event().is_some() {}
    while discovery.poll_transmit().is_some() {}
    assert!(discovery.members().count() <= 16, "table bound held");
}
