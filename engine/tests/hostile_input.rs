//! WIREGUARD_CHECKLIST section 1, cases 1-35, as one table walked against the sans-I/O core.
//!
//! Every row builds its own endpoints, hands them the hostile input and asserts the typed
//! [`DropReason`] (or the documented accepted outcome), no panic, no plaintext in the buffer, and no
//! change in what the endpoint shows: receiver indices, per-peer stats (endpoint, counters, latest
//! handshake), sessions, the next timer deadline, and no event or datagram (a cookie reply where the
//! checklist says so). Drop counters must move by exactly one, for the expected reason.
//!
//! Skipped, because they cannot reach the sans-I/O core:
//! - 7 (datagram larger than the receive buffer, MSG_TRUNC): the core is handed a complete slice;
//!   seeing truncation is the socket runtime's job, which reports it as `DropReason::Truncated`.
//!
//! Cases 36 and 37 (mesh relay and discovery) wait for the mesh layer.
//!
//! Authenticated packets whose inner packet is dishonest (31, 32, 33) are dropped after the AEAD, so
//! the bookkeeping of an authenticated packet does happen there, as in wireguard-go and the kernel: the
//! replay window takes the counter, the keepalive timer is armed, and (as wireguard-go) the rx counters
//! count the datagram. Those rows assert exactly that delta and nothing more.

mod common;

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use pnet_mesh::crypto::PublicKey;
use pnet_mesh::crypto::rng::{Rng, SeededRng};
use pnet_mesh::proto::constants::REJECT_AFTER_MESSAGES;
use pnet_mesh::{DropReason, Endpoint, EndpointConfig, Event, PeerConfig};

/// One checklist case.
struct Row {
    case: u8,
    input: &'static str,
    run: fn(),
}

/// Cases that cannot apply to the sans-I/O core (see the module documentation).
const SKIPPED: &[u8] = &[7];

macro_rules! table {
    ($($case:literal $run:ident $input:literal;)*) => {
        &[$(Row { case: $case, input: $input, run: $run }),*]
    };
}

/// `case  function  "input"`, in checklist order.
const TABLE: &[Row] = table! {
     1 case_01 "UDP payload of 0-3 bytes";
     2 case_02 "4-31 bytes with type 4";
     3 case_03 "type 0 or 5-255";
     4 case_04 "reserved bytes 1-3 non-zero on any type";
     5 case_05 "initiation != 148, response != 92, cookie reply != 64 bytes";
     6 case_06 "transport body not a multiple of 16";
     8 case_08 "1-bit-flipped mac1, or mac1 keyed to another key";
     9 case_09 "valid mac1, not under load, garbage mac2";
    10 case_10 "under load, mac2 zero or wrong (other IP or port)";
    11 case_11 "under load, valid mac2, source over its token bucket";
    12 case_12 "initiation whose static is not a configured peer";
    13 case_13 "initiation with corrupted encrypted static or timestamp";
    14 case_14 "low-order ephemeral or static";
    15 case_15 "byte-identical replay of an accepted initiation";
    16 case_16 "initiation with a timestamp <= the last accepted";
    17 case_17 "second valid initiation < 20 ms after the last";
    18 case_18 "response with unknown index or no initiation in flight";
    19 case_19 "response with a wrong PSK or low-order ephemeral";
    20 case_20 "cookie reply: unknown index, bad tag, AAD != last mac1";
    21 case_21 "cookie reply with no mac1 outstanding (second copy)";
    22 case_22 "cookie reply arrives: no immediate retransmit";
    23 case_23 "transport with an unknown receiver index";
    24 case_24 "transport on a keypair older than REJECT_AFTER_TIME";
    25 case_25 "transport with a bad tag (counter, ciphertext or tag bit)";
    26 case_26 "authentic duplicate counter";
    27 case_27 "counter older than the window";
    28 case_28 "counter >= REJECT_AFTER_MESSAGES, even if authentic";
    29 case_29 "forged packet with a huge counter";
    30 case_30 "keepalive";
    31 case_31 "plaintext whose IP version is not 4 or 6";
    32 case_32 "inconsistent IPv4 tot_len / IPv6 payload_len";
    33 case_33 "inner source not in the sender's allowed IPs";
    34 case_34 "authentic packet from a new address; forged one";
    35 case_35 "flood of valid-mac1 initiations from many sources";
};

#[test]
fn hostile_input_table_wireguard_checklist_cases_1_to_35() {
    let listed: Vec<u8> = TABLE.iter().map(|r| r.case).collect();
    let expected: Vec<u8> = (1..=35).filter(|c| !SKIPPED.contains(c)).collect();
    assert_eq!(listed, expected, "one row per applicable case, in order");

    let mut failed = Vec::new();
    for row in TABLE {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(row.run)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("case {} ({}): {why}", row.case, row.input));
        }
    }
    assert!(failed.is_empty(), "failed rows:\n{}", failed.join("\n"));
}

// ---- helpers ------------------------------------------------------------------------------------------

const MS: Duration = Duration::from_millis(1);
/// An address neither endpoint has seen.
const NEW_ADDR: SocketAddr = sock([198, 51, 100, 7], 40000);

/// The 7 low-order Curve25519 points of the kernel's netns.sh.
const LOW_ORDER: [&str; 7] = [
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
    "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
    "7P///////////////////////////////////////38=",
    "7f///////////////////////////////////////38=",
    "7v///////////////////////////////////////38=",
];

