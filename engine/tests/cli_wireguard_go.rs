//! The `pnet-mesh` command against Debian's wireguard-go in a namespace this test creates: `up` from
//! a wg-quick file, `--forward` and `--expose` carrying datagrams over IPv4 and IPv6, each side
//! initiating, and `show` agreeing with `wg show` on the other side about the handshake and the
//! bytes transferred. Needs root, `/dev/net/tun`, `ip netns`, `wireguard-go`, `wg` and python3, and
//! fails naming what is missing.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::cli::{CliNode, Echo, forward_listen, run, stdout_of, temp_dir};
use support::wg_go::{self, MachineLock, RECORDER_PORT, WgGoConfig, WgGoPeer};

const OUR_V4: &str = "10.79.0.1";
const OUR_V6: &str = "fd79::1";
const WG_V4: &str = "10.79.0.2";
const WG_V6: &str = "fd79::2";
const EXPOSED: u16 = 7000;
/// A lost first initiation costs REKEY_TIMEOUT (5 s) plus jitter.
const STEP: Duration = Duration::from_secs(15);

struct Lab {
    // Field order is drop order: the node stops before wireguard-go's namespace goes.
    node: CliNode,
    wg: WgGoPeer,
    echo: Echo,
    dir: PathBuf,
    _lock: MachineLock,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

impl Lab {
    /// wireguard-go in its namespace, then `pnet-mesh up` in ours: with wireguard-go's endpoint in
    /// the file when `we_initiate`, else without (wireguard-go is told where we are and starts).
    fn start(tag: &str, we_initiate: bool) -> Lab {
        if let Err(missing) = wg_go::require_root_and_tools() {
            panic!("{missing}");
        }
        let lock = wg_go::machine_lock();
        let dir = temp_dir(tag);
        let our_key = stdout_of(&run(&["genkey"], "", None));
        let our_public = stdout_of(&run(&["pubkey"], &our_key, None));
        let psk = stdout_of(&run(&["genpsk"], "", None));
        let (wg_private, _) = wg_go::gen_keypair();
        let config = WgGoConfig {
            private_key: wg_private,
            peer_public_key: our_public,
            preshared_key: Some(psk.clone()),
            peer_allowed_ips: vec![format!("{OUR_V4}/32"), format!("{OUR_V6}/128")],
            tunnel_addrs: vec![format!("{WG_V4}/24"), format!("{WG_V6}/64")],
            ..WgGoConfig::default()
        };
        let wg = WgGoPeer::start(&config).unwrap_or_else(|e| panic!("starting wireguard-go: {e}"));
        let endpoint = if we_initiate {
            format!("Endpoint = {}\n", wg.wg_endpoint())
        } else {
            String::new()
        };
        let echo = Echo::start();
        let node = CliNode::start(
            &dir,
            "wgtest",
            &format!(
                "[Interface]\nPrivateKey = {our_key}\nAddress = {OUR_V4}/24, {OUR_V6}/64\nDNS = 10.79.0.53\n\n\
                 [Peer]\nPublicKey = {}\nPresharedKey = {psk}\n{endpoint}AllowedIPs = {WG_V4}/32, {WG_V6}/128\n",
                wg.wg_public_key()
            ),
            &[
                "--forward".into(),
                format!("127.0.0.1:0={WG_V4}:{RECORDER_PORT}"),
                "--forward".into(),
                format!("[::1]:0=[{WG_V6}]:{RECORDER_PORT}"),
                "--expose".into(),
                format!("{EXPOSED}={}", echo.addr),
            ],
        );
        println!("pnet-mesh ready after {:?}", node.ready_after);
        if !we_initiate {
            let port = node.show_json()["listening_port"].as_u64().unwrap() as u16;
            wg.set_endpoint(SocketAddr::new(wg.host_addr().into(), port))
                .expect("wg set endpoint");
        }
        Lab {
            node,
            wg,
            echo,
            dir,
            _lock: lock,
        }
    }

    fn evidence(&self) -> String {
        format!(
            "pnet-mesh show:\n{}\nwg show:\n{}\npnet-mesh log:\n{}\nwireguard-go log:\n{}",
            self.node.show_text(),
            self.wg.show_text(),
            self.node.log(),
            self.wg.log_tail(20)
        )
    }

    /// A local sender's datagram through `--forward` i reaches the recorder behind wireguard-go
    /// from our mesh address; the recorder's answer comes back to that sender.
    fn through_forward(&self, i: usize, payload: &str) {
        let via = forward_listen(&self.node.show_json(), i);
        let local = UdpSocket::bind(SocketAddr::new(via.ip(), 0)).unwrap();
        local.set_read_timeout(Some(STEP)).unwrap();
        local.send_to(payload.as_bytes(), via).unwrap();
        assert!(
            self.wg.wait_received(payload.as_bytes(), STEP),
            "the recorder never got `{payload}`\n{}",
            self.evidence()
        );
        let (from, _) = self
            .wg
            .received()
            .into_iter()
            .find(|(_, p)| p == payload.as_bytes())
            .unwrap();
        let (ours, theirs) = if via.is_ipv4() {
            (OUR_V4, WG_V4)
        } else {
            (OUR_V6, WG_V6)
        };
        assert_eq!(from.ip(), ip(ours), "it comes from our mesh address");
        let answer = format!("answer to {payload}");
        self.wg
            .send_from_tunnel(ip(theirs), from, answer.as_bytes())
            .expect("recorder send");
        let mut buf = [0u8; 2048];
        let (n, reply_from) = local
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer through {via}: {e}\n{}", self.evidence()));
        assert_eq!(&buf[..n], answer.as_bytes());
        assert_eq!(reply_from, via);
    }

