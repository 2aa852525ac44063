//! Candidate paths to a member and the choice between them.
//!
//! A member can be reached at several places: where an authenticated packet from it last arrived
//! (a known route), where another member sees it from (its reflexive endpoint, from the trailer of its
//! record), or where it says it listens (a host endpoint it advertised). Selection prefers a known
//! route, then a reflexive endpoint, then an advertised one; among equals, the most recently
//! confirmed, then the most recently learned. Only an authenticated packet makes a route known, so
//! nothing unauthenticated can win the choice.

use std::net::SocketAddr;
use std::time::Instant;

/// Where a candidate came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CandidateSource {
    /// An authenticated packet from the member arrived from this address.
    KnownRoute,
    /// Another member reaches the member at this address (its reflexive endpoint).
    Reflexive,
    /// The member advertised this listen address itself.
    Advertised,
}

/// One way to reach a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The UDP endpoint.
    pub addr: SocketAddr,
    /// How we know of it.
    pub source: CandidateSource,
    /// When an authenticated packet last confirmed it (known routes only).
    pub confirmed: Option<Instant>,
    /// When we learned of it.
    pub learned: Instant,
}

/// The candidates of one member, bounded; the same address learned twice keeps its best source.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    list: Vec<Candidate>,
}

/// Candidates kept per member at most; the worst make room.
pub const MAX_CANDIDATES: usize = 8;

impl Candidates {
    /// No candidate yet.
    pub fn new() -> Self {
        Candidates::default()
    }

    /// Adds or refreshes a candidate.
    pub fn offer(&mut self, now: Instant, addr: SocketAddr, source: CandidateSource) {
        if let Some(c) = self.list.iter_mut().find(|c| c.addr == addr) {
            c.source = c.source.min(source);
            if source == CandidateSource::KnownRoute {
                c.confirmed = Some(now);
            }
            c.learned = now;
            return;
        }
        if self.list.len() >= MAX_CANDIDATES {
            // Drop the one selection would take last.
            if let Some(worst) = (0..self.list.len()).min_by_key(|i| self.list.get(*i).map(rank)) {
                self.list.swap_remove(worst);
            }
        }
        self.list.push(Candidate {
            addr,
            source,
            confirmed: (source == CandidateSource::KnownRoute).then_some(now),
            learned: now,
        });
    }

    /// Forgets a candidate (its path stopped answering).
    pub fn withdraw(&mut self, addr: SocketAddr) {
        self.list.retain(|c| c.addr != addr);
    }

    /// The candidate to use: a known route, else a reflexive endpoint, else an advertised one.
    pub fn select(&self) -> Option<&Candidate> {
        self.list.iter().max_by_key(|c| rank(c))
    }

    /// Every candidate, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Candidate> {
        self.list.iter()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Larger is better: source first (reversed: KnownRoute is the smallest), then confirmation, then
/// how recently it was learned.
fn rank(c: &Candidate) -> (std::cmp::Reverse<CandidateSource>, Option<Instant>, Instant) {
    (std::cmp::Reverse(c.source), c.confirmed, c.learned)
}

#[cfg(test)]
mod tests;
