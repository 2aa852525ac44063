//! Protocol constants.
//!
//! The first block is fixed by the WireGuard specification (whitepaper §5.4 and §6, and the constants of
//! the kernel's `messages.h` and wireguard-go's `device/constants.go`); changing one breaks interoperability
//! or the security argument. The second block is this implementation's own choice.

use std::time::Duration;

// --- Specification -----------------------------------------------------------------------------------

/// Noise protocol name, hashed into the initial chaining key (whitepaper §5.4.1 "Construction").
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// WireGuard's Noise prologue (whitepaper §5.4.1 "Identifier").
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Label of the mac1 key: `HASH(LABEL_MAC1 ‖ responder public key)` (whitepaper §5.4.4).
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Label of the cookie encryption key: `HASH(LABEL_COOKIE ‖ public key)` (whitepaper §5.4.7).
pub const LABEL_COOKIE: &[u8] = b"cookie--";

/// Rekey once a keypair has sent this many messages (2^60).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never use a keypair for more messages than this: 2^64 − 2^13 − 1, as wireguard-go.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// The initiator rekeys once its keypair is this old.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// A keypair older than this is never used, for sending or receiving.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Give up a handshake after retrying it for this long.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Retransmit an unanswered initiation after this long (plus jitter); also the minimum spacing of
/// initiations to one peer.
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Send a keepalive if we received data and sent nothing for this long.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Number of retransmissions before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT.
pub const MAX_TIMER_HANDSHAKES: u32 =
    (REKEY_ATTEMPT_TIME.as_secs() / REKEY_TIMEOUT.as_secs()) as u32;
/// The cookie secret rotates this often (whitepaper §5.4.7), and a received cookie is used this long.
pub const COOKIE_REFRESH_TIME: Duration = Duration::from_secs(120);
/// Accept at most one initiation per peer per this interval (INITIATIONS_PER_SECOND = 50).
pub const HANDSHAKE_INITIATION_RATE: Duration = Duration::from_millis(20);

// --- Implementation choices --------------------------------------------------------------------------

/// Upper bound of the random jitter added to each handshake retransmission (wireguard-go: 333 ms).
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(333);
/// Per-source handshake rate under load, in packets per second (kernel and wireguard-go: 20).
pub const RATE_LIMIT_PACKETS_PER_SECOND: u64 = 20;
/// Per-source burst allowance under load (kernel and wireguard-go: 5).
pub const RATE_LIMIT_BURST: u64 = 5;
/// Default MTU of the inner packets, as wg-quick.
pub const DEFAULT_MTU: u16 = 1420;
/// Smallest MTU accepted: the IPv4 minimum datagram size.
pub const MIN_MTU: u16 = 576;
/// Largest MTU accepted: a jumbo frame, minus the 32 bytes of WireGuard overhead and outer headers.
pub const MAX_MTU: u16 = 9000;
/// Default number of packets held per peer while its handshake completes (kernel: 128).
pub const DEFAULT_STAGED_PACKETS: usize = 128;
/// Default capacity of the event queue.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Default number of sources the under-load rate limiter tracks (kernel: 65,536 entries at most).
pub const DEFAULT_RATE_LIMIT_ENTRIES: usize = 65_536;

/// The protocol's time constants as one value, so tests can shrink them together (a timer scale) while
/// production uses the specification's. Changing them changes behaviour on the wire: only tests and
/// benchmarks should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolTimes {
    /// REKEY_AFTER_TIME.
    pub rekey_after_time: Duration,
    /// REJECT_AFTER_TIME.
    pub reject_after_time: Duration,
    /// REKEY_ATTEMPT_TIME.
    pub rekey_attempt_time: Duration,
    /// REKEY_TIMEOUT.
    pub rekey_timeout: Duration,
    /// KEEPALIVE_TIMEOUT.
    pub keepalive_timeout: Duration,
    /// COOKIE_REFRESH_TIME.
    pub cookie_refresh_time: Duration,
    /// The minimum spacing of accepted initiations from one peer.
    pub initiation_rate: Duration,
    /// The largest retransmission jitter.
    pub jitter_max: Duration,
}

impl Default for ProtocolTimes {
    fn default() -> Self {
        ProtocolTimes {
            rekey_after_time: REKEY_AFTER_TIME,
            reject_after_time: REJECT_AFTER_TIME,
            rekey_attempt_time: REKEY_ATTEMPT_TIME,
            rekey_timeout: REKEY_TIMEOUT,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
            cookie_refresh_time: COOKIE_REFRESH_TIME,
            initiation_rate: HANDSHAKE_INITIATION_RATE,
            jitter_max: REKEY_TIMEOUT_JITTER_MAX,
        }
    }
}

impl ProtocolTimes {
    /// Every time multiplied by `factor` (e.g. 0.01 turns a 120 s rekey into 1.2 s).
    pub fn scaled(factor: f64) -> Self {
        let s = |d: Duration| d.mul_f64(factor.max(0.0));
        let d = ProtocolTimes::default();
        ProtocolTimes {
            rekey_after_time: s(d.rekey_after_time),
            reject_after_time: s(d.reject_after_time),
            rekey_attempt_time: s(d.rekey_attempt_time),
            rekey_timeout: s(d.rekey_timeout),
            keepalive_timeout: s(d.keepalive_timeout),
            cookie_refresh_time: s(d.cookie_refresh_time),
            initiation_rate: s(d.initiation_rate),
            jitter_max: s(d.jitter_max),
        }
    }

    /// Retransmissions before a handshake is given up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT.
    pub fn max_handshake_attempts(&self) -> u32 {
        let timeout = self.rekey_timeout.as_nanos().max(1);
        (self.rekey_attempt_time.as_nanos() / timeout) as u32
    }
}
