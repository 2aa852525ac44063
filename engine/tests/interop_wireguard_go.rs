//! Interoperability with a real `wireguard-go`, run by the test in a network namespace it creates.
//!
//! Our side is the sans-I/O [`Endpoint`] driven by a small blocking loop over an ordinary UDP socket
//! bound on the host end of the veth; wireguard-go's side is observed through `wg show` and through an
//! ordinary UDP socket (the recorder) bound to wireguard-go's tunnel addresses. Every test needs root,
//! `/dev/net/tun`, `ip netns`, `wireguard-go`, `wg` and python3, and fails naming what is missing.
//!
//! Run the group with `cargo test -p pnet-mesh --test interop_wireguard_go -- --test-threads=1`.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey};
use pnet_mesh::{
    Datagram, Endpoint, EndpointConfig, Event, PacketBuf, PeerConfig, PeerId, Role, ip,
};
use support::wg_go::{self, RECORDER_PORT, WgGoConfig, WgGoPeer, WgShow};

/// Our tunnel addresses and wireguard-go's.
const OUR_V4: &str = "10.77.0.1";
const OUR_V6: &str = "fd77::1";
const WG_V4: &str = "10.77.0.2";
const WG_V6: &str = "fd77::2";
/// The UDP port our "application" uses inside the tunnel.
const OUR_PORT: u16 = 7777;
/// How long any one step may take: a lost first initiation costs REKEY_TIMEOUT (5 s) plus jitter.
const STEP: Duration = Duration::from_secs(15);
const WG: PeerId = PeerId(0);

/// Our node: the sans-I/O endpoint plus its socket and what it has seen.
struct OurNode {
    endpoint: Endpoint,
    socket: UdpSocket,
    /// UDP payloads delivered to us through the tunnel, with their inner source.
    delivered: Vec<(SocketAddr, Vec<u8>)>,
    events: Vec<Event>,
    drops: Vec<pnet_mesh::DropReason>,
}

impl OurNode {
    fn new(key: PrivateKey, socket: UdpSocket, wg: &WgGoPeer, psk: Option<&str>) -> OurNode {
        let wg_key = PublicKey::from_base64(&wg.wg_public_key()).expect("wireguard-go public key");
        let mut peer = PeerConfig::new(wg_key)
            .endpoint(wg.wg_endpoint())
            .allowed_ip(format!("{WG_V4}/32").parse().unwrap())
            .allowed_ip(format!("{WG_V6}/128").parse().unwrap());
        if let Some(psk) = psk {
            peer = peer.preshared_key(PresharedKey::from_base64(psk).unwrap());
        }
        let config = EndpointConfig::builder(key)
            .peer(peer)
            .build()
            .expect("valid config");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        OurNode {
            endpoint: Endpoint::new(Arc::new(config), Box::new(OsRng), Instant::now()),
            socket,
            delivered: Vec::new(),
            events: Vec::new(),
            drops: Vec::new(),
        }
    }

    /// Sends one UDP datagram from our tunnel address to `to` through the tunnel.
    fn send_udp(&mut self, to: SocketAddr, payload: &[u8]) {
        let from: SocketAddr = match to {
            SocketAddr::V4(_) => (OUR_V4.parse::<IpAddr>().unwrap(), OUR_PORT).into(),
            SocketAddr::V6(_) => (OUR_V6.parse::<IpAddr>().unwrap(), OUR_PORT).into(),
        };
        let hdr = ip::udp_headers_len(&to);
        let mut buf = vec![0u8; PacketBuf::HEADROOM + hdr + payload.len() + PacketBuf::TAILROOM];
        let mut pkt = PacketBuf::new(&mut buf, hdr + payload.len()).unwrap();
        pkt.payload_mut()[hdr..].copy_from_slice(payload);
        ip::emit_udp(pkt.payload_mut(), from, to, payload.len()).unwrap();
        if let Some(t) = self
            .endpoint
            .send_packet(Instant::now(), &mut pkt)
            .expect("send_packet")
        {
            self.socket.send_to(&pkt.datagram()[..t.len], t.to).unwrap();
        }
        self.flush();
    }

    /// Runs every pending output: datagrams, timers, events.
    fn flush(&mut self) {
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        let mut out = [0u8; 2048];
        while let Some(t) = self.endpoint.poll_transmit(now, &mut out) {
            self.socket.send_to(&out[..t.len], t.to).unwrap();
        }
        while let Some(e) = self.endpoint.poll_event() {
            self.events.push(e);
        }
    }

