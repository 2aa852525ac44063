//! The node through its public API, over real UDP sockets on loopback.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::rng::{OsRng, Rng, SeededRng};
use pnet_mesh::crypto::{PrivateKey, PublicKey};
use pnet_mesh::proto::constants::ProtocolTimes;
use pnet_mesh::{
    Backend, Datagram, DropReason, Endpoint, EndpointConfig, Event, Node, NodeError, PacketBuf,
    PeerConfig, PeerId, ip,
};

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

/// A peer driven by the sans-I/O [`Endpoint`] over a UDP socket it can swap (to roam) — what a test
/// needs to control its source address and to see its own datagrams.
struct UdpPeer {
    endpoint: Endpoint,
    socket: UdpSocket,
    mesh: SocketAddr,
    /// Every transport datagram sent, for replays.
    sent: Vec<Vec<u8>>,
}

impl UdpPeer {
    fn new(
        key: PrivateKey,
        node_key: PublicKey,
        node_addr: SocketAddr,
        mesh: SocketAddr,
    ) -> UdpPeer {
        let config = EndpointConfig::builder(key)
            .peer(
                PeerConfig::new(node_key)
                    .endpoint(node_addr)
                    .allowed_ip("10.9.0.0/24".parse().unwrap()),
            )
            .build()
            .unwrap();
        UdpPeer {
            endpoint: Endpoint::new(Arc::new(config), Box::new(OsRng), Instant::now()),
            socket: Self::socket(),
            mesh,
            sent: Vec::new(),
        }
    }

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        s
    }

    /// Sends one datagram from our mesh address to `to` through the tunnel.
    fn send_udp(&mut self, to: SocketAddr, payload: &[u8]) {
        let hdr = ip::udp_headers_len(&to);
        let mut buf = vec![0u8; PacketBuf::HEADROOM + hdr + payload.len() + PacketBuf::TAILROOM];
        let mut pkt = PacketBuf::new(&mut buf, hdr + payload.len()).unwrap();
        pkt.payload_mut()[hdr..].copy_from_slice(payload);
        ip::emit_udp(pkt.payload_mut(), self.mesh, to, payload.len()).unwrap();
        let now = Instant::now();
        if let Some(t) = self.endpoint.send_packet(now, &mut pkt).unwrap() {
            self.socket.send_to(pkt.datagram(), t.to).unwrap();
            self.sent.push(pkt.datagram().to_vec());
        }
        self.flush(now);
    }

    fn flush(&mut self, now: Instant) {
        let mut out = [0u8; 2048];
        while let Some(t) = self.endpoint.poll_transmit(now, &mut out) {
            self.socket.send_to(&out[..t.len], t.to).unwrap();
            if out[0] == 4 {
                self.sent.push(out[..t.len].to_vec());
            }
        }
    }

    /// Serves the socket for `d`, returning the UDP payloads delivered.
    fn pump(&mut self, d: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let now = Instant::now();
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                match self.endpoint.handle_datagram(now, from, &mut buf[..n]) {
                    Datagram::Deliver { packet, .. } => {
                        if let Some(udp) = ip::parse_udp(packet) {
                            got.push(udp.payload.to_vec());
                        }
                    }
                    Datagram::Reply { to, len } => {
                        self.socket.send_to(&buf[..len], to).unwrap();
                    }
                    _ => {}
                }
            }
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
            }
            self.flush(now);
        }
        got
    }

    /// Waits until the session is up.
    fn wait_session(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.endpoint.has_session(Instant::now(), PeerId(0)) {
            assert!(Instant::now() < deadline, "no session with the node");
            self.pump(Duration::from_millis(10));
        }
    }
}

fn recv_payload(node: &Node) -> Vec<u8> {
    recv(node).0
}

/// A node (10.9.0.100) with `peers` sans-I/O peers (10.9.0.1, .2, …).
fn node_with_peers(
    peers: usize,
    data_shards: usize,
    steering_program: bool,
) -> (Node, Vec<UdpPeer>) {
    let node_key = key(100);
    let peer_keys: Vec<PrivateKey> = (0..peers).map(|i| key(200 + i as u64)).collect();
    let mut builder = Node::builder(node_key.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.9.0.100".parse().unwrap())
        .data_shards(data_shards)
        .steering_program(steering_program);
    for (i, k) in peer_keys.iter().enumerate() {
        builder = builder.peer(
            PeerConfig::new(k.public_key())
                .allowed_ip(format!("10.9.0.{}/32", i + 1).parse().unwrap()),
        );
    }
    let node = builder.start().expect("node starts");
    let addr = node.local_addrs()[0];
    let udp_peers = peer_keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let mesh = format!("10.9.0.{}:4000", i + 1).parse().unwrap();
            UdpPeer::new(k, node_key.public_key(), addr, mesh)
        })
        .collect();
    (node, udp_peers)
}

