//! The first end-to-end batch on real containers (MISSION.md part 8; the names are the seed's).
//! Each test makes its own lab (per-run names and labels) and tears it down, leaving nothing behind.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pnet_mesh::crypto::PresharedKey;
use pnet_mesh_e2e::{Harness, NodeHandle, NodeSpec, preshared_key, udp_roundtrip, udp_silent};
use pnet_mesh_topology::{Network, TopologyError};

const ROUNDTRIP: Duration = Duration::from_secs(15);

fn harness() -> Harness {
    Harness::new(Path::new(env!("CARGO_BIN_EXE_e2e-init"))).unwrap_or_else(|e| panic!("{e}"))
}

/// Nodes `a` (10.77.0.1) and `b` (10.77.0.2) on `net`: `b` starts first knowing `a` by key only,
/// `a` knows `b` by its DNS alias. Each forwards host UDP on :7000 to the other's mesh port 7001,
/// which each exposes to an echo service inside its container.
struct Pair {
    a: NodeHandle,
    b: NodeHandle,
    a_forward: SocketAddr,
    b_forward: SocketAddr,
}

fn pair(
    h: &Harness,
    net: &Network,
    psk_a: Option<&PresharedKey>,
    psk_b: Option<&PresharedKey>,
) -> Pair {
    let mut a = NodeSpec::new("a", "10.77.0.1", net);
    let mut b = NodeSpec::new("b", "10.77.0.2", net);
    b = b.peer(&a.key.public_key(), psk_b, None, "10.77.0.1/32");
    a = a.peer(&b.key.public_key(), psk_a, Some("b:51820"), "10.77.0.2/32");
    for (spec, other) in [(&mut a, "10.77.0.2"), (&mut b, "10.77.0.1")] {
        spec.forwards.push(format!("0.0.0.0:7000={other}:7001"));
        spec.exposes.push("7001=127.0.0.1:9000".into());
        spec.echoes.push("127.0.0.1:9000".into());
    }
    let b = h.start_node(&b).unwrap_or_else(|e| panic!("node b: {e}"));
    let a = h.start_node(&a).unwrap_or_else(|e| panic!("node a: {e}"));
    let ip = |n: &NodeHandle| h.lab.ipv4(&n.container, net).expect("container address");
    let (a_forward, b_forward) = (
        SocketAddr::from((ip(&a), 7000)),
        SocketAddr::from((ip(&b), 7000)),
    );
    Pair {
        a,
        b,
        a_forward,
        b_forward,
    }
}

fn finish(h: Harness) {
    h.lab.teardown();
    assert_eq!(h.lab.resources_left(), 0, "no labeled resource left behind");
}

#[test]
fn test_node_image_name_is_shared_across_harness_instances() {
    let first = harness();
    let second = harness();
    assert_eq!(first.node_image.name, second.node_image.name);
    assert!(
        first
            .node_image
            .name
            .starts_with("localhost/pnet-mesh-node:"),
        "{}",
        first.node_image.name
    );
    assert!(
        !second.node_image.built,
        "the second harness reuses the image the first one resolved"
    );
    assert_ne!(
        first.lab.run_id(),
        second.lab.run_id(),
        "but each run is its own"
    );
    finish(first);
    finish(second);
}

#[test]
fn starts_single_test_node_container_and_waits_for_readiness() {
    let h = harness();
    let net = h.network("single").unwrap();
    let spec = NodeSpec::new("solo", "10.77.0.1", &net);
    let node = h.start_node(&spec).unwrap_or_else(|e| panic!("{e}"));
    let logs = h.lab.logs(&node.container).unwrap();
    assert!(logs.contains("ready"), "{logs}");
    let show = h.show(&node.container).unwrap();
    assert_eq!(show["listening_port"], 51820, "{show}");
    assert_eq!(show["public_key"], spec.key.public_key().to_string());
    assert_eq!(show["mesh_addresses"][0], "10.77.0.1");
    finish(h);
}

