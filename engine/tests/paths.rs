//! Relayed pairs in network namespaces this test creates: A and B each reach the relay R over a veth
//! pair of their own, and reach each other only when R's namespace forwards IP between its two links
//! (`net.ipv4.ip_forward`). Nodes run in this process; each is started on a thread that entered its
//! namespace, so its sockets live there.
//!
//! Needs root (namespaces, veth) and `ip`; without them the test fails naming what is missing.
// Entering a namespace is one `setns` call; std has no wrapper for it.
#![allow(unsafe_code)]

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey};
use pnet_mesh::proto::path::is_relayed;
use pnet_mesh::{Event, Node, NodeError, PeerConfig};

const MESH_PSK: [u8; 32] = [0x6d; 32];
const PORT: u16 = 51800;

fn key(seed: u64) -> PrivateKey {
    PrivateKey::generate(&mut SeededRng::new(seed))
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("`{}` cannot run ({e}): this test needs iproute2", args[0]));
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces in a chain, `<id><name>` each, joined by veth pairs: link `k` (from 1) joins the
/// `k`-th and `k+1`-th namespace, the left end at 10.`net`.`k`.1/24, the right end at .2. Nothing
/// is routed beyond a link unless a test adds it. Removed on drop.
struct Lab {
    id: String,
    names: Vec<&'static str>,
    net: u8,
    _lock: support::wg_go::MachineLock,
}

impl Lab {
    fn chain(net: u8, names: &[&'static str]) -> Lab {
        if let Err(missing) = support::wg_go::require_root_and_tools() {
            panic!("this test creates network namespaces and veth pairs: {missing}");
        }
        let lock = support::wg_go::machine_lock();
        let id = format!("pm{}{:04x}", std::process::id() % 100_000, rand_u16());
        let lab = Lab {
            id,
            names: names.to_vec(),
            net,
            _lock: lock,
        };
        for name in names {
            let ns = lab.ns(name);
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        for (k, pair) in names.windows(2).enumerate() {
            let link = k as u8 + 1;
            let (left, right) = (lab.ns(pair[0]), lab.ns(pair[1]));
            let (l_if, r_if) = (format!("{}l{link}", lab.id), format!("{}r{link}", lab.id));
            run(&[
                "ip", "link", "add", &l_if, "type", "veth", "peer", "name", &r_if,
            ]);
            for (ns, ifname, host) in [(&left, &l_if, 1), (&right, &r_if, 2)] {
                run(&["ip", "link", "set", ifname, "netns", ns]);
                let addr = format!("10.{net}.{link}.{host}/24");
                run(&["ip", "-n", ns, "addr", "add", &addr, "dev", ifname]);
                run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            }
        }
        lab
    }

    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.id)
    }

    /// The address of namespace `name` on link `link`.
    fn addr(&self, name: &str, link: u8) -> std::net::Ipv4Addr {
        let k = self.names.iter().position(|n| *n == name).unwrap() as u8;
        let host = if k + 1 == link { 1 } else { 2 };
        std::net::Ipv4Addr::new(10, self.net, link, host)
    }

    /// A default route in namespace `name` via `gateway`.
    fn default_route(&self, name: &str, gateway: std::net::Ipv4Addr) {
        run(&[
            "ip",
            "-n",
            &self.ns(name),
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ]);
    }

    /// Opens or cuts IP forwarding in namespace `name`.
    fn set_forwarding(&self, name: &str, on: bool) {
        let value = format!("net.ipv4.ip_forward={}", u8::from(on));
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns(name),
            "sysctl",
            "-qw",
            &value,
        ]);
    }

    /// Starts a node on a thread that entered namespace `name`.
    fn node(&self, name: &str, build: impl FnOnce() -> Node + Send) -> Node {
        let path = format!("/run/netns/{}", self.ns(name));
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).expect("open the namespace");
                // SAFETY: `setns` on this thread only, with a namespace fd that stays open for
                // the call; the thread's sockets and the threads it spawns then live there.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns into {path}");
                build()
            })
            .join()
            .expect("node thread")
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(name)])
                .status();
        }
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ (t.as_secs() as u32)) as u16
}

fn mesh(i: u8) -> IpAddr {
    IpAddr::from([10, 79, 0, i])
}

