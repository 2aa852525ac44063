//! Rows 23-35 of the hostile-input table: transport messages, the replay window and inner packets.

use super::*;

pub(super) fn case_23() {
    let mut p = Pair::connected();
    let t0 = p.t0;
    let wire = p.seal_from_a(t0, &marked_v4());
    let index = index_at(&wire, 4);
    for bogus in [index.wrapping_add(1), 0, u32::MAX] {
        expect_drop(
            &mut p.b,
            t0,
            A_ADDR,
            &patch(&wire, 4, &bogus.to_le_bytes()),
            DropReason::UnknownReceiverIndex,
        );
    }
    // An index that names A's handshake in flight, not a keypair, is no transport index either.
    let t1 = t0 + secs(6.0);
    let init = p.initiation(t1);
    let to_a = seal(&mut p.b, t1, &udp("10.0.0.2:5000", "10.0.0.1:4000", MARKER));
    expect_drop(
        &mut p.a,
        t1,
        B_ADDR,
        &patch(&to_a, 4, &init[4..8]),
        DropReason::UnknownReceiverIndex,
    );
}

pub(super) fn case_24() {
    let mut p = Pair::connected();
    let t0 = p.t0;
    let fresh = p.seal_from_a(t0, &marked_v4());
    let stale = p.seal_from_a(t0, &marked_v4());
    assert_delivers(&mut p.b, t0 + secs(179.9), A_ADDR, &fresh, &marked_v4());
    expect_drop(
        &mut p.b,
        t0 + secs(180.0),
        A_ADDR,
        &stale,
        DropReason::KeypairExpired,
    );
    expect_drop(
        &mut p.b,
        t0 + secs(500.0),
        A_ADDR,
        &stale,
        DropReason::KeypairExpired,
    );
}

pub(super) fn case_25() {
    let mut p = Pair::connected();
    let now = p.t0;
    let wire = p.seal_from_a(now, &marked_v4());
    // Counter bits (byte 9: counter 1 becomes 257; byte 15: +2^56), ciphertext bits, tag bits.
    for at in [9, 15, 16, 40, wire.len() - 16, wire.len() - 1] {
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &flip(&wire, at),
            DropReason::TransportDecryptFailed,
        );
    }
    // The window did not move: the genuine packet (counter 1) is still new.
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
}

pub(super) fn case_26() {
    let mut p = Pair::connected();
    let now = p.t0;
    let wire = p.seal_from_a(now, &marked_v4());
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
    expect_drop(&mut p.b, now, A_ADDR, &wire, DropReason::Replayed);
}

pub(super) fn case_27() {
    let mut p = Pair::connected();
    let now = p.t0;
    // The keepalive took counter 0; A's packets count from 1.
    let mut kept = Vec::new();
    let mut last = Vec::new();
    for counter in 1..=8201u64 {
        let wire = p.seal_from_a(now, &marked_v4());
        assert_eq!(u64::from_le_bytes(wire[8..16].try_into().unwrap()), counter);
        if [1, 72, 73].contains(&counter) {
            kept.push(wire);
        } else {
            last = wire;
        }
    }
    assert_delivers(&mut p.b, now, A_ADDR, &last, &marked_v4());
    // 8201 - 73 = 8128 behind: the oldest the window holds. 72 and 1 are older.
    expect_drop(&mut p.b, now, A_ADDR, &kept[0], DropReason::Replayed);
    expect_drop(&mut p.b, now, A_ADDR, &kept[1], DropReason::Replayed);
    assert_delivers(&mut p.b, now, A_ADDR, &kept[2], &marked_v4());
}

