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
#[path = "hostile_input/handshake_cases.rs"]
mod handshake_cases;
#[path = "hostile_input/transport_cases.rs"]
mod transport_cases;

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use handshake_cases::*;
use pnet_mesh::crypto::PublicKey;
use pnet_mesh::crypto::rng::{Rng, SeededRng};
use pnet_mesh::proto::constants::REJECT_AFTER_MESSAGES;
use pnet_mesh::{DropReason, Endpoint, EndpointConfig, Event, PeerConfig};
use transport_cases::*;

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
