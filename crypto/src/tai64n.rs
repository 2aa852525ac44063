//! TAI64N timestamps (<https://cr.yp.to/libtai/tai64.html>), the replay guard of handshake initiations.

use std::time::{Duration, SystemTime};

/// Length of an encoded timestamp.
pub const LEN: usize = 12;

/// 2^62 + 10: TAI64 label of the Unix epoch (TAI was 10 s ahead of UTC in 1970).
const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;

/// A TAI64N timestamp: big-endian seconds then nanoseconds, so byte order is time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tai64N([u8; LEN]);

impl Tai64N {
    /// The zero timestamp, older than any real one.
    pub const ZERO: Tai64N = Tai64N([0; LEN]);

    /// Encodes a wall-clock time. Times before the Unix epoch clamp to the epoch.
    ///
    /// The nanoseconds are rounded down to a multiple of 2^24 ns (about 16.8 ms), as wireguard-go does,
    /// so the timestamp does not leak a fine-grained clock to an observer of the handshake.
    pub fn from_system_time(t: SystemTime) -> Self {
        let since = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let secs = TAI64_EPOCH.wrapping_add(since.as_secs());
        let nanos = since.subsec_nanos() & !0x00ff_ffff;
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(&secs.to_be_bytes());
        out[8..].copy_from_slice(&nanos.to_be_bytes());
        Tai64N(out)
    }

    /// Wraps 12 received bytes.
    pub const fn from_bytes(bytes: [u8; LEN]) -> Self {
        Tai64N(bytes)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }

    /// Whether `self` is strictly newer than `other`, the only order WireGuard accepts.
    pub fn is_after(&self, other: &Tai64N) -> bool {
        self.0 > other.0
    }
}
