//! Interoperability with a real `wireguard-go` through the public [`Node`] API and the real runtime,
//! on each I/O backend: application datagrams reach an ordinary UDP socket behind wireguard-go (the
//! recorder) and its replies come back, over IPv4 and IPv6, each side initiating. Needs root,
//! `/dev/net/tun`, `ip netns`, `wireguard-go`, `wg` and python3, and fails naming what is missing.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::PublicKey;
use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh::{Backend, BackendKind, Event, Node, PeerConfig, Role};
use support::wg_go::{self, MachineLock, RECORDER_PORT, WgGoConfig, WgGoPeer};

const OUR_V4: &str = "10.78.0.1";
const OUR_V6: &str = "fd78::1";
const WG_V4: &str = "10.78.0.2";
const WG_V6: &str = "fd78::2";
/// A lost first initiation costs REKEY_TIMEOUT (5 s) plus jitter.
const STEP: Duration = Duration::from_secs(15);

struct Lab {
    node: Node,
    wg: WgGoPeer,
    _lock: MachineLock,
}

impl Lab {
    fn start(backend: Backend) -> Lab {
        if let Err(missing) = wg_go::require_root_and_tools() {
            panic!("{missing}");
        }
        let lock = wg_go::machine_lock();
        let our_key = PrivateKey::generate(&mut OsRng);
        let (wg_private, _) = wg_go::gen_keypair();
        let config = WgGoConfig {
            private_key: wg_private,
            peer_public_key: our_key.public_key().to_string(),
            peer_allowed_ips: vec![format!("{OUR_V4}/32"), format!("{OUR_V6}/128")],
            tunnel_addrs: vec![format!("{WG_V4}/24"), format!("{WG_V6}/64")],
            ..WgGoConfig::default()
        };
        let wg = WgGoPeer::start(&config).unwrap_or_else(|e| panic!("starting wireguard-go: {e}"));
        let wg_key = PublicKey::from_base64(&wg.wg_public_key()).expect("wireguard-go key");
        let node = Node::builder(our_key)
            .listen(SocketAddr::new(wg.host_addr().into(), 0))
            .mesh_address(OUR_V4.parse().unwrap())
            .mesh_address(OUR_V6.parse().unwrap())
            .backend(backend)
            .data_shards(2)
            .peer(
                PeerConfig::new(wg_key)
                    .endpoint(wg.wg_endpoint())
                    .allowed_ip(format!("{WG_V4}/32").parse().unwrap())
                    .allowed_ip(format!("{WG_V6}/128").parse().unwrap()),
            )
            .start()
            .unwrap_or_else(|e| panic!("node start on {backend:?}: {e}"));
        let expected = match backend {
            Backend::IoUring => BackendKind::IoUring,
            _ => BackendKind::Mmsg,
        };
        assert_eq!(node.backend(), expected, "the requested backend runs");
        Lab {
            node,
            wg,
            _lock: lock,
        }
    }

    fn our(&self, v6: bool) -> SocketAddr {
        let ip: IpAddr = if v6 { OUR_V6 } else { OUR_V4 }.parse().unwrap();
        (ip, 51_800).into()
    }

    fn theirs(&self, v6: bool) -> SocketAddr {
        let ip: IpAddr = if v6 { WG_V6 } else { WG_V4 }.parse().unwrap();
        (ip, RECORDER_PORT).into()
    }

    /// Our datagram reaches the recorder behind wireguard-go, from our mesh address and port.
    fn send_out(&self, v6: bool, payload: &[u8]) {
        self.node
            .send_to(payload, self.theirs(v6))
            .expect("send_to");
        assert!(
            self.wg.wait_received(payload, STEP),
            "wireguard-go never delivered our datagram; stats {:?}\nwg show:\n{}\nlog:\n{}",
            self.node.stats(),
            self.wg.show_text(),
            self.wg.log_tail(20)
        );
        let from = self
            .wg
            .received()
            .into_iter()
            .find(|(_, p)| p == payload)
            .map(|(from, _)| from)
            .unwrap();
        assert_eq!(
            from,
            self.our(v6),
            "the recorder sees our mesh address and port"
        );
    }

