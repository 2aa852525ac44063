//! Discovery among in-memory nodes on a virtual clock. A message from A reaches B only if B has A as
//! a peer (configured or admitted), as a WireGuard session would; a session "comes up" between two
//! nodes that both hold each other as peers.

use std::collections::BTreeSet;

use pnet_mesh_crypto::PrivateKey;
use pnet_mesh_crypto::rng::SeededRng;

use super::*;

const PSK: [u8; 32] = [0x42; 32];
const WALL: u64 = 1_800_000_000_000_000;

fn key(i: u64) -> PublicKey {
    PrivateKey::generate(&mut SeededRng::new(1000 + i)).public_key()
}

fn address(i: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, i as u8 + 1])
}

fn host(i: usize) -> AllowedIp {
    AllowedIp::new(address(i), 32).unwrap()
}

fn config() -> DiscoveryConfig {
    DiscoveryConfig::new(PresharedKey::from_bytes(PSK))
}

struct SimNode {
    key: PublicKey,
    discovery: Discovery,
    /// Configured and admitted peers.
    peers: BTreeSet<PublicKey>,
    admitted: Vec<Action>,
    sessions: BTreeSet<PublicKey>,
    events: Vec<Event>,
    up: bool,
}

struct Sim {
    now: Instant,
    wall: u64,
    nodes: Vec<SimNode>,
    /// Messages in flight: (from, message).
    delivered: u64,
}

impl Sim {
    fn new(n: usize) -> Sim {
        let now = Instant::now();
        let nodes = (0..n)
            .map(|i| SimNode {
                key: key(i as u64),
                discovery: Discovery::new(key(i as u64), &[address(i)], config(), 1392, now, WALL),
                peers: BTreeSet::new(),
                admitted: Vec::new(),
                sessions: BTreeSet::new(),
                events: Vec::new(),
                up: true,
            })
            .collect();
        Sim {
            now,
            wall: WALL,
            nodes,
            delivered: 0,
        }
    }

    /// `i` is configured with `j`; `bootstrap` if `i` knows `j`'s endpoint.
    fn configure(&mut self, i: usize, j: usize, bootstrap: bool) {
        let kj = self.nodes[j].key;
        let now = self.now;
        let node = &mut self.nodes[i];
        node.peers.insert(kj);
        node.discovery
            .add_configured(now, kj, vec![host(j)], bootstrap);
    }

    fn index(&self, key: &PublicKey) -> Option<usize> {
        self.nodes.iter().position(|n| &n.key == key)
    }

    /// Runs until nothing moves, advancing the clock by `tick` between rounds, for `rounds` at most.
    fn run(&mut self, rounds: usize, tick: Duration) {
        for _ in 0..rounds {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                if !self.nodes[i].up {
                    continue;
                }
                let (now, wall) = (self.now, self.wall);
                self.nodes[i].discovery.handle_timeout(now, wall);
                moved |= self.drain(i);
            }
            // Sessions come up between nodes holding each other.
            for i in 0..self.nodes.len() {
                for j in 0..self.nodes.len() {
                    let (ki, kj) = (self.nodes[i].key, self.nodes[j].key);
                    if i != j
                        && self.nodes[i].up
                        && self.nodes[j].up
                        && self.nodes[i].peers.contains(&kj)
                        && self.nodes[j].peers.contains(&ki)
                        && !self.nodes[i].sessions.contains(&kj)
                    {
                        self.nodes[i].sessions.insert(kj);
                        let now = self.now;
                        self.nodes[i].discovery.session_up(now, kj);
                        moved = true;
                    }
                }
            }
            if !moved {
                self.now += tick;
                self.wall += tick.as_micros() as u64;
            }
        }
    }

    /// Moves node `i`'s outputs: actions change its peers, messages reach their peer.
    fn drain(&mut self, i: usize) -> bool {
        let mut moved = false;
        while let Some(a) = self.nodes[i].discovery.poll_action() {
            moved = true;
            match &a {
                Action::Admit { key, .. } => {
                    self.nodes[i].peers.insert(*key);
                }
                Action::Forget { key } => {
                    self.nodes[i].peers.remove(key);
                    self.nodes[i].sessions.remove(key);
                    self.nodes[i].discovery.session_down(key);
                }
                Action::Update { .. } => {}
            }
            self.nodes[i].admitted.push(a);
        }
        while let Some(e) = self.nodes[i].discovery.poll_event() {
            self.nodes[i].events.push(e);
        }
        while let Some(out) = self.nodes[i].discovery.poll_transmit() {
            moved = true;
            let from = self.nodes[i].key;
            if let Some(j) = self.index(&out.to)
                && self.nodes[j].up
                && self.nodes[j].peers.contains(&from)
            {
                assert_eq!(out.dst, address(j), "sent to the member's mesh address");
                assert!(out.message.len() <= 1392);
                let now = self.now;
                self.nodes[j]
                    .discovery
                    .handle_message(now, from, &out.message);
                self.delivered += 1;
            }
        }
        moved
    }

    fn knows(&self, i: usize) -> BTreeSet<usize> {
        self.nodes[i]
            .discovery
            .members()
            .filter_map(|m| self.index(&m.record.public_key))
            .collect()
    }
}

