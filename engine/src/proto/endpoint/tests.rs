//! Timer, rotation and sizing behaviour of [`Endpoint`], driven at explicit virtual instants.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh_crypto::PrivateKey;
use pnet_mesh_crypto::rng::SeededRng;

use super::*;
use crate::proto::constants::*;
use crate::proto::{DropReason, ip};
use crate::{PeerConfig, Role};

const A_ADDR: &str = "192.0.2.1:1000";
const B_ADDR: &str = "192.0.2.2:2000";

struct Pair {
    a: Endpoint,
    b: Endpoint,
    now: Instant,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
}

fn pair_with(a_keepalive: u16) -> Pair {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let a_key = PrivateKey::generate(&mut SeededRng::new(10));
    let b_key = PrivateKey::generate(&mut SeededRng::new(20));
    let a_addr: SocketAddr = A_ADDR.parse().unwrap();
    let b_addr: SocketAddr = B_ADDR.parse().unwrap();
    let a_cfg = EndpointConfig::builder(a_key.clone())
        .clock_anchor(now, wall)
        .peer(
            PeerConfig::new(b_key.public_key())
                .endpoint(b_addr)
                .allowed_ip("10.0.0.2/32".parse().unwrap())
                .persistent_keepalive(a_keepalive),
        )
        .build()
        .unwrap();
    let b_cfg = EndpointConfig::builder(b_key)
        .clock_anchor(now, wall)
        .peer(PeerConfig::new(a_key.public_key()).allowed_ip("10.0.0.1/32".parse().unwrap()))
        .build()
        .unwrap();
    Pair {
        a: Endpoint::new(Arc::new(a_cfg), Box::new(SeededRng::new(1)), now),
        b: Endpoint::new(Arc::new(b_cfg), Box::new(SeededRng::new(2)), now),
        now,
        a_addr,
        b_addr,
    }
}

fn pair() -> Pair {
    pair_with(0)
}

const PEER: PeerId = PeerId(0);

/// An IPv4 UDP packet of `total` bytes from `src` to `dst`.
fn packet(src: &str, dst: &str, total: usize) -> Vec<u8> {
    let mut p = vec![0u8; total];
    ip::emit_udp(
        &mut p,
        src.parse().unwrap(),
        dst.parse().unwrap(),
        total - 28,
    )
    .unwrap();
    p
}

impl Pair {
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// Everything A has to send, as datagrams.
    fn drain_a(&mut self) -> Vec<Vec<u8>> {
        drain(&mut self.a, self.now)
    }

    fn drain_b(&mut self) -> Vec<Vec<u8>> {
        drain(&mut self.b, self.now)
    }

    /// Delivers datagrams to B; returns B's replies.
    fn deliver_to_b(&mut self, dgrams: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        deliver(&mut self.b, self.now, self.a_addr, dgrams)
    }

    /// Delivers datagrams to A; returns A's replies.
    fn deliver_to_a(&mut self, dgrams: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        deliver(&mut self.a, self.now, self.b_addr, dgrams)
    }

    fn handshake(&mut self) {
        self.a.connect(self.now, PEER).unwrap();
        let init = self.drain_a();
        assert_eq!(init.len(), 1);
        let resp = self.deliver_to_b(init);
        assert!(self.deliver_to_a(resp).is_empty());
        let confirm = self.drain_a();
        self.deliver_to_b(confirm);
        assert!(self.a.has_session(self.now, PEER) && self.b.has_session(self.now, PEER));
    }

    /// A seals one data packet for B and returns the datagram.
    fn seal_a(&mut self, total: usize) -> Vec<u8> {
        let p = packet("10.0.0.1:1", "10.0.0.2:2", total);
        let mut buf = vec![0u8; PacketBuf::HEADROOM + total + PacketBuf::TAILROOM];
        let mut pkt = PacketBuf::copy_from(&mut buf, &p).unwrap();
        let t = self
            .a
            .send_packet(self.now, &mut pkt)
            .unwrap()
            .expect("a session");
        pkt.datagram()[..t.len].to_vec()
    }

    fn seal_b(&mut self) -> Vec<u8> {
        let p = packet("10.0.0.2:2", "10.0.0.1:1", 40);
        let mut buf = vec![0u8; 200];
        let mut pkt = PacketBuf::copy_from(&mut buf, &p).unwrap();
        let t = self
            .b
            .send_packet(self.now, &mut pkt)
            .unwrap()
            .expect("a session");
        pkt.datagram()[..t.len].to_vec()
    }
}

