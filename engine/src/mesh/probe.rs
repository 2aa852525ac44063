//! Paths between members that talk through a relay: probing the candidates of the far member,
//! promotion to a direct path once an authenticated probe succeeds over it, and fallback to the relay
//! when the direct path stops answering. Sans-I/O: messages, time and session facts in; probes to send,
//! endpoint changes and events out.
//!
//! A probe is a [`ProbeMessage`] inside the two members' own end-to-end session, sent to one candidate
//! address instead of the session's endpoint; the member answers to the address the probe came from.
//! Only the session can produce either, so an answer that arrives from a socket address (not through a
//! relay) proves that address works both ways. Then:
//!
//! - **Promotion.** The prober sets the member's endpoint to the address the answer came from (the
//!   member's own data path has already roamed to us when our probe reached it directly). A probe of
//!   the member's that reaches us directly promotes the same way: it too is an authenticated probe
//!   that succeeded over that path.
//! - **Staying direct.** Every probe interval (1 s by default) one probe goes to the direct endpoint;
//!   an answer, or a probe from the member arriving directly, keeps the path alive.
//! - **Fallback.** When nothing has kept it alive for `misses` intervals (3), the member's endpoint goes
//!   back to the relay path, and probing of the candidates starts again.
//! - **Relay failover.** The relays a member can be reached through ([`PathProber::offer_relay`]: the
//!   neighbours the node reaches directly) are probed too, one probe through each per interval, and an
//!   answer that comes back through the same relay proves that relay path both ways. When the relay in
//!   use has not carried an answer for `misses` intervals, the member moves to the relay that
//!   answered most recently within that time ([`Event::RelayLost`], then [`Event::RelayChosen`]); with
//!   none, it stays and the probing goes on. A relay the node has never probed is given `misses`
//!   intervals from when it was offered before it counts as lost.
//!
//! A probe that has to wait for a handshake goes through the relay, and its answer comes back through
//! it: that proves nothing and is ignored. Outstanding probes, candidates and members are bounded.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pnet_mesh_crypto::PublicKey;

use crate::config::ConfigError;
use crate::event::Event;
use crate::mesh::candidate::{CandidateSource, Candidates};
use crate::mesh::wire::relay::ProbeMessage;
use crate::proto::path::{RelayPath, is_relayed};

/// Probes waiting for an answer per member at most; the oldest makes room.
const MAX_OUTSTANDING: usize = 16;
/// Our own reflexive endpoints kept (what members saw our probes come from).
const MAX_OWN_REFLEXIVE: usize = 4;
/// Outputs waiting at most; more are dropped and counted.
const MAX_QUEUED: usize = 1024;
/// Relays kept per member at most (the one in use among them); later offers are ignored.
pub const MAX_RELAYS: usize = 4;

/// Settings of path probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// How often each member's candidates, or its direct endpoint, are probed (default 1 s).
    pub interval: Duration,
    /// Intervals without an answer after which a direct path falls back to the relay (default 3).
    pub misses: u32,
    /// Candidates probed per member per interval at most (default 4).
    pub candidates_per_interval: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval: Duration::from_secs(1),
            misses: 3,
            candidates_per_interval: 4,
        }
    }
}

