//! Tests of the io_uring backend on its own: echo on loopback through one `UringIo` (no runtime, no
//! threads besides the test's), buffer accounting, the waker, GSO fallback.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;
use crate::channel::Waker;
use crate::config::MAX_UDP_PAYLOAD;

const POOL: usize = 128;
const BATCH: usize = 32;
/// Bounds a wait that should end at once, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// What a `ShardIo` borrows: the shard's pools, waker and counters.
struct Shard {
    pools: Pools,
    waker: Arc<Waker>,
    stats: ShardStats,
}

impl Shard {
    fn ctx(&self) -> ShardIo<'_> {
        ShardIo {
            pools: &self.pools,
            shard: 0,
            waker: &self.waker,
            stats: &self.stats,
        }
    }
}

/// A `UringIo` on one socket bound to `bind` (port 0), and its shard.
fn rig(bind: &str, data_capacity: usize, gso: bool, gro: bool) -> (UringIo, Shard, SocketAddr) {
    let socket = UdpSocket::bind(bind).expect("bind the shard socket");
    socket.set_nonblocking(true).expect("non-blocking");
    let local = socket.local_addr().expect("local address");
    let shard = Shard {
        pools: Pools::new(1, POOL, 1, 1, data_capacity, data_capacity),
        waker: Arc::new(Waker::new().expect("eventfd")),
        stats: ShardStats::default(),
    };
    let sockets = ShardSockets {
        sockets: vec![socket],
        locals: vec![local],
    };
    let io = UringIo::new(sockets, shard.waker.fd(), 256, BATCH, gso, gro)
        .expect("io_uring ring (needs a kernel with io_uring and enough locked memory)");
    (io, shard, local)
}

fn client(bind: &str) -> UdpSocket {
    let c = UdpSocket::bind(bind).expect("bind the client");
    c.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    c
}

/// Makes every send of `socket` a GSO send with `size`-byte segments (`UDP_SEGMENT` as a socket option).
fn set_send_segment(socket: &UdpSocket, size: libc::c_int) {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "UDP_SEGMENT on the client: {}",
        io::Error::last_os_error()
    );
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}

/// Receives until `want` datagrams (segments) arrived; returns the entries' (len, stride).
fn recv_until(
    io: &mut UringIo,
    shard: &Shard,
    rx: &mut RecvBatch,
    want: u64,
) -> Vec<(usize, usize)> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while shard.stats.snapshot().rx_datagrams < want {
        assert!(
            Instant::now() < deadline,
            "received {:?} of {want}",
            shard.stats.snapshot()
        );
        io.recv(&shard.ctx(), rx, Some(Duration::from_millis(200)))
            .expect("recv");
        seen.extend(
            (0..rx.len())
                .filter_map(|i| rx.meta(i))
                .map(|m| (m.len, m.stride)),
        );
        rx.release_all(&shard.pools);
    }
    seen
}

