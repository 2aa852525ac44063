//! Cookie reply, type 3, 64 bytes (whitepaper §5.4.7).

use super::{COOKIE_REPLY_LEN, Fields, MessageType, WireError, Writer};

/// A cookie reply as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieReply {
    /// The sender index of the handshake message being answered.
    pub receiver: u32,
    /// Random XChaCha20 nonce.
    pub nonce: [u8; 24],
    /// The 16-byte cookie, XChaCha20-Poly1305-encrypted with the answered mac1 as AAD.
    pub encrypted_cookie: [u8; 16 + 16],
}

impl CookieReply {
    /// Parses exactly 64 bytes of type 3.
    ///
    /// # Errors
    /// [`WireError`] on a wrong type, reserved bytes or length.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let mut f = Fields::expect(buf, MessageType::CookieReply)?;
        Ok(CookieReply {
            receiver: f.u32(),
            nonce: f.array(),
            encrypted_cookie: f.array(),
        })
    }

    /// Writes the 64 bytes into `out`.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `out` is shorter than 64 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::start(out, MessageType::CookieReply, COOKIE_REPLY_LEN)?;
        w.bytes(&self.receiver.to_le_bytes());
        w.bytes(&self.nonce);
        w.bytes(&self.encrypted_cookie);
        Ok(COOKIE_REPLY_LEN)
    }
}
