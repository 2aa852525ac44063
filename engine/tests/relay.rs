//! Relays through the public API, on loopback: a pair that reaches each other only through a relay
//! member (`PeerConfig::via`), what the relay can see, and the frames it refuses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::mesh::candidate::CandidateSource;
use pnet_mesh::mesh::relay::{RelayConfig, RelayDrop};
use pnet_mesh::mesh::wire::relay::{CandidateMessage, RelayFrame};
use pnet_mesh::proto::path::is_relayed;
use pnet_mesh::{Event, Node, NodeBuilder, PeerConfig};

const WAIT: Duration = Duration::from_secs(10);
const RELAY_PORT: u16 = 51_803;

fn key(seed: u64) -> PrivateKey {
    PrivateKey::generate(&mut SeededRng::new(seed))
}

fn host(ip: &str) -> pnet_mesh::AllowedIp {
    format!("{ip}/32").parse().unwrap()
}

fn node(k: &PrivateKey, mesh: &str) -> NodeBuilder {
    Node::builder(k.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address(mesh.parse().unwrap())
        .data_shards(2)
}

/// A (10.7.0.1) and B (10.7.0.3) each know the relay R (10.7.0.2) directly and each other only
/// through it; R knows both directly.
struct Trio {
    a: Node,
    r: Node,
    b: Node,
}

fn trio(relay: RelayConfig) -> Trio {
    let (a_key, r_key, b_key) = (key(11), key(12), key(13));
    let r = node(&r_key, "10.7.0.2")
        .relay(relay)
        .peer(PeerConfig::new(a_key.public_key()).allowed_ip(host("10.7.0.1")))
        .peer(PeerConfig::new(b_key.public_key()).allowed_ip(host("10.7.0.3")))
        .start()
        .expect("relay starts");
    let r_addr = r.local_addrs()[0];
    let b = node(&b_key, "10.7.0.3")
        .peer(
            PeerConfig::new(r_key.public_key())
                .endpoint(r_addr)
                .allowed_ip(host("10.7.0.2"))
                .persistent_keepalive(1),
        )
        .peer(
            PeerConfig::new(a_key.public_key())
                .via(r_key.public_key())
                .allowed_ip(host("10.7.0.1")),
        )
        .start()
        .expect("B starts");
    let a = node(&a_key, "10.7.0.1")
        .peer(
            PeerConfig::new(r_key.public_key())
                .endpoint(r_addr)
                .allowed_ip(host("10.7.0.2")),
        )
        .peer(
            PeerConfig::new(b_key.public_key())
                .via(r_key.public_key())
                .allowed_ip(host("10.7.0.3")),
        )
        .start()
        .expect("A starts");
    Trio { a, r, b }
}

fn recv(node: &Node) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = node
        .recv_from_timeout(&mut buf, WAIT)
        .expect("a datagram arrives in time");
    (buf[..n].to_vec(), from)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn session_relay_roundtrips_route_hop_payload_and_candidate_exchange() {
    // The frame: route (source, destination), hop count and payload come back as they went.
    let (a, b) = (key(1).public_key(), key(2).public_key());
    let payload: Vec<u8> = (0..1452u32).map(|i| (i * 7) as u8).collect();
    let frame = RelayFrame {
        hop_limit: 3,
        source: a,
        destination: b,
        payload: &payload,
    };
    let mut wire = vec![0u8; 2048];
    let len = frame.encode(&mut wire).unwrap();
    assert_eq!(RelayFrame::decode(&wire[..len]), Ok(frame));
    // The candidate exchange: a member's candidates with how each is known.
    let candidates = CandidateMessage {
        member: a,
        candidates: vec![
            (
                CandidateSource::KnownRoute,
                "192.0.2.1:51820".parse().unwrap(),
            ),
            (
                CandidateSource::Reflexive,
                "[2001:db8::7]:4000".parse().unwrap(),
            ),
            (
                CandidateSource::Advertised,
                "10.1.2.3:51820".parse().unwrap(),
            ),
        ],
    };
    let len = candidates.encode(&mut wire).unwrap();
    assert_eq!(CandidateMessage::decode(&wire[..len]), Ok(candidates));

    // And a relayed payload crosses a relay intact, both ways.
    let t = trio(RelayConfig::default());
    let b_mesh: SocketAddr = "10.7.0.3:51800".parse().unwrap();
    let big: Vec<u8> = (0..t.a.max_datagram(b_mesh.ip()))
        .map(|i| (i % 251) as u8)
        .collect();
    t.a.send_to(&big, b_mesh).unwrap();
    let (got, from) = recv(&t.b);
    assert_eq!(got, big, "the payload arrives intact");
    assert_eq!(from, "10.7.0.1:51800".parse().unwrap());
    t.b.send_to(b"and back", from).unwrap();
    assert_eq!(recv(&t.a).0, b"and back");
    let r = t.r.relay_stats();
    assert!(r.forwarded >= 2, "the relay forwarded both ways: {r:?}");
    assert_eq!(r.drops.total(), 0, "{r:?}");
    assert!(t.a.relay_stats().originated >= 1);
    assert!(t.b.relay_stats().delivered >= 1);
}

#[test]
fn a_relay_forwards_only_ciphertext_and_holds_no_end_to_end_key() {
    let t = trio(RelayConfig::default());
    let b_mesh: SocketAddr = "10.7.0.3:51800".parse().unwrap();
    for i in 0..20u32 {
        t.a.send_to(format!("secret #{i}").as_bytes(), b_mesh)
            .unwrap();
        assert_eq!(recv(&t.b).0, format!("secret #{i}").as_bytes());
    }
    // The pair completed its own handshake, end to end, over the relay path.
    let a_peers = t.a.peer_stats().unwrap();
    let a_to_b = a_peers
        .iter()
        .find(|(_, s)| s.public_key == t.b.public_key())
        .unwrap();
    assert!(a_to_b.1.last_handshake.is_some(), "A and B shook hands");
    assert!(
        is_relayed(&a_to_b.1.endpoint.unwrap()),
        "A reaches B through R"
    );
    let b_peers = t.b.peer_stats().unwrap();
    let b_to_a = b_peers
        .iter()
        .find(|(_, s)| s.public_key == t.a.public_key())
        .unwrap();
    assert!(
        is_relayed(&b_to_a.1.endpoint.unwrap()),
        "B reaches A through R"
    );
    // The relay holds sessions with A and with B and nothing else: no key of the pair's session.
    let r_peers = t.r.peer_stats().unwrap();
    assert_eq!(r_peers.len(), 2);
    let mut keys: Vec<_> = r_peers.iter().map(|(_, s)| s.public_key).collect();
    keys.sort_by_key(|k| *k.as_bytes());
    let mut expected = vec![t.a.public_key(), t.b.public_key()];
    expected.sort_by_key(|k| *k.as_bytes());
    assert_eq!(keys, expected);
    let r_handshakes = std::iter::from_fn(|| t.r.poll_event())
        .filter(|e| matches!(e.event, Event::HandshakeCompleted { .. }))
        .count();
    assert!(r_handshakes <= 4, "R shook hands only with A and B");
    // Nothing of the pair's traffic reached the relay's application.
    let mut buf = [0u8; 2048];
    assert!(t.r.try_recv_from(&mut buf).is_err());
    assert!(t.r.relay_stats().forwarded >= 20);
}

#[test]
fn hostile_frames_are_dropped_and_counted_and_unrelated_traffic_keeps_flowing() {
    let mut relay = RelayConfig::default();
    relay.frames_per_second = 200;
    let t = trio(relay);
    // First a real relayed exchange, so the sessions are up.
    let b_mesh: SocketAddr = "10.7.0.3:51800".parse().unwrap();
    t.a.send_to(b"hello", b_mesh).unwrap();
    assert_eq!(recv(&t.b).0, b"hello");
    let r_relay: SocketAddr = format!("10.7.0.2:{RELAY_PORT}").parse().unwrap();
    let send_frame = |hop_limit: u8, source, destination| {
        let frame = RelayFrame {
            hop_limit,
            source,
            destination,
            payload: &[4u8; 48],
        };
        let mut wire = vec![0u8; 256];
        let len = frame.encode(&mut wire).unwrap();
        t.a.send_udp(RELAY_PORT, r_relay, &wire[..len]).unwrap();
    };
    let (a, b) = (t.a.public_key(), t.b.public_key());
    let stranger = key(99).public_key();
    send_frame(1, a, b);
    send_frame(4, stranger, b);
    send_frame(4, a, stranger);
    send_frame(4, b, a); // back to where it came from
    t.a.send_udp(RELAY_PORT, r_relay, &[1, 1, 9]).unwrap(); // truncated frame
    let expect = [
        (RelayDrop::HopLimit, 1),
        (RelayDrop::UnknownSource, 1),
        (RelayDrop::UnknownDestination, 1),
        (RelayDrop::Loop, 1),
        (RelayDrop::Malformed, 1),
    ];
    wait_for("the relay to count each hostile frame", || {
        let d = t.r.relay_stats().drops;
        expect.iter().all(|(r, n)| d.get(*r) >= *n)
    });
    // A flood from one member through the relay: held to its rate, and counted.
    for _ in 0..1000 {
        t.a.send_udp(RELAY_PORT, r_relay, &{
            let frame = RelayFrame {
                hop_limit: 4,
                source: a,
                destination: b,
                payload: &[4u8; 48],
            };
            let mut wire = vec![0u8; 256];
            let len = frame.encode(&mut wire).unwrap();
            wire.truncate(len);
            wire
        })
        .unwrap();
    }
    wait_for("the flood to be rate limited", || {
        t.r.relay_stats().drops.get(RelayDrop::RateLimited) > 0
    });
    // The genuine frames that did pass reached B, which dropped them as the garbage they are
    // (no plaintext, nothing delivered); unrelated traffic between A and R, and relayed traffic
    // once the bucket refills, keeps flowing.
    let r_mesh: SocketAddr = "10.7.0.2:51800".parse().unwrap();
    t.a.send_to(b"to the relay itself", r_mesh).unwrap();
    assert_eq!(recv(&t.r).0, b"to the relay itself");
    std::thread::sleep(Duration::from_millis(1100));
    t.a.send_to(b"still relayed", b_mesh).unwrap();
    assert_eq!(recv(&t.b).0, b"still relayed");
}

#[test]
fn a_relay_configuration_naming_an_unknown_or_relayed_peer_fails_at_start() {
    let (a_key, r_key, b_key) = (key(21), key(22), key(23));
    let err = node(&a_key, "10.7.1.1")
        .peer(PeerConfig::new(b_key.public_key()).via(r_key.public_key()))
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("peers[0].via"), "{err}");
    assert!(err.contains("not a peer of this node"), "{err}");
    let err = node(&a_key, "10.7.1.1")
        .peer(PeerConfig::new(r_key.public_key()).via(b_key.public_key()))
        .peer(PeerConfig::new(b_key.public_key()).via(r_key.public_key()))
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("itself reached through a relay"), "{err}");
    let mut relay = RelayConfig::default();
    relay.hop_limit = 0;
    let err = node(&a_key, "10.7.1.1")
        .relay(relay)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("relay.hop_limit"), "{err}");
}

