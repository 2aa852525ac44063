//! Message channels between two running nodes, through the seeded impairment proxy at 5 % loss,
//! 25 % reordering and 2 % duplication both ways, on each backend: a 16 MiB message and 10,000
//! small ones arrive intact and in order. Then the bounds: a slow reader blocks the sender, a
//! message past the maximum is refused, and open / close / reset are events.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::mesh::channel::{ChannelConfig, ChannelDrop, ChannelError, ChannelId};
use pnet_mesh::testing::impair::{Impairment, ImpairmentProxy, ProxyConfig, ProxyStats};
use pnet_mesh::{Backend, Event, Node, NodeError, PeerConfig};

const A: &str = "10.90.0.1";
const B: &str = "10.90.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Node A reaches node B only through `proxy` (when given); B learns A's address from A's
/// handshake, i.e. the proxy's back socket.
fn pair(
    backend: Backend,
    impairment: Option<Impairment>,
    channels: ChannelConfig,
) -> (Node, Node, Option<ImpairmentProxy>) {
    let key_a = PrivateKey::generate(&mut SeededRng::new(71));
    let key_b = PrivateKey::generate(&mut SeededRng::new(72));
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b = Node::builder(key_b.clone())
        .listen(loopback)
        .mesh_address(ip(B))
        .backend(backend)
        .data_shards(2)
        .channels(channels)
        .peer(PeerConfig::new(key_a.public_key()).allowed_ip(format!("{A}/32").parse().unwrap()))
        .start()
        .expect("start B");
    let proxy = impairment.map(|imp| {
        ImpairmentProxy::start(
            loopback,
            b.local_addrs()[0],
            ProxyConfig::symmetric(2026, imp),
        )
        .expect("start the proxy")
    });
    let endpoint = proxy
        .as_ref()
        .map_or(b.local_addrs()[0], |p| p.front_addr());
    let a = Node::builder(key_a)
        .listen(loopback)
        .mesh_address(ip(A))
        .backend(backend)
        .data_shards(2)
        .channels(channels)
        .peer(
            PeerConfig::new(key_b.public_key())
                .endpoint(endpoint)
                .allowed_ip(format!("{B}/32").parse().unwrap()),
        )
        .start()
        .expect("start A");
    (a, b, proxy)
}

/// Waits for an event matching `want` on `node`.
fn wait_for(node: &Node, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(e) = node.wait_event(Duration::from_millis(100))
            && want(&e.event)
        {
            return e.event;
        }
    }
    panic!("no {what} event; stats {:?}", node.stats());
}

const LOSSY: Impairment = Impairment {
    loss: 0.05,
    reorder: 0.25,
    reorder_delay: Duration::from_millis(3),
    duplicate: 0.02,
    corrupt: 0.0,
    burst: None,
    delay: Duration::ZERO,
    jitter: Duration::ZERO,
    rate_pps: None,
};

