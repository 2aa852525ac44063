use std::time::{Duration, Instant};

use pnet_mesh_crypto::{PrivateKey, PublicKey};

use super::*;
use crate::PeerId;
use crate::proto::path::via;

fn key(n: u8) -> PublicKey {
    PrivateKey::from_bytes([n; 32]).public_key()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const S: Duration = Duration::from_secs(1);

/// A prober tracking member B (key 2) through relay R (key 1), with one reflexive candidate.
fn tracked(t0: Instant) -> (PathProber, PublicKey, PublicKey, SocketAddr) {
    let (r, b) = (key(1), key(2));
    let cand = addr("198.51.100.2:51820");
    let mut p = PathProber::new(ProbeConfig::default(), 16, 7);
    p.track(t0, b, r);
    p.offer(t0, &b, cand, CandidateSource::Reflexive);
    p.offer(t0, &b, via(PeerId(3)), CandidateSource::Advertised);
    (p, r, b, cand)
}

fn probes(p: &mut PathProber) -> Vec<ProbeTransmit> {
    std::iter::from_fn(|| p.poll_transmit()).collect()
}

#[test]
fn a_relayed_member_is_promoted_only_after_an_authenticated_answer_over_the_direct_path() {
    let t0 = Instant::now();
    let (mut p, r, b, cand) = tracked(t0);
    assert_eq!(
        p.poll_event(),
        Some(Event::RelayChosen {
            member: b,
            relay: r
        })
    );
    p.handle_timeout(t0);
    let sent = probes(&mut p);
    assert_eq!(sent.len(), 1, "relay paths are never candidates");
    let probe = sent[0];
    assert_eq!((probe.member, probe.to), (b, cand));
    assert!(!probe.message.ack);
    // An answer that came back through the relay proves nothing.
    let ack = ProbeMessage {
        ack: true,
        nonce: probe.message.nonce,
        address: addr("203.0.113.1:4000"),
    };
    p.handle_message(t0, b, via(PeerId(1)), &ack);
    assert_eq!(p.direct(&b), None);
    // Nor does an answer to a probe we never sent.
    let forged = ProbeMessage { nonce: 99, ..ack };
    p.handle_message(t0, b, cand, &forged);
    assert_eq!(p.direct(&b), None);
    assert_eq!(p.poll_action(), None);
    // The next interval probes again; its answer from the candidate promotes.
    p.handle_timeout(t0 + S);
    let probe = probes(&mut p)[0];
    p.handle_message(
        t0 + S,
        b,
        cand,
        &ProbeMessage {
            nonce: probe.message.nonce,
            ..ack
        },
    );
    assert_eq!(p.direct(&b), Some(cand));
    assert_eq!(
        p.poll_action(),
        Some(PathAction::UseDirect {
            member: b,
            endpoint: cand
        })
    );
    assert_eq!(
        p.poll_event(),
        Some(Event::PathPromoted {
            member: b,
            endpoint: cand
        })
    );
    assert_eq!(p.own_reflexive().collect::<Vec<_>>(), vec![ack.address]);
    assert_eq!(p.stats().promotions, 1);
    assert_eq!(p.stats().ignored, 2);
}

#[test]
fn a_direct_path_that_stops_answering_falls_back_to_the_relay_within_three_intervals() {
    let t0 = Instant::now();
    let (mut p, r, b, cand) = tracked(t0);
    p.handle_timeout(t0);
    let probe = probes(&mut p)[0];
    let ack = ProbeMessage {
        ack: true,
        nonce: probe.message.nonce,
        address: addr("203.0.113.1:4000"),
    };
    p.handle_message(t0, b, cand, &ack);
    assert_eq!(p.direct(&b), Some(cand));
    while p.poll_action().is_some() {}
    while p.poll_event().is_some() {}
    // Answered for a while: stays direct, one probe per interval to the direct endpoint.
    let mut now = t0;
    for _ in 0..3 {
        now += S;
        p.handle_timeout(now);
        let sent = probes(&mut p);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, cand);
        p.handle_message(
            now,
            b,
            cand,
            &ProbeMessage {
                nonce: sent[0].message.nonce,
                ..ack
            },
        );
    }
    assert_eq!(p.poll_action(), None);
    // Then silence: the third interval without an answer falls back.
    let last_alive = now;
    for k in 1..=3 {
        now = last_alive + S * k;
        p.handle_timeout(now);
        let _ = probes(&mut p);
        if k < 3 {
            assert_eq!(
                p.direct(&b),
                Some(cand),
                "still direct after {k} silent intervals"
            );
        }
    }
    assert_eq!(p.direct(&b), None);
    assert_eq!(
        p.poll_action(),
        Some(PathAction::UseRelay {
            member: b,
            relay: r
        })
    );
    assert_eq!(
        p.poll_event(),
        Some(Event::PathFellBack {
            member: b,
            relay: r
        })
    );
    // And the candidates are probed again, so the path can come back.
    p.handle_timeout(now + S);
    assert_eq!(probes(&mut p)[0].to, cand);
}

