//! WireGuard cryptographic primitives for PNet Mesh.
//!
//! This crate is the only place in PNet Mesh that touches key material. It offers exactly what the
//! WireGuard protocol (whitepaper §5.4) needs and nothing more:
//!
//! - [`x25519`]: static and ephemeral Curve25519 keys; [`PrivateKey::diffie_hellman`] refuses an
//!   all-zero shared secret (a low-order peer key), as the kernel and wireguard-go do.
//! - [`blake2s`]: `HASH`, `MAC` (keyed BLAKE2s-128), `HMAC` and the `KDF1..3` chain of the Noise
//!   construction.
//! - [`aead`]: ChaCha20-Poly1305 sealed and opened **in place** with a detached 16-byte tag, backed by
//!   aws-lc-rs. A failed open zeroes the buffer, so no unauthenticated plaintext survives.
//! - [`xaead`]: XChaCha20-Poly1305 for cookie replies.
//! - [`tai64n`]: the 12-byte timestamps that order handshake initiations.
//! - [`rng`]: the randomness source the protocol core takes as an input.
//!
//! It is *not* a protocol implementation: the Noise handshake, cookies and transport framing live in
//! the `pnet-mesh` crate. Nothing here reads a clock, opens a file or a socket.
//!
//! # Example
//!
//! Two parties agree on a key and move one message in place:
//!
//! ```
//! use pnet_mesh_crypto::{aead::AeadKey, blake2s, PrivateKey, rng::SeededRng};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = SeededRng::new(7);
//! let alice = PrivateKey::generate(&mut rng);
//! let bob = PrivateKey::generate(&mut rng);
//! let shared_a = alice.diffie_hellman(&bob.public_key())?;
//! let shared_b = bob.diffie_hellman(&alice.public_key())?;
//! assert_eq!(shared_a.as_bytes(), shared_b.as_bytes());
//!
//! let (send, _) = blake2s::kdf2(shared_a.as_bytes(), b"");
//! let key = AeadKey::new(&send);
//! let mut buf = *b"hello, wireguard\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
//! let tag = key.seal_in_place(0, b"", &mut buf[..16]);
//! buf[16..].copy_from_slice(&tag);
//! let plain = key.open_in_place(0, b"", &mut buf)?;
//! assert_eq!(plain, b"hello, wireguard");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod aead;
pub mod blake2s;
mod error;
pub mod psk;
pub mod rng;
pub mod tai64n;
pub mod x25519;
pub mod xaead;

pub use error::CryptoError;
pub use psk::PresharedKey;
pub use tai64n::Tai64N;
pub use x25519::{PrivateKey, PublicKey, SharedSecret};

/// Compares two byte strings in constant time (for MACs, tags and keys).
///
/// Returns `false` when the lengths differ; the length itself is not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
