//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) for WireGuard cookie replies.
//!
//! aws-lc-rs's safe API has no XChaCha, so this uses the RustCrypto `chacha20poly1305` crate. Only
//! cookie replies (64 bytes, rare and rate limited) use it.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use crate::CryptoError;

/// Length of the extended nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the tag.
pub const TAG_LEN: usize = 16;

/// Encrypts `data` in place under `key` and a 24-byte `nonce`, returning the detached tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
    let cipher = XChaCha20Poly1305::new(key.into());
    // Encryption of a bounded buffer cannot fail.
    #[allow(clippy::expect_used)]
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, data)
        .expect("XChaCha20-Poly1305 seal of a bounded buffer");
    tag.into()
}

/// Decrypts `data` in place and checks `tag`.
///
/// # Errors
/// [`CryptoError::AuthenticationFailed`] when the tag does not verify; `data` is then zeroed.
pub fn open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    data: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), CryptoError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, data, Tag::from_slice(tag))
        .map_err(|_| {
            zeroize::Zeroize::zeroize(data);
            CryptoError::AuthenticationFailed
        })
}
