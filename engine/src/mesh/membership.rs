//! The member table and its admission rules: which records are believed, which keys are admitted as
//! peers, and what happens on an address overlap, a newer version, a departure or an expiry.
//!
//! Rules, in the order they are applied to a record that arrived from member `S`:
//!
//! 1. A record about ourselves is ignored (a restarted node hears its old records echoed back).
//! 2. `S` may always describe itself; that record makes `S` a member. A record about anyone else is
//!    believed only if `S` is a member already (its own record is in the table): a vouch. A peer that
//!    never showed a valid record of its own is a non-member and cannot vouch (`NotMember`).
//! 3. A version at or below the one held (or below a departure's tombstone) changes nothing (stale).
//! 4. A departure (`LEFT`) removes the member and keeps a tombstone so older records cannot revive it.
//! 5. A claim of addresses that overlap another member's, a configured peer's or our own is dropped
//!    and counted (`AddressOverlap`): the record held first wins; a later update that would overlap
//!    leaves the held record as it was.
//! 6. The table holds at most `max_members` records (`TableFull` past that).
//!
//! A key the node was configured with is never admitted, changed or removed here: the operator's
//! configuration wins. Every other member is admitted as a peer keyed with the mesh PSK.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pnet_mesh_crypto::PublicKey;

use crate::config::AllowedIp;
use crate::mesh::wire::{MemberRecord, ReceivedRecord};

drop_counters! {
    /// Why a discovery message or record was refused.
    enum DiscoveryDrop;
    /// Discovery drops by reason.
    struct DiscoveryDrops;
    /// Shorter than its fields say.
    Truncated,
    /// A message version this node does not speak.
    UnsupportedVersion,
    /// A reserved bit set, a bad family or prefix, trailing bytes.
    Malformed,
    /// Too many records, prefixes or endpoints, or too long a lifetime.
    Oversized,
    /// A record whose MAC fails under our mesh PSK (forged, or from a node with another PSK).
    BadMac,
    /// A record about another member from a peer that is not a member itself.
    NotMember,
    /// A claim overlapping addresses another member, a configured peer or this node holds.
    AddressOverlap,
    /// A new member when the table is full.
    TableFull,
    /// Records past a source's rate.
    RateLimited,
    /// The node refused to add the member as a peer.
    Refused,
}

/// One member as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its latest record.
    pub record: MemberRecord,
    /// The member that told us (the member itself when it told us directly).
    pub vouched_by: PublicKey,
    /// Where the voucher reaches it (the voucher's observation), if said.
    pub observed: Option<SocketAddr>,
    /// Members between it and us on the path its record came (0: it told us itself).
    pub hops: u8,
    /// When the record is forgotten unless a newer version arrives.
    pub expires: Instant,
    /// A peer of the node's own configuration (never admitted or removed by discovery).
    pub configured: bool,
}

/// What believing a record changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key not held before; `admit` unless it is configured.
    Joined {
        /// Whether the node must add it as a peer.
        admit: bool,
    },
    /// A newer version of a held record; `addresses_changed` if its claim moved.
    Updated {
        /// The claim differs from the held one.
        addresses_changed: bool,
    },
    /// A departure; `admitted` if the node had added it as a peer.
    Left {
        /// Whether the node must remove the peer.
        admitted: bool,
    },
    /// The version held, offered by a neighbour with fewer members in between: that neighbour
    /// vouches for it from now on (the next hop towards it).
    Shorter,
    /// Nothing new (a version already held, a departure already known, our own record).
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct Tombstone {
    version: u64,
    until: Instant,
}

/// The members this node believes in, with the rules above.
#[derive(Debug)]
pub struct MemberTable {
    own_key: PublicKey,
    own_addresses: Vec<AllowedIp>,
    configured: HashMap<PublicKey, Vec<AllowedIp>>,
    members: HashMap<PublicKey, Member>,
    tombstones: HashMap<PublicKey, Tombstone>,
    max_members: usize,
}

impl MemberTable {
    /// An empty table for the node `own_key` claiming `own_addresses`.
    pub fn new(own_key: PublicKey, own_addresses: Vec<AllowedIp>, max_members: usize) -> Self {
        MemberTable {
            own_key,
            own_addresses,
            configured: HashMap::new(),
            members: HashMap::new(),
            tombstones: HashMap::new(),
            max_members,
        }
    }

    /// Declares a peer of the node's configuration and the addresses it holds.
    pub fn add_configured(&mut self, key: PublicKey, allowed_ips: Vec<AllowedIp>) {
        self.configured.insert(key, allowed_ips);
    }

    /// The configured peers and their addresses.
    pub fn configured(&self) -> impl Iterator<Item = (&PublicKey, &Vec<AllowedIp>)> {
        self.configured.iter()
    }

    /// Whether `key` is a configured peer.
    pub fn is_configured(&self, key: &PublicKey) -> bool {
        self.configured.contains_key(key)
    }

    /// The member `key`, if held.
    pub fn get(&self, key: &PublicKey) -> Option<&Member> {
        self.members.get(key)
    }

