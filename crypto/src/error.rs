use thiserror::Error;

/// Why a cryptographic operation failed.
///
/// The variants carry no secret material and are cheap to copy, so the hot path can return them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// An X25519 exchange gave the all-zero shared secret: the peer key is a low-order point.
    #[error("x25519 produced an all-zero shared secret (low-order public key)")]
    LowOrderPoint,
    /// The AEAD tag did not verify; the buffer was zeroed.
    #[error("authentication tag mismatch")]
    AuthenticationFailed,
    /// The input is shorter than the 16-byte tag it must carry.
    #[error("ciphertext of {len} bytes is shorter than the 16-byte tag")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// A key given as text was not 32 bytes of base64.
    #[error("not a base64-encoded 32-byte key")]
    InvalidKeyEncoding,
}
