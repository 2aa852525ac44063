//! What a data path publishes about each peer for the control plane: the activity instants its timers
//! derive deadlines from, and the traffic counters `wg show` prints.
//!
//! Both sides hold the same `Arc<Published>`. The data path writes with relaxed atomics on every packet
//! (no lock, no message); the control plane reads when it computes deadlines or stats. Instants are
//! stored as nanoseconds after an epoch plus one, so zero means "never".

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::timers::Activity;

/// One peer's published activity and counters.
#[derive(Debug)]
pub(crate) struct Published {
    epoch: Instant,
    /// First data sent since the peer last said anything authenticated.
    unanswered_sent: AtomicU64,
    /// First data received since we last sent anything authenticated.
    unanswered_received: AtomicU64,
    /// Latest authenticated packet either way.
    last_traversal: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) rx_packets: AtomicU64,
    pub(crate) tx_packets: AtomicU64,
    pub(crate) rx_keepalives: AtomicU64,
    pub(crate) staged_dropped: AtomicU64,
}

impl Published {
    pub(crate) fn new(epoch: Instant) -> Self {
        Published {
            epoch,
            unanswered_sent: AtomicU64::new(0),
            unanswered_received: AtomicU64::new(0),
            last_traversal: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            rx_keepalives: AtomicU64::new(0),
            staged_dropped: AtomicU64::new(0),
        }
    }

    fn encode(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    fn decode(&self, v: u64) -> Option<Instant> {
        (v != 0).then(|| self.epoch + std::time::Duration::from_nanos(v - 1))
    }

    /// We sent a transport message with data.
    pub(crate) fn data_sent(&self, now: Instant) {
        if self.unanswered_sent.load(Ordering::Relaxed) == 0 {
            self.unanswered_sent
                .store(self.encode(now), Ordering::Relaxed);
        }
        self.authenticated_sent(now);
    }

    /// We sent a keepalive or a handshake message.
    pub(crate) fn authenticated_sent(&self, now: Instant) {
        if self.unanswered_received.load(Ordering::Relaxed) != 0 {
            self.unanswered_received.store(0, Ordering::Relaxed);
        }
        self.last_traversal
            .fetch_max(self.encode(now), Ordering::Relaxed);
    }

    /// We received an authenticated transport message with data.
    pub(crate) fn data_received(&self, now: Instant) {
        if self.unanswered_received.load(Ordering::Relaxed) == 0 {
            self.unanswered_received
                .store(self.encode(now), Ordering::Relaxed);
        }
        self.authenticated_received(now);
    }

    /// We received an authenticated keepalive or handshake message.
    pub(crate) fn authenticated_received(&self, now: Instant) {
        if self.unanswered_sent.load(Ordering::Relaxed) != 0 {
            self.unanswered_sent.store(0, Ordering::Relaxed);
        }
        self.last_traversal
            .fetch_max(self.encode(now), Ordering::Relaxed);
    }

    /// The instants as they stand, for the timers.
    pub(crate) fn activity(&self) -> Activity {
        Activity {
            unanswered_sent: self.decode(self.unanswered_sent.load(Ordering::Relaxed)),
            unanswered_received: self.decode(self.unanswered_received.load(Ordering::Relaxed)),
            last_traversal: self.decode(self.last_traversal.load(Ordering::Relaxed)),
        }
    }

    /// Accounts for a transport message of `len` bytes just sealed.
    pub(crate) fn sent(&self, now: Instant, len: usize, data: bool) {
        add(&self.tx_bytes, len as u64);
        add(&self.tx_packets, 1);
        if data {
            self.data_sent(now);
        } else {
            self.authenticated_sent(now);
        }
    }
}

/// Adds to a counter only one thread writes (a load and a store, no locked instruction).
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Reads a counter.
pub(crate) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
