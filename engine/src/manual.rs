//! Design notes and the list of what PNet Mesh does not do. Documentation only.
//!
//! # Shape of the protocol core
//!
//! [`Endpoint`](crate::Endpoint) is sans-I/O in the manner of quinn-proto and rustls: every input
//! carries the time (`now: Instant`), randomness comes from an injected
//! [`Rng`](crate::crypto::rng::Rng), and outputs are bytes written into caller buffers, deadlines and
//! events. The wall clock appears only through the configuration's clock anchor, which turns `Instant`s
//! into TAI64N timestamps and `latest handshake` times.
//!
//! Every received datagram goes through *check, then commit*: size → mac1 → (under load) mac2 or a
//! cookie reply → decryption → static key, TAI64N and flood checks → commit, for handshakes; size →
//! receiver index → age and counter limits → replay check → AEAD open in place → replay commit → timers
//! and roaming → inner header and allowed-IPs source check, for transport messages. A datagram that fails
//! any check changes no counter, window slot, timestamp, handshake slot, cookie or endpoint, and returns a
//! [`DropReason`](crate::DropReason) that is counted.
//!
//! # Departures from the reference implementations
//!
//! - Packets held while a handshake completes are bounded per peer (default 128, as the kernel); the
//!   oldest is dropped and counted when the queue is full. Their buffers are reused.
//! - Under-load is an input ([`Endpoint::set_under_load`](crate::Endpoint::set_under_load)); the runtime
//!   decides it from its handshake queue, as wireguard-go does.
//! - A datagram whose inner packet fails the IP or allowed-IPs check has its decrypted bytes zeroed
//!   before it is dropped, so the caller's buffer never holds plaintext of a dropped packet.
//!
//! # Not implemented
//!
//! - Full ICE, STUN and TURN NAT traversal.
//! - ECN (RFC 6679) and LEDBAT (RFC 6817) runtime behaviour: only their fields will be modelled.
//! - Payload compression: its fields are reserved; nothing negotiates or compresses.
//! - Congestion control on message channels: the receiver's credit window bounds what is in flight,
//!   and nothing adapts the send rate to loss or delay.
