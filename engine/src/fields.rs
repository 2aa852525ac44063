//! Field models for ECN and LEDBAT, carried in the channel header (see
//! [`mesh::channel::wire`](crate::mesh::channel::wire)); compression fields are reserved.
//!
//! **Only the fields exist.** Their runtime behaviour is not implemented: nothing marks packets
//! ECN-capable, nothing reacts to congestion-experienced marks, nothing reports ECN feedback (RFC
//! 6679), and no delay-based congestion control (RFC 6817 LEDBAT) adjusts the sending rate. A
//! channel fills the `timestamp` field and echoes a `delay`, and these types can read them, so that
//! a later version can add the behaviour without changing the header. The `compression` byte must
//! be 0; any other value is dropped.

/// The two-bit ECN codepoint of an IP packet (RFC 3168 §5), as RFC 6679 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EcnCodepoint {
    /// `00`: not ECN-capable.
    #[default]
    NotEct,
    /// `01`: ECN-capable transport, codepoint 1.
    Ect1,
    /// `10`: ECN-capable transport, codepoint 0.
    Ect0,
    /// `11`: congestion experienced.
    Ce,
}

impl EcnCodepoint {
    /// The codepoint from a header byte whose high six bits must be zero.
    pub fn from_bits(byte: u8) -> Option<Self> {
        match byte {
            0b00 => Some(EcnCodepoint::NotEct),
            0b01 => Some(EcnCodepoint::Ect1),
            0b10 => Some(EcnCodepoint::Ect0),
            0b11 => Some(EcnCodepoint::Ce),
            _ => None,
        }
    }

    /// The two bits.
    pub fn bits(self) -> u8 {
        match self {
            EcnCodepoint::NotEct => 0b00,
            EcnCodepoint::Ect1 => 0b01,
            EcnCodepoint::Ect0 => 0b10,
            EcnCodepoint::Ce => 0b11,
        }
    }
}

/// The counters of an RFC 6679 §5.1 ECN feedback report: what a receiver would send back. Modelled
/// only; no channel sends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EcnFeedback {
    /// Packets received with ECT(0).
    pub ect0: u32,
    /// Packets received with ECT(1).
    pub ect1: u32,
    /// Packets received with CE.
    pub ce: u32,
    /// Packets received not ECN-capable.
    pub not_ect: u32,
    /// Packets lost.
    pub lost: u32,
}

impl EcnFeedback {
    /// Counts one received packet.
    pub fn record(&mut self, codepoint: EcnCodepoint) {
        let counter = match codepoint {
            EcnCodepoint::NotEct => &mut self.not_ect,
            EcnCodepoint::Ect1 => &mut self.ect1,
            EcnCodepoint::Ect0 => &mut self.ect0,
            EcnCodepoint::Ce => &mut self.ce,
        };
        *counter = counter.wrapping_add(1);
    }
}

/// The LEDBAT one-way delay sample of RFC 6817 §3.4.2: the receiver subtracts the sender's
/// `timestamp` from its own clock (both in µs, wrapping at 32 bits), and the smallest such value over
/// time is the base delay; queueing delay = current − base. Modelled only: the channel echoes
/// `delay`, nothing acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedbatDelay {
    base: Option<u32>,
    last: u32,
}

impl LedbatDelay {
    /// Records a packet stamped `timestamp` (sender's µs) that arrived at `local` (our µs); returns
    /// the raw one-way delay (with the unknown clock offset in it).
    pub fn record(&mut self, timestamp: u32, local: u32) -> u32 {
        let delay = local.wrapping_sub(timestamp);
        self.last = delay;
        self.base = Some(self.base.map_or(delay, |b| b.min(delay)));
        delay
    }

    /// The latest sample minus the smallest seen: the queueing delay LEDBAT would steer by.
    pub fn queueing_delay(&self) -> u32 {
        self.base.map_or(0, |b| self.last.wrapping_sub(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecn_codepoints_are_the_rfc_3168_bits() {
        for byte in 0..4u8 {
            assert_eq!(EcnCodepoint::from_bits(byte).unwrap().bits(), byte);
        }
        assert_eq!(EcnCodepoint::from_bits(4), None);
        let mut report = EcnFeedback::default();
        for c in [EcnCodepoint::Ce, EcnCodepoint::Ce, EcnCodepoint::Ect0] {
            report.record(c);
        }
        assert_eq!((report.ce, report.ect0, report.ect1), (2, 1, 0));
    }

    #[test]
    fn ledbat_queueing_delay_is_above_the_base() {
        let mut d = LedbatDelay::default();
        assert_eq!(d.record(1_000, 51_000), 50_000);
        assert_eq!(d.record(2_000, 52_500), 50_500);
        assert_eq!(d.queueing_delay(), 500);
        // Clocks wrap at 32 bits.
        assert_eq!(d.record(u32::MAX - 10, 49_990), 50_001);
    }
}