const NODE_MESH: &str = "10.9.0.100:51800";

#[test]
fn roaming_peer_keeps_its_session_and_a_forged_packet_moves_nothing() {
    let (node, mut peers) = node_with_peers(1, 2, true);
    let peer = &mut peers[0];
    let node_mesh: SocketAddr = NODE_MESH.parse().unwrap();
    peer.send_udp(node_mesh, b"before roaming");
    peer.wait_session();
    assert_eq!(recv_payload(&node), b"before roaming");
    let first_addr = peer.socket.local_addr().unwrap();
    node.send_to(b"reply 1", peer.mesh).unwrap();
    assert_eq!(
        peer.pump(Duration::from_millis(300)),
        vec![b"reply 1".to_vec()]
    );

    // The peer moves to a new source port; its session goes on and the node follows.
    peer.socket = UdpPeer::socket();
    let new_addr = peer.socket.local_addr().unwrap();
    peer.send_udp(node_mesh, b"after roaming");
    assert_eq!(recv_payload(&node), b"after roaming");
    // The first change is the endpoint learned from the handshake; the roam comes after it.
    let changed = std::iter::from_fn(|| node.wait_event(Duration::from_secs(2))).find_map(|e| {
        match e.event {
            Event::EndpointChanged { old, new, .. } if old.is_some() => Some((old, new)),
            _ => None,
        }
    });
    assert_eq!(
        changed,
        Some((Some(first_addr), new_addr)),
        "the node reports the move"
    );
    node.send_to(b"reply 2", peer.mesh).unwrap();
    assert_eq!(
        peer.pump(Duration::from_millis(300)),
        vec![b"reply 2".to_vec()],
        "replies go to the new address"
    );
    let stats = node.stats();
    assert_eq!(stats.peers[0].1.endpoint, Some(new_addr));

    // A captured datagram replayed from a third address is dropped and moves nothing.
    let forger = UdpPeer::socket();
    let captured = peer.sent.last().unwrap().clone();
    let before = node.stats().drops.get(DropReason::Replayed);
    forger.send_to(&captured, node.local_addrs()[0]).unwrap();
    let deadline = Instant::now() + WAIT;
    while node.stats().drops.get(DropReason::Replayed) == before {
        assert!(Instant::now() < deadline, "the replay is never counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = node.stats();
    assert_eq!(
        stats.peers[0].1.endpoint,
        Some(new_addr),
        "endpoint unchanged by a forgery"
    );
    assert!(
        node.poll_event().is_none(),
        "no endpoint change for a forgery"
    );
    assert_ne!(first_addr, new_addr);
}

#[test]
fn traffic_continues_across_three_rekeys_on_two_data_shards() {
    // 0.02: rekey after 2.4 s, reject after 3.6 s, rekey timeout 100 ms.
    let times = ProtocolTimes::scaled(0.02);
    let (a_key, b_key) = (key(11), key(12));
    let b = Node::builder(b_key.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.9.0.2".parse().unwrap())
        .data_shards(2)
        .protocol_times(times)
        .peer(PeerConfig::new(a_key.public_key()).allowed_ip("10.9.0.1/32".parse().unwrap()))
        .start()
        .unwrap();
    let a = Node::builder(a_key)
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.9.0.1".parse().unwrap())
        .data_shards(2)
        .protocol_times(times)
        .peer(
            PeerConfig::new(b_key.public_key())
                .endpoint(b.local_addrs()[0])
                .allowed_ip("10.9.0.2/32".parse().unwrap()),
        )
        .start()
        .unwrap();
    let b_mesh: SocketAddr = "10.9.0.2:51800".parse().unwrap();
    let mut rotations = 0;
    let mut sent = 0u32;
    let deadline = Instant::now() + Duration::from_secs(40);
    while rotations < 3 {
        assert!(
            Instant::now() < deadline,
            "only {rotations} rotations after {sent} exchanges"
        );
        let msg = sent.to_be_bytes();
        a.send_to(&msg, b_mesh).unwrap();
        let (got, from) = recv(&b);
        assert_eq!(got, msg, "datagram {sent} arrives, in order, none lost");
        b.send_to(&msg, from).unwrap();
        assert_eq!(recv(&a).0, msg, "reply {sent} arrives");
        sent += 1;
        while let Some(e) = a.poll_event() {
            if matches!(e.event, Event::KeypairRotated { .. }) {
                rotations += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = a.stats();
    assert_eq!(stats.drops.total(), 0, "{:?}", stats.drops);
    assert!(stats.peers[0].1.handshakes_initiated >= 4);
}

#[test]
fn garbage_flood_does_not_stop_valid_traffic_and_every_drop_is_counted() {
    let (node, mut peers) = node_with_peers(1, 2, true);
    let node_mesh: SocketAddr = NODE_MESH.parse().unwrap();
    let peer = &mut peers[0];
    peer.send_udp(node_mesh, b"hello");
    peer.wait_session();
    assert_eq!(recv_payload(&node), b"hello");

    let target = node.local_addrs()[0];
    let flood = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = SeededRng::new(99);
        let mut sent = 0u64;
        for round in 0..40 {
            for i in 0..100usize {
                // Every shape: each message type (and unknown ones) at its size and others.
                let len = [1usize, 4, 32, 64, 92, 148, 200, 1452][i % 8];
                let mut d = vec![0u8; len];
                rng.fill_bytes(&mut d);
                d[0] = [1u8, 2, 3, 4, 0, 77][(i + round) % 6];
                if len >= 4 {
                    d[1..4].fill(0);
                }
                s.send_to(&d, target).unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    });
    // Valid traffic keeps flowing during the flood.
    for i in 0..100u32 {
        let msg = i.to_be_bytes();
        peer.send_udp(node_mesh, &msg);
        assert_eq!(recv_payload(&node), msg);
    }
    let flooded = flood.join().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let drops = node.stats().drops;
        if drops.total() == flooded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{flooded} garbage datagrams sent, {} drops counted: {drops:?}",
            drops.total()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn steering(program: bool) {
    const PACKETS: usize = 50;
    let (node, mut peers) = node_with_peers(4, 2, program);
    assert_eq!(node.stats().steering_program, program);
    let node_mesh: SocketAddr = NODE_MESH.parse().unwrap();
    for (i, peer) in peers.iter_mut().enumerate() {
        for k in 0..PACKETS {
            peer.send_udp(node_mesh, format!("{i}:{k}").as_bytes());
            if k == 0 {
                peer.wait_session();
            }
        }
    }
    let mut got = 0;
    while got < 4 * PACKETS {
        recv(&node);
        got += 1;
    }
    let stats = node.stats();
    // Node peer i is owned by data shard i % 2: exactly its peers' packets were opened there.
    let opened: Vec<u64> = stats.data_shards.iter().map(|s| s.opened).collect();
    assert_eq!(
        opened,
        vec![2 * PACKETS as u64, 2 * PACKETS as u64],
        "{stats:?}"
    );
    let misdelivered: u64 = stats.data_shards.iter().map(|s| s.misdelivered).sum();
    let forwarded: u64 = stats.shards.iter().map(|s| s.forwarded_in).sum();
    println!(
        "steering program {program}: opened {opened:?}, misdelivered {misdelivered}, forwarded {forwarded}"
    );
    if program {
        assert_eq!(
            misdelivered, 0,
            "the program steers every transport message to its owner"
        );
    }
}

#[test]
fn steering_end_to_end_every_transport_message_is_opened_by_its_owner_with_program() {
    steering(true);
}

#[test]
fn steering_end_to_end_every_transport_message_is_opened_by_its_owner_without_program() {
    steering(false);
}

#[test]
fn peers_are_added_updated_and_removed_while_running_and_bad_config_names_the_field() {
    let (node, _) = node_with_peers(0, 1, true);
    let newcomer = key(300);
    let mut peer = UdpPeer::new(
        newcomer.clone(),
        node.public_key(),
        node.local_addrs()[0],
        "10.9.0.7:4000".parse().unwrap(),
    );
    // Unknown to the node: the handshake is refused.
    peer.send_udp(NODE_MESH.parse().unwrap(), b"too early");
    peer.pump(Duration::from_millis(200));
    assert!(!peer.endpoint.has_session(Instant::now(), PeerId(0)));

    let id = node
        .add_peer(PeerConfig::new(newcomer.public_key()).allowed_ip("10.9.0.7/32".parse().unwrap()))
        .expect("add a peer while running");
    peer.endpoint.connect(Instant::now(), PeerId(0)).unwrap();
    peer.flush(Instant::now());
    peer.wait_session();
    // The packet the peer held during its refused handshakes goes first.
    assert_eq!(recv_payload(&node), b"too early");
    peer.send_udp(NODE_MESH.parse().unwrap(), b"now welcome");
    assert_eq!(recv_payload(&node), b"now welcome");

    // An update keeps the session and changes the routes.
    node.update_peer(
        id,
        PeerConfig::new(newcomer.public_key()).allowed_ip("10.9.0.0/24".parse().unwrap()),
    )
    .unwrap();
    peer.send_udp(NODE_MESH.parse().unwrap(), b"still here");
    assert_eq!(recv_payload(&node), b"still here");
    node.send_to(b"to the wider range", "10.9.0.42:4000".parse().unwrap())
        .expect("the new allowed IPs route");

    // Removed: its keys are gone, its packets are dropped.
    assert!(node.remove_peer(id).unwrap());
    assert!(
        !node.remove_peer(id).unwrap(),
        "removing twice reports absence"
    );
    assert!(matches!(
        node.try_send_to(b"x", "10.9.0.7:4000".parse().unwrap()),
        Err(NodeError::NoRoute(_))
    ));

    // Configuration errors name the field and the value.
    let err = node
        .add_peer(PeerConfig::new(key(301).public_key()).endpoint_name("10.0.0.1:99999"))
        .unwrap_err();
    let NodeError::Config(e) = err else {
        panic!("a config error, got {err:?}")
    };
    assert_eq!(
        (e.field(), e.value()),
        ("peers[0].endpoint", "10.0.0.1:99999")
    );
    let err = Node::builder(key(302)).start().unwrap_err();
    assert!(err.to_string().contains("listen"), "{err}");
}

/// A TCP super-packet from 10.9.0.1:40000 to 10.9.0.2:5201 carrying `payload`, starting at `seq`,
/// with a partial checksum as a TUN device leaves it.
fn tcp_super_packet(seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 9, 0, 1]);
    p[16..20].copy_from_slice(&[10, 9, 0, 2]);
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x18; // ACK | PSH
    p[36..38].copy_from_slice(&0x1234u16.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Ones'-complement sum check of a segment's IPv4 header and TCP checksum.
fn ipv4_tcp_checksums_valid(seg: &[u8]) -> bool {
    fn sum(data: &[u8], mut acc: u32) -> u32 {
        for c in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        acc
    }
    fn fold(mut s: u32) -> u32 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s
    }
    let tcp = &seg[20..];
    let pseudo = sum(&seg[12..20], 6 + tcp.len() as u32);
    fold(sum(&seg[..20], 0)) == 0xffff && fold(sum(tcp, pseudo)) == 0xffff
}

#[test]
fn gso_super_packets_leave_as_mtu_segments_and_arrive_in_order() {
    let (a, b) = pair(Backend::Auto, 2);
    let mut rng = SeededRng::new(9);
    // UDP: each segment becomes a datagram of its own, as UDP GSO defines.
    let payload: Vec<u8> = (0..20_000).map(|_| rng.next_u32() as u8).collect();
    let mut udp = vec![0u8; 28 + payload.len()];
    udp[28..].copy_from_slice(&payload);
    let len = ip::emit_udp(
        &mut udp,
        "10.9.0.1:51800".parse().unwrap(),
        "10.9.0.2:51800".parse().unwrap(),
        payload.len(),
    )
    .unwrap();
    assert_eq!(a.send_gso(&udp[..len], 1392).unwrap(), 15);
    let mut joined = Vec::new();
    for i in 0..15 {
        let (got, from) = recv(&b);
        assert_eq!(from, "10.9.0.1:51800".parse().unwrap());
        assert_eq!(got.len(), if i < 14 { 1392 } else { 20_000 - 14 * 1392 });
        joined.extend_from_slice(&got);
    }
    assert_eq!(joined, payload, "segments arrive whole and in order");

    // TCP, sent without blocking: sequence numbers advance, checksums are recomputed, PSH only last.
    let payload: Vec<u8> = (0..10_000).map(|_| rng.next_u32() as u8).collect();
    let tcp = tcp_super_packet(7_000, &payload);
    let mut progress = a.try_send_gso(&tcp, 1380, 0).unwrap();
    while !progress.is_done() {
        std::thread::sleep(Duration::from_millis(1));
        progress = match a.try_send_gso(&tcp, 1380, progress.next) {
            Err(NodeError::WouldBlock) => progress,
            other => other.unwrap(),
        };
    }
    assert_eq!(progress.segments, 8);
    let mut joined = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + WAIT;
    while joined.len() < payload.len() {
        assert!(Instant::now() < deadline, "TCP segments arrive");
        let (n, _) = match b.try_recv_packet(&mut buf) {
            Err(NodeError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            other => other.unwrap(),
        };
        let seg = &buf[..n];
        assert!(n <= 1420, "a segment fits the MTU");
        assert!(ipv4_tcp_checksums_valid(seg), "checksums valid");
        let seq = u32::from_be_bytes(seg[24..28].try_into().unwrap());
        assert_eq!(seq, 7_000 + joined.len() as u32);
        let last = joined.len() + (n - 40) == payload.len();
        assert_eq!(seg[33] & 0x08 != 0, last, "PSH on the last segment only");
        joined.extend_from_slice(&seg[40..]);
    }
    assert_eq!(joined, payload);

    // A segment size the MTU cannot carry is refused before anything leaves; so is a fragment.
    match a.send_gso(&tcp, 1400) {
        Err(NodeError::TooLarge { len, max }) => assert_eq!((len, max), (1440, 1420)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let mut fragment = tcp.clone();
    fragment[6] = 0x20;
    assert!(matches!(
        a.send_gso(&fragment, 1380),
        Err(NodeError::Segmentation(_))
    ));
}
