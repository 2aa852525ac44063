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

/// Namespaces `<id>a`, `<id>r`, `<id>b`: A 10.201.1.2 — R 10.201.1.1 | 10.201.2.1 — B 10.201.2.2;
/// removed on drop.
struct Lab {
    id: String,
    _lock: support::wg_go::MachineLock,
}

impl Lab {
    fn new() -> Lab {
        if let Err(missing) = support::wg_go::require_root_and_tools() {
            panic!("this test creates network namespaces and veth pairs: {missing}");
        }
        let lock = support::wg_go::machine_lock();
        let id = format!("pm{}{:04x}", std::process::id() % 100_000, rand_u16());
        let lab = Lab { id, _lock: lock };
        let (a, r, b) = (lab.ns("a"), lab.ns("r"), lab.ns("b"));
        for ns in [&a, &r, &b] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        for (side, ns, subnet) in [("a", &a, 1), ("b", &b, 2)] {
            let (outer, inner) = (format!("{}{side}", lab.id), format!("{}r{side}", lab.id));
            run(&[
                "ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            run(&["ip", "link", "set", &outer, "netns", ns]);
            run(&["ip", "link", "set", &inner, "netns", &r]);
            let host = format!("10.201.{subnet}.2/24");
            let gateway = format!("10.201.{subnet}.1");
            run(&["ip", "-n", ns, "addr", "add", &host, "dev", &outer]);
            run(&["ip", "-n", ns, "link", "set", &outer, "up"]);
            run(&["ip", "-n", ns, "route", "add", "default", "via", &gateway]);
            run(&[
                "ip",
                "-n",
                &r,
                "addr",
                "add",
                &format!("{gateway}/24"),
                "dev",
                &inner,
            ]);
            run(&["ip", "-n", &r, "link", "set", &inner, "up"]);
        }
        lab.set_forwarding(false);
        lab
    }

    fn ns(&self, which: &str) -> String {
        format!("{}{which}", self.id)
    }

    /// Opens or cuts the underlay between A and B (R's namespace routing between its links).
    fn set_forwarding(&self, on: bool) {
        let value = format!("net.ipv4.ip_forward={}", u8::from(on));
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns("r"),
            "sysctl",
            "-qw",
            &value,
        ]);
    }

    /// Starts a node on a thread that entered namespace `which`.
    fn node(&self, which: &str, build: impl FnOnce() -> Node + Send) -> Node {
        let path = format!("/run/netns/{}", self.ns(which));
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
        for which in ["a", "r", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(which)])
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

/// Sends from `a` until `b` receives it.
fn exchange(a: &Node, b: &Node, b_ip: IpAddr, payload: &[u8]) {
    let started = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no datagram {payload:?} within 10 s"
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
fn relay_assisted_endpoint_discovery_promotes_direct_after_authenticated_probe() {
    let lab = Lab::new();
    let (a_key, r_key, b_key) = (key(71), key(72), key(73));
    let (a_pub, r_pub, b_pub) = (a_key.public_key(), r_key.public_key(), b_key.public_key());
    let r = lab.node("r", node(&r_key, 2, &[(a_pub, 1, None), (b_pub, 3, None)]));
    let r_port = r.local_addrs()[0].port();
    let at_r = |subnet: u8| SocketAddr::from(([10, 201, subnet, 1], r_port));
    let a = lab.node("a", node(&a_key, 1, &[(r_pub, 2, Some(at_r(1)))]));
    let b = lab.node("b", node(&b_key, 3, &[(r_pub, 2, Some(at_r(2)))]));

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

    // Open the underlay: the next probe is answered, and only then both go direct.
    lab.set_forwarding(true);
    let b_direct = SocketAddr::from(([10, 201, 2, 2], b.local_addrs()[0].port()));
    let a_direct = SocketAddr::from(([10, 201, 1, 2], a.local_addrs()[0].port()));
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
    lab.set_forwarding(false);
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