fn all_but(n: usize, i: usize) -> BTreeSet<usize> {
    (0..n).filter(|j| *j != i).collect()
}

#[test]
fn one_bootstrap_peer_each_teaches_every_member_every_other() {
    // A chain: 1 knows 0, 2 knows 1, … (each pair configured both ways, the newer one with the
    // endpoint). Nobody is configured with anyone two links away.
    let n = 6;
    let mut sim = Sim::new(n);
    for i in 1..n {
        sim.configure(i, i - 1, true);
        sim.configure(i - 1, i, false);
    }
    sim.run(50, Duration::from_millis(100));
    for i in 0..n {
        assert_eq!(sim.knows(i), all_but(n, i), "node {i}");
        let admitted: BTreeSet<usize> = sim.nodes[i]
            .admitted
            .iter()
            .filter_map(|a| match a {
                Action::Admit {
                    key, allowed_ips, ..
                } => {
                    let j = sim.index(key).unwrap();
                    assert_eq!(allowed_ips, &vec![host(j)], "admitted with its claim");
                    Some(j)
                }
                _ => None,
            })
            .collect();
        let configured: BTreeSet<usize> = [i.wrapping_sub(1), i + 1]
            .into_iter()
            .filter(|j| *j < n)
            .collect();
        assert_eq!(
            admitted,
            all_but(n, i).difference(&configured).copied().collect(),
            "node {i} admits exactly the members it was not configured with"
        );
        // Every join names who vouched; configured neighbours vouch for themselves.
        for e in &sim.nodes[i].events {
            if let Event::MemberJoined { member, vouched_by } = e {
                let m = sim.index(member).unwrap();
                let v = sim.index(vouched_by).unwrap();
                assert!(m == v || sim.knows(i).contains(&v), "{e:?}");
            }
        }
        assert_eq!(sim.nodes[i].discovery.stats().drops.total(), 0);
    }
    // Every pair ends up in session: each talks to every other directly.
    for i in 0..n {
        assert_eq!(sim.nodes[i].sessions.len(), n - 1, "node {i}");
    }
}

/// A hub and three spokes: every spoke is given the hub only.
fn hub(n: usize) -> Sim {
    let mut sim = Sim::new(n);
    for i in 1..n {
        sim.configure(i, 0, true);
        sim.configure(0, i, false);
    }
    sim.run(30, Duration::from_millis(100));
    for i in 0..n {
        assert_eq!(sim.knows(i), all_but(n, i));
    }
    sim
}

/// A message from `from` to node `to` with the given records (made with `psk`).
fn message(psk: [u8; 32], records: &[MemberRecord], sync: bool) -> Vec<u8> {
    let key = RecordKey::new(&PresharedKey::from_bytes(psk));
    let mut out = vec![0u8; 4096];
    MessageHeader {
        sync,
        count: records.len(),
    }
    .encode(&mut out)
    .unwrap();
    let mut at = MESSAGE_HEADER_LEN;
    for r in records {
        at += r.encode(&key, None, 0, &mut out[at..]).unwrap();
    }
    out.truncate(at);
    out
}

fn record_of(k: PublicKey, version: u64, addresses: Vec<AllowedIp>) -> MemberRecord {
    MemberRecord {
        public_key: k,
        version,
        lifetime_secs: 180,
        left: false,
        addresses,
        endpoints: vec!["192.0.2.9:51820".parse().unwrap()],
    }
}

/// What a node's observable state is, to show a refused input changed none of it.
fn snapshot(d: &Discovery) -> Vec<(PublicKey, u64, Vec<AllowedIp>)> {
    let mut v: Vec<_> = d
        .members()
        .map(|m| {
            (
                m.record.public_key,
                m.record.version,
                m.record.addresses.clone(),
            )
        })
        .collect();
    v.sort_by_key(|(k, _, _)| *k);
    v
}

