//! Crypto discovery, sans-I/O: who tells whom which member records, and when.
//!
//! A node given only a bootstrap peer says hello to it (its own record, asking for a sync); a member
//! answers with its whole table. Every record learned is passed on at once to the other members this
//! node has a session with (a flood, stopped by versions: a record already held is not passed on
//! again). A session that comes up starts with a hello both ways, so a restarted member is re-synced
//! at its first handshake. Every `sync_interval` one neighbour (in turn) gets the whole table, which
//! repairs what a lost datagram left out. A member re-issues its own record every third of its
//! lifetime; a record not refreshed within its lifetime is forgotten, and a departing member floods a
//! tombstone.
//!
//! [`Discovery`] takes messages with the authenticated sender's key, session changes and time; it
//! returns messages to send (to a key, at a mesh address), actions on the node's peers (admit,
//! update, forget) and events. The record format is in [`wire`](crate::mesh::wire); the trust rules
//! are in [`membership`](crate::mesh::membership).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pnet_mesh_crypto::{PresharedKey, PublicKey};

use crate::config::{AllowedIp, ConfigError};
use crate::event::Event;
use crate::mesh::bucket::TokenBucket;
use crate::mesh::candidate::{CandidateSource, Candidates};
use crate::mesh::membership::{Change, DiscoveryDrop, DiscoveryDrops, Member, MemberTable};
use crate::mesh::wire::{
    MAX_LIFETIME_SECS, MAX_RECORDS, MESSAGE_HEADER_LEN, MemberRecord, MessageHeader, RecordKey,
    WireError,
};

/// The mesh-side UDP port of discovery messages, unless configured.
pub const DEFAULT_DISCOVERY_PORT: u16 = 51_802;
/// Messages waiting to be sent at most; more are dropped and counted.
const MAX_QUEUED_MESSAGES: usize = 1024;
/// Actions and events waiting at most.
const MAX_QUEUED_OUTPUTS: usize = 4096;
/// The longest wait between hellos to a configured peer that has not answered.
const MAX_HELLO_INTERVAL: Duration = Duration::from_secs(60);

/// Settings of discovery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    /// The PSK every member holds: it authenticates records and keys every discovered pair's
    /// sessions (and configured peers that have no PSK of their own).
    pub mesh_psk: PresharedKey,
    /// Mesh-side UDP port of discovery messages (default 51802).
    pub port: u16,
    /// How often one neighbour gets the whole table (default 2 s).
    pub sync_interval: Duration,
    /// How long others keep our record without a refresh (default 180 s; refreshed every third).
    pub record_lifetime: Duration,
    /// Members held at most (default 1024).
    pub max_members: usize,
    /// Records a single member may send per second, burst twice that (default 512).
    pub records_per_second: u32,
    /// Routes this node claims besides its mesh addresses (a subnet behind it).
    pub advertise: Vec<AllowedIp>,
    /// UDP endpoints to tell members about (default: none; members learn where they reach us).
    pub endpoints: Vec<SocketAddr>,
}

impl DiscoveryConfig {
    /// Discovery with `mesh_psk` and the defaults.
    pub fn new(mesh_psk: PresharedKey) -> Self {
        DiscoveryConfig {
            mesh_psk,
            port: DEFAULT_DISCOVERY_PORT,
            sync_interval: Duration::from_secs(2),
            record_lifetime: Duration::from_secs(180),
            max_members: 1024,
            records_per_second: 512,
            advertise: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(ConfigError::invalid("discovery.port", 0, "must not be 0"));
        }
        if self.sync_interval.is_zero() {
            return Err(ConfigError::invalid(
                "discovery.sync_interval",
                "0s",
                "must be longer than zero",
            ));
        }
        let lifetime = self.record_lifetime.as_secs();
        if !(3..=u64::from(MAX_LIFETIME_SECS)).contains(&lifetime) {
            return Err(ConfigError::invalid(
                "discovery.record_lifetime",
                format!("{lifetime}s"),
                format!("must be 3 to {MAX_LIFETIME_SECS} seconds"),
            ));
        }
        if self.max_members == 0 {
            return Err(ConfigError::invalid(
                "discovery.max_members",
                0,
                "must be at least 1",
            ));
        }
        if self.records_per_second == 0 {
            return Err(ConfigError::invalid(
                "discovery.records_per_second",
                0,
                "must be at least 1",
            ));
        }
        let own = self.advertise.len();
        if own > crate::mesh::wire::MAX_ADDRESSES - 2 {
            return Err(ConfigError::invalid(
                "discovery.advertise",
                own,
                format!(
                    "at most {} prefixes besides the mesh addresses",
                    crate::mesh::wire::MAX_ADDRESSES - 2
                ),
            ));
        }
        if self.endpoints.len() > crate::mesh::wire::MAX_ENDPOINTS {
            return Err(ConfigError::invalid(
                "discovery.endpoints",
                self.endpoints.len(),
                format!("at most {}", crate::mesh::wire::MAX_ENDPOINTS),
            ));
        }
        Ok(())
    }
}

