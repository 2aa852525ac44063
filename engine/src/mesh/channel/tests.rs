//! The channel core between two in-memory peers on a virtual clock, through a seeded lossy link.

use std::time::Duration;

use proptest::prelude::*;

use super::flow::{INITIAL_WINDOW, before};
use super::wire::{FIRST, LAST};
use super::*;

const ID: u32 = 0x0102_0304;

/// SplitMix64 for the link's decisions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Clone, Copy)]
struct Impairment {
    loss: f64,
    reorder: f64,
    duplicate: f64,
}

const CLEAN: Impairment = Impairment {
    loss: 0.0,
    reorder: 0.0,
    duplicate: 0.0,
};

/// Two peers and the packets between them.
struct Link {
    a: PeerChannels,
    b: PeerChannels,
    now: Instant,
    rng: Rng,
    impairment: Impairment,
    /// (due, to_b, bytes)
    wire: Vec<(Instant, bool, Vec<u8>)>,
    /// The furthest right edge B has advertised so far.
    b_edge: u32,
    /// Every DATA fragment A sent stayed within B's advertised credit.
    credit_respected: bool,
    packets: u64,
    steps: u64,
}

fn config() -> ChannelConfig {
    ChannelConfig {
        max_fragment: 1000,
        ..ChannelConfig::default()
    }
}

impl Link {
    fn new(config: ChannelConfig, impairment: Impairment, seed: u64) -> Link {
        config.validate().unwrap();
        let now = Instant::now();
        let mut a = PeerChannels::new(config, now);
        a.open(ID).unwrap();
        Link {
            a,
            b: PeerChannels::new(config, now),
            now,
            rng: Rng(seed),
            impairment,
            wire: Vec::new(),
            b_edge: INITIAL_WINDOW,
            credit_respected: true,
            packets: 0,
            steps: 0,
        }
    }

    /// Moves every packet either side wants to send onto the wire.
    fn flush(&mut self) {
        let mut buf = vec![0u8; 2048];
        for to_b in [true, false] {
            loop {
                let from = if to_b { &mut self.a } else { &mut self.b };
                let Some(n) = from.poll_transmit(self.now, &mut buf) else {
                    break;
                };
                let packet = buf[..n].to_vec();
                let (header, _) = Header::decode(&packet).unwrap();
                if to_b && header.kind == Kind::Data && !before(header.seq, self.b_edge) {
                    self.credit_respected = false;
                }
                if !to_b && header.kind != Kind::Reset {
                    let edge = header.ack.wrapping_add(header.window);
                    if before(self.b_edge, edge) {
                        self.b_edge = edge;
                    }
                }
                self.packets += 1;
                let imp = self.impairment;
                if self.rng.chance(imp.loss) {
                    continue;
                }
                let copies = if self.rng.chance(imp.duplicate) { 2 } else { 1 };
                for _ in 0..copies {
                    let mut delay = Duration::from_millis(1);
                    if self.rng.chance(imp.reorder) {
                        delay += Duration::from_micros(self.rng.next() % 4000);
                    }
                    self.wire.push((self.now + delay, to_b, packet.clone()));
                }
            }
        }
    }

