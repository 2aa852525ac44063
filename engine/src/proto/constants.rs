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
