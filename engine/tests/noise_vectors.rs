//! Our handshake bytes against an independent Noise implementation, `snow`, which is itself pinned by
//! the generic Noise_IKpsk2 test vector from cacophony (WIREGUARD_CHECKLIST §3):
//!
//! - `noise_ikpsk2_cacophony_vector`: snow reproduces the published vector in both roles;
//! - `snow_responder_reads_our_initiation`: snow, as responder, accepts our initiation (with a PSK) and
//!   finishes the handshake with us; transport messages cross both ways;
//! - `snow_initiator_matches_our_responder`: the reverse, without a PSK (all-zero PSK at position 2);
//! - `golden_handshake_bytes_are_stable`: fixed keys, seeded RNGs and a fixed clock give the bytes in
//!   `tests/vectors/wireguard_handshake_golden.json`, and snow with the same ephemerals writes them too.
//!
//! WireGuard is `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` with the prologue below, the PSK at position 2,
//! a 12-byte TAI64N payload in message 1 and an empty one in message 2, framed with message types,
//! indices and mac1/mac2 (whitepaper §5.4). The Noise part of an initiation is bytes 8..116 (ephemeral,
//! encrypted static, encrypted timestamp), of a response bytes 12..60 (ephemeral, encrypted nothing).
//!
//! Regenerate the golden file after an intended change of the handshake bytes with
//! `PNET_MESH_BLESS_VECTORS=1 cargo test -p pnet-mesh --test noise_vectors golden`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh::crypto::rng::{Rng, SeededRng};
use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey, blake2s};
use pnet_mesh::{
    Datagram, Endpoint, EndpointConfig, Event, PacketBuf, PeerConfig, PeerId, Role, ip,
};
use serde_json::{Value, json};
use snow::{Builder, HandshakeState, StatelessTransportState};

/// WireGuard's Noise protocol name (whitepaper §5.4.1 "Construction").
const NOISE: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// WireGuard's Noise prologue (whitepaper §5.4.1 "Identifier").
const PROLOGUE: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// The PSK WireGuard mixes in when none is configured.
const NO_PSK: [u8; 32] = [0; 32];

const INITIATION_LEN: usize = 148;
const RESPONSE_LEN: usize = 92;
/// The Noise message inside an initiation: ephemeral ‖ encrypted static ‖ encrypted timestamp.
const INITIATION_NOISE: std::ops::Range<usize> = 8..116;
/// The Noise message inside a response: ephemeral ‖ encrypted nothing.
const RESPONSE_NOISE: std::ops::Range<usize> = 12..60;

// ---- helpers ------------------------------------------------------------------------------------------

fn vector_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
        .join(name)
}

fn read_json(name: &str) -> Value {
    let path = vector_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading test vector {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field `{key}` is missing or not a string"));
    hex::decode(s).unwrap_or_else(|e| panic!("vector field `{key}` is not hex: {e}"))
}

fn key32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("a 32-byte key")
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// A snow builder for WireGuard's handshake with `psk` at position 2.
fn wireguard_builder(psk: &[u8; 32]) -> Builder<'_> {
    Builder::new(NOISE.parse().expect("snow knows the WireGuard pattern"))
        .prologue(PROLOGUE)
        .psk(2, psk)
}

/// mac1 = MAC(HASH("mac1----" ‖ receiver's public key), message[..mac1 offset]) (whitepaper §5.4.4).
fn mac1(receiver: &PublicKey, covered: &[u8]) -> [u8; 16] {
    blake2s::mac(
        &blake2s::hash(&[b"mac1----", receiver.as_bytes()]),
        &[covered],
    )
}

/// Frames snow's message 1 as a WireGuard initiation: type 1, sender index, Noise bytes, mac1, zero mac2.
fn frame_initiation(sender: u32, noise: &[u8], responder: &PublicKey) -> Vec<u8> {
    assert_eq!(noise.len(), INITIATION_NOISE.len());
    let mut m = vec![1, 0, 0, 0];
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(noise);
    let mac = mac1(responder, &m);
    m.extend_from_slice(&mac);
    m.extend_from_slice(&[0; 16]);
    assert_eq!(m.len(), INITIATION_LEN);
    m
}

