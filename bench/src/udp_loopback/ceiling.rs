//! The ceiling and bare UDP: the same shard runtime, backend, batching, buffers and placement as the
//! node pair, moving datagrams of the same size, with a bare ChaCha20-Poly1305 seal on send and open
//! on receive (the ceiling) or no crypto at all (bare UDP), and no protocol around it.
//!
//! Each side does what the node does minus WireGuard: the producer fills an application-pool buffer
//! with an IPv4/UDP packet and hands it to the sending shard with a command; the shard pads, seals in
//! place behind a 16-byte header and sends (GSO coalescing in the backend); the receiving shard opens
//! each datagram (each GRO segment) in place and queues it for the consumer, which reads the UDP
//! payload out.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use pnet_mesh::crypto::aead::{AeadKey, TAG_LEN};
use pnet_mesh::ip;
use pnet_mesh_shard::{
    Backend, Buf, BufferPool, DatagramHandler, HEADROOM, Readiness, RecvBatch, Runtime,
    RuntimeConfig, RuntimeReport, SendBatch, ShardContext, ShardId, SteeringRule,
};

use super::drive::Link;

/// WireGuard's steering rule (type 4, receiver index at 4, 32 bytes), as the node uses.
const RULE: SteeringRule = SteeringRule {
    type_byte: 4,
    index_offset: 4,
    min_len: 32,
};
const HEADER_LEN: usize = 16;
const KEY: [u8; 32] = [0x42; 32];
/// Datagrams waiting for the consumer (the node's default receive queue is the same).
const QUEUE: usize = 1024;

/// Whether the datagrams are sealed and opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crypto {
    /// Bare ChaCha20-Poly1305 (aws-lc-rs), as the data path uses.
    Aead,
    /// None: bare UDP.
    None,
}

/// A command to the sending shard: a filled buffer and the inner packet's length.
#[derive(Debug)]
pub struct Send {
    buf: Buf,
    len: usize,
}

#[derive(Debug)]
struct Delivery {
    buf: Buf,
    range: Range<usize>,
}

#[derive(Debug)]
struct Shared {
    queue: ArrayQueue<Delivery>,
    readiness: Readiness,
    pool: OnceLock<BufferPool>,
}

impl Shared {
    fn release(&self, buf: Buf) {
        if let Some(pool) = self.pool.get() {
            pool.release(buf);
        }
    }
}

enum Handler {
    Sender {
        key: AeadKey,
        crypto: Crypto,
        counter: u64,
        to: SocketAddr,
    },
    Receiver {
        key: AeadKey,
        crypto: Crypto,
        shared: Arc<Shared>,
    },
    Idle,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ceiling handler")
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(16) * 16
}

impl DatagramHandler for Handler {
    type Command = Send;

    fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, Send>,
        _: Instant,
        rx: &mut RecvBatch,
        _: &mut SendBatch,
    ) {
        let Handler::Receiver {
            key,
            crypto,
            shared,
        } = self
        else {
            return;
        };
        shared.pool.get_or_init(|| ctx.buffer_pool());
        let mut delivered = false;
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            let stride = meta.stride.max(1);
            let single = meta.len <= stride;
            let Some((data, range)) = rx.buffer_mut(i) else {
                continue;
            };
            let Some(data) = data.get_mut(range.clone()) else {
                continue;
            };
            let mut keep = None;
            for (k, segment) in data.chunks_mut(stride).enumerate() {
                let Some(plain) = open(key, *crypto, segment) else {
                    continue;
                };
                let at = range.start + k * stride + HEADER_LEN;
                if single {
                    keep = Some(at..at + plain.len());
                } else if let Some(mut buf) = shared.pool.get().and_then(|p| p.take(ctx.shard())) {
                    // A GRO segment: copied into a buffer of its own, as the node does.
                    let r = HEADROOM..HEADROOM + plain.len();
                    if let Some(dst) = buf.as_mut_slice().get_mut(r.clone()) {
                        dst.copy_from_slice(plain);
                        delivered |= push(shared, Delivery { buf, range: r });
                    } else {
                        shared.release(buf);
                    }
                }
            }
            if let Some(r) = keep
                && let Some((buf, _)) = rx.take(i)
            {
                delivered |= push(shared, Delivery { buf, range: r });
            }
        }
        if delivered {
            shared.readiness.signal();
        }
    }

    fn on_command(
        &mut self,
        ctx: &mut ShardContext<'_, Send>,
        _: Instant,
        command: Send,
        tx: &mut SendBatch,
    ) {
        let Send { mut buf, len } = command;
        let Handler::Sender {
            key,
            crypto,
            counter,
            to,
        } = self
        else {
            ctx.buffer_pool().release(buf);
            return;
        };
        let p = padded(len);
        let data = buf.as_mut_slice();
        let Some(area) = data.get_mut(HEADROOM - HEADER_LEN..HEADROOM + p + TAG_LEN) else {
            ctx.buffer_pool().release(buf);
            return;
        };
        let (header, body) = area.split_at_mut(HEADER_LEN);
        header.fill(0);
        header[0] = 4;
        header[8..].copy_from_slice(&counter.to_le_bytes());
        body[len..p].fill(0);
        if *crypto == Crypto::Aead {
            let tag = key.seal_in_place(*counter, &[], &mut body[..p]);
            body[p..].copy_from_slice(&tag);
        }
        *counter += 1;
        let range = HEADROOM - HEADER_LEN..HEADROOM + p + TAG_LEN;
        if let Err((_, buf)) = tx.push_buf(buf, range, *to) {
            ctx.buffer_pool().release(buf);
        }
    }
}

