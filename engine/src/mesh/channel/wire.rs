//! The channel header, version 1: 48 bytes in network byte order before every fragment's payload.
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | 1; any other value is dropped (`UnsupportedVersion`) |
//! | 1 | 1 | `kind` | 1 `DATA`, 2 `ACK`, 3 `RESET` |
//! | 2 | 1 | `flags` | `DATA`: 0x01 `OPEN` (seq 0, empty), 0x02 `FIRST`, 0x04 `LAST`, 0x08 `FIN` (empty); `ACK`: 0x10 `PROBE` (asks for an immediate ack) |
//! | 3 | 1 | `ecn` | bits 0-1: ECN codepoint observed on the carrying packet ([`EcnCodepoint`], RFC 3168/6679 field model); bits 2-7 zero |
//! | 4 | 4 | `channel` | channel id, chosen at random by the opener |
//! | 8 | 4 | `seq` | `DATA`: fragment number (serial arithmetic, starts at 0 with `OPEN`); else 0 |
//! | 12 | 4 | `ack` | the next fragment number the sender of this header expects (everything before it arrived) |
//! | 16 | 8 | `sack` | bit i set: fragment `ack + 1 + i` arrived (selective acknowledgement) |
//! | 24 | 4 | `window` | fragments accepted from `ack` on: the sender may send up to `ack + window - 1` (credit) |
//! | 28 | 4 | `timestamp` | microseconds on the sender's clock, low 32 bits (RFC 6817 §3 LEDBAT field model) |
//! | 32 | 4 | `delay` | the one-way delay the sender measured on the last fragment it received, µs (LEDBAT "timestamp difference") |
//! | 36 | 1 | `compression` | 0 = none; other values reserved (dropped) |
//! | 37 | 3 | reserved | zero |
//! | 40 | 4 | `message_len` | `DATA` with `FIRST`: the whole message's length; else 0 |
//! | 44 | 4 | `echo` | the `timestamp` of the latest `DATA` the sender of this header received (0: none yet); the other side's round-trip sample |
//!
//! The payload of a `DATA` fragment follows; `ACK` and `RESET` carry none. A new version changes the
//! first byte, so a v1 node drops it and counts it instead of misreading it.
//!
//! [`EcnCodepoint`]: crate::fields::EcnCodepoint

use crate::fields::EcnCodepoint;

/// The version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 48;

/// The kind of a channel packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A fragment (or the `OPEN`/`FIN` marker), with acknowledgement fields for the other direction.
    Data,
    /// Acknowledgement and credit only.
    Ack,
    /// The channel is aborted.
    Reset,
}

/// `DATA`: the first fragment of a channel, empty, seq 0.
pub const OPEN: u8 = 0x01;
/// `DATA`: the fragment starts a message (`message_len` is set).
pub const FIRST: u8 = 0x02;
/// `DATA`: the fragment ends a message.
pub const LAST: u8 = 0x04;
/// `DATA`: the sender will send nothing more (empty).
pub const FIN: u8 = 0x08;
/// `ACK`: answer at once (a zero-window probe).
pub const PROBE: u8 = 0x10;

/// One decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet kind.
    pub kind: Kind,
    /// Flag bits (see the constants).
    pub flags: u8,
    /// ECN codepoint field.
    pub ecn: EcnCodepoint,
    /// Channel id.
    pub channel: u32,
    /// Fragment number (`DATA`).
    pub seq: u32,
    /// Next fragment expected from the other side.
    pub ack: u32,
    /// Selective acknowledgement bitmap above `ack`.
    pub sack: u64,
    /// Credit: fragments accepted from `ack` on.
    pub window: u32,
    /// LEDBAT timestamp, µs.
    pub timestamp: u32,
    /// LEDBAT timestamp difference, µs.
    pub delay: u32,
    /// Length of the message a `FIRST` fragment starts.
    pub message_len: u32,
    /// Timestamp echo: the `timestamp` of the latest `DATA` received.
    pub echo: u32,
}

/// Why a channel packet was refused before any state was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the header.
    Truncated,
    /// A version other than 1.
    UnsupportedVersion,
    /// An unknown kind, flag, ECN bit, compression or a non-zero reserved byte, or flags that do not
    /// fit the kind.
    Malformed,
}

impl Header {
    /// A header of `kind` for `channel` with everything else zero.
    pub fn new(kind: Kind, channel: u32) -> Header {
        Header {
            kind,
            flags: 0,
            ecn: EcnCodepoint::NotEct,
            channel,
            seq: 0,
            ack: 0,
            sack: 0,
            window: 0,
            timestamp: 0,
            delay: 0,
            message_len: 0,
            echo: 0,
        }
    }