/// A change the node must make to its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add `key` as a peer keyed with the mesh PSK, reachable at `endpoint` if known.
    Admit {
        /// The member.
        key: PublicKey,
        /// Its claim.
        allowed_ips: Vec<AllowedIp>,
        /// Where its voucher reaches it, or where it said it listens.
        endpoint: Option<SocketAddr>,
        /// The member that vouched for it (the member itself when it told us directly).
        vouched_by: PublicKey,
        /// Every candidate address: what it advertised, and where its voucher reaches it.
        candidates: Vec<(CandidateSource, SocketAddr)>,
    },
    /// The member's claim changed.
    Update {
        /// The member.
        key: PublicKey,
        /// Its new claim.
        allowed_ips: Vec<AllowedIp>,
    },
    /// Remove the member's peer (it left, or its record expired).
    Forget {
        /// The member.
        key: PublicKey,
    },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The peer it is for.
    pub to: PublicKey,
    /// Its mesh address (the destination of the UDP packet).
    pub dst: IpAddr,
    /// The UDP payload.
    pub message: Vec<u8>,
}

/// Counters of discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStats {
    /// Members held (configured ones included).
    pub members: usize,
    /// Messages queued for sending.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Records received with a valid MAC.
    pub records_received: u64,
    /// Of those, records that told nothing new.
    pub records_stale: u64,
    /// Messages not queued because the queue was full or the peer had no address.
    pub messages_dropped: u64,
    /// Actions or events lost to a full queue.
    pub outputs_dropped: u64,
    /// Drops by reason.
    pub drops: DiscoveryDrops,
}

#[derive(Debug, Clone, Copy)]
struct Hello {
    next: Instant,
    interval: Duration,
}

/// Discovery for one node.
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    key: RecordKey,
    own: MemberRecord,
    table: MemberTable,
    /// Configured peers with an endpoint that have not shown a record yet.
    hellos: HashMap<PublicKey, Hello>,
    sessions: HashSet<PublicKey>,
    observed: HashMap<PublicKey, SocketAddr>,
    buckets: HashMap<PublicKey, TokenBucket>,
    max_message: usize,
    next_sync: Instant,
    sync_cursor: usize,
    next_refresh: Instant,
    transmits: VecDeque<Outgoing>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    stats: DiscoveryStats,
}

