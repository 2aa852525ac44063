//! Shared harness of the security and hostile-input tests, public API only.
//!
//! [`Pair`] is two endpoints, A (10.0.0.1, fd00::1) and B (10.0.0.2, fd00::2), that know each other's
//! keys and socket addresses. Time is virtual: one `Instant::now()` per pair, offsets added to it.
//! Randomness is seeded. [`Forger`] is a small independent WireGuard initiator holding A's private key:
//! it can seal what A's `send_packet` refuses to (a bad inner packet, any counter).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh::crypto::blake2s::{hash, kdf1, kdf2, kdf3, mac};
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey, Tai64N, aead};
use pnet_mesh::proto::constants::{CONSTRUCTION, IDENTIFIER, LABEL_MAC1};
use pnet_mesh::proto::wire::{Initiation, Response};
use pnet_mesh::{
    Datagram, DropReason, Endpoint, EndpointConfig, Event, PacketBuf, PeerConfig, PeerId,
    PeerStats, ip,
};

/// A's socket address.
pub const A_ADDR: SocketAddr = sock([192, 0, 2, 1], 51820);
/// B's socket address.
pub const B_ADDR: SocketAddr = sock([192, 0, 2, 2], 51820);
/// Each side has one peer: the other.
pub const PEER: PeerId = PeerId(0);
/// Every test payload carries this, so "no plaintext in the buffer" is one search.
pub const MARKER: &[u8] = b"<<pnet-mesh plaintext marker: must never leak>>";

/// An IPv4 socket address, in a `const`.
pub const fn sock(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
        port,
    ))
}

/// The wall-clock time every endpoint's virtual clock starts at.
pub fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A private key fixed by `seed`.
pub fn key(seed: u64) -> PrivateKey {
    PrivateKey::generate(&mut SeededRng::new(seed))
}

/// `secs` seconds (fractions allowed).
pub fn secs(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

/// How B looks from A: endpoint B_ADDR, allowed IPs 10.0.0.2/32 and fd00::2/128.
pub fn peer_b(public: PublicKey, psk: Option<[u8; 32]>) -> PeerConfig {
    with_psk(
        PeerConfig::new(public)
            .endpoint(B_ADDR)
            .allowed_ip(net("10.0.0.2/32"))
            .allowed_ip(net("fd00::2/128")),
        psk,
    )
}

/// How A looks from B: endpoint A_ADDR, allowed IPs 10.0.0.1/32 and fd00::1/128.
pub fn peer_a(public: PublicKey, psk: Option<[u8; 32]>) -> PeerConfig {
    with_psk(
        PeerConfig::new(public)
            .endpoint(A_ADDR)
            .allowed_ip(net("10.0.0.1/32"))
            .allowed_ip(net("fd00::1/128")),
        psk,
    )
}

fn with_psk(peer: PeerConfig, psk: Option<[u8; 32]>) -> PeerConfig {
    match psk {
        Some(psk) => peer.preshared_key(PresharedKey::from_bytes(psk)),
        None => peer,
    }
}

fn net(s: &str) -> pnet_mesh::AllowedIp {
    s.parse().expect("valid allowed ip")
}

/// An endpoint with one peer, its clock anchored at (`now`, `wall`), randomness from `seed`.
pub fn endpoint(
    own: &PrivateKey,
    peer: PeerConfig,
    now: Instant,
    wall: SystemTime,
    seed: u64,
) -> Endpoint {
    let config = EndpointConfig::builder(own.clone())
        .clock_anchor(now, wall)
        .peer(peer)
        .build()
        .expect("valid test configuration");
    Endpoint::new(Arc::new(config), Box::new(SeededRng::new(seed)), now)
}

/// Variations of a [`Pair`].
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The PSK A uses with B.
    pub a_psk: Option<[u8; 32]>,
    /// The PSK B uses with A.
    pub b_psk: Option<[u8; 32]>,
    /// The public key A believes B has (default: B's real one).
    pub a_thinks_b_is: Option<PublicKey>,
}

/// Two endpoints that know each other, and the virtual start of time.
pub struct Pair {
    pub t0: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    pub a_key: PrivateKey,
    pub b_key: PrivateKey,
}

impl Pair {
    /// A and B with each other's keys, no PSK, no session.
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    /// A and B as `opts` says.
    pub fn with(opts: Options) -> Self {
        let t0 = Instant::now();
        let (a_key, b_key) = (key(1), key(2));
        let b_public = opts.a_thinks_b_is.unwrap_or(b_key.public_key());
        let a = endpoint(&a_key, peer_b(b_public, opts.a_psk), t0, wall(), 11);
        let b = endpoint(
            &b_key,
            peer_a(a_key.public_key(), opts.b_psk),
            t0,
            wall(),
            12,
        );
        Pair {
            t0,
            a,
            b,
            a_key,
            b_key,
        }
    }

