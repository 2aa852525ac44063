//! Fixed buffer pools: allocated once at start, moved (never copied or reallocated) between the kernel,
//! the handler and other shards, and returned to their home shard when done.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::config::{HEADROOM, TAILROOM};

/// One datagram buffer: `HEADROOM` bytes, a data area, `TAILROOM` bytes. Its address never changes, so
/// it can be lent to the kernel until a completion.
#[derive(Debug)]
pub struct Buf {
    data: Box<[u8]>,
    home: u16,
}

impl Buf {
    /// The whole buffer, headroom and tailroom included.
    pub fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// The whole buffer, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Bytes available for a received datagram, after the headroom.
    pub fn data_capacity(&self) -> usize {
        self.data.len() - HEADROOM - TAILROOM
    }

    pub(crate) fn home(&self) -> usize {
        usize::from(self.home)
    }
}

/// The free lists of every shard, so a buffer can always go home.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    free: Arc<[ArrayQueue<Buf>]>,
}

impl Pools {
    /// `count` buffers of `data_capacity` bytes (plus head- and tailroom) for each of `shards` shards,
    /// and `application` more in a list of their own (index `shards`) for threads outside the shards.
    pub(crate) fn new(
        shards: usize,
        count: usize,
        application: usize,
        data_capacity: usize,
    ) -> Self {
        let free: Vec<ArrayQueue<Buf>> = (0..=shards)
            .map(|home| {
                let n = if home == shards { application } else { count };
                let q = ArrayQueue::new(n.max(1));
                for _ in 0..n {
                    let buf = Buf {
                        data: vec![0u8; HEADROOM + data_capacity + TAILROOM].into_boxed_slice(),
                        home: home as u16,
                    };
                    // The queue holds exactly `n`, so this never fails.
                    let _ = q.push(buf);
                }
                q
            })
            .collect();
        Pools { free: free.into() }
    }

    /// A free buffer of the application list, if any is left.
    pub(crate) fn take_application(&self) -> Option<Buf> {
        self.free.last()?.pop()
    }

    /// A free buffer of `shard`, if any is left.
    pub(crate) fn take(&self, shard: usize) -> Option<Buf> {
        self.free.get(shard)?.pop()
    }

    /// Free buffers of `shard` now (tests check that every buffer comes home).
    #[cfg(test)]
    pub(crate) fn available(&self, shard: usize) -> usize {
        self.free.get(shard).map_or(0, ArrayQueue::len)
    }

    /// Returns `buf` to its home shard's free list.
    pub(crate) fn release(&self, buf: Buf) {
        if let Some(q) = self.free.get(buf.home()) {
            // A home list has room for all of its buffers, so this cannot fail.
            let _ = q.push(buf);
        }
    }
}

/// A handle on every shard's buffer pool, for code outside the shards (an application thread that
/// fills a buffer and hands it to a shard with a command, or takes delivered ones back).
///
/// Buffers taken must come back: through [`SendBatch::push_buf`](crate::SendBatch::push_buf), or
/// [`release`](Self::release). A buffer dropped instead is freed, and its pool is one smaller.
#[derive(Debug, Clone)]
pub struct BufferPool {
    pub(crate) pools: Pools,
}

impl BufferPool {
    /// A free buffer of `shard`'s pool, if any is left.
    pub fn take(&self, shard: crate::ShardId) -> Option<Buf> {
        self.pools.take(shard.index())
    }

    /// A free buffer of the application pool (for a thread outside the shards that fills it and hands
    /// it to a shard with a command), if any is left. Any shard may send it; it comes home afterwards.
    pub fn take_application(&self) -> Option<Buf> {
        self.pools.take_application()
    }

    /// Returns `buf` to its home pool.
    pub fn release(&self, buf: Buf) {
        self.pools.release(buf);
    }
}
