//! What the caller plugs into each shard: the [`DatagramHandler`] trait and the batches it works on.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use crate::buffers::{Buf, Pools};
use crate::channel::Outbox;
use crate::config::HEADROOM;
use crate::stats::ShardStats;

/// Which shard: 0 is the control shard, `k + 1` is data shard `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    /// The control shard.
    pub const CONTROL: ShardId = ShardId(0);

    /// Data shard `k`.
    pub fn data(k: usize) -> ShardId {
        ShardId(k as u16 + 1)
    }

    /// Whether this is the control shard.
    pub fn is_control(self) -> bool {
        self.0 == 0
    }

    /// The data-shard number, if this is a data shard.
    pub fn data_index(self) -> Option<usize> {
        usize::from(self.0).checked_sub(1)
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.data_index() {
            None => f.write_str("control"),
            Some(k) => write!(f, "data{k}"),
        }
    }
}

/// Where a datagram came from and how it is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// The sender.
    pub from: SocketAddr,
    /// Our socket's address.
    pub local: SocketAddr,
    /// Bytes received (a GRO super-datagram: all segments).
    pub len: usize,
    /// Segment size: `len` for a single datagram, less for a GRO super-datagram.
    pub stride: usize,
}

impl RecvMeta {
    /// Number of datagrams in this entry.
    pub fn segments(&self) -> usize {
        if self.stride == 0 {
            0
        } else {
            self.len.div_ceil(self.stride)
        }
    }
}

/// Datagrams received in one wake-up, each in its own buffer at [`HEADROOM`].
#[derive(Debug)]
pub struct RecvBatch {
    entries: Vec<Option<(Buf, RecvMeta)>>,
    capacity: usize,
}

impl RecvBatch {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        RecvBatch {
            entries: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Entries in the batch (taken ones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Metadata of entry `i`, unless it was taken.
    pub fn meta(&self, i: usize) -> Option<&RecvMeta> {
        self.entries.get(i)?.as_ref().map(|(_, m)| m)
    }

    /// The bytes of entry `i` (all segments of a GRO super-datagram).
    pub fn data(&self, i: usize) -> Option<&[u8]> {
        let (buf, meta) = self.entries.get(i)?.as_ref()?;
        buf.as_slice().get(HEADROOM..HEADROOM + meta.len)
    }

    /// The bytes of entry `i`, writable (to decrypt in place).
    pub fn data_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let (buf, meta) = self.entries.get_mut(i)?.as_mut()?;
        let len = meta.len;
        buf.as_mut_slice().get_mut(HEADROOM..HEADROOM + len)
    }

    /// The segments of entry `i`: one for a single datagram, several for a GRO super-datagram.
    pub fn segments(&self, i: usize) -> impl Iterator<Item = &[u8]> {
        let stride = self.meta(i).map_or(1, |m| m.stride.max(1));
        self.data(i).unwrap_or_default().chunks(stride)
    }

    /// The whole buffer of entry `i` and the range its data occupies, to build a reply in place with
    /// the headroom and tailroom around it.
    pub fn buffer_mut(&mut self, i: usize) -> Option<(&mut [u8], Range<usize>)> {
        let (buf, meta) = self.entries.get_mut(i)?.as_mut()?;
        let range = HEADROOM..HEADROOM + meta.len;
        Some((buf.as_mut_slice(), range))
    }

    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    pub(crate) fn room(&self) -> usize {
        self.capacity - self.entries.len()
    }

    pub(crate) fn push(&mut self, buf: Buf, meta: RecvMeta) {
        self.entries.push(Some((buf, meta)));
    }

    /// Takes entry `i` out of the batch (to keep its buffer past this call; give it back through
    /// [`BufferPool::release`](crate::BufferPool::release) or [`SendBatch::push_buf`]).
    pub fn take(&mut self, i: usize) -> Option<(Buf, RecvMeta)> {
        self.entries.get_mut(i)?.take()
    }

