//! Two `pnet-mesh-tun` bridges in network namespaces this test creates, joined by a veth pair: the
//! kernel pings across the mesh, IPv4 and IPv6, through real TUN interfaces. Needs root,
//! /dev/net/tun, `ip` and `ping`; without them it fails naming what is missing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::OsRng;

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("`{}` cannot run: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

struct Lab {
    ns: [String; 2],
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn needs() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "this test needs root (namespaces, TUN, CAP_NET_ADMIN)"
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "this test needs /dev/net/tun"
    );
    run(&["ip", "netns", "list"]).expect("this test needs iproute2 (`ip netns`)");
    assert!(
        Command::new("ping").arg("-V").output().is_ok(),
        "this test needs ping (iputils-ping)"
    );
}

fn config(
    key: &PrivateKey,
    me: u8,
    peer: &PrivateKey,
    other: u8,
    endpoint: Option<&str>,
) -> String {
    let mut s = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = 10.80.0.{me}/24, fd80::{me}/64\n\
         MTU = 1420\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.80.0.{other}/32, fd80::{other}/128\n",
        key.to_base64(),
        peer.public_key()
    );
    if let Some(e) = endpoint {
        s.push_str(&format!("Endpoint = {e}\nPersistentKeepalive = 1\n"));
    }
    s
}

