//! Crypto discovery between running nodes on loopback: nodes given one bootstrap peer each learn
//! every member and talk to each directly; a node with a wrong mesh PSK gets nowhere; a restarted
//! node rejoins at once while an unrelated stream loses nothing; hostile records are dropped and
//! counted, and nothing unauthenticated moves an endpoint.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey};
use pnet_mesh::mesh::discovery::DEFAULT_DISCOVERY_PORT;
use pnet_mesh::mesh::membership::DiscoveryDrop;
use pnet_mesh::mesh::wire::{MESSAGE_HEADER_LEN, MemberRecord, MessageHeader, RecordKey};
use pnet_mesh::proto::path::is_relayed;
use pnet_mesh::{DropReason, Event, Node, NodeError, PeerConfig};

const MESH_PSK: [u8; 32] = [0x5e; 32];
const PORT: u16 = 51800;

fn key(seed: u64) -> PrivateKey {
    PrivateKey::generate(&mut SeededRng::new(seed))
}

fn mesh_ip(net: u8, i: usize) -> IpAddr {
    IpAddr::from([10, 78, net, i as u8 + 1])
}

/// A node `i` of mesh `net` holding `psk`, configured with `peers`: `(index, key, endpoint)`.
fn start(
    net: u8,
    i: usize,
    private: &PrivateKey,
    psk: [u8; 32],
    peers: &[(usize, PublicKey, Option<SocketAddr>)],
) -> Node {
    let mut b = Node::builder(private.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address(mesh_ip(net, i))
        .data_shards(1)
        .mesh_psk(PresharedKey::from_bytes(psk));
    for (j, k, endpoint) in peers {
        let mut p =
            PeerConfig::new(*k).allowed_ip(format!("{}/32", mesh_ip(net, *j)).parse().unwrap());
        if let Some(e) = endpoint {
            p = p.endpoint(*e);
        }
        b = b.peer(p);
    }
    b.start().expect("start a node")
}

fn member_keys(node: &Node) -> BTreeSet<PublicKey> {
    node.members()
        .unwrap()
        .iter()
        .map(|m| m.record.public_key)
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends from `a` to `b` until `b` receives it (a handshake may be under way); returns how long.
fn exchange(a: &Node, b: &Node, b_ip: IpAddr, payload: &[u8]) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no datagram {payload:?} within 10 s"
        );
        match a.send_to(payload, SocketAddr::new(b_ip, PORT)) {
            Ok(()) => {}
            Err(NodeError::NoRoute(_)) => {
                // Not learned yet.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => panic!("send: {e}"),
        }
        if let Ok((n, _)) = b.recv_from_timeout(&mut buf, Duration::from_millis(100))
            && &buf[..n] == payload
        {
            return started.elapsed();
        }
    }
}

/// A chain 0 ← 1 ← 2 ← 3: each node is given only the one before it as a bootstrap peer (with an
/// endpoint), and the one before it knows its key (no endpoint).
fn chain(net: u8, n: usize, seed: u64) -> (Vec<PrivateKey>, Vec<Node>) {
    let keys: Vec<PrivateKey> = (0..n).map(|i| key(seed + i as u64)).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let mut peers = Vec::new();
        if i > 0 {
            peers.push((
                i - 1,
                keys[i - 1].public_key(),
                Some(nodes[i - 1].local_addrs()[0]),
            ));
        }
        if i + 1 < n {
            peers.push((i + 1, keys[i + 1].public_key(), None));
        }
        nodes.push(start(net, i, &keys[i], MESH_PSK, &peers));
    }
    (keys, nodes)
}