#[test]
fn forged_oversized_and_malformed_input_is_dropped_counted_and_changes_nothing() {
    let mut sim = hub(4);
    let member = sim.nodes[1].key;
    let now = sim.now;
    let d = &mut sim.nodes[0].discovery;
    let before = snapshot(d);
    let stranger = record_of(key(77), WALL + 10, vec![host(77)]);
    // Made with another PSK: forged (or a node with the wrong mesh PSK).
    d.handle_message(
        now,
        member,
        &message([1; 32], std::slice::from_ref(&stranger), false),
    );
    // A valid record with its MAC altered.
    let mut altered = message(PSK, std::slice::from_ref(&stranger), false);
    altered[40] ^= 1;
    d.handle_message(now, member, &altered);
    // Truncated, foreign version, unknown kind, more records than allowed, trailing bytes.
    let good = message(PSK, std::slice::from_ref(&stranger), false);
    d.handle_message(now, member, &good[..good.len() - 3]);
    d.handle_message(now, member, &[9, 1, 0, 0]);
    d.handle_message(now, member, &[1, 7, 0, 0]);
    d.handle_message(now, member, &[1, 1, 0, 200]);
    let mut oversized = good.clone();
    oversized[4 + 45] = 40; // 40 prefixes
    d.handle_message(now, member, &oversized);
    let stats = d.stats();
    for (reason, n) in [
        (DiscoveryDrop::BadMac, 2),
        (DiscoveryDrop::Truncated, 1),
        (DiscoveryDrop::UnsupportedVersion, 1),
        (DiscoveryDrop::Malformed, 1),
        (DiscoveryDrop::Oversized, 2),
    ] {
        assert_eq!(stats.drops.get(reason), n, "{reason:?}: {:?}", stats.drops);
    }
    assert_eq!(snapshot(d), before, "nothing changed");
    assert!(d.poll_action().is_none() && d.poll_event().is_none());
    // A trailing byte after valid records: the records count, the tail is refused.
    let mut tail = good;
    tail.push(0);
    d.handle_message(now, member, &tail);
    assert_eq!(d.stats().drops.get(DiscoveryDrop::Malformed), 2);
}

#[test]
fn a_peer_that_is_not_a_member_cannot_vouch() {
    let mut sim = Sim::new(2);
    // Node 0 has a configured peer (node 1's key) that never showed a record of its own.
    sim.configure(0, 1, false);
    let now = sim.now;
    let outsider = sim.nodes[1].key;
    let d = &mut sim.nodes[0].discovery;
    let vouched = record_of(key(50), WALL, vec![host(50)]);
    d.handle_message(now, outsider, &message(PSK, &[vouched], true));
    assert_eq!(d.stats().drops.get(DiscoveryDrop::NotMember), 1);
    assert_eq!(d.members().count(), 0);
    assert!(d.poll_action().is_none());
    // It asked for our table (sync) but is no member: it gets nothing.
    assert!(d.poll_transmit().is_none());
}

#[test]
fn on_an_overlapping_claim_the_earlier_record_wins() {
    let mut sim = hub(3);
    let now = sim.now;
    let member = sim.nodes[1].key;
    let d = &mut sim.nodes[0].discovery;
    let first = record_of(key(20), WALL, vec![host(20)]);
    let second = record_of(key(21), WALL - 5, vec!["10.0.0.0/24".parse().unwrap()]);
    let own = record_of(key(22), WALL, vec![host(0)]);
    d.handle_message(
        now,
        member,
        &message(PSK, &[first.clone(), second, own], false),
    );
    assert_eq!(d.stats().drops.get(DiscoveryDrop::AddressOverlap), 2);
    assert!(d.member(&key(20)).is_some());
    assert!(
        d.member(&key(21)).is_none(),
        "overlaps members, even if older"
    );
    assert!(d.member(&key(22)).is_none(), "overlaps our own address");
    // An update of a held member that would overlap leaves its record as it was.
    let mut grab = first.clone();
    grab.version += 1;
    grab.addresses = vec![host(1)];
    d.handle_message(now, member, &message(PSK, &[grab], false));
    assert_eq!(d.stats().drops.get(DiscoveryDrop::AddressOverlap), 3);
    assert_eq!(d.member(&key(20)).unwrap().record, first);
}

