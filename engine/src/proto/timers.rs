//! The per-peer timers of whitepaper §6.
//!
//! Two kinds of deadline:
//! - **Stored** ones the control plane arms itself: handshake retransmission and key erasure.
//! - **Derived** ones, computed from the peer's [`Activity`]: the instants of its first unanswered data
//!   sent and received and of its latest authenticated traffic. The data path only records those
//!   instants (no timer is touched per packet), which is what lets a data shard own the packets while
//!   the control shard owns the timers: it reads the instants and derives the passive keepalive, the
//!   "no answer, new handshake" deadline and the persistent keepalive from them.
//!
//! The events match wireguard-go's `timers.go` hooks: data sent arms "new handshake" unless armed,
//! anything received authenticated disarms it; data received arms "send keepalive" unless armed, anything
//! sent authenticated disarms it; any authenticated traffic re-arms the persistent keepalive.

use std::time::{Duration, Instant};

use super::constants::ProtocolTimes;

/// The timers a peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// Resend an unanswered initiation (REKEY_TIMEOUT + jitter), up to MAX_TIMER_HANDSHAKES times.
    RetransmitHandshake,
    /// We received data and have sent nothing for KEEPALIVE_TIMEOUT: send a keepalive.
    SendKeepalive,
    /// We sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: start a new handshake.
    NewHandshake,
    /// No new session for 3 × REJECT_AFTER_TIME: erase every key.
    ZeroKeyMaterial,
    /// The configured persistent keepalive interval passed without authenticated traffic.
    PersistentKeepalive,
}

const KINDS: [TimerKind; 5] = [
    TimerKind::RetransmitHandshake,
    TimerKind::SendKeepalive,
    TimerKind::NewHandshake,
    TimerKind::ZeroKeyMaterial,
    TimerKind::PersistentKeepalive,
];

/// What the data path records about a peer's traffic: three instants, no timers (a snapshot of
/// [`Published`](super::published::Published)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Activity {
    /// First data sent since the peer last said anything authenticated.
    pub(crate) unanswered_sent: Option<Instant>,
    /// First data received since we last sent anything authenticated.
    pub(crate) unanswered_received: Option<Instant>,
    /// Latest authenticated packet either way.
    pub(crate) last_traversal: Option<Instant>,
}

#[cfg(test)]
impl Activity {
    /// We sent a transport message with data.
    pub(crate) fn data_sent(&mut self, now: Instant) {
        self.unanswered_sent.get_or_insert(now);
        self.authenticated_sent(now);
    }

    /// We sent a keepalive or a handshake message.
    pub(crate) fn authenticated_sent(&mut self, now: Instant) {
        self.unanswered_received = None;
        self.last_traversal = Some(now);
    }

    /// We received an authenticated transport message with data.
    pub(crate) fn data_received(&mut self, now: Instant) {
        self.unanswered_received.get_or_insert(now);
        self.authenticated_received(now);
    }

    /// We received an authenticated keepalive or handshake message.
    pub(crate) fn authenticated_received(&mut self, now: Instant) {
        self.unanswered_sent = None;
        self.last_traversal = Some(now);
    }
}

/// One peer's deadlines, the activity they derive from, and the little state the hooks keep.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    retransmit: Option<Instant>,
    zero_keys: Option<Instant>,
    /// Derived deadlines already acted on, by the activity instant they came from, so a deadline whose
    /// action changed nothing (a rate-limited handshake, say) does not fire again.
    fired_keepalive: Option<Instant>,
    fired_new_handshake: Option<Instant>,
    fired_persistent: Option<Instant>,
    /// Jitter of the next "new handshake" deadline, drawn when the previous one fired.
    new_handshake_jitter: Duration,
    /// Retransmissions of the current handshake.
    pub(crate) handshake_attempts: u32,
    /// Whether the receive-side "rekey before reject" handshake was already started for this keypair.
    pub(crate) sent_last_minute_handshake: bool,
    persistent_keepalive: Option<Duration>,
    times: ProtocolTimes,
}

impl Timers {
    pub(crate) fn new(persistent_keepalive: Option<Duration>, times: ProtocolTimes) -> Self {
        Timers {
            persistent_keepalive,
            times,
            ..Default::default()
        }
    }

    /// Changes the persistent keepalive interval (a running peer was reconfigured).
    pub(crate) fn set_persistent_keepalive(&mut self, interval: Option<Duration>) {
        self.persistent_keepalive = interval;
    }