#[test]
fn a_probe_is_answered_where_it_came_from_and_promotes_a_direct_path() {
    let t0 = Instant::now();
    let (mut p, _r, b, cand) = tracked(t0);
    let probe = ProbeMessage {
        ack: false,
        nonce: 5,
        address: addr("192.0.2.9:1"),
    };
    p.handle_message(t0, b, cand, &probe);
    let answer = probes(&mut p);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].to, cand);
    assert_eq!(
        answer[0].message,
        ProbeMessage {
            ack: true,
            nonce: 5,
            address: cand
        }
    );
    // It came straight from the member, inside its session: the path works, so it is promoted.
    assert_eq!(p.direct(&b), Some(cand));
    assert_eq!(
        p.poll_action(),
        Some(PathAction::UseDirect {
            member: b,
            endpoint: cand
        })
    );
    // Through the relay it proves nothing (but is answered the same way).
    let (mut q, _, b2, _) = tracked(t0);
    q.handle_message(t0, b2, via(PeerId(1)), &probe);
    assert_eq!(probes(&mut q)[0].to, via(PeerId(1)));
    assert_eq!(q.direct(&b2), None);
    // From a member we do not track (a direct peer): still answered, nothing else changes.
    p.handle_message(t0, key(9), cand, &probe);
    assert_eq!(probes(&mut p).len(), 1);
    assert_eq!(p.stats().members, 1);
}

#[test]
fn probe_messages_roundtrip_and_refuse_garbage() {
    for m in [
        ProbeMessage {
            ack: false,
            nonce: u64::MAX,
            address: addr("192.0.2.1:7"),
        },
        ProbeMessage {
            ack: true,
            nonce: 1,
            address: addr("[2001:db8::1]:51820"),
        },
    ] {
        let mut out = [0u8; 64];
        let n = m.encode(&mut out).unwrap();
        assert_eq!(ProbeMessage::decode(&out[..n]), Ok(m));
        assert!(ProbeMessage::decode(&out[..n - 1]).is_err());
        let mut longer = out[..n].to_vec();
        longer.push(0);
        assert!(ProbeMessage::decode(&longer).is_err());
        let mut bad = out[..n].to_vec();
        bad[2] = 1;
        assert!(ProbeMessage::decode(&bad).is_err());
        bad = out[..n].to_vec();
        bad[12] = 5;
        assert!(ProbeMessage::decode(&bad).is_err());
    }
    assert!(ProbeMessage::decode(&[1, 9, 0, 0]).is_err());
}

#[test]
fn a_handshake_that_moves_a_direct_member_onto_the_relay_is_undone_by_the_next_answer() {
    let t0 = Instant::now();
    let (mut p, _r, b, cand) = tracked(t0);
    p.handle_timeout(t0);
    let probe = probes(&mut p)[0];
    let ack = ProbeMessage {
        ack: true,
        nonce: probe.message.nonce,
        address: addr("203.0.113.1:4000"),
    };
    p.handle_message(t0, b, cand, &ack);
    assert!(matches!(
        p.poll_action(),
        Some(PathAction::UseDirect { .. })
    ));
    // A handshake that came through the relay moved the endpoint there.
    p.on_endpoint(&b, via(PeerId(1)));
    p.handle_timeout(t0 + S);
    let probe = probes(&mut p)[0];
    assert_eq!(probe.to, cand, "still probing the direct path");
    p.handle_message(
        t0 + S,
        b,
        cand,
        &ProbeMessage {
            nonce: probe.message.nonce,
            ..ack
        },
    );
    assert_eq!(
        p.poll_action(),
        Some(PathAction::UseDirect {
            member: b,
            endpoint: cand
        }),
        "the answer puts the endpoint back"
    );
    assert_eq!(p.stats().promotions, 1, "not a second promotion");
    // While it stays there, answers change nothing.
    p.handle_timeout(t0 + S * 2);
    let probe = probes(&mut p)[0];
    p.handle_message(
        t0 + S * 2,
        b,
        cand,
        &ProbeMessage {
            nonce: probe.message.nonce,
            ..ack
        },
    );
    assert_eq!(p.poll_action(), None);
}

/// A relay path through relay `id` as the member's answers arrive over it.
fn through(id: u32, member: u32) -> SocketAddr {
    crate::proto::path::RelayPath {
        relay: PeerId(id),
        peer: PeerId(member),
    }
    .to_addr()
}