/// Echo of `n` datagrams of `len` bytes: the client sends them as one GSO send (which the kernel
/// splits unless the server has GRO), the server echoes every segment back (in place for a single
/// datagram, copied out of a GRO super-datagram), and the client checks each one.
fn echo(bind: &str, gso: bool, gro: bool) {
    const N: usize = 16;
    const LEN: usize = 1000;
    let capacity = if gro { MAX_UDP_PAYLOAD } else { 2048 };
    let (mut io, shard, server) = rig(bind, capacity, gso, gro);
    assert_eq!(
        io.offload(),
        Offload { gso, gro },
        "this kernel has UDP GSO and GRO"
    );
    let client = client(bind);
    set_send_segment(&client, LEN as libc::c_int);
    let sent: Vec<Vec<u8>> = (0..N).map(|i| payload(i, LEN)).collect();
    client.send_to(&sent.concat(), server).expect("client send");

    let mut rx = RecvBatch::with_capacity(BATCH);
    let mut tx = SendBatch::new(BATCH * 4, shard.pools.clone(), 0);
    let mut gro_seen = false;
    let deadline = Instant::now() + PATIENCE;
    while shard.stats.snapshot().rx_datagrams < N as u64 {
        assert!(
            Instant::now() < deadline,
            "server received {:?}",
            shard.stats.snapshot()
        );
        io.recv(&shard.ctx(), &mut rx, Some(Duration::from_millis(200)))
            .expect("recv");
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            assert_eq!(meta.local, server);
            if meta.stride < meta.len {
                gro_seen = true;
                let segments: Vec<Vec<u8>> = rx.segments(i).map(<[u8]>::to_vec).collect();
                for s in segments {
                    tx.push(meta.from, &s).expect("room to echo");
                }
            } else {
                let Some((_, range)) = rx.buffer_mut(i) else {
                    continue;
                };
                tx.push_rx(&mut rx, i, meta.from, range)
                    .expect("room to echo");
            }
        }
        rx.release_all(&shard.pools);
        io.send(&shard.ctx(), &mut tx).expect("send");
        assert!(tx.is_empty());
    }

    let mut buf = vec![0u8; 2 * LEN];
    for (i, want) in sent.iter().enumerate() {
        let (n, from) = client
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("echo {i} of {N}: {e}"));
        assert_eq!(from, server);
        assert_eq!(&buf[..n], &want[..], "echo {i} differs");
    }

    let stats = shard.stats.snapshot();
    assert_eq!(stats.rx_datagrams, N as u64);
    assert_eq!(stats.rx_bytes, (N * LEN) as u64);
    assert_eq!(stats.tx_datagrams, N as u64);
    assert_eq!(stats.tx_bytes, (N * LEN) as u64);
    assert_eq!((stats.tx_errors, stats.rx_truncated), (0, 0));
    assert_eq!(gro_seen, gro, "GRO super-datagrams seen: {gro_seen}");
    if gso {
        assert!(stats.tx_gso_sends >= 1, "no GSO send: {stats:?}");
    } else {
        assert_eq!(stats.tx_gso_sends, 0);
    }
    drop(io);
    assert_eq!(
        shard.pools.available(0),
        POOL,
        "every buffer back in the pool after drop"
    );
}

#[test]
fn echo_gso_gro_on_io_uring() {
    echo("127.0.0.1:0", true, true);
}

#[test]
fn echo_gso_gro_off_io_uring() {
    echo("127.0.0.1:0", false, false);
}

#[test]
fn echo_ipv6_gso_gro_on_io_uring() {
    echo("[::1]:0", true, true);
}

#[test]
fn recv_respects_batch_room_io_uring() {
    const N: usize = 20;
    let (mut io, shard, server) = rig("127.0.0.1:0", 2048, false, false);
    let client = client("127.0.0.1:0");
    for i in 0..N {
        client
            .send_to(&payload(i, 100 + i), server)
            .expect("client send");
    }
    let mut rx = RecvBatch::with_capacity(4);
    let mut lens = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while lens.len() < N {
        assert!(Instant::now() < deadline, "received {} of {N}", lens.len());
        io.recv(&shard.ctx(), &mut rx, Some(Duration::from_millis(200)))
            .expect("recv");
        assert!(rx.len() <= 4);
        for i in 0..rx.len() {
            let data = rx.data(i).expect("entry");
            assert_eq!(data, &payload(lens.len(), data.len())[..]);
            lens.push(data.len());
        }
        rx.release_all(&shard.pools);
    }
    assert_eq!(
        lens,
        (0..N).map(|i| 100 + i).collect::<Vec<_>>(),
        "all, in order"
    );
}

#[test]
fn truncated_datagrams_are_dropped_and_counted_io_uring() {
    let (mut io, shard, server) = rig("127.0.0.1:0", 100, false, false);
    let client = client("127.0.0.1:0");
    client.send_to(&[7u8; 500], server).expect("client send");
    client.send_to(&[9u8; 50], server).expect("client send");
    let mut rx = RecvBatch::with_capacity(BATCH);
    let seen = recv_until(&mut io, &shard, &mut rx, 1);
    assert_eq!(seen, vec![(50, 50)]);
    let stats = shard.stats.snapshot();
    assert_eq!((stats.rx_truncated, stats.rx_datagrams), (1, 1));
}

