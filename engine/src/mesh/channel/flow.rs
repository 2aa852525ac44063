//! Flow control by credit, and the serial arithmetic of fragment numbers (RFC 1982 over `u32`).
//!
//! The receiver advertises a right edge, `ack + window`: the first fragment number it will not
//! accept. The sender keeps the furthest edge it has heard ([`Credit`]) and never sends a fragment
//! at or past it. The edge never moves back, so an old or reordered acknowledgement cannot take
//! credit away, and the receiver never has to accept more than it offered.

/// Fragments a sender may have outstanding before it hears from the receiver. Every receiver
/// offers at least this many.
pub const INITIAL_WINDOW: u32 = 16;

/// Whether `a` comes before `b` (serial arithmetic: within half the number space).
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// How far `to` is past `from`.
pub fn distance(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from)
}

/// The sender's view of the receiver's right edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    right_edge: u32,
}

impl Default for Credit {
    fn default() -> Self {
        Credit {
            right_edge: INITIAL_WINDOW,
        }
    }
}

impl Credit {
    /// Takes an advertisement `(ack, window)`; the edge only moves forward.
    pub fn update(&mut self, ack: u32, window: u32) {
        let edge = ack.wrapping_add(window);
        if before(self.right_edge, edge) {
            self.right_edge = edge;
        }
    }

    /// Whether fragment `seq` may be sent.
    pub fn allows(&self, seq: u32) -> bool {
        before(seq, self.right_edge)
    }

    /// The first fragment number not allowed.
    pub fn right_edge(&self) -> u32 {
        self.right_edge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_order_wraps() {
        assert!(before(1, 2));
        assert!(!before(2, 1));
        assert!(!before(5, 5));
        assert!(before(u32::MAX, 0), "0 follows u32::MAX");
        assert_eq!(distance(u32::MAX - 1, 3), 5);
    }

    #[test]
    fn the_edge_only_moves_forward() {
        let mut c = Credit::default();
        assert!(c.allows(15) && !c.allows(16));
        c.update(10, 100);
        assert_eq!(c.right_edge(), 110);
        c.update(5, 50); // an older advertisement
        assert_eq!(c.right_edge(), 110);
        c.update(u32::MAX - 2, 200); // wraps past zero, still ahead
        assert!(c.allows(150) && !c.allows((u32::MAX - 2).wrapping_add(200)));
    }
}