impl Discovery {
    /// Discovery for the node `own_key` with `mesh_addresses`, sending messages of at most
    /// `max_message` bytes; `wall_us` is the wall clock in µs since the UNIX epoch (record versions).
    pub fn new(
        own_key: PublicKey,
        mesh_addresses: &[IpAddr],
        config: DiscoveryConfig,
        max_message: usize,
        now: Instant,
        wall_us: u64,
    ) -> Discovery {
        let mut addresses: Vec<AllowedIp> = mesh_addresses
            .iter()
            .filter_map(|a| AllowedIp::new(*a, if a.is_ipv4() { 32 } else { 128 }))
            .collect();
        addresses.extend(config.advertise.iter().copied());
        addresses.truncate(crate::mesh::wire::MAX_ADDRESSES);
        let own = MemberRecord {
            public_key: own_key,
            version: wall_us,
            lifetime_secs: config.record_lifetime.as_secs().clamp(3, 86_400) as u32,
            left: false,
            addresses: addresses.clone(),
            endpoints: config.endpoints.clone(),
        };
        Discovery {
            key: RecordKey::new(&config.mesh_psk),
            table: MemberTable::new(own_key, addresses, config.max_members),
            own,
            hellos: HashMap::new(),
            sessions: HashSet::new(),
            observed: HashMap::new(),
            buckets: HashMap::new(),
            max_message: max_message.max(MESSAGE_HEADER_LEN + crate::mesh::wire::MAX_RECORD_LEN),
            next_sync: now + config.sync_interval,
            sync_cursor: 0,
            next_refresh: now + refresh_interval(&config),
            config,
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: DiscoveryStats::default(),
        }
    }

    /// Declares a peer of the node's configuration; `reachable` if it has an endpoint, so that
    /// hellos can start the exchange (a bootstrap peer).
    pub fn add_configured(
        &mut self,
        now: Instant,
        key: PublicKey,
        allowed_ips: Vec<AllowedIp>,
        reachable: bool,
    ) {
        self.table.add_configured(key, allowed_ips);
        if reachable {
            self.hellos.insert(
                key,
                Hello {
                    next: now,
                    interval: self.config.sync_interval,
                },
            );
        }
    }

    /// Our own record as it stands.
    pub fn own_record(&self) -> &MemberRecord {
        &self.own
    }

