//! The sliding replay window of a receiving keypair (RFC 6479, 8192 bits as the kernel and wireguard-go).
//!
//! Split into [`ReplayWindow::check`], run before the AEAD, and [`ReplayWindow::commit`], run only after the
//! tag verified: a forged packet with any counter leaves the window exactly as it was (WIREGUARD_CHECKLIST
//! cases 25 and 29).

use thiserror::Error;

use super::constants::REJECT_AFTER_MESSAGES;

const BLOCK_BITS: u64 = 64;
const RING_BLOCKS: usize = 128;
/// Total bits in the ring.
pub const WINDOW_BITS: u64 = BLOCK_BITS * RING_BLOCKS as u64;
/// How far behind the highest counter a packet may arrive: one block is kept spare so the ring can
/// advance a block at a time (8128).
pub const WINDOW_SIZE: u64 = WINDOW_BITS - BLOCK_BITS;

/// Why [`ReplayWindow::get_bitmap`] refused to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BitmapError {
    /// The start counter is below the window's low edge: those counters are no longer tracked.
    #[error("start counter {start} is before the window's low edge {low_edge}")]
    StartBeforeWindow {
        /// The requested start.
        start: u64,
        /// The oldest counter the window still tracks.
        low_edge: u64,
    },
    /// The start counter is past the highest counter seen.
    #[error("start counter {start} is after the latest counter {latest}")]
    StartAfterLatest {
        /// The requested start.
        start: u64,
        /// The highest counter received.
        latest: u64,
    },
    /// The caller's buffer cannot hold the bitmap.
    #[error("bitmap needs {needed} bytes, buffer has {len}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes given.
        len: usize,
    },
}