    /// Writes the header into `out[..HEADER_LEN]`; `None` if `out` is shorter.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        let out = out.get_mut(..HEADER_LEN)?;
        out.fill(0);
        let kind = match self.kind {
            Kind::Data => 1,
            Kind::Ack => 2,
            Kind::Reset => 3,
        };
        put(out, 0, &[VERSION, kind, self.flags, self.ecn.bits()])?;
        put(out, 4, &self.channel.to_be_bytes())?;
        put(out, 8, &self.seq.to_be_bytes())?;
        put(out, 12, &self.ack.to_be_bytes())?;
        put(out, 16, &self.sack.to_be_bytes())?;
        put(out, 24, &self.window.to_be_bytes())?;
        put(out, 28, &self.timestamp.to_be_bytes())?;
        put(out, 32, &self.delay.to_be_bytes())?;
        put(out, 40, &self.message_len.to_be_bytes())?;
        put(out, 44, &self.echo.to_be_bytes())
    }

    /// Reads and checks a header; returns it and the payload after it.
    ///
    /// # Errors
    /// [`HeaderError`] for a short packet, another version, or any field out of its range.
    pub fn decode(packet: &[u8]) -> Result<(Header, &[u8]), HeaderError> {
        let (h, payload) = packet
            .split_at_checked(HEADER_LEN)
            .ok_or(HeaderError::Truncated)?;
        let u32_at = |at: usize| {
            h.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_be_bytes)
        };
        let byte = |at: usize| h.get(at).copied().unwrap_or(0xff);
        if byte(0) != VERSION {
            return Err(HeaderError::UnsupportedVersion);
        }
        let kind = match byte(1) {
            1 => Kind::Data,
            2 => Kind::Ack,
            3 => Kind::Reset,
            _ => return Err(HeaderError::Malformed),
        };
        let flags = byte(2);
        let allowed = match kind {
            Kind::Data => OPEN | FIRST | LAST | FIN,
            Kind::Ack => PROBE,
            Kind::Reset => 0,
        };
        let ecn = EcnCodepoint::from_bits(byte(3)).ok_or(HeaderError::Malformed)?;
        let reserved_zero = h.get(36..40).is_some_and(|r| r.iter().all(|b| *b == 0));
        if flags & !allowed != 0 || !reserved_zero {
            return Err(HeaderError::Malformed);
        }
        let sack = h
            .get(16..24)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        let header = Header {
            kind,
            flags,
            ecn,
            channel: u32_at(4),
            seq: u32_at(8),
            ack: u32_at(12),
            sack,
            window: u32_at(24),
            timestamp: u32_at(28),
            delay: u32_at(32),
            message_len: u32_at(40),
            echo: u32_at(44),
        };
        let markers = flags & (OPEN | FIN);
        let consistent = match kind {
            Kind::Data => {
                // OPEN and FIN are empty markers of their own; only FIRST carries a length.
                (markers == 0 || (flags == markers && markers != OPEN | FIN && payload.is_empty()))
                    && (flags & OPEN == 0 || header.seq == 0)
                    && ((flags & FIRST != 0) || header.message_len == 0)
            }
            Kind::Ack | Kind::Reset => {
                payload.is_empty() && header.seq == 0 && header.message_len == 0
            }
        };
        if !consistent {
            return Err(HeaderError::Malformed);
        }
        Ok((header, payload))
    }
}

/// Copies `bytes` into `out` at `at`; `None` if they do not fit.
fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(flags: u8, seq: u32) -> Header {
        Header {
            flags,
            seq,
            ack: 7,
            sack: 0x8000_0000_0000_0001,
            window: 256,
            timestamp: 123_456,
            delay: 789,
            ecn: EcnCodepoint::Ect0,
            ..Header::new(Kind::Data, 0xdead_beef)
        }
    }

    #[test]
    fn every_field_round_trips_at_its_offset() {
        let h = Header {
            message_len: 100_000,
            echo: 1234,
            ..data(FIRST | LAST, 42)
        };
        let mut packet = vec![0u8; HEADER_LEN + 3];
        h.encode(&mut packet).unwrap();
        packet[HEADER_LEN..].copy_from_slice(b"abc");
        assert_eq!(
            hex::encode(&packet[..HEADER_LEN]),
            "01010602deadbeef0000002a00000007800000000000000100000100\
             0001e24000000315\
             00000000000186a0000004d2"
        );
        let (back, payload) = Header::decode(&packet).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn malformed_headers_are_refused() {
        let encode = |h: Header, payload: &[u8]| {
            let mut p = vec![0u8; HEADER_LEN];
            h.encode(&mut p).unwrap();
            p.extend_from_slice(payload);
            p
        };
        let good = encode(data(0, 3), b"x");
        assert!(Header::decode(&good).is_ok());
        assert_eq!(
            Header::decode(&good[..HEADER_LEN - 1]),
            Err(HeaderError::Truncated)
        );
        let mutate = |at: usize, value: u8| {
            let mut p = good.clone();
            p[at] = value;
            Header::decode(&p).map(|_| ())
        };
        assert_eq!(mutate(0, 2), Err(HeaderError::UnsupportedVersion));
        assert_eq!(mutate(1, 9), Err(HeaderError::Malformed), "unknown kind");
        assert_eq!(mutate(2, 0x40), Err(HeaderError::Malformed), "unknown flag");
        assert_eq!(
            mutate(3, 0x04),
            Err(HeaderError::Malformed),
            "ECN high bits"
        );
        assert_eq!(mutate(36, 1), Err(HeaderError::Malformed), "compression");
        assert_eq!(mutate(39, 1), Err(HeaderError::Malformed), "reserved");
        let bad = [
            encode(data(OPEN, 1), b""),
            encode(data(OPEN, 0), b"x"),
            encode(data(FIN | FIRST, 5), b""),
            encode(data(OPEN | FIN, 0), b""),
            encode(
                Header {
                    message_len: 5,
                    ..data(0, 3)
                },
                b"x",
            ),
            encode(data(PROBE, 3), b""),
            encode(Header::new(Kind::Ack, 1), b"payload"),
            encode(
                Header {
                    flags: FIRST,
                    ..Header::new(Kind::Reset, 1)
                },
                b"",
            ),
        ];
        for p in bad {
            assert_eq!(
                Header::decode(&p).map(|_| ()),
                Err(HeaderError::Malformed),
                "{}",
                hex::encode(&p)
            );
        }
        assert!(Header::decode(&encode(data(OPEN, 0), b"")).is_ok());
        assert!(Header::decode(&encode(data(FIN, 9), b"")).is_ok());
        let probe = Header {
            flags: PROBE,
            ..Header::new(Kind::Ack, 1)
        };
        assert!(Header::decode(&encode(probe, b"")).is_ok());
    }
}