    fn deadline(&self, kind: TimerKind, a: &Activity) -> Option<Instant> {
        match kind {
            TimerKind::RetransmitHandshake => self.retransmit,
            TimerKind::ZeroKeyMaterial => self.zero_keys,
            TimerKind::SendKeepalive => a
                .unanswered_received
                .filter(|t| self.fired_keepalive != Some(*t))
                .map(|t| t + self.times.keepalive_timeout),
            TimerKind::NewHandshake => a
                .unanswered_sent
                .filter(|t| self.fired_new_handshake != Some(*t))
                .map(|t| {
                    t + self.times.keepalive_timeout
                        + self.times.rekey_timeout
                        + self.new_handshake_jitter
                }),
            TimerKind::PersistentKeepalive => {
                let interval = self.persistent_keepalive?;
                a.last_traversal
                    .filter(|t| self.fired_persistent != Some(*t))
                    .map(|t| t + interval)
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn is_pending(&self, kind: TimerKind, a: &Activity) -> bool {
        self.deadline(kind, a).is_some()
    }

    /// The earliest deadline, given the peer's activity.
    pub(crate) fn next_deadline(&self, a: &Activity) -> Option<Instant> {
        KINDS.iter().filter_map(|k| self.deadline(*k, a)).min()
    }

    /// Takes the first timer due at `now`, disarming it. `jitter` becomes the next "new handshake"
    /// jitter when that timer is the one taken.
    pub(crate) fn take_expired(
        &mut self,
        now: Instant,
        jitter: Duration,
        a: &Activity,
    ) -> Option<TimerKind> {
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| self.deadline(*k, a).is_some_and(|d| d <= now))?;
        match kind {
            TimerKind::RetransmitHandshake => self.retransmit = None,
            TimerKind::ZeroKeyMaterial => self.zero_keys = None,
            TimerKind::SendKeepalive => self.fired_keepalive = a.unanswered_received,
            TimerKind::NewHandshake => {
                self.fired_new_handshake = a.unanswered_sent;
                self.new_handshake_jitter = jitter;
            }
            TimerKind::PersistentKeepalive => self.fired_persistent = a.last_traversal,
        }
        Some(kind)
    }

    /// Call after sending a handshake initiation.
    pub(crate) fn handshake_initiated(&mut self, now: Instant, jitter: Duration) {
        self.retransmit = Some(now + self.times.rekey_timeout + jitter);
    }

    /// Call after a handshake completes (response consumed, or the responder's keypair confirmed).
    pub(crate) fn handshake_complete(&mut self) {
        self.retransmit = None;
        self.handshake_attempts = 0;
        self.sent_last_minute_handshake = false;
    }

    /// Call after a new session's keys are derived.
    pub(crate) fn session_derived(&mut self, now: Instant) {
        self.zero_keys = Some(now + self.times.reject_after_time * 3);
    }

    /// Call when a handshake is given up: no keepalive for it, and keys are erased later unless a
    /// session forms.
    pub(crate) fn handshake_given_up(&mut self, now: Instant, a: &Activity) {
        self.fired_keepalive = a.unanswered_received;
        if self.zero_keys.is_none() {
            self.zero_keys = Some(now + self.times.reject_after_time * 3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_deadlines_follow_activity() {
        let t0 = Instant::now();
        let mut t = Timers::new(Some(Duration::from_secs(25)), ProtocolTimes::default());
        let mut a = Activity::default();
        assert_eq!(t.next_deadline(&a), None);
        a.data_sent(t0);
        a.data_sent(t0 + Duration::from_secs(3));
        // The first unanswered send counts; later sends do not push it back.
        assert_eq!(
            t.deadline(TimerKind::NewHandshake, &a),
            Some(t0 + Duration::from_secs(15))
        );
        assert_eq!(
            t.deadline(TimerKind::PersistentKeepalive, &a),
            Some(t0 + Duration::from_secs(28))
        );
        a.authenticated_received(t0 + Duration::from_secs(4));
        assert_eq!(
            t.deadline(TimerKind::NewHandshake, &a),
            None,
            "an answer disarms it"
        );
        a.data_received(t0 + Duration::from_secs(5));
        assert_eq!(
            t.deadline(TimerKind::SendKeepalive, &a),
            Some(t0 + Duration::from_secs(15))
        );
        assert_eq!(
            t.take_expired(t0 + Duration::from_secs(15), Duration::ZERO, &a),
            Some(TimerKind::SendKeepalive)
        );
        assert!(
            !t.is_pending(TimerKind::SendKeepalive, &a),
            "fired once, not again for the same data"
        );
        a.authenticated_sent(t0 + Duration::from_secs(15));
        a.data_received(t0 + Duration::from_secs(16));
        assert_eq!(
            t.deadline(TimerKind::SendKeepalive, &a),
            Some(t0 + Duration::from_secs(26)),
            "new data re-arms it"
        );
    }
}