fn deliver(
    ep: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
    dgrams: Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    for mut d in dgrams {
        if let Datagram::Reply { len, .. } = ep.handle_datagram(now, from, &mut d) {
            replies.push(d[..len].to_vec());
        }
    }
    replies
}

fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        out.push(buf[..t.len].to_vec());
    }
    out
}

fn kinds(dgrams: &[Vec<u8>]) -> Vec<(u8, usize)> {
    dgrams.iter().map(|d| (d[0], d.len())).collect()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

#[test]
fn padding_and_mtu() {
    let mut p = pair();
    p.handshake();
    // 1420-byte packet: no room to pad, 1452 on the wire.
    assert_eq!(p.seal_a(1420).len(), 1420 + 32);
    // 29 bytes pad to 32.
    assert_eq!(p.seal_a(29).len(), 32 + 32);
    // 1412 pads to 1420, not 1424: padding never passes the MTU.
    assert_eq!(p.seal_a(1412).len(), 1420 + 32);
    let big = packet("10.0.0.1:1", "10.0.0.2:2", 1421);
    let mut buf = vec![0u8; 2000];
    let mut pkt = PacketBuf::copy_from(&mut buf, &big).unwrap();
    assert_eq!(
        p.a.send_packet(p.now, &mut pkt),
        Err(SendError::TooLarge {
            len: 1421,
            max: 1420
        })
    );
    assert_eq!(
        SendError::TooLarge {
            len: 1421,
            max: 1420
        }
        .to_string(),
        "packet of 1421 bytes exceeds the mtu of 1420 bytes"
    );
}

#[test]
fn counters_are_never_reused() {
    let mut p = pair();
    p.handshake();
    let counters: Vec<u64> = (0..50)
        .map(|_| u64::from_le_bytes(p.seal_a(60)[8..16].try_into().unwrap()))
        .collect();
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "{counters:?}"
    );
}

#[test]
fn retransmits_every_rekey_timeout_and_gives_up_after_rekey_attempt_time() {
    let mut p = pair();
    let staged = packet("10.0.0.1:1", "10.0.0.2:2", 60);
    let mut buf = vec![0u8; 200];
    let mut pkt = PacketBuf::copy_from(&mut buf, &staged).unwrap();
    assert_eq!(
        p.a.send_packet(p.now, &mut pkt),
        Ok(None),
        "staged until a session exists"
    );
    let start = p.now;
    let mut sent_at = Vec::new();
    for _ in 0..3000 {
        let out = p.drain_a();
        if !out.is_empty() {
            assert_eq!(kinds(&out), vec![(1, 148)], "only initiations go out");
            sent_at.push(p.now - start);
        }
        p.advance(Duration::from_millis(50));
        if p.now - start > Duration::from_secs(130) {
            break;
        }
    }
    // Initial + MAX_TIMER_HANDSHAKES + 1 retries, each 5 s + up to 333 ms after the last.
    assert_eq!(
        sent_at.len(),
        1 + MAX_TIMER_HANDSHAKES as usize + 1,
        "{sent_at:?}"
    );
    for w in sent_at.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= REKEY_TIMEOUT
                && gap <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(50),
            "{gap:?}"
        );
    }
    let evs = events(&mut p.a);
    assert!(
        evs.contains(&Event::HandshakeFailed { peer: PEER }),
        "{evs:?} {sent_at:?}"
    );
    let stats = p.a.peer_stats(PEER).unwrap();
    assert_eq!(
        stats.staged_dropped, 1,
        "the staged packet was dropped with the handshake"
    );
    assert_eq!(
        p.a.indices_in_use(),
        0,
        "the abandoned handshake's index is free"
    );
}

#[test]
fn initiations_are_rate_limited_to_one_per_rekey_timeout() {
    let mut p = pair();
    p.a.connect(p.now, PEER).unwrap();
    assert_eq!(p.drain_a().len(), 1);
    p.now += Duration::from_secs(1);
    p.a.connect(p.now, PEER).unwrap();
    assert!(
        p.drain_a().is_empty(),
        "a second initiation within REKEY_TIMEOUT is suppressed"
    );
    p.now += REKEY_TIMEOUT;
    p.a.connect(p.now, PEER).unwrap();
    assert_eq!(p.drain_a().len(), 1);
}