    /// Whether `key` has shown a valid record of its own (or been vouched for).
    pub fn is_member(&self, key: &PublicKey) -> bool {
        self.members.contains_key(key)
    }

    /// Every member held.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Members held.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no member is held.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Applies a record that arrived from `sender` at `now`.
    ///
    /// # Errors
    /// The [`DiscoveryDrop`] that refused it; the table is unchanged then.
    pub fn apply(
        &mut self,
        now: Instant,
        sender: PublicKey,
        received: ReceivedRecord,
    ) -> Result<Change, DiscoveryDrop> {
        let ReceivedRecord {
            record,
            observed,
            hops,
        } = received;
        let key = record.public_key;
        if key == self.own_key {
            return Ok(Change::Stale);
        }
        if key != sender && !self.is_member(&sender) {
            return Err(DiscoveryDrop::NotMember);
        }
        if self
            .tombstones
            .get(&key)
            .is_some_and(|t| record.version <= t.version)
        {
            return Ok(Change::Stale);
        }
        let lifetime = Duration::from_secs(u64::from(record.lifetime_secs));
        let configured = self.is_configured(&key);
        if let Some(held) = self.members.get_mut(&key) {
            if record.version == held.record.version
                && !record.left
                && sender != held.vouched_by
                && hops < held.hops
            {
                held.vouched_by = sender;
                held.hops = hops;
                if observed.is_some() {
                    held.observed = observed;
                }
                return Ok(Change::Shorter);
            }
            if record.version <= held.record.version {
                return Ok(Change::Stale);
            }
            let addresses_changed = held.record.addresses != record.addresses;
            if record.left {
                self.members.remove(&key);
                self.bury(key, record.version, now + lifetime);
                return Ok(Change::Left {
                    admitted: !configured,
                });
            }
            if let Some(reason) = self.overlap(&key, &record.addresses) {
                return Err(reason);
            }
            if let Some(member) = self.members.get_mut(&key) {
                member.record = record;
                member.vouched_by = sender;
                member.hops = hops;
                if observed.is_some() {
                    member.observed = observed;
                }
                member.expires = now + lifetime;
            }
            return Ok(Change::Updated { addresses_changed });
        }
        if record.left {
            self.bury(key, record.version, now + lifetime);
            return Ok(Change::Stale);
        }
        if self.members.len() >= self.max_members {
            return Err(DiscoveryDrop::TableFull);
        }
        if let Some(reason) = self.overlap(&key, &record.addresses) {
            return Err(reason);
        }
        self.tombstones.remove(&key);
        self.members.insert(
            key,
            Member {
                record,
                vouched_by: sender,
                observed,
                hops,
                expires: now + lifetime,
                configured,
            },
        );
        Ok(Change::Joined { admit: !configured })
    }

    /// Removes a member the node could not add as a peer.
    pub fn refuse(&mut self, key: &PublicKey) -> Option<Member> {
        self.members.remove(key)
    }

    /// Removes and returns the members whose records expired by `now`, and forgets old tombstones.
    pub fn expire(&mut self, now: Instant) -> Vec<Member> {
        self.tombstones.retain(|_, t| t.until > now);
        let gone: Vec<PublicKey> = self
            .members
            .iter()
            .filter(|(_, m)| m.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        gone.iter().filter_map(|k| self.members.remove(k)).collect()
    }

    /// The earliest expiry of a member or tombstone.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.members
            .values()
            .map(|m| m.expires)
            .chain(self.tombstones.values().map(|t| t.until))
            .min()
    }

    /// The address to send to `key` at: the first address of its record, else of its configuration.
    pub fn address_of(&self, key: &PublicKey) -> Option<IpAddr> {
        self.members
            .get(key)
            .and_then(|m| m.record.addresses.first())
            .or_else(|| self.configured.get(key).and_then(|a| a.first()))
            .map(AllowedIp::addr)
    }

    /// Which rule a claim of `addresses` by `key` breaks, if any.
    fn overlap(&self, key: &PublicKey, addresses: &[AllowedIp]) -> Option<DiscoveryDrop> {
        let held_elsewhere = self
            .members
            .iter()
            .filter(|(k, _)| *k != key)
            .flat_map(|(_, m)| m.record.addresses.iter())
            .chain(
                self.configured
                    .iter()
                    .filter(|(k, _)| *k != key)
                    .flat_map(|(_, a)| a.iter()),
            )
            .chain(self.own_addresses.iter());
        let mut held = held_elsewhere;
        held.any(|h| addresses.iter().any(|a| overlaps(a, h)))
            .then_some(DiscoveryDrop::AddressOverlap)
    }

    fn bury(&mut self, key: PublicKey, version: u64, until: Instant) {
        // Bounded like the table: a flood of departures of unknown keys cannot grow it.
        if self.tombstones.len() < self.max_members || self.tombstones.contains_key(&key) {
            self.tombstones.insert(key, Tombstone { version, until });
        }
    }
}

/// Whether two prefixes share an address.
pub fn overlaps(a: &AllowedIp, b: &AllowedIp) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}