#[test]
fn a_multi_hop_route_carries_datagrams_across_two_relays_both_ways() {
    // A - R1 - R2 - B: A and B each know only their own relay's endpoint; the relays know each
    // other and route the far member through the other relay.
    let (a_key, r1_key, r2_key, b_key) = (key(31), key(32), key(33), key(34));
    let (a_pub, r1_pub, r2_pub, b_pub) = (
        a_key.public_key(),
        r1_key.public_key(),
        r2_key.public_key(),
        b_key.public_key(),
    );
    let r2 = node(&r2_key, "10.7.2.3")
        .peer(PeerConfig::new(r1_pub).allowed_ip(host("10.7.2.2")))
        .peer(PeerConfig::new(b_pub).allowed_ip(host("10.7.2.4")))
        .peer(PeerConfig::new(a_pub).allowed_ip(host("10.7.2.1")))
        .relay_route(a_pub, r1_pub)
        .start()
        .unwrap();
    let r1 = node(&r1_key, "10.7.2.2")
        .peer(PeerConfig::new(a_pub).allowed_ip(host("10.7.2.1")))
        .peer(
            PeerConfig::new(r2_pub)
                .endpoint(r2.local_addrs()[0])
                .allowed_ip(host("10.7.2.3"))
                .persistent_keepalive(1),
        )
        .peer(PeerConfig::new(b_pub).allowed_ip(host("10.7.2.4")))
        .relay_route(b_pub, r2_pub)
        .start()
        .unwrap();
    let b = node(&b_key, "10.7.2.4")
        .peer(
            PeerConfig::new(r2_pub)
                .endpoint(r2.local_addrs()[0])
                .allowed_ip(host("10.7.2.3"))
                .persistent_keepalive(1),
        )
        .peer(
            PeerConfig::new(a_pub)
                .via(r2_pub)
                .allowed_ip(host("10.7.2.1")),
        )
        .start()
        .unwrap();
    let a = node(&a_key, "10.7.2.1")
        .peer(
            PeerConfig::new(r1_pub)
                .endpoint(r1.local_addrs()[0])
                .allowed_ip(host("10.7.2.2")),
        )
        .peer(
            PeerConfig::new(b_pub)
                .via(r1_pub)
                .allowed_ip(host("10.7.2.4")),
        )
        .start()
        .unwrap();
    let b_mesh: SocketAddr = "10.7.2.4:51800".parse().unwrap();
    for i in 0..10u32 {
        a.send_to(format!("two hops #{i}").as_bytes(), b_mesh)
            .unwrap();
        let (got, from) = recv(&b);
        assert_eq!(got, format!("two hops #{i}").as_bytes());
        b.send_to(format!("back #{i}").as_bytes(), from).unwrap();
        assert_eq!(recv(&a).0, format!("back #{i}").as_bytes());
    }
    for (relay, name) in [(&r1, "R1"), (&r2, "R2")] {
        let s = relay.relay_stats();
        assert!(s.forwarded >= 20, "{name} forwarded both ways: {s:?}");
        assert_eq!(s.drops.total(), 0, "{name}: {s:?}");
    }
}