#[test]
fn initiator_rekeys_after_rekey_after_time_and_old_keypair_still_opens() {
    let mut p = pair();
    p.handshake();
    let in_flight = p.seal_a(60);
    p.advance(REKEY_AFTER_TIME);
    // Both sides keep the session alive meanwhile.
    let d = p.seal_a(60);
    let out = p.drain_a();
    assert_eq!(
        kinds(&out),
        vec![(1, 148)],
        "sending on an old keypair starts a rekey"
    );
    let resp = p.deliver_to_b(out);
    p.deliver_to_a(resp);
    let confirm = p.drain_a();
    p.deliver_to_b(confirm);
    // The packet sealed under the previous keypair is still accepted (previous slot).
    assert!(matches!(
        p.b.handle_datagram(p.now, p.a_addr, &mut in_flight.clone()),
        Datagram::Deliver { .. }
    ));
    assert!(matches!(
        p.b.handle_datagram(p.now, p.a_addr, &mut d.clone()),
        Datagram::Deliver { .. }
    ));
    assert!(
        events(&mut p.a).contains(&Event::KeypairRotated { peer: PEER }),
        "the initiator reports the rekey"
    );
    assert!(
        events(&mut p.b).contains(&Event::KeypairRotated { peer: PEER }),
        "the responder too, once confirmed"
    );
    let fresh = p.seal_a(60);
    assert_ne!(fresh[4..8], d[4..8], "new keypair, new receiver index");
    assert!(matches!(
        p.b.handle_datagram(p.now, p.a_addr, &mut fresh.clone()),
        Datagram::Deliver { .. }
    ));
}

#[test]
fn responder_keypair_waits_as_next_until_confirmed() {
    let mut p = pair();
    p.a.connect(p.now, PEER).unwrap();
    let init = p.drain_a();
    let resp = p.deliver_to_b(init);
    assert!(
        !p.b.has_session(p.now, PEER),
        "responder cannot send before confirmation"
    );
    assert!(
        events(&mut p.b)
            .iter()
            .all(|e| !matches!(e, Event::HandshakeCompleted { .. }))
    );
    p.deliver_to_a(resp);
    let confirm = p.drain_a();
    assert_eq!(
        kinds(&confirm),
        vec![(4, 32)],
        "the initiator confirms with a keepalive"
    );
    p.deliver_to_b(confirm);
    assert!(p.b.has_session(p.now, PEER));
    assert!(events(&mut p.b).contains(&Event::HandshakeCompleted {
        peer: PEER,
        role: Role::Responder
    }));
}

#[test]
fn passive_keepalive_after_receiving_data_and_sending_nothing() {
    let mut p = pair();
    p.handshake();
    let d = p.seal_a(60);
    p.deliver_to_b(vec![d]);
    p.advance(KEEPALIVE_TIMEOUT - Duration::from_millis(1));
    assert!(p.drain_b().is_empty());
    p.advance(Duration::from_millis(1));
    assert_eq!(
        kinds(&p.drain_b()),
        vec![(4, 32)],
        "B answers data with a keepalive after 10 s"
    );
    p.advance(KEEPALIVE_TIMEOUT * 2);
    assert!(
        p.drain_b().is_empty(),
        "no further keepalives without new data"
    );
}

#[test]
fn new_handshake_when_sent_data_is_not_answered() {
    let mut p = pair();
    p.handshake();
    let _lost = p.seal_a(60);
    p.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - Duration::from_millis(1));
    assert!(p.drain_a().is_empty());
    p.advance(REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(1));
    assert_eq!(
        kinds(&p.drain_a()),
        vec![(1, 148)],
        "no reply for 15 s: a new handshake"
    );
}

#[test]
fn keys_are_erased_after_three_reject_after_times() {
    let mut p = pair();
    p.handshake();
    let _ = events(&mut p.a);
    p.advance(REJECT_AFTER_TIME);
    assert!(
        !p.a.has_session(p.now, PEER),
        "an expired keypair is not used"
    );
    p.advance(REJECT_AFTER_TIME * 2);
    assert!(events(&mut p.a).contains(&Event::PeerDown { peer: PEER }));
    assert_eq!(p.a.indices_in_use(), 0);
}

#[test]
fn expired_keypair_drops_transport() {
    let mut p = pair();
    p.handshake();
    let d = p.seal_a(60);
    p.now += REJECT_AFTER_TIME;
    assert!(matches!(
        p.b.handle_datagram(p.now, p.a_addr, &mut d.clone()),
        Datagram::Dropped(DropReason::KeypairExpired)
    ));
}

