//! Counters each shard keeps, readable from any thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live counters of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub(crate) rx_datagrams: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) rx_batches: AtomicU64,
    pub(crate) rx_truncated: AtomicU64,
    pub(crate) tx_datagrams: AtomicU64,
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) tx_gso_sends: AtomicU64,
    pub(crate) tx_errors: AtomicU64,
    pub(crate) send_batch_full: AtomicU64,
    pub(crate) forwarded_out: AtomicU64,
    pub(crate) forwarded_in: AtomicU64,
    pub(crate) forward_dropped: AtomicU64,
    pub(crate) commands_dropped: AtomicU64,
    pub(crate) no_buffer: AtomicU64,
    pub(crate) handled_datagrams: AtomicU64,
    pub(crate) gso: AtomicBool,
    pub(crate) gro: AtomicBool,
}

impl ShardStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> ShardStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ShardStatsSnapshot {
            rx_datagrams: g(&self.rx_datagrams),
            rx_bytes: g(&self.rx_bytes),
            rx_batches: g(&self.rx_batches),
            rx_truncated: g(&self.rx_truncated),
            tx_datagrams: g(&self.tx_datagrams),
            tx_bytes: g(&self.tx_bytes),
            tx_gso_sends: g(&self.tx_gso_sends),
            tx_errors: g(&self.tx_errors),
            send_batch_full: g(&self.send_batch_full),
            forwarded_out: g(&self.forwarded_out),
            forwarded_in: g(&self.forwarded_in),
            forward_dropped: g(&self.forward_dropped),
            commands_dropped: g(&self.commands_dropped),
            no_buffer: g(&self.no_buffer),
            handled_datagrams: g(&self.handled_datagrams),
            gso: self.gso.load(Ordering::Relaxed),
            gro: self.gro.load(Ordering::Relaxed),
        }
    }
}

/// A copy of one shard's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStatsSnapshot {
    /// Datagrams received from this shard's sockets (GRO segments counted one by one).
    pub rx_datagrams: u64,
    /// Bytes received from this shard's sockets.
    pub rx_bytes: u64,
    /// Receive calls that returned data.
    pub rx_batches: u64,
    /// Datagrams dropped because they did not fit a buffer (MSG_TRUNC).
    pub rx_truncated: u64,
    /// Datagrams sent (GSO segments counted one by one).
    pub tx_datagrams: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Sends that carried several segments with UDP GSO.
    pub tx_gso_sends: u64,
    /// Datagrams the kernel refused to send.
    pub tx_errors: u64,
    /// Datagrams the handler could not queue (send batch or buffers exhausted).
    pub send_batch_full: u64,
    /// Datagrams this shard received but passed to their owning shard.
    pub forwarded_out: u64,
    /// Datagrams other shards passed to this one.
    pub forwarded_in: u64,
    /// Datagrams dropped because the owner's channel was full.
    pub forward_dropped: u64,
    /// Commands dropped because the target's channel was full.
    pub commands_dropped: u64,
    /// Receives skipped because the pool had no free buffer.
    pub no_buffer: u64,
    /// Datagrams (entries) handed to this shard's handler.
    pub handled_datagrams: u64,
    /// Whether UDP GSO is on for this shard's sockets.
    pub gso: bool,
    /// Whether UDP GRO is on for this shard's sockets.
    pub gro: bool,
}