#[test]
fn bootstrap_discovery_among_four_nodes_ends_with_every_pair_talking_directly() {
    let n = 4;
    let (keys, nodes) = chain(1, n, 100);
    let everyone: BTreeSet<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    for (i, node) in nodes.iter().enumerate() {
        let mut others = everyone.clone();
        others.remove(&keys[i].public_key());
        wait_until(
            &format!("node {i} to learn every member"),
            Duration::from_secs(10),
            || member_keys(node) == others,
        );
    }
    // Every ordered pair exchanges a datagram.
    for i in 0..n {
        for j in 0..n {
            if i != j {
                exchange(
                    &nodes[i],
                    &nodes[j],
                    mesh_ip(1, j),
                    format!("{i}->{j}").as_bytes(),
                );
            }
        }
    }
    // Directly: members learned through a neighbour start through it, and are promoted once a
    // probe succeeds; then each node's peer for every other has that node's own socket as its
    // endpoint, and a session with it.
    for (i, node) in nodes.iter().enumerate() {
        let direct = || {
            node.peer_stats()
                .unwrap()
                .iter()
                .all(|(_, s)| s.endpoint.is_some_and(|e| !is_relayed(&e)))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !direct() {
            if Instant::now() > deadline {
                let peers: Vec<_> = node
                    .peer_stats()
                    .unwrap()
                    .into_iter()
                    .map(|(id, s)| (id, s.endpoint, s.last_handshake.is_some()))
                    .collect();
                panic!(
                    "node {i} still reaches a member through a relay: {peers:?}, {:?}",
                    node.path_stats()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let peers = node.peer_stats().unwrap();
        assert_eq!(peers.len(), n - 1, "node {i} holds every other as a peer");
        for (_, s) in peers {
            let j = keys
                .iter()
                .position(|k| k.public_key() == s.public_key)
                .unwrap();
            assert_eq!(
                s.endpoint,
                Some(nodes[j].local_addrs()[0]),
                "node {i} reaches node {j} directly"
            );
            assert!(
                s.last_handshake.is_some() && s.rx_bytes > 0,
                "node {i} ↔ {j}: {s:?}"
            );
        }
        let stats = node.discovery_stats().unwrap();
        assert_eq!(stats.drops.total(), 0, "node {i}: {:?}", stats.drops);
    }
    // The members two links away were vouched for by a neighbour and joined with an event.
    let mut joined = Vec::new();
    while let Some(e) = nodes[3].poll_event() {
        if let Event::MemberJoined { member, vouched_by } = e.event {
            joined.push((member, vouched_by));
        }
    }
    assert!(
        joined.contains(&(keys[0].public_key(), keys[2].public_key())),
        "node 0 joined node 3's view through node 2: {joined:?}"
    );
    for node in nodes {
        node.shutdown();
    }
}

#[test]
fn a_node_with_a_wrong_mesh_psk_completes_no_handshake_and_delivers_nothing() {
    // The gate (5) is configured with a member (0) and with the outsider's key (6), so only the
    // PSK stands in the outsider's way.
    let (member, outsider, gate_key) = (key(200), key(290), key(291));
    let gate = start(
        2,
        5,
        &gate_key,
        MESH_PSK,
        &[
            (0, member.public_key(), None),
            (6, outsider.public_key(), None),
        ],
    );
    let bootstrap = [(5, gate_key.public_key(), Some(gate.local_addrs()[0]))];
    let nodes = vec![start(2, 0, &member, MESH_PSK, &bootstrap)];
    let wrong = start(2, 6, &outsider, [0x11; 32], &bootstrap);
    wait_until(
        "the member to join the gate",
        Duration::from_secs(10),
        || member_keys(&gate).contains(&member.public_key()),
    );
    let mut buf = [0u8; 256];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let _ = wrong.send_to(b"let me in", SocketAddr::new(mesh_ip(2, 5), PORT));
        assert!(
            gate.recv_from_timeout(&mut buf, Duration::from_millis(100))
                .is_err(),
            "the gate received a datagram from a node with a wrong mesh PSK"
        );
    }
    // Handshakes were tried and failed: the outsider cannot open the responses.
    let failed = wrong.stats().drops.get(DropReason::HandshakeDecryptFailed);
    assert!(
        failed > 0,
        "handshake failures counted: {:?}",
        wrong.stats().drops
    );
    let (_, s) = &wrong.peer_stats().unwrap()[0];
    assert!(
        s.last_handshake.is_none() && s.handshakes_initiated > 0,
        "{s:?}"
    );
    let (_, at_gate) = gate
        .peer_stats()
        .unwrap()
        .into_iter()
        .find(|(_, s)| s.public_key == outsider.public_key())
        .unwrap();
    assert!(
        at_gate.last_handshake.is_none() && at_gate.rx_packets == 0,
        "{at_gate:?}"
    );
    // Nobody learned of it, and it learned nothing.
    for node in nodes.iter().chain([&gate]) {
        assert!(!member_keys(node).contains(&outsider.public_key()));
    }
    assert!(member_keys(&wrong).is_empty());
    for node in nodes.into_iter().chain([gate, wrong]) {
        node.shutdown();
    }
}

#[test]
fn a_restarted_node_rejoins_at_once_and_an_unrelated_stream_loses_nothing() {
    // A hub (0) and three spokes, each given only the hub.
    let net = 3;
    let keys: Vec<PrivateKey> = (0..4).map(|i| key(300 + i)).collect();
    let spokes: Vec<(usize, PublicKey, Option<SocketAddr>)> =
        (1..4).map(|j| (j, keys[j].public_key(), None)).collect();
    let hub = start(net, 0, &keys[0], MESH_PSK, &spokes);
    let bootstrap = [(0, keys[0].public_key(), Some(hub.local_addrs()[0]))];
    let mut nodes: Vec<Option<Node>> = (1..4)
        .map(|i| Some(start(net, i, &keys[i], MESH_PSK, &bootstrap)))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        wait_until(
            "every spoke to learn the others",
            Duration::from_secs(10),
            || member_keys(node.as_ref().unwrap()).len() == 3,
        );
        let _ = i;
    }
    let (one, two) = (nodes[0].take().unwrap(), nodes[1].take().unwrap());
    exchange(&one, &two, mesh_ip(net, 2), b"warm up");

    // 1 streams numbered datagrams to 2 throughout the restart of 3.
    let stop = AtomicBool::new(false);
    let (sent, received) = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut seq = 0u32;
            while !stop.load(Ordering::Relaxed) {
                one.send_to(&seq.to_be_bytes(), SocketAddr::new(mesh_ip(net, 2), PORT))
                    .expect("stream send");
                seq += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            seq
        });
        let receiver = s.spawn(|| {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            let mut quiet_since = None::<Instant>;
            loop {
                match two.recv_from_timeout(&mut buf, Duration::from_millis(50)) {
                    Ok((4, _)) => {
                        got.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
                        quiet_since = None;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if stop.load(Ordering::Relaxed) {
                            let q = *quiet_since.get_or_insert_with(Instant::now);
                            if q.elapsed() > Duration::from_millis(500) {
                                return got;
                            }
                        }
                    }
                }
            }
        });

        std::thread::sleep(Duration::from_millis(300));
        let three = nodes[2].take().unwrap();
        let old_endpoint = three.local_addrs()[0];
        three.shutdown();
        std::thread::sleep(Duration::from_millis(300));
        // Same key, fresh state, a new port: only the hub is configured.
        let three = start(net, 3, &keys[3], MESH_PSK, &bootstrap);
        assert_ne!(three.local_addrs()[0], old_endpoint);
        // Reachable again from the first send to a member it has to learn again.
        let took = exchange(&three, &one, mesh_ip(net, 1), b"back");
        println!("restarted node reached node 1 {took:?} after its first send");
        assert!(took < Duration::from_secs(2), "rejoined in {took:?}");
        // And the other way round: node 2 reaches it at its new endpoint.
        exchange(&two, &three, mesh_ip(net, 3), b"welcome back");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let received = receiver.join().unwrap();
        three.shutdown();
        (sent, received)
    });
    assert!(sent > 200, "the stream ran: {sent}");
    let expected: Vec<u32> = (0..sent).collect();
    assert_eq!(
        received.len(),
        expected.len(),
        "every datagram of the stream arrived"
    );
    assert_eq!(received, expected, "in order, none lost");
    one.shutdown();
    two.shutdown();
    hub.shutdown();
}