fn big_and_small_through_the_proxy(backend: Backend) {
    let (a, b, proxy) = pair(backend, Some(LOSSY), ChannelConfig::default());
    let channel = a.open_channel(ip(B)).expect("open");
    let mut big = vec![0u8; 16 << 20];
    let mut rng = SeededRng::new(5);
    pnet_mesh::crypto::rng::Rng::fill_bytes(&mut rng, &mut big);
    let small: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| {
            let mut m = i.to_be_bytes().to_vec();
            m.resize(4 + (i as usize * 13) % 200, i as u8);
            m
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            a.channel_send(channel, &big).expect("send 16 MiB");
            for m in &small {
                a.channel_send(channel, m).expect("send small");
            }
        });
        let Event::ChannelOpened { channel: seen } = wait_for(&b, "ChannelOpened", |e| {
            matches!(e, Event::ChannelOpened { .. })
        }) else {
            unreachable!()
        };
        assert_eq!(
            seen,
            ChannelId {
                peer: ip(A),
                id: channel.id
            }
        );
        let timeout = Some(Duration::from_secs(120));
        let got = b.channel_recv(seen, timeout).expect("the 16 MiB message");
        let big_at = started.elapsed();
        assert!(got == big, "16 MiB intact");
        for (i, m) in small.iter().enumerate() {
            let got = b
                .channel_recv(seen, timeout)
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(&got, m, "message {i} in order");
        }
        let all = started.elapsed();
        let stats: ProxyStats = proxy.as_ref().unwrap().stats();
        println!(
            "{backend:?}: 16 MiB in {big_at:?} ({:.1} MiB/s goodput), then 10,000 messages, all in {all:?}\n\
             proxy {stats:?}\nA drops {:?}\nB drops {:?}",
            16.0 / big_at.as_secs_f64(),
            a.channel_drops(),
            b.channel_drops()
        );
        for node in [&a, &b] {
            assert_eq!(
                node.channel_drops().get(ChannelDrop::OutOfWindow),
                0,
                "credit respected"
            );
        }
        for d in [stats.a_to_b, stats.b_to_a] {
            assert!(
                d.lost > 0 && d.reordered > 0,
                "the proxy impaired the traffic: {d:?}"
            );
        }
        assert!(stats.a_to_b.duplicated > 0);
    });
    a.shutdown();
    b.shutdown();
}

#[test]
fn channel_carries_16_mib_and_10000_messages_through_loss_reorder_duplication_io_uring() {
    big_and_small_through_the_proxy(Backend::IoUring);
}

#[test]
fn channel_carries_16_mib_and_10000_messages_through_loss_reorder_duplication_mmsg() {
    big_and_small_through_the_proxy(Backend::Mmsg);
}

#[test]
fn slow_channel_reader_blocks_the_sender_and_limits_hold_on_running_nodes() {
    let config = ChannelConfig {
        max_message: 1 << 20,
        send_buffer: 2 << 20,
        reassembly_limit: 4 << 20,
        ..ChannelConfig::default()
    };
    let (a, b, _) = pair(Backend::Auto, None, config);
    let channel = a.open_channel(ip(B)).unwrap();
    match a.try_channel_send(channel, &vec![0; (1 << 20) + 1]) {
        Err(NodeError::Channel(ChannelError::MessageTooLarge { len, max })) => {
            assert_eq!((len, max), ((1 << 20) + 1, 1 << 20));
        }
        other => panic!("{other:?}"),
    }
    // B does not read: A fills B's memory and its own send buffer, then is told to wait.
    let message = vec![7u8; 1 << 20];
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match a.try_channel_send(channel, &message) {
            Ok(()) => sent += 1,
            Err(NodeError::WouldBlock) => {
                // Give the driver time to move what it can, then check the block holds.
                std::thread::sleep(Duration::from_millis(300));
                if a.try_channel_send(channel, &message).is_err() {
                    break;
                }
                sent += 1;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "never blocked after {sent} MiB");
    }
    assert!(sent <= 8, "bounded by B's 4 MiB and A's 2 MiB: {sent}");
    let Event::ChannelOpened { channel: seen } = wait_for(&b, "ChannelOpened", |e| {
        matches!(e, Event::ChannelOpened { .. })
    }) else {
        unreachable!()
    };
    // Reading lets everything through, and then more.
    for _ in 0..sent {
        assert_eq!(
            b.channel_recv(seen, Some(Duration::from_secs(20))).unwrap(),
            message
        );
    }
    a.channel_send(channel, b"after the jam").unwrap();
    assert_eq!(
        b.channel_recv(seen, Some(Duration::from_secs(20))).unwrap(),
        b"after the jam"
    );
    assert!(matches!(
        b.try_channel_recv(seen),
        Err(NodeError::WouldBlock)
    ));

    // Close: B reads the last message, then sees the channel closed.
    a.channel_send(channel, b"bye").unwrap();
    a.close_channel(channel).unwrap();
    assert_eq!(
        b.channel_recv(seen, Some(Duration::from_secs(20))).unwrap(),
        b"bye"
    );
    wait_for(
        &b,
        "ChannelClosed",
        |e| matches!(e, Event::ChannelClosed { channel } if *channel == seen),
    );
    match b.try_channel_recv(seen) {
        Err(NodeError::Channel(ChannelError::Closed | ChannelError::UnknownChannel(_))) => {}
        other => panic!("{other:?}"),
    }

    // Reset: the peer is told at once.
    let second = b.open_channel(ip(A)).unwrap();
    b.channel_send(second, b"hello").unwrap();
    let Event::ChannelOpened { channel: at_a } = wait_for(&a, "ChannelOpened", |e| {
        matches!(e, Event::ChannelOpened { .. })
    }) else {
        unreachable!()
    };
    assert_eq!(
        a.channel_recv(at_a, Some(Duration::from_secs(20))).unwrap(),
        b"hello"
    );
    b.reset_channel(second).unwrap();
    wait_for(
        &a,
        "ChannelReset",
        |e| matches!(e, Event::ChannelReset { channel } if *channel == at_a),
    );
    assert!(matches!(
        a.try_channel_send(at_a, b"x"),
        Err(NodeError::Channel(ChannelError::Reset))
    ));
    // Retransmissions may repeat fragments, and a late packet may find its channel forgotten;
    // nothing is refused as hostile between honest nodes.
    for node in [&a, &b] {
        let drops = node.channel_drops();
        for reason in [
            ChannelDrop::Malformed,
            ChannelDrop::OutOfWindow,
            ChannelDrop::Oversized,
            ChannelDrop::ForgedAck,
            ChannelDrop::Violation,
        ] {
            assert_eq!(drops.get(reason), 0, "{reason:?}: {drops:?}");
        }
    }
    // Channel packets never reach the datagram API.
    let mut buf = [0u8; 64];
    assert!(matches!(
        b.try_recv_udp(&mut buf),
        Err(NodeError::WouldBlock)
    ));
}