#[test]
fn persistent_keepalive_starts_a_session_and_repeats() {
    let mut p = pair_with(25);
    let first = p.drain_a();
    assert_eq!(
        kinds(&first),
        vec![(1, 148)],
        "a persistent-keepalive peer is contacted at start"
    );
    let resp = p.deliver_to_b(first);
    p.deliver_to_a(resp);
    assert_eq!(kinds(&p.drain_a()), vec![(4, 32)]);
    p.advance(Duration::from_secs(25));
    assert_eq!(
        kinds(&p.drain_a()),
        vec![(4, 32)],
        "keepalive every 25 s of silence"
    );
    p.advance(Duration::from_secs(24));
    assert!(p.drain_a().is_empty());
    p.advance(Duration::from_secs(1));
    assert_eq!(kinds(&p.drain_a()), vec![(4, 32)]);
}

#[test]
fn responder_data_flows_after_confirmation() {
    let mut p = pair();
    p.handshake();
    let d = p.seal_b();
    assert!(matches!(
        p.a.handle_datagram(p.now, p.b_addr, &mut d.clone()),
        Datagram::Deliver { .. }
    ));
}

#[test]
fn every_index_of_a_peer_maps_to_its_shard_across_rekeys() {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let a_key = PrivateKey::generate(&mut SeededRng::new(10));
    let b_key = PrivateKey::generate(&mut SeededRng::new(20));
    let others: Vec<PrivateKey> = (30..32)
        .map(|s| PrivateKey::generate(&mut SeededRng::new(s)))
        .collect();
    let a_addr: SocketAddr = A_ADDR.parse().unwrap();
    let b_addr: SocketAddr = B_ADDR.parse().unwrap();
    // B is A's third peer: with 3 data shards it belongs to shard 2.
    let mut a_cfg = EndpointConfig::builder(a_key.clone())
        .clock_anchor(now, wall)
        .data_shards(3);
    for (i, k) in others.iter().enumerate() {
        a_cfg = a_cfg.peer(
            PeerConfig::new(k.public_key()).allowed_ip(format!("10.9.{i}.0/24").parse().unwrap()),
        );
    }
    let a_cfg = a_cfg
        .peer(
            PeerConfig::new(b_key.public_key())
                .endpoint(b_addr)
                .allowed_ip("10.0.0.2/32".parse().unwrap()),
        )
        .build()
        .unwrap();
    let b_cfg = EndpointConfig::builder(b_key)
        .clock_anchor(now, wall)
        .peer(
            PeerConfig::new(a_key.public_key())
                .endpoint(a_addr)
                .allowed_ip("10.0.0.1/32".parse().unwrap()),
        )
        .build()
        .unwrap();
    let mut p = Pair {
        a: Endpoint::new(Arc::new(a_cfg), Box::new(SeededRng::new(1)), now),
        b: Endpoint::new(Arc::new(b_cfg), Box::new(SeededRng::new(2)), now),
        now,
        a_addr,
        b_addr,
    };
    let b_at_a = PeerId(2);
    assert_eq!(p.a.peer_shard(b_at_a), 2);
    let mut checked = 0;
    for round in 0..6 {
        // Alternate who initiates, so A allocates indices both as initiator and as responder.
        let (init, resp) = if round % 2 == 0 {
            p.a.connect(p.now, b_at_a).unwrap();
            let init = p.drain_a();
            let resp = p.deliver_to_b(init.clone());
            (init, resp)
        } else {
            p.b.connect(p.now, PEER).unwrap();
            let init = p.drain_b();
            let resp = p.deliver_to_a(init.clone());
            (init, resp)
        };
        // A's index travels as the sender of its initiation or response.
        let a_msg = if round % 2 == 0 { &init[0] } else { &resp[0] };
        assert_eq!(
            crate::proto::shard_of_index(u32::from_le_bytes(a_msg[4..8].try_into().unwrap()), 3),
            2
        );
        if round % 2 == 0 {
            p.deliver_to_a(resp);
            let confirm = p.drain_a();
            p.deliver_to_b(confirm);
        } else {
            p.deliver_to_b(resp);
            let confirm = p.drain_b();
            p.deliver_to_a(confirm);
        }
        // B's transport messages to A name A's index at bytes 4..8: byte 4 picks shard 2.
        let p4 = packet("10.0.0.2:2", "10.0.0.1:1", 60);
        let mut buf = vec![0u8; 200];
        let mut pkt = PacketBuf::copy_from(&mut buf, &p4).unwrap();
        let t = p.b.send_packet(p.now, &mut pkt).unwrap().expect("session");
        let wire = pkt.datagram()[..t.len].to_vec();
        assert_eq!(wire[4] % 3, 2, "round {round}: steered to the peer's shard");
        assert!(matches!(
            p.a.handle_datagram(p.now, p.b_addr, &mut wire.clone()),
            Datagram::Deliver { .. }
        ));
        checked += 1;
        p.advance(REKEY_TIMEOUT + Duration::from_secs(1));
    }
    assert_eq!(checked, 6);
}

