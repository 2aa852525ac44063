//! Rows 1-22 of the hostile-input table: framing, MACs, cookies and handshakes.

use super::*;

pub(super) fn case_01() {
    let mut p = Pair::connected();
    let now = p.t0;
    for bytes in [&[][..], &[1], &[4, 0], &[4, 0, 0], &[2, 0, 0]] {
        expect_drop(&mut p.a, now, B_ADDR, bytes, DropReason::TooShort);
        expect_drop(&mut p.b, now, A_ADDR, bytes, DropReason::TooShort);
    }
}

pub(super) fn case_02() {
    let mut p = Pair::connected();
    let now = p.t0;
    let wire = p.seal_from_a(now, &marked_v4());
    for len in 4..32 {
        expect_drop(&mut p.b, now, A_ADDR, &wire[..len], DropReason::BadLength);
    }
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
}

pub(super) fn case_03() {
    let mut p = Pair::connected();
    let now = p.t0;
    for kind in [0u8, 5, 6, 127, 128, 255] {
        for len in [4, 32, 64, 92, 148] {
            let mut bytes = vec![0u8; len];
            bytes[0] = kind;
            expect_drop(&mut p.a, now, B_ADDR, &bytes, DropReason::UnknownType);
            expect_drop(&mut p.b, now, A_ADDR, &bytes, DropReason::UnknownType);
        }
    }
}

pub(super) fn case_04() {
    let InFlight {
        mut p,
        init,
        response,
        cookie,
    } = in_flight();
    let now = p.t0;
    for at in 1..4 {
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &patch(&init, at, &[1]),
            DropReason::ReservedNonZero,
        );
        for bytes in [&response, &cookie] {
            expect_drop(
                &mut p.a,
                now,
                B_ADDR,
                &patch(bytes, at, &[0x80]),
                DropReason::ReservedNonZero,
            );
        }
    }
    assert_eq!(recv(&mut p.a, now, B_ADDR, &response).0, Outcome::Consumed);
    for outcome in pump(&mut p.a, A_ADDR, &mut p.b, now) {
        assert_eq!(outcome, Outcome::Consumed);
    }
    events(&mut p.b);
    let wire = p.seal_from_a(now, &marked_v4());
    for at in 1..4 {
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &patch(&wire, at, &[4]),
            DropReason::ReservedNonZero,
        );
    }
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
}

pub(super) fn case_05() {
    let InFlight {
        mut p,
        init,
        response,
        cookie,
    } = in_flight();
    let now = p.t0;
    let resized = |bytes: &[u8], len: usize| {
        let mut out = bytes.to_vec();
        out.resize(len, 0);
        out
    };
    for len in [147, 149, 150, 296] {
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &resized(&init, len),
            DropReason::BadLength,
        );
    }
    for len in [32, 91, 93, 148] {
        expect_drop(
            &mut p.a,
            now,
            B_ADDR,
            &resized(&response, len),
            DropReason::BadLength,
        );
    }
    for len in [32, 63, 65, 92] {
        expect_drop(
            &mut p.a,
            now,
            B_ADDR,
            &resized(&cookie, len),
            DropReason::BadLength,
        );
    }
    // The exact sizes still work: nothing was consumed.
    assert_eq!(recv(&mut p.a, now, B_ADDR, &cookie).0, Outcome::Consumed);
    assert_eq!(recv(&mut p.a, now, B_ADDR, &response).0, Outcome::Consumed);
}

pub(super) fn case_06() {
    let mut p = Pair::connected();
    let now = p.t0;
    // A full-MTU packet is padded only up to the MTU (1420, not a multiple of 16), as wireguard-go:
    // the receiver must take it.
    let mut payload = MARKER.to_vec();
    payload.resize(1420 - 28, b'.');
    let big = udp("10.0.0.1:4000", "10.0.0.2:5000", &payload);
    let wire = p.seal_from_a(now, &big);
    assert_eq!(wire.len(), 16 + 1420 + 16);
    assert_ne!((wire.len() - 16) % 16, 0);
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &big);
    // A body one byte longer or shorter is not refused for its size: the AEAD refuses it.
    let wire = p.seal_from_a(now, &marked_v4());
    let mut longer = wire.clone();
    longer.push(0);
    for bytes in [longer, wire[..wire.len() - 1].to_vec()] {
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &bytes,
            DropReason::TransportDecryptFailed,
        );
    }
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
}

