use std::time::Duration;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn server_relay_candidate_selection_prefers_known_route_then_reflexive_endpoint() {
    let t0 = Instant::now();
    let route = addr("192.0.2.10:51820");
    let reflexive = addr("198.51.100.7:40123");
    let advertised = addr("10.1.0.5:51820");

    // Both on offer, whichever order they came in: the known route wins.
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let mut c = Candidates::new();
        for (i, which) in order.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64);
            match which {
                0 => c.offer(now, route, CandidateSource::KnownRoute),
                1 => c.offer(now, reflexive, CandidateSource::Reflexive),
                _ => c.offer(now, advertised, CandidateSource::Advertised),
            }
        }
        assert_eq!(c.select().unwrap().addr, route, "order {order:?}");
    }

    // Only the reflexive endpoint (and an advertised one): it takes the reflexive endpoint.
    let mut c = Candidates::new();
    c.offer(t0, advertised, CandidateSource::Advertised);
    c.offer(t0, reflexive, CandidateSource::Reflexive);
    assert_eq!(c.select().unwrap().addr, reflexive);
    assert_eq!(c.select().unwrap().source, CandidateSource::Reflexive);

    // Only what the member advertised: that, for lack of anything better.
    let mut c = Candidates::new();
    c.offer(t0, advertised, CandidateSource::Advertised);
    assert_eq!(c.select().unwrap().addr, advertised);
    assert!(Candidates::new().select().is_none());
}

#[test]
fn an_authenticated_packet_promotes_a_candidate_and_a_dead_path_is_withdrawn() {
    let t0 = Instant::now();
    let reflexive = addr("198.51.100.7:40123");
    let other = addr("198.51.100.8:40123");
    let mut c = Candidates::new();
    c.offer(t0, reflexive, CandidateSource::Reflexive);
    c.offer(t0, other, CandidateSource::Reflexive);
    // A packet authenticated from `other` makes it a known route, kept even if offered again as
    // merely reflexive.
    c.offer(
        t0 + Duration::from_secs(1),
        other,
        CandidateSource::KnownRoute,
    );
    c.offer(
        t0 + Duration::from_secs(2),
        other,
        CandidateSource::Reflexive,
    );
    assert_eq!(c.select().unwrap().addr, other);
    assert_eq!(c.select().unwrap().source, CandidateSource::KnownRoute);
    assert_eq!(c.len(), 2, "the same address is held once");
    // Two known routes: the more recently confirmed.
    c.offer(
        t0 + Duration::from_secs(3),
        reflexive,
        CandidateSource::KnownRoute,
    );
    assert_eq!(c.select().unwrap().addr, reflexive);
    c.withdraw(reflexive);
    assert_eq!(c.select().unwrap().addr, other);
}

#[test]
fn candidates_are_bounded_and_the_worst_make_room() {
    let t0 = Instant::now();
    let mut c = Candidates::new();
    let route = addr("192.0.2.1:1");
    c.offer(t0, route, CandidateSource::KnownRoute);
    for i in 0..50u16 {
        c.offer(
            t0 + Duration::from_millis(u64::from(i)),
            SocketAddr::from(([203, 0, 113, 1], 1000 + i)),
            CandidateSource::Advertised,
        );
    }
    assert_eq!(c.len(), MAX_CANDIDATES);
    assert_eq!(c.select().unwrap().addr, route, "the best is never evicted");
}