#[test]
fn peers_can_be_added_updated_and_removed_while_running() {
    let mut p = pair();
    p.handshake();
    let b_key = p.a.peer_stats(PEER).unwrap().public_key;

    // Adding: a duplicate key and an overlapping route are refused, naming the field and value.
    let err = p.a.add_peer(PeerConfig::new(b_key)).unwrap_err();
    assert_eq!(err.field(), "peers[1].public_key");
    let c_key = PrivateKey::generate(&mut SeededRng::new(77)).public_key();
    let err =
        p.a.add_peer(PeerConfig::new(c_key).allowed_ip("10.0.0.2/32".parse().unwrap()))
            .unwrap_err();
    assert_eq!(
        (err.field(), err.value()),
        ("peers[1].allowed_ips[0]", "10.0.0.2/32")
    );
    let c =
        p.a.add_peer(PeerConfig::new(c_key).allowed_ip("10.0.0.3/32".parse().unwrap()))
            .unwrap();
    assert_eq!(c, PeerId(1));
    assert_eq!(p.a.route("10.0.0.3".parse().unwrap()), Some(c));

    // Updating B's allowed IPs moves the route; its session stays.
    let updated = PeerConfig::new(b_key)
        .allowed_ip("10.0.0.2/32".parse().unwrap())
        .allowed_ip("10.0.9.0/24".parse().unwrap());
    p.a.update_peer(PEER, updated).unwrap();
    assert_eq!(p.a.route("10.0.9.7".parse().unwrap()), Some(PEER));
    assert!(p.a.has_session(p.now, PEER), "an update keeps the session");
    let err = p.a.update_peer(PEER, PeerConfig::new(c_key)).unwrap_err();
    assert_eq!(err.field(), "peers[0].public_key");

    // Removing B erases its session: its packets now name an unknown index, its route is gone.
    let d = p.seal_b();
    let _ = events(&mut p.a);
    assert!(p.a.remove_peer(PEER));
    assert!(!p.a.remove_peer(PEER), "removing twice");
    assert!(events(&mut p.a).contains(&Event::PeerDown { peer: PEER }));
    assert!(matches!(
        p.a.handle_datagram(p.now, p.b_addr, &mut d.clone()),
        Datagram::Dropped(DropReason::UnknownReceiverIndex)
    ));
    assert_eq!(p.a.route("10.0.0.2".parse().unwrap()), None);
    assert_eq!(p.a.indices_in_use(), 0);
    assert_eq!(p.a.peer_ids().collect::<Vec<_>>(), vec![c]);

    // B can be added again (into the free slot) and handshakes afresh.
    let again =
        p.a.add_peer(
            PeerConfig::new(b_key)
                .endpoint(p.b_addr)
                .allowed_ip("10.0.0.2/32".parse().unwrap()),
        )
        .unwrap();
    assert_eq!(again, PEER, "the freed slot is reused");
    p.now += REKEY_TIMEOUT;
    p.handshake();
}

#[test]
fn a_new_psk_applies_from_the_next_handshake() {
    let mut p = pair();
    p.handshake();
    let b_key = p.a.peer_stats(PEER).unwrap().public_key;
    let psk = pnet_mesh_crypto::PresharedKey::from_bytes([5; 32]);
    let with_psk = PeerConfig::new(b_key)
        .endpoint(p.b_addr)
        .allowed_ip("10.0.0.2/32".parse().unwrap())
        .preshared_key(psk);
    p.a.update_peer(PEER, with_psk).unwrap();
    assert!(p.a.has_session(p.now, PEER), "the running session is kept");
    // B still has no PSK: B answers the next initiation (the PSK enters only at the response) but A
    // cannot decrypt the answer.
    p.now += REKEY_TIMEOUT;
    p.a.connect(p.now, PEER).unwrap();
    let init = p.drain_a();
    let mut resp = p.deliver_to_b(init);
    assert_eq!(resp.len(), 1);
    assert!(matches!(
        p.a.handle_datagram(p.now, p.b_addr, &mut resp[0]),
        Datagram::Dropped(DropReason::HandshakeDecryptFailed)
    ));
    // With the same PSK on B the next handshake completes.
    let a_key = p.b.peer_stats(PEER).unwrap().public_key;
    let b_side = PeerConfig::new(a_key)
        .allowed_ip("10.0.0.1/32".parse().unwrap())
        .preshared_key(pnet_mesh_crypto::PresharedKey::from_bytes([5; 32]));
    p.b.update_peer(PEER, b_side).unwrap();
    p.now += REKEY_TIMEOUT;
    p.handshake();
}