    /// Advances the clock to the next delivery or timer and handles it; false when nothing is left.
    fn step(&mut self) -> bool {
        self.steps += 1;
        self.flush();
        let next_packet = self.wire.iter().map(|(t, _, _)| *t).min();
        let timers = [self.a.poll_timeout(), self.b.poll_timeout()];
        let Some(next) = timers.into_iter().flatten().chain(next_packet).min() else {
            return false;
        };
        self.now = self.now.max(next);
        let (due, later): (Vec<_>, Vec<_>) =
            self.wire.drain(..).partition(|(t, _, _)| *t <= self.now);
        self.wire = later;
        for (_, to_b, packet) in due {
            let to = if to_b { &mut self.b } else { &mut self.a };
            let _ = to.handle_packet(self.now, &packet);
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        true
    }
}

/// Sends `messages` A → B while B reads; returns what B read, in order.
fn transfer(link: &mut Link, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut next = 0;
    let mut got = Vec::new();
    let deadline = link.now + Duration::from_secs(3600);
    while got.len() < messages.len() {
        while next < messages.len() {
            match link.a.send(ID, messages[next].clone()) {
                Ok(()) => next += 1,
                Err(ChannelError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        while let Ok(Some(m)) = link.b.recv(ID) {
            got.push(m);
        }
        assert!(
            link.step() || got.len() == messages.len(),
            "stalled at {} of {}",
            got.len(),
            messages.len()
        );
        assert!(
            link.now < deadline,
            "no progress in an hour of virtual time"
        );
    }
    got
}

const LOSSY: Impairment = Impairment {
    loss: 0.05,
    reorder: 0.25,
    duplicate: 0.02,
};

#[test]
fn ten_thousand_small_messages_arrive_in_order_through_loss_reorder_and_duplication() {
    let mut link = Link::new(config(), LOSSY, 1);
    let messages: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| {
            let mut m = i.to_be_bytes().to_vec();
            m.resize(4 + (i as usize * 7) % 300, (i % 251) as u8);
            m
        })
        .collect();
    let got = transfer(&mut link, &messages);
    assert!(got == messages, "every message once, in order");
    assert!(link.credit_respected);
    let stats = link.a.sender_stats(ID).unwrap();
    assert!(stats.retransmitted > 0, "losses were repaired: {stats:?}");
    assert_eq!(link.b.drops().get(ChannelDrop::OutOfWindow), 0);
    assert!(
        link.b.drops().get(ChannelDrop::Duplicate) > 0,
        "duplicates were dropped"
    );
}

#[test]
fn a_16_mib_message_arrives_intact_through_loss_reorder_and_duplication() {
    let mut link = Link::new(config(), LOSSY, 2);
    let mut rng = Rng(99);
    let big: Vec<u8> = (0..16 << 20).map(|_| rng.next() as u8).collect();
    let got = transfer(&mut link, std::slice::from_ref(&big));
    assert!(got[0] == big, "16 MiB intact");
    assert!(link.credit_respected);
    assert!(link.b.budget().used() <= link.b.budget().limit());
}

#[test]
fn a_message_past_the_maximum_is_refused_to_the_sender() {
    let mut link = Link::new(
        ChannelConfig {
            max_message: 1000,
            send_buffer: 4000,
            ..config()
        },
        CLEAN,
        3,
    );
    assert_eq!(
        link.a.send(ID, vec![0; 1001]),
        Err(ChannelError::MessageTooLarge {
            len: 1001,
            max: 1000
        })
    );
    link.a.send(ID, vec![0; 1000]).unwrap();
    // Empty messages are messages too.
    link.a.send(ID, Vec::new()).unwrap();
    let got = transfer(&mut link, &[]);
    assert!(got.is_empty());
    while link.step() {}
    assert_eq!(link.b.recv(ID).unwrap().unwrap().len(), 1000);
    assert_eq!(link.b.recv(ID).unwrap(), Some(Vec::new()));
}

#[test]
fn a_slow_reader_blocks_the_sender_and_memory_stays_bounded() {
    let config = ChannelConfig {
        max_message: 10_000,
        send_buffer: 50_000,
        reassembly_limit: 256 * 1000 + 30_000,
        ..config()
    };
    let mut link = Link::new(config, CLEAN, 4);
    // B does not read. A queues until the send buffer is full.
    let mut sent = 0;
    let mut blocked = false;
    for _ in 0..10_000 {
        match link.a.send(ID, vec![sent as u8; 10_000]) {
            Ok(()) => sent += 1,
            Err(ChannelError::WouldBlock) => blocked = true,
            Err(e) => panic!("{e}"),
        }
        if !link.step() && blocked {
            break;
        }
    }
    assert!(blocked, "the sender was told to wait");
    let used = link.b.budget().used();
    assert!(used <= link.b.budget().limit(), "{used}");
    // However long it goes on, nothing more is accepted and nothing grows.
    for _ in 0..1000 {
        link.step();
    }
    assert_eq!(link.b.budget().used(), used);
    assert!(link.credit_respected);
    // Reading lets everything through.
    let mut got = 0;
    let deadline = link.now + Duration::from_secs(600);
    while got < sent {
        while let Ok(Some(m)) = link.b.recv(ID) {
            assert_eq!(m, vec![got as u8; 10_000]);
            got += 1;
        }
        while link.a.can_send(ID, 10_000) && sent < 60 {
            link.a.send(ID, vec![sent as u8; 10_000]).unwrap();
            sent += 1;
        }
        link.step();
        assert!(link.now < deadline);
    }
}

fn forge(link: &mut Link, header: Header, payload: &[u8]) -> Result<(), ChannelDrop> {
    let mut packet = vec![0u8; HEADER_LEN];
    header.encode(&mut packet).unwrap();
    packet.extend_from_slice(payload);
    let now = link.now;
    link.b.handle_packet(now, &packet)
}

#[test]
fn hostile_channel_input_is_dropped_counted_and_changes_nothing() {
    let mut link = Link::new(config(), CLEAN, 5);
    link.a.send(ID, vec![1; 3000]).unwrap();
    while link.step() {}
    let used = link.b.budget().used();
    let data = |seq: u32| Header {
        seq,
        window: 256,
        ..Header::new(Kind::Data, ID)
    };
    let now = link.now;
    let cases: Vec<(Vec<u8>, ChannelDrop)> = vec![
        (vec![1, 1, 0], ChannelDrop::Truncated),
        (
            {
                let mut p = vec![0u8; HEADER_LEN];
                data(5).encode(&mut p).unwrap();
                p[0] = 9;
                p
            },
            ChannelDrop::UnsupportedVersion,
        ),
        (
            {
                let mut p = vec![0u8; HEADER_LEN];
                data(5).encode(&mut p).unwrap();
                p[2] = 0x80;
                p
            },
            ChannelDrop::Malformed,
        ),
    ];
    for (packet, reason) in cases {
        assert_eq!(link.b.handle_packet(now, &packet), Err(reason));
    }
    // Oversized, out of window, for an unknown channel, acknowledging what B never sent.
    assert_eq!(
        forge(&mut link, data(4), &[0; 1001]),
        Err(ChannelDrop::Oversized)
    );
    assert_eq!(
        forge(&mut link, data(4 + 256), b"x"),
        Err(ChannelDrop::OutOfWindow)
    );
    assert_eq!(forge(&mut link, data(2), b"x"), Err(ChannelDrop::Duplicate));
    assert_eq!(
        forge(
            &mut link,
            Header {
                channel: 99,
                ..data(4)
            },
            b"x"
        ),
        Err(ChannelDrop::UnknownChannel)
    );
    assert_eq!(
        forge(
            &mut link,
            Header {
                ack: 500,
                ..data(4)
            },
            b"x"
        ),
        Err(ChannelDrop::ForgedAck)
    );
    assert_eq!(link.b.budget().used(), used, "nothing was stored");
    assert_eq!(link.b.poll_event(), Some(ChannelEvent::Opened(ID)));
    assert_eq!(link.b.poll_event(), Some(ChannelEvent::Readable(ID)));
    assert_eq!(link.b.poll_event(), None, "no event from hostile input");
    assert_eq!(link.b.recv(ID).unwrap().unwrap(), vec![1; 3000]);

    // A framing violation inside the session (a middle fragment with no message) resets the channel.
    assert_eq!(
        forge(&mut link, data(4), b"orphan"),
        Err(ChannelDrop::Violation)
    );
    assert_eq!(link.b.poll_event(), Some(ChannelEvent::Reset(ID)));
    assert_eq!(link.b.recv(ID), Err(ChannelError::Reset));
    let d = link.b.drops();
    assert_eq!(d.total(), 9, "every drop counted: {d:?}");
    while link.step() {}
    assert_eq!(
        link.a.poll_event(),
        Some(ChannelEvent::Reset(ID)),
        "the peer is told"
    );
    assert_eq!(link.a.send(ID, vec![1]), Err(ChannelError::Reset));
}

#[test]
fn close_is_seen_after_the_last_message_and_both_sides_forget_the_channel() {
    let mut link = Link::new(config(), LOSSY, 6);
    link.a.send(ID, b"last words".to_vec()).unwrap();
    link.a.close(ID).unwrap();
    assert_eq!(link.a.send(ID, vec![1]), Err(ChannelError::Closed));
    let mut closed = false;
    for _ in 0..10_000 {
        link.step();
        while let Some(e) = link.b.poll_event() {
            closed |= e == ChannelEvent::Closed(ID);
        }
        if let Ok(Some(m)) = link.b.recv(ID) {
            assert_eq!(m, b"last words");
        }
        if closed {
            break;
        }
    }
    assert!(closed);
    link.b.close(ID).unwrap();
    while link.step() {}
    assert_eq!(link.a.ids().count(), 0, "A forgot the channel");
    assert_eq!(link.b.ids().count(), 0, "B forgot the channel");
    assert_eq!(link.b.budget().used(), 0, "and gave its memory back");
}

#[test]
fn the_channel_limit_per_peer_holds() {
    let config = ChannelConfig {
        max_channels: 2,
        ..config()
    };
    let mut a = PeerChannels::new(config, Instant::now());
    a.open(1).unwrap();
    a.open(2).unwrap();
    assert_eq!(a.open(3), Err(ChannelError::TooManyChannels { max: 2 }));
}

#[test]
fn configuration_limits_name_the_field() {
    let bad = ChannelConfig {
        reassembly_limit: 1000,
        ..config()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("channels.reassembly_limit = \"1000\"")
    );
    let bad = ChannelConfig {
        window: 4,
        ..config()
    };
    assert_eq!(bad.validate().unwrap_err().field(), "channels.window");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Fragments delivered in any order, any number of times, reassemble into exactly the messages
    /// sent.
    #[test]
    fn reassembly_under_any_order_and_duplication_yields_the_input(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..20),
        order_seed in any::<u64>(),
        duplicate_every in 2usize..6,
    ) {
        let config = ChannelConfig { max_fragment: 64, window: 1024, ..ChannelConfig::default() };
        let now = Instant::now();
        let mut a = PeerChannels::new(config, now);
        let mut b = PeerChannels::new(config, now);
        a.open(ID).unwrap();
        for m in &messages {
            a.send(ID, m.clone()).unwrap();
        }
        // Grant A credit for everything, as B's first acknowledgement would.
        let mut grant = vec![0u8; HEADER_LEN];
        Header { window: 1024, ..Header::new(Kind::Ack, ID) }.encode(&mut grant).unwrap();
        prop_assert!(a.handle_packet(now, &grant).is_ok());
        let mut packets = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Some(n) = a.poll_transmit(now, &mut buf) {
            packets.push(buf[..n].to_vec());
        }
        // The OPEN marker makes the channel; every other fragment may come in any order after it.
        let open = packets.remove(0);
        prop_assert!(b.handle_packet(now, &open).is_ok());
        let mut rng = Rng(order_seed);
        let extra: Vec<Vec<u8>> = packets.iter().step_by(duplicate_every).cloned().collect();
        packets.extend(extra);
        for i in (1..packets.len()).rev() {
            packets.swap(i, rng.next() as usize % (i + 1));
        }
        for p in &packets {
            let _ = b.handle_packet(now, p);
        }
        let mut got = Vec::new();
        while let Ok(Some(m)) = b.recv(ID) {
            got.push(m);
        }
        prop_assert_eq!(got, messages);
        prop_assert!(b.budget().used() <= b.budget().limit());
    }

    /// Whatever the loss, reordering and duplication, the sender never sends past the credit the
    /// receiver advertised, and the receiver never refuses a fragment as out of window.
    #[test]
    fn the_credit_window_is_never_exceeded(
        seed in any::<u64>(),
        loss in 0.0f64..0.3,
        reorder in 0.0f64..0.5,
        duplicate in 0.0f64..0.1,
        sizes in proptest::collection::vec(0usize..5000, 1..40),
    ) {
        let config = ChannelConfig { window: 32, ..config() };
        let mut link = Link::new(config, Impairment { loss, reorder, duplicate }, seed);
        let messages: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| vec![i as u8; *n]).collect();
        let got = transfer(&mut link, &messages);
        prop_assert!(got == messages);
        prop_assert!(link.credit_respected);
        prop_assert_eq!(link.b.drops().get(ChannelDrop::OutOfWindow), 0);
        let _ = (FIRST, LAST);
    }
}