pub(super) fn case_28() {
    let (mut p, forger) = forged_session();
    let now = p.t0;
    let packet = marked_v4();
    for counter in [REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES + 1, u64::MAX] {
        let authentic = forger.seal(counter, &packet);
        expect_drop(&mut p.b, now, A_ADDR, &authentic, DropReason::CounterLimit);
    }
    // The last usable counter is taken; then the keypair is spent, even for counters inside the
    // window (kernel `decrypt_packet`).
    let last = forger.seal(REJECT_AFTER_MESSAGES - 1, &packet);
    assert_delivers(&mut p.b, now, A_ADDR, &last, &packet);
    let inside = forger.seal(REJECT_AFTER_MESSAGES - 2, &packet);
    expect_drop(&mut p.b, now, A_ADDR, &inside, DropReason::CounterLimit);
}

pub(super) fn case_29() {
    let mut p = Pair::connected();
    let now = p.t0;
    let older = p.seal_from_a(now, &marked_v4());
    let newer = p.seal_from_a(now, &marked_v4());
    assert_delivers(&mut p.b, now, A_ADDR, &newer, &marked_v4());
    let counter = u64::from_le_bytes(newer[8..16].try_into().unwrap());
    let forged = patch(&newer, 8, &(counter + 1_000_000_000).to_le_bytes());
    expect_drop(
        &mut p.b,
        now,
        A_ADDR,
        &forged,
        DropReason::TransportDecryptFailed,
    );
    // Had the window jumped to the forged counter, `older` would now be far outside it.
    assert_delivers(&mut p.b, now, A_ADDR, &older, &marked_v4());
}

pub(super) fn case_30() {
    let mut p = Pair::connected();
    let now = p.t0 + secs(1.0);
    let before = p.b.peer_stats(PEER).unwrap();
    // Accepted outcome: consumed, counted, nothing delivered; it is authenticated, so it roams.
    for (from, round) in [(A_ADDR, 1u64), (NEW_ADDR, 2)] {
        p.a.send_keepalive(PEER);
        let keepalive = one_transmit(&mut p.a, now);
        assert_eq!(keepalive.len(), 32);
        assert_eq!(recv(&mut p.b, now, from, &keepalive).0, Outcome::Consumed);
        let stats = p.b.peer_stats(PEER).unwrap();
        assert_eq!(stats.rx_keepalives, before.rx_keepalives + round);
        assert_eq!(stats.rx_packets, before.rx_packets + round);
        assert_eq!(stats.endpoint, Some(from));
    }
    assert_eq!(
        events(&mut p.b),
        vec![Event::EndpointChanged {
            peer: PEER,
            old: Some(A_ADDR),
            new: NEW_ADDR
        }]
    );
    assert_quiet(&mut p.b, now);
}

pub(super) fn case_31() {
    let (mut p, forger) = forged_session();
    let now = p.t0;
    let mut counter = 1;
    for version in [0u8, 1, 5, 7, 15] {
        let mut inner = marked_v4();
        inner[0] = (version << 4) | 5;
        let authentic = forger.seal(counter, &inner);
        counter += 1;
        expect_dishonest(&mut p.b, now, &authentic, DropReason::InvalidInnerPacket);
    }
    // The same bytes as IPv4 go through: the drops above were for the version alone.
    assert_delivers(
        &mut p.b,
        now,
        A_ADDR,
        &forger.seal(counter, &marked_v4()),
        &marked_v4(),
    );
}

pub(super) fn case_32() {
    let (mut p, forger) = forged_session();
    let now = p.t0;
    let v4 = marked_v4();
    let v6 = udp("[fd00::1]:4000", "[fd00::2]:5000", MARKER);
    let tot_len = |n: usize| patch(&v4, 2, &(n as u16).to_be_bytes());
    let payload_len = |n: usize| patch(&v6, 4, &(n as u16).to_be_bytes());
    let dishonest = [
        tot_len(19),
        tot_len(0),
        tot_len(v4.len() + 1),
        tot_len(0xffff),
        v4[..19].to_vec(),
        payload_len(v6.len() - 40 + 1),
        payload_len(0xffff),
        v6[..39].to_vec(),
    ];
    let mut counter = 1;
    for inner in &dishonest {
        let authentic = forger.seal(counter, inner);
        counter += 1;
        expect_dishonest(&mut p.b, now, &authentic, DropReason::InvalidInnerPacket);
    }
    // Otherwise the padding is trimmed to the header's length, whatever padding was added.
    for (inner, pad) in [(&v4, 4), (&v4, 100), (&v6, 1)] {
        let mut padded = inner.clone();
        padded.resize(inner.len() + pad, 0);
        assert_delivers(&mut p.b, now, A_ADDR, &forger.seal(counter, &padded), inner);
        counter += 1;
    }
}