/// Frames snow's message 2 as a WireGuard response.
fn frame_response(sender: u32, receiver: u32, noise: &[u8], initiator: &PublicKey) -> Vec<u8> {
    assert_eq!(noise.len(), RESPONSE_NOISE.len());
    let mut m = vec![2, 0, 0, 0];
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(&receiver.to_le_bytes());
    m.extend_from_slice(noise);
    let mac = mac1(initiator, &m);
    m.extend_from_slice(&mac);
    m.extend_from_slice(&[0; 16]);
    assert_eq!(m.len(), RESPONSE_LEN);
    m
}

/// Seals `plain` with snow's stateless transport under WireGuard's explicit counter and frames it as a
/// transport message (type 4, receiver index, counter, ciphertext ‖ tag).
fn snow_transport(
    snow: &StatelessTransportState,
    receiver: u32,
    counter: u64,
    plain: &[u8],
) -> Vec<u8> {
    let mut body = vec![0u8; plain.len() + 16];
    let n = snow
        .write_message(counter, plain, &mut body)
        .expect("snow seals");
    body.truncate(n);
    let mut m = vec![4, 0, 0, 0];
    m.extend_from_slice(&receiver.to_le_bytes());
    m.extend_from_slice(&counter.to_le_bytes());
    m.extend_from_slice(&body);
    m
}

/// Opens one of our transport messages with snow: checks the header and returns the (padded) plaintext.
fn snow_open(snow: &StatelessTransportState, msg: &[u8], receiver: u32, counter: u64) -> Vec<u8> {
    assert_eq!(&msg[..4], &[4, 0, 0, 0], "transport message type");
    assert_eq!(le32(&msg[4..8]), receiver, "transport receiver index");
    assert_eq!(
        u64::from_le_bytes(msg[8..16].try_into().unwrap()),
        counter,
        "transport counter"
    );
    let mut plain = vec![0u8; msg.len()];
    let n = snow
        .read_message(counter, &msg[16..], &mut plain)
        .expect("snow opens our transport message");
    plain.truncate(n);
    plain
}

/// Our plaintext is the packet padded with zeros to a multiple of 16 (whitepaper §5.4.6).
fn assert_padded(plain: &[u8], packet: &[u8]) {
    assert_eq!(plain.len(), packet.len().next_multiple_of(16));
    assert_eq!(&plain[..packet.len()], packet);
    assert!(
        plain[packet.len()..].iter().all(|&b| b == 0),
        "padding is zero"
    );
}

/// An IPv4 UDP packet.
fn udp_packet(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let dst: SocketAddr = dst.parse().unwrap();
    let hdr = ip::udp_headers_len(&dst);
    let mut p = vec![0u8; hdr + payload.len()];
    p[hdr..].copy_from_slice(payload);
    ip::emit_udp(&mut p, src.parse().unwrap(), dst, payload.len()).unwrap();
    p
}

/// The TAI64N label of `unix` (seconds, nanoseconds), encoded here rather than by the engine: 2^62 + 10
/// + seconds, big-endian, then the nanoseconds rounded down to 2^24 ns as wireguard-go does.
fn tai64n(secs: u64, nanos: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&((1u64 << 62) + 10 + secs).to_be_bytes());
    out[8..].copy_from_slice(&(nanos & !0x00ff_ffff).to_be_bytes());
    out
}

struct NodeSpec<'a> {
    key: &'a PrivateKey,
    peer: PublicKey,
    peer_endpoint: Option<SocketAddr>,
    peer_allowed: &'a str,
    psk: Option<[u8; 32]>,
    rng_seed: u64,
}

fn endpoint(spec: NodeSpec<'_>, now: Instant, wall: SystemTime) -> Endpoint {
    let mut peer =
        PeerConfig::new(spec.peer).allowed_ip(spec.peer_allowed.parse().expect("allowed IP"));
    if let Some(ep) = spec.peer_endpoint {
        peer = peer.endpoint(ep);
    }
    if let Some(psk) = spec.psk {
        peer = peer.preshared_key(PresharedKey::from_bytes(psk));
    }
    let cfg = EndpointConfig::builder(PrivateKey::from_bytes(*spec.key.as_bytes()))
        .clock_anchor(now, wall)
        .peer(peer)
        .build()
        .expect("valid configuration");
    Endpoint::new(Arc::new(cfg), Box::new(SeededRng::new(spec.rng_seed)), now)
}

