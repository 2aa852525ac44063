//! Curve25519 keys (RFC 7748) as WireGuard uses them.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;
use crate::rng::Rng;

/// Length of every X25519 key and shared secret.
pub const KEY_LEN: usize = 32;

/// A Curve25519 private key (static or ephemeral). Zeroized on drop; `Debug` prints no bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

/// A Curve25519 public key. Prints in base64, as `wg` does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

/// The result of an X25519 exchange. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; KEY_LEN]);

impl PrivateKey {
    /// Takes ownership of 32 bytes of key material. Clamping happens at use, as in RFC 7748.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Draws a fresh key from `rng`.
    pub fn generate(rng: &mut dyn Rng) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the base64 form `wg genkey` prints.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKeyEncoding`] unless the text is base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        decode_key(text).map(Self)
    }

    /// The base64 form, as `wg genkey` prints it. Handle the result as a secret.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// The raw (unclamped) bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key: X25519(k, 9).
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::x25519(
            self.0,
            x25519_dalek::X25519_BASEPOINT_BYTES,
        ))
    }

    /// X25519(self, peer).
    ///
    /// # Errors
    /// [`CryptoError::LowOrderPoint`] when the result is all zero, i.e. `peer` is a low-order point;
    /// WireGuard aborts the handshake in that case.
    pub fn diffie_hellman(&self, peer: &PublicKey) -> Result<SharedSecret, CryptoError> {
        let shared = SharedSecret(x25519_dalek::x25519(self.0, peer.0));
        if crate::constant_time_eq(&shared.0, &[0u8; KEY_LEN]) {
            return Err(CryptoError::LowOrderPoint);
        }
        Ok(shared)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public_key())
    }
}

impl PublicKey {
    /// Wraps 32 bytes as a public key.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the base64 form `wg pubkey` prints.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKeyEncoding`] unless the text is base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        decode_key(text).map(Self)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Whether this key is one whose exchange with any private key is all zero (a low-order point).
    ///
    /// WireGuard refuses such a key for a peer at configuration time (kernel commit `1f28106`).
    pub fn is_low_order(&self) -> bool {
        // Any private key works: for a low-order point every clamped scalar gives zero.
        let probe = x25519_dalek::x25519([0x42; KEY_LEN], self.0);
        crate::constant_time_eq(&probe, &[0u8; KEY_LEN])
    }

    /// The first 8 characters of the base64 form, for logs.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(8);
        s
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl SharedSecret {
    /// The 32 secret bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

fn decode_key(text: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let mut decoded = BASE64
        .decode(text.trim())
        .map_err(|_| CryptoError::InvalidKeyEncoding)?;
    let result =
        <[u8; KEY_LEN]>::try_from(decoded.as_slice()).map_err(|_| CryptoError::InvalidKeyEncoding);
    decoded.zeroize();
    result
}
