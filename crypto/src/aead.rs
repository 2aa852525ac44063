//! ChaCha20-Poly1305 (RFC 8439) in place, with WireGuard's nonce: 32 zero bits ‖ a 64-bit
//! little-endian counter.
//!
//! Backed by aws-lc-rs. The key schedule is computed once per [`AeadKey`], so a transport keypair
//! seals and opens without setup cost per packet and without allocating.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroize;

use crate::CryptoError;

/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of a ChaCha20-Poly1305 key.
pub const KEY_LEN: usize = 32;

/// A ChaCha20-Poly1305 key ready to seal and open.
///
/// aws-lc-rs holds the expanded key and clears it when the key is dropped; the 32 raw bytes handed to
/// [`AeadKey::new`] are not kept.
pub struct AeadKey {
    key: LessSafeKey,
}

impl core::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

impl AeadKey {
    /// Builds the key from 32 bytes.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        // ChaCha20-Poly1305 accepts every 32-byte key, so construction cannot fail.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
            .expect("a 32-byte key is valid for ChaCha20-Poly1305");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Encrypts `data` in place and returns the detached tag.
    pub fn seal_in_place(&self, counter: u64, aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        // Sealing with a valid key and a buffer below 2^38 bytes cannot fail.
        #[allow(clippy::expect_used)]
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(counter), Aad::from(aad), data)
            .expect("ChaCha20-Poly1305 seal of a bounded buffer");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts `data` (`ciphertext ‖ tag`) in place and returns the plaintext, which is the first
    /// `data.len() - 16` bytes of `data`.
    ///
    /// # Errors
    /// [`CryptoError::TooShort`] when `data` cannot hold a tag; [`CryptoError::AuthenticationFailed`]
    /// when the tag does not verify. On any error the whole of `data` is zeroed, because aws-lc-rs
    /// leaves a failed buffer "overwritten in an unspecified way" and no unauthenticated byte may leak.
    pub fn open_in_place<'a>(
        &self,
        counter: u64,
        aad: &[u8],
        data: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        if data.len() < TAG_LEN {
            let len = data.len();
            data.zeroize();
            return Err(CryptoError::TooShort { len });
        }
        let len = data.len() - TAG_LEN;
        match self.key.open_in_place(nonce(counter), Aad::from(aad), data) {
            Ok(_) => Ok(&mut data[..len]),
            Err(_) => {
                data.zeroize();
                Err(CryptoError::AuthenticationFailed)
            }
        }
    }
}

/// One-shot seal with a key used once (handshake messages): `data` in place, tag returned.
pub fn seal(key: &[u8; KEY_LEN], counter: u64, aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
    AeadKey::new(key).seal_in_place(counter, aad, data)
}

/// One-shot open with a key used once (handshake messages). See [`AeadKey::open_in_place`].
///
/// # Errors
/// As [`AeadKey::open_in_place`]; the buffer is zeroed on failure.
pub fn open<'a>(
    key: &[u8; KEY_LEN],
    counter: u64,
    aad: &[u8],
    data: &'a mut [u8],
) -> Result<&'a mut [u8], CryptoError> {
    AeadKey::new(key).open_in_place(counter, aad, data)
}
