//! The sending half of a channel: messages cut into fragments, fragments in flight until
//! acknowledged (cumulatively or selectively), retransmitted on timeout or when three later ones were
//! acknowledged first, and never sent past the receiver's credit.
//!
//! Messages are moved in, not copied; a fragment is a range of its message, read again for a
//! retransmission. Memory is bounded by `send_buffer` bytes of queued messages.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::flow::{Credit, before, distance};
use super::wire::{FIN, FIRST, LAST, OPEN};
use super::{ChannelDrop, ChannelError};

const INITIAL_RTO: Duration = Duration::from_millis(200);
const MIN_RTO: Duration = Duration::from_millis(20);
const MAX_RTO: Duration = Duration::from_secs(2);
/// Fragments acknowledged above a hole before it is retransmitted without waiting for the timer.
const DUPLICATE_THRESHOLD: u32 = 3;

/// What a fragment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Open,
    Fin,
    Data {
        message: u64,
        offset: usize,
        len: usize,
        flags: u8,
        message_len: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    what: What,
    sent_at: Instant,
    transmissions: u32,
    acked: bool,
    queued: bool,
}

#[derive(Debug)]
struct Queued {
    bytes: Vec<u8>,
    /// Bytes cut into fragments so far.
    cut: usize,
    /// Fragments of it not yet acknowledged.
    unacked: u32,
    /// Whether its first fragment was cut (an empty message has exactly one).
    started: bool,
}

/// One fragment to put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Its number.
    pub seq: u32,
    /// `OPEN`, `FIN`, `FIRST`, `LAST` bits.
    pub flags: u8,
    /// The message length (`FIRST` only).
    pub message_len: u32,
    /// Message and byte range of the payload.
    payload: Option<(u64, usize, usize)>,
}

/// Round-trip time estimate and retransmission timeout (RFC 6298).
#[derive(Debug, Clone, Copy)]
struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
}

impl Rtt {
    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(INITIAL_RTO);
        self.rto = (srtt + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO);
    }

    fn restore(&mut self) {
        if let Some(srtt) = self.srtt {
            self.rto = (srtt + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO);
        }
    }

    fn back_off(&mut self) {
        self.rto = (self.rto * 2).min(MAX_RTO);
    }
}

/// Counters of the sending half.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Fragments sent for the first time.
    pub fragments_sent: u64,
    /// Fragments sent again.
    pub retransmitted: u64,
    /// Of those, before the timer (three later fragments were acknowledged).
    pub fast_retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
}

/// The sending half.
#[derive(Debug)]
pub struct Sender {
    max_fragment: usize,
    max_message: usize,
    send_buffer: usize,
    window_cap: u32,
    credit: Credit,
    /// Oldest fragment not cumulatively acknowledged.
    base: u32,
    /// Next new fragment number.
    next_seq: u32,
    in_flight: VecDeque<InFlight>,
    /// Messages not yet fully acknowledged; the front one is message number `first_message`.
    messages: VecDeque<Queued>,
    first_message: u64,
    queued_bytes: usize,
    retransmit: VecDeque<u32>,
    open_pending: bool,
    fin_requested: bool,
    fin_sent: bool,
    rtt: Rtt,
    probe_at: Option<Instant>,
    stats: SenderStats,
}

impl Sender {
    /// A sender of fragments up to `max_fragment` bytes, messages up to `max_message`, at most
    /// `send_buffer` bytes queued and `window_cap` fragments in flight; `open` sends the `OPEN`
    /// marker first (the side that opens the channel).
    pub fn new(
        max_fragment: usize,
        max_message: usize,
        send_buffer: usize,
        window_cap: u32,
        open: bool,
    ) -> Sender {
        Sender {
            max_fragment,
            max_message,
            send_buffer,
            window_cap: window_cap.max(1),
            credit: Credit::default(),
            base: 0,
            next_seq: 0,
            in_flight: VecDeque::new(),
            messages: VecDeque::new(),
            first_message: 0,
            queued_bytes: 0,
            retransmit: VecDeque::new(),
            open_pending: open,
            fin_requested: false,
            fin_sent: false,
            rtt: Rtt {
                srtt: None,
                rttvar: Duration::ZERO,
                rto: INITIAL_RTO,
            },
            probe_at: None,
            stats: SenderStats::default(),
        }
    }