    /// A pair with a confirmed session at `t0` (initiation, response, A's keepalive) and no pending
    /// events or datagrams.
    pub fn connected() -> Self {
        let mut p = Self::new();
        p.handshake(p.t0);
        assert!(p.a.has_session(p.t0, PEER) && p.b.has_session(p.t0, PEER));
        events(&mut p.a);
        events(&mut p.b);
        p
    }

    /// Runs a full handshake started by A at `now`, and delivers whatever A sends next (its staged
    /// packets, or a keepalive that confirms the session to B). Returns B's outcomes for those.
    pub fn handshake(&mut self, now: Instant) -> Vec<Outcome> {
        self.a.connect(now, PEER).expect("A knows B's endpoint");
        let init = one_transmit(&mut self.a, now);
        assert_eq!(init.len(), 148, "initiation size");
        let Outcome::Reply(to, response) = recv(&mut self.b, now, A_ADDR, &init).0 else {
            panic!("B did not answer the initiation");
        };
        assert_eq!((to, response.len()), (A_ADDR, 92), "response");
        assert_eq!(
            recv(&mut self.a, now, B_ADDR, &response).0,
            Outcome::Consumed
        );
        let out = pump(&mut self.a, A_ADDR, &mut self.b, now);
        assert!(!out.is_empty(), "A confirms the session");
        out
    }

    /// A's next handshake initiation (A connects at `now`); the event that announces it is taken.
    pub fn initiation(&mut self, now: Instant) -> Vec<u8> {
        self.a.connect(now, PEER).expect("A knows B's endpoint");
        let init = one_transmit(&mut self.a, now);
        initiated(&mut self.a, 0);
        init
    }

    /// A seals `packet` for B at `now` (a session must exist) and returns the wire bytes.
    pub fn seal_from_a(&mut self, now: Instant, packet: &[u8]) -> Vec<u8> {
        seal(&mut self.a, now, packet)
    }
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

/// An IPv4 or IPv6 UDP packet from `src` to `dst` ("10.0.0.1:7", "[fd00::1]:7") carrying `payload`.
pub fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let hdr = ip::udp_headers_len(&dst);
    let mut packet = vec![0u8; hdr + payload.len()];
    packet[hdr..].copy_from_slice(payload);
    let n = ip::emit_udp(&mut packet, src, dst, payload.len()).expect("emit_udp");
    assert_eq!(n, packet.len());
    packet
}

/// A → B IPv4 UDP packet carrying [`MARKER`].
pub fn marked_v4() -> Vec<u8> {
    udp("10.0.0.1:4000", "10.0.0.2:5000", MARKER)
}

/// Seals `packet` at `ep` and returns the datagram; a session must exist.
pub fn seal(ep: &mut Endpoint, now: Instant, packet: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; PacketBuf::HEADROOM + packet.len() + PacketBuf::TAILROOM];
    let mut pkt = PacketBuf::copy_from(&mut buf, packet).expect("buffer sized for the packet");
    let t = ep
        .send_packet(now, &mut pkt)
        .expect("a routable packet")
        .expect("a session exists, so the packet is sealed at once");
    assert_eq!(t.len, pkt.datagram().len());
    pkt.datagram().to_vec()
}

/// What an endpoint made of a datagram, owned so the buffer can be inspected afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: the peer and the inner packet.
    Deliver(PeerId, Vec<u8>),
    /// Answered: destination and the reply bytes.
    Reply(SocketAddr, Vec<u8>),
    /// Accepted, nothing to hand over.
    Consumed,
    /// Refused.
    Dropped(DropReason),
}

/// Hands a copy of `bytes` to `ep`; returns the outcome and the buffer as `ep` left it.
pub fn recv(ep: &mut Endpoint, now: Instant, from: SocketAddr, bytes: &[u8]) -> (Outcome, Vec<u8>) {
    let mut buf = bytes.to_vec();
    let outcome = match ep.handle_datagram(now, from, &mut buf) {
        Datagram::Deliver { peer, packet } => Outcome::Deliver(peer, packet.to_vec()),
        Datagram::Reply { to, len } => Outcome::Reply(to, buf[..len].to_vec()),
        Datagram::Consumed => Outcome::Consumed,
        Datagram::Dropped(reason) => Outcome::Dropped(reason),
    };
    (outcome, buf)
}

/// Everything `ep` wants to send at `now`.
pub fn transmits(ep: &mut Endpoint, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        out.push((t.to, buf[..t.len].to_vec()));
        assert!(out.len() < 10_000, "poll_transmit never ends");
    }
    out
}