    /// The members held.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.table.iter()
    }

    /// The member `key`, if held.
    pub fn member(&self, key: &PublicKey) -> Option<&Member> {
        self.table.get(key)
    }

    /// Counters.
    pub fn stats(&self) -> DiscoveryStats {
        DiscoveryStats {
            members: self.table.len(),
            ..self.stats.clone()
        }
    }

    /// Members held at most.
    pub fn max_members(&self) -> usize {
        self.config.max_members
    }

    /// The mesh address of a member (its first claimed address), or of a configured peer.
    pub fn address_of(&self, key: &PublicKey) -> Option<IpAddr> {
        self.table.address_of(key)
    }

    /// The discovery port.
    pub fn port(&self) -> u16 {
        self.config.port
    }

    /// Where the node reaches `key` now (from the peer's endpoint), to tell other members.
    pub fn set_observed(&mut self, key: PublicKey, endpoint: Option<SocketAddr>) {
        match endpoint {
            Some(e) => {
                self.observed.insert(key, e);
            }
            None => {
                self.observed.remove(&key);
            }
        }
    }

    /// A session with `key` came up (a first handshake, or one after the peer restarted): both
    /// sides say hello, so each gets the other's table.
    pub fn session_up(&mut self, _now: Instant, key: PublicKey) {
        self.sessions.insert(key);
        if self.table.is_member(&key) || self.table.is_configured(&key) {
            self.send(key, &[], true);
        }
    }

    /// The session with `key` is gone.
    pub fn session_down(&mut self, key: &PublicKey) {
        self.sessions.remove(key);
    }

    /// The node could not add `key` as a peer: it is forgotten again and counted.
    pub fn admission_failed(&mut self, key: &PublicKey) {
        if self.table.refuse(key).is_some() {
            self.stats.drops.count(DiscoveryDrop::Refused);
        }
    }

    /// A message from the peer `from` (its session authenticated it).
    pub fn handle_message(&mut self, now: Instant, from: PublicKey, message: &[u8]) {
        self.stats.messages_received += 1;
        let (header, mut rest) = match MessageHeader::decode(message) {
            Ok(h) => h,
            Err(e) => return self.stats.drops.count(wire_drop(e)),
        };
        let mut passed_on = Vec::new();
        for _ in 0..header.count {
            let (received, after) = match MemberRecord::decode(&self.key, rest) {
                Ok(r) => r,
                // The rest cannot be trusted or framed.
                Err(e) => return self.stats.drops.count(wire_drop(e)),
            };
            rest = after;
            if !self.take_token(now, from) {
                return self.stats.drops.count(DiscoveryDrop::RateLimited);
            }
            self.stats.records_received += 1;
            let record = received.record.clone();
            let key = record.public_key;
            match self.table.apply(now, from, received) {
                Ok(Change::Joined { admit }) => {
                    if key == from {
                        self.hellos.remove(&key);
                    }
                    if admit {
                        let mut c = Candidates::new();
                        if let Some(m) = self.table.get(&key) {
                            for e in &m.record.endpoints {
                                c.offer(now, *e, CandidateSource::Advertised);
                            }
                            if let Some(o) = m.observed {
                                c.offer(now, o, CandidateSource::Reflexive);
                            }
                        }
                        self.act(Action::Admit {
                            key,
                            allowed_ips: record.addresses.clone(),
                            endpoint: c.select().map(|c| c.addr),
                            vouched_by: from,
                            candidates: c.iter().map(|c| (c.source, c.addr)).collect(),
                        });
                    }
                    self.event(Event::MemberJoined {
                        member: key,
                        vouched_by: from,
                    });
                    passed_on.push(record);
                }
                Ok(Change::Updated { addresses_changed }) => {
                    if addresses_changed && !self.table.is_configured(&key) {
                        self.act(Action::Update {
                            key,
                            allowed_ips: record.addresses.clone(),
                        });
                    }
                    self.event(Event::MemberUpdated {
                        member: key,
                        vouched_by: from,
                    });
                    passed_on.push(record);
                }
                Ok(Change::Left { admitted }) => {
                    if admitted {
                        self.act(Action::Forget { key });
                    }
                    self.event(Event::MemberLeft {
                        member: key,
                        vouched_by: Some(from),
                    });
                    passed_on.push(record);
                }
                // A shorter path is news for the neighbours too.
                Ok(Change::Shorter) => passed_on.push(record),
                Ok(Change::Stale) => self.stats.records_stale += 1,
                Err(reason) => self.stats.drops.count(reason),
            }
        }
        if !rest.is_empty() {
            self.stats.drops.count(DiscoveryDrop::Malformed);
        }
        // Only a member gets the table: a peer that showed no valid record of its own learns nothing.
        if header.sync && self.table.is_member(&from) {
            let all = self.table_records();
            self.send(from, &all, false);
        }
        if !passed_on.is_empty() {
            for neighbour in self.neighbours() {
                if neighbour != from {
                    let records: Vec<MemberRecord> = passed_on
                        .iter()
                        .filter(|r| r.public_key != neighbour)
                        .cloned()
                        .collect();
                    if !records.is_empty() {
                        self.send(neighbour, &records, false);
                    }
                }
            }
        }
    }

    /// Runs the timers: expiry, hellos, the refresh of our record and the periodic sync.
    pub fn handle_timeout(&mut self, now: Instant, wall_us: u64) {
        for gone in self.table.expire(now) {
            let key = gone.record.public_key;
            if !gone.configured {
                self.act(Action::Forget { key });
            }
            self.event(Event::MemberLeft {
                member: key,
                vouched_by: None,
            });
        }
        let due: Vec<PublicKey> = self
            .hellos
            .iter()
            .filter(|(_, h)| h.next <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.send(key, &[], true);
            if let Some(h) = self.hellos.get_mut(&key) {
                h.interval = (h.interval * 2).min(MAX_HELLO_INTERVAL);
                h.next = now + h.interval;
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = now + refresh_interval(&self.config);
            self.reissue(wall_us);
            for n in self.neighbours() {
                self.send(n, &[], false);
            }
        }
        if now >= self.next_sync {
            self.next_sync = now + self.config.sync_interval;
            let neighbours = self.neighbours();
            if let Some(&n) = neighbours.get(self.sync_cursor % neighbours.len().max(1)) {
                self.sync_cursor = self.sync_cursor.wrapping_add(1);
                let all = self.table_records();
                self.send(n, &all, false);
            }
        }
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.next_sync.min(self.next_refresh);
        for h in self.hellos.values() {
            next = next.min(h.next);
        }
        if let Some(t) = self.table.next_expiry() {
            next = next.min(t);
        }
        next
    }

    /// Leaves the mesh: a tombstone of our record goes to every neighbour.
    pub fn leave(&mut self, wall_us: u64) {
        self.own.left = true;
        self.reissue(wall_us);
        for n in self.neighbours() {
            self.send(n, &[], false);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.transmits.pop_front()
    }

    /// The next change to the node's peers.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next membership event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Members we have a session with, in a stable order.
    fn neighbours(&self) -> Vec<PublicKey> {
        let mut n: Vec<PublicKey> = self
            .sessions
            .iter()
            .filter(|k| self.table.is_member(k))
            .copied()
            .collect();
        n.sort_unstable();
        n
    }

    /// Every member's record, for a sync.
    fn table_records(&self) -> Vec<MemberRecord> {
        self.table.iter().map(|m| m.record.clone()).collect()
    }

    fn reissue(&mut self, wall_us: u64) {
        self.own.version = wall_us.max(self.own.version + 1);
    }

    /// Queues our record followed by `records` for `to`, in as many messages as they need; every
    /// message starts with our record, so each one alone proves we are a member.
    fn send(&mut self, to: PublicKey, records: &[MemberRecord], sync: bool) {
        let Some(dst) = self.table.address_of(&to) else {
            self.stats.messages_dropped += 1;
            return;
        };
        let mut remaining = records.iter().filter(|r| r.public_key != to).peekable();
        loop {
            let mut message = vec![0u8; self.max_message];
            let mut at = MESSAGE_HEADER_LEN;
            let Some(n) = self.own.encode(
                &self.key,
                None,
                0,
                message.get_mut(at..).unwrap_or_default(),
            ) else {
                return;
            };
            at += n;
            let mut count = 1;
            while count < MAX_RECORDS {
                let Some(r) = remaining.peek() else { break };
                let observed = self.observed.get(&r.public_key).copied();
                // One more member in between for the receiver than for us.
                let hops = self
                    .table
                    .get(&r.public_key)
                    .map_or(0, |m| m.hops.saturating_add(1));
                match r.encode(
                    &self.key,
                    observed,
                    hops,
                    message.get_mut(at..).unwrap_or_default(),
                ) {
                    Some(n) => {
                        at += n;
                        count += 1;
                        remaining.next();
                    }
                    None => break,
                }
            }
            let header = MessageHeader { sync, count };
            if header.encode(&mut message).is_none() {
                return;
            }
            message.truncate(at);
            if self.transmits.len() >= MAX_QUEUED_MESSAGES {
                self.stats.messages_dropped += 1;
                return;
            }
            self.transmits.push_back(Outgoing { to, dst, message });
            self.stats.messages_sent += 1;
            if remaining.peek().is_none() {
                return;
            }
        }
    }

    fn act(&mut self, action: Action) {
        if self.actions.len() < MAX_QUEUED_OUTPUTS {
            self.actions.push_back(action);
        } else {
            self.stats.outputs_dropped += 1;
        }
    }

    fn event(&mut self, event: Event) {
        if self.events.len() < MAX_QUEUED_OUTPUTS {
            self.events.push_back(event);
        } else {
            self.stats.outputs_dropped += 1;
        }
    }

    /// Spends one record's token of `from`'s bucket.
    fn take_token(&mut self, now: Instant, from: PublicKey) -> bool {
        let rate = self.config.records_per_second;
        self.buckets
            .entry(from)
            .or_insert_with(|| TokenBucket::new(now, rate))
            .take(now, rate)
    }
}

fn refresh_interval(config: &DiscoveryConfig) -> Duration {
    config.record_lifetime / 3
}

fn wire_drop(e: WireError) -> DiscoveryDrop {
    match e {
        WireError::Truncated => DiscoveryDrop::Truncated,
        WireError::UnsupportedVersion => DiscoveryDrop::UnsupportedVersion,
        WireError::Malformed => DiscoveryDrop::Malformed,
        WireError::Oversized => DiscoveryDrop::Oversized,
        WireError::BadMac => DiscoveryDrop::BadMac,
    }
}

#[cfg(test)]
mod tests;