#[test]
fn a_routing_loop_in_the_configuration_is_cut_by_the_hop_limit() {
    // R1 -> R2 -> R3 -> R1 for the member X, which is nowhere: a frame A sends for X goes round
    // until its hop limit runs out, then is dropped and counted.
    let keys: Vec<PrivateKey> = (41..46).map(key).collect();
    let [a_key, r1_key, r2_key, r3_key, x_key] = keys.as_slice() else {
        unreachable!()
    };
    let pubs: Vec<_> = keys.iter().map(PrivateKey::public_key).collect();
    let [a_pub, r1_pub, r2_pub, r3_pub, x_pub] = pubs[..] else {
        unreachable!()
    };
    // Each relay knows A (the source), X (as a key) and both its neighbours in the ring.
    let relay = |k: &PrivateKey, mesh: &str, next: (pnet_mesh::crypto::PublicKey, &str)| {
        node(k, mesh)
            .peer(PeerConfig::new(a_pub).allowed_ip(host("10.7.3.1")))
            .peer(PeerConfig::new(x_pub).allowed_ip(host("10.7.3.9")))
            .peer(PeerConfig::new(next.0).allowed_ip(host(next.1)))
            .relay_route(x_pub, next.0)
    };
    let r3 = relay(r3_key, "10.7.3.4", (r1_pub, "10.7.3.2"))
        .peer(PeerConfig::new(r2_pub).allowed_ip(host("10.7.3.3")))
        .start()
        .unwrap();
    let r2 = relay(r2_key, "10.7.3.3", (r3_pub, "10.7.3.4"));
    let r2 = r2
        .peer(PeerConfig::new(r1_pub).allowed_ip(host("10.7.3.2")))
        .start()
        .unwrap();
    let r1 = relay(r1_key, "10.7.3.2", (r2_pub, "10.7.3.3"))
        .peer(PeerConfig::new(r3_pub).allowed_ip(host("10.7.3.4")))
        .start()
        .unwrap();
    // Endpoints once every relay listens: each knows its successor's.
    let set = |n: &Node, k: pnet_mesh::crypto::PublicKey, ip: &str, at: SocketAddr| {
        let id = n
            .peer_stats()
            .unwrap()
            .into_iter()
            .find(|(_, s)| s.public_key == k)
            .unwrap()
            .0;
        n.update_peer(id, PeerConfig::new(k).endpoint(at).allowed_ip(host(ip)))
            .unwrap();
    };
    set(&r1, r2_pub, "10.7.3.3", r2.local_addrs()[0]);
    set(&r2, r3_pub, "10.7.3.4", r3.local_addrs()[0]);
    set(&r3, r1_pub, "10.7.3.2", r1.local_addrs()[0]);
    let a = node(a_key, "10.7.3.1")
        .peer(
            PeerConfig::new(r1_pub)
                .endpoint(r1.local_addrs()[0])
                .allowed_ip(host("10.7.3.2")),
        )
        .peer(
            PeerConfig::new(x_pub)
                .via(r1_pub)
                .allowed_ip(host("10.7.3.9")),
        )
        .start()
        .unwrap();
    // The first datagram for X starts a handshake: its initiation is the frame that loops.
    a.send_to(b"into the loop", "10.7.3.9:51800".parse().unwrap())
        .unwrap();
    let relays = [&r1, &r2, &r3];
    wait_for("the hop limit to cut the loop", || {
        relays
            .iter()
            .map(|r| r.relay_stats().drops.get(RelayDrop::HopLimit))
            .sum::<u64>()
            >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let cut: u64 = relays
        .iter()
        .map(|r| r.relay_stats().drops.get(RelayDrop::HopLimit))
        .sum();
    let forwarded: u64 = relays.iter().map(|r| r.relay_stats().forwarded).sum();
    // Hop limit 4: three relays pass each frame on, the fourth hop drops it.
    assert_eq!(forwarded, 3 * cut, "each frame went exactly three hops");
    assert!(
        cut <= 2,
        "one initiation (and at most one retry) looped: {cut}"
    );
    let _ = x_key;
}
