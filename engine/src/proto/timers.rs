//! The per-peer timers of whitepaper §6, kept as an enum-indexed table of deadlines (as quinn-proto's
//! `timer.rs`) with hooks named after the events that arm them (as wireguard-go's `timers.go`).
//!
//! The table only stores deadlines; the endpoint reads the clock it is given, asks which timers expired
//! and acts on them.

use std::time::{Duration, Instant};

use super::constants::{KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT};

/// The timers a peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// Resend an unanswered initiation (REKEY_TIMEOUT + jitter), up to MAX_TIMER_HANDSHAKES times.
    RetransmitHandshake = 0,
    /// We received data and have sent nothing for KEEPALIVE_TIMEOUT: send a keepalive.
    SendKeepalive = 1,
    /// We sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: start a new handshake.
    NewHandshake = 2,
    /// No new session for 3 × REJECT_AFTER_TIME: erase every key.
    ZeroKeyMaterial = 3,
    /// The configured persistent keepalive interval passed without traffic we sent or received.
    PersistentKeepalive = 4,
}

const KINDS: [TimerKind; 5] = [
    TimerKind::RetransmitHandshake,
    TimerKind::SendKeepalive,
    TimerKind::NewHandshake,
    TimerKind::ZeroKeyMaterial,
    TimerKind::PersistentKeepalive,
];

/// One peer's deadlines and the little state the hooks keep.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; 5],
    /// Never read: the target of an out-of-range slot, which the enum makes impossible.
    spare: Option<Instant>,
    /// Retransmissions of the current handshake.
    pub(crate) handshake_attempts: u32,
    need_another_keepalive: bool,
    /// Whether the receive-side "rekey before reject" handshake was already started for this keypair.
    pub(crate) sent_last_minute_handshake: bool,
    persistent_keepalive: Option<Duration>,
}

impl Timers {
    pub(crate) fn new(persistent_keepalive: Option<Duration>) -> Self {
        Timers {
            persistent_keepalive,
            ..Default::default()
        }
    }

    /// Changes the persistent keepalive interval (a running peer was reconfigured).
    pub(crate) fn set_persistent_keepalive(&mut self, interval: Option<Duration>) {
        self.persistent_keepalive = interval;
        if interval.is_none() {
            self.clear(TimerKind::PersistentKeepalive);
        }
    }

    fn slot(&mut self, kind: TimerKind) -> &mut Option<Instant> {
        // The discriminants are 0..5, the table's indices; `get_mut` keeps the lint honest anyway.
        match self.deadlines.get_mut(kind as usize) {
            Some(slot) => slot,
            None => &mut self.spare,
        }
    }

    fn deadline(&self, kind: TimerKind) -> Option<Instant> {
        self.deadlines.get(kind as usize).copied().flatten()
    }

    fn set(&mut self, kind: TimerKind, at: Instant) {
        *self.slot(kind) = Some(at);
    }

    fn clear(&mut self, kind: TimerKind) {
        *self.slot(kind) = None;
    }

    pub(crate) fn is_pending(&self, kind: TimerKind) -> bool {
        self.deadline(kind).is_some()
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Takes the first timer due at `now`, clearing it.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<TimerKind> {
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| self.deadline(*k).is_some_and(|d| d <= now))?;
        self.clear(kind);
        Some(kind)
    }

    /// Call after sending a transport message with data (not a keepalive).
    pub(crate) fn data_sent(&mut self, now: Instant, jitter: Duration) {
        if !self.is_pending(TimerKind::NewHandshake) {
            self.set(
                TimerKind::NewHandshake,
                now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter,
            );
        }
    }

    /// Call after receiving an authenticated transport message with data.
    pub(crate) fn data_received(&mut self, now: Instant) {
        if self.is_pending(TimerKind::SendKeepalive) {
            self.need_another_keepalive = true;
        } else {
            self.set(TimerKind::SendKeepalive, now + KEEPALIVE_TIMEOUT);
        }
    }

    /// Call after sending any authenticated packet (transport, keepalive, handshake).
    pub(crate) fn any_authenticated_sent(&mut self) {
        self.clear(TimerKind::SendKeepalive);
    }

    /// Call after receiving any authenticated packet.
    pub(crate) fn any_authenticated_received(&mut self) {
        self.clear(TimerKind::NewHandshake);
    }

    /// Call after sending or receiving any authenticated packet: re-arms the persistent keepalive.
    pub(crate) fn any_authenticated_traversal(&mut self, now: Instant) {
        if let Some(interval) = self.persistent_keepalive {
            self.set(TimerKind::PersistentKeepalive, now + interval);
        }
    }

    /// Call after sending a handshake initiation.
    pub(crate) fn handshake_initiated(&mut self, now: Instant, jitter: Duration) {
        self.set(TimerKind::RetransmitHandshake, now + REKEY_TIMEOUT + jitter);
    }

    /// Call after a handshake completes (response consumed, or the responder's keypair confirmed).
    pub(crate) fn handshake_complete(&mut self) {
        self.clear(TimerKind::RetransmitHandshake);
        self.handshake_attempts = 0;
        self.sent_last_minute_handshake = false;
    }

    /// Call after a new session's keys are derived.
    pub(crate) fn session_derived(&mut self, now: Instant) {
        self.set(TimerKind::ZeroKeyMaterial, now + REJECT_AFTER_TIME * 3);
    }

    /// Call when the keepalive timer fired: re-arm it if data arrived while it was pending.
    pub(crate) fn keepalive_sent_by_timer(&mut self, now: Instant) {
        if self.need_another_keepalive {
            self.need_another_keepalive = false;
            self.set(TimerKind::SendKeepalive, now + KEEPALIVE_TIMEOUT);
        }
    }

    /// Call when a handshake is given up: keys are erased later unless a session forms.
    pub(crate) fn handshake_given_up(&mut self, now: Instant) {
        self.clear(TimerKind::SendKeepalive);
        if !self.is_pending(TimerKind::ZeroKeyMaterial) {
            self.set(TimerKind::ZeroKeyMaterial, now + REJECT_AFTER_TIME * 3);
        }
    }
}