fn low_order(base64: &str) -> PublicKey {
    PublicKey::from_base64(base64).unwrap()
}

/// A has sent `init`; B holds its answer `response` (B's keypair waits for confirmation) and would
/// answer `init` under load with `cookie`.
struct InFlight {
    p: Pair,
    init: Vec<u8>,
    response: Vec<u8>,
    cookie: Vec<u8>,
}

fn in_flight() -> InFlight {
    let mut p = Pair::new();
    let t0 = p.t0;
    let init = p.initiation(t0);
    p.b.set_under_load(true);
    let cookie = expect_cookie_reply(&mut p.b, t0, A_ADDR, &init);
    p.b.set_under_load(false);
    let Outcome::Reply(_, response) = recv(&mut p.b, t0, A_ADDR, &init).0 else {
        panic!("B answers the initiation");
    };
    events(&mut p.b);
    InFlight {
        p,
        init,
        response,
        cookie,
    }
}

/// A pair whose B holds a session made with a [`Forger`] speaking for A, confirmed by a keepalive.
fn forged_session() -> (Pair, Forger) {
    let mut p = Pair::new();
    let t0 = p.t0;
    let b_public = p.b_key.public_key();
    let forger = Forger::handshake(&p.a_key, &mut p.b, &b_public, [0; 32], wall(), A_ADDR, t0);
    assert_eq!(
        recv(&mut p.b, t0, A_ADDR, &forger.seal(0, &[])).0,
        Outcome::Consumed
    );
    assert!(p.b.has_session(t0, PEER));
    events(&mut p.b);
    (p, forger)
}

/// An authenticated datagram whose inner packet is dishonest: dropped for `reason` with its plaintext
/// zeroed; only the bookkeeping of an authenticated packet changes (rx counters by one datagram).
fn expect_dishonest(ep: &mut Endpoint, now: Instant, bytes: &[u8], reason: DropReason) {
    let before = snapshot(ep, now);
    let drops = ep.drop_counters().clone();
    let (outcome, buf) = recv(ep, now, A_ADDR, bytes);
    assert_eq!(outcome, Outcome::Dropped(reason));
    assert!(!contains(&buf, MARKER), "plaintext left in the buffer");
    assert!(
        buf[16..buf.len() - 16].iter().all(|&b| b == 0),
        "the decrypted region is zeroed"
    );
    assert_eq!(ep.drop_counters().get(reason), drops.get(reason) + 1);
    assert_eq!(ep.drop_counters().total(), drops.total() + 1);
    assert_quiet(ep, now);
    let after = snapshot(ep, now);
    let (b, a) = (&before.peers[0], &after.peers[0]);
    assert_eq!(after.indices_in_use, before.indices_in_use);
    assert_eq!(after.sessions, before.sessions);
    assert_eq!(
        (a.endpoint, a.last_handshake),
        (b.endpoint, b.last_handshake)
    );
    assert_eq!((a.tx_bytes, a.tx_packets), (b.tx_bytes, b.tx_packets));
    assert_eq!(a.rx_packets, b.rx_packets + 1);
    assert_eq!(a.rx_bytes, b.rx_bytes + bytes.len() as u64);
}

fn assert_delivers(ep: &mut Endpoint, now: Instant, from: SocketAddr, bytes: &[u8], packet: &[u8]) {
    assert_eq!(
        recv(ep, now, from, bytes).0,
        Outcome::Deliver(PEER, packet.to_vec())
    );
}

fn reply_len(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Reply(_, bytes) => bytes.len(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

// ---- rows ---------------------------------------------------------------------------------------------

fn case_01() {
    let mut p = Pair::connected();
    let now = p.t0;
    for bytes in [&[][..], &[1], &[4, 0], &[4, 0, 0], &[2, 0, 0]] {
        expect_drop(&mut p.a, now, B_ADDR, bytes, DropReason::TooShort);
        expect_drop(&mut p.b, now, A_ADDR, bytes, DropReason::TooShort);
    }
}

fn case_02() {
    let mut p = Pair::connected();
    let now = p.t0;
    let wire = p.seal_from_a(now, &marked_v4());
    for len in 4..32 {
        expect_drop(&mut p.b, now, A_ADDR, &wire[..len], DropReason::BadLength);
    }
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
}

fn case_03() {
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

fn case_04() {
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

fn case_05() {
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

fn case_06() {
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

fn case_08() {
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

fn case_09() {
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

fn case_10() {
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

fn case_11() {
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

fn case_12() {
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

fn case_13() {
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

fn case_14() {
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

fn case_15() {
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

fn case_16() {
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

fn case_17() {
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

fn case_18() {
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
    expect_drop(
        &mut p.a,
        t1,
        B_ADDR,
        &response,
        DropReason::UnexpectedResponse,
    );
}

fn case_19() {
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

fn case_20() {
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

fn case_21() {
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

fn case_22() {
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

fn case_23() {
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

fn case_24() {
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

fn case_25() {
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

fn case_26() {
    let mut p = Pair::connected();
    let now = p.t0;
    let wire = p.seal_from_a(now, &marked_v4());
    assert_delivers(&mut p.b, now, A_ADDR, &wire, &marked_v4());
    expect_drop(&mut p.b, now, A_ADDR, &wire, DropReason::Replayed);
}

fn case_27() {
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

fn case_28() {
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

fn case_29() {
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

fn case_30() {
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

fn case_31() {
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

fn case_32() {
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

fn case_33() {
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

fn case_34() {
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

fn case_35() {
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
