//! A counting global allocator: each benchmark binary installs [`CountingAllocator`] and reads
//! [`snapshot`] around the code it measures.
//!
//! ```
//! use pnet_mesh_bench::alloc_count::{self, CountingAllocator};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     assert!(alloc_count::is_installed());
//!     let before = alloc_count::snapshot();
//!     let v = std::hint::black_box(vec![0u8; 100]);
//!     assert_eq!((alloc_count::snapshot() - before).bytes, 100);
//!     drop(v);
//! }
//! ```
//!
//! The counters are process-wide (the benchmarks are single-threaded). A binary that forgot to install
//! the allocator would read zeros and report "no allocations"; [`is_installed`] catches that, and the
//! reports print `null` instead of a false zero.
#![allow(unsafe_code)] // A global allocator cannot be written without it; the libraries forbid unsafe.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Forwards every call to the system allocator and counts allocations (and reallocations) and the
/// bytes they asked for. Frees are not counted: the question is whether the hot path allocates at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every method defers to `System` with the caller's arguments unchanged, so `System`'s
// guarantees (alignment, size, validity of the returned block) carry over; the counters are atomics
// and never touch the allocation.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // `System::alloc`'s contract too.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as for `alloc`: the caller's contract is `System::alloc_zeroed`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this `layout` (the caller's
        // contract).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`, and `new_size` is valid for it (the caller's
        // contract for `GlobalAlloc::realloc`, which is `System::realloc`'s).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocation counters at one moment; subtract two to get what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocSnapshot {
    /// Allocations and reallocations so far.
    pub allocations: u64,
    /// Bytes requested by them so far.
    pub bytes: u64,
}

impl core::ops::Sub for AllocSnapshot {
    type Output = AllocSnapshot;

    fn sub(self, earlier: AllocSnapshot) -> AllocSnapshot {
        AllocSnapshot {
            allocations: self.allocations.wrapping_sub(earlier.allocations),
            bytes: self.bytes.wrapping_sub(earlier.bytes),
        }
    }
}

/// The counters now.
pub fn snapshot() -> AllocSnapshot {
    AllocSnapshot {
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        bytes: ALLOCATED_BYTES.load(Ordering::Relaxed),
    }
}

/// Whether this process runs on [`CountingAllocator`]: allocates one box and sees the counter move.
pub fn is_installed() -> bool {
    let before = snapshot();
    let b = std::hint::black_box(Box::new(0u64));
    drop(b);
    snapshot().allocations != before.allocations
}
