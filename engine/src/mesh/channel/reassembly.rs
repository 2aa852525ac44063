//! The receiving half of a channel: a bounded ring of out-of-order fragments, message reassembly
//! within a memory budget, and the acknowledgement (cumulative, selective, credit) it sends back.
//!
//! Memory is bounded twice. The ring holds at most `window` fragments of at most `max_fragment`
//! bytes, allocated once when the channel is made and charged to the peer's [`Budget`]. A message is
//! allocated at its first in-order fragment, at the length that fragment declares, only if that
//! length is within `max_message` and the budget can pay for it; otherwise reassembly waits (the
//! application reading frees budget) and, since the right edge only advances as fragments leave
//! the ring, the sender runs out of credit. Nothing else grows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::flow::{before, distance};
use super::wire::{FIN, FIRST, Header, LAST, OPEN};
use super::{ChannelDrop, Violation};

/// How long an in-order fragment may wait for its acknowledgement to be sent.
pub const ACK_DELAY: Duration = Duration::from_millis(2);
/// In-order fragments acknowledged together at most.
const ACK_EVERY: u32 = 2;

/// Reassembly memory of one peer: every channel with it charges here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget { limit, used: 0 }
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Charges `bytes` if they fit.
    pub fn try_charge(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    /// Gives `bytes` back.
    pub fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    present: bool,
    flags: u8,
    message_len: u32,
    len: usize,
}

/// When the next acknowledgement is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckDue {
    None,
    At(Instant),
    Now,
}

/// What one data fragment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The `OPEN` marker was reached in order.
    pub opened: bool,
    /// The `FIN` marker was reached in order.
    pub finished: bool,
    /// Messages completed.
    pub completed: usize,
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver {
    next: u32,
    slots: Vec<Slot>,
    storage: Vec<u8>,
    max_fragment: usize,
    max_message: usize,
    assembling: Option<(Vec<u8>, usize)>,
    ready: VecDeque<Vec<u8>>,
    ready_bytes: usize,
    in_order_unacked: u32,
    ack_due: AckDue,
    finished: bool,
    /// Bytes of the ring, charged at creation and given back by [`Receiver::release_all`].
    ring_bytes: usize,
}

impl Receiver {
    /// A receiver with a ring of `window` fragments of `max_fragment` bytes, charged to `budget`;
    /// `None` if the budget cannot pay for the ring.
    pub fn new(
        window: u32,
        max_fragment: usize,
        max_message: usize,
        budget: &mut Budget,
    ) -> Option<Receiver> {
        let slots = window as usize;
        let ring_bytes = slots.checked_mul(max_fragment)?;
        if !budget.try_charge(ring_bytes) {
            return None;
        }
        Some(Receiver {
            next: 0,
            slots: vec![Slot::default(); slots],
            storage: vec![0; ring_bytes],
            max_fragment,
            max_message,
            assembling: None,
            ready: VecDeque::new(),
            ready_bytes: 0,
            in_order_unacked: 0,
            ack_due: AckDue::None,
            finished: false,
            ring_bytes,
        })
    }

    fn window(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Checks a data fragment without touching any state.
    ///
    /// # Errors
    /// [`ChannelDrop::Duplicate`] for a fragment already received, [`ChannelDrop::OutOfWindow`] for
    /// one past the offered edge, [`ChannelDrop::Oversized`] for a payload longer than a fragment.
    pub fn check(&self, header: &Header, payload: &[u8]) -> Result<(), ChannelDrop> {
        if payload.len() > self.max_fragment {
            return Err(ChannelDrop::Oversized);
        }
        if before(header.seq, self.next) {
            return Err(ChannelDrop::Duplicate);
        }
        let offset = distance(self.next, header.seq);
        if offset >= self.window() {
            return Err(ChannelDrop::OutOfWindow);
        }
        if self.slot(header.seq).is_some_and(|s| s.present) {
            return Err(ChannelDrop::Duplicate);
        }
        Ok(())
    }

    fn slot(&self, seq: u32) -> Option<&Slot> {
        self.slots.get(seq as usize % self.slots.len().max(1))
    }

    /// Asks for an acknowledgement now (after a duplicate or out-of-window fragment, a probe, or
    /// when reading reopened the window).
    pub fn ack_now(&mut self) {
        self.ack_due = AckDue::Now;
    }

    /// Stores a fragment that passed [`check`](Self::check) and moves every in-order fragment
    /// into reassembly.
    ///
    /// # Errors
    /// A [`Violation`] of the message framing: the channel must be reset.
    pub fn accept(
        &mut self,
        now: Instant,
        header: &Header,
        payload: &[u8],
        budget: &mut Budget,
    ) -> Result<Progress, Violation> {
        let n = self.slots.len().max(1);
        let index = header.seq as usize % n;
        let at = index * self.max_fragment;
        if let Some(dst) = self.storage.get_mut(at..at + payload.len()) {
            dst.copy_from_slice(payload);
        }
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Slot {
                present: true,
                flags: header.flags,
                message_len: header.message_len,
                len: payload.len(),
            };
        }
        if header.seq == self.next {
            self.in_order_unacked += 1;
            if self.in_order_unacked >= ACK_EVERY {
                self.ack_due = AckDue::Now;
            } else if self.ack_due == AckDue::None {
                self.ack_due = AckDue::At(now + ACK_DELAY);
            }
        } else {
            // A gap: tell the sender at once, so it can retransmit what is missing.
            self.ack_due = AckDue::Now;
        }
        self.drain(budget)
    }