    /// The recorder's datagram to our exposed port reaches the local echo service, and the echo
    /// comes back to the recorder from the exposed port.
    fn through_expose(&self, v6: bool, payload: &str) {
        let (ours, theirs) = if v6 { (OUR_V6, WG_V6) } else { (OUR_V4, WG_V4) };
        let to = SocketAddr::new(ip(ours), EXPOSED);
        self.wg
            .send_from_tunnel(ip(theirs), to, payload.as_bytes())
            .expect("recorder send");
        let echoed = format!("echo:{payload}");
        assert!(
            self.wg.wait_received(echoed.as_bytes(), STEP),
            "the echo of `{payload}` never came back\n{}",
            self.evidence()
        );
        let (from, _) = self
            .wg
            .received()
            .into_iter()
            .find(|(_, p)| p == echoed.as_bytes())
            .unwrap();
        assert_eq!(from, to, "answered from the exposed port");
    }

    /// `show` and wireguard-go's `wg show` agree: both saw a handshake (within a few seconds of each
    /// other) and each side's sent bytes are the other's received bytes. Returns our peer entry.
    fn show_agrees_with_wg_show(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ours = self.node.show_json();
            let peer = ours["peers"][0].clone();
            let theirs = self.wg.show().expect("wg show");
            let (tx, rx) = (
                peer["transfer_tx"].as_u64().unwrap(),
                peer["transfer_rx"].as_u64().unwrap(),
            );
            if tx == theirs.rx_bytes && rx == theirs.tx_bytes {
                let handshake = peer["latest_handshake"].as_u64().unwrap();
                assert!(handshake > 0 && theirs.latest_handshake > 0);
                assert!(
                    handshake.abs_diff(theirs.latest_handshake) <= 5,
                    "handshake times: ours {handshake}, wg {}",
                    theirs.latest_handshake
                );
                assert_eq!(peer["preshared_key"], true);
                assert!(theirs.has_preshared_key);
                assert_eq!(
                    theirs.endpoint.map(|e| e.port()),
                    ours["listening_port"].as_u64().map(|p| p as u16),
                    "wireguard-go sends to our listening port"
                );
                println!(
                    "agreed: sent {tx} B, received {rx} B\n{}",
                    self.wg.show_text()
                );
                return peer;
            }
            assert!(
                Instant::now() < deadline,
                "transfer disagrees: ours tx {tx} rx {rx}, wg rx {} tx {}\n{}",
                theirs.rx_bytes,
                theirs.tx_bytes,
                self.evidence()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn finish(self) {
        let status = self.node.show_json();
        for rule in status["forwards"]
            .as_array()
            .unwrap()
            .iter()
            .chain(status["exposes"].as_array().unwrap())
        {
            assert_eq!(rule["dropped"], 0, "{rule}");
        }
        assert_eq!(status["unrouted"], 0);
        let Lab {
            node,
            wg,
            echo,
            dir,
            _lock,
        } = self;
        assert!(node.stop().success(), "clean exit on SIGTERM");
        drop((wg, echo));
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn cli_up_with_wireguard_go_we_initiate_through_forward_then_expose_and_show_agrees_with_wg_show() {
    let lab = Lab::start("wg-we", true);
    lab.through_forward(0, "ipv4 via --forward");
    lab.through_expose(false, "ipv4 to --expose");
    lab.through_forward(1, "ipv6 via --forward");
    lab.through_expose(true, "ipv6 to --expose");
    let peer = lab.show_agrees_with_wg_show();
    assert!(
        peer["handshakes_initiated"].as_u64().unwrap() >= 1,
        "we initiated: {peer}"
    );
    lab.finish();
}

#[test]
fn cli_up_with_wireguard_go_it_initiates_through_expose_then_forward_and_show_agrees_with_wg_show()
{
    let lab = Lab::start("wg-they", false);
    lab.through_expose(false, "ipv4 to --expose first");
    lab.through_forward(0, "ipv4 via --forward");
    lab.through_expose(true, "ipv6 to --expose");
    lab.through_forward(1, "ipv6 via --forward");
    let peer = lab.show_agrees_with_wg_show();
    assert_eq!(
        peer["handshakes_initiated"], 0,
        "wireguard-go initiated: {peer}"
    );
    lab.finish();
}