#[test]
fn hostile_channel_packets_inside_a_valid_session_are_dropped_and_counted() {
    use pnet_mesh::mesh::channel::wire::{HEADER_LEN, Header, Kind};
    let (a, b, _) = pair(Backend::Auto, None, ChannelConfig::default());
    let to_b = SocketAddr::new(ip(B), 51801);
    let data = |channel: u32, seq: u32| {
        let mut p = vec![0u8; HEADER_LEN];
        Header {
            seq,
            window: 256,
            ..Header::new(Kind::Data, channel)
        }
        .encode(&mut p)
        .unwrap();
        p.extend_from_slice(b"forged");
        p
    };
    let mut bad_version = data(7, 0);
    bad_version[0] = 9;
    let hostile: [(Vec<u8>, ChannelDrop); 3] = [
        (vec![1, 1, 0], ChannelDrop::Truncated),
        (bad_version, ChannelDrop::UnsupportedVersion),
        // A fragment of a channel that was never opened: no state is made for it.
        (data(7, 3), ChannelDrop::UnknownChannel),
    ];
    for (packet, reason) in &hostile {
        let before = b.channel_drops().get(*reason);
        a.send_udp(51801, to_b, packet).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.channel_drops().get(*reason) == before {
            assert!(Instant::now() < deadline, "{reason:?} not counted");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert!(
        b.poll_event()
            .is_none_or(|e| !matches!(e.event, Event::ChannelOpened { .. })),
        "hostile packets opened nothing"
    );
    // The session and the channel port still serve honest traffic.
    let channel = a.open_channel(ip(B)).unwrap();
    a.channel_send(channel, b"honest").unwrap();
    let Event::ChannelOpened { channel: seen } = wait_for(&b, "ChannelOpened", |e| {
        matches!(e, Event::ChannelOpened { .. })
    }) else {
        unreachable!()
    };
    assert_eq!(
        b.channel_recv(seen, Some(Duration::from_secs(10))).unwrap(),
        b"honest"
    );
    a.shutdown();
    b.shutdown();
}
