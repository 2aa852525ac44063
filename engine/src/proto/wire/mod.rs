//! WireGuard message codecs: types 1-4, byte-exact, little-endian, reserved bytes zero.
//!
//! Every message starts with a 4-byte little-endian type; WireGuard compares the whole word, so the three
//! reserved bytes must be zero (WIREGUARD_CHECKLIST case 4). Handshake messages have exact sizes; a
//! transport message is at least a 16-byte header and a 16-byte tag. Parsing checks the length once and
//! never panics, whatever the input.

mod cookie_reply;
mod initiation;
mod response;
mod transport;

pub use cookie_reply::CookieReply;
pub use initiation::Initiation;
pub use response::Response;
pub use transport::TransportHeader;

use thiserror::Error;

/// Length of a handshake initiation (type 1).
pub const INITIATION_LEN: usize = 148;
/// Length of a handshake response (type 2).
pub const RESPONSE_LEN: usize = 92;
/// Length of a cookie reply (type 3).
pub const COOKIE_REPLY_LEN: usize = 64;
/// Length of the transport header: type, receiver index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Smallest transport message: header and tag around an empty (keepalive) plaintext.
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Bytes a transport message adds to its (padded) plaintext.
pub const TRANSPORT_OVERHEAD: usize = TRANSPORT_MIN_LEN;
/// Length of mac1 and mac2.
pub const MAC_LEN: usize = 16;

/// The four WireGuard message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Handshake initiation.
    Initiation = 1,
    /// Handshake response.
    Response = 2,
    /// Cookie reply.
    CookieReply = 3,
    /// Transport data (and keepalives).
    Transport = 4,
}

/// Why bytes are not a well-formed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer than 4 bytes: no message type.
    #[error("datagram of {len} bytes has no message header")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// Type 0 or 5-255.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// One of the three reserved header bytes is not zero.
    #[error("reserved header bytes are not zero")]
    ReservedNonZero,
    /// The length does not match the message type.
    #[error("{kind:?} of {len} bytes, expected {expected}")]
    BadLength {
        /// The type the header names.
        kind: MessageType,
        /// The datagram length.
        len: usize,
        /// The exact (or, for transport, minimum) length.
        expected: usize,
    },
    /// A well-formed message of another type than the parser's.
    #[error("expected a {expected:?} message, found {found:?}")]
    WrongType {
        /// The type the parser reads.
        expected: MessageType,
        /// The type the header names.
        found: MessageType,
    },
    /// The output buffer is too small to emit into.
    #[error("output buffer of {len} bytes, {needed} needed")]
    BufferTooSmall {
        /// Buffer length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}

/// Reads the message type from the 4-byte header and checks the length that type requires.
///
/// # Errors
/// A [`WireError`] naming the first check that failed; no check reads past `buf`.
pub fn peek_type(buf: &[u8]) -> Result<MessageType, WireError> {
    let header: [u8; 4] = match buf.get(..4).and_then(|b| b.try_into().ok()) {
        Some(h) => h,
        None => return Err(WireError::TooShort { len: buf.len() }),
    };
    let kind = match header[0] {
        1 => MessageType::Initiation,
        2 => MessageType::Response,
        3 => MessageType::CookieReply,
        4 => MessageType::Transport,
        other => return Err(WireError::UnknownType(other)),
    };
    if header[1..] != [0, 0, 0] {
        return Err(WireError::ReservedNonZero);
    }
    let (ok, expected) = match kind {
        MessageType::Initiation => (buf.len() == INITIATION_LEN, INITIATION_LEN),
        MessageType::Response => (buf.len() == RESPONSE_LEN, RESPONSE_LEN),
        MessageType::CookieReply => (buf.len() == COOKIE_REPLY_LEN, COOKIE_REPLY_LEN),
        MessageType::Transport => (buf.len() >= TRANSPORT_MIN_LEN, TRANSPORT_MIN_LEN),
    };
    if !ok {
        return Err(WireError::BadLength {
            kind,
            len: buf.len(),
            expected,
        });
    }
    Ok(kind)
}

/// A little reader over a slice whose length has been checked: every read is infallible.
struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    /// Checks that `buf` is a well-formed message of `kind` (type, reserved bytes, length) and reads
    /// from just past its header.
    fn expect(buf: &'a [u8], kind: MessageType) -> Result<Self, WireError> {
        let found = peek_type(buf)?;
        if found != kind {
            return Err(WireError::WrongType {
                expected: kind,
                found,
            });
        }
        Ok(Fields { buf, at: 4 })
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(self.at..self.at + N) {
            out.copy_from_slice(src);
        }
        self.at += N;
        out
    }
}

/// The mirror of [`Fields`] for emitting into a checked buffer.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// Checks that `buf` holds `len` bytes, writes the header of `kind` and writes on from past it.
    fn start(buf: &'a mut [u8], kind: MessageType, len: usize) -> Result<Self, WireError> {
        let available = buf.len();
        let Some(header) = buf.get_mut(..4).filter(|_| available >= len) else {
            return Err(WireError::BufferTooSmall {
                len: available,
                needed: len,
            });
        };
        header.copy_from_slice(&[kind as u8, 0, 0, 0]);
        Ok(Writer { buf, at: 4 })
    }

    fn bytes(&mut self, src: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + src.len()) {
            dst.copy_from_slice(src);
        }
        self.at += src.len();
    }
}

#[cfg(test)]
mod tests;
