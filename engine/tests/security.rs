//! Security regressions, named as in MISSION.md part 10 and asserting what its closing table says.
//! Public API only; virtual time and seeded randomness, so every run is the same.

mod common;

use common::*;
use pnet_mesh::crypto::rng::{Rng, SeededRng};
use pnet_mesh::proto::replay::{BitmapError, ReplayWindow, WINDOW_SIZE};
use pnet_mesh::{DropReason, Event, PacketBuf, Role, ip};

fn psk_options(a: [u8; 32], b: [u8; 32]) -> Options {
    Options {
        a_psk: Some(a),
        b_psk: Some(b),
        ..Options::default()
    }
}

/// Hands `packet` to A's `send_packet` while A has no session: it must be held, not sent.
fn stage_at_a(p: &mut Pair, now: std::time::Instant, packet: &[u8]) {
    let mut buf = vec![0u8; PacketBuf::HEADROOM + packet.len() + PacketBuf::TAILROOM];
    let mut pkt = PacketBuf::copy_from(&mut buf, packet).unwrap();
    assert_eq!(
        p.a.send_packet(now, &mut pkt),
        Ok(None),
        "held for the handshake"
    );
}

#[test]
fn valid_peers_complete_noise_ikpsk2_handshake_and_exchange_payloads_over_derived_transports() {
    let mut p = Pair::with(psk_options([7; 32], [7; 32]));
    let now = p.t0;
    let a_to_b = [
        udp("10.0.0.1:4000", "10.0.0.2:5000", b"a to b over ipv4"),
        udp("[fd00::1]:4000", "[fd00::2]:5000", b"a to b over ipv6"),
    ];
    for packet in &a_to_b {
        stage_at_a(&mut p, now, packet);
    }

    // Initiation (148 bytes, type 1) → response (92 bytes, type 2).
    let init = one_transmit(&mut p.a, now);
    assert_eq!((init.len(), &init[..4]), (148, &[1, 0, 0, 0][..]));
    let Outcome::Reply(to, response) = recv(&mut p.b, now, A_ADDR, &init).0 else {
        panic!("B must answer a valid initiation");
    };
    assert_eq!(
        (to, response.len(), &response[..4]),
        (A_ADDR, 92, &[2, 0, 0, 0][..])
    );
    assert_eq!(
        events(&mut p.b),
        vec![],
        "the responder waits for confirmation"
    );
    assert!(
        !p.b.has_session(now, PEER),
        "B may not send before A confirms"
    );
    assert_eq!(recv(&mut p.a, now, B_ADDR, &response).0, Outcome::Consumed);
    assert_eq!(
        events(&mut p.a),
        vec![
            Event::HandshakeInitiated {
                peer: PEER,
                attempt: 0
            },
            Event::HandshakeCompleted {
                peer: PEER,
                role: Role::Initiator
            },
            Event::PeerUp { peer: PEER },
        ]
    );
    assert!(p.a.has_session(now, PEER));

    // The staged packets leave sealed under the derived keys and arrive intact.
    let sent = transmits(&mut p.a, now);
    assert_eq!(
        sent.len(),
        a_to_b.len(),
        "both staged packets, no keepalive"
    );
    let mut a_tx_bytes = init.len();
    for ((to, wire), packet) in sent.iter().zip(&a_to_b) {
        assert_eq!(*to, B_ADDR);
        assert_eq!(wire.len(), 16 + packet.len().next_multiple_of(16) + 16);
        assert!(!contains(wire, &packet[packet.len() - 8..]), "ciphertext");
        assert_eq!(
            recv(&mut p.b, now, A_ADDR, wire).0,
            Outcome::Deliver(PEER, packet.clone())
        );
        a_tx_bytes += wire.len();
    }
    assert_eq!(
        events(&mut p.b),
        vec![
            Event::HandshakeCompleted {
                peer: PEER,
                role: Role::Responder
            },
            Event::PeerUp { peer: PEER },
        ]
    );
    assert!(p.b.has_session(now, PEER));

    // And back, both families.
    let b_to_a = [
        udp("10.0.0.2:5000", "10.0.0.1:4000", b"b to a over ipv4"),
        udp("[fd00::2]:5000", "[fd00::1]:4000", b"b to a over ipv6"),
    ];
    let mut b_tx_bytes = response.len();
    for packet in &b_to_a {
        let wire = seal(&mut p.b, now, packet);
        b_tx_bytes += wire.len();
        let Outcome::Deliver(peer, got) = recv(&mut p.a, now, B_ADDR, &wire).0 else {
            panic!("A must deliver B's packet");
        };
        assert_eq!((peer, &got), (PEER, packet));
        let udp = ip::parse_udp(&got).unwrap();
        assert!(udp.payload.starts_with(b"b to a over ipv"));
    }
    assert_quiet(&mut p.a, now);
    assert_quiet(&mut p.b, now);

    let (sa, sb) = (p.a.peer_stats(PEER).unwrap(), p.b.peer_stats(PEER).unwrap());
    assert_eq!(sa.public_key, p.b_key.public_key());
    assert_eq!(sb.public_key, p.a_key.public_key());
    assert_eq!((sa.endpoint, sb.endpoint), (Some(B_ADDR), Some(A_ADDR)));
    assert_eq!(sa.last_handshake, Some(wall()));
    assert_eq!(sb.last_handshake, Some(wall()));
    assert_eq!((sa.handshakes_initiated, sa.handshakes_answered), (1, 0));
    assert_eq!((sb.handshakes_initiated, sb.handshakes_answered), (0, 1));
    assert_eq!((sa.tx_packets, sa.rx_packets, sa.rx_keepalives), (2, 2, 0));
    assert_eq!((sb.tx_packets, sb.rx_packets, sb.rx_keepalives), (2, 2, 0));
    assert_eq!(
        (sa.tx_bytes, sb.rx_bytes),
        (a_tx_bytes as u64, a_tx_bytes as u64)
    );
    assert_eq!(
        (sb.tx_bytes, sa.rx_bytes),
        (b_tx_bytes as u64, b_tx_bytes as u64)
    );
    assert_eq!(p.a.drop_counters().total() + p.b.drop_counters().total(), 0);
}