    /// The recorder's datagram reaches our application.
    fn receive_in(&self, v6: bool, payload: &[u8]) {
        let to = self.our(v6);
        let from_ip: IpAddr = if v6 { WG_V6 } else { WG_V4 }.parse().unwrap();
        self.wg
            .send_from_tunnel(from_ip, to, payload)
            .expect("recorder send");
        let deadline = Instant::now() + STEP;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (n, from) = self
                .node
                .recv_from_timeout(&mut buf, left)
                .unwrap_or_else(|e| {
                    panic!(
                        "no datagram from wireguard-go ({e}); stats {:?}\nwg show:\n{}",
                        self.node.stats(),
                        self.wg.show_text()
                    )
                });
            if &buf[..n] == payload {
                assert_eq!(from, self.theirs(v6));
                return;
            }
        }
    }

    /// The role of the first completed handshake. The event comes from the control shard, which hears
    /// of a responder's confirmation from the data shard a moment after the packet is delivered.
    fn handshake_role(&self) -> Option<Role> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some(e) = self
            .node
            .wait_event(deadline.saturating_duration_since(Instant::now()))
        {
            if let Event::HandshakeCompleted { role, .. } = e.event {
                return Some(role);
            }
        }
        None
    }

    fn check_clean(&self) {
        let stats = self.node.stats();
        assert_eq!(stats.drops.total(), 0, "no drops: {:?}", stats.drops);
        let wg = self.wg.show().expect("wg show");
        assert!(wg.latest_handshake > 0);
        let (_, peer) = &stats.peers[0];
        assert!(peer.rx_packets >= 2 && peer.tx_packets >= 2, "{peer:?}");
        println!(
            "backend {} steering {} shards {:?}\nwg show:\n{}",
            stats.backend,
            stats.steering_program,
            stats.data_shards,
            self.wg.show_text()
        );
    }
}

fn we_initiate(backend: Backend) {
    let lab = Lab::start(backend);
    lab.send_out(false, b"ipv4 from the node");
    assert_eq!(lab.handshake_role(), Some(Role::Initiator));
    lab.receive_in(false, b"ipv4 reply from wireguard-go");
    lab.send_out(true, b"ipv6 from the node");
    lab.receive_in(true, b"ipv6 reply from wireguard-go");
    lab.check_clean();
}

fn they_initiate(backend: Backend) {
    let lab = Lab::start(backend);
    // wireguard-go learns where we are, then its datagram makes it initiate.
    lab.wg
        .set_endpoint(lab.node.local_addrs()[0])
        .expect("wg set endpoint");
    lab.receive_in(false, b"ipv4 from wireguard-go first");
    assert_eq!(lab.handshake_role(), Some(Role::Responder));
    lab.send_out(false, b"ipv4 answer from the node");
    lab.receive_in(true, b"ipv6 from wireguard-go");
    lab.send_out(true, b"ipv6 answer from the node");
    lab.check_clean();
}

#[test]
fn interop_wireguard_go_we_initiate_and_exchange_ipv4_ipv6_both_ways_io_uring() {
    we_initiate(Backend::IoUring);
}

#[test]
fn interop_wireguard_go_we_initiate_and_exchange_ipv4_ipv6_both_ways_mmsg() {
    we_initiate(Backend::Mmsg);
}

#[test]
fn interop_wireguard_go_initiates_and_exchanges_ipv4_ipv6_both_ways_io_uring() {
    they_initiate(Backend::IoUring);
}

#[test]
fn interop_wireguard_go_initiates_and_exchanges_ipv4_ipv6_both_ways_mmsg() {
    they_initiate(Backend::Mmsg);
}
