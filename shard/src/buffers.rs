//! Fixed buffer pools: allocated once at start, moved (never copied or reallocated) between the kernel,
//! the handler and other shards, and returned to their home shard when done.
//!
//! Two sizes: *large* buffers hold a whole GSO/GRO super-datagram (64 KiB with offloads on) and serve
//! the receive ring and coalesced sends; *small* buffers hold one datagram and serve everything else
//! (application sends, packets handed to the application, handshakes, relayed frames). Each size's
//! buffers are carved from one anonymous mapping, so memory is committed page by page as buffers are
//! first written: a pool sized for bursts costs resident memory only for what traffic touched.

use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::config::{HEADROOM, TAILROOM};

/// One anonymous, zero-filled, lazily committed mapping that backs the buffers of one list.
#[derive(Debug)]
struct Arena {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the arena is only a mapping's address and length; the bytes are reached through the
// `Buf`s carved from it, each of which owns a disjoint region (see `Buf`).
unsafe impl Send for Arena {}
// SAFETY: as for `Send`: `&Arena` gives no access to the bytes.
unsafe impl Sync for Arena {}

impl Arena {
    /// Maps `len` bytes (at least one page).
    fn map(len: usize) -> Option<Arena> {
        let len = len.max(1);
        // SAFETY: an anonymous private mapping at an address of the kernel's choice: it aliases no
        // memory of ours; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Arena {
            base: NonNull::new(ptr.cast())?,
            len,
        })
    }
}

impl Arena {
    /// Bytes of the mapping that are resident (committed by a first write), by `mincore`.
    fn resident_bytes(&self) -> usize {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        let mut pages = vec![0u8; self.len.div_ceil(page)];
        // SAFETY: `base..base + len` is exactly the mapping `map` made (page aligned, since mmap
        // returned it), and `pages` has one byte for each of its pages, as mincore writes.
        let rc = unsafe { libc::mincore(self.base.as_ptr().cast(), self.len, pages.as_mut_ptr()) };
        if rc != 0 {
            return 0;
        }
        pages.iter().filter(|&&p| p & 1 != 0).count() * page
    }
}

/// How much memory the buffer pools hold: the address space reserved at start, and the part of it
/// traffic has touched (committed page by page on first write, never given back while the pools
/// live). The resident part is what grows with traffic; it can never exceed the reserved part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolMemory {
    /// Bytes mapped for every buffer of every pool.
    pub reserved_bytes: usize,
    /// Bytes of those mappings that are resident.
    pub resident_bytes: usize,
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; every `Buf` carved from it holds an `Arc` of
        // this arena, so none is left when this runs.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// One datagram buffer: `HEADROOM` bytes, a data area, `TAILROOM` bytes. Its address never changes, so
/// it can be lent to the kernel until a completion.
#[derive(Debug)]
pub struct Buf {
    ptr: NonNull<u8>,
    len: usize,
    home: u16,
    /// Keeps the mapping alive as long as the buffer.
    _arena: Arc<Arena>,
}

// SAFETY: a `Buf` owns its region of the arena exclusively (regions are disjoint, each carved once
// and never duplicated), like a `Box<[u8]>`; moving it to another thread moves that ownership.
unsafe impl Send for Buf {}
// SAFETY: `&Buf` only gives `&[u8]` of its own region, like `&Box<[u8]>`.
unsafe impl Sync for Buf {}

impl Buf {
    /// The whole buffer, headroom and tailroom included.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies inside the arena this buffer keeps alive, is initialised (the
        // mapping is zero-filled) and belongs to this buffer alone; the borrow ties it to `&self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole buffer, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Bytes available for a received datagram, after the headroom.
    pub fn data_capacity(&self) -> usize {
        self.len - HEADROOM - TAILROOM
    }

    pub(crate) fn home(&self) -> usize {
        usize::from(self.home)
    }
}

/// The free lists of every shard, so a buffer can always go home: large buffers of each shard
/// (lists `0..shards`), the application's small buffers (list `shards`), and small buffers of each
/// shard (lists `shards + 1 ..`).
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    free: Arc<[ArrayQueue<Buf>]>,
    arenas: Arc<[Arc<Arena>]>,
    shards: usize,
    small_len: usize,
}

