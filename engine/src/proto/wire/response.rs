//! Handshake response, type 2, 92 bytes (whitepaper §5.4.3).

use super::{Fields, MAC_LEN, MessageType, RESPONSE_LEN, WireError, Writer};

/// A handshake response as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The responder's index for the new session.
    pub sender: u32,
    /// The initiator's index, echoed.
    pub receiver: u32,
    /// The responder's ephemeral public key.
    pub ephemeral: [u8; 32],
    /// The AEAD of the empty string: proves the responder derived the same keys (and PSK).
    pub encrypted_nothing: [u8; 16],
    /// MAC keyed by the initiator's public key.
    pub mac1: [u8; MAC_LEN],
    /// MAC keyed by a cookie, or zero.
    pub mac2: [u8; MAC_LEN],
}

impl Response {
    /// Offset of mac1.
    pub const MAC1_OFFSET: usize = 60;
    /// Offset of mac2.
    pub const MAC2_OFFSET: usize = 76;

    /// Parses exactly 92 bytes of type 2.
    ///
    /// # Errors
    /// [`WireError`] on a wrong type, reserved bytes or length.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let mut f = Fields::expect(buf, MessageType::Response)?;
        Ok(Response {
            sender: f.u32(),
            receiver: f.u32(),
            ephemeral: f.array(),
            encrypted_nothing: f.array(),
            mac1: f.array(),
            mac2: f.array(),
        })
    }

    /// Writes the 92 bytes into `out`.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `out` is shorter than 92 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::start(out, MessageType::Response, RESPONSE_LEN)?;
        w.bytes(&self.sender.to_le_bytes());
        w.bytes(&self.receiver.to_le_bytes());
        w.bytes(&self.ephemeral);
        w.bytes(&self.encrypted_nothing);
        w.bytes(&self.mac1);
        w.bytes(&self.mac2);
        Ok(RESPONSE_LEN)
    }
}
