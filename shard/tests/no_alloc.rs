//! No allocation per datagram in steady state, for both backends: after a warm-up, 5,000 echoes go
//! through a running runtime while a counting global allocator watches every thread. This binary
//! holds only this test so nothing else allocates meanwhile.
#![allow(unsafe_code)] // A global allocator cannot be written without it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use pnet_mesh_shard::Backend;

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

/// Echoes `count` datagrams one at a time (send, wait for the reply) through the runtime.
fn ping_pong(
    client: &UdpSocket,
    server: std::net::SocketAddr,
    datagram: &[u8],
    buf: &mut [u8],
    count: usize,
) -> usize {
    let mut ok = 0;
    for _ in 0..count {
        client.send_to(datagram, server).expect("send");
        if let Ok((n, _)) = client.recv_from(buf)
            && n == datagram.len()
        {
            ok += 1;
        }
    }
    ok
}

#[test]
fn steady_state_echo_does_not_allocate_mmsg_and_io_uring() {
    for backend in [Backend::Mmsg, Backend::IoUring] {
        for offload in [false, true] {
            let (runtime, _) =
                echo_runtime(&["127.0.0.1:0".parse().unwrap()], backend, 2, offload, true);
            let server = runtime.local_addrs()[0];
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut buf = vec![0u8; 2048];
            let datagrams = [
                data_datagram(0, 1, 1452),
                data_datagram(1, 2, 1452),
                control_datagram(3),
            ];
            for d in &datagrams {
                assert_eq!(
                    ping_pong(&client, server, d, &mut buf, 200),
                    200,
                    "warm-up {backend:?}"
                );
            }
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            let mut echoed = 0;
            for d in &datagrams {
                echoed += ping_pong(&client, server, d, &mut buf, 2000);
            }
            let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
            assert_eq!(echoed, 6000, "{backend:?}");
            assert_eq!(
                allocations, 0,
                "{allocations} allocations for 6,000 echoes on {backend:?} (offload {offload})"
            );
            runtime.shutdown();
        }
    }
}