pub(super) fn case_08() {
    let InFlight {
        mut p,
        init,
        response,
        ..
    } = in_flight();
    let now = p.t0;
    let other = key(99).public_key();
    for under_load in [false, true] {
        p.a.set_under_load(under_load);
        p.b.set_under_load(under_load);
        // No cookie reply even under load: mac1 is checked first, before any DH.
        for at in [0, 9, 15] {
            expect_drop(
                &mut p.b,
                now,
                A_ADDR,
                &flip(&init, INIT_MAC1 + at),
                DropReason::Mac1Invalid,
            );
            expect_drop(
                &mut p.a,
                now,
                B_ADDR,
                &flip(&response, RESP_MAC1 + at),
                DropReason::Mac1Invalid,
            );
        }
        let mut keyed = init.clone();
        set_mac1(&mut keyed, INIT_MAC1, &other);
        expect_drop(&mut p.b, now, A_ADDR, &keyed, DropReason::Mac1Invalid);
        let mut keyed = response.clone();
        set_mac1(&mut keyed, RESP_MAC1, &other);
        expect_drop(&mut p.a, now, B_ADDR, &keyed, DropReason::Mac1Invalid);
    }
    // An initiation from a node that holds the wrong key for B.
    let mut wrong = Pair::with(Options {
        a_thinks_b_is: Some(other),
        ..Options::default()
    });
    let init = wrong.initiation(now);
    expect_drop(&mut wrong.b, now, A_ADDR, &init, DropReason::Mac1Invalid);
}

pub(super) fn case_09() {
    let InFlight {
        mut p,
        init,
        response,
        ..
    } = in_flight();
    let now = p.t0;
    // Accepted outcome: mac2 is ignored when not under load.
    let mut b2 = endpoint(
        &p.b_key,
        peer_a(p.a_key.public_key(), None),
        now,
        wall(),
        33,
    );
    let garbage = patch(&init, INIT_MAC2, &[0xEE; 16]);
    assert_eq!(reply_len(recv(&mut b2, now, A_ADDR, &garbage).0), 92);
    let garbage = patch(&response, RESP_MAC2, &[0xEE; 16]);
    assert_eq!(recv(&mut p.a, now, B_ADDR, &garbage).0, Outcome::Consumed);
    assert!(p.a.has_session(now, PEER));
}

pub(super) fn case_10() {
    let InFlight {
        mut p,
        init,
        response,
        cookie,
    } = in_flight();
    let t0 = p.t0;
    p.a.set_under_load(true);
    p.b.set_under_load(true);
    let mut random = [0u8; 16];
    SeededRng::new(10).fill_bytes(&mut random);
    for mac2 in [[0; 16], random] {
        expect_cookie_reply(&mut p.b, t0, A_ADDR, &patch(&init, INIT_MAC2, &mac2));
        expect_cookie_reply(&mut p.a, t0, B_ADDR, &patch(&response, RESP_MAC2, &mac2));
    }
    // A valid cookie for A_ADDR, used from another port or another IP.
    p.a.set_under_load(false);
    assert_eq!(recv(&mut p.a, t0, B_ADDR, &cookie).0, Outcome::Consumed);
    let t1 = t0 + Duration::from_secs(6);
    p.a.handle_timeout(t1);
    let with_cookie = one_transmit(&mut p.a, t1);
    for from in [sock([192, 0, 2, 1], 1), sock([192, 0, 2, 3], 51820)] {
        expect_cookie_reply(&mut p.b, t1, from, &with_cookie);
    }
    assert_eq!(p.b.drop_counters().total(), 0);
}