fn wait_ready(log: &Path, child: &mut Child) {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("ready") {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("pnet-mesh-tun exited with {status} before it was ready:\n{text}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not ready:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(ns: &str, family: &str, to: &str) -> Result<String, String> {
    let started = Instant::now();
    loop {
        match run(&[
            "ip", "netns", "exec", ns, "ping", family, "-c", "3", "-i", "0.2", "-W", "2", to,
        ]) {
            Ok(out) => return Ok(out),
            // IPv6 addresses need a moment (duplicate address detection) before they answer.
            Err(e) if started.elapsed() < Duration::from_secs(8) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Two namespaces joined by a veth pair, a `pnet-mesh-tun` in each (`extra` arguments added).
fn two_bridges(tag: &str, extra: &[&str]) -> (Lab, [String; 2], PathBuf) {
    needs();
    let id = format!("pt{}{tag}", std::process::id() % 100_000);
    let ns = [format!("{id}a"), format!("{id}b")];
    let dir = std::env::temp_dir().join(format!("{id}-tun"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        ns: ns.clone(),
        dir: dir.clone(),
        children: Vec::new(),
    };
    for n in &ns {
        run(&["ip", "netns", "add", n]).unwrap();
        run(&["ip", "-n", n, "link", "set", "lo", "up"]).unwrap();
    }
    let (va, vb) = (format!("{id}va"), format!("{id}vb"));
    run(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
    ])
    .unwrap();
    for (n, v, addr) in [
        (&ns[0], &va, "10.203.1.1/24"),
        (&ns[1], &vb, "10.203.1.2/24"),
    ] {
        run(&["ip", "link", "set", v, "netns", n]).unwrap();
        run(&["ip", "-n", n, "addr", "add", addr, "dev", v]).unwrap();
        run(&["ip", "-n", n, "link", "set", v, "up"]).unwrap();
    }
    let (ka, kb) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let confs = [
        config(&ka, 1, &kb, 2, Some("10.203.1.2:51820")),
        config(&kb, 2, &ka, 1, None),
    ];
    for side in [1usize, 0] {
        let path = dir.join(format!("side{side}.conf"));
        std::fs::write(&path, &confs[side]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = dir.join(format!("side{side}.log"));
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns[side],
                env!("CARGO_BIN_EXE_pnet-mesh-tun"),
                "up",
            ])
            .arg(&path)
            .args(["--name", "pmtun0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start pnet-mesh-tun");
        wait_ready(&log, &mut child);
        lab.children.push(child);
    }
    (lab, ns, dir)
}

/// Stops both bridges with SIGTERM; returns their logs (side 0, side 1) after a clean exit.
fn stop(lab: &mut Lab, dir: &Path) -> [String; 2] {
    for c in &mut lab.children {
        let _ = Command::new("kill").arg(c.id().to_string()).status();
    }
    // Children were started side 1 first.
    let mut logs = [String::new(), String::new()];
    for (i, c) in lab.children.iter_mut().enumerate() {
        let side = 1 - i;
        let status = c.wait().unwrap();
        let _ = std::fs::File::open(dir.join(format!("side{side}.log")))
            .and_then(|mut f| f.read_to_string(&mut logs[side]));
        assert!(status.success(), "exit {status}:\n{}", logs[side]);
    }
    lab.children.clear();
    logs
}

/// The number after `key=` in the log's `stopped` line.
fn counter(log: &str, key: &str) -> u64 {
    log.lines()
        .find(|l| l.contains("stopped"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the stopped line:\n{log}"))
}

#[test]
fn two_tun_bridges_carry_kernel_pings_both_families() {
    let (mut lab, ns, dir) = two_bridges("p", &[]);
    let link = run(&["ip", "-n", &ns[0], "-o", "addr", "show", "dev", "pmtun0"]).unwrap();
    assert!(link.contains("10.80.0.1/24"), "{link}");
    assert!(link.contains("fd80::1/64"), "{link}");
    let mtu = run(&["ip", "-n", &ns[0], "link", "show", "pmtun0"]).unwrap();
    assert!(mtu.contains("mtu 1420"), "{mtu}");
    let v4 = ping(&ns[0], "-4", "10.80.0.2").unwrap_or_else(|e| panic!("IPv4 ping: {e}"));
    assert!(v4.contains(" 0% packet loss"), "{v4}");
    let v6 = ping(&ns[1], "-6", "fd80::1").unwrap_or_else(|e| panic!("IPv6 ping: {e}"));
    assert!(v6.contains(" 0% packet loss"), "{v6}");
    // A clean stop on SIGTERM, with the counters in the log.
    let logs = stop(&mut lab, &dir);
    assert!(counter(&logs[0], "to_mesh") >= 3, "{}", logs[0]);
}

/// Sends `bytes` random bytes over TCP from side 0 to side 1 through the tunnel with `nc`, and
/// checks that exactly those bytes arrived.
fn tcp_transfer(ns: &[String; 2], dir: &Path, bytes: usize) {
    assert!(
        Command::new("nc").arg("-h").output().is_ok(),
        "this test needs nc (netcat-openbsd)"
    );
    let data: Vec<u8> = {
        let mut rng = OsRng;
        let mut v = vec![0u8; bytes];
        pnet_mesh::crypto::rng::Rng::fill_bytes(&mut rng, &mut v);
        v
    };
    let (input, output) = (dir.join("in.bin"), dir.join("out.bin"));
    std::fs::write(&input, &data).unwrap();
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns[1],
            "nc",
            "-l",
            "-N",
            "10.80.0.2",
            "5001",
        ])
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nc -l");
    let started = Instant::now();
    loop {
        let sent = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns[0],
                "nc",
                "-N",
                "-w",
                "10",
                "10.80.0.2",
                "5001",
            ])
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .expect("run nc");
        if sent.status.success() {
            break;
        }
        // The listener may not be up yet.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nc could not connect: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the listener got its stream in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = std::fs::read(&output).unwrap();
    assert_eq!(got.len(), data.len(), "every byte arrived");
    assert!(got == data, "the bytes arrived intact");
}

#[test]
fn a_tcp_stream_crosses_tun_offloads_as_super_packets_intact() {
    let (mut lab, ns, dir) = two_bridges("o", &[]);
    tcp_transfer(&ns, &dir, 16 << 20);
    let logs = stop(&mut lab, &dir);
    assert!(logs[0].contains("offloads=\"on\""), "{}", logs[0]);
    // The sender's kernel handed the stream over in TSO super-packets, split by the node.
    assert!(counter(&logs[0], "super_packets") > 0, "{}", logs[0]);
    assert!(counter(&logs[1], "from_mesh") > 0, "{}", logs[1]);
}

#[test]
fn a_tcp_stream_crosses_without_offloads_intact() {
    let (mut lab, ns, dir) = two_bridges("n", &["--no-offload"]);
    tcp_transfer(&ns, &dir, 4 << 20);
    let logs = stop(&mut lab, &dir);
    assert!(logs[0].contains("offloads=\"off\""), "{}", logs[0]);
    assert_eq!(counter(&logs[0], "super_packets"), 0, "{}", logs[0]);
}
