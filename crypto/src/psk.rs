//! The optional preshared symmetric key mixed into the handshake (the `Q` of whitepaper §5.4.3).

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

/// A 32-byte preshared key. Zeroized on drop; `Debug` prints no bytes.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; 32]);

impl PresharedKey {
    /// Wraps 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the base64 form `wg genpsk` prints.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKeyEncoding`] unless the text is base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let mut decoded = BASE64
            .decode(text.trim())
            .map_err(|_| CryptoError::InvalidKeyEncoding)?;
        let result = <[u8; 32]>::try_from(decoded.as_slice())
            .map(Self)
            .map_err(|_| CryptoError::InvalidKeyEncoding);
        decoded.zeroize();
        result
    }

    /// The base64 form. Handle the result as a secret.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}