#[test]
fn try_read_response_rejects_wrong_psk() {
    let mut p = Pair::with(psk_options([1; 32], [2; 32]));
    let now = p.t0;
    stage_at_a(&mut p, now, &marked_v4());
    let init = one_transmit(&mut p.a, now);
    initiated(&mut p.a, 0);
    // The responder cannot tell: the PSK only enters the response (WIREGUARD_CHECKLIST case 19).
    let Outcome::Reply(_, response) = recv(&mut p.b, now, A_ADDR, &init).0 else {
        panic!("an initiation with a wrong PSK still gets a response");
    };
    assert_eq!(response.len(), 92);

    expect_drop(
        &mut p.a,
        now,
        B_ADDR,
        &response,
        DropReason::HandshakeDecryptFailed,
    );
    assert!(!p.a.has_session(now, PEER), "no session");
    assert_eq!(p.a.indices_in_use(), 1, "only the initiation in flight");
    let stats = p.a.peer_stats(PEER).unwrap();
    assert_eq!((stats.last_handshake, stats.rx_bytes), (None, 0));

    // The staged packet is never sealed: when the retransmit timer fires, A sends a new initiation
    // and nothing else; B, whose PSK differs, never sees transport data.
    let later = now + secs(6.0);
    p.a.handle_timeout(later);
    let sent = transmits(&mut p.a, later);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].1.len(), sent[0].1[0]), (148, 1), "an initiation");
    assert!(!p.b.has_session(later, PEER));
    assert_eq!(events(&mut p.b), vec![]);
    assert_eq!(p.b.peer_stats(PEER).unwrap().rx_packets, 0);
}