pub(super) fn case_33() {
    let mut p = Pair::connected();
    let now = p.t0;
    for (src, dst) in [
        ("10.9.9.9:4000", "10.0.0.2:5000"),
        ("10.0.0.2:4000", "10.0.0.2:5000"),
        ("[fd00::9]:4000", "[fd00::2]:5000"),
    ] {
        let wire = p.seal_from_a(now, &udp(src, dst, MARKER));
        expect_dishonest(&mut p.b, now, &wire, DropReason::SourceNotAllowed);
    }
}

pub(super) fn case_34() {
    let mut p = Pair::connected();
    let now = p.t0;
    let first = p.seal_from_a(now, &marked_v4());
    let second = p.seal_from_a(now, &marked_v4());
    assert_delivers(&mut p.b, now, NEW_ADDR, &first, &marked_v4());
    assert_eq!(
        events(&mut p.b),
        vec![Event::EndpointChanged {
            peer: PEER,
            old: Some(A_ADDR),
            new: NEW_ADDR
        }]
    );
    assert_eq!(p.b.peer_stats(PEER).unwrap().endpoint, Some(NEW_ADDR));
    // Forged, replayed or unauthenticated traffic from yet another address moves nothing.
    let elsewhere = sock([203, 0, 113, 9], 1234);
    expect_drop(
        &mut p.b,
        now,
        elsewhere,
        &flip(&second, 30),
        DropReason::TransportDecryptFailed,
    );
    expect_drop(&mut p.b, now, elsewhere, &first, DropReason::Replayed);
    assert_eq!(p.b.peer_stats(PEER).unwrap().endpoint, Some(NEW_ADDR));
    // B now answers at the new address.
    let mut buf = vec![0u8; 2048];
    let mut pkt =
        pnet_mesh::PacketBuf::copy_from(&mut buf, &udp("10.0.0.2:5000", "10.0.0.1:4000", b"back"))
            .unwrap();
    let sent = p.b.send_packet(now, &mut pkt).unwrap().unwrap();
    assert_eq!(sent.to, NEW_ADDR);
}

pub(super) fn case_35() {
    let mut p = Pair::new();
    let t0 = p.t0;
    let init = p.initiation(t0);
    p.b.set_under_load(true);
    // Every source gets one cookie reply, smaller than the initiation, and B keeps no state at all:
    // the core has no handshake queue to fill, and cookies are stateless.
    for i in 0..1000u32 {
        let from = sock(
            [203, 0, (i / 250) as u8, (i % 250) as u8 + 1],
            1024 + i as u16,
        );
        let reply = expect_cookie_reply(&mut p.b, t0 + i * MS, from, &init);
        assert!(reply.len() < init.len());
    }
    assert_eq!(p.b.indices_in_use(), 0);
    assert_eq!(p.b.drop_counters().total(), 0);
    // Not under load, the same flood is one handshake and then stale copies: one slot, not 1000.
    p.b.set_under_load(false);
    let tb = t0 + secs(2.0);
    assert_eq!(reply_len(recv(&mut p.b, tb, A_ADDR, &init).0), 92);
    let slots = p.b.indices_in_use();
    for i in 0..200u32 {
        let from = sock(
            [203, 1, (i / 250) as u8, (i % 250) as u8 + 1],
            1024 + i as u16,
        );
        expect_drop(&mut p.b, tb, from, &init, DropReason::StaleTimestamp);
    }
    assert_eq!((slots, p.b.indices_in_use()), (1, 1));
}