    /// Queues a message.
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLarge`] past `max_message`, [`ChannelError::WouldBlock`] when the
    /// send buffer cannot take it now, [`ChannelError::Closed`] after [`finish`](Self::finish).
    pub fn push(&mut self, message: Vec<u8>) -> Result<(), ChannelError> {
        self.check(message.len())?;
        self.queued_bytes += message.len();
        self.messages.push_back(Queued {
            bytes: message,
            cut: 0,
            unacked: 0,
            started: false,
        });
        Ok(())
    }

    /// Whether a message of `len` bytes would be taken now, and if not, why.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn check(&self, len: usize) -> Result<(), ChannelError> {
        if len > self.max_message {
            return Err(ChannelError::MessageTooLarge {
                len,
                max: self.max_message,
            });
        }
        if self.fin_requested {
            return Err(ChannelError::Closed);
        }
        if self.queued_bytes + len > self.send_buffer {
            return Err(ChannelError::WouldBlock);
        }
        Ok(())
    }

    /// Whether a message of `len` bytes would be taken now.
    pub fn has_room(&self, len: usize) -> bool {
        self.check(len).is_ok()
    }

    /// Sends `FIN` after every queued message.
    pub fn finish(&mut self) {
        self.fin_requested = true;
    }

    /// Whether everything queued, `FIN` included when asked for, has been acknowledged.
    pub fn all_acked(&self) -> bool {
        self.messages.is_empty() && self.in_flight.is_empty() && !self.open_pending
    }

    /// Whether `FIN` went out and was acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.fin_sent && self.all_acked()
    }

    /// The furthest credit heard.
    pub fn credit(&self) -> Credit {
        self.credit
    }

    /// Counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Checks an acknowledgement without touching any state.
    ///
    /// # Errors
    /// [`ChannelDrop::ForgedAck`] when it acknowledges a fragment never sent.
    pub fn check_ack(&self, ack: u32) -> Result<(), ChannelDrop> {
        if before(self.next_seq, ack) || before(ack, self.base.wrapping_sub(1 << 30)) {
            return Err(ChannelDrop::ForgedAck);
        }
        Ok(())
    }

    /// Takes a round-trip sample: the time since the sender sent the packet whose timestamp the
    /// receiver echoed (RFC 7323 style, so retransmissions and packets that waited behind a hole
    /// measure the path, not the wait).
    pub fn on_rtt_sample(&mut self, rtt: Duration) {
        self.rtt.sample(rtt);
    }

    /// Takes an acknowledgement that passed [`check_ack`](Self::check_ack).
    pub fn on_ack(&mut self, now: Instant, ack: u32, sack: u64, window: u32) {
        self.credit.update(ack, window);
        if before(self.base, ack) {
            // Progress: the path works, so a backed-off timer returns to its estimate.
            self.rtt.restore();
        }
        while before(self.base, ack) {
            if let Some(f) = self.in_flight.pop_front() {
                self.acknowledge(f);
            }
            self.base = self.base.wrapping_add(1);
        }
        let mut highest_sacked = None;
        for i in 0..64u32 {
            if sack & (1 << i) == 0 {
                continue;
            }
            let seq = ack.wrapping_add(1 + i);
            if !before(seq, self.next_seq) {
                break;
            }
            if before(seq, self.base) {
                // An older acknowledgement than one already taken: nothing new below the base.
                continue;
            }
            let at = distance(self.base, seq) as usize;
            if let Some(f) = self.in_flight.get_mut(at)
                && !f.acked
            {
                let fragment = *f;
                f.acked = true;
                self.acknowledge(InFlight {
                    acked: false,
                    ..fragment
                });
            }
            highest_sacked = Some(seq);
        }
        if let Some(high) = highest_sacked {
            self.fast_retransmit(now, high);
        }
        self.pop_acked_messages();
        if self.credit.allows(self.next_seq) {
            self.probe_at = None;
        }
    }

    /// Marks one fragment delivered: its message's count down.
    fn acknowledge(&mut self, f: InFlight) {
        if f.acked {
            return;
        }
        if let What::Data { message, .. } = f.what
            && let Some(q) = self
                .messages
                .get_mut(message.wrapping_sub(self.first_message) as usize)
        {
            q.unacked = q.unacked.saturating_sub(1);
        }
    }

    /// Retransmits holes with at least [`DUPLICATE_THRESHOLD`] acknowledged fragments above them,
    /// at most once per round trip each.
    fn fast_retransmit(&mut self, now: Instant, highest_sacked: u32) {
        let srtt = self.rtt.srtt.unwrap_or(INITIAL_RTO);
        let mut above = 0u32;
        let end = (distance(self.base, highest_sacked) as usize).min(self.in_flight.len());
        for at in (0..=end).rev() {
            let Some(f) = self.in_flight.get_mut(at) else {
                continue;
            };
            if f.acked {
                above += 1;
                continue;
            }
            if above >= DUPLICATE_THRESHOLD
                && !f.queued
                && now.saturating_duration_since(f.sent_at) >= srtt
            {
                f.queued = true;
                self.retransmit.push_back(self.base.wrapping_add(at as u32));
                self.stats.fast_retransmits += 1;
            }
        }
    }

    fn pop_acked_messages(&mut self) {
        while let Some(front) = self.messages.front() {
            if !front.started || front.cut < front.bytes.len() || front.unacked > 0 {
                break;
            }
            self.queued_bytes -= front.bytes.len();
            self.messages.pop_front();
            self.first_message += 1;
        }
    }

    /// The next fragment to send at `now`, if any may go: a retransmission, else a new fragment
    /// within both the credit and the window cap.
    pub fn next_fragment(&mut self, now: Instant) -> Option<Fragment> {
        while let Some(seq) = self.retransmit.pop_front() {
            let at = distance(self.base, seq) as usize;
            let Some(f) = self.in_flight.get_mut(at) else {
                continue;
            };
            f.queued = false;
            if f.acked {
                continue;
            }
            f.sent_at = now;
            f.transmissions += 1;
            self.stats.retransmitted += 1;
            let what = f.what;
            return Some(fragment(seq, what));
        }
        if !self.credit.allows(self.next_seq) || self.in_flight.len() as u32 >= self.window_cap {
            return None;
        }
        let max_fragment = self.max_fragment;
        let what = if self.open_pending {
            self.open_pending = false;
            What::Open
        } else if let Some((number, q)) = self.unsent_message() {
            let offset = q.cut;
            let len = (q.bytes.len() - offset).min(max_fragment);
            let mut flags = 0;
            if offset == 0 {
                flags |= FIRST;
            }
            if offset + len == q.bytes.len() {
                flags |= LAST;
            }
            let message_len = if offset == 0 { q.bytes.len() as u32 } else { 0 };
            q.cut += len;
            q.unacked += 1;
            q.started = true;
            What::Data {
                message: number,
                offset,
                len,
                flags,
                message_len,
            }
        } else if self.fin_requested && !self.fin_sent {
            self.fin_sent = true;
            What::Fin
        } else {
            return None;
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight.push_back(InFlight {
            what,
            sent_at: now,
            transmissions: 1,
            acked: false,
            queued: false,
        });
        self.stats.fragments_sent += 1;
        Some(fragment(seq, what))
    }

    /// The first message with bytes (or, if empty, its single fragment) not yet cut.
    fn unsent_message(&mut self) -> Option<(u64, &mut Queued)> {
        let first = self.first_message;
        self.messages
            .iter_mut()
            .enumerate()
            .find(|(_, q)| !q.started || q.cut < q.bytes.len())
            .map(|(i, q)| (first + i as u64, q))
    }

    /// The payload bytes of `fragment`.
    pub fn payload(&self, fragment: &Fragment) -> &[u8] {
        let Some((message, offset, len)) = fragment.payload else {
            return &[];
        };
        self.messages
            .get(message.wrapping_sub(self.first_message) as usize)
            .and_then(|q| q.bytes.get(offset..offset + len))
            .unwrap_or_default()
    }

    /// When the retransmission timer or the zero-window probe fires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let oldest = self
            .in_flight
            .iter()
            .take(65)
            .filter(|f| !f.acked && !f.queued)
            .map(|f| f.sent_at)
            .min()
            .map(|t| t + self.rtt.rto);
        match (oldest, self.probe_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the timers at `now`; returns true when a zero-window probe should go out.
    pub fn on_timeout(&mut self, now: Instant) -> bool {
        let rto = self.rtt.rto;
        // The timer resends what it has expired within the range the receiver's selective
        // acknowledgement can show (64 past the oldest). Fragments further on may sit in the
        // receiver's ring without being acknowledged yet; they wait until the acknowledgement
        // reaches them, and fast retransmission repairs real holes there.
        let mut expired = false;
        let visible = 65.min(self.in_flight.len());
        for (at, f) in self.in_flight.iter_mut().enumerate().take(visible) {
            if !f.acked && !f.queued && now.saturating_duration_since(f.sent_at) >= rto {
                f.queued = true;
                self.retransmit.push_back(self.base.wrapping_add(at as u32));
                expired = true;
            }
        }
        if expired {
            self.stats.timeouts += 1;
            self.rtt.back_off();
        }
        let blocked = self.in_flight.is_empty()
            && !self.credit.allows(self.next_seq)
            && (self.unsent_len() > 0 || self.fin_requested && !self.fin_sent);
        match self.probe_at {
            Some(t) if blocked && now >= t => {
                self.rtt.back_off();
                self.probe_at = Some(now + self.rtt.rto);
                true
            }
            None if blocked => {
                self.probe_at = Some(now + self.rtt.rto);
                false
            }
            _ => {
                if !blocked {
                    self.probe_at = None;
                }
                false
            }
        }
    }

    fn unsent_len(&self) -> usize {
        self.messages
            .iter()
            .map(|q| q.bytes.len() - q.cut + usize::from(!q.started))
            .sum()
    }

    /// A one-line summary of the state, for diagnostics.
    pub fn describe(&self) -> String {
        let unacked = self.in_flight.iter().filter(|f| !f.acked).count();
        let queued = self.in_flight.iter().filter(|f| f.queued).count();
        format!(
            "base {} next {} edge {} in flight {} unacked {unacked} queued {queued} retransmit {:?} rto {:?} srtt {:?} probe {:?} messages {}",
            self.base,
            self.next_seq,
            self.credit.right_edge(),
            self.in_flight.len(),
            self.retransmit.iter().take(8).collect::<Vec<_>>(),
            self.rtt.rto,
            self.rtt.srtt,
            self.probe_at.is_some(),
            self.messages.len()
        )
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rtt.rto
    }
}

fn fragment(seq: u32, what: What) -> Fragment {
    match what {
        What::Open => Fragment {
            seq,
            flags: OPEN,
            message_len: 0,
            payload: None,
        },
        What::Fin => Fragment {
            seq,
            flags: FIN,
            message_len: 0,
            payload: None,
        },
        What::Data {
            message,
            offset,
            len,
            flags,
            message_len,
        } => Fragment {
            seq,
            flags,
            message_len,
            payload: Some((message, offset, len)),
        },
    }
}
