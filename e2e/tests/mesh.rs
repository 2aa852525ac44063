//! The mesh on real containers (MISSION.md part 8): relays, relay-assisted promotion, bootstrap
//! discovery, multi-hop routes across separated segments, restart, and the six-node topology.
//! Segments are separate Docker networks (IPv4 is isolated between them); relays are containers on
//! two networks. Assertions come from the nodes' own `show --json` (paths, relays, routes, counters).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::{PresharedKey, PublicKey};
use pnet_mesh_e2e::{Cut, Harness, NodeHandle, NodeSpec, peer_of, preshared_key, udp_roundtrip};
use pnet_mesh_topology::Network;

const ROUNDTRIP: Duration = Duration::from_secs(20);

fn harness() -> Harness {
    Harness::new(Path::new(env!("CARGO_BIN_EXE_e2e-init"))).unwrap_or_else(|e| panic!("{e}"))
}

fn finish(h: Harness) {
    h.lab.teardown();
    assert_eq!(h.lab.resources_left(), 0, "no labeled resource left behind");
}

/// A member node `name` at 10.78.0.`n` on `net`, joined with `psk`, serving the echo.
fn member(name: &str, n: u8, net: &Network, psk: &PresharedKey) -> NodeSpec {
    NodeSpec::new(name, &format!("10.78.0.{n}"), net)
        .mesh_psk(psk)
        .with_echo()
}

fn mesh(n: u8) -> String {
    format!("10.78.0.{n}")
}

/// `spec` knows `other` (configured; `endpoint` if given).
fn knows(spec: NodeSpec, other: &NodeSpec, n: u8, endpoint: Option<&str>) -> NodeSpec {
    let key = other.key.public_key();
    spec.peer(&key, None, endpoint, &format!("{}/32", mesh(n)))
}

fn start(h: &Harness, spec: &NodeSpec) -> NodeHandle {
    h.start_node(spec)
        .unwrap_or_else(|e| panic!("node {}: {e}", spec.name))
}