pub(super) fn case_11() {
    let mut p = Pair::new();
    let t0 = p.t0;
    let second_source = sock([192, 0, 2, 77], 51820);
    p.b.set_under_load(true);
    // A earns a cookie for A_ADDR, and later one for `second_source`.
    let init1 = p.initiation(t0);
    let c1 = expect_cookie_reply(&mut p.b, t0, A_ADDR, &init1);
    assert_eq!(recv(&mut p.a, t0, B_ADDR, &c1).0, Outcome::Consumed);
    let retransmit = |p: &mut Pair, at: f64| {
        let t = t0 + secs(at);
        p.a.handle_timeout(t);
        one_transmit(&mut p.a, t)
    };
    let for_a_addr = retransmit(&mut p, 6.0);
    let init3 = retransmit(&mut p, 12.0);
    let c2 = expect_cookie_reply(&mut p.b, t0 + secs(12.0), second_source, &init3);
    assert_eq!(
        recv(&mut p.a, t0 + secs(12.0), B_ADDR, &c2).0,
        Outcome::Consumed
    );
    let for_second = retransmit(&mut p, 18.0);

    // Burst of 5 per source: the first is answered, four die on their stale timestamp, the sixth is
    // over the bucket.
    let tb = t0 + secs(20.0);
    assert_eq!(reply_len(recv(&mut p.b, tb, A_ADDR, &for_a_addr).0), 92);
    for _ in 0..4 {
        expect_drop(
            &mut p.b,
            tb,
            A_ADDR,
            &for_a_addr,
            DropReason::StaleTimestamp,
        );
    }
    expect_drop(&mut p.b, tb, A_ADDR, &for_a_addr, DropReason::RateLimited);
    expect_drop(
        &mut p.b,
        tb + 20 * MS,
        A_ADDR,
        &for_a_addr,
        DropReason::RateLimited,
    );
    // Another source has its own bucket.
    assert_eq!(
        reply_len(recv(&mut p.b, tb + 20 * MS, second_source, &for_second).0),
        92
    );
}

pub(super) fn case_12() {
    let mut p = Pair::new();
    let now = p.t0;
    let stranger = key(3);
    let mut c = endpoint(
        &stranger,
        peer_b(p.b_key.public_key(), None),
        now,
        wall(),
        13,
    );
    c.connect(now, PEER).unwrap();
    let init = one_transmit(&mut c, now);
    expect_drop(&mut p.b, now, A_ADDR, &init, DropReason::UnknownPeer);
}

pub(super) fn case_13() {
    let mut p = Pair::new();
    let now = p.t0;
    let init = p.initiation(now);
    let b_public = p.b_key.public_key();
    // encrypted static is bytes 40..88 (ciphertext then tag), encrypted timestamp 88..116.
    for at in [40, 60, 87, 88, 100, 115] {
        let mut bad = flip(&init, at);
        set_mac1(&mut bad, INIT_MAC1, &b_public);
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &bad,
            DropReason::HandshakeDecryptFailed,
        );
    }
    assert_eq!(reply_len(recv(&mut p.b, now, A_ADDR, &init).0), 92);
}

pub(super) fn case_14() {
    let InFlight {
        mut p,
        init,
        response,
        ..
    } = in_flight();
    let now = p.t0;
    let (a_public, b_public) = (p.a_key.public_key(), p.b_key.public_key());
    for base64 in LOW_ORDER {
        let point = low_order(base64);
        // Ephemeral of an initiation: bytes 8..40.
        let mut bad = patch(&init, 8, point.as_bytes());
        set_mac1(&mut bad, INIT_MAC1, &b_public);
        expect_drop(&mut p.b, now, A_ADDR, &bad, DropReason::LowOrderKey);
        // Ephemeral of a response: bytes 12..44.
        let mut bad = patch(&response, 12, point.as_bytes());
        set_mac1(&mut bad, RESP_MAC1, &a_public);
        expect_drop(&mut p.a, now, B_ADDR, &bad, DropReason::LowOrderKey);
        // A low-order peer static is refused at configuration, naming the field and the value.
        let err = EndpointConfig::builder(key(1))
            .peer(PeerConfig::new(point))
            .build()
            .unwrap_err();
        assert_eq!((err.field(), err.value()), ("peers[0].public_key", base64));
    }
    assert_eq!(recv(&mut p.a, now, B_ADDR, &response).0, Outcome::Consumed);
}

