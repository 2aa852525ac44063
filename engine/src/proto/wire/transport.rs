//! Transport data header, type 4: 16 bytes before the ciphertext (whitepaper §5.4.6).

use super::{Fields, MessageType, TRANSPORT_HEADER_LEN, WireError, Writer};

/// The header of a transport message; the ciphertext and tag follow it in the same buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportHeader {
    /// The receiver's index of the session.
    pub receiver: u32,
    /// The nonce counter.
    pub counter: u64,
}

impl TransportHeader {
    /// Parses the header of a transport message of at least 32 bytes.
    ///
    /// # Errors
    /// [`WireError`] on a wrong type, reserved bytes or a message shorter than 32 bytes.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let mut f = Fields::expect(buf, MessageType::Transport)?;
        Ok(TransportHeader {
            receiver: f.u32(),
            counter: f.u64(),
        })
    }

    /// Writes the 16-byte header into `out`.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `out` is shorter than 16 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::start(out, MessageType::Transport, TRANSPORT_HEADER_LEN)?;
        w.bytes(&self.receiver.to_le_bytes());
        w.bytes(&self.counter.to_le_bytes());
        Ok(TRANSPORT_HEADER_LEN)
    }
}
