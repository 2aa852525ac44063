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
    /// The initiator's second initiation, sent at `now` and not yet delivered.
    initiation: Vec<u8>,
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
    let mut initiation = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut wire) {
        initiation = wire.get(..t.len).unwrap_or_default().to_vec();
    }
    a.set_under_load(under_load);
    b.set_under_load(under_load);
    Primed {
        initiator: a,
        responder: b,
        now,
        initiation,
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

/// Cookie consume: the primed initiator's in-flight initiation reaches the responder under load,
/// which answers with a cookie reply; the initiator first gets a forgery made from the input, then the
/// genuine reply. The forgery must change nothing: unless it is the genuine reply byte for byte, the
/// genuine one is still accepted afterwards.
///
/// The first input byte is a mode: with its low bit the input is XORed into the genuine reply (a
/// flipped nonce, tag or cookie byte), without it the input replaces the reply after the type byte;
/// with bit 1 the genuine receiver index is kept, so the forgery reaches the decryption.
pub fn cookie_consume(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut p = primed(false);
    p.responder.set_under_load(true);
    let a_addr = SocketAddr::from(INITIATOR_ADDR);
    let b_addr = SocketAddr::from(RESPONDER_ADDR);
    let mut genuine = p.initiation.clone();
    let Datagram::Reply { len, .. } = p.responder.handle_datagram(p.now, a_addr, &mut genuine)
    else {
        unreachable!("a responder under load answers an initiation without mac2 with a cookie")
    };
    genuine.truncate(len);
    assert_eq!(genuine.len(), wire::COOKIE_REPLY_LEN);
    let mut forged = genuine.clone();
    if mode & 1 == 1 {
        for (f, i) in forged.iter_mut().zip(input) {
            *f ^= i;
        }
    } else {
        forged.truncate(1);
        forged.extend_from_slice(input);
    }
    if mode & 2 == 2
        && let (Some(dst), Some(src)) = (forged.get_mut(4..8), genuine.get(4..8))
    {
        dst.copy_from_slice(src);
    }
    let same = forged == genuine;
    let _ = p.initiator.handle_datagram(p.now, b_addr, &mut forged);
    let mut copy = genuine.clone();
    let outcome = p.initiator.handle_datagram(p.now, b_addr, &mut copy);
    if !same {
        assert!(
            matches!(outcome, Datagram::Consumed),
            "a forged cookie reply consumed the initiator's state: the genuine one got {outcome:?}"
        );
    }
}

/// Transport decrypt with a fuzzed receiver index and counter: a forged transport message (header
/// from the input or from the genuine next packet, body from the input) reaches the primed
/// responder, which must drop it, leave no plaintext in the buffer, and then still accept the
/// genuine packet with that counter.
///
/// Input: a mode byte (bit 0 keeps the genuine receiver index, bit 1 the genuine counter), a
/// 4-byte index, an 8-byte counter, then the body.
pub fn transport_decrypt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((index, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let Some((counter, body)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let mut p = primed(false);
    let from = SocketAddr::from(INITIATOR_ADDR);
    // The genuine next packet from the initiator: a UDP datagram between the pair's addresses.
    let mut inner = [0u8; 64];
    let inner_len = ip::emit_udp(
        &mut inner,
        "10.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!()),
        "10.0.0.2:6000".parse().unwrap_or_else(|_| unreachable!()),
        8,
    )
    .unwrap_or_else(|| unreachable!("the headers fit"));
    let inner = inner.get(..inner_len).unwrap_or_default().to_vec();
    let mut buf = vec![0u8; PacketBuf::HEADROOM + inner.len() + PacketBuf::TAILROOM];
    let Ok(mut pkt) = PacketBuf::copy_from(&mut buf, &inner) else {
        unreachable!("the buffer fits")
    };
    let Ok(Some(_)) = p.initiator.send_packet(p.now, &mut pkt) else {
        unreachable!("the primed initiator has a session")
    };
    let genuine = pkt.datagram().to_vec();
    let Ok(header) = TransportHeader::parse(&genuine) else {
        unreachable!("the initiator wrote a transport message")
    };
    let forged_header = TransportHeader {
        receiver: if mode & 1 == 1 {
            header.receiver
        } else {
            u32::from_le_bytes(*index)
        },
        counter: if mode & 2 == 2 {
            header.counter
        } else {
            u64::from_le_bytes(*counter)
        },
    };
    let mut forged = vec![0u8; wire::TRANSPORT_HEADER_LEN + body.len()];
    let _ = forged_header.emit(&mut forged);
    if let Some(dst) = forged.get_mut(wire::TRANSPORT_HEADER_LEN..) {
        dst.copy_from_slice(body);
    }
    let forged_copy = forged.clone();
    match p.responder.handle_datagram(p.now, from, &mut forged) {
        Datagram::Deliver { .. } => panic!("a forged transport message was delivered"),
        Datagram::Dropped(_) => {
            // The buffer holds what came in or less: never decrypted plaintext of the genuine packet.
            assert!(
                forged == forged_copy || !forged.windows(inner.len()).any(|w| w == inner),
                "plaintext left in the buffer of a dropped message"
            );
        }
        Datagram::Reply { .. } | Datagram::Consumed => {}
    }
    let mut wire = genuine;
    match p.responder.handle_datagram(p.now, from, &mut wire) {
        Datagram::Deliver { packet, .. } => assert_eq!(&packet[..], &inner[..]),
        other => panic!("the genuine packet after a forgery was refused: {other:?}"),
    }
}

/// Relay frames and path messages: each kind through its codec (what decodes re-encodes to the same
/// bytes), then a frame through a relay's routing decision with members, routes and a loop; a
/// forward always lowers the hop limit and never goes back where the frame came from.
///
/// The first input byte picks the peer the frame arrived from.
pub fn relay_frame(data: &[u8]) {
    use crate::mesh::relay::{FrameAction, RelayTable, parse_frame};
    use crate::mesh::wire::relay::{
        CandidateMessage, KIND_CANDIDATES, KIND_PROBE, KIND_PROBE_ACK, ProbeMessage, RelayFrame,
        relay_kind,
    };
    use pnet_mesh_crypto::PublicKey;

    let Some((&from, data)) = data.split_first() else {
        return;
    };
    let mut out = vec![0u8; data.len() + 64];
    match relay_kind(data) {
        Ok(KIND_PROBE | KIND_PROBE_ACK) => {
            if let Ok(m) = ProbeMessage::decode(data) {
                let n = m
                    .encode(&mut out)
                    .expect("a decoded probe fits its own length");
                assert_eq!(
                    ProbeMessage::decode(out.get(..n).unwrap_or_default()),
                    Ok(m)
                );
            }
        }
        Ok(KIND_CANDIDATES) => {
            if let Ok(m) = CandidateMessage::decode(data) {
                let n = m.encode(&mut out).expect("decoded candidates fit");
                assert_eq!(
                    CandidateMessage::decode(out.get(..n).unwrap_or_default()).as_ref(),
                    Ok(&m)
                );
            }
        }
        _ => {}
    }
    let Ok(Some(frame)) = parse_frame(data) else {
        return;
    };
    let n = frame.encode(&mut out).expect("a decoded frame fits");
    assert_eq!(
        RelayFrame::decode(out.get(..n).unwrap_or_default()),
        Ok(frame)
    );
    // Our relay: members 2 and 3 are neighbours; 4 is reached through 2, and 5 through 3 whose own
    // route leads back (the loop is 3's, so only the no-return rule and the hop limit stop it here).
    let key = |b: u8| PublicKey::from_bytes([b; 32]);
    let mut table = RelayTable::new(
        key(1),
        vec!["10.0.0.1".parse().expect("literal")],
        51_803,
        4,
    );
    for (id, b) in [(0u32, 2u8), (1, 3), (2, 6)] {
        let ip = format!("10.0.0.{b}/32").parse().expect("literal");
        table.set_peer(crate::PeerId(id), key(b), &[ip]);
    }
    table.set_routes([(key(4), key(2)), (key(5), key(3)), (key(7), key(6))]);
    let from = crate::PeerId(u32::from(from % 4));
    match table.route(from, &frame) {
        Ok(FrameAction::Forward {
            next, hop_limit, ..
        }) => {
            assert_ne!(next, from, "a frame went back where it came from");
            assert!(
                hop_limit < frame.hop_limit && hop_limit > 0,
                "hop limit not lowered"
            );
        }
        Ok(FrameAction::Deliver { .. }) => assert_eq!(frame.destination, key(1)),
        Err(_) => {}
    }
}

/// Channel reassembly: a run of channel packets (each a 2-byte big-endian length and its bytes) into
/// one peer's channels with small bounds; every message read is within the largest message, and the
/// reassembly memory never exceeds its budget.
pub fn channel_reassembly(data: &[u8]) {
    use crate::mesh::channel::{ChannelConfig, PeerChannels};

    let config = ChannelConfig {
        max_message: 4096,
        reassembly_limit: 64 << 10,
        send_buffer: 8192,
        window: 8,
        max_fragment: 256,
        max_channels: 4,
    };
    let start = Instant::now();
    let mut channels = PeerChannels::new(config, start);
    let mut rest = data;
    let mut step = 0u64;
    let mut out = [0u8; 512];
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        step += 1;
        let now = start + Duration::from_millis(step);
        let _ = channels.handle_packet(now, packet);
        let ids: Vec<u32> = channels.ids().collect();
        for id in ids {
            while let Ok(Some(message)) = channels.recv(id) {
                assert!(
                    message.len() <= config.max_message,
                    "a message over the bound"
                );
            }
        }
        while channels.poll_transmit(now, &mut out).is_some() {}
        channels.handle_timeout(now);
        while channels.poll_event().is_some() {}
        assert!(
            channels.budget().used() <= channels.budget().limit(),
            "reassembly memory over its budget"
        );
    }
}

/// The wg-quick parser on any text; a file that parses also goes through the protocol core's
/// validation of its key and peers, and an error it reports points at a line of the file.
pub fn wg_quick(data: &[u8]) {
    use crate::wg_quick::WgQuickConfig;

    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1);
    match WgQuickConfig::parse("fuzz.conf", &text) {
        Ok(config) => {
            let _ = config.mesh_addresses();
            let builder = config.peers.iter().fold(
                EndpointConfig::builder(config.interface.private_key.clone()),
                |b, peer| b.peer(peer.config.clone()),
            );
            if let Err(e) = builder.build()
                && let Some(located) = config.locate(&e)
            {
                assert!(located.line() <= lines + 1, "error points past the file");
            }
        }
        Err(e) => assert!(e.line() <= lines + 1, "error points past the file: {e}"),
    }
}