impl Pools {
    /// For each of `shards` shards `large` buffers of `large_capacity` data bytes and `small` of
    /// `small_capacity`, and `application` small buffers for threads outside the shards (each with
    /// head- and tailroom).
    ///
    /// # Panics
    /// When the kernel refuses the (lazily committed) mappings at start.
    pub(crate) fn new(
        shards: usize,
        large: usize,
        small: usize,
        application: usize,
        large_capacity: usize,
        small_capacity: usize,
    ) -> Self {
        let small_capacity = small_capacity.min(large_capacity);
        let mut arenas = Vec::with_capacity(2 * shards + 1);
        let mut list = |home: usize, n: usize, capacity: usize| {
            let len = HEADROOM + capacity + TAILROOM;
            let q = ArrayQueue::new(n.max(1));
            let arena = Arc::new(
                Arena::map(len * n).expect("map the buffer pool (address space for the buffers)"),
            );
            arenas.push(arena.clone());
            for i in 0..n {
                // In bounds: `i * len + len <= len * n`, the arena's length.
                let ptr = arena.base.as_ptr().wrapping_add(i * len);
                let Some(ptr) = NonNull::new(ptr) else {
                    continue;
                };
                let buf = Buf {
                    ptr,
                    len,
                    home: home as u16,
                    _arena: arena.clone(),
                };
                // The queue holds exactly `n`, so this never fails.
                let _ = q.push(buf);
            }
            q
        };
        let mut free: Vec<ArrayQueue<Buf>> = (0..shards)
            .map(|home| list(home, large, large_capacity))
            .collect();
        free.push(list(shards, application, small_capacity));
        free.extend((0..shards).map(|s| list(shards + 1 + s, small, small_capacity)));
        Pools {
            free: free.into(),
            arenas: arenas.into(),
            shards,
            small_len: HEADROOM + small_capacity + TAILROOM,
        }
    }

    /// Reserved and resident bytes of every pool.
    pub(crate) fn memory(&self) -> PoolMemory {
        self.arenas
            .iter()
            .fold(PoolMemory::default(), |m, a| PoolMemory {
                reserved_bytes: m.reserved_bytes + a.len,
                resident_bytes: m.resident_bytes + a.resident_bytes(),
            })
    }

    /// A free buffer of the application list, if any is left.
    pub(crate) fn take_application(&self) -> Option<Buf> {
        self.free.get(self.shards)?.pop()
    }

    /// A free large buffer of `shard`, if any is left.
    pub(crate) fn take(&self, shard: usize) -> Option<Buf> {
        self.free.get(shard)?.pop()
    }

    /// A free small buffer of `shard`, or a large one when no small one is left.
    pub(crate) fn take_small(&self, shard: usize) -> Option<Buf> {
        self.free
            .get(self.shards + 1 + shard)
            .and_then(ArrayQueue::pop)
            .or_else(|| self.take(shard))
    }

    /// The whole length of a small buffer (a buffer longer than this is a large one).
    pub(crate) fn small_len(&self) -> usize {
        self.small_len
    }

    /// Free large buffers of `shard` now (tests check that every buffer comes home).
    #[cfg(test)]
    pub(crate) fn available(&self, shard: usize) -> usize {
        self.free.get(shard).map_or(0, ArrayQueue::len)
    }

    /// Returns `buf` to its home list.
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
    /// A free large buffer of `shard`'s pool (room for a whole super-datagram), if any is left.
    pub fn take(&self, shard: crate::ShardId) -> Option<Buf> {
        self.pools.take(shard.index())
    }

    /// A free small buffer of `shard`'s pool (room for one datagram of the configured maximum), or a
    /// large one when none is left.
    pub fn take_small(&self, shard: crate::ShardId) -> Option<Buf> {
        self.pools.take_small(shard.index())
    }

    /// A free buffer of the application pool (one datagram; for a thread outside the shards that
    /// fills it and hands it to a shard with a command), if any is left. Any shard may send it; it
    /// comes home afterwards.
    pub fn take_application(&self) -> Option<Buf> {
        self.pools.take_application()
    }

    /// The whole length (headroom and tailroom included) of a small buffer; a longer buffer is a
    /// large one (a receive buffer with GRO, or a coalesced send).
    pub fn small_len(&self) -> usize {
        self.pools.small_len()
    }

    /// Returns `buf` to its home pool.
    pub fn release(&self, buf: Buf) {
        self.pools.release(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::Pools;
    use crate::config::{HEADROOM, TAILROOM};

    #[test]
    fn pool_memory_is_reserved_at_start_and_resident_only_where_written() {
        let pools = Pools::new(2, 4, 8, 3, 65_536, 1500);
        let m = pools.memory();
        let (large, small) = (HEADROOM + 65_536 + TAILROOM, HEADROOM + 1500 + TAILROOM);
        assert_eq!(m.reserved_bytes, 2 * 4 * large + 3 * small + 2 * 8 * small);
        assert_eq!(m.resident_bytes, 0, "nothing written yet");
        let mut buf = pools.take(0).expect("a large buffer");
        buf.as_mut_slice().fill(1);
        let after = pools.memory();
        assert!(
            after.resident_bytes >= large && after.resident_bytes <= large + 2 * 4096,
            "one buffer's pages: {after:?}"
        );
        pools.release(buf);
        assert_eq!(
            pools.memory().resident_bytes,
            after.resident_bytes,
            "a returned buffer stays committed"
        );
    }
}
