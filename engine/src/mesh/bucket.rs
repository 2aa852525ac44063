//! A token bucket: `rate` a second, bursts of twice that. Relays hold each sending peer to one for
//! frames, discovery each member for records.

use std::time::Instant;

/// Tokens and when they were last counted.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` a second.
    pub fn new(now: Instant, rate: u32) -> Self {
        TokenBucket {
            tokens: 2.0 * f64::from(rate),
            at: now,
        }
    }

    /// Takes one token; `false` when the holder is over its rate.
    pub fn take(&mut self, now: Instant, rate: u32) -> bool {
        let rate = f64::from(rate);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(2.0 * rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(start, 10);
        assert_eq!((0..30).filter(|_| b.take(start, 10)).count(), 20);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..30).filter(|_| b.take(later, 10)).count(), 5);
    }
}