#[test]
fn a_flood_of_records_is_bounded_and_counted() {
    let n = 3;
    let mut sim = Sim::new(n);
    for i in 1..n {
        sim.configure(i, 0, true);
        sim.configure(0, i, false);
    }
    let mut small = config();
    small.max_members = 40;
    small.records_per_second = 100;
    sim.nodes[0].discovery =
        Discovery::new(sim.nodes[0].key, &[address(0)], small, 1392, sim.now, WALL);
    for i in 1..n {
        let k = sim.nodes[i].key;
        let now = sim.now;
        sim.nodes[0]
            .discovery
            .add_configured(now, k, vec![host(i)], false);
    }
    sim.run(20, Duration::from_millis(100));
    let flooder = sim.nodes[1].key;
    let now = sim.now;
    let d = &mut sim.nodes[0].discovery;
    let mut sent = 0;
    for batch in 0..100u32 {
        let records: Vec<MemberRecord> = (0..20u32)
            .map(|r| {
                let i = 100 + batch * 20 + r;
                record_of(
                    key(u64::from(i)),
                    WALL,
                    vec![
                        AllowedIp::new(IpAddr::from(i.to_be_bytes().map(|b| b | 0x80)), 32)
                            .unwrap(),
                    ],
                )
            })
            .collect();
        sent += records.len();
        d.handle_message(now, flooder, &message(PSK, &records, false));
    }
    let stats = d.stats();
    assert_eq!(sent, 2000);
    assert!(stats.members <= 40, "{}", stats.members);
    assert!(stats.drops.get(DiscoveryDrop::RateLimited) > 0);
    assert!(
        stats.drops.get(DiscoveryDrop::TableFull) > 0,
        "{:?}",
        stats.drops
    );
    // Outputs are bounded too.
    let mut actions = 0;
    while d.poll_action().is_some() {
        actions += 1;
    }
    assert!(actions <= 40);
}

#[test]
fn a_departed_or_expired_member_is_forgotten() {
    let mut sim = hub(4);
    // Node 3 leaves: its tombstone reaches everyone through the hub.
    let wall = sim.wall;
    sim.nodes[3].discovery.leave(wall);
    sim.drain(3);
    sim.nodes[3].up = false;
    sim.run(5, Duration::from_millis(100));
    let gone = sim.nodes[3].key;
    for i in 0..3 {
        assert!(!sim.knows(i).contains(&3), "node {i} forgot it");
        // It had sessions with everyone and told each itself.
        assert!(sim.nodes[i].events.contains(&Event::MemberLeft {
            member: gone,
            vouched_by: Some(gone)
        }));
    }
    assert!(
        sim.nodes[1]
            .admitted
            .contains(&Action::Forget { key: gone })
    );
    assert!(
        !sim.nodes[0]
            .admitted
            .contains(&Action::Forget { key: gone }),
        "the hub was configured with it: configuration wins"
    );
    // An older record of it cannot bring it back.
    let old = record_of(gone, WALL + 1, vec![host(3)]);
    let now = sim.now;
    let member = sim.nodes[1].key;
    sim.nodes[0]
        .discovery
        .handle_message(now, member, &message(PSK, &[old], false));
    assert!(sim.nodes[0].discovery.member(&gone).is_none());

    // Node 2 stops without a word: after its lifetime it expires everywhere.
    sim.nodes[2].up = false;
    let quiet = sim.nodes[2].key;
    sim.run(200, Duration::from_secs(5));
    for i in 0..2 {
        assert!(!sim.knows(i).contains(&2), "node {i}");
        assert!(sim.nodes[i].events.contains(&Event::MemberLeft {
            member: quiet,
            vouched_by: None
        }));
    }
    // The live pair kept refreshing each other meanwhile.
    assert!(sim.knows(0).contains(&1) && sim.knows(1).contains(&0));
}

#[test]
fn a_restarted_member_replaces_its_old_record_and_gets_the_table_again() {
    let mut sim = hub(4);
    let k3 = sim.nodes[3].key;
    let before = sim.nodes[1].discovery.member(&k3).unwrap().record.version;
    // Node 3 restarts: fresh state, same key, later clock; only its bootstrap peer configured.
    sim.wall += 5_000_000;
    sim.nodes[3].discovery = Discovery::new(k3, &[address(3)], config(), 1392, sim.now, sim.wall);
    sim.nodes[3].peers.clear();
    sim.nodes[3].sessions.clear();
    sim.configure(3, 0, true);
    for i in 0..3 {
        sim.nodes[i].sessions.remove(&k3);
        sim.nodes[i].discovery.session_down(&k3);
    }
    sim.run(30, Duration::from_millis(100));
    assert_eq!(sim.knows(3), all_but(4, 3), "it learned everyone again");
    for i in 0..3 {
        let now = sim.nodes[i].discovery.member(&k3).unwrap().record.version;
        assert!(now > before, "node {i} holds the new record");
    }
    assert!(
        sim.nodes[1].events.contains(&Event::MemberUpdated {
            member: k3,
            vouched_by: sim.nodes[0].key
        }) || sim.nodes[1].events.contains(&Event::MemberUpdated {
            member: k3,
            vouched_by: k3
        })
    );
    // Its old record, echoed back to it, is ignored.
    let own = sim.nodes[3].discovery.own_record().clone();
    let echo = record_of(k3, before, vec![host(3)]);
    let (now, hub_key) = (sim.now, sim.nodes[0].key);
    let d = &mut sim.nodes[3].discovery;
    let stale = d.stats().records_stale;
    d.handle_message(now, hub_key, &message(PSK, &[echo], false));
    assert_eq!(d.own_record(), &own);
    assert_eq!(d.stats().records_stale, stale + 1, "the echo");
}