#[test]
fn traffic_continues_across_rekeys_with_a_timer_scale_and_loses_nothing() {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let times = ProtocolTimes::scaled(0.01); // rekey after 1.2 s, reject after 1.8 s
    let a_key = PrivateKey::generate(&mut SeededRng::new(10));
    let b_key = PrivateKey::generate(&mut SeededRng::new(20));
    let a_addr: SocketAddr = A_ADDR.parse().unwrap();
    let b_addr: SocketAddr = B_ADDR.parse().unwrap();
    let cfg = |own: &PrivateKey, peer: &PrivateKey, ep: SocketAddr, net: &str| {
        EndpointConfig::builder(own.clone())
            .clock_anchor(now, wall)
            .data_shards(2)
            .protocol_times(times)
            .peer(
                PeerConfig::new(peer.public_key())
                    .endpoint(ep)
                    .allowed_ip(net.parse().unwrap()),
            )
            .build()
            .unwrap()
    };
    let mut p = Pair {
        a: Endpoint::new(
            Arc::new(cfg(&a_key, &b_key, b_addr, "10.0.0.2/32")),
            Box::new(SeededRng::new(1)),
            now,
        ),
        b: Endpoint::new(
            Arc::new(cfg(&b_key, &a_key, a_addr, "10.0.0.1/32")),
            Box::new(SeededRng::new(2)),
            now,
        ),
        now,
        a_addr,
        b_addr,
    };
    p.handshake();
    let (mut sent, mut delivered, mut rotations) = (0u32, 0u32, 0u32);
    let mut buf = vec![0u8; 256];
    // 8 virtual seconds, a packet each way every 10 ms.
    for _ in 0..800 {
        p.advance(Duration::from_millis(10));
        for (from_a, pkt) in [
            (true, packet("10.0.0.1:1", "10.0.0.2:2", 80)),
            (false, packet("10.0.0.2:2", "10.0.0.1:1", 80)),
        ] {
            let (src, dst, from) = if from_a {
                (&mut p.a, &mut p.b, p.a_addr)
            } else {
                (&mut p.b, &mut p.a, p.b_addr)
            };
            let mut pb = PacketBuf::copy_from(&mut buf, &pkt).unwrap();
            sent += 1;
            let mut wire: Vec<Vec<u8>> = Vec::new();
            if let Some(t) = src.send_packet(p.now, &mut pb).unwrap() {
                wire.push(pb.datagram()[..t.len].to_vec());
            }
            // Handshake messages and packets held during a rekey flow until both sides are quiet.
            wire.extend(drain(src, p.now));
            let mut back = Vec::new();
            let mut forth = wire;
            while !forth.is_empty() || !back.is_empty() {
                for mut d in forth.drain(..) {
                    match dst.handle_datagram(p.now, from, &mut d) {
                        Datagram::Deliver { .. } => delivered += 1,
                        Datagram::Reply { len, .. } => back.push(d[..len].to_vec()),
                        Datagram::Consumed => {}
                        Datagram::Dropped(r) => panic!("dropped: {r:?}"),
                    }
                }
                back.extend(drain(dst, p.now));
                for mut d in back.drain(..) {
                    match src.handle_datagram(
                        p.now,
                        if from_a { p.b_addr } else { p.a_addr },
                        &mut d,
                    ) {
                        Datagram::Deliver { .. } => delivered += 1,
                        Datagram::Reply { len, .. } => forth.push(d[..len].to_vec()),
                        Datagram::Consumed => {}
                        Datagram::Dropped(r) => panic!("dropped: {r:?}"),
                    }
                }
                forth.extend(drain(src, p.now));
            }
        }
        rotations += events(&mut p.a)
            .into_iter()
            .filter(|e| matches!(e, Event::KeypairRotated { .. }))
            .count() as u32;
        let _ = events(&mut p.b);
    }
    assert!(
        rotations >= 3,
        "{rotations} rotations in 8 s with a 1.2 s rekey"
    );
    assert_eq!(delivered, sent, "no datagram lost across the rekeys");
}