#[test]
fn validate_packet_rejects_wrong_responder_key() {
    let other = key(99).public_key();
    let mut p = Pair::with(Options {
        a_thinks_b_is: Some(other),
        ..Options::default()
    });
    let now = p.t0;
    let init = p.initiation(now);
    let mut rekeyed = init.clone();
    set_mac1(&mut rekeyed, INIT_MAC1, &other);
    assert_eq!(rekeyed, init, "A keyed mac1 to the other responder");

    assert_eq!(p.b.indices_in_use(), 0);
    expect_drop(&mut p.b, now, A_ADDR, &init, DropReason::Mac1Invalid);
    assert_eq!(p.b.drop_counters().get(DropReason::Mac1Invalid), 1);
    assert_eq!(p.b.drop_counters().total(), 1);

    // Under load too it is dropped, without a cookie reply: mac1 is the first gate.
    p.b.set_under_load(true);
    expect_drop(&mut p.b, now, A_ADDR, &init, DropReason::Mac1Invalid);
    p.b.set_under_load(false);

    // With mac1 keyed to B the same bytes pass that gate and fail later, at the static key's AEAD:
    // the drops above came from mac1 alone.
    set_mac1(&mut rekeyed, INIT_MAC1, &p.b_key.public_key());
    expect_drop(
        &mut p.b,
        now,
        A_ADDR,
        &rekeyed,
        DropReason::HandshakeDecryptFailed,
    );
    assert_eq!(p.b.drop_counters().get(DropReason::Mac1Invalid), 2);
}

#[test]
fn validate_packet_rejects_corrupted_handshake_initiation_mac() {
    let mut p = Pair::new();
    let now = p.t0;
    let init = p.initiation(now);
    for at in [INIT_MAC1, INIT_MAC1 + 7, INIT_MAC1 + 15] {
        expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &flip(&init, at),
            DropReason::Mac1Invalid,
        );
    }
    p.b.set_under_load(true);
    expect_drop(
        &mut p.b,
        now,
        A_ADDR,
        &flip(&init, INIT_MAC1),
        DropReason::Mac1Invalid,
    );
    p.b.set_under_load(false);
    assert_eq!(p.b.indices_in_use(), 0);

    // Nothing was consumed: the original initiation still completes the handshake.
    let Outcome::Reply(_, response) = recv(&mut p.b, now, A_ADDR, &init).0 else {
        panic!("the genuine initiation must be answered");
    };
    assert_eq!(recv(&mut p.a, now, B_ADDR, &response).0, Outcome::Consumed);
    assert!(p.a.has_session(now, PEER));
}

#[test]
fn validate_packet_rejects_corrupted_handshake_response_mac() {
    let mut p = Pair::new();
    let now = p.t0;
    let init = p.initiation(now);
    let Outcome::Reply(_, response) = recv(&mut p.b, now, A_ADDR, &init).0 else {
        panic!("B must answer");
    };
    for at in [RESP_MAC1, RESP_MAC1 + 8, RESP_MAC1 + 15] {
        expect_drop(
            &mut p.a,
            now,
            B_ADDR,
            &flip(&response, at),
            DropReason::Mac1Invalid,
        );
    }
    p.a.set_under_load(true);
    expect_drop(
        &mut p.a,
        now,
        B_ADDR,
        &flip(&response, RESP_MAC1),
        DropReason::Mac1Invalid,
    );
    p.a.set_under_load(false);
    assert!(!p.a.has_session(now, PEER));

    assert_eq!(recv(&mut p.a, now, B_ADDR, &response).0, Outcome::Consumed);
    assert!(p.a.has_session(now, PEER));
    assert!(matches!(
        events(&mut p.a)[..],
        [Event::HandshakeCompleted { .. }, Event::PeerUp { .. }]
    ));
}

#[test]
fn try_read_message_rejects_tampered_payload_without_plaintext() {
    let mut p = Pair::connected();
    let now = p.t0 + secs(1.0);
    let wire = p.seal_from_a(now, &marked_v4());
    // One bit in the ciphertext (inside the marker), one in the tag.
    for at in [16 + 40, wire.len() - 1] {
        let tampered = flip(&wire, at);
        let buf = expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &tampered,
            DropReason::TransportDecryptFailed,
        );
        assert_eq!(buf[..16], tampered[..16], "the header is left as it came");
        assert!(
            buf[16..].iter().all(|&b| b == 0),
            "everything the AEAD touched is zeroed"
        );
        assert!(!contains(&buf, MARKER));
    }
}