#[test]
fn gso_refusal_turns_gso_off_and_resends_singly_io_uring() {
    // More than UDP_MAX_SEGMENTS segments (64, or 128 since Linux 6.11): the kernel refuses the GSO send
    // with EINVAL.
    const SEGMENTS: usize = 150;
    const SEG: usize = 5;
    let (mut io, shard, _) = rig("127.0.0.1:0", 2048, true, false);
    assert!(io.offload().gso);
    shard.stats.gso.store(true, Ordering::Relaxed);
    let client = client("127.0.0.1:0");
    let to = client.local_addr().expect("client address");
    let mut tx = SendBatch::new(BATCH, shard.pools.clone(), 0);
    let mut buf = shard.pools.take(0).expect("a buffer");
    let data = payload(0, SEGMENTS * SEG);
    buf.as_mut_slice()[HEADROOM..HEADROOM + data.len()].copy_from_slice(&data);
    tx.entries.push(Outgoing {
        buf,
        range: HEADROOM..HEADROOM + data.len(),
        to,
        segment_size: Some(SEG),
    });
    io.send(&shard.ctx(), &mut tx).expect("send");

    assert!(!io.offload().gso, "GSO off after the refusal");
    assert!(!shard.stats.gso.load(Ordering::Relaxed));
    let stats = shard.stats.snapshot();
    assert_eq!(
        (stats.tx_datagrams, stats.tx_bytes),
        (SEGMENTS as u64, data.len() as u64)
    );
    assert_eq!((stats.tx_errors, stats.tx_gso_sends), (0, 0));
    let mut got = vec![0u8; 2 * SEG];
    for (i, want) in data.chunks(SEG).enumerate() {
        let (n, _) = client
            .recv_from(&mut got)
            .unwrap_or_else(|e| panic!("segment {i}: {e}"));
        assert_eq!(&got[..n], want, "segment {i}");
    }
    assert_eq!(shard.pools.available(0), POOL, "the send buffer went back");
}

#[test]
fn waker_wakes_a_blocked_recv_io_uring() {
    let (mut io, shard, _) = rig("127.0.0.1:0", 2048, false, false);
    let mut rx = RecvBatch::with_capacity(BATCH);
    for round in 0..2 {
        shard.waker.prepare_sleep();
        let waker = shard.waker.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake();
        });
        let start = Instant::now();
        io.recv(&shard.ctx(), &mut rx, Some(PATIENCE * 3))
            .expect("recv");
        assert!(
            start.elapsed() < PATIENCE,
            "round {round}: the wake-up did not end the wait"
        );
        assert!(rx.is_empty());
        shard.waker.awake();
        t.join().expect("waker thread");
    }
}

#[test]
fn recv_times_out_empty_io_uring() {
    let (mut io, shard, _) = rig("127.0.0.1:0", 2048, false, false);
    let mut rx = RecvBatch::with_capacity(BATCH);
    io.recv(&shard.ctx(), &mut rx, Some(Duration::from_millis(20)))
        .expect("recv");
    io.recv(&shard.ctx(), &mut rx, Some(Duration::ZERO))
        .expect("recv");
    assert!(rx.is_empty());
    assert_eq!(shard.stats.snapshot().rx_batches, 0);
}

#[test]
fn drop_cancels_receives_and_returns_buffers_io_uring() {
    let (mut io, shard, _) = rig("127.0.0.1:0", 2048, false, false);
    let mut rx = RecvBatch::with_capacity(BATCH);
    io.recv(&shard.ctx(), &mut rx, Some(Duration::ZERO))
        .expect("recv");
    assert_eq!(
        shard.pools.available(0),
        POOL - BATCH,
        "one buffer leased per receive in flight"
    );
    drop(io);
    assert_eq!(shard.pools.available(0), POOL);
}

#[test]
fn empty_pool_is_counted_and_recovers_io_uring() {
    let (mut io, shard, server) = rig("127.0.0.1:0", 2048, false, false);
    let hoard: Vec<Buf> = std::iter::from_fn(|| shard.pools.take(0)).collect();
    let mut rx = RecvBatch::with_capacity(BATCH);
    io.recv(&shard.ctx(), &mut rx, Some(Duration::ZERO))
        .expect("recv");
    assert!(shard.stats.snapshot().no_buffer >= 1);
    for buf in hoard {
        shard.pools.release(buf);
    }
    client("127.0.0.1:0")
        .send_to(b"late", server)
        .expect("client send");
    let seen = recv_until(&mut io, &shard, &mut rx, 1);
    assert_eq!(seen, vec![(4, 4)]);
}