/// Opens one datagram in place; the padded plaintext.
fn open<'a>(key: &AeadKey, crypto: Crypto, datagram: &'a mut [u8]) -> Option<&'a mut [u8]> {
    if datagram.len() < HEADER_LEN + TAG_LEN || datagram.first() != Some(&4) {
        return None;
    }
    let counter = u64::from_le_bytes(datagram.get(8..16)?.try_into().ok()?);
    let body = datagram.get_mut(HEADER_LEN..)?;
    match crypto {
        Crypto::Aead => key.open_in_place(counter, &[], body).ok(),
        Crypto::None => {
            let n = body.len() - TAG_LEN;
            body.get_mut(..n)
        }
    }
}

fn push(shared: &Shared, d: Delivery) -> bool {
    match shared.queue.push(d) {
        Ok(()) => true,
        Err(d) => {
            shared.release(d.buf);
            false
        }
    }
}

/// The sending and the receiving runtime.
pub struct CeilingLink {
    sender: Runtime<Send>,
    receiver: Runtime<Send>,
    shared: Arc<Shared>,
    pool: BufferPool,
    src: SocketAddr,
    dst: SocketAddr,
}

impl std::fmt::Debug for CeilingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeilingLink")
            .field("sender", &self.sender.local_addrs())
            .field("receiver", &self.receiver.local_addrs())
            .finish_non_exhaustive()
    }
}

fn config(backend: Backend, cpu: usize) -> Result<RuntimeConfig, String> {
    let listen: SocketAddr = "127.0.0.1:0"
        .parse()
        .map_err(|e| format!("listen address: {e}"))?;
    // The node's runtime settings: one data shard, the WireGuard steering rule, GSO and GRO.
    Ok(RuntimeConfig::new([listen])
        .backend(backend)
        .data_shards(1)
        .cpus(vec![cpu, cpu])
        .steering(RULE))
}

impl CeilingLink {
    /// Starts the receiving runtime on the receiver's CPU and the sending one on the sender's.
    ///
    /// # Errors
    /// A runtime that would not start.
    pub fn start(
        backend: Backend,
        crypto: Crypto,
        cpus: (usize, usize),
    ) -> Result<CeilingLink, String> {
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(QUEUE),
            readiness: Readiness::new().map_err(|e| format!("eventfd: {e}"))?,
            pool: OnceLock::new(),
        });
        let for_receiver = shared.clone();
        let receiver = Runtime::start(config(backend, cpus.1)?, move |shard| {
            if shard.is_control() {
                Handler::Idle
            } else {
                Handler::Receiver {
                    key: AeadKey::new(&KEY),
                    crypto,
                    shared: for_receiver.clone(),
                }
            }
        })
        .map_err(|e| format!("ceiling receiver: {e}"))?;
        let to = receiver.local_addrs()[0];
        let sender = Runtime::start(config(backend, cpus.0)?, move |shard| {
            if shard.is_control() {
                Handler::Idle
            } else {
                Handler::Sender {
                    key: AeadKey::new(&KEY),
                    crypto,
                    counter: 0,
                    to,
                }
            }
        })
        .map_err(|e| format!("ceiling sender: {e}"))?;
        let pool = sender.buffer_pool();
        let parse = |s: &str| s.parse().map_err(|e| format!("{s}: {e}"));
        Ok(CeilingLink {
            sender,
            receiver,
            shared,
            pool,
            src: parse("10.77.0.1:51800")?,
            dst: parse("10.77.0.2:51800")?,
        })
    }

    /// What the sending runtime runs on.
    pub fn report(&self) -> &RuntimeReport {
        self.sender.report()
    }
}

impl Link for CeilingLink {
    fn try_send(&self, app: &[u8]) -> bool {
        let Some(mut buf) = self.pool.take_application() else {
            return false;
        };
        let headers = ip::udp_headers_len(&self.dst);
        let packet = buf.as_mut_slice().get_mut(HEADROOM..);
        let len = packet.and_then(|p| {
            p.get_mut(headers..headers + app.len())?
                .copy_from_slice(app);
            ip::emit_udp(p, self.src, self.dst, app.len())
        });
        let Some(len) = len else {
            self.pool.release(buf);
            return false;
        };
        match self
            .sender
            .send_command(ShardId::data(0), Send { buf, len })
        {
            Ok(()) => true,
            Err(Send { buf, .. }) => {
                self.pool.release(buf);
                false
            }
        }
    }

    fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<usize> {
        let take = |buf: &mut [u8]| {
            let d = self.shared.queue.pop()?;
            let n = d
                .buf
                .as_slice()
                .get(d.range.clone())
                .and_then(ip::parse_udp)
                .and_then(|udp| {
                    buf.get_mut(..udp.payload.len())?
                        .copy_from_slice(udp.payload);
                    Some(udp.payload.len())
                });
            self.shared.release(d.buf);
            Some(n.unwrap_or(0))
        };
        if let Some(n) = take(buf) {
            return Some(n);
        }
        self.shared.readiness.clear();
        if let Some(n) = take(buf) {
            return Some(n);
        }
        self.shared.readiness.wait(Some(wait));
        take(buf)
    }
}

impl Drop for CeilingLink {
    fn drop(&mut self) {
        // Buffers still queued go home before the pools go away.
        while let Some(d) = self.shared.queue.pop() {
            self.shared.release(d.buf);
        }
    }
}