    /// Gives every remaining buffer back to its pool.
    pub(crate) fn release_all(&mut self, pools: &Pools) {
        for (buf, _) in self.entries.drain(..).flatten() {
            pools.release(buf);
        }
    }
}

/// One datagram (or GSO super-datagram) to send.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) buf: Buf,
    pub(crate) range: Range<usize>,
    pub(crate) to: SocketAddr,
    /// `Some(size)` once the backend has coalesced equal-size datagrams into one GSO send.
    pub(crate) segment_size: Option<usize>,
}

/// Datagrams the handler wants sent; the runtime sends them after the handler returns.
#[derive(Debug)]
pub struct SendBatch {
    pub(crate) entries: Vec<Outgoing>,
    capacity: usize,
    pools: Pools,
    shard: usize,
    full: u64,
}

/// The send batch is full or the shard is out of buffers; the datagram was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("send batch full")]
pub struct SendBatchFull;

impl SendBatch {
    pub(crate) fn new(capacity: usize, pools: Pools, shard: usize) -> Self {
        SendBatch {
            entries: Vec::with_capacity(capacity),
            capacity,
            pools,
            shard,
            full: 0,
        }
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room left in this batch.
    pub fn remaining(&self) -> usize {
        self.capacity - self.entries.len()
    }

    /// Queues a copy of `data` for `to`.
    ///
    /// # Errors
    /// [`SendBatchFull`] when the batch or the buffer pool is exhausted (counted in the shard stats).
    pub fn push(&mut self, to: SocketAddr, data: &[u8]) -> Result<(), SendBatchFull> {
        self.push_with(|buf| {
            let dst = buf.get_mut(HEADROOM..HEADROOM + data.len())?;
            dst.copy_from_slice(data);
            Some((to, HEADROOM..HEADROOM + data.len()))
        })
    }

    /// Lends a whole free buffer to `fill`, which writes a datagram anywhere in it (the headroom and
    /// tailroom allow sealing in place) and returns its destination and range, or `None` to send nothing.
    ///
    /// # Errors
    /// [`SendBatchFull`] when the batch or the buffer pool is exhausted.
    pub fn push_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Option<(SocketAddr, Range<usize>)>,
    ) -> Result<(), SendBatchFull> {
        if self.entries.len() >= self.capacity {
            self.full += 1;
            return Err(SendBatchFull);
        }
        let Some(mut buf) = self.pools.take(self.shard) else {
            self.full += 1;
            return Err(SendBatchFull);
        };
        match fill(buf.as_mut_slice()) {
            Some((to, range)) if range.end <= buf.as_slice().len() && range.start <= range.end => {
                self.entries.push(Outgoing {
                    buf,
                    range,
                    to,
                    segment_size: None,
                });
            }
            _ => self.pools.release(buf),
        }
        Ok(())
    }

    /// Sends entry `i` of `rx` back out without copying: `range` is relative to the whole buffer (see
    /// [`RecvBatch::buffer_mut`]). The entry is taken from `rx`.
    ///
    /// # Errors
    /// [`SendBatchFull`] when the batch is full; the entry then stays in `rx`.
    pub fn push_rx(
        &mut self,
        rx: &mut RecvBatch,
        i: usize,
        to: SocketAddr,
        range: Range<usize>,
    ) -> Result<(), SendBatchFull> {
        if self.entries.len() >= self.capacity {
            self.full += 1;
            return Err(SendBatchFull);
        }
        let Some((buf, _)) = rx.take(i) else {
            return Ok(());
        };
        if range.end > buf.as_slice().len() || range.start > range.end {
            self.pools.release(buf);
            return Ok(());
        }
        self.entries.push(Outgoing {
            buf,
            range,
            to,
            segment_size: None,
        });
        Ok(())
    }