    /// Receives and processes datagrams until `done` holds or `timeout` passes.
    fn pump_until(&mut self, timeout: Duration, mut done: impl FnMut(&OurNode) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            let Ok((n, from)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            match self
                .endpoint
                .handle_datagram(Instant::now(), from, &mut buf[..n])
            {
                Datagram::Deliver { packet, .. } => {
                    let udp = ip::parse_udp(packet).expect("wireguard-go delivered a UDP packet");
                    assert_eq!(udp.dst.port(), OUR_PORT, "datagram for our port");
                    self.delivered.push((udp.src, udp.payload.to_vec()));
                }
                Datagram::Reply { to, len } => {
                    self.socket.send_to(&buf[..len], to).unwrap();
                }
                Datagram::Consumed => {}
                Datagram::Dropped(reason) => self.drops.push(reason),
            }
        }
    }

    fn completed(&self, role: Role) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::HandshakeCompleted { role: r, .. } if *r == role))
    }

    fn got(&self, payload: &[u8]) -> Option<SocketAddr> {
        self.delivered
            .iter()
            .find(|(_, p)| p == payload)
            .map(|(src, _)| *src)
    }
}

/// A wireguard-go peer and our node wired to each other.
struct Lab {
    wg: WgGoPeer,
    us: OurNode,
    _lock: wg_go::MachineLock,
}

impl Lab {
    fn start(our_psk: Option<&str>, wg_psk: Option<&str>, wg_keepalive: Option<u16>) -> Lab {
        if let Err(missing) = wg_go::require_root_and_tools() {
            panic!("{missing}");
        }
        let lock = wg_go::machine_lock();
        let our_key = PrivateKey::generate(&mut OsRng);
        let (wg_private, _) = wg_go::gen_keypair();
        let config = WgGoConfig {
            private_key: wg_private,
            peer_public_key: our_key.public_key().to_string(),
            preshared_key: wg_psk.map(str::to_string),
            peer_endpoint: None,
            peer_allowed_ips: vec![format!("{OUR_V4}/32"), format!("{OUR_V6}/128")],
            tunnel_addrs: vec![format!("{WG_V4}/24"), format!("{WG_V6}/64")],
            persistent_keepalive: wg_keepalive,
            mtu: 1420,
        };
        // Bind our socket as soon as the veth exists, so nothing wireguard-go sends is missed.
        let mut socket = None;
        let wg = WgGoPeer::start_with(&config, |cfg, host| {
            let s = UdpSocket::bind((host, 0)).expect("bind on the veth");
            cfg.peer_endpoint = Some(s.local_addr().unwrap());
            socket = Some(s);
        })
        .unwrap_or_else(|e| panic!("starting wireguard-go: {e}"));
        let us = OurNode::new(our_key, socket.expect("socket bound"), &wg, our_psk);
        Lab {
            wg,
            us,
            _lock: lock,
        }
    }

    fn show(&self) -> WgShow {
        self.wg.show().unwrap_or_else(|e| panic!("wg show: {e}"))
    }

    /// Waits (while serving our side) until the recorder behind wireguard-go has `payload`.
    fn wait_recorded(&mut self, payload: &[u8]) -> bool {
        let wg = &self.wg;
        self.us
            .pump_until(STEP, |_| wg.received().iter().any(|(_, p)| p == payload))
    }

    /// Makes the recorder send `payload` to our tunnel address and waits until we deliver it.
    fn receive_from_wireguard_go(&mut self, v6: bool, payload: &[u8]) -> SocketAddr {
        let (from, to): (IpAddr, SocketAddr) = if v6 {
            (
                WG_V6.parse().unwrap(),
                (OUR_V6.parse::<IpAddr>().unwrap(), OUR_PORT).into(),
            )
        } else {
            (
                WG_V4.parse().unwrap(),
                (OUR_V4.parse::<IpAddr>().unwrap(), OUR_PORT).into(),
            )
        };
        self.wg
            .send_from_tunnel(from, to, payload)
            .expect("recorder send");
        let arrived = self.us.pump_until(STEP, |n| n.got(payload).is_some());
        assert!(
            arrived,
            "datagram from wireguard-go never delivered; drops {:?}; wg show:\n{}\nlog:\n{}",
            self.us.drops,
            self.wg.show_text(),
            self.wg.log_tail(20)
        );
        self.us.got(payload).unwrap()
    }

    fn evidence(&self, what: &str) {
        println!(
            "--- {what}: wg show (wireguard-go side) ---\n{}",
            self.wg.show_text()
        );
        println!(
            "--- our peer stats ---\n{:?}",
            self.us.endpoint.peer_stats(WG).unwrap()
        );
    }
}

fn wg_v4() -> SocketAddr {
    (WG_V4.parse::<IpAddr>().unwrap(), RECORDER_PORT).into()
}

fn wg_v6() -> SocketAddr {
    (WG_V6.parse::<IpAddr>().unwrap(), RECORDER_PORT).into()
}

