//! The pump against an in-memory device between two real nodes on loopback: no privilege needed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::{PeerConfig, ip};

use super::*;

/// Packets the test writes for the bridge to read, and what the bridge wrote.
#[derive(Default)]
struct MemoryDevice {
    inbox: Mutex<VecDeque<Vec<u8>>>,
    ready: Condvar,
    outbox: Mutex<Vec<Vec<u8>>>,
}

impl PacketDevice for MemoryDevice {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut inbox = self.inbox.lock().unwrap();
        if inbox.is_empty() {
            inbox = self.ready.wait_timeout(inbox, POLL).unwrap().0;
        }
        match inbox.pop_front() {
            Some(p) => {
                buf[..p.len()].copy_from_slice(&p);
                Ok(p.len())
            }
            None => Ok(0),
        }
    }

    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.outbox.lock().unwrap().push(packet.to_vec());
        Ok(packet.len())
    }
}

fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0u8; ip::udp_headers_len(&dst) + payload.len()];
    p[ip::udp_headers_len(&dst)..].copy_from_slice(payload);
    let n = ip::emit_udp(&mut p, src, dst, payload.len()).unwrap();
    p.truncate(n);
    p
}

#[test]
fn the_bridge_carries_packets_from_one_device_through_the_mesh_to_the_other() {
    let (a_key, b_key) = (
        PrivateKey::generate(&mut SeededRng::new(1)),
        PrivateKey::generate(&mut SeededRng::new(2)),
    );
    let b = Node::builder(b_key.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.81.0.2".parse().unwrap())
        .data_shards(1)
        .peer(PeerConfig::new(a_key.public_key()).allowed_ip("10.81.0.1/32".parse().unwrap()))
        .start()
        .unwrap();
    let a = Node::builder(a_key)
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address("10.81.0.1".parse().unwrap())
        .data_shards(1)
        .peer(
            PeerConfig::new(b_key.public_key())
                .endpoint(b.local_addrs()[0])
                .allowed_ip("10.81.0.2/32".parse().unwrap()),
        )
        .start()
        .unwrap();
    let (dev_a, dev_b) = (
        Arc::new(MemoryDevice::default()),
        Arc::new(MemoryDevice::default()),
    );
    let bridge_a = Bridge::start(Arc::new(a), dev_a.clone()).unwrap();
    let bridge_b = Bridge::start(Arc::new(b), dev_b.clone()).unwrap();
    let packets: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            udp(
                "10.81.0.1:4000",
                "10.81.0.2:5000",
                format!("packet {i}").as_bytes(),
            )
        })
        .collect();
    for p in &packets {
        dev_a.inbox.lock().unwrap().push_back(p.clone());
        dev_a.ready.notify_one();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while dev_b.outbox.lock().unwrap().len() < packets.len() {
        assert!(
            Instant::now() < deadline,
            "the packets crossed the mesh in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *dev_b.outbox.lock().unwrap(),
        packets,
        "intact and in order"
    );
    assert_eq!(bridge_a.stats().to_mesh.load(Ordering::Relaxed), 20);
    assert_eq!(bridge_b.stats().from_mesh.load(Ordering::Relaxed), 20);
    // A packet no peer routes is dropped and counted, not queued.
    dev_a
        .inbox
        .lock()
        .unwrap()
        .push_back(udp("10.81.0.1:4000", "10.99.0.9:5000", b"nowhere"));
    dev_a.ready.notify_one();
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge_a.stats().to_mesh_dropped.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn interface_settings_come_from_the_wg_quick_file_and_bad_names_are_refused() {
    let text = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
                Address = 10.0.0.1/24, fd00:80::1/64\nMTU = 1380\n";
    let config = WgQuickConfig::parse("tun0.conf", text).unwrap();
    let s = TunSettings::from_wg_quick(&config, "pmtun0").unwrap();
    assert_eq!(
        s.addresses,
        vec![
            ("10.0.0.1".parse().unwrap(), 24),
            ("fd00:80::1".parse().unwrap(), 64)
        ]
    );
    assert_eq!(s.mtu, 1380);
    assert!(TunSettings::from_wg_quick(&config, "a-name-longer-than-15").is_err());
    let bare = WgQuickConfig::parse(
        "x.conf",
        "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n",
    )
    .unwrap();
    let e = TunSettings::from_wg_quick(&bare, "pmtun0").unwrap_err();
    assert!(e.contains("no Address"), "{e}");
}