    /// Queues an owned buffer (taken from a [`BufferPool`](crate::BufferPool) or a [`RecvBatch`]) whose
    /// `range` (relative to the whole buffer) is the datagram for `to`.
    ///
    /// # Errors
    /// Gives the buffer back with [`SendBatchFull`] when the batch is full.
    pub fn push_buf(
        &mut self,
        buf: Buf,
        range: Range<usize>,
        to: SocketAddr,
    ) -> Result<(), (SendBatchFull, Buf)> {
        if self.entries.len() >= self.capacity {
            self.full += 1;
            return Err((SendBatchFull, buf));
        }
        if range.end > buf.as_slice().len() || range.start > range.end {
            self.pools.release(buf);
            return Ok(());
        }
        self.entries.push(Outgoing {
            buf,
            range,
            to,
            segment_size: None,
        });
        Ok(())
    }

    pub(crate) fn take_full_count(&mut self) -> u64 {
        std::mem::take(&mut self.full)
    }

    /// Gives every queued buffer back to its pool.
    pub(crate) fn release_all(&mut self) {
        for out in self.entries.drain(..) {
            self.pools.release(out.buf);
        }
    }
}

/// What a handler can do besides sending: learn where it runs and message other shards.
#[derive(Debug)]
pub struct ShardContext<'a, C> {
    pub(crate) shard: ShardId,
    pub(crate) data_shards: usize,
    pub(crate) outbox: &'a Outbox<C>,
    pub(crate) stats: &'a ShardStats,
    pub(crate) pools: &'a crate::buffers::Pools,
}

impl<C: Send + 'static> ShardContext<'_, C> {
    /// This shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Number of data shards.
    pub fn data_shards(&self) -> usize {
        self.data_shards
    }

    /// Sends `command` to `shard`'s [`DatagramHandler::on_command`].
    ///
    /// # Errors
    /// Gives the command back when that shard's channel is full (counted, never grown).
    pub fn send_command(&self, shard: ShardId, command: C) -> Result<(), C> {
        self.outbox.command(shard, command, self.stats)
    }

    /// Copies one datagram (a segment of a GRO batch, say) into a free buffer and moves it to `shard`,
    /// which receives it as if its socket had (counted as forwarded; dropped and counted when the pool
    /// or the channel is full).
    pub fn forward_copy(&self, shard: ShardId, from: SocketAddr, local: SocketAddr, data: &[u8]) {
        let Some(mut buf) = self.pools.take(self.shard.index()) else {
            ShardStats::add(&self.stats.no_buffer, 1);
            return;
        };
        let Some(dst) = buf.as_mut_slice().get_mut(HEADROOM..HEADROOM + data.len()) else {
            self.pools.release(buf);
            ShardStats::add(&self.stats.forward_dropped, 1);
            return;
        };
        dst.copy_from_slice(data);
        let meta = RecvMeta {
            from,
            local,
            len: data.len(),
            stride: data.len(),
        };
        self.outbox.forward(shard, buf, meta, self.stats);
    }

    /// The buffer pools of every shard.
    pub fn buffer_pool(&self) -> crate::BufferPool {
        crate::BufferPool {
            pools: self.pools.clone(),
        }
    }
}

/// The per-shard protocol logic the runtime drives. One instance per shard, on that shard's thread.
pub trait DatagramHandler: Send + 'static {
    /// Messages between shards (and from the runtime's owner).
    type Command: Send + 'static;

    /// Datagrams arrived (already steered to this shard). Queue replies in `tx`.
    fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, Self::Command>,
        now: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    );

    /// A command from another shard or the owner arrived.
    fn on_command(
        &mut self,
        ctx: &mut ShardContext<'_, Self::Command>,
        now: Instant,
        command: Self::Command,
        tx: &mut SendBatch,
    );

    /// When [`on_timeout`](Self::on_timeout) should run next.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed.
    fn on_timeout(
        &mut self,
        ctx: &mut ShardContext<'_, Self::Command>,
        now: Instant,
        tx: &mut SendBatch,
    ) {
        let _ = (ctx, now, tx);
    }
}
