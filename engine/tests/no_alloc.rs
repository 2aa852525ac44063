//! The data path allocates nothing in steady state: after a warm-up, 10,000 packets are sealed by one
//! endpoint and opened by the other with zero heap allocations (STYLE.md §3 "Bounded and
//! allocation-free"). A counting global allocator measures it on the test's own thread.

#![allow(unsafe_code)] // A global allocator cannot be written without it; the library itself forbids unsafe.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::{Datagram, Endpoint, EndpointConfig, PacketBuf, PeerConfig, PeerId, ip};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the test's own thread is counted: the endpoint is single-threaded, and the test harness's
    /// main thread may still be allocating (output capture, reports) while the measured loop runs.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_data_path_does_not_allocate() {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let a_key = PrivateKey::generate(&mut SeededRng::new(1));
    let b_key = PrivateKey::generate(&mut SeededRng::new(2));
    let a_addr: SocketAddr = "192.0.2.1:1".parse().unwrap();
    let b_addr: SocketAddr = "192.0.2.2:2".parse().unwrap();
    let a_cfg = EndpointConfig::builder(a_key.clone())
        .clock_anchor(now, wall)
        .peer(
            PeerConfig::new(b_key.public_key())
                .endpoint(b_addr)
                .allowed_ip("10.0.0.2/32".parse().unwrap()),
        )
        .build()
        .unwrap();
    let b_cfg = EndpointConfig::builder(b_key)
        .clock_anchor(now, wall)
        .peer(
            PeerConfig::new(a_key.public_key())
                .endpoint(a_addr)
                .allowed_ip("10.0.0.1/32".parse().unwrap()),
        )
        .build()
        .unwrap();
    let mut a = Endpoint::new(Arc::new(a_cfg), Box::new(SeededRng::new(3)), now);
    let mut b = Endpoint::new(Arc::new(b_cfg), Box::new(SeededRng::new(4)), now);

    // Handshake.
    let mut wire = [0u8; 2048];
    a.connect(now, PeerId(0)).unwrap();
    let t = a.poll_transmit(now, &mut wire).unwrap();
    let Datagram::Reply { len, .. } = b.handle_datagram(now, a_addr, &mut wire[..t.len]) else {
        panic!("no response")
    };
    assert!(matches!(
        a.handle_datagram(now, b_addr, &mut wire[..len]),
        Datagram::Consumed
    ));
    while let Some(t) = a.poll_transmit(now, &mut wire) {
        let _ = b.handle_datagram(now, a_addr, &mut wire[..t.len]);
    }
    while a.poll_event().is_some() || b.poll_event().is_some() {}

    let payload_len = 1280;
    let mut packet = vec![0u8; payload_len];
    ip::emit_udp(
        &mut packet,
        "10.0.0.1:9".parse().unwrap(),
        "10.0.0.2:9".parse().unwrap(),
        payload_len - 28,
    )
    .unwrap();
    let mut buf = vec![0u8; PacketBuf::HEADROOM + payload_len + PacketBuf::TAILROOM];
    let mut run = |count: usize, a: &mut Endpoint, b: &mut Endpoint| {
        let mut delivered = 0;
        for i in 0..count {
            let at = now + Duration::from_micros(i as u64);
            let mut pkt = PacketBuf::new(&mut buf, payload_len).unwrap();
            pkt.payload_mut().copy_from_slice(&packet);
            let t = a.send_packet(at, &mut pkt).unwrap().expect("session");
            let (start, len) = (PacketBuf::HEADROOM - 16, t.len);
            if let Datagram::Deliver { packet: p, .. } =
                b.handle_datagram(at, a_addr, &mut buf[start..start + len])
            {
                assert_eq!(p.len(), payload_len);
                delivered += 1;
            }
            while a.poll_transmit(at, &mut wire).is_some() {}
            while b.poll_transmit(at, &mut wire).is_some() {}
            while a.poll_event().is_some() || b.poll_event().is_some() {}
        }
        delivered
    };
    assert_eq!(run(100, &mut a, &mut b), 100, "warm-up");
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    let delivered = run(10_000, &mut a, &mut b);
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(delivered, 10_000);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for 10,000 packets"
    );
}