pub(super) fn case_15() {
    let mut p = Pair::new();
    let t0 = p.t0;
    let init = p.initiation(t0);
    assert_eq!(reply_len(recv(&mut p.b, t0, A_ADDR, &init).0), 92);
    let later = t0 + secs(1.0);
    // No response and no endpoint change, from the old address or a new one.
    for from in [A_ADDR, NEW_ADDR] {
        expect_drop(&mut p.b, later, from, &init, DropReason::StaleTimestamp);
    }
    assert_eq!(p.b.peer_stats(PEER).unwrap().endpoint, Some(A_ADDR));
}

pub(super) fn case_16() {
    let mut p = Pair::new();
    let t0 = p.t0;
    let init = p.initiation(t0);
    assert_eq!(reply_len(recv(&mut p.b, t0, A_ADDR, &init).0), 92);
    // A restarts with its clock an hour back, then with the same clock (an equal timestamp).
    for (wall_clock, seed) in [(wall() - Duration::from_secs(3600), 41), (wall(), 42)] {
        let mut a2 = endpoint(
            &p.a_key,
            peer_b(p.b_key.public_key(), None),
            t0,
            wall_clock,
            seed,
        );
        a2.connect(t0, PEER).unwrap();
        let old = one_transmit(&mut a2, t0);
        assert_ne!(old, init, "a fresh initiation");
        expect_drop(
            &mut p.b,
            t0 + secs(1.0),
            A_ADDR,
            &old,
            DropReason::StaleTimestamp,
        );
    }
    assert_eq!(p.b.drop_counters().get(DropReason::StaleTimestamp), 2);
}

pub(super) fn case_17() {
    let mut p = Pair::new();
    let t0 = p.t0;
    let first = p.initiation(t0);
    let second = p.initiation(t0 + secs(6.0));
    let tb = t0 + secs(10.0);
    assert_eq!(reply_len(recv(&mut p.b, tb, A_ADDR, &first).0), 92);
    expect_drop(
        &mut p.b,
        tb + 10 * MS,
        A_ADDR,
        &second,
        DropReason::InitiationFlood,
    );
    expect_drop(
        &mut p.b,
        tb + 19 * MS,
        A_ADDR,
        &second,
        DropReason::InitiationFlood,
    );
    // The drops consumed nothing: 20 ms after the first, the second is taken.
    assert_eq!(
        reply_len(recv(&mut p.b, tb + 20 * MS, A_ADDR, &second).0),
        92
    );
}

pub(super) fn case_18() {
    let InFlight {
        mut p, response, ..
    } = in_flight();
    let t0 = p.t0;
    let a_public = p.a_key.public_key();
    // Receiver index (bytes 8..12) naming nothing of A's.
    let receiver = index_at(&response, 8);
    for bogus in [receiver.wrapping_add(1), 0, u32::MAX] {
        let mut bad = patch(&response, 8, &bogus.to_le_bytes());
        set_mac1(&mut bad, RESP_MAC1, &a_public);
        expect_drop(&mut p.a, t0, B_ADDR, &bad, DropReason::UnknownReceiverIndex);
    }
    assert_eq!(recv(&mut p.a, t0, B_ADDR, &response).0, Outcome::Consumed);
    events(&mut p.a);
    transmits(&mut p.a, t0);
    // A duplicate: no second session.
    expect_drop(
        &mut p.a,
        t0,
        B_ADDR,
        &response,
        DropReason::UnexpectedResponse,
    );
    // And while a new initiation is in flight, the old response is still not an answer to it.
    let t1 = t0 + secs(6.0);
    p.a.connect(t1, PEER).unwrap();
    assert_eq!(one_transmit(&mut p.a, t1)[0], 1);
    initiated(&mut p.a, 0);
    expect_drop(
        &mut p.a,
        t1,
        B_ADDR,
        &response,
        DropReason::UnexpectedResponse,
    );
}