/// The window of counters received on one keypair.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest counter committed (meaningful once `any` is set).
    latest: u64,
    any: bool,
    ring: [u64; RING_BLOCKS],
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("latest", &self.latest)
            .field("any", &self.any)
            .finish()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window.
    pub const fn new() -> Self {
        ReplayWindow {
            latest: 0,
            any: false,
            ring: [0; RING_BLOCKS],
        }
    }

    /// The highest counter accepted so far, if any.
    pub fn latest(&self) -> Option<u64> {
        self.any.then_some(self.latest)
    }

    /// Whether `counter` would be accepted: below the message limit, not older than the window and not
    /// seen. Changes nothing.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if !self.any || counter > self.latest {
            return true;
        }
        if self.latest - counter > WINDOW_SIZE {
            return false;
        }
        let (block, bit) = Self::position(counter);
        self.ring.get(block).is_some_and(|b| b & bit == 0)
    }

    /// Records `counter` as received. Call only after [`check`](Self::check) passed and the packet
    /// authenticated. Returns whether it was new (a commit of a counter [`check`](Self::check) refuses
    /// returns `false` and changes nothing).
    pub fn commit(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if !self.any || counter > self.latest {
            let current = if self.any {
                self.latest / BLOCK_BITS
            } else {
                0
            };
            let target = counter / BLOCK_BITS;
            // Clear the blocks the window slides over; at most the whole ring.
            let advance = if self.any {
                (target - current).min(RING_BLOCKS as u64)
            } else {
                RING_BLOCKS as u64
            };
            for i in 1..=advance {
                let idx = ((current + i) % RING_BLOCKS as u64) as usize;
                if let Some(b) = self.ring.get_mut(idx) {
                    *b = 0;
                }
            }
            if !self.any {
                // The first commit may land in block 0 too, which the loop above reaches last.
                self.ring = [0; RING_BLOCKS];
            }
            self.latest = counter;
            self.any = true;
        }
        let (block, bit) = Self::position(counter);
        if let Some(b) = self.ring.get_mut(block) {
            *b |= bit;
        }
        true
    }

    /// The oldest counter the window still tracks.
    pub fn low_edge(&self) -> u64 {
        self.latest.saturating_sub(WINDOW_SIZE)
    }

    /// Exports which counters from `start` through the latest were received, one bit each (bit `i` of
    /// the output, least significant first, is counter `start + i`), into `out`. Returns the number of
    /// bytes written. Used by the channel layer's selective acknowledgements.
    ///
    /// # Errors
    /// [`BitmapError`] when `start` is outside the tracked window or `out` is too small; nothing is
    /// written then.
    pub fn get_bitmap(&self, start: u64, out: &mut [u8]) -> Result<usize, BitmapError> {
        if start < self.low_edge() {
            return Err(BitmapError::StartBeforeWindow {
                start,
                low_edge: self.low_edge(),
            });
        }
        if !self.any || start > self.latest {
            return Err(BitmapError::StartAfterLatest {
                start,
                latest: self.latest,
            });
        }
        let bits = self.latest - start + 1;
        let needed = bits.div_ceil(8) as usize;
        let Some(dst) = out.get_mut(..needed) else {
            return Err(BitmapError::BufferTooSmall {
                needed,
                len: out.len(),
            });
        };
        dst.fill(0);
        for i in 0..bits {
            let (block, bit) = Self::position(start + i);
            if self.ring.get(block).is_some_and(|b| b & bit != 0)
                && let Some(byte) = dst.get_mut((i / 8) as usize)
            {
                *byte |= 1 << (i % 8);
            }
        }
        Ok(needed)
    }

    fn position(counter: u64) -> (usize, u64) {
        let block = ((counter / BLOCK_BITS) % RING_BLOCKS as u64) as usize;
        (block, 1u64 << (counter % BLOCK_BITS))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The schedule of wireguard-go's `replay/replay_test.go` (which matches the kernel's
    /// `selftest/counter.c`), for a window of 8128: (counter, accepted).
    /// Source: github.com/WireGuard/wireguard-go, MIT licence.
    #[test]
    fn matches_reference_schedule() {
        // T_LIM in the reference is the window size plus one.
        let w = WINDOW_SIZE + 1;
        let mut win = ReplayWindow::new();
        let steps: &[(u64, bool)] = &[
            (0, true),
            (1, true),
            (1, false),
            (9, true),
            (8, true),
            (7, true),
            (7, false),
            (w, true),
            (w - 1, true),
            (w - 1, false),
            (w - 2, true),
            (2, true),
            (2, false),
            (w + 16, true),
            (3, false),
            (w + 16, false),
            (w * 4, true),
            (w * 4 - (w - 1), true),
            (10, false),
            (w * 4 - w, false),
            (w * 4 - (w + 1), false),
            (w * 4 - (w - 2), true),
            (w * 4 + 1 - w, false),
            (0, false),
            (REJECT_AFTER_MESSAGES, false),
            (REJECT_AFTER_MESSAGES - 1, true),
            (REJECT_AFTER_MESSAGES, false),
            (REJECT_AFTER_MESSAGES - 1, false),
            (REJECT_AFTER_MESSAGES - 2, true),
            (REJECT_AFTER_MESSAGES + 1, false),
            (REJECT_AFTER_MESSAGES + 2, false),
            (REJECT_AFTER_MESSAGES - 2, false),
            (REJECT_AFTER_MESSAGES - 3, true),
            (0, false),
        ];
        for (i, &(counter, expected)) in steps.iter().enumerate() {
            let ok = win.check(counter) && win.commit(counter);
            assert_eq!(ok, expected, "step {i}: counter {counter}");
        }
    }

    #[test]
    fn bulk_in_order_and_reverse_schedules() {
        let w = WINDOW_SIZE;
        let mut win = ReplayWindow::new();
        for i in 1..=w {
            assert!(win.commit(i), "bulk 1: {i}");
        }
        assert!(win.commit(0));
        assert!(!win.commit(0));

        let mut win = ReplayWindow::new();
        for i in 2..=w + 1 {
            assert!(win.commit(i), "bulk 2: {i}");
        }
        assert!(win.commit(1));
        assert!(!win.commit(0));

        let mut win = ReplayWindow::new();
        for i in (1..=w + 1).rev() {
            assert!(win.commit(i), "bulk 3: {i}");
        }

        let mut win = ReplayWindow::new();
        for i in (2..=w + 2).rev() {
            assert!(win.commit(i), "bulk 4: {i}");
        }
        assert!(!win.commit(0), "bulk 4: 0 is beyond the window");
    }

    #[test]
    fn check_alone_never_changes_state() {
        let mut win = ReplayWindow::new();
        assert!(win.commit(5));
        let before = win.clone();
        for c in [0, 5, 6, 1 << 40, u64::MAX] {
            let _ = win.check(c);
        }
        assert_eq!(before.latest, win.latest);
        assert_eq!(before.ring, win.ring);
    }

    #[test]
    fn bitmap_export() {
        let mut win = ReplayWindow::new();
        for c in [10, 11, 13, 20] {
            assert!(win.commit(c));
        }
        let mut out = [0xffu8; 4];
        assert_eq!(win.get_bitmap(10, &mut out), Ok(2));
        // counters 10,11,13 → bits 0,1,3 ; 20 → bit 10 → byte 1 bit 2
        assert_eq!(out[..2], [0b0000_1011, 0b0000_0100]);
        assert_eq!(out[2..], [0xff, 0xff], "nothing past the bitmap is written");
    }

    proptest! {
        /// The window accepts exactly what a set-based model accepts.
        #[test]
        fn equals_set_model(ops in prop::collection::vec(0u64..20_000, 1..400)) {
            let mut win = ReplayWindow::new();
            let mut seen = BTreeSet::new();
            let mut latest: Option<u64> = None;
            for c in ops {
                let too_old = latest.is_some_and(|l| c < l && l - c > WINDOW_SIZE);
                let expected = !too_old && !seen.contains(&c);
                prop_assert_eq!(win.check(c), expected, "check {}", c);
                prop_assert_eq!(win.commit(c), expected, "commit {}", c);
                if expected {
                    seen.insert(c);
                    latest = Some(latest.map_or(c, |l| l.max(c)));
                }
            }
        }
    }
}