#[test]
fn try_read_message_does_not_consume_counter_for_tampered_payload() {
    let mut p = Pair::connected();
    let now = p.t0 + secs(1.0);
    let wire = p.seal_from_a(now, &marked_v4());
    expect_drop(
        &mut p.b,
        now,
        A_ADDR,
        &flip(&wire, 20),
        DropReason::TransportDecryptFailed,
    );
    expect_drop(
        &mut p.b,
        now,
        A_ADDR,
        &flip(&wire, wire.len() - 16),
        DropReason::TransportDecryptFailed,
    );
    assert_eq!(
        recv(&mut p.b, now, A_ADDR, &wire).0,
        Outcome::Deliver(PEER, marked_v4()),
        "the genuine packet with the same counter is accepted"
    );
    assert_eq!(
        p.b.peer_stats(PEER).unwrap().rx_packets,
        2,
        "keepalive + this"
    );
    // Only the genuine packet took the counter.
    expect_drop(&mut p.b, now, A_ADDR, &wire, DropReason::Replayed);
}

#[test]
fn try_read_message_rejects_replayed_packet_without_plaintext() {
    let mut p = Pair::connected();
    let now = p.t0 + secs(1.0);
    let first = p.seal_from_a(now, &marked_v4());
    assert_eq!(
        recv(&mut p.b, now, A_ADDR, &first).0,
        Outcome::Deliver(PEER, marked_v4())
    );
    let buf = expect_drop(&mut p.b, now, A_ADDR, &first, DropReason::Replayed);
    assert_eq!(
        buf, first,
        "the copy is refused before decryption: still ciphertext"
    );
    assert!(!contains(&buf, MARKER));

    // Still refused after later packets moved the window on.
    for _ in 0..3 {
        let wire = p.seal_from_a(now, &marked_v4());
        assert!(matches!(
            recv(&mut p.b, now, A_ADDR, &wire).0,
            Outcome::Deliver(..)
        ));
    }
    expect_drop(&mut p.b, now, A_ADDR, &first, DropReason::Replayed);
}

#[test]
fn try_read_message_rejects_unknown_receiver_index_without_plaintext() {
    let mut p = Pair::connected();
    let now = p.t0 + secs(1.0);
    let wire = p.seal_from_a(now, &marked_v4());
    let index = index_at(&wire, 4);
    for bogus in [index.wrapping_add(1), index ^ 0x8000_0000, 0, u32::MAX] {
        let forged = patch(&wire, 4, &bogus.to_le_bytes());
        // expect_drop also asserts that nothing is sent in answer, not even a handshake.
        let buf = expect_drop(
            &mut p.b,
            now,
            A_ADDR,
            &forged,
            DropReason::UnknownReceiverIndex,
        );
        assert!(!contains(&buf, MARKER));
    }
    assert_eq!(
        recv(&mut p.b, now, A_ADDR, &wire).0,
        Outcome::Deliver(PEER, marked_v4())
    );
}

