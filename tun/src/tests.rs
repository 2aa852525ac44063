//! The pump against an in-memory device between two real nodes on loopback: no privilege needed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::{PeerConfig, ip};

use super::*;
use pnet_mesh::Node;
use pnet_mesh::wg_quick::WgQuickConfig;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Packets the test writes for the bridge to read, and what the bridge wrote.
#[derive(Default)]
struct MemoryDevice {
    inbox: Mutex<VecDeque<(Vec<u8>, Offload)>>,
    ready: Condvar,
    outbox: Mutex<Vec<Vec<u8>>>,
}

impl PacketDevice for MemoryDevice {
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Inbound>> {
        let mut inbox = self.inbox.lock().unwrap();
        if inbox.is_empty() {
            inbox = self
                .ready
                .wait_timeout(inbox, Duration::from_millis(100))
                .unwrap()
                .0;
        }
        Ok(inbox.pop_front().map(|(p, offload)| {
            buf[..p.len()].copy_from_slice(&p);
            Inbound {
                start: 0,
                len: p.len(),
                offload,
            }
        }))
    }

    fn send_batch(&self, batch: &mut [Vec<u8>]) -> io::Result<usize> {
        let mut out = self.outbox.lock().unwrap();
        for p in batch.iter() {
            out.push(p[HEADROOM..].to_vec());
        }
        Ok(0)
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

/// Two nodes on loopback, each behind a bridge on an in-memory device.
struct Pair {
    dev_a: Arc<MemoryDevice>,
    dev_b: Arc<MemoryDevice>,
    bridge_a: Bridge,
    bridge_b: Bridge,
}

fn pair() -> Pair {
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
    Pair {
        dev_a,
        dev_b,
        bridge_a,
        bridge_b,
    }
}

impl MemoryDevice {
    fn push(&self, packet: Vec<u8>, offload: Offload) {
        self.inbox.lock().unwrap().push_back((packet, offload));
        self.ready.notify_one();
    }

    fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.outbox.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} packets crossed the mesh in time"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.outbox.lock().unwrap().clone()
    }
}

#[test]
fn the_bridge_carries_packets_from_one_device_through_the_mesh_to_the_other() {
    let Pair {
        dev_a,
        dev_b,
        bridge_a,
        bridge_b,
    } = pair();
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
        dev_a.push(p.clone(), Offload::None);
    }
    assert_eq!(
        dev_b.wait_for(packets.len()),
        packets,
        "intact and in order"
    );
    assert_eq!(bridge_a.stats().to_mesh.load(Ordering::Relaxed), 20);
    assert_eq!(bridge_b.stats().from_mesh.load(Ordering::Relaxed), 20);
    // A packet no peer routes is dropped and counted, not queued.
    dev_a.push(
        udp("10.81.0.1:4000", "10.99.0.9:5000", b"nowhere"),
        Offload::None,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge_a.stats().to_mesh_dropped.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn super_packets_cross_as_segments_and_partial_checksums_are_completed() {
    let Pair {
        dev_a,
        dev_b,
        bridge_a,
        bridge_b: _bridge_b,
    } = pair();
    // A UDP super-packet as a TUN with USO hands it out: 3000 bytes of payload, segment size 1000.
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    dev_a.push(
        udp("10.81.0.1:4000", "10.81.0.2:5000", &payload),
        Offload::Segment(1000),
    );
    let got = dev_b.wait_for(3);
    let headers = ip::udp_headers_len(&"10.81.0.2:5000".parse().unwrap());
    for (i, segment) in got.iter().enumerate() {
        let chunk = &payload[i * 1000..(i + 1) * 1000];
        // Each segment is exactly the ordinary packet the payload chunk would have been, checksum
        // included (the IPv4 identification advances by one per segment).
        let mut expected = udp("10.81.0.1:4000", "10.81.0.2:5000", chunk);
        let id = u16::from_be_bytes([expected[4], expected[5]]).wrapping_add(i as u16);
        expected[4..6].copy_from_slice(&id.to_be_bytes());
        expected[10..12].fill(0);
        let csum = !fold16(&expected[..20]);
        expected[10..12].copy_from_slice(&csum.to_be_bytes());
        assert_eq!(segment.len(), headers + 1000, "segment {i} length");
        assert_eq!(segment, &expected, "segment {i}");
    }
    assert_eq!(bridge_a.stats().super_packets.load(Ordering::Relaxed), 1);
    assert_eq!(bridge_a.stats().to_mesh.load(Ordering::Relaxed), 3);
    // A packet with only the pseudo-header checksum (CHECKSUM_PARTIAL) arrives with the full one.
    let whole = udp("10.81.0.1:4000", "10.81.0.2:5000", b"partial checksum");
    let mut partial = whole.clone();
    partial[26..28].copy_from_slice(&[0x12, 0x34]);
    dev_a.push(partial, Offload::Checksum);
    assert_eq!(dev_b.wait_for(4)[3], whole);
    // A frame the bridge cannot carry is dropped and counted.
    dev_a.push(whole, Offload::Refused);
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge_a.stats().to_mesh_dropped.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The ones' complement sum of `bytes`, folded.
fn fold16(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn virtio_net_headers_are_read_as_the_kernel_writes_them() {
    let frame = |flags: u8, gso_type: u8, gso_size: u16, len: usize| {
        let mut f = vec![0u8; HEADROOM + len];
        f[0] = flags;
        f[1] = gso_type;
        f[4..6].copy_from_slice(&gso_size.to_le_bytes());
        f
    };
    let decode = |f: Vec<u8>| crate::device::decode_vnet_frame(&f);
    assert_eq!(
        decode(frame(0, 0, 0, 60)),
        Inbound {
            start: HEADROOM,
            len: 60,
            offload: Offload::None
        }
    );
    assert_eq!(decode(frame(1, 0, 0, 60)).offload, Offload::Checksum);
    assert_eq!(
        decode(frame(1, 1, 1368, 9000)).offload,
        Offload::Segment(1368)
    );
    assert_eq!(
        decode(frame(1, 4, 1348, 9000)).offload,
        Offload::Segment(1348)
    );
    assert_eq!(
        decode(frame(1, 5, 1372, 9000)).offload,
        Offload::Segment(1372)
    );
    // TCP with ECN set is still TSO.
    assert_eq!(
        decode(frame(1, 0x81, 1368, 9000)).offload,
        Offload::Segment(1368)
    );
    // UFO (3), a zero segment size, or nothing after the header cannot be carried.
    assert_eq!(decode(frame(1, 3, 1400, 9000)).offload, Offload::Refused);
    assert_eq!(decode(frame(1, 1, 0, 9000)).offload, Offload::Refused);
    assert_eq!(decode(frame(0, 0, 0, 0)).offload, Offload::Refused);
    assert_eq!(decode(vec![1, 2]).offload, Offload::Refused);
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