#[test]
fn hostile_discovery_input_is_dropped_counted_and_moves_no_endpoint() {
    let (keys, nodes) = chain(4, 3, 400);
    let k2 = keys[2].public_key();
    wait_until("node 0 to learn node 2", Duration::from_secs(10), || {
        member_keys(&nodes[0]).contains(&k2)
    });
    exchange(&nodes[0], &nodes[2], mesh_ip(4, 2), b"direct");
    let endpoint_of_2 = |node: &Node| {
        node.peer_stats()
            .unwrap()
            .into_iter()
            .find(|(_, s)| s.public_key == k2)
            .and_then(|(_, s)| s.endpoint)
    };
    wait_until(
        "node 0 to reach node 2 directly",
        Duration::from_secs(10),
        || endpoint_of_2(&nodes[0]) == Some(nodes[2].local_addrs()[0]),
    );
    let before = endpoint_of_2(&nodes[0]);
    assert_eq!(before, Some(nodes[2].local_addrs()[0]));

    // A record of node 2 naming a new endpoint, well formed and with the right MAC.
    let record = MemberRecord {
        public_key: k2,
        version: u64::MAX / 2,
        lifetime_secs: 180,
        left: false,
        addresses: vec![format!("{}/32", mesh_ip(4, 2)).parse().unwrap()],
        endpoints: vec!["127.0.0.1:9".parse().unwrap()],
    };
    let message = |psk: [u8; 32]| {
        let mut m = vec![0u8; 1024];
        MessageHeader {
            sync: false,
            count: 1,
        }
        .encode(&mut m)
        .unwrap();
        let rk = RecordKey::new(&PresharedKey::from_bytes(psk));
        let n = record
            .encode(
                &rk,
                Some("127.0.0.1:9".parse().unwrap()),
                0,
                &mut m[MESSAGE_HEADER_LEN..],
            )
            .unwrap();
        m.truncate(MESSAGE_HEADER_LEN + n);
        m
    };
    // Unauthenticated: straight to node 0's socket, outside any session.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let drops_before = nodes[0].stats().drops.total();
    socket
        .send_to(&message(MESH_PSK), nodes[0].local_addrs()[0])
        .unwrap();
    wait_until(
        "the stray datagram to be counted",
        Duration::from_secs(5),
        || nodes[0].stats().drops.total() > drops_before,
    );
    // Inside node 1's valid session: a record made with another PSK, then a truncated message.
    let to_0 = SocketAddr::new(mesh_ip(4, 0), DEFAULT_DISCOVERY_PORT);
    nodes[1]
        .send_udp(DEFAULT_DISCOVERY_PORT, to_0, &message([9; 32]))
        .unwrap();
    nodes[1]
        .send_udp(DEFAULT_DISCOVERY_PORT, to_0, &message(MESH_PSK)[..30])
        .unwrap();
    wait_until(
        "the forged and truncated messages to be counted",
        Duration::from_secs(5),
        || {
            let d = nodes[0].discovery_stats().unwrap().drops;
            d.get(DiscoveryDrop::BadMac) == 1 && d.get(DiscoveryDrop::Truncated) == 1
        },
    );
    // A member passing on a valid record with a new endpoint moves nothing either: endpoints
    // follow authenticated packets only.
    nodes[1]
        .send_udp(DEFAULT_DISCOVERY_PORT, to_0, &message(MESH_PSK))
        .unwrap();
    wait_until("the new version to be held", Duration::from_secs(5), || {
        nodes[0]
            .members()
            .unwrap()
            .iter()
            .any(|m| m.record.public_key == k2 && m.record.version == u64::MAX / 2)
    });
    exchange(&nodes[0], &nodes[2], mesh_ip(4, 2), b"still direct");
    assert_eq!(
        endpoint_of_2(&nodes[0]),
        before,
        "the endpoint did not move"
    );
    for node in nodes {
        node.shutdown();
    }
}