#[test]
fn validate_packet_accepts_matching_cookie_macs() {
    let mut p = Pair::new();
    let t0 = p.t0;
    p.b.set_under_load(true);
    let first = p.initiation(t0);
    assert_eq!(first[INIT_MAC2..], [0; 16], "no cookie yet");
    let cookie = expect_cookie_reply(&mut p.b, t0, A_ADDR, &first);

    let retransmit_at = p.a.poll_timeout();
    assert_eq!(recv(&mut p.a, t0, B_ADDR, &cookie).0, Outcome::Consumed);
    // Stored for the next scheduled retransmission; never an immediate resend (no amplification).
    assert_quiet(&mut p.a, t0);
    assert_eq!(
        p.a.poll_timeout(),
        retransmit_at,
        "the schedule is unchanged"
    );
    p.a.handle_timeout(t0 + secs(4.9));
    assert_quiet(&mut p.a, t0 + secs(4.9));

    let t1 = t0 + secs(6.0);
    p.a.handle_timeout(t1);
    let second = one_transmit(&mut p.a, t1);
    assert_eq!(second.len(), 148);
    assert_ne!(second[INIT_MAC2..], [0; 16], "mac2 from the cookie");
    let Outcome::Reply(to, response) = recv(&mut p.b, t1, A_ADDR, &second).0 else {
        panic!("B under load must accept an initiation with a valid mac2");
    };
    assert_eq!((to, response.len(), response[0]), (A_ADDR, 92, 2));
    assert_eq!(p.b.drop_counters().total(), 0);

    assert_eq!(recv(&mut p.a, t1, B_ADDR, &response).0, Outcome::Consumed);
    assert!(p.a.has_session(t1, PEER));
    for outcome in pump(&mut p.a, A_ADDR, &mut p.b, t1) {
        assert_eq!(outcome, Outcome::Consumed, "A's confirming keepalive");
    }
    assert!(p.b.has_session(t1, PEER));
    assert!(events(&mut p.b).contains(&Event::HandshakeCompleted {
        peer: PEER,
        role: Role::Responder
    }));
}

#[test]
fn validate_packet_rejects_missing_or_wrong_cookie_initiation_mac() {
    let mut p = Pair::new();
    let t0 = p.t0;
    p.b.set_under_load(true);
    let init = p.initiation(t0);

    // mac2 zero, then random: each gets a cookie reply and leaves B exactly as it was.
    assert_eq!(init[INIT_MAC2..], [0; 16]);
    let cookie = expect_cookie_reply(&mut p.b, t0, A_ADDR, &init);
    let mut random = [0u8; 16];
    SeededRng::new(5).fill_bytes(&mut random);
    expect_cookie_reply(&mut p.b, t0, A_ADDR, &patch(&init, INIT_MAC2, &random));

    // A real cookie, but for another source: same IP other port, other IP same port; or one bit off.
    assert_eq!(recv(&mut p.a, t0, B_ADDR, &cookie).0, Outcome::Consumed);
    let t1 = t0 + secs(6.0);
    p.a.handle_timeout(t1);
    let with_cookie = one_transmit(&mut p.a, t1);
    assert_ne!(with_cookie[INIT_MAC2..], [0; 16]);
    expect_cookie_reply(&mut p.b, t1, sock([192, 0, 2, 1], 51821), &with_cookie);
    expect_cookie_reply(&mut p.b, t1, sock([192, 0, 2, 99], 51820), &with_cookie);
    expect_cookie_reply(&mut p.b, t1, A_ADDR, &flip(&with_cookie, INIT_MAC2 + 3));

    assert_eq!(p.b.indices_in_use(), 0, "no handshake state");
    assert_eq!(p.b.peer_stats(PEER).unwrap().handshakes_answered, 0);
    assert_eq!(p.b.drop_counters().total(), 0);

    // From the address the cookie was made for, the same initiation is accepted.
    assert!(matches!(
        recv(&mut p.b, t1, A_ADDR, &with_cookie).0,
        Outcome::Reply(_, ref r) if r.len() == 92
    ));
}

#[test]
fn validate_packet_rejects_missing_or_wrong_cookie_response_mac() {
    let mut p = Pair::new();
    let t0 = p.t0;
    let init = p.initiation(t0);
    let Outcome::Reply(_, response) = recv(&mut p.b, t0, A_ADDR, &init).0 else {
        panic!("B, not under load, answers");
    };
    assert_eq!(response[RESP_MAC2..], [0; 16]);

    p.a.set_under_load(true);
    let cookie = expect_cookie_reply(&mut p.a, t0, B_ADDR, &response);
    expect_cookie_reply(
        &mut p.a,
        t0,
        B_ADDR,
        &patch(&response, RESP_MAC2, &[0xA5; 16]),
    );
    assert!(!p.a.has_session(t0, PEER), "no session");
    assert_eq!(p.a.indices_in_use(), 1, "the initiation is still in flight");
    assert_eq!(p.a.peer_stats(PEER).unwrap().last_handshake, None);

    // B stores the cookie; A's pending handshake retransmits on schedule, and B's next response
    // carries a mac2 that A, still under load, accepts.
    assert_eq!(recv(&mut p.b, t0, A_ADDR, &cookie).0, Outcome::Consumed);
    let t1 = t0 + secs(6.0);
    p.a.handle_timeout(t1);
    let again = one_transmit(&mut p.a, t1);
    let Outcome::Reply(_, response2) = recv(&mut p.b, t1, A_ADDR, &again).0 else {
        panic!("B answers the retransmission");
    };
    assert_ne!(response2[RESP_MAC2..], [0; 16], "mac2 from A's cookie");
    assert_eq!(recv(&mut p.a, t1, B_ADDR, &response2).0, Outcome::Consumed);
    assert!(p.a.has_session(t1, PEER));
}

