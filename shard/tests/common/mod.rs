//! Shared test support: an echo handler that tags replies with the shard that handled them, and a
//! client that sends and collects.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pnet_mesh_shard::{
    Backend, DatagramHandler, RecvBatch, Runtime, RuntimeConfig, SendBatch, ShardContext, ShardId,
    SteeringRule,
};

/// The steering rule of the tests: WireGuard's (type 4, receiver index byte at offset 4, 32 bytes).
pub const RULE: SteeringRule = SteeringRule {
    type_byte: 4,
    index_offset: 4,
    min_len: 32,
};

/// Byte of every reply that carries the id of the shard that echoed it.
pub const TAG_AT: usize = 1;

/// Echoes every segment back to its sender, with byte 1 set to the shard id; counts GRO batches.
pub struct Echo {
    pub shard: ShardId,
    pub gro_batches: Arc<AtomicUsize>,
}

impl DatagramHandler for Echo {
    type Command = ();

    fn on_recv(
        &mut self,
        _: &mut ShardContext<'_, ()>,
        _: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            if meta.segments() > 1 {
                self.gro_batches.fetch_add(1, Ordering::Relaxed);
            }
            let tag = self.shard.0 as u8;
            if meta.segments() == 1 {
                // In place: the received buffer goes back out.
                if let Some((buf, range)) = rx.buffer_mut(i) {
                    if let Some(b) = buf.get_mut(range.start + TAG_AT) {
                        *b = tag;
                    }
                    let _ = tx.push_rx(rx, i, meta.from, range);
                }
                continue;
            }
            let segments: Vec<Vec<u8>> = rx.segments(i).map(<[u8]>::to_vec).collect();
            for mut seg in segments {
                if let Some(b) = seg.get_mut(TAG_AT) {
                    *b = tag;
                }
                let _ = tx.push(meta.from, &seg);
            }
        }
    }

    fn on_command(&mut self, _: &mut ShardContext<'_, ()>, _: Instant, _: (), _: &mut SendBatch) {}
}

/// Starts an echo runtime with `data_shards` data shards on `listen`.
pub fn echo_runtime(
    listen: &[SocketAddr],
    backend: Backend,
    data_shards: usize,
    offload: bool,
    attach_program: bool,
) -> (Runtime<()>, Arc<AtomicUsize>) {
    let gro_batches = Arc::new(AtomicUsize::new(0));
    let counter = gro_batches.clone();
    let config = RuntimeConfig::new(listen.iter().copied())
        .backend(backend)
        .data_shards(data_shards)
        .steering(RULE)
        .attach_steering_program(attach_program)
        .gso(offload)
        .gro(offload)
        .pin_threads(false);
    let runtime = Runtime::start(config, move |shard| Echo {
        shard,
        gro_batches: counter.clone(),
    })
    .unwrap_or_else(|e| panic!("runtime start ({backend:?}): {e}"));
    (runtime, gro_batches)
}

/// A datagram of `len` bytes that the rule sends to data shard `k` (byte 4 = k).
pub fn data_datagram(k: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    d[0] = 4;
    d[4] = k;
    d[8..12].copy_from_slice(&seq.to_le_bytes());
    d
}

/// A datagram the rule sends to the control shard.
pub fn control_datagram(seq: u32) -> Vec<u8> {
    let mut d = vec![0u8; 148];
    d[0] = 1;
    d[8..12].copy_from_slice(&seq.to_le_bytes());
    d
}

/// Sends `datagrams` to `server` and collects every reply (by sequence number) until all arrived or
/// `timeout` passed. Returns the replies.
pub fn exchange(server: SocketAddr, datagrams: &[Vec<u8>], timeout: Duration) -> Vec<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let client = UdpSocket::bind(bind).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut replies = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    for chunk in datagrams.chunks(64) {
        for d in chunk {
            client.send_to(d, server).unwrap();
        }
        // Collect as we go so the socket buffer never overflows.
        while let Ok((n, _)) = client.recv_from(&mut buf) {
            replies.push(buf[..n].to_vec());
            if replies.len() == datagrams.len() {
                break;
            }
        }
    }
    while replies.len() < datagrams.len() && Instant::now() < deadline {
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            replies.push(buf[..n].to_vec());
        }
    }
    replies
}