impl ProbeConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < Duration::from_millis(10) {
            return Err(ConfigError::invalid(
                "probe.interval",
                format!("{:?}", self.interval),
                "must be at least 10 ms",
            ));
        }
        if self.misses == 0 {
            return Err(ConfigError::invalid(
                "probe.misses",
                0,
                "must be at least 1",
            ));
        }
        if self.candidates_per_interval == 0 {
            return Err(ConfigError::invalid(
                "probe.candidates_per_interval",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A probe or an answer to send to `member` (inside its session), at `to` instead of its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTransmit {
    /// The member.
    pub member: PublicKey,
    /// The outer destination.
    pub to: SocketAddr,
    /// The message.
    pub message: ProbeMessage,
}

/// A change the node must make to a member's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAction {
    /// Reach `member` at `endpoint` (promoted).
    UseDirect {
        /// The member.
        member: PublicKey,
        /// The socket address that answered.
        endpoint: SocketAddr,
    },
    /// Reach `member` through `relay` again (fallback).
    UseRelay {
        /// The member.
        member: PublicKey,
        /// The relay member.
        relay: PublicKey,
    },
}

/// Counters of the prober.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeStats {
    /// Members whose path is tracked.
    pub members: usize,
    /// Of those, reached directly now.
    pub direct: usize,
    /// Probes sent.
    pub probes_sent: u64,
    /// Answers that proved a direct path.
    pub answers: u64,
    /// Answers or probes that came through a relay, or answered nothing outstanding.
    pub ignored: u64,
    /// Promotions to a direct path.
    pub promotions: u64,
    /// Fallbacks to the relay.
    pub fallbacks: u64,
    /// Answers that came back through the relay they were sent through (the relay path works).
    pub relay_answers: u64,
    /// Moves to another relay after the one in use stopped answering.
    pub relay_failovers: u64,
    /// Outputs lost to a full queue.
    pub outputs_dropped: u64,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    nonce: u64,
    /// Where the probe went: a socket address, or a relay path.
    to: SocketAddr,
    /// When it went.
    sent: Instant,
}

/// A relay a member may be reached through.
#[derive(Debug, Clone, Copy)]
struct RelayOption {
    key: PublicKey,
    /// The relay path through it, as the node addresses it.
    path: SocketAddr,
    /// When the last probe through it that was answered went out (the path worked then), or,
    /// before any answer, when it was offered. Dating the proof by the probe rather than the answer
    /// makes a relay lost exactly `misses` intervals after the last probe it carried.
    alive: Instant,
    /// Whether any probe through it was answered.
    proven: bool,
}

impl RelayOption {
    fn is_alive(&self, now: Instant, dead_after: Duration) -> bool {
        now.saturating_duration_since(self.alive) < dead_after
    }
}

#[derive(Debug)]
struct MemberPath {
    relay: PublicKey,
    relays: Vec<RelayOption>,
    /// The relay in use was reported lost and no other has taken over yet.
    relay_lost: bool,
    candidates: Candidates,
    direct: Option<SocketAddr>,
    /// The member's endpoint on the node as last seen (roaming and handshakes move it too).
    current: Option<SocketAddr>,
    /// The last proof that the direct path works (an answer, or the member's probe arriving on it).
    alive: Instant,
    outstanding: VecDeque<Outstanding>,
    next_probe: Instant,
}

/// The paths of every member this node reaches through a relay.
#[derive(Debug)]
pub struct PathProber {
    config: ProbeConfig,
    paths: HashMap<PublicKey, MemberPath>,
    max_members: usize,
    nonce: u64,
    own_reflexive: VecDeque<SocketAddr>,
    transmits: VecDeque<ProbeTransmit>,
    actions: VecDeque<PathAction>,
    events: VecDeque<Event>,
    stats: ProbeStats,
}

impl PathProber {
    /// A prober with `config` for at most `max_members` members; `seed` starts the nonces (any value
    /// nobody can guess: the nonce only pairs an answer with its probe inside an authenticated
    /// session).
    pub fn new(config: ProbeConfig, max_members: usize, seed: u64) -> Self {
        PathProber {
            config,
            paths: HashMap::new(),
            max_members,
            nonce: seed,
            own_reflexive: VecDeque::new(),
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: ProbeStats::default(),
        }
    }

    /// `member` is reached through `relay` (admitted so, or its relay changed): probe its
    /// candidates from now on.
    pub fn track(&mut self, now: Instant, member: PublicKey, relay: PublicKey) {
        if let Some(p) = self.paths.get_mut(&member) {
            if p.relay != relay {
                p.relay = relay;
                self.event(Event::RelayChosen { member, relay });
            }
            return;
        }
        if self.paths.len() >= self.max_members {
            self.stats.outputs_dropped += 1;
            return;
        }
        self.paths.insert(
            member,
            MemberPath {
                relay,
                relays: Vec::new(),
                relay_lost: false,
                candidates: Candidates::new(),
                direct: None,
                current: None,
                alive: now,
                outstanding: VecDeque::new(),
                next_probe: now,
            },
        );
        self.event(Event::RelayChosen { member, relay });
    }

    /// Offers `relay` as a way to reach `member`, through the relay path `path` (as the node
    /// addresses it). At most [`MAX_RELAYS`] are kept per member; a relay offered again keeps its
    /// state.
    pub fn offer_relay(
        &mut self,
        now: Instant,
        member: &PublicKey,
        relay: PublicKey,
        path: SocketAddr,
    ) {
        if !is_relayed(&path) || relay == *member {
            return;
        }
        let Some(p) = self.paths.get_mut(member) else {
            return;
        };
        if let Some(o) = p.relays.iter_mut().find(|o| o.key == relay) {
            o.path = path;
            return;
        }
        if p.relays.len() < MAX_RELAYS {
            p.relays.push(RelayOption {
                key: relay,
                path,
                alive: now,
                proven: false,
            });
        }
    }

    /// Whether `relay` may carry `member`'s traffic now: it is not known to have stopped answering
    /// (never offered, or answered, or still within its grace).
    pub fn relay_usable(&self, now: Instant, member: &PublicKey, relay: &PublicKey) -> bool {
        let dead_after = self.config.interval * self.config.misses;
        self.paths
            .get(member)
            .and_then(|p| p.relays.iter().find(|o| o.key == *relay))
            .is_none_or(|o| o.is_alive(now, dead_after))
    }

    /// The node moved `member`'s endpoint (roaming, or a handshake that came through the relay).
    /// If that took a working direct path away, the next answer over it puts it back.
    pub fn on_endpoint(&mut self, member: &PublicKey, endpoint: SocketAddr) {
        if let Some(p) = self.paths.get_mut(member) {
            p.current = Some(endpoint);
        }
    }

    /// Stops tracking `member` (it left, or became a configured direct peer).
    pub fn forget(&mut self, member: &PublicKey) {
        self.paths.remove(member);
    }

    /// Offers a candidate address of `member` (from its record, another member's observation, or its
    /// candidate message). Relay paths and unspecified addresses are not candidates.
    pub fn offer(
        &mut self,
        now: Instant,
        member: &PublicKey,
        addr: SocketAddr,
        source: CandidateSource,
    ) {
        if is_relayed(&addr) || addr.ip().is_unspecified() || addr.port() == 0 {
            return;
        }
        if let Some(p) = self.paths.get_mut(member) {
            p.candidates.offer(now, addr, source);
        }
    }

    /// The direct endpoint of `member`, if promoted.
    pub fn direct(&self, member: &PublicKey) -> Option<SocketAddr> {
        self.paths.get(member).and_then(|p| p.direct)
    }

    /// Every member whose path is tracked.
    pub fn tracked(&self) -> impl Iterator<Item = PublicKey> + '_ {
        self.paths.keys().copied()
    }

    /// Whether `member`'s path is tracked.
    pub fn is_tracked(&self, member: &PublicKey) -> bool {
        self.paths.contains_key(member)
    }

    /// The relay of `member`.
    pub fn relay_of(&self, member: &PublicKey) -> Option<PublicKey> {
        self.paths.get(member).map(|p| p.relay)
    }

    /// Where members saw our probes come from: our reflexive endpoints, newest first.
    pub fn own_reflexive(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.own_reflexive.iter().copied()
    }

    /// The candidates held for `member`.
    pub fn candidates(&self, member: &PublicKey) -> Vec<(CandidateSource, SocketAddr)> {
        self.paths.get(member).map_or_else(Vec::new, |p| {
            p.candidates.iter().map(|c| (c.source, c.addr)).collect()
        })
    }

    /// Counters.
    pub fn stats(&self) -> ProbeStats {
        ProbeStats {
            members: self.paths.len(),
            direct: self.paths.values().filter(|p| p.direct.is_some()).count(),
            ..self.stats
        }
    }

    /// A probe message from `member`'s session that arrived from `outer_from` (a socket address, or
    /// a relay path).
    pub fn handle_message(
        &mut self,
        now: Instant,
        member: PublicKey,
        outer_from: SocketAddr,
        message: &ProbeMessage,
    ) {
        let relayed = is_relayed(&outer_from);
        if !message.ack {
            // Answer where it came from: the member learns whether that way works.
            self.transmit(ProbeTransmit {
                member,
                to: outer_from,
                message: ProbeMessage {
                    ack: true,
                    nonce: message.nonce,
                    address: outer_from,
                },
            });
            if relayed {
                return;
            }
            // The member's probe reached us directly, inside its session: that path works, and our
            // data path has roamed there already. Promote (or keep alive) as for an answer.
            let Some(p) = self.paths.get_mut(&member) else {
                return;
            };
            p.candidates
                .offer(now, outer_from, CandidateSource::KnownRoute);
            p.alive = now;
            let promoted = p.direct != Some(outer_from);
            let moved_away = p.current != Some(outer_from);
            p.direct = Some(outer_from);
            p.current = Some(outer_from);
            self.proven(member, outer_from, promoted, moved_away);
            return;
        }
        let Some(p) = self.paths.get_mut(&member) else {
            self.stats.ignored += 1;
            return;
        };
        let Some(at) = p.outstanding.iter().position(|o| o.nonce == message.nonce) else {
            self.stats.ignored += 1;
            return;
        };
        let Some(probe) = p.outstanding.remove(at) else {
            self.stats.ignored += 1;
            return;
        };
        if relayed {
            // Through the relay it went to: that relay path works both ways.
            let through = |a: &SocketAddr| RelayPath::from_addr(a).map(|r| r.relay);
            let relay = through(&probe.to)
                .filter(|r| Some(*r) == through(&outer_from))
                .and_then(|_| p.relays.iter_mut().find(|o| o.path == probe.to));
            match relay {
                Some(o) => {
                    o.alive = o.alive.max(probe.sent);
                    o.proven = true;
                    self.stats.relay_answers += 1;
                }
                None => self.stats.ignored += 1,
            }
            return;
        }
        self.stats.answers += 1;
        p.alive = now;
        p.candidates
            .offer(now, outer_from, CandidateSource::KnownRoute);
        let promoted = p.direct != Some(outer_from);
        let moved_away = p.current != Some(outer_from);
        p.direct = Some(outer_from);
        p.current = Some(outer_from);
        if !is_relayed(&message.address) && !self.own_reflexive.contains(&message.address) {
            if self.own_reflexive.len() >= MAX_OWN_REFLEXIVE {
                self.own_reflexive.pop_back();
            }
            self.own_reflexive.push_front(message.address);
        }
        self.proven(member, outer_from, promoted, moved_away);
    }

    /// A direct path to `member` at `endpoint` just proved itself: promote it if it is new, and
    /// point the node's endpoint at it again if something (a handshake through the relay) moved it.
    fn proven(
        &mut self,
        member: PublicKey,
        endpoint: SocketAddr,
        promoted: bool,
        moved_away: bool,
    ) {
        if promoted {
            self.stats.promotions += 1;
            self.event(Event::PathPromoted { member, endpoint });
        }
        if promoted || moved_away {
            self.action(PathAction::UseDirect { member, endpoint });
        }
    }

    /// Runs the timers: fallback of paths that stopped answering, then this interval's probes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.config.interval;
        let dead_after = interval * self.config.misses;
        let mut out = Vec::new();
        let mut fell_back = Vec::new();
        let mut lost = Vec::new();
        let mut failed_over = Vec::new();
        for (member, p) in &mut self.paths {
            if p.next_probe > now {
                continue;
            }
            p.next_probe = now + interval;
            // The relay in use stopped answering: move to the one that answered last, if any did.
            let in_use = p.relays.iter().find(|o| o.key == p.relay);
            if in_use.is_some_and(|o| !o.is_alive(now, dead_after)) {
                let best = p
                    .relays
                    .iter()
                    .filter(|o| o.key != p.relay && o.proven && o.is_alive(now, dead_after))
                    .max_by_key(|o| o.alive)
                    .map(|o| o.key);
                if !p.relay_lost {
                    lost.push((*member, p.relay));
                }
                match best {
                    Some(next) => {
                        p.relay = next;
                        p.relay_lost = false;
                        failed_over.push((*member, next, p.direct.is_none()));
                    }
                    None => p.relay_lost = true,
                }
            } else if in_use.is_some() {
                p.relay_lost = false;
            }
            if p.direct.is_some() && now.saturating_duration_since(p.alive) >= dead_after {
                p.direct = None;
                p.current = None;
                p.outstanding.clear();
                fell_back.push((*member, p.relay));
            }
            let relays = p.relays.iter().map(|o| o.path);
            let targets: Vec<SocketAddr> = match p.direct {
                Some(d) => vec![d],
                None => {
                    let mut all: Vec<_> = p.candidates.iter().copied().collect();
                    all.sort_by_key(|c| (c.source, std::cmp::Reverse(c.learned)));
                    all.into_iter()
                        .take(self.config.candidates_per_interval)
                        .map(|c| c.addr)
                        .collect()
                }
            };
            for to in targets.into_iter().chain(relays) {
                self.nonce = self
                    .nonce
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let nonce = self.nonce;
                if p.outstanding.len() >= MAX_OUTSTANDING {
                    p.outstanding.pop_front();
                }
                p.outstanding.push_back(Outstanding {
                    nonce,
                    to,
                    sent: now,
                });
                out.push(ProbeTransmit {
                    member: *member,
                    to,
                    message: ProbeMessage {
                        ack: false,
                        nonce,
                        address: to,
                    },
                });
            }
        }
        for (member, relay) in lost {
            self.event(Event::RelayLost { member, relay });
        }
        for (member, relay, relayed_now) in failed_over {
            self.stats.relay_failovers += 1;
            self.event(Event::RelayChosen { member, relay });
            // A member reached directly keeps its path; the new relay is where it falls back to.
            if relayed_now {
                self.action(PathAction::UseRelay { member, relay });
            }
        }
        for (member, relay) in fell_back {
            self.stats.fallbacks += 1;
            self.action(PathAction::UseRelay { member, relay });
            self.event(Event::PathFellBack { member, relay });
        }
        self.stats.probes_sent += out.len() as u64;
        for t in out {
            self.transmit(t);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.paths.values().map(|p| p.next_probe).min()
    }

    /// The next probe or answer to send.
    pub fn poll_transmit(&mut self) -> Option<ProbeTransmit> {
        self.transmits.pop_front()
    }

    /// The next endpoint change.
    pub fn poll_action(&mut self) -> Option<PathAction> {
        self.actions.pop_front()
    }

    /// The next path event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn transmit(&mut self, t: ProbeTransmit) {
        if self.transmits.len() >= MAX_QUEUED {
            self.stats.outputs_dropped += 1;
        } else {
            self.transmits.push_back(t);
        }
    }

    fn action(&mut self, a: PathAction) {
        if self.actions.len() >= MAX_QUEUED {
            self.stats.outputs_dropped += 1;
        } else {
            self.actions.push_back(a);
        }
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_QUEUED {
            self.stats.outputs_dropped += 1;
        } else {
            self.events.push_back(e);
        }
    }
}

#[cfg(test)]
mod tests;