fn node(
    private: &PrivateKey,
    me: u8,
    peers: &[(PublicKey, u8, Option<SocketAddr>)],
) -> impl FnOnce() -> Node + Send + use<> {
    let private = private.clone();
    let peers = peers.to_vec();
    move || {
        let mut b = Node::builder(private)
            .listen("0.0.0.0:0".parse().unwrap())
            .mesh_address(mesh(me))
            .data_shards(1)
            .mesh_psk(PresharedKey::from_bytes(MESH_PSK));
        for (k, ip, endpoint) in peers {
            let mut p = PeerConfig::new(k).allowed_ip(format!("{}/32", mesh(ip)).parse().unwrap());
            if let Some(e) = endpoint {
                p = p.endpoint(e).persistent_keepalive(1);
            }
            b = b.peer(p);
        }
        b.start().expect("start a node")
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// Sends from `a` until `b` receives it (a handshake lost on the way is retried 5 s later, as the
/// protocol spaces them).
fn exchange(a: &Node, b: &Node, b_ip: IpAddr, payload: &[u8]) {
    let started = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no datagram {:?} within 20 s",
            String::from_utf8_lossy(payload)
        );
        match a.send_to(payload, SocketAddr::new(b_ip, PORT)) {
            Ok(()) | Err(NodeError::NoRoute(_)) => {}
            Err(e) => panic!("send: {e}"),
        }
        if let Ok((n, _)) = b.recv_from_timeout(&mut buf, Duration::from_millis(200))
            && &buf[..n] == payload
        {
            return;
        }
    }
}

fn endpoint_of(node: &Node, of: &PublicKey) -> Option<SocketAddr> {
    node.peer_stats()
        .unwrap()
        .into_iter()
        .find(|(_, s)| s.public_key == *of)
        .and_then(|(_, s)| s.endpoint)
}

/// Waits until `node` has reported `event` (events seen meanwhile are kept in `seen`).
fn wait_event(node: &Node, seen: &mut Vec<Event>, event: Event) {
    wait_until(&format!("{event:?}"), Duration::from_secs(5), || {
        seen.extend(std::iter::from_fn(|| node.poll_event()).map(|e| e.event));
        seen.contains(&event)
    });
}

