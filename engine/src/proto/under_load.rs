//! The "under load" decision: how many handshake messages arrived lately.
//!
//! The kernel and wireguard-go look at the length of their handshake queue (≥ 512 and ≥ 128 queued);
//! our control shard handles handshakes as they arrive and has no such queue, so it counts them per
//! second instead, as boringtun does (> 100/s per device). Like the others, it stays under load for
//! one second after the rate falls.

use std::time::{Duration, Instant};

/// Handshake messages per second from which the node is under load (the order of boringtun's 100/s
/// and wireguard-go's 128 queued; each costs a few hundred microseconds of one core).
pub const UNDER_LOAD_HANDSHAKES_PER_SECOND: u32 = 128;

const WINDOW: Duration = Duration::from_secs(1);

/// Counts handshake messages in one-second windows.
#[derive(Debug, Clone)]
pub struct LoadMonitor {
    threshold: u32,
    window_start: Option<Instant>,
    count: u32,
    under_load_until: Option<Instant>,
}

impl LoadMonitor {
    /// A monitor that reports load from `threshold` handshake messages per second.
    pub fn new(threshold: u32) -> Self {
        LoadMonitor {
            threshold,
            window_start: None,
            count: 0,
            under_load_until: None,
        }
    }

    /// Counts one handshake message at `now`; returns whether the node is under load.
    pub fn handshake_received(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(1);
        if self.count >= self.threshold {
            self.under_load_until = Some(now + WINDOW);
        }
        self.is_under_load(now)
    }

    /// Whether the node is under load at `now`.
    pub fn is_under_load(&self, now: Instant) -> bool {
        self.under_load_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_starts_at_the_threshold_and_ends_a_second_after() {
        let t0 = Instant::now();
        let mut m = LoadMonitor::new(3);
        assert!(!m.handshake_received(t0));
        assert!(!m.handshake_received(t0 + Duration::from_millis(10)));
        assert!(m.handshake_received(t0 + Duration::from_millis(20)));
        assert!(m.is_under_load(t0 + Duration::from_millis(1010)));
        assert!(!m.is_under_load(t0 + Duration::from_millis(1030)));
        // A new window starts from zero.
        assert!(!m.handshake_received(t0 + Duration::from_millis(1100)));
    }
}
