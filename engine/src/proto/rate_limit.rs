//! Per-source token bucket for handshake messages under load (kernel `ratelimiter.c`, wireguard-go
//! `ratelimiter/`): 20 per second with a burst of 5, keyed by IPv4 address or IPv6 /64.
//!
//! The table has a fixed capacity; when it is full and no entry has gone idle, new sources are refused
//! (a flood of fresh sources cannot grow memory, WIREGUARD_CHECKLIST case 35).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::constants::{RATE_LIMIT_BURST, RATE_LIMIT_PACKETS_PER_SECOND};

const PACKET_COST_NS: u64 = 1_000_000_000 / RATE_LIMIT_PACKETS_PER_SECOND;
const BUCKET_NS: u64 = PACKET_COST_NS * RATE_LIMIT_BURST;
/// An entry idle this long holds a full bucket and can be forgotten.
const IDLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens_ns: u64,
    last: Instant,
}

/// The per-source limiter.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: HashMap<u128, Bucket>,
    capacity: usize,
    last_gc: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(capacity: usize) -> Self {
        RateLimiter {
            buckets: HashMap::with_capacity(capacity.min(4096)),
            capacity,
            last_gc: None,
        }
    }

    /// Sources tracked now (at most the capacity).
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Takes one token for `ip`; `false` means drop.
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let key = match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            // One bucket per /64, as the kernel: a host owns its whole /64.
            IpAddr::V6(v6) => (u128::from(v6) & !((1u128 << 64) - 1)) | 1,
        };
        if let Some(bucket) = self.buckets.get_mut(&key) {
            let elapsed = now
                .saturating_duration_since(bucket.last)
                .as_nanos()
                .min(u128::from(BUCKET_NS)) as u64;
            bucket.tokens_ns = (bucket.tokens_ns + elapsed).min(BUCKET_NS);
            bucket.last = now;
            if bucket.tokens_ns >= PACKET_COST_NS {
                bucket.tokens_ns -= PACKET_COST_NS;
                return true;
            }
            return false;
        }
        if self.buckets.len() >= self.capacity {
            self.collect_idle(now);
            if self.buckets.len() >= self.capacity {
                return false;
            }
        }
        self.buckets.insert(
            key,
            Bucket {
                tokens_ns: BUCKET_NS - PACKET_COST_NS,
                last: now,
            },
        );
        true
    }

    /// Forgets sources idle for a second; runs at most once a second.
    fn collect_idle(&mut self, now: Instant) {
        if self
            .last_gc
            .is_some_and(|t| now.saturating_duration_since(t) < IDLE)
        {
            return;
        }
        self.last_gc = Some(now);
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn burst_of_five_then_twenty_per_second() {
        let mut rl = RateLimiter::new(16);
        let t0 = Instant::now();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        for i in 0..5 {
            assert!(rl.allow(t0, ip), "burst packet {i}");
        }
        assert!(!rl.allow(t0, ip), "sixth packet at once is over the burst");
        assert!(!rl.allow(t0 + Duration::from_millis(49), ip));
        assert!(
            rl.allow(t0 + Duration::from_millis(50), ip),
            "one token per 50 ms"
        );
        // Another source is independent.
        assert!(rl.allow(t0, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))));
    }

    #[test]
    fn ipv6_sources_share_a_slash_64() {
        let mut rl = RateLimiter::new(16);
        let t0 = Instant::now();
        for i in 0..5u16 {
            let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            assert!(rl.allow(t0, ip));
        }
        assert!(!rl.allow(t0, "2001:db8::ffff".parse().unwrap()));
        assert!(rl.allow(t0, "2001:db8:0:1::1".parse().unwrap()));
    }

    #[test]
    fn table_is_bounded() {
        let mut rl = RateLimiter::new(4);
        let t0 = Instant::now();
        for i in 0..4u8 {
            assert!(rl.allow(t0, IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))));
        }
        assert!(
            !rl.allow(t0, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))),
            "full table refuses new sources"
        );
        assert_eq!(rl.len(), 4);
        let later = t0 + Duration::from_secs(2);
        assert!(
            rl.allow(later, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))),
            "idle entries are collected"
        );
        assert_eq!(rl.len(), 1);
    }
}