#[test]
fn a_relayed_pair_in_namespaces_is_promoted_by_an_authenticated_probe_and_falls_back_when_cut() {
    // A —(link 1)— R —(link 2)— B; R routes between its links only while forwarding is on.
    let lab = Lab::chain(201, &["a", "r", "b"]);
    lab.default_route("a", lab.addr("r", 1));
    lab.default_route("b", lab.addr("r", 2));
    lab.set_forwarding("r", false);
    let (a_key, r_key, b_key) = (key(71), key(72), key(73));
    let (a_pub, r_pub, b_pub) = (a_key.public_key(), r_key.public_key(), b_key.public_key());
    let r = lab.node("r", node(&r_key, 2, &[(a_pub, 1, None), (b_pub, 3, None)]));
    let r_port = r.local_addrs()[0].port();
    let a = lab.node(
        "a",
        node(
            &a_key,
            1,
            &[(r_pub, 2, Some((lab.addr("r", 1), r_port).into()))],
        ),
    );
    let b = lab.node(
        "b",
        node(
            &b_key,
            3,
            &[(r_pub, 2, Some((lab.addr("r", 2), r_port).into()))],
        ),
    );

    // Each knows only R; discovery teaches them each other, through R, which vouches.
    for (n, other) in [(&a, b_pub), (&b, a_pub)] {
        wait_until(
            "the members to learn each other",
            Duration::from_secs(10),
            || {
                n.members()
                    .unwrap()
                    .iter()
                    .map(|m| m.record.public_key)
                    .collect::<BTreeSet<_>>()
                    .contains(&other)
            },
        );
    }
    // They talk through the relay: the underlay between them is cut.
    exchange(&a, &b, mesh(3), b"through the relay");
    exchange(&b, &a, mesh(1), b"and back");
    assert!(
        is_relayed(&endpoint_of(&a, &b_pub).unwrap()),
        "A reaches B through R"
    );
    assert!(
        is_relayed(&endpoint_of(&b, &a_pub).unwrap()),
        "B reaches A through R"
    );
    let mut seen = Vec::new();
    wait_event(
        &a,
        &mut seen,
        Event::RelayChosen {
            member: b_pub,
            relay: r_pub,
        },
    );
    // Probes to B's candidate (its reflexive endpoint as R sees it) go unanswered: no promotion.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = a.path_stats().unwrap();
    assert!(stats.probes_sent >= 2, "{stats:?}");
    assert_eq!(
        (stats.members, stats.direct, stats.promotions),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(is_relayed(&endpoint_of(&a, &b_pub).unwrap()));

    // The relay holds sessions with A and B only: nothing of the pair's own session.
    let mut r_peers: Vec<PublicKey> = r
        .peer_stats()
        .unwrap()
        .iter()
        .map(|(_, s)| s.public_key)
        .collect();
    r_peers.sort_by_key(|k| *k.as_bytes());
    let mut pair = vec![a_pub, b_pub];
    pair.sort_by_key(|k| *k.as_bytes());
    assert_eq!(r_peers, pair);
    assert!(r.relay_stats().forwarded >= 2);

    // Open the underlay: the next probe is answered, and only then both go direct.
    lab.set_forwarding("r", true);
    let b_direct = SocketAddr::from((lab.addr("b", 2), b.local_addrs()[0].port()));
    let a_direct = SocketAddr::from((lab.addr("a", 1), a.local_addrs()[0].port()));
    let took = wait_until(
        "A to be promoted to B's direct endpoint",
        Duration::from_secs(5),
        || endpoint_of(&a, &b_pub) == Some(b_direct),
    );
    wait_until("B to reach A directly", Duration::from_secs(5), || {
        endpoint_of(&b, &a_pub) == Some(a_direct)
    });
    println!("promoted {took:?} after the underlay opened");
    wait_event(
        &a,
        &mut seen,
        Event::PathPromoted {
            member: b_pub,
            endpoint: b_direct,
        },
    );
    let forwarded = r.relay_stats().forwarded;
    for i in 0..20u32 {
        exchange(&a, &b, mesh(3), format!("direct #{i}").as_bytes());
    }
    assert!(
        r.relay_stats().forwarded <= forwarded + 2,
        "the relay no longer carries the pair"
    );

    // Cut it again: within three probe intervals the pair is back on the relay.
    lab.set_forwarding("r", false);
    let cut = Instant::now();
    let fell_back = wait_until(
        "A to fall back to the relay",
        Duration::from_secs(8),
        || endpoint_of(&a, &b_pub).is_some_and(|e| is_relayed(&e)),
    );
    println!("fell back {fell_back:?} after the cut");
    // Three intervals of silence after the last answer, which came at most an interval before the
    // cut; 20 % tolerance for this shared machine.
    assert!(
        fell_back <= Duration::from_millis(4800),
        "fallback took {fell_back:?}"
    );
    wait_event(
        &a,
        &mut seen,
        Event::PathFellBack {
            member: b_pub,
            relay: r_pub,
        },
    );
    wait_until("B to fall back too", Duration::from_secs(8), || {
        endpoint_of(&b, &a_pub).is_some_and(|e| is_relayed(&e))
    });
    exchange(&a, &b, mesh(3), b"through the relay again");
    exchange(&b, &a, mesh(1), b"and back again");
    let stats = a.path_stats().unwrap();
    assert_eq!((stats.promotions, stats.fallbacks), (1, 1), "{stats:?}");
    let _ = cut;
}

#[test]
fn a_multi_hop_route_learned_from_members_crosses_three_separated_segments() {
    // A —(1)— R1 —(2)— R2 —(3)— B, nothing routed beyond a link: A and B learn each other through
    // the relays and reach each other only through both of them.
    let lab = Lab::chain(202, &["a", "r1", "r2", "b"]);
    let keys: Vec<PrivateKey> = (81..85).map(key).collect();
    let pubs: Vec<PublicKey> = keys.iter().map(PrivateKey::public_key).collect();
    let [a_pub, r1_pub, r2_pub, b_pub] = pubs[..] else {
        unreachable!()
    };
    let r2 = lab.node(
        "r2",
        node(&keys[2], 3, &[(r1_pub, 2, None), (b_pub, 4, None)]),
    );
    let port = |n: &Node| n.local_addrs()[0].port();
    let r1 = lab.node(
        "r1",
        node(
            &keys[1],
            2,
            &[
                (a_pub, 1, None),
                (r2_pub, 3, Some((lab.addr("r2", 2), port(&r2)).into())),
            ],
        ),
    );
    let a = lab.node(
        "a",
        node(
            &keys[0],
            1,
            &[(r1_pub, 2, Some((lab.addr("r1", 1), port(&r1)).into()))],
        ),
    );
    let b = lab.node(
        "b",
        node(
            &keys[3],
            4,
            &[(r2_pub, 3, Some((lab.addr("r2", 3), port(&r2)).into()))],
        ),
    );
    for (n, other) in [(&a, b_pub), (&b, a_pub)] {
        wait_until(
            "the far members to learn each other",
            Duration::from_secs(15),
            || {
                n.members()
                    .unwrap()
                    .iter()
                    .any(|m| m.record.public_key == other)
            },
        );
    }
    exchange(&a, &b, mesh(4), b"across three segments");
    exchange(&b, &a, mesh(1), b"and back across them");
    for i in 0..10u32 {
        exchange(&a, &b, mesh(4), format!("#{i}").as_bytes());
    }
    // Each end reaches the other through its own relay; each relay forwarded, none refused.
    assert!(is_relayed(&endpoint_of(&a, &b_pub).unwrap()));
    assert!(is_relayed(&endpoint_of(&b, &a_pub).unwrap()));
    for (relay, name) in [(&r1, "R1"), (&r2, "R2")] {
        let s = relay.relay_stats();
        assert!(s.forwarded >= 12, "{name} forwarded the exchange: {s:?}");
        println!("{name}: {s:?}");
    }
    // A frame from A to B went two relay hops: each one's hop limit was spent on the way, which
    // the relays' counters show as forwarded frames, not drops of a circulating packet.
    assert_eq!(
        r1.relay_stats()
            .drops
            .get(pnet_mesh::mesh::relay::RelayDrop::HopLimit),
        0
    );
}