pub(super) fn case_19() {
    let mut p = Pair::with(Options {
        a_psk: Some([1; 32]),
        b_psk: Some([2; 32]),
        ..Options::default()
    });
    let now = p.t0;
    let init = p.initiation(now);
    let Outcome::Reply(_, response) = recv(&mut p.b, now, A_ADDR, &init).0 else {
        panic!("an initiation with a wrong PSK still gets a response");
    };
    expect_drop(
        &mut p.a,
        now,
        B_ADDR,
        &response,
        DropReason::HandshakeDecryptFailed,
    );
    let mut low = patch(&response, 12, low_order(LOW_ORDER[2]).as_bytes());
    set_mac1(&mut low, RESP_MAC1, &p.a_key.public_key());
    expect_drop(&mut p.a, now, B_ADDR, &low, DropReason::LowOrderKey);
    assert!(!p.a.has_session(now, PEER));
}

pub(super) fn case_20() {
    let InFlight { mut p, cookie, .. } = in_flight();
    let t0 = p.t0;
    // Unknown index (bytes 4..8); a flipped nonce, ciphertext or tag bit.
    let index = index_at(&cookie, 4);
    expect_drop(
        &mut p.a,
        t0,
        B_ADDR,
        &patch(&cookie, 4, &index.wrapping_add(1).to_le_bytes()),
        DropReason::UnknownReceiverIndex,
    );
    for at in [8, 31, 32, 50, 63] {
        expect_drop(
            &mut p.a,
            t0,
            B_ADDR,
            &flip(&cookie, at),
            DropReason::CookieReplyDecryptFailed,
        );
    }
    // A has retransmitted since, under a new index: the old reply names an index A has let go, and
    // readdressed to the new one its AAD is not A's last mac1.
    let t1 = t0 + secs(6.0);
    p.a.handle_timeout(t1);
    let second = one_transmit(&mut p.a, t1);
    initiated(&mut p.a, 1);
    assert_eq!(second[INIT_MAC2..], [0; 16]);
    expect_drop(
        &mut p.a,
        t1,
        B_ADDR,
        &cookie,
        DropReason::UnknownReceiverIndex,
    );
    let readdressed = patch(&cookie, 4, &second[4..8]);
    expect_drop(
        &mut p.a,
        t1,
        B_ADDR,
        &readdressed,
        DropReason::CookieReplyDecryptFailed,
    );
    // Cookie state unchanged: the next initiation still has no mac2.
    let t2 = t0 + secs(12.0);
    p.a.handle_timeout(t2);
    assert_eq!(one_transmit(&mut p.a, t2)[INIT_MAC2..], [0; 16]);
}

pub(super) fn case_21() {
    let InFlight { mut p, cookie, .. } = in_flight();
    let t0 = p.t0;
    assert_eq!(recv(&mut p.a, t0, B_ADDR, &cookie).0, Outcome::Consumed);
    expect_drop(
        &mut p.a,
        t0,
        B_ADDR,
        &cookie,
        DropReason::CookieReplyUnexpected,
    );
}

pub(super) fn case_22() {
    let InFlight {
        mut p,
        init,
        cookie,
        ..
    } = in_flight();
    let t0 = p.t0;
    let before = snapshot(&p.a, t0);
    // From any address: a cookie reply is not authenticated traffic, so it does not roam either.
    assert_eq!(recv(&mut p.a, t0, NEW_ADDR, &cookie).0, Outcome::Consumed);
    assert_quiet(&mut p.a, t0);
    assert_eq!(
        snapshot(&p.a, t0),
        before,
        "no retransmit brought forward, no endpoint change"
    );
    let t1 = t0 + secs(6.0);
    p.a.handle_timeout(t1);
    let next = one_transmit(&mut p.a, t1);
    assert_ne!(
        next[INIT_MAC2..],
        [0; 16],
        "the cookie is used on the scheduled retransmit"
    );
    assert_ne!(next[..INIT_MAC1], init[..INIT_MAC1], "a new initiation");
}