    /// Moves in-order fragments from the ring into messages while the budget allows.
    fn drain(&mut self, budget: &mut Budget) -> Result<Progress, Violation> {
        let mut progress = Progress::default();
        let n = self.slots.len().max(1);
        loop {
            let index = self.next as usize % n;
            let Some(slot) = self.slots.get(index).copied().filter(|s| s.present) else {
                break;
            };
            let at = index * self.max_fragment;
            let payload = self.storage.get(at..at + slot.len).unwrap_or_default();
            if slot.flags & OPEN != 0 {
                progress.opened = true;
            } else if slot.flags & FIN != 0 {
                if self.assembling.is_some() {
                    return Err(Violation::FinInsideMessage);
                }
                self.finished = true;
                progress.finished = true;
            } else {
                if slot.flags & FIRST != 0 {
                    if self.assembling.is_some() {
                        return Err(Violation::FirstInsideMessage);
                    }
                    let len = slot.message_len as usize;
                    if len > self.max_message {
                        return Err(Violation::MessageTooLarge);
                    }
                    if !budget.try_charge(len) {
                        // Wait for the application to read; the fragment stays in the ring.
                        break;
                    }
                    self.assembling = Some((Vec::with_capacity(len), len));
                }
                let Some((message, expected)) = self.assembling.as_mut() else {
                    return Err(Violation::FragmentOutsideMessage);
                };
                if message.len() + payload.len() > *expected {
                    return Err(Violation::LengthMismatch);
                }
                message.extend_from_slice(payload);
                if slot.flags & LAST != 0 {
                    if message.len() != *expected {
                        return Err(Violation::LengthMismatch);
                    }
                    if let Some((message, len)) = self.assembling.take() {
                        self.ready_bytes += len;
                        self.ready.push_back(message);
                        progress.completed += 1;
                    }
                }
            }
            if let Some(s) = self.slots.get_mut(index) {
                s.present = false;
            }
            self.next = self.next.wrapping_add(1);
        }
        Ok(progress)
    }

    /// The next complete message, releasing its budget; reading may let stalled fragments through.
    ///
    /// # Errors
    /// A [`Violation`] found among the fragments the freed budget let through.
    pub fn read(&mut self, budget: &mut Budget) -> Result<Option<Vec<u8>>, Violation> {
        let Some(message) = self.ready.pop_front() else {
            return Ok(None);
        };
        let len = message.len().min(self.ready_bytes);
        self.ready_bytes -= len;
        budget.release(len);
        let before_next = self.next;
        self.drain(budget)?;
        if self.next != before_next || self.ready.is_empty() {
            // The window moved or the reader caught up: the sender may be waiting for credit.
            self.ack_due = AckDue::Now;
        }
        Ok(Some(message))
    }

    /// Complete messages waiting to be read.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// Whether the `FIN` marker has been reached.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// `(ack, sack, window)` for the next header this side sends.
    pub fn ack_fields(&self) -> (u32, u64, u32) {
        let mut sack = 0u64;
        for i in 0..64u32 {
            let seq = self.next.wrapping_add(1 + i);
            if distance(self.next, seq) < self.window() && self.slot(seq).is_some_and(|s| s.present)
            {
                sack |= 1 << i;
            }
        }
        (self.next, sack, self.window())
    }

    /// Records that an acknowledgement went out.
    pub fn acked(&mut self) {
        self.in_order_unacked = 0;
        self.ack_due = AckDue::None;
    }

    /// Whether an acknowledgement is owed at `now`.
    pub fn ack_owed(&self, now: Instant) -> bool {
        match self.ack_due {
            AckDue::None => false,
            AckDue::Now => true,
            AckDue::At(t) => now >= t,
        }
    }

    /// When a delayed acknowledgement falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.ack_due {
            AckDue::At(t) => Some(t),
            _ => None,
        }
    }

    /// Bytes this receiver holds against the budget (ring, message being built, unread messages).
    pub fn charged(&self) -> usize {
        self.ring_bytes + self.ready_bytes + self.assembling.as_ref().map_or(0, |(_, len)| *len)
    }

    /// Gives everything back to the budget (the channel is gone).
    pub fn release_all(&mut self, budget: &mut Budget) {
        budget.release(self.charged());
        self.ready.clear();
        self.ready_bytes = 0;
        self.assembling = None;
        self.ring_bytes = 0;
        self.storage = Vec::new();
        self.slots.iter_mut().for_each(|s| s.present = false);
    }
}
