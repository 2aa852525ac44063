//! Handshake initiation, type 1, 148 bytes (whitepaper §5.4.2).

use super::{Fields, INITIATION_LEN, MAC_LEN, MessageType, WireError, Writer};

/// A handshake initiation as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    /// The initiator's index for this handshake.
    pub sender: u32,
    /// The initiator's ephemeral public key, in the clear.
    pub ephemeral: [u8; 32],
    /// The initiator's static public key, AEAD-encrypted.
    pub encrypted_static: [u8; 32 + 16],
    /// The TAI64N timestamp, AEAD-encrypted.
    pub encrypted_timestamp: [u8; 12 + 16],
    /// MAC keyed by the responder's public key over the bytes before it.
    pub mac1: [u8; MAC_LEN],
    /// MAC keyed by a cookie over the bytes before it, or zero.
    pub mac2: [u8; MAC_LEN],
}

impl Initiation {
    /// Offset of mac1: the bytes before it are what mac1 covers.
    pub const MAC1_OFFSET: usize = 116;
    /// Offset of mac2: the bytes before it are what mac2 covers.
    pub const MAC2_OFFSET: usize = 132;

    /// Parses exactly 148 bytes of type 1.
    ///
    /// # Errors
    /// [`WireError`] on a wrong type, reserved bytes or length.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let mut f = Fields::expect(buf, MessageType::Initiation)?;
        Ok(Initiation {
            sender: f.u32(),
            ephemeral: f.array(),
            encrypted_static: f.array(),
            encrypted_timestamp: f.array(),
            mac1: f.array(),
            mac2: f.array(),
        })
    }

    /// Writes the 148 bytes into `out`.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `out` is shorter than 148 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::start(out, MessageType::Initiation, INITIATION_LEN)?;
        w.bytes(&self.sender.to_le_bytes());
        w.bytes(&self.ephemeral);
        w.bytes(&self.encrypted_static);
        w.bytes(&self.encrypted_timestamp);
        w.bytes(&self.mac1);
        w.bytes(&self.mac2);
        Ok(INITIATION_LEN)
    }
}