/// The single datagram `ep` sends now.
pub fn one_transmit(ep: &mut Endpoint, now: Instant) -> Vec<u8> {
    let mut all = transmits(ep, now);
    assert_eq!(all.len(), 1, "expected exactly one datagram");
    all.remove(0).1
}

/// Moves every datagram `from_ep` wants to send into `to_ep`, as arriving from `from_addr`.
pub fn pump(
    from_ep: &mut Endpoint,
    from_addr: SocketAddr,
    to_ep: &mut Endpoint,
    now: Instant,
) -> Vec<Outcome> {
    transmits(from_ep, now)
        .into_iter()
        .map(|(_, bytes)| recv(to_ep, now, from_addr, &bytes).0)
        .collect()
}

/// Every pending event of `ep`.
pub fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// Asserts that `ep`'s only event is the announcement of initiation number `attempt` to [`PEER`].
pub fn initiated(ep: &mut Endpoint, attempt: u32) {
    assert_eq!(
        events(ep),
        vec![Event::HandshakeInitiated {
            peer: PEER,
            attempt
        }],
        "the initiation is announced"
    );
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What a node shows of itself, drop counters aside.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub indices_in_use: usize,
    pub peers: Vec<PeerStats>,
    pub sessions: Vec<bool>,
    pub next_timeout: Option<Instant>,
}

/// `ep`'s observable state at `now`.
pub fn snapshot(ep: &Endpoint, now: Instant) -> Snapshot {
    let ids = (0..)
        .map(PeerId)
        .take_while(|id| ep.peer_stats(*id).is_some());
    let ids: Vec<PeerId> = ids.collect();
    Snapshot {
        indices_in_use: ep.indices_in_use(),
        peers: ids.iter().filter_map(|id| ep.peer_stats(*id)).collect(),
        sessions: ids.iter().map(|id| ep.has_session(now, *id)).collect(),
        next_timeout: ep.poll_timeout(),
    }
}

/// Asserts `ep` has no event and nothing to send.
pub fn assert_quiet(ep: &mut Endpoint, now: Instant) {
    assert_eq!(events(ep), vec![], "no event");
    assert_eq!(transmits(ep, now), vec![], "nothing to send");
}

/// Hands `bytes` to `ep` and asserts a silent drop: `reason`, counted once, no plaintext in the buffer,
/// no reply, event or datagram, and no change in what `ep` shows. Returns the buffer as `ep` left it.
pub fn expect_drop(
    ep: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
    reason: DropReason,
) -> Vec<u8> {
    let before = snapshot(ep, now);
    let drops = ep.drop_counters().clone();
    let (outcome, buf) = recv(ep, now, from, bytes);
    assert_eq!(outcome, Outcome::Dropped(reason));
    assert!(!contains(&buf, MARKER), "plaintext left in the buffer");
    assert_eq!(ep.drop_counters().get(reason), drops.get(reason) + 1);
    assert_eq!(ep.drop_counters().total(), drops.total() + 1);
    assert_quiet(ep, now);
    assert_eq!(snapshot(ep, now), before, "state changed");
    buf
}

/// Hands the handshake message `bytes` to `ep` (under load) and asserts the answer is a 64-byte cookie
/// reply to `from` for the message's sender index, and nothing else changed. Returns the reply.
pub fn expect_cookie_reply(
    ep: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) -> Vec<u8> {
    let before = snapshot(ep, now);
    let drops = ep.drop_counters().clone();
    let (outcome, _) = recv(ep, now, from, bytes);
    let Outcome::Reply(to, reply) = outcome else {
        panic!("expected a cookie reply, got {outcome:?}");
    };
    assert_eq!((to, reply.len()), (from, 64), "cookie reply size");
    assert_eq!(reply[..4], [3, 0, 0, 0], "cookie reply type");
    assert_eq!(
        reply[4..8],
        bytes[4..8],
        "answers the message's sender index"
    );
    assert_eq!(ep.drop_counters(), drops, "a cookie reply is not a drop");
    assert_quiet(ep, now);
    assert_eq!(snapshot(ep, now), before, "no handshake state");
    reply
}

/// Recomputes mac1 of the handshake message `msg` for the receiver `to`, after a test edited it.
pub fn set_mac1(msg: &mut [u8], mac1_offset: usize, to: &PublicKey) {
    let key = hash(&[LABEL_MAC1, to.as_bytes()]);
    let m = mac(&key, &[&msg[..mac1_offset]]);
    msg[mac1_offset..mac1_offset + 16].copy_from_slice(&m);
}

/// A copy of `bytes` with the lowest bit of `bytes[at]` flipped.
pub fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

/// A copy of `bytes` with `value` written at `at`.
pub fn patch(bytes: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + value.len()].copy_from_slice(value);
    out
}