#[test]
fn get_bitmap_rejects_counter_before_latest() {
    let received = |c: u64| c % 7 != 3;
    let mut window = ReplayWindow::new();
    for c in (0..=9000).filter(|c| received(*c)) {
        assert!(window.commit(c));
    }
    assert_eq!(window.latest(), Some(9000));
    let low = window.low_edge();
    assert_eq!(low, 9000 - WINDOW_SIZE);

    let mut out = [0xA5u8; 1100];
    for start in [0, 1, low - 64, low - 1] {
        assert_eq!(
            window.get_bitmap(start, &mut out),
            Err(BitmapError::StartBeforeWindow {
                start,
                low_edge: low
            })
        );
        assert!(out.iter().all(|&b| b == 0xA5), "nothing written");
    }
    assert_eq!(
        window.get_bitmap(9001, &mut out),
        Err(BitmapError::StartAfterLatest {
            start: 9001,
            latest: 9000
        })
    );
    assert!(out.iter().all(|&b| b == 0xA5), "nothing written");

    // From the low edge itself: one bit per counter, least significant first.
    let bits = (9000 - low + 1) as usize;
    let n = window.get_bitmap(low, &mut out).unwrap();
    assert_eq!(n, bits.div_ceil(8));
    for i in 0..bits {
        let set = out[i / 8] >> (i % 8) & 1 == 1;
        assert_eq!(set, received(low + i as u64), "counter {}", low + i as u64);
    }
    assert_eq!(out[n - 1] >> (bits % 8), 0, "no bit past the latest");
    assert!(
        out[n..].iter().all(|&b| b == 0xA5),
        "nothing past the bitmap"
    );
}

#[test]
fn get_bitmap_rejects_undersized_buffer() {
    let received = [100u64, 101, 103, 110, 111, 112, 120, 135];
    let mut window = ReplayWindow::new();
    for c in received {
        assert!(window.commit(c));
    }
    // Counters 100..=135: 36 bits, 5 bytes.
    let mut expected = [0u8; 5];
    for c in received {
        let i = (c - 100) as usize;
        expected[i / 8] |= 1 << (i % 8);
    }

    let mut short = [0xA5u8; 4];
    assert_eq!(
        window.get_bitmap(100, &mut short),
        Err(BitmapError::BufferTooSmall { needed: 5, len: 4 })
    );
    assert_eq!(short, [0xA5; 4], "nothing written");
    assert_eq!(
        window.get_bitmap(100, &mut []),
        Err(BitmapError::BufferTooSmall { needed: 5, len: 0 })
    );

    let mut exact = [0xA5u8; 5];
    assert_eq!(window.get_bitmap(100, &mut exact), Ok(5));
    assert_eq!(exact, expected);

    let mut roomy = [0xA5u8; 8];
    assert_eq!(window.get_bitmap(100, &mut roomy), Ok(5));
    assert_eq!(roomy[..5], expected);
    assert_eq!(roomy[5..], [0xA5; 3], "nothing past the bitmap");

    // A later start needs less room: 130..=135 fits one byte.
    let mut one = [0xA5u8; 1];
    assert_eq!(window.get_bitmap(130, &mut one), Ok(1));
    assert_eq!(one, [0b10_0000]);
}