/// Runs one interval at `t`: every probe through a relay in `working` is answered back through it.
fn interval(p: &mut PathProber, t: Instant, b: PublicKey, working: &[u32]) -> usize {
    p.handle_timeout(t);
    let mut through_relays = 0;
    for probe in probes(p) {
        let Some(path) = crate::proto::path::RelayPath::from_addr(&probe.to) else {
            continue;
        };
        through_relays += 1;
        if working.contains(&path.relay.0) {
            let ack = ProbeMessage {
                ack: true,
                nonce: probe.message.nonce,
                address: through(path.relay.0, 9),
            };
            p.handle_message(t, b, through(path.relay.0, 2), &ack);
        }
    }
    through_relays
}

#[test]
fn a_relay_that_stops_answering_fails_over_to_the_relay_that_answers_within_three_intervals() {
    let t0 = Instant::now();
    let (mut p, r, b, _) = tracked(t0);
    let r2 = key(5);
    p.offer_relay(t0, &b, r, via(PeerId(1)));
    p.offer_relay(t0, &b, r2, via(PeerId(5)));
    // Neither a member as its own relay nor a socket address is a relay option.
    p.offer_relay(t0, &b, b, via(PeerId(2)));
    p.offer_relay(t0, &b, key(6), addr("192.0.2.6:1"));
    while p.poll_event().is_some() {}
    for i in 0..3 {
        assert_eq!(
            interval(&mut p, t0 + S * i, b, &[1, 5]),
            2,
            "one probe per relay"
        );
    }
    assert_eq!(p.stats().relay_answers, 6);
    assert_eq!(p.relay_of(&b), Some(r));
    // R dies just after the probes of t0+2s were answered.
    let mut moved = None;
    for i in 3..=6 {
        interval(&mut p, t0 + S * i, b, &[5]);
        if p.relay_of(&b) == Some(r2) {
            moved = Some(i);
            break;
        }
    }
    // Last answer through R at 2 s: lost from 2 s + 3 intervals on.
    assert_eq!(moved, Some(5), "failover at the third missed interval");
    assert_eq!(
        std::iter::from_fn(|| p.poll_event()).collect::<Vec<_>>(),
        vec![
            Event::RelayLost {
                member: b,
                relay: r
            },
            Event::RelayChosen {
                member: b,
                relay: r2
            }
        ]
    );
    assert_eq!(
        p.poll_action(),
        Some(PathAction::UseRelay {
            member: b,
            relay: r2
        })
    );
    assert_eq!(p.stats().relay_failovers, 1);
    assert!(!p.relay_usable(t0 + S * 5, &b, &r));
    assert!(p.relay_usable(t0 + S * 5, &b, &r2));
    // Never offered: usable (the node's own route choice stands).
    assert!(p.relay_usable(t0 + S * 5, &b, &key(7)));
}

#[test]
fn with_no_relay_answering_the_member_stays_and_the_loss_is_reported_once() {
    let t0 = Instant::now();
    let (mut p, r, b, _) = tracked(t0);
    let r2 = key(5);
    p.offer_relay(t0, &b, r, via(PeerId(1)));
    p.offer_relay(t0, &b, r2, via(PeerId(5)));
    while p.poll_event().is_some() {}
    for i in 0..10 {
        interval(&mut p, t0 + S * i, b, &[]);
    }
    assert_eq!(p.relay_of(&b), Some(r));
    assert_eq!(
        std::iter::from_fn(|| p.poll_event()).collect::<Vec<_>>(),
        vec![Event::RelayLost {
            member: b,
            relay: r
        }]
    );
    assert_eq!(p.poll_action(), None);
    // R2 comes up: the member moves to it at the next interval.
    interval(&mut p, t0 + S * 10, b, &[5]);
    interval(&mut p, t0 + S * 11, b, &[5]);
    assert_eq!(p.relay_of(&b), Some(r2));
}

#[test]
fn an_answer_through_another_relay_than_the_probe_went_proves_nothing() {
    let t0 = Instant::now();
    let (mut p, r, b, _) = tracked(t0);
    p.offer_relay(t0, &b, r, via(PeerId(1)));
    p.offer_relay(t0, &b, key(5), via(PeerId(5)));
    p.handle_timeout(t0);
    let ignored = p.stats().ignored;
    for probe in probes(&mut p).into_iter().filter(|t| is_relayed(&t.to)) {
        // Every answer comes back through relay 8, which no probe went through.
        let ack = ProbeMessage {
            ack: true,
            nonce: probe.message.nonce,
            address: through(8, 9),
        };
        p.handle_message(t0, b, through(8, 2), &ack);
    }
    assert_eq!(p.stats().relay_answers, 0);
    assert_eq!(p.stats().ignored, ignored + 2);
}