/// The little-endian `u32` at `bytes[at..at + 4]` (an index on the wire).
pub fn index_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// mac1 and mac2 offsets of an initiation and a response.
pub const INIT_MAC1: usize = Initiation::MAC1_OFFSET;
pub const INIT_MAC2: usize = Initiation::MAC2_OFFSET;
pub const RESP_MAC1: usize = Response::MAC1_OFFSET;
pub const RESP_MAC2: usize = Response::MAC2_OFFSET;

/// A WireGuard initiator written from the whitepaper (§5.4.2, §5.4.3, §5.4.6) on the crate's crypto
/// primitives, independent of the engine's handshake code. It speaks for the holder of `static_key`.
pub struct Forger {
    send: [u8; 32],
    receiver: u32,
}

impl Forger {
    /// Handshakes with `responder` (whose public key is `responder_key`) as `static_key`, with `psk`
    /// and the TAI64N timestamp of `wall`, from `from` at `now`. Panics unless the responder answers
    /// and its response authenticates.
    pub fn handshake(
        static_key: &PrivateKey,
        responder: &mut Endpoint,
        responder_key: &PublicKey,
        psk: [u8; 32],
        wall: SystemTime,
        from: SocketAddr,
        now: Instant,
    ) -> Self {
        let ck = hash(&[CONSTRUCTION]);
        let h = hash(&[&hash(&[&ck, IDENTIFIER]), responder_key.as_bytes()]);
        let e = key(0xF0F0);
        let e_pub = e.public_key();
        let ck = kdf1(&ck, e_pub.as_bytes());
        let h = hash(&[&h, e_pub.as_bytes()]);
        let es = e.diffie_hellman(responder_key).unwrap();
        let (ck, k) = kdf2(&ck, es.as_bytes());
        let mut encrypted_static = [0u8; 48];
        encrypted_static[..32].copy_from_slice(static_key.public_key().as_bytes());
        let tag = aead::seal(&k, 0, &h, &mut encrypted_static[..32]);
        encrypted_static[32..].copy_from_slice(&tag);
        let h = hash(&[&h, &encrypted_static]);
        let ss = static_key.diffie_hellman(responder_key).unwrap();
        let (ck, k) = kdf2(&ck, ss.as_bytes());
        let mut encrypted_timestamp = [0u8; 28];
        encrypted_timestamp[..12].copy_from_slice(Tai64N::from_system_time(wall).as_bytes());
        let tag = aead::seal(&k, 0, &h, &mut encrypted_timestamp[..12]);
        encrypted_timestamp[12..].copy_from_slice(&tag);
        let h = hash(&[&h, &encrypted_timestamp]);
        let init = Initiation {
            sender: 0x0F0F_0F0F,
            ephemeral: *e_pub.as_bytes(),
            encrypted_static,
            encrypted_timestamp,
            mac1: [0; 16],
            mac2: [0; 16],
        };
        let mut msg = [0u8; 148];
        init.emit(&mut msg).unwrap();
        set_mac1(&mut msg, INIT_MAC1, responder_key);

        let Outcome::Reply(_, reply) = recv(responder, now, from, &msg).0 else {
            panic!("the responder did not answer the forged initiation");
        };
        let r = Response::parse(&reply).unwrap();
        assert_eq!(r.receiver, init.sender);
        let ck = kdf1(&ck, &r.ephemeral);
        let h = hash(&[&h, &r.ephemeral]);
        let r_pub = PublicKey::from_bytes(r.ephemeral);
        let ck = kdf1(&ck, e.diffie_hellman(&r_pub).unwrap().as_bytes());
        let ck = kdf1(&ck, static_key.diffie_hellman(&r_pub).unwrap().as_bytes());
        let (ck, tau, k) = kdf3(&ck, &psk);
        let h = hash(&[&h, &tau]);
        let mut nothing = r.encrypted_nothing;
        aead::open(&k, 0, &h, &mut nothing).expect("the response authenticates");
        let (send, _recv) = kdf2(&ck, &[]);
        Forger {
            send,
            receiver: r.sender,
        }
    }

    /// A transport message carrying exactly `plaintext` (no padding added) under `counter`.
    pub fn seal(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8; 16 + plaintext.len() + 16];
        msg[0] = 4;
        msg[4..8].copy_from_slice(&self.receiver.to_le_bytes());
        msg[8..16].copy_from_slice(&counter.to_le_bytes());
        let body = &mut msg[16..16 + plaintext.len()];
        body.copy_from_slice(plaintext);
        let tag = aead::seal(&self.send, counter, &[], body);
        msg[16 + plaintext.len()..].copy_from_slice(&tag);
        msg
    }
}