/// Exchanges an IPv4 and an IPv6 datagram each way and checks both sides' accounting.
fn exchange_both_families(lab: &mut Lab, tag: &str) {
    let before = lab.show();
    let v4_out = format!("{tag}: ipv4 from pnet-mesh").into_bytes();
    lab.us.send_udp(wg_v4(), &v4_out);
    assert!(
        lab.wait_recorded(&v4_out),
        "wireguard-go never delivered our IPv4 datagram; our drops {:?}\n{}\n{}",
        lab.us.drops,
        lab.wg.show_text(),
        lab.wg.log_tail(30)
    );
    let v6_out = format!("{tag}: ipv6 from pnet-mesh").into_bytes();
    lab.us.send_udp(wg_v6(), &v6_out);
    assert!(
        lab.wait_recorded(&v6_out),
        "wireguard-go never delivered our IPv6 datagram"
    );
    let rec = lab.wg.received();
    let src4 = rec.iter().find(|(_, p)| *p == v4_out).unwrap().0;
    let src6 = rec.iter().find(|(_, p)| *p == v6_out).unwrap().0;
    assert_eq!(src4, (OUR_V4.parse::<IpAddr>().unwrap(), OUR_PORT).into());
    assert_eq!(src6, (OUR_V6.parse::<IpAddr>().unwrap(), OUR_PORT).into());

    let v4_in = format!("{tag}: ipv4 from wireguard-go").into_bytes();
    assert_eq!(lab.receive_from_wireguard_go(false, &v4_in), wg_v4());
    let v6_in = format!("{tag}: ipv6 from wireguard-go").into_bytes();
    assert_eq!(lab.receive_from_wireguard_go(true, &v6_in), wg_v6());

    let after = lab.show();
    assert!(after.latest_handshake > 0, "wg show reports a handshake");
    assert!(
        after.rx_bytes > before.rx_bytes,
        "wireguard-go received from us"
    );
    assert!(after.tx_bytes > before.tx_bytes, "wireguard-go sent to us");
    assert_eq!(
        after.endpoint,
        Some(lab.us.socket.local_addr().unwrap()),
        "wireguard-go's endpoint for us"
    );
    let ours = lab.us.endpoint.peer_stats(WG).unwrap();
    assert!(ours.last_handshake.is_some());
    assert!(ours.rx_packets >= 2 && ours.tx_packets >= 2, "{ours:?}");
    assert_eq!(ours.endpoint, Some(lab.wg.wg_endpoint()));
}

#[test]
fn interop_wireguard_go_we_initiate_and_exchange_ipv4_ipv6_both_ways() {
    let mut lab = Lab::start(None, None, None);
    exchange_both_families(&mut lab, "we initiate");
    assert!(
        lab.us.completed(Role::Initiator),
        "we completed as initiator: {:?}",
        lab.us.events
    );
    assert!(!lab.us.completed(Role::Responder));
    assert!(lab.us.drops.is_empty(), "no drops: {:?}", lab.us.drops);
    lab.evidence("we initiate, no psk");
}

#[test]
fn interop_wireguard_go_initiates_and_exchanges_ipv4_ipv6_both_ways() {
    let mut lab = Lab::start(None, None, None);
    // wireguard-go speaks first: its datagram makes it initiate towards us.
    let first = b"wireguard-go initiates".to_vec();
    assert_eq!(lab.receive_from_wireguard_go(false, &first), wg_v4());
    assert!(
        lab.us.completed(Role::Responder),
        "we completed as responder: {:?}",
        lab.us.events
    );
    assert!(
        !lab.us.completed(Role::Initiator),
        "no handshake of ours was needed"
    );
    exchange_both_families(&mut lab, "they initiate");
    assert!(lab.us.drops.is_empty(), "no drops: {:?}", lab.us.drops);
    lab.evidence("wireguard-go initiates, no psk");
}

#[test]
fn interop_wireguard_go_with_psk_both_directions_of_the_handshake() {
    let psk = PresharedKey::from_bytes(*PrivateKey::generate(&mut OsRng).as_bytes()).to_base64();
    let mut lab = Lab::start(Some(&psk), Some(&psk), None);
    assert!(lab.show().has_preshared_key);
    // wireguard-go initiates first …
    let first = b"psk: wireguard-go initiates".to_vec();
    lab.receive_from_wireguard_go(true, &first);
    assert!(lab.us.completed(Role::Responder));
    // … then we force a handshake of our own and exchange over the new session.
    let t = Instant::now() + Duration::from_secs(6);
    lab.us
        .pump_until(Duration::from_secs(7), |_| Instant::now() > t);
    lab.us.endpoint.connect(Instant::now(), WG).unwrap();
    assert!(
        lab.us.pump_until(STEP, |n| n.completed(Role::Initiator)),
        "our initiation with a psk completes"
    );
    exchange_both_families(&mut lab, "psk");
    assert!(lab.us.drops.is_empty(), "no drops: {:?}", lab.us.drops);
    lab.evidence("with psk");
}