#[test]
fn failed_startup_exception_includes_node_logs() {
    let h = harness();
    let net = h.network("broken").unwrap();
    let mut spec = NodeSpec::new("broken", "10.77.0.1", &net);
    spec.interface_extra.push("MTU = 99999".into());
    let err = h
        .start_node(&spec)
        .expect_err("a node with a bad MTU must not start");
    assert!(matches!(err, TopologyError::Exited { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("exited with status 1"), "{text}");
    // The node's own log line, naming the file, the line, the key and the value.
    assert!(
        text.contains("/config/node.conf:5: MTU = \"99999\": not an MTU"),
        "{text}"
    );
    finish(h);
}

#[test]
fn test_node_runs_without_extended_network_permissions() {
    let h = harness();
    let net = h.network("locked").unwrap();
    let p = pair(&h, &net, None, None);
    for node in [&p.a, &p.b] {
        let inspect = h.lab.inspect(&node.container).unwrap();
        let hc = inspect.host_config.expect("host config");
        assert_eq!(
            hc.cap_drop,
            Some(vec!["ALL".to_owned()]),
            "every capability dropped"
        );
        assert!(hc.cap_add.unwrap_or_default().is_empty(), "none added back");
        let security = hc.security_opt.unwrap_or_default();
        assert!(
            security.iter().any(|s| s == "no-new-privileges"),
            "{security:?}"
        );
        assert!(
            !security
                .iter()
                .any(|s| s.contains("seccomp") && s.contains("unconfined")),
            "Docker's default seccomp profile: {security:?}"
        );
        assert_eq!(hc.privileged, Some(false), "not privileged");
        assert!(hc.devices.unwrap_or_default().is_empty(), "no devices");
        let show = h.show(&node.container).unwrap();
        assert!(show["backend"].is_string());
    }
    // And still it carries traffic.
    assert!(
        udp_roundtrip(p.a_forward, b"locked down", ROUNDTRIP).is_some(),
        "a datagram went a -> b and back with no privilege"
    );
    finish(h);
}

#[test]
fn direct_peers_exchange_payloads_in_both_directions() {
    let h = harness();
    let net = h.network("direct").unwrap();
    let p = pair(&h, &net, None, None);
    for i in 0..10 {
        let msg = format!("a to b #{i}");
        assert_eq!(
            udp_roundtrip(p.a_forward, msg.as_bytes(), ROUNDTRIP).as_deref(),
            Some(msg.as_bytes()),
            "through a's --forward, b's --expose and back"
        );
        let msg = format!("b to a #{i}");
        assert_eq!(
            udp_roundtrip(p.b_forward, msg.as_bytes(), ROUNDTRIP).as_deref(),
            Some(msg.as_bytes()),
            "through b's --forward, a's --expose and back"
        );
    }
    let a = h.show(&p.a.container).unwrap();
    let b = h.show(&p.b.container).unwrap();
    let peer = |s: &serde_json::Value| s["peers"][0].clone();
    assert_eq!(peer(&a)["public_key"], p.b.public_key.to_string());
    assert!(peer(&a)["latest_handshake"].as_u64().unwrap() > 0);
    assert!(peer(&b)["transfer_rx"].as_u64().unwrap() > 0);
    assert!(a["forwards"][0]["to_mesh"].as_u64().unwrap() >= 10, "{a}");
    assert!(a["exposes"][0]["from_mesh"].as_u64().unwrap() >= 10, "{a}");
    finish(h);
}

#[test]
fn invalid_psk_peers_do_not_deliver_payloads() {
    let h = harness();
    let net = h.network("badpsk").unwrap();
    let (right, wrong) = (preshared_key(), preshared_key());
    let p = pair(&h, &net, Some(&right), Some(&wrong));
    assert!(
        udp_silent(p.a_forward, b"should not arrive", Duration::from_secs(4)),
        "nothing comes back through a pair with different PSKs"
    );
    for (node, other) in [(&p.a, &p.b), (&p.b, &p.a)] {
        let s = h.show(&node.container).unwrap();
        let peer = &s["peers"][0];
        assert_eq!(peer["public_key"], other.public_key.to_string());
        assert_eq!(peer["latest_handshake"], 0, "no handshake completed: {s}");
        assert_eq!(peer["rx_packets"], 0, "no transport packet accepted: {s}");
    }
    let a = h.show(&p.a.container).unwrap();
    assert!(a["peers"][0]["handshakes_initiated"].as_u64().unwrap() >= 1);
    assert_eq!(a["exposes"][0]["from_mesh"], 0);
    finish(h);
}

#[test]
fn wireguard_peer_container_exchanges_encrypted_packets_with_pnet_mesh_protocol() {
    let h = harness();
    let net = h.network("wggo").unwrap();
    let wg_key = pnet_mesh_e2e::private_key();
    let mut ours = NodeSpec::new("ours", "10.77.0.1", &net);
    ours = ours.peer(&wg_key.public_key(), None, Some("wg:51820"), "10.77.0.9/32");
    ours.forwards.push("0.0.0.0:7000=10.77.0.9:7001".into());
    ours.exposes.push("7001=127.0.0.1:9000".into());
    ours.echoes.push("127.0.0.1:9000".into());
    let wg = h
        .start_wireguard_go(
            "wg",
            &wg_key,
            "10.77.0.9",
            &ours.key.public_key(),
            "10.77.0.1/32",
            &net,
        )
        .unwrap_or_else(|e| panic!("wireguard-go peer: {e}"));
    let node = h.start_node(&ours).unwrap_or_else(|e| panic!("node: {e}"));
    let to = SocketAddr::from((h.lab.ipv4(&node.container, &net).unwrap(), 7000));
    // Ours -> wireguard-go: through our --forward into the tunnel to its echo, and back.
    for i in 0..5 {
        let msg = format!("to wireguard-go #{i}");
        assert_eq!(
            udp_roundtrip(to, msg.as_bytes(), ROUNDTRIP).as_deref(),
            Some(msg.as_bytes())
        );
    }
    // wireguard-go -> ours: from inside its container, through its kernel-side tunnel interface,
    // to our --expose and our echo.
    let (code, out) = h
        .lab
        .exec(
            &wg,
            [
                "/usr/local/bin/e2e-init",
                "--ping",
                "10.77.0.1:7001",
                "from wireguard-go",
            ],
        )
        .unwrap();
    assert_eq!(code, 0, "wireguard-go's datagram came back: {out}");
    assert!(out.contains("from wireguard-go"), "{out}");
    let (_, wg_show) = h
        .lab
        .exec(&wg, ["/usr/bin/wg", "show", "wg0", "dump"])
        .unwrap();
    assert!(
        wg_show.contains(&ours.key.public_key().to_string()),
        "{wg_show}"
    );
    let show = h.show(&node.container).unwrap();
    assert!(
        show["peers"][0]["latest_handshake"].as_u64().unwrap() > 0,
        "{show}"
    );
    assert!(
        show["exposes"][0]["from_mesh"].as_u64().unwrap() >= 1,
        "{show}"
    );
    finish(h);
}

#[test]
fn direct_peers_exchange_non_trivial_payload_size() {
    let h = harness();
    let net = h.network("bigmsg").unwrap();
    // Six MiB that no compression or pattern could fake: a BLAKE2s stream.
    let mut payload = Vec::with_capacity(6 << 20);
    let mut block = pnet_mesh::crypto::blake2s::hash(&[b"pnet-mesh e2e payload"]);
    while payload.len() < 6 << 20 {
        block = pnet_mesh::crypto::blake2s::hash(&[&block]);
        payload.extend_from_slice(&block);
    }
    let digest: String = pnet_mesh::crypto::blake2s::hash(&[&payload])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut a = NodeSpec::new("a", "10.77.0.1", &net);
    let mut b = NodeSpec::new("b", "10.77.0.2", &net);
    b = b.peer(&a.key.public_key(), None, None, "10.77.0.1/32");
    b.extra_args.push("--channel-echo".into());
    a = a.peer(&b.key.public_key(), None, Some("b:51820"), "10.77.0.2/32");
    a.files.push(("payload.bin".into(), payload.clone()));
    a.extra_args.extend([
        "--channel-send".into(),
        "10.77.0.2=/config/payload.bin".into(),
    ]);
    let b = h.start_node(&b).unwrap_or_else(|e| panic!("node b: {e}"));
    let a = h.start_node(&a).unwrap_or_else(|e| panic!("node a: {e}"));
    let started = std::time::Instant::now();
    let sent = loop {
        let s = h.show(&a.container).unwrap();
        if let Some(t) = s["channels"]["sent"].get(0) {
            break t.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no channel transfer finished: {s}\n{}",
            h.lab.logs(&a.container).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("6 MiB there and back in {:?}", started.elapsed());
    assert_eq!(sent["error"], serde_json::Value::Null, "{sent}");
    assert_eq!(sent["bytes"], payload.len(), "{sent}");
    assert_eq!(sent["blake2s"], digest.as_str(), "{sent}");
    assert_eq!(sent["echoed"], true, "the same 6 MiB came back: {sent}");
    let received = h.show(&b.container).unwrap()["channels"]["received"][0].clone();
    assert_eq!(received["bytes"], payload.len(), "{received}");
    assert_eq!(
        received["blake2s"],
        digest.as_str(),
        "b got it intact: {received}"
    );
    finish(h);
}
