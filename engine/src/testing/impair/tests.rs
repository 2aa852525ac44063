use std::collections::HashSet;

use super::*;

fn sockets() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    (a, b)
}

/// Sends `count` numbered datagrams A → proxy, paced so that no socket buffer overflows, and
/// returns the proxy's counts and what B received.
fn run(config: ProxyConfig, count: u32) -> (ProxyStats, Vec<Vec<u8>>) {
    let (a, b) = sockets();
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        b.local_addr().unwrap(),
        config,
    )
    .unwrap();
    // B reads while A sends, so that its socket buffer never overflows.
    let back = proxy.back_addr();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok((n, from)) = b.recv_from(&mut buf) {
            assert_eq!(from, back, "B sees the proxy's back socket");
            got.push(buf[..n].to_vec());
        }
        got
    });
    for i in 0..count {
        let mut payload = i.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0x5a; 60]);
        a.send_to(&payload, proxy.front_addr()).unwrap();
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let got = receiver.join().unwrap();
    (proxy.stop(), got)
}

fn seq(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap())
}

#[test]
fn one_seed_gives_the_same_impairments_and_another_seed_others() {
    let impairment = Impairment {
        loss: 0.2,
        duplicate: 0.1,
        corrupt: 0.1,
        ..Impairment::default()
    };
    let (first, got) = run(ProxyConfig::symmetric(42, impairment), 2000);
    let (second, _) = run(ProxyConfig::symmetric(42, impairment), 2000);
    let (other, _) = run(ProxyConfig::symmetric(43, impairment), 2000);
    assert_eq!(first.a_to_b.received, 2000, "{first:?}");
    assert_eq!(first, second, "same seed, same traffic, same decisions");
    assert_ne!(first.a_to_b, other.a_to_b);
    let s = first.a_to_b;
    assert!((300..500).contains(&s.lost), "about 20 % lost: {s:?}");
    assert!(
        (120..220).contains(&s.duplicated),
        "about 10 % of the rest duplicated: {s:?}"
    );
    assert_eq!(s.forwarded, s.received - s.lost + s.duplicated);
    assert_eq!(got.len() as u64, s.forwarded, "B got everything forwarded");
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let impairment = Impairment {
        corrupt: 1.0,
        ..Impairment::default()
    };
    let (stats, got) = run(ProxyConfig::symmetric(1, impairment), 200);
    assert_eq!(stats.a_to_b.corrupted, 200);
    assert_eq!(got.len(), 200);
    // Nothing is delayed, so datagram k is the k-th sent.
    for (k, payload) in got.iter().enumerate() {
        let mut original = (k as u32).to_be_bytes().to_vec();
        original.extend_from_slice(&[0x5a; 60]);
        let flipped: u32 = original
            .iter()
            .zip(payload)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(flipped, 1, "datagram {k}");
    }
}

#[test]
fn reordered_datagrams_are_overtaken_and_none_is_lost() {
    let impairment = Impairment {
        reorder: 0.25,
        reorder_delay: Duration::from_millis(20),
        ..Impairment::default()
    };
    let (stats, got) = run(ProxyConfig::symmetric(5, impairment), 400);
    assert_eq!(got.len(), 400);
    let seqs: Vec<u32> = got.iter().map(|p| seq(p)).collect();
    let unique: HashSet<u32> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), 400, "each once");
    let inversions = seqs.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 0, "some arrive out of order");
    assert!(stats.a_to_b.reordered > 50, "{stats:?}");
}

#[test]
fn gilbert_model_loses_in_bursts() {
    let impairment = Impairment {
        burst: Some(Gilbert {
            good_to_bad: 0.05,
            bad_to_good: 0.3,
            loss_in_bad: 1.0,
            loss_in_good: 0.0,
        }),
        ..Impairment::default()
    };
    let (stats, got) = run(ProxyConfig::symmetric(9, impairment), 2000);
    let s = stats.a_to_b;
    assert!(s.lost > 0 && s.lost == s.lost_in_burst, "{s:?}");
    // Runs of consecutive losses: bursts average 1/bad_to_good ≈ 3.3 datagrams.
    let seqs: HashSet<u32> = got.iter().map(|p| seq(p)).collect();
    let (mut runs, mut in_run) = (0, false);
    for i in 0..2000 {
        let lost = !seqs.contains(&i);
        if lost && !in_run {
            runs += 1;
        }
        in_run = lost;
    }
    assert!(
        s.lost as f64 / runs as f64 > 2.0,
        "bursts, not single losses: {runs} runs of {s:?}"
    );
}

#[test]
fn replies_go_back_to_the_last_sender_and_rate_is_capped() {
    let (a, b) = sockets();
    let config = ProxyConfig {
        a_to_b: Impairment {
            rate_pps: Some(50),
            ..Impairment::default()
        },
        ..ProxyConfig::new(3)
    };
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        b.local_addr().unwrap(),
        config,
    )
    .unwrap();
    let mut buf = [0u8; 64];
    a.send_to(b"ping", proxy.front_addr()).unwrap();
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    b.send_to(b"pong", from).unwrap();
    let (n, back) = a.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], back), (&b"pong"[..], proxy.front_addr()));
    for _ in 0..500 {
        a.send_to(b"flood", proxy.front_addr()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let s = proxy.stop();
    // A one-second burst of 50, the ping included; the rest of what arrived is cut.
    assert!(s.a_to_b.forwarded <= 55, "{s:?}");
    assert!(s.a_to_b.rate_limited > 100, "{s:?}");
    assert_eq!(
        s.a_to_b.rate_limited + s.a_to_b.forwarded,
        s.a_to_b.received
    );
    assert_eq!(s.b_to_a.forwarded, 1);
}

#[test]
fn bad_probabilities_are_refused_naming_the_field() {
    let config = ProxyConfig {
        b_to_a: Impairment {
            duplicate: 1.5,
            ..Impairment::default()
        },
        ..ProxyConfig::new(0)
    };
    let err = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        config,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "b_to_a.duplicate = 1.5: a probability must be between 0 and 1"
    );
}

#[test]
fn the_proxy_stops_by_itself_after_its_lifetime() {
    let (a, b) = sockets();
    let config = ProxyConfig {
        lifetime: Duration::from_millis(50),
        ..ProxyConfig::new(0)
    };
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        b.local_addr().unwrap(),
        config,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    a.send_to(b"late", proxy.front_addr()).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        b.recv_from(&mut buf).is_err(),
        "nothing forwarded after the lifetime"
    );
    assert_eq!(proxy.stop().a_to_b.received, 0);
}