fn wrong_psk_lab() -> Lab {
    let ours = PresharedKey::from_bytes([7; 32]).to_base64();
    let theirs = PresharedKey::from_bytes([8; 32]).to_base64();
    Lab::start(Some(&ours), Some(&theirs), None)
}

/// With mismatched PSKs nothing crosses and neither side reports a handshake.
fn assert_no_session(lab: &mut Lab) {
    // Give both sides time to (fail to) use a session.
    lab.us.pump_until(Duration::from_secs(2), |_| false);
    assert!(
        lab.us.delivered.is_empty(),
        "nothing delivered to us: {:?}",
        lab.us.delivered
    );
    assert!(
        lab.wg.received().is_empty(),
        "nothing delivered to wireguard-go: {:?}",
        lab.wg.received()
    );
    assert!(!lab.us.completed(Role::Initiator) && !lab.us.completed(Role::Responder));
    assert!(!lab.us.endpoint.has_session(Instant::now(), WG));
    assert_eq!(
        lab.show().latest_handshake,
        0,
        "wireguard-go completed no handshake:\n{}",
        lab.wg.show_text()
    );
}

#[test]
fn interop_wireguard_go_wrong_psk_our_initiation_forms_no_session() {
    let mut lab = wrong_psk_lab();
    // wireguard-go answers our initiation (it cannot tell), but its response fails our check.
    lab.us.send_udp(wg_v4(), b"must never arrive (ours)");
    let saw_bad_response = lab.us.pump_until(STEP, |n| {
        n.drops
            .contains(&pnet_mesh::DropReason::HandshakeDecryptFailed)
    });
    assert!(
        saw_bad_response,
        "wireguard-go's response was dropped as undecryptable; drops {:?}",
        lab.us.drops
    );
    assert_no_session(&mut lab);
    lab.evidence("wrong psk, we initiate");
}

#[test]
fn interop_wireguard_go_wrong_psk_their_initiation_forms_no_session() {
    let mut lab = wrong_psk_lab();
    // wireguard-go initiates: we answer, but it cannot complete with our response.
    let to: SocketAddr = (OUR_V4.parse::<IpAddr>().unwrap(), OUR_PORT).into();
    lab.wg
        .send_from_tunnel(WG_V4.parse().unwrap(), to, b"must never arrive (theirs)")
        .unwrap();
    let answered = lab.us.pump_until(STEP, |n| {
        n.endpoint.peer_stats(WG).unwrap().handshakes_answered > 0
    });
    assert!(
        answered,
        "we answered wireguard-go's initiation; drops {:?}\n{}",
        lab.us.drops,
        lab.wg.log_tail(40)
    );
    assert_no_session(&mut lab);
    lab.evidence("wrong psk, wireguard-go initiates");
}

#[test]
fn interop_wireguard_go_keepalives_are_accepted_both_ways() {
    // wireguard-go sends a persistent keepalive every second.
    let mut lab = Lab::start(None, None, Some(1));
    let seen = lab.us.pump_until(STEP, |n| {
        n.endpoint.peer_stats(WG).unwrap().rx_keepalives >= 2
    });
    assert!(
        seen,
        "we accepted wireguard-go's keepalives: {:?}",
        lab.us.endpoint.peer_stats(WG)
    );
    assert!(
        lab.us.completed(Role::Responder),
        "its keepalive confirmed our session"
    );
    assert!(lab.us.drops.is_empty(), "no drops: {:?}", lab.us.drops);

    // Stop its keepalives, then send one of ours: wireguard-go counts exactly one 32-byte message.
    lab.wg.set_persistent_keepalive(0).unwrap();
    lab.us.pump_until(Duration::from_millis(1500), |_| false);
    let before = lab.show();
    let ours_before = lab.us.endpoint.peer_stats(WG).unwrap().tx_packets;
    lab.us.endpoint.send_keepalive(WG);
    lab.us.flush();
    let sent = lab.us.endpoint.peer_stats(WG).unwrap().tx_packets;
    assert_eq!(sent, ours_before + 1, "one keepalive sent");
    let t = Instant::now() + Duration::from_millis(500);
    lab.us
        .pump_until(Duration::from_secs(1), |_| Instant::now() > t);
    let after = lab.show();
    assert_eq!(
        after.rx_bytes - before.rx_bytes,
        32,
        "wireguard-go accepted one 32-byte keepalive"
    );
    assert!(
        lab.us.delivered.is_empty() && lab.wg.received().is_empty(),
        "keepalives carry no data"
    );
    lab.evidence("keepalives");
}
