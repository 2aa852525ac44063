//! The node through its public API, over real UDP sockets on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::{Backend, Event, Node, NodeError, PeerConfig};

const WAIT: Duration = Duration::from_secs(10);

fn key(seed: u64) -> PrivateKey {
    PrivateKey::generate(&mut SeededRng::new(seed))
}

/// Two nodes, A (10.9.0.1) and B (10.9.0.2): B starts first knowing A only by key; A knows B's
/// endpoint.
fn pair(backend: Backend, data_shards: usize) -> (Node, Node) {
    let (a_key, b_key) = (key(1), key(2));
    let b = Node::builder(b_key.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.9.0.2".parse().unwrap())
        .backend(backend)
        .data_shards(data_shards)
        .peer(PeerConfig::new(a_key.public_key()).allowed_ip("10.9.0.1/32".parse().unwrap()))
        .start()
        .expect("node B starts");
    let b_addr = b.local_addrs()[0];
    let a = Node::builder(a_key)
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.9.0.1".parse().unwrap())
        .backend(backend)
        .data_shards(data_shards)
        .peer(
            PeerConfig::new(b_key.public_key())
                .endpoint(b_addr)
                .allowed_ip("10.9.0.2/32".parse().unwrap()),
        )
        .start()
        .expect("node A starts");
    (a, b)
}

fn recv(node: &Node) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = node
        .recv_from_timeout(&mut buf, WAIT)
        .expect("a datagram arrives in time");
    (buf[..n].to_vec(), from)
}

#[test]
fn direct_peers_exchange_payloads_in_both_directions_over_public_api() {
    let (a, b) = pair(Backend::Auto, 2);
    let b_mesh: SocketAddr = "10.9.0.2:51800".parse().unwrap();
    let a_mesh: SocketAddr = "10.9.0.1:51800".parse().unwrap();
    for i in 0..50u32 {
        let msg = format!("a to b #{i}");
        a.send_to(msg.as_bytes(), b_mesh).unwrap();
        let (got, from) = recv(&b);
        assert_eq!(got, msg.as_bytes());
        assert_eq!(
            from, a_mesh,
            "the source is A's mesh address and datagram port"
        );
        let reply = format!("b to a #{i}");
        b.send_to(reply.as_bytes(), from).unwrap();
        let (got, from) = recv(&a);
        assert_eq!(got, reply.as_bytes());
        assert_eq!(from, b_mesh);
    }
    // Both saw the handshake, from their own side.
    let a_events: Vec<Event> = std::iter::from_fn(|| a.poll_event())
        .map(|e| e.event)
        .collect();
    assert!(
        a_events.iter().any(|e| matches!(e, Event::PeerUp { .. })),
        "A reports the peer up: {a_events:?}"
    );
    let stats = a.stats();
    let peer = &stats.peers[0].1;
    assert!(peer.tx_packets >= 50 && peer.rx_packets >= 50, "{peer:?}");
    assert!(peer.last_handshake.is_some());
    assert_eq!(stats.drops.total(), 0, "nothing dropped: {:?}", stats.drops);

    // A datagram larger than the MTU allows is refused, naming the maximum.
    let big = vec![0u8; 1420 - 28 + 1];
    match a.try_send_to(&big, b_mesh) {
        Err(NodeError::TooLarge { max, .. }) => assert_eq!(max, 1420 - 28),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // No route: an address no peer's allowed IPs hold.
    assert!(matches!(
        a.try_send_to(b"x", "10.99.0.1:1".parse().unwrap()),
        Err(NodeError::NoRoute(_))
    ));
}