/// Polls `show` of `node` until `done` holds for it (returns that status) or `timeout`.
fn wait_show(
    h: &Harness,
    node: &NodeHandle,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let s = h.show(&node.container).unwrap();
        if done(&s) {
            return s;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out waiting for {what}: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn via_of(status: &serde_json::Value, key: &PublicKey) -> Option<String> {
    peer_of(status, key).and_then(|p| p["via"].as_str().map(str::to_owned))
}

fn forwarded(h: &Harness, node: &NodeHandle) -> u64 {
    h.show(&node.container).unwrap()["relay"]["forwarded"]
        .as_u64()
        .unwrap_or(0)
}

fn host_addr(h: &Harness, node: &NodeHandle, net: &Network, port: u16) -> SocketAddr {
    SocketAddr::from((h.lab.ipv4(&node.container, net).unwrap(), port))
}

#[test]
fn wireguard_relay_container_forwards_opaque_exchange_to_peer_container() {
    let h = harness();
    let (net_a, net_b) = (h.network("ra").unwrap(), h.network("rb").unwrap());
    let psk = preshared_key();
    // a on net-a, b on net-b, r on both: a and b cannot reach each other.
    let mut r = member("r", 2, &net_a, &psk).also_on(&net_b, "r");
    let mut a = member("a", 1, &net_a, &psk);
    let mut b = member("b", 3, &net_b, &psk);
    r = knows(knows(r, &a, 1, None), &b, 3, None);
    a = knows(a, &r, 2, Some("r:51820")).forward_to(7003, &mesh(3));
    b = knows(b, &r, 2, Some("r:51820")).forward_to(7001, &mesh(1));
    let r = start(&h, &r);
    let a = start(&h, &a);
    let b = start(&h, &b);
    for i in 0..5 {
        let msg = format!("a to b through r #{i}");
        assert_eq!(
            udp_roundtrip(host_addr(&h, &a, &net_a, 7003), msg.as_bytes(), ROUNDTRIP).as_deref(),
            Some(msg.as_bytes())
        );
        let msg = format!("b to a through r #{i}");
        assert_eq!(
            udp_roundtrip(host_addr(&h, &b, &net_b, 7001), msg.as_bytes(), ROUNDTRIP).as_deref(),
            Some(msg.as_bytes())
        );
    }
    let (sa, sb, sr) = (
        h.show(&a.container).unwrap(),
        h.show(&b.container).unwrap(),
        h.show(&r.container).unwrap(),
    );
    assert_eq!(
        via_of(&sa, &b.public_key),
        Some(r.public_key.to_string()),
        "{sa:#}"
    );
    assert_eq!(
        via_of(&sb, &a.public_key),
        Some(r.public_key.to_string()),
        "{sb:#}"
    );
    // The relay carried frames it cannot open: it holds sessions with a and b only.
    assert!(sr["relay"]["forwarded"].as_u64().unwrap() >= 20, "{sr:#}");
    let r_peers: Vec<&str> = sr["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["public_key"].as_str().unwrap())
        .collect();
    assert_eq!(r_peers.len(), 2, "{sr:#}");
    assert!(r_peers.contains(&a.public_key.to_string().as_str()));
    assert!(r_peers.contains(&b.public_key.to_string().as_str()));
    assert_eq!(
        sr["exposes"][0]["from_mesh"], 0,
        "nothing of the pair reached r's own services"
    );
    finish(h);
}

#[test]
fn relay_assisted_endpoint_discovery_promotes_direct_after_authenticated_probe() {
    let h = harness();
    let net = h.network("promote").unwrap();
    let psk = preshared_key();
    let mut r = member("r", 2, &net, &psk);
    let mut a = member("a", 1, &net, &psk);
    let mut b = member("b", 3, &net, &psk);
    r = knows(knows(r, &a, 1, None), &b, 3, None);
    a = knows(a, &r, 2, Some("r:51820")).forward_to(7003, &mesh(3));
    b = knows(b, &r, 2, Some("r:51820"));
    // a and b share the network but the host's firewall cuts them apart until the test opens it.
    let r = start(&h, &r);
    let b = start(&h, &b);
    let b_ip = h.lab.ipv4(&b.container, &net).unwrap();
    // a's address exists once its container does; a learns of b only through r, well after the
    // cut is in place.
    let a_handle = h.create_node(&a).unwrap();
    let a_ip = h.lab.ipv4(&a_handle, &net).unwrap();
    let cut = Cut::between(a_ip, b_ip).unwrap_or_else(|e| panic!("{e}"));
    h.lab
        .wait_for_log(
            &a_handle,
            pnet_mesh_e2e::READY,
            pnet_mesh_e2e::READY_TIMEOUT,
        )
        .unwrap();
    let a = NodeHandle {
        container: a_handle,
        public_key: a.key.public_key(),
    };
    let to_b = SocketAddr::from((a_ip, 7003));
    assert!(udp_roundtrip(to_b, b"through the relay first", ROUNDTRIP).is_some());
    let s = wait_show(&h, &a, "a to reach b through r", ROUNDTRIP, |s| {
        via_of(s, &b.public_key).is_some()
    });
    assert_eq!(via_of(&s, &b.public_key), Some(r.public_key.to_string()));
    std::thread::sleep(Duration::from_secs(2));
    let s = h.show(&a.container).unwrap();
    assert!(
        via_of(&s, &b.public_key).is_some(),
        "no promotion while cut: {s:#}"
    );
    assert_eq!(s["relay"]["promotions"], 0);
    assert!(forwarded(&h, &r) > 0, "r relayed the pair");

    // Open the path: only an authenticated probe over it promotes the pair.
    drop(cut);
    let b_direct = format!("{b_ip}:51820");
    let s = wait_show(
        &h,
        &a,
        "a to be promoted to b's direct endpoint",
        ROUNDTRIP,
        |s| peer_of(s, &b.public_key).is_some_and(|p| p["endpoint"] == b_direct.as_str()),
    );
    assert!(s["relay"]["promotions"].as_u64().unwrap() >= 1, "{s:#}");
    assert_eq!(via_of(&s, &b.public_key), None);
    let before = forwarded(&h, &r);
    for i in 0..10 {
        let msg = format!("direct #{i}");
        assert_eq!(
            udp_roundtrip(to_b, msg.as_bytes(), ROUNDTRIP).as_deref(),
            Some(msg.as_bytes())
        );
    }
    assert!(
        forwarded(&h, &r) <= before + 4,
        "the relay no longer carries the pair"
    );
    finish(h);
}

#[test]
fn bootstrap_peer_discovery_exchanges_payloads_between_learned_peers() {
    let h = harness();
    let net = h.network("boot").unwrap();
    let psk = preshared_key();
    // A chain: each node is given only the one before it as a bootstrap peer.
    let specs: Vec<NodeSpec> = (1..=4u8)
        .map(|n| member(&format!("n{n}"), n, &net, &psk))
        .collect();
    let mut nodes = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let mut spec = spec.clone();
        if i > 0 {
            let prev = &specs[i - 1];
            spec = knows(spec, prev, i as u8, Some(&format!("{}:51820", prev.name)));
        }
        if i + 1 < specs.len() {
            spec = knows(spec, &specs[i + 1], i as u8 + 2, None);
        }
        for j in 1..=4u8 {
            if j != i as u8 + 1 {
                spec = spec.forward_to(7000 + u16::from(j), &mesh(j));
            }
        }
        nodes.push(start(&h, &spec));
    }
    // Every ordered pair, including those that only learned each other.
    for (i, node) in nodes.iter().enumerate() {
        for j in 1..=4u16 {
            if j as usize != i + 1 {
                let to = host_addr(&h, node, &net, 7000 + j);
                let msg = format!("n{} to n{j}", i + 1);
                assert_eq!(
                    udp_roundtrip(to, msg.as_bytes(), ROUNDTRIP).as_deref(),
                    Some(msg.as_bytes()),
                    "{msg}"
                );
            }
        }
    }
    // Directly: every node ends up holding every other as a peer at its own address.
    for (i, node) in nodes.iter().enumerate() {
        let s = wait_show(&h, node, "every member direct", ROUNDTRIP, |s| {
            s["peers"].as_array().is_some_and(|p| {
                p.len() == 3
                    && p.iter()
                        .all(|p| p["via"].is_null() && p["latest_handshake"] != 0)
            })
        });
        assert_eq!(
            s["discovery"]["members"].as_array().unwrap().len(),
            3,
            "n{}",
            i + 1
        );
    }
    finish(h);
}

#[test]
fn multi_hop_route_crosses_separated_container_segments() {
    let h = harness();
    let nets: Vec<Network> = ["ma", "mb", "mc"]
        .iter()
        .map(|n| h.network(n).unwrap())
        .collect();
    let psk = preshared_key();
    // a —(net-a)— r1 —(net-b)— r2 —(net-c)— c
    let a = member("a", 1, &nets[0], &psk);
    let r1 = member("r1", 2, &nets[0], &psk).also_on(&nets[1], "r1");
    let r2 = member("r2", 3, &nets[1], &psk).also_on(&nets[2], "r2");
    let c = member("c", 4, &nets[2], &psk);
    let r2s = knows(knows(r2.clone(), &r1, 2, None), &c, 4, None);
    let r1s = knows(knows(r1.clone(), &a, 1, None), &r2, 3, Some("r2:51820"));
    let a_s = knows(a.clone(), &r1, 2, Some("r1:51820")).forward_to(7004, &mesh(4));
    let c_s = knows(c.clone(), &r2, 3, Some("r2:51820")).forward_to(7001, &mesh(1));
    let r2 = start(&h, &r2s);
    let r1 = start(&h, &r1s);
    let a = start(&h, &a_s);
    let c = start(&h, &c_s);
    let msg = b"three segments, two relays";
    assert_eq!(
        udp_roundtrip(host_addr(&h, &a, &nets[0], 7004), msg, ROUNDTRIP).as_deref(),
        Some(&msg[..])
    );
    assert_eq!(
        udp_roundtrip(host_addr(&h, &c, &nets[2], 7001), b"and back", ROUNDTRIP).as_deref(),
        Some(&b"and back"[..])
    );
    let sa = h.show(&a.container).unwrap();
    assert_eq!(via_of(&sa, &c.public_key), Some(r1.public_key.to_string()));
    // r1's route to c goes through r2, and both relays forwarded.
    let sr1 = h.show(&r1.container).unwrap();
    let routes = sr1["relay"]["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r["member"] == c.public_key.to_string().as_str()
                && r["via"] == r2.public_key.to_string().as_str()),
        "{sr1:#}"
    );
    assert!(forwarded(&h, &r1) > 0 && forwarded(&h, &r2) > 0);
    assert_eq!(
        sr1["relay"]["drops"].get("HopLimit"),
        None,
        "nothing circulated: {sr1:#}"
    );
    finish(h);
}

#[test]
fn restarted_node_rejoins_without_breaking_unrelated_peers() {
    let h = harness();
    let net = h.network("restart").unwrap();
    let psk = preshared_key();
    let a = member("a", 1, &net, &psk);
    let b = member("b", 2, &net, &psk);
    let c = member("c", 3, &net, &psk);
    let a_s = knows(knows(a.clone(), &b, 2, None), &c, 3, None).forward_to(7002, &mesh(2));
    let b_s = knows(b.clone(), &a, 1, Some("a:51820"));
    let c_s = knows(c.clone(), &a, 1, Some("a:51820")).forward_to(7001, &mesh(1));
    let a = start(&h, &a_s);
    let b = start(&h, &b_s);
    let c = start(&h, &c_s);
    let a_to_b = host_addr(&h, &a, &net, 7002);
    let c_to_a = host_addr(&h, &c, &net, 7001);
    assert!(udp_roundtrip(a_to_b, b"warm up a-b", ROUNDTRIP).is_some());
    assert!(udp_roundtrip(c_to_a, b"warm up c-a", ROUNDTRIP).is_some());
    // A stream a -> b (one datagram every 20 ms, each answered) while c restarts.
    let stream = std::thread::spawn(move || {
        let mut lost = 0;
        let mut sent = 0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            let msg = format!("stream #{sent}");
            if udp_roundtrip(a_to_b, msg.as_bytes(), Duration::from_secs(2)).is_none() {
                lost += 1;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        (sent, lost)
    });
    std::thread::sleep(Duration::from_millis(500));
    h.lab.restart(&c.container).unwrap();
    let restarted = Instant::now();
    let back = udp_roundtrip(c_to_a, b"c is back", ROUNDTRIP);
    let rejoined = restarted.elapsed();
    let (sent, lost) = stream.join().unwrap();
    println!("c answered again {rejoined:?} after its restart; stream: {sent} sent, {lost} lost");
    assert!(back.is_some(), "the restarted node reaches a again");
    assert_eq!(
        lost, 0,
        "the a-b stream lost nothing while c restarted ({sent} sent)"
    );
    let sa = h.show(&a.container).unwrap();
    let pc = peer_of(&sa, &c.public_key).unwrap();
    assert!(pc["latest_handshake"].as_u64().unwrap() > 0);
    let sb = h.show(&b.container).unwrap();
    assert!(
        sb["exposes"][0]["from_mesh"].as_u64().unwrap() >= u64::from(sent as u32),
        "b answered the whole stream: {sb:#}"
    );
    finish(h);
}

#[test]
fn six_node_topology_matches_compose_smoke_route_with_docker_dns_aliases() {
    let h = harness();
    let (na, nb, nc) = (
        h.network("six-a").unwrap(),
        h.network("six-b").unwrap(),
        h.network("six-c").unwrap(),
    );
    let psk = preshared_key();
    // a1, a2 on net-a; r1 on net-a and net-b; b1 on net-b; r2 on net-b and net-c; c1 on net-c.
    let names = ["a1", "a2", "r1", "b1", "r2", "c1"];
    let home = [&na, &na, &na, &nb, &nb, &nc];
    let mut specs: Vec<NodeSpec> = names
        .iter()
        .enumerate()
        .map(|(i, n)| member(n, i as u8 + 1, home[i], &psk))
        .collect();
    specs[2] = specs[2].clone().also_on(&nb, "r1");
    specs[4] = specs[4].clone().also_on(&nc, "r2");
    // Bootstrap by DNS alias: a1, a2 -> r1; b1 -> r1 (on net-b); r2 -> r1; c1 -> r2.
    let bootstrap = [(0, 2), (1, 2), (3, 2), (4, 2), (5, 4)];
    let keys: Vec<NodeSpec> = specs.clone();
    for (from, to) in bootstrap {
        let endpoint = format!("{}:51820", names[to]);
        specs[from] = knows(
            specs[from].clone(),
            &keys[to],
            to as u8 + 1,
            Some(&endpoint),
        );
        specs[to] = knows(specs[to].clone(), &keys[from], from as u8 + 1, None);
    }
    for (i, spec) in specs.iter_mut().enumerate() {
        for j in 0..6u8 {
            if usize::from(j) != i {
                *spec = spec.clone().forward_to(7001 + u16::from(j), &mesh(j + 1));
            }
        }
    }
    // Relays first, so the aliases others bootstrap from resolve.
    let mut nodes: Vec<Option<NodeHandle>> = vec![None; 6];
    for i in [2, 4, 0, 1, 3, 5] {
        nodes[i] = Some(start(&h, &specs[i]));
    }
    let nodes: Vec<NodeHandle> = nodes.into_iter().map(Option::unwrap).collect();
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..6u16 {
            if usize::from(j) == i {
                continue;
            }
            let to = host_addr(&h, node, home[i], 7001 + j);
            let msg = format!("{} to {}", names[i], names[usize::from(j)]);
            assert_eq!(
                udp_roundtrip(to, msg.as_bytes(), ROUNDTRIP).as_deref(),
                Some(msg.as_bytes()),
                "{msg}"
            );
        }
    }
    // a1 -> c1 takes a1 -> r1 -> r2 -> c1.
    let key = |i: usize| nodes[i].public_key.to_string();
    // (If a2 relayed c1's record to a1 first, the shorter path through r1 takes over within a
    // second: wait for it rather than race it.)
    let c1_key = nodes[5].public_key;
    let a1 = wait_show(&h, &nodes[0], "a1 to reach c1 through r1", ROUNDTRIP, |s| {
        via_of(s, &c1_key) == Some(key(2))
    });
    assert_eq!(
        via_of(&a1, &c1_key),
        Some(key(2)),
        "a1 reaches c1 through r1"
    );
    let r1 = h.show(&nodes[2].container).unwrap();
    let r1_routes = r1["relay"]["routes"].as_array().unwrap();
    assert!(
        r1_routes
            .iter()
            .any(|r| r["member"] == key(5).as_str() && r["via"] == key(4).as_str()),
        "r1 routes c1 through r2: {r1:#}"
    );
    let r2 = h.show(&nodes[4].container).unwrap();
    assert!(
        via_of(&r2, &nodes[5].public_key).is_none(),
        "r2 reaches c1 directly"
    );
    let c1 = h.show(&nodes[5].container).unwrap();
    assert_eq!(
        via_of(&c1, &nodes[0].public_key),
        Some(key(4)),
        "c1 reaches a1 through r2"
    );
    assert!(r1["relay"]["forwarded"].as_u64().unwrap() > 0);
    assert!(r2["relay"]["forwarded"].as_u64().unwrap() > 0);
    // Same-segment members talk directly (once a probe over net-a promoted them).
    let a2_key = nodes[1].public_key;
    wait_show(&h, &nodes[0], "a1 to reach a2 directly", ROUNDTRIP, |s| {
        via_of(s, &a2_key).is_none()
    });
    finish(h);
}
