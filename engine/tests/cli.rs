//! The `pnet-mesh` command on loopback, with no privilege: keys byte-compatible with `wg`, bad
//! configuration refused naming file, line and key, and two nodes carrying datagrams both ways
//! through `--forward` and `--expose` with `show` reporting what happened; three nodes with a
//! `MeshPresharedKey` learning each other through one bootstrap peer.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use support::cli::{CliNode, Echo, ask, forward_listen, run, stdout_of, temp_dir};

fn wg(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("wg")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs `wg` (Debian package wireguard-tools): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wg {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn decode(key: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap()
}

#[test]
fn cli_genkey_pubkey_genpsk_are_byte_compatible_with_wg() {
    for _ in 0..4 {
        // Ours → wg.
        let ours = stdout_of(&run(&["genkey"], "", None));
        let bytes = decode(&ours);
        assert_eq!((ours.len(), bytes.len()), (44, 32), "{ours}");
        assert_eq!(bytes[0] & 7, 0, "clamped as wg genkey clamps");
        assert_eq!(bytes[31] & 0xc0, 0x40, "clamped as wg genkey clamps");
        let our_public = stdout_of(&run(&["pubkey"], &format!("{ours}\n"), None));
        assert_eq!(wg(&["pubkey"], &ours), our_public);
        // wg → ours.
        let theirs = wg(&["genkey"], "");
        assert_eq!(
            stdout_of(&run(&["pubkey"], &theirs, None)),
            wg(&["pubkey"], &theirs)
        );
        let psk = stdout_of(&run(&["genpsk"], "", None));
        assert_eq!(decode(&psk).len(), 32);
        assert_ne!(psk, ours);
    }
    let refused = run(&["pubkey"], "not a key\n", None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a base64 private key"),
        "{refused:?}"
    );
}

const KEY_A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PUB_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

/// Runs `up` on `config` (as `bad.conf`) with `extra` arguments; returns its exit code and stderr.
fn refused(dir: &std::path::Path, config: &str, extra: &[&str]) -> (Option<i32>, String) {
    let path = dir.join("bad.conf");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["up", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args, "", Some(&dir.join("run")));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_up_refuses_bad_configuration_naming_file_line_and_key() {
    let dir = temp_dir("bad");
    let good_peer = format!("[Peer]\nPublicKey = {PUB_B}\nAllowedIPs = 10.0.0.2/32\n");
    let cases = [
        (
            format!("[Interface]\nPrivateKey = {KEY_A}\nListenPort = 99999\n"),
            vec![],
            "bad.conf:3: ListenPort = \"99999\": not a port number (0-65535)".to_owned(),
        ),
        (
            format!("[Interface]\nPrivateKey = {KEY_A}\nListenPort = 1\nMystery = 1\n"),
            vec![],
            "bad.conf:4: Mystery = \"1\": unknown key in [Interface]".to_owned(),
        ),
        (
            "[Interface]\nPrivateKey = short\n".to_owned(),
            vec![],
            "bad.conf:2: PrivateKey = \"<5 characters>\": not a base64 key".to_owned(),
        ),
        (
            format!("[Interface]\nPrivateKey = {KEY_A}\nAddress = 10.0.0.1/24\n{good_peer}"),
            vec!["--forward", "127.0.0.1:0=10.0.0.9:53"],
            "--forward 127.0.0.1:0=10.0.0.9:53: no peer's AllowedIPs contain 10.0.0.9".to_owned(),
        ),
        (
            format!("[Interface]\nPrivateKey = {KEY_A}\n{good_peer}"),
            vec!["--expose", "53=127.0.0.1:53"],
            "--expose 53=127.0.0.1:53: [Interface] Address is missing".to_owned(),
        ),
    ];
    for (config, extra, want) in cases {
        let (code, stderr) = refused(&dir, &config, &extra);
        assert_eq!(code, Some(1), "exit code for {want}: {stderr}");
        assert!(stderr.contains(&want), "wanted `{want}` in:\n{stderr}");
        assert!(!stderr.contains(KEY_A), "no secret in the error:\n{stderr}");
    }
    // A malformed option is refused by the argument parser, naming the option.
    let (code, stderr) = refused(&dir, "", &["--forward", "nonsense"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--forward"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls both nodes until each one's sent bytes equal the other's received bytes.
fn transfers_agree(a: &CliNode, b: &CliNode) -> (serde_json::Value, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (sa, sb) = (a.show_json(), b.show_json());
        let (pa, pb) = (&sa["peers"][0], &sb["peers"][0]);
        if pa["transfer_tx"] == pb["transfer_rx"] && pa["transfer_rx"] == pb["transfer_tx"] {
            return (sa, sb);
        }
        assert!(Instant::now() < deadline, "transfers disagree:\n{pa}\n{pb}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cli_two_nodes_carry_datagrams_through_forward_and_expose_and_show_reports_them() {
    let dir = temp_dir("pair");
    let key_a = stdout_of(&run(&["genkey"], "", None));
    let key_b = stdout_of(&run(&["genkey"], "", None));
    let pub_a = stdout_of(&run(&["pubkey"], &key_a, None));
    let pub_b = stdout_of(&run(&["pubkey"], &key_b, None));
    let psk = stdout_of(&run(&["genpsk"], "", None));
    let echo = Echo::start();

    // B answers only: no endpoint for A, learned when A's handshake arrives.
    let b = CliNode::start(
        &dir,
        "b",
        &format!(
            "[Interface]\nPrivateKey = {key_b}\nAddress = 10.66.0.2/24, fd66::2/64\nPostUp = true\n\
             [Peer]\nPublicKey = {pub_a}\nPresharedKey = {psk}\nAllowedIPs = 10.66.0.1/32, fd66::1/128\n"
        ),
        &["--expose".into(), format!("7000={}", echo.addr)],
    );
    assert!(
        b.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("line=4") && l.contains("PostUp")),
        "one warning for the ignored key:\n{}",
        b.log()
    );
    let b_port = b.show_json()["listening_port"].as_u64().unwrap();
    let a = CliNode::start(
        &dir,
        "a",
        &format!(
            "[Interface]\nPrivateKey = {key_a}\nAddress = 10.66.0.1/24\nAddress = fd66::1/64\nMTU = 1400\n\
             [Peer]\nPublicKey = {pub_b}\nPresharedKey = {psk}\nEndpoint = localhost:{b_port}\n\
             AllowedIPs = 10.66.0.2/32, fd66::2/128\nPersistentKeepalive = 25\n"
        ),
        &[
            "--forward".into(),
            "127.0.0.1:0=10.66.0.2:7000".into(),
            "--forward".into(),
            "[::1]:0=[fd66::2]:7000".into(),
        ],
    );
    println!(
        "ready after {:?} (a) and {:?} (b)",
        a.ready_after, b.ready_after
    );
    let status = a.show_json();
    let (v4, v6) = (forward_listen(&status, 0), forward_listen(&status, 1));
    assert_ne!(v4.port(), 0, "the bound port is shown");

    // Two local senders through the IPv4 forward, one through the IPv6 one; each reply comes back
    // to its own sender from the forward's address.
    for (via, payload) in [(v4, "one"), (v4, "two"), (v6, "six")] {
        let (reply, from) = ask(via, payload.as_bytes());
        assert_eq!(reply, format!("echo:{payload}").as_bytes());
        assert_eq!(from, via);
    }

    let (sa, sb) = transfers_agree(&a, &b);
    let fa = &sa["forwards"];
    assert_eq!(fa[0]["flows"], 2, "one mesh port per local sender: {fa}");
    assert_eq!(fa[1]["flows"], 1, "{fa}");
    for f in fa.as_array().unwrap() {
        assert_eq!(f["to_mesh"], f["from_mesh"], "{f}");
        assert_eq!(f["dropped"], 0, "{f}");
    }
    let eb = &sb["exposes"][0];
    assert_eq!(eb["flows"], 3, "one local socket per mesh sender: {eb}");
    assert_eq!(
        (eb["from_mesh"].as_u64(), eb["to_mesh"].as_u64()),
        (Some(3), Some(3))
    );
    for s in [&sa, &sb] {
        let peer = &s["peers"][0];
        assert!(peer["latest_handshake"].as_u64().unwrap() > 0, "{peer}");
        assert_eq!(peer["preshared_key"], true);
        assert_eq!(s["unrouted"], 0);
    }
    assert_eq!(sa["peers"][0]["persistent_keepalive"], 25);
    assert_eq!(
        sb["peers"][0]["endpoint"]
            .as_str()
            .unwrap()
            .parse::<SocketAddr>()
            .unwrap()
            .port(),
        sa["listening_port"].as_u64().unwrap() as u16,
        "B learned where A is"
    );

    let text = a.show_text();
    for want in [
        "interface: a".to_owned(),
        format!("peer: {pub_b}"),
        "preshared key: (hidden)".to_owned(),
        "latest handshake: ".to_owned(),
        "transfer: ".to_owned(),
        "persistent keepalive: every 25 seconds".to_owned(),
    ] {
        assert!(text.contains(&want), "`{want}` in:\n{text}");
    }
    assert!(
        !text.contains(&key_a) && !text.contains(&psk),
        "no secret shown"
    );
    // Without a name, `show` lists every running node.
    let all = stdout_of(&run(&["show"], "", Some(&a.run_dir)));
    assert!(
        all.contains("interface: a") && all.contains("interface: b"),
        "{all}"
    );

    let (sock_a, sock_b) = (a.control_socket(), b.control_socket());
    let log_a = a.log();
    assert!(a.stop().success(), "clean exit on SIGTERM:\n{log_a}");
    assert!(b.stop().success());
    assert!(
        !sock_a.exists() && !sock_b.exists(),
        "control sockets removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_nodes_with_a_mesh_psk_learn_each_other_through_a_bootstrap_peer() {
    let dir = temp_dir("mesh");
    let keys: Vec<String> = (0..3)
        .map(|_| stdout_of(&run(&["genkey"], "", None)))
        .collect();
    let pubs: Vec<String> = keys
        .iter()
        .map(|k| stdout_of(&run(&["pubkey"], k, None)))
        .collect();
    let mesh_psk = stdout_of(&run(&["genpsk"], "", None));
    let echo = Echo::start();
    // The hub knows both spokes' keys (no endpoints); each spoke knows only the hub.
    let hub = CliNode::start(
        &dir,
        "hub",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.67.0.1/24\nMeshPresharedKey = {mesh_psk}\n\
             [Peer]\nPublicKey = {}\nAllowedIPs = 10.67.0.2/32\n\
             [Peer]\nPublicKey = {}\nAllowedIPs = 10.67.0.3/32\n",
            keys[0], pubs[1], pubs[2]
        ),
        &[],
    );
    let hub_port = hub.show_json()["listening_port"].as_u64().unwrap();
    let spoke = |i: usize, args: &[String]| {
        CliNode::start(
            &dir,
            &format!("spoke{i}"),
            &format!(
                "[Interface]\nPrivateKey = {}\nAddress = 10.67.0.{}/24\nMeshPresharedKey = {mesh_psk}\n\
                 [Peer]\nPublicKey = {}\nEndpoint = 127.0.0.1:{hub_port}\nAllowedIPs = 10.67.0.1/32\n",
                keys[i],
                i + 1,
                pubs[0]
            ),
            args,
        )
    };
    let b = spoke(2, &["--expose".into(), format!("7000={}", echo.addr)]);
    // A forwards to B, which its configuration does not name: discovery supplies the route.
    let a = spoke(
        1,
        &["--forward".into(), "127.0.0.1:0=10.67.0.3:7000".into()],
    );
    let via = forward_listen(&a.show_json(), 0);
    let (reply, _) = ask(via, b"through a learned peer");
    assert_eq!(reply, b"echo:through a learned peer");

    // The first reply may still come through the hub; promotion to the direct path follows within
    // a probe interval or two.
    let b_port = b.show_json()["listening_port"].as_u64().unwrap() as u16;
    let direct = |status: &serde_json::Value| {
        status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["public_key"] == pubs[2].as_str())
            .and_then(|p| p["endpoint"].as_str())
            .and_then(|e| e.parse::<SocketAddr>().ok())
            .is_some_and(|e| e.port() == b_port)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = a.show_json();
    while !direct(&status) {
        assert!(
            Instant::now() < deadline,
            "spoke 2 is reached directly, not through the hub: {:#}",
            status["peers"]
        );
        std::thread::sleep(Duration::from_millis(100));
        status = a.show_json();
    }
    let members = status["discovery"]["members"].as_array().unwrap();
    assert_eq!(
        members.len(),
        2,
        "the hub and the other spoke: {members:#?}"
    );
    let learned = members
        .iter()
        .find(|m| m["public_key"] == pubs[2].as_str())
        .expect("spoke 2 is a member");
    // The hub vouched for it first; once the pair talks directly the member's own copy of its record
    // (no member in between) is the shorter path and it vouches for itself.
    assert!(
        learned["vouched_by"] == pubs[0].as_str() || learned["vouched_by"] == pubs[2].as_str(),
        "vouched for by the hub, or by itself over the direct session: {learned:#}"
    );
    assert_eq!(learned["configured"], false);
    let peer = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["public_key"] == pubs[2].as_str())
        .expect("spoke 2 became a peer");
    assert_eq!(peer["preshared_key"], true);
    assert!(a.show_text().contains("discovery: 2 members"));
    for node in [a, b, hub] {
        assert!(node.stop().success());
    }
}