#[test]
fn a_record_naming_a_new_endpoint_never_moves_a_member() {
    let mut sim = hub(3);
    let now = sim.now;
    let member = sim.nodes[1].key;
    let k2 = sim.nodes[2].key;
    let held = sim.nodes[1].discovery.member(&k2).unwrap().record.clone();
    let mut moved = held.clone();
    moved.version += 1;
    moved.endpoints = vec!["203.0.113.66:6666".parse().unwrap()];
    let d = &mut sim.nodes[0].discovery;
    while d.poll_action().is_some() {}
    d.handle_message(now, member, &message(PSK, &[moved], false));
    assert_eq!(d.member(&k2).unwrap().record.version, held.version + 1);
    assert_eq!(
        d.poll_action(),
        None,
        "no action: the endpoint follows authenticated packets only"
    );
}

#[test]
fn a_record_received_once_is_passed_on_once() {
    let mut sim = hub(5);
    let delivered = sim.delivered;
    let now = sim.now;
    let member = sim.nodes[1].key;
    let fresh = record_of(key(60), WALL, vec![host(60)]);
    sim.nodes[0].discovery.handle_message(
        now,
        member,
        &message(PSK, std::slice::from_ref(&fresh), false),
    );
    sim.drain(0);
    // The hub passes it to the three other spokes, not back to the sender.
    assert_eq!(sim.delivered - delivered, 3);
    // The same record again is stale and goes nowhere.
    let delivered = sim.delivered;
    sim.nodes[0]
        .discovery
        .handle_message(now, member, &message(PSK, &[fresh], false));
    sim.drain(0);
    assert_eq!(sim.delivered, delivered);
}

#[test]
fn bad_settings_name_the_field() {
    let mut c = config();
    c.record_lifetime = Duration::from_secs(1);
    assert_eq!(
        c.validate().unwrap_err().field(),
        "discovery.record_lifetime"
    );
    let mut c = config();
    c.port = 0;
    assert_eq!(c.validate().unwrap_err().field(), "discovery.port");
    let mut c = config();
    c.max_members = 0;
    assert_eq!(c.validate().unwrap_err().field(), "discovery.max_members");
    assert!(config().validate().is_ok());
}

#[test]
fn for_one_version_the_neighbour_with_fewer_members_in_between_becomes_the_next_hop() {
    let mut sim = hub(3);
    let now = sim.now;
    let (one, two) = (sim.nodes[1].key, sim.nodes[2].key);
    let d = &mut sim.nodes[0].discovery;
    let far = record_of(key(30), WALL, vec![host(30)]);
    let with_hops = |hops: u8| {
        let k = RecordKey::new(&PresharedKey::from_bytes(PSK));
        let mut out = vec![0u8; 4096];
        MessageHeader {
            sync: false,
            count: 1,
        }
        .encode(&mut out)
        .unwrap();
        let n = far
            .encode(&k, None, hops, &mut out[MESSAGE_HEADER_LEN..])
            .unwrap();
        out.truncate(MESSAGE_HEADER_LEN + n);
        out
    };
    d.handle_message(now, one, &with_hops(3));
    assert_eq!(d.member(&key(30)).unwrap().vouched_by, one);
    assert_eq!(d.member(&key(30)).unwrap().hops, 3);
    // The same version with fewer members in between: two is the better next hop.
    d.handle_message(now, two, &with_hops(1));
    assert_eq!(d.member(&key(30)).unwrap().vouched_by, two);
    assert_eq!(d.member(&key(30)).unwrap().hops, 1);
    // Not a longer one, nor an equal one.
    d.handle_message(now, one, &with_hops(1));
    d.handle_message(now, one, &with_hops(2));
    assert_eq!(d.member(&key(30)).unwrap().vouched_by, two);
    // The record itself is unchanged throughout.
    assert_eq!(d.member(&key(30)).unwrap().record, far);
}
