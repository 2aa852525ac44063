//! The node allocates nothing per datagram in steady state: after a warm-up, 4,000 round trips go
//! between two nodes over loopback UDP through the public API, on each backend, while a counting
//! global allocator watches every thread (the application's and the shards'). This binary holds only
//! this test so nothing else allocates meanwhile.

#![allow(unsafe_code)] // A global allocator cannot be written without it; the library itself forbids unsafe.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::{Backend, Node, PeerConfig};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn node(
    seed: u64,
    peer_seed: u64,
    mesh: &str,
    peer_mesh: &str,
    peer_at: Option<SocketAddr>,
    backend: Backend,
) -> Node {
    let key = PrivateKey::generate(&mut SeededRng::new(seed));
    let peer_key = PrivateKey::generate(&mut SeededRng::new(peer_seed));
    let mut peer = PeerConfig::new(peer_key.public_key())
        .allowed_ip(format!("{peer_mesh}/32").parse().unwrap());
    if let Some(at) = peer_at {
        peer = peer.endpoint(at);
    }
    Node::builder(key)
        .listen("127.0.0.1:0".parse().unwrap())
        .mesh_address(mesh.parse().unwrap())
        .backend(backend)
        .data_shards(2)
        .peer(peer)
        .start()
        .expect("node starts")
}

/// `count` round trips of a `size`-byte datagram: A sends, B echoes, A receives. Returns how many
/// came back intact.
fn round_trips(a: &Node, b: &Node, payload: &[u8], buf: &mut [u8], count: usize) -> usize {
    let b_mesh: SocketAddr = "10.9.1.2:51800".parse().unwrap();
    let wait = Duration::from_secs(5);
    let mut ok = 0;
    for _ in 0..count {
        a.send_to(payload, b_mesh).expect("A sends");
        let Ok((n, from)) = b.recv_from_timeout(buf, wait) else {
            continue;
        };
        b.send_to(&buf[..n], from).expect("B echoes");
        if let Ok((n, from)) = a.recv_from_timeout(buf, wait)
            && from == b_mesh
            && buf[..n] == *payload
        {
            ok += 1;
        }
    }
    ok
}

#[test]
fn steady_state_node_round_trips_do_not_allocate_mmsg_and_io_uring() {
    for backend in [Backend::Mmsg, Backend::IoUring] {
        let b = node(2, 1, "10.9.1.2", "10.9.1.1", None, backend);
        let a = node(
            1,
            2,
            "10.9.1.1",
            "10.9.1.2",
            Some(b.local_addrs()[0]),
            backend,
        );
        let mut buf = vec![0u8; 2048];
        let payloads = [vec![7u8; 36], vec![9u8; 1392]];
        for p in &payloads {
            assert_eq!(
                round_trips(&a, &b, p, &mut buf, 300),
                300,
                "warm-up on {backend:?}"
            );
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        assert!(
            before > 0,
            "the counting allocator sees the nodes' start-up"
        );
        let mut ok = 0;
        for p in &payloads {
            ok += round_trips(&a, &b, p, &mut buf, 2000);
        }
        let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(ok, 4000, "{backend:?}");
        assert_eq!(
            allocations, 0,
            "{allocations} allocations for 4,000 round trips between nodes on {backend:?}"
        );
        a.shutdown();
        b.shutdown();
    }
}