/// Seals `packet` at `ep`, which must have a session; returns the datagram.
fn seal(ep: &mut Endpoint, now: Instant, packet: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; PacketBuf::HEADROOM + packet.len() + PacketBuf::TAILROOM];
    let mut pkt = PacketBuf::copy_from(&mut buf, packet).unwrap();
    let t = ep
        .send_packet(now, &mut pkt)
        .expect("send_packet")
        .expect("a session exists");
    assert_eq!(t.len, pkt.datagram().len());
    pkt.datagram().to_vec()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn a_addr() -> SocketAddr {
    "192.0.2.1:51820".parse().unwrap()
}

fn b_addr() -> SocketAddr {
    "192.0.2.2:51820".parse().unwrap()
}

// ---- the generic vector: pins snow ----------------------------------------------------------------------

#[test]
fn noise_ikpsk2_cacophony_vector() {
    let file = read_json("noise_ikpsk2_cacophony.json");
    let v = &file["vector"];
    assert_eq!(v["protocol_name"], NOISE);
    let prologue = hex_field(v, "init_prologue");
    assert_eq!(prologue, hex_field(v, "resp_prologue"));
    let init_psk = hex::decode(v["init_psks"][0].as_str().unwrap()).unwrap();
    let resp_psk = hex::decode(v["resp_psks"][0].as_str().unwrap()).unwrap();
    let (init_static, init_eph) = (hex_field(v, "init_static"), hex_field(v, "init_ephemeral"));
    let (resp_static, resp_eph) = (hex_field(v, "resp_static"), hex_field(v, "resp_ephemeral"));
    let init_remote_static = hex_field(v, "init_remote_static");
    let handshake_hash = hex_field(v, "handshake_hash");
    let messages = v["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6, "2 handshake + 4 transport messages");

    // The vector's responder public key is the one derived from its private key.
    let resp_public = PrivateKey::from_bytes(key32(&resp_static)).public_key();
    assert_eq!(resp_public.as_bytes().as_slice(), init_remote_static);

    let params = || NOISE.parse().expect("snow knows the pattern");
    let mut init: HandshakeState = Builder::new(params())
        .local_private_key(&init_static)
        .remote_public_key(&init_remote_static)
        .prologue(&prologue)
        .psk(2, &init_psk)
        .fixed_ephemeral_key_for_testing_only(&init_eph)
        .build_initiator()
        .expect("snow initiator");
    let mut resp: HandshakeState = Builder::new(params())
        .local_private_key(&resp_static)
        .prologue(&prologue)
        .psk(2, &resp_psk)
        .fixed_ephemeral_key_for_testing_only(&resp_eph)
        .build_responder()
        .expect("snow responder");

    let mut buf = vec![0u8; 65535];
    let mut out = vec![0u8; 65535];
    // Handshake: message 0 initiator → responder, message 1 responder → initiator.
    for (i, m) in messages.iter().take(2).enumerate() {
        let (payload, ciphertext) = (hex_field(m, "payload"), hex_field(m, "ciphertext"));
        let (writer, reader) = if i % 2 == 0 {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = writer.write_message(&payload, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf[..n]),
            hex::encode(&ciphertext),
            "message {i}"
        );
        let n = reader.read_message(&ciphertext, &mut out).unwrap();
        assert_eq!(&out[..n], payload, "message {i} payload");
    }
    assert!(init.is_handshake_finished() && resp.is_handshake_finished());
    assert_eq!(init.get_handshake_hash(), handshake_hash);
    assert_eq!(resp.get_handshake_hash(), handshake_hash);
    assert_eq!(
        resp.get_remote_static(),
        Some(
            PrivateKey::from_bytes(key32(&init_static))
                .public_key()
                .as_bytes()
                .as_slice()
        )
    );

    // Transport: even messages initiator → responder, odd ones back, nonces counting per direction.
    let mut init = init.into_transport_mode().unwrap();
    let mut resp = resp.into_transport_mode().unwrap();
    for (i, m) in messages.iter().enumerate().skip(2) {
        let (payload, ciphertext) = (hex_field(m, "payload"), hex_field(m, "ciphertext"));
        let (writer, reader) = if i % 2 == 0 {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = writer.write_message(&payload, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf[..n]),
            hex::encode(&ciphertext),
            "message {i}"
        );
        let n = reader.read_message(&ciphertext, &mut out).unwrap();
        assert_eq!(&out[..n], payload, "message {i} payload");
    }
}

// ---- our bytes against snow ------------------------------------------------------------------------

#[test]
fn snow_responder_reads_our_initiation() {
    let now = Instant::now();
    let (secs, nanos) = (1_700_000_000, 987_654_321);
    let wall = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    let a_key = PrivateKey::generate(&mut SeededRng::new(11));
    let b_key = PrivateKey::generate(&mut SeededRng::new(12));
    let psk = [0x5a; 32];
    let mut a = endpoint(
        NodeSpec {
            key: &a_key,
            peer: b_key.public_key(),
            peer_endpoint: Some(b_addr()),
            peer_allowed: "10.0.0.2/32",
            psk: Some(psk),
            rng_seed: 13,
        },
        now,
        wall,
    );

    // Our initiation.
    a.connect(now, PeerId(0)).unwrap();
    let mut wire = [0u8; 2048];
    let t = a.poll_transmit(now, &mut wire).expect("an initiation");
    assert_eq!(t.to, b_addr());
    let init = wire[..t.len].to_vec();
    assert_eq!(init.len(), INITIATION_LEN);
    assert_eq!(&init[..4], &[1, 0, 0, 0]);
    assert_eq!(init[116..132], mac1(&b_key.public_key(), &init[..116]));
    assert_eq!(&init[132..148], &[0; 16], "no cookie, no mac2");
    let a_index = le32(&init[4..8]);

    // snow, as B, reads its Noise part: A's static key and the TAI64N timestamp come out.
    let mut snow = wireguard_builder(&psk)
        .local_private_key(b_key.as_bytes())
        .build_responder()
        .unwrap();
    let mut payload = [0u8; 64];
    let n = snow
        .read_message(&init[INITIATION_NOISE], &mut payload)
        .expect("snow accepts our initiation");
    assert_eq!(n, 12, "the payload is a TAI64N timestamp");
    assert_eq!(payload[..12], tai64n(secs, nanos));
    assert_eq!(
        snow.get_remote_static(),
        Some(a_key.public_key().as_bytes().as_slice())
    );

    // snow answers; we take its response and derive the same transport keys.
    let mut noise = [0u8; 64];
    let n = snow.write_message(&[], &mut noise).unwrap();
    let snow_index = 0x1122_3344;
    let mut resp = frame_response(snow_index, a_index, &noise[..n], &a_key.public_key());
    assert!(matches!(
        a.handle_datagram(now, b_addr(), &mut resp),
        Datagram::Consumed
    ));
    assert!(events(&mut a).contains(&Event::HandshakeCompleted {
        peer: PeerId(0),
        role: Role::Initiator,
    }));
    let snow = snow.into_stateless_transport_mode().unwrap();

    // Our confirming keepalive, counter 0, opens in snow as an empty message.
    let t = a.poll_transmit(now, &mut wire).expect("a keepalive");
    assert_eq!(t.len, 32);
    assert!(snow_open(&snow, &wire[..t.len], snow_index, 0).is_empty());

    // A data packet, counter 1.
    let packet = udp_packet("10.0.0.1:1000", "10.0.0.2:2000", b"our packet, snow's keys");
    let msg = seal(&mut a, now, &packet);
    assert_padded(&snow_open(&snow, &msg, snow_index, 1), &packet);

    // And back: snow seals, we open, check and deliver.
    let reply = udp_packet("10.0.0.2:2000", "10.0.0.1:1000", b"snow's packet, our keys");
    let mut padded = reply.clone();
    padded.resize(reply.len().next_multiple_of(16), 0);
    let mut msg = snow_transport(&snow, a_index, 0, &padded);
    match a.handle_datagram(now, b_addr(), &mut msg) {
        Datagram::Deliver { peer, packet } => {
            assert_eq!(peer, PeerId(0));
            assert_eq!(packet, reply.as_slice());
        }
        other => panic!("snow's transport message was not delivered: {other:?}"),
    }
}

#[test]
fn snow_initiator_matches_our_responder() {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a_key = PrivateKey::generate(&mut SeededRng::new(21));
    let b_key = PrivateKey::generate(&mut SeededRng::new(22));
    let a_ephemeral = PrivateKey::generate(&mut SeededRng::new(23));
    // Our responder B; it does not know A's address until A's initiation arrives.
    let mut b = endpoint(
        NodeSpec {
            key: &b_key,
            peer: a_key.public_key(),
            peer_endpoint: None,
            peer_allowed: "10.0.0.1/32",
            psk: None,
            rng_seed: 24,
        },
        now,
        wall,
    );

    // snow, as A, writes message 1 with a fixed ephemeral and a TAI64N payload; no PSK = zero PSK.
    let mut snow = wireguard_builder(&NO_PSK)
        .local_private_key(a_key.as_bytes())
        .remote_public_key(b_key.public_key().as_bytes())
        .fixed_ephemeral_key_for_testing_only(a_ephemeral.as_bytes())
        .build_initiator()
        .unwrap();
    let mut noise = [0u8; 256];
    let n = snow
        .write_message(&tai64n(1_700_000_000, 0), &mut noise)
        .unwrap();
    assert_eq!(n, INITIATION_NOISE.len());
    assert_eq!(&noise[..32], a_ephemeral.public_key().as_bytes());
    let snow_index = 0xa1b2_c3d4;
    let mut buf = frame_initiation(snow_index, &noise[..n], &b_key.public_key());
    buf.resize(2048, 0);

    // Our responder answers with a 92-byte response that snow accepts.
    let len = match b.handle_datagram(now, a_addr(), &mut buf[..INITIATION_LEN]) {
        Datagram::Reply { to, len } => {
            assert_eq!(to, a_addr());
            len
        }
        other => panic!("snow's initiation was not answered: {other:?}"),
    };
    assert_eq!(len, RESPONSE_LEN);
    let resp = buf[..len].to_vec();
    assert_eq!(&resp[..4], &[2, 0, 0, 0]);
    assert_eq!(
        le32(&resp[8..12]),
        snow_index,
        "the response names snow's index"
    );
    assert_eq!(resp[60..76], mac1(&a_key.public_key(), &resp[..60]));
    assert_eq!(&resp[76..92], &[0; 16]);
    let b_index = le32(&resp[4..8]);
    let mut payload = [0u8; 64];
    let n = snow
        .read_message(&resp[RESPONSE_NOISE], &mut payload)
        .expect("snow accepts our response");
    assert_eq!(n, 0, "the response carries an empty payload");
    assert!(snow.is_handshake_finished());
    let snow = snow.into_stateless_transport_mode().unwrap();

    // snow's first transport message confirms the session to B (whitepaper §5.4.5) and is delivered.
    let packet = udp_packet(
        "10.0.0.1:1000",
        "10.0.0.2:2000",
        b"from snow, the initiator",
    );
    let mut msg = snow_transport(&snow, b_index, 0, &packet);
    match b.handle_datagram(now, a_addr(), &mut msg) {
        Datagram::Deliver { packet: got, .. } => assert_eq!(got, packet.as_slice()),
        other => panic!("snow's transport message was not delivered: {other:?}"),
    }
    assert!(events(&mut b).contains(&Event::HandshakeCompleted {
        peer: PeerId(0),
        role: Role::Responder,
    }));

    // B's packet opens in snow, under B's counter 0.
    let reply = udp_packet("10.0.0.2:2000", "10.0.0.1:1000", b"from our responder");
    let msg = seal(&mut b, now, &reply);
    assert_padded(&snow_open(&snow, &msg, snow_index, 0), &reply);

    // A snow keepalive (empty plaintext), counter 1, is consumed.
    let mut msg = snow_transport(&snow, b_index, 1, &[]);
    assert!(matches!(
        b.handle_datagram(now, a_addr(), &mut msg),
        Datagram::Consumed
    ));
}

// ---- golden bytes ----------------------------------------------------------------------------------

const GOLDEN: &str = "wireguard_handshake_golden.json";
const GOLDEN_A_KEY_SEED: u64 = 101;
const GOLDEN_B_KEY_SEED: u64 = 102;
const GOLDEN_A_RNG_SEED: u64 = 103;
const GOLDEN_B_RNG_SEED: u64 = 104;
const GOLDEN_WALL: (u64, u32) = (1_700_000_000, 123_456_789);

/// The ephemeral private key an endpoint drew from its `SeededRng`: the 32-byte window of the
/// generator's stream whose public key is `public`.
fn ephemeral_from_stream(seed: u64, public: &[u8]) -> [u8; 32] {
    let mut stream = [0u8; 512];
    SeededRng::new(seed).fill_bytes(&mut stream);
    stream
        .windows(32)
        .map(key32)
        .find(|k| PrivateKey::from_bytes(*k).public_key().as_bytes() == public)
        .expect("the ephemeral key comes from the first 512 bytes of the endpoint's RNG")
}

/// Runs the golden handshake and returns every value the golden file records.
fn golden_run() -> Value {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::new(GOLDEN_WALL.0, GOLDEN_WALL.1);
    let a_key = PrivateKey::generate(&mut SeededRng::new(GOLDEN_A_KEY_SEED));
    let b_key = PrivateKey::generate(&mut SeededRng::new(GOLDEN_B_KEY_SEED));
    let mut a = endpoint(
        NodeSpec {
            key: &a_key,
            peer: b_key.public_key(),
            peer_endpoint: Some(b_addr()),
            peer_allowed: "10.0.0.2/32",
            psk: None,
            rng_seed: GOLDEN_A_RNG_SEED,
        },
        now,
        wall,
    );
    let mut b = endpoint(
        NodeSpec {
            key: &b_key,
            peer: a_key.public_key(),
            peer_endpoint: None,
            peer_allowed: "10.0.0.1/32",
            psk: None,
            rng_seed: GOLDEN_B_RNG_SEED,
        },
        now,
        wall,
    );
    let mut wire = [0u8; 2048];
    a.connect(now, PeerId(0)).unwrap();
    let t = a.poll_transmit(now, &mut wire).expect("an initiation");
    let initiation = wire[..t.len].to_vec();
    let Datagram::Reply { len, .. } = b.handle_datagram(now, a_addr(), &mut wire[..t.len]) else {
        panic!("no response")
    };
    let response = wire[..len].to_vec();
    assert!(matches!(
        a.handle_datagram(now, b_addr(), &mut wire[..len]),
        Datagram::Consumed
    ));
    let t = a.poll_transmit(now, &mut wire).expect("a keepalive");
    let keepalive = wire[..t.len].to_vec();
    assert!(matches!(
        b.handle_datagram(now, a_addr(), &mut wire[..t.len]),
        Datagram::Consumed
    ));
    let packet = udp_packet("10.0.0.2:7", "10.0.0.1:7", b"golden");
    let responder_packet = seal(&mut b, now, &packet);

    let a_eph = ephemeral_from_stream(GOLDEN_A_RNG_SEED, &initiation[8..40]);
    let b_eph = ephemeral_from_stream(GOLDEN_B_RNG_SEED, &response[12..44]);
    json!({
        "initiator_static_private": hex::encode(a_key.as_bytes()),
        "initiator_static_public": hex::encode(a_key.public_key().as_bytes()),
        "responder_static_private": hex::encode(b_key.as_bytes()),
        "responder_static_public": hex::encode(b_key.public_key().as_bytes()),
        "preshared_key": hex::encode(NO_PSK),
        "initiator_ephemeral_private": hex::encode(a_eph),
        "responder_ephemeral_private": hex::encode(b_eph),
        "tai64n": hex::encode(tai64n(GOLDEN_WALL.0, GOLDEN_WALL.1)),
        "initiation": hex::encode(&initiation),
        "response": hex::encode(&response),
        "initiator_keepalive": hex::encode(&keepalive),
        "responder_packet_plaintext": hex::encode(&packet),
        "responder_packet": hex::encode(&responder_packet),
    })
}

#[test]
fn golden_handshake_bytes_are_stable() {
    let run = golden_run();
    let path = vector_path(GOLDEN);
    if std::env::var_os("PNET_MESH_BLESS_VECTORS").is_some() {
        let mut doc = run.clone();
        doc["description"] = json!(format!(
            "WireGuard handshake generated by pnet-mesh and reproduced by snow: static keys from \
             SeededRng seeds {GOLDEN_A_KEY_SEED} (initiator) and {GOLDEN_B_KEY_SEED} (responder), \
             endpoint RNGs SeededRng {GOLDEN_A_RNG_SEED} and {GOLDEN_B_RNG_SEED}, no PSK, wall clock \
             {}.{:09} s after the Unix epoch at the handshake; addresses 192.0.2.1:51820 (initiator) \
             and 192.0.2.2:51820 (responder); allowed IPs 10.0.0.1/32 and 10.0.0.2/32. Regenerate \
             with PNET_MESH_BLESS_VECTORS=1 (see engine/tests/noise_vectors.rs).",
            GOLDEN_WALL.0, GOLDEN_WALL.1
        ));
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        println!("wrote {}", path.display());
    }
    let golden = read_json(GOLDEN);
    for (key, value) in run.as_object().unwrap() {
        assert_eq!(
            &golden[key],
            value,
            "`{key}` differs from {}: the handshake bytes changed; if that is intended, regenerate \
             with PNET_MESH_BLESS_VECTORS=1",
            path.display()
        );
    }

    // snow, given the same static and ephemeral keys, writes exactly the golden Noise bytes.
    let initiation = hex_field(&golden, "initiation");
    let response = hex_field(&golden, "response");
    let (a_static, b_static) = (
        hex_field(&golden, "initiator_static_private"),
        hex_field(&golden, "responder_static_private"),
    );
    let (a_eph, b_eph) = (
        hex_field(&golden, "initiator_ephemeral_private"),
        hex_field(&golden, "responder_ephemeral_private"),
    );
    let b_public = hex_field(&golden, "responder_static_public");
    let mut init = wireguard_builder(&NO_PSK)
        .local_private_key(&a_static)
        .remote_public_key(&b_public)
        .fixed_ephemeral_key_for_testing_only(&a_eph)
        .build_initiator()
        .unwrap();
    let mut resp = wireguard_builder(&NO_PSK)
        .local_private_key(&b_static)
        .fixed_ephemeral_key_for_testing_only(&b_eph)
        .build_responder()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = init
        .write_message(&hex_field(&golden, "tai64n"), &mut buf)
        .unwrap();
    assert_eq!(
        hex::encode(&buf[..n]),
        hex::encode(&initiation[INITIATION_NOISE])
    );
    let mut payload = [0u8; 64];
    let n = resp
        .read_message(&initiation[INITIATION_NOISE], &mut payload)
        .unwrap();
    assert_eq!(payload[..n], hex_field(&golden, "tai64n"));
    let n = resp.write_message(&[], &mut buf).unwrap();
    assert_eq!(
        hex::encode(&buf[..n]),
        hex::encode(&response[RESPONSE_NOISE])
    );
    init.read_message(&response[RESPONSE_NOISE], &mut payload)
        .unwrap();
    assert_eq!(init.get_handshake_hash(), resp.get_handshake_hash());

    // And snow's transport keys open the golden transport messages.
    let init = init.into_stateless_transport_mode().unwrap();
    let a_index = le32(&initiation[4..8]);
    let b_index = le32(&response[4..8]);
    assert_eq!(le32(&response[8..12]), a_index);
    let keepalive = hex_field(&golden, "initiator_keepalive");
    let resp = resp.into_stateless_transport_mode().unwrap();
    assert!(snow_open(&resp, &keepalive, b_index, 0).is_empty());
    let plain = snow_open(&init, &hex_field(&golden, "responder_packet"), a_index, 0);
    assert_padded(&plain, &hex_field(&golden, "responder_packet_plaintext"));
}
