//! The discovery driver: one thread that runs a node's [`Discovery`]. Data shards hand it the packets
//! addressed to the discovery port and it sees the session events (up, down, roaming); it sends what
//! discovery emits through the node's [`Transmitter`], and carries out its actions on the node's
//! peers on the control shard: admit (add the member keyed with the mesh PSK, then handshake at once
//! so the pair talks directly), update, forget.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use pnet_mesh_crypto::{PresharedKey, PublicKey};

use crate::PeerId;
use crate::config::{AllowedIp, PeerConfig};
use crate::event::Event;
use crate::mesh::candidate::CandidateSource;
use crate::mesh::discovery::{Action, Discovery};
use crate::mesh::probe::{ProbeConfig, ProbeStats};
use crate::node::NodeError;
use crate::node::transmit::Transmitter;
use crate::proto::ip;
use crate::proto::path::{self, is_relayed};
use crate::runtime::paths::PathDriver;
use crate::runtime::{ControlRequest, Shared};

/// How long the driver sleeps at most with nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How often it reads the peers' endpoints (what it tells other members about them).
const OBSERVE_INTERVAL: Duration = Duration::from_secs(1);
/// How often at most an unknown peer id makes it read the peer list.
const MISS_REFRESH: Duration = Duration::from_millis(100);

/// What the node and the driver share.
#[derive(Debug)]
pub(crate) struct DiscoveryHub {
    discovery: Mutex<Discovery>,
    mesh_psk: PresharedKey,
    stop: AtomicBool,
    /// The path prober's counters, refreshed every turn.
    pub(crate) path_stats: Mutex<ProbeStats>,
}

impl DiscoveryHub {
    pub(crate) fn new(discovery: Discovery, mesh_psk: PresharedKey) -> DiscoveryHub {
        DiscoveryHub {
            discovery: Mutex::new(discovery),
            mesh_psk,
            stop: AtomicBool::new(false),
            path_stats: Mutex::new(ProbeStats::default()),
        }
    }

    /// The discovery port.
    pub(crate) fn port(&self) -> u16 {
        self.discovery.lock().map_or(0, |d| d.port())
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Discovery>, NodeError> {
        self.discovery.lock().map_err(|_| NodeError::Closed)
    }
}

/// The driver thread; dropping it stops and joins it.
#[derive(Debug)]
pub(crate) struct DiscoveryDriver {
    hub: Arc<DiscoveryHub>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DiscoveryDriver {
    /// Starts the driver; `configured` are the node's configured peers by id.
    pub(crate) fn start(
        hub: Arc<DiscoveryHub>,
        shared: Arc<Shared>,
        tx: Transmitter,
        configured: Vec<(PeerId, PublicKey)>,
        listen: Vec<SocketAddr>,
    ) -> std::io::Result<DiscoveryDriver> {
        let (h, s) = (hub.clone(), shared.clone());
        let (own_key, own, max_members) = {
            let d = hub
                .discovery
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?;
            let own: Vec<SocketAddr> = d
                .own_record()
                .endpoints
                .iter()
                .copied()
                .chain(listen)
                .collect();
            (d.own_record().public_key, own, d.max_members())
        };
        let paths = PathDriver::new(
            ProbeConfig::default(),
            max_members,
            own_key,
            own,
            shared.relay_config.port,
        );
        let thread = std::thread::Builder::new()
            .name("pnet-discovery".into())
            .spawn(move || {
                let mut driver = Driver {
                    hub: &h,
                    shared: &s,
                    tx: &tx,
                    keys: configured.iter().copied().collect(),
                    ids: configured.iter().map(|(id, k)| (*k, *id)).collect(),
                    next_observe: Instant::now(),
                    last_refresh: Instant::now(),
                    paths,
                    endpoints: HashMap::new(),
                };
                driver.run();
            })?;
        Ok(DiscoveryDriver {
            hub,
            shared,
            thread: Some(thread),
        })
    }

    /// The discovery state, for the node's queries.
    pub(crate) fn hub(&self) -> &DiscoveryHub {
        &self.hub
    }
}

impl Drop for DiscoveryDriver {
    fn drop(&mut self) {
        self.hub.stop.store(true, Ordering::Release);
        self.shared.discovery_wake.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Driver<'a> {
    hub: &'a DiscoveryHub,
    shared: &'a Shared,
    tx: &'a Transmitter,
    keys: HashMap<PeerId, PublicKey>,
    ids: HashMap<PublicKey, PeerId>,
    next_observe: Instant,
    last_refresh: Instant,
    paths: PathDriver,
    /// Each peer's endpoint when last observed.
    endpoints: HashMap<PublicKey, SocketAddr>,
}

impl Driver<'_> {
    fn run(&mut self) {
        while !self.hub.stop.load(Ordering::Acquire) {
            self.shared.discovery_wake.clear();
            let now = Instant::now();
            if now >= self.next_observe {
                self.next_observe = now + OBSERVE_INTERVAL;
                self.observe();
            }
            // Keys first, outside the lock: a peer added since the last look needs the peer list.
            let notices: Vec<(Event, Option<PublicKey>)> =
                std::iter::from_fn(|| self.shared.session_notices.pop())
                    .map(|e| (e, session_peer(&e).and_then(|p| self.key_of(p))))
                    .collect();
            let deliveries: Vec<_> = std::iter::from_fn(|| self.shared.discovery_deliveries.pop())
                .map(|d| {
                    let from = self.key_of(d.peer);
                    (d, from)
                })
                .collect();
            let (actions, transmits, events, next) = {
                let Ok(mut d) = self.hub.discovery.lock() else {
                    return;
                };
                for (event, key) in notices {
                    if let Some(key) = key {
                        if let Event::EndpointChanged { new, old, .. } = event {
                            self.track_if_relayed(&d, now, key, old, new);
                            self.paths.on_endpoint(&key, new);
                        }
                        on_session(&mut d, now, event, key);
                    }
                }
                for (delivery, from) in deliveries {
                    let udp = delivery
                        .buf
                        .as_slice()
                        .get(delivery.range.clone())
                        .and_then(ip::parse_udp);
                    if let (Some(udp), Some(from)) = (udp, from) {
                        d.handle_message(now, from, udp.payload);
                    }
                    self.shared.release(delivery.buf);
                }
                if now >= d.poll_timeout() {
                    d.handle_timeout(now, wall_us());
                }
                let actions: Vec<Action> = std::iter::from_fn(|| d.poll_action()).collect();
                let transmits: Vec<_> = std::iter::from_fn(|| d.poll_transmit()).collect();
                let events: Vec<Event> = std::iter::from_fn(|| d.poll_event()).collect();
                (actions, transmits, events, d.poll_timeout())
            };
            // Outside the lock: these wait on the control shard.
            let admitted = actions.iter().any(|a| matches!(a, Action::Admit { .. }));
            for a in actions {
                self.apply(a);
            }
            if admitted {
                // New members need their next hops now, not at the next observation.
                self.observe();
            }
            let port = self.shared.discovery_port.unwrap_or_default();
            for out in transmits {
                // A message the shards cannot take now is lost like a datagram on the way; the
                // periodic sync sends the table again.
                if let Err(e) =
                    self.tx
                        .try_send_udp(port, SocketAddr::new(out.dst, port), &out.message)
                {
                    tracing::trace!(to = %out.to.short(), error = %e, "discovery message not sent");
                }
            }
            for e in events {
                if let Event::MemberJoined { member, vouched_by } = e {
                    tracing::debug!(member = %member.short(), vouched_by = %vouched_by.short(), "member joined");
                }
                self.shared.push_event(e);
            }
            let path_deliveries: Vec<_> = std::iter::from_fn(|| self.shared.path_deliveries.pop())
                .map(|d| {
                    let from = self.key_of(d.peer);
                    (d, from)
                })
                .collect();
            let hub = self.hub;
            let ids = &self.ids;
            let next_probe = self.paths.turn(
                now,
                self.shared,
                self.tx,
                path_deliveries,
                &|k| ids.get(k).copied(),
                &|k| hub.discovery.lock().ok().and_then(|d| d.address_of(k)),
            );
            if let Ok(mut st) = self.hub.path_stats.lock() {
                *st = self.paths.stats();
            }
            let next = next_probe.map_or(next, |p| p.min(next));
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(IDLE_WAIT)
                .min(self.next_observe.saturating_duration_since(Instant::now()));
            if !wait.is_zero() {
                self.shared.discovery_wake.wait(Some(wait));
            }
        }
    }

    /// The key of `peer`, reading the peer list again (at most every [`MISS_REFRESH`]) for a peer
    /// added since.
    fn key_of(&mut self, peer: PeerId) -> Option<PublicKey> {
        if !self.keys.contains_key(&peer) && self.last_refresh.elapsed() >= MISS_REFRESH {
            self.observe();
        }
        self.keys.get(&peer).copied()
    }

    /// Reads every peer's key and endpoint: the endpoints are what we tell members about them.
    fn observe(&mut self) {
        self.last_refresh = Instant::now();
        let Ok(peers) = self.tx.ask(ControlRequest::PeerStats) else {
            return;
        };
        let Ok(mut d) = self.hub.discovery.lock() else {
            return;
        };
        let mut direct = std::collections::HashSet::new();
        for (id, stats) in peers {
            self.keys.insert(id, stats.public_key);
            self.ids.insert(stats.public_key, id);
            if stats.last_handshake.is_some() && stats.endpoint.is_some_and(|e| !is_relayed(&e)) {
                direct.insert(stats.public_key);
            }
            match stats.endpoint {
                Some(e) => self.endpoints.insert(stats.public_key, e),
                None => self.endpoints.remove(&stats.public_key),
            };
            d.set_observed(stats.public_key, stats.endpoint);
        }
        // Frames for a member we do not reach directly go to the neighbour that vouched for its
        // record: the reverse path of the flood (loop-free, see `mesh::relay`).
        let (endpoints, keys) = (&self.endpoints, &self.keys);
        let routes = d
            .members()
            .filter(|m| !direct.contains(&m.record.public_key))
            .filter_map(|m| {
                let member = m.record.public_key;
                if m.vouched_by != member {
                    return Some((member, m.vouched_by));
                }
                // It told us itself, over a session that a relay carries: frames go to that relay.
                let relay = endpoints
                    .get(&member)
                    .and_then(path::RelayPath::from_addr)
                    .and_then(|p| keys.get(&p.relay).copied())?;
                Some((member, relay))
            })
            .collect::<Vec<(PublicKey, PublicKey)>>();
        // Every neighbour that is a member may relay for a relayed member: the route's next hop
        // first. The prober probes through each and moves the member off a relay that stops
        // answering.
        let now = Instant::now();
        let next_hops: HashMap<PublicKey, PublicKey> = routes.iter().copied().collect();
        let mut neighbours: Vec<PublicKey> = direct
            .iter()
            .filter(|k| d.member(k).is_some())
            .copied()
            .collect();
        neighbours.sort_by_key(|k| *k.as_bytes());
        for member in self.paths.tracked() {
            let first = next_hops.get(&member).copied();
            for relay in first.into_iter().chain(neighbours.iter().copied()) {
                if let Some(id) = self.ids.get(&relay) {
                    self.paths.offer_relay(now, &member, relay, path::via(*id));
                }
            }
        }
        // A relayed member whose next hop changed (a shorter path came along): send through the new
        // one from now on, and probe with it as the fallback; never onto a relay that stopped
        // answering.
        let moves: Vec<(PeerId, PublicKey, PublicKey, PeerId)> = routes
            .iter()
            .filter(|(_, via)| direct.contains(via))
            .filter(|(member, via)| self.paths.relay_usable(now, member, via))
            // A configured peer's path (`Via`) is the operator's choice.
            .filter(|(member, _)| d.member(member).is_some_and(|m| !m.configured))
            .filter_map(|(member, via)| {
                let at = path::RelayPath::from_addr(self.endpoints.get(member)?)?;
                let current = self.keys.get(&at.relay)?;
                (current != via).then_some((
                    *self.ids.get(member)?,
                    *member,
                    *via,
                    *self.ids.get(via)?,
                ))
            })
            .collect();
        for (id, member, via, via_id) in moves {
            let _ = self
                .tx
                .tell(ControlRequest::SetEndpoint(id, path::via(via_id)));
            self.paths.track(now, member, via, &[]);
        }
        self.shared.set_relay_routes(routes);
    }

    /// A discovered member that a handshake through a relay moved onto it (it was admitted with a
    /// direct endpoint, or restarted behind a new one): probe its way back to a direct path, trying
    /// the endpoint it had first.
    fn track_if_relayed(
        &mut self,
        d: &Discovery,
        now: Instant,
        key: PublicKey,
        old: Option<SocketAddr>,
        new: SocketAddr,
    ) {
        let Some(relayed) = path::RelayPath::from_addr(&new) else {
            return;
        };
        let Some(member) = d.member(&key).filter(|m| !m.configured) else {
            return;
        };
        if self.paths.is_tracked(&key) {
            return;
        }
        let Some(relay) = self.keys.get(&relayed.relay).copied() else {
            return;
        };
        let candidates: Vec<(CandidateSource, SocketAddr)> = member
            .record
            .endpoints
            .iter()
            .map(|e| (CandidateSource::Advertised, *e))
            .chain(member.observed.map(|o| (CandidateSource::Reflexive, o)))
            .chain(
                old.filter(|o| !is_relayed(o))
                    .map(|o| (CandidateSource::Advertised, o)),
            )
            .collect();
        self.paths.track(now, key, relay, &candidates);
    }

    /// A discovered member as a peer: keyed with the mesh PSK, holding what it claims.
    fn member_config(&self, key: PublicKey, allowed_ips: Vec<AllowedIp>) -> PeerConfig {
        allowed_ips.into_iter().fold(
            PeerConfig::new(key).preshared_key(self.hub.mesh_psk.clone()),
            PeerConfig::allowed_ip,
        )
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Admit {
                key,
                allowed_ips,
                endpoint,
                vouched_by,
                candidates,
            } => {
                let mut config = self.member_config(key, allowed_ips);
                // Learned through a neighbour we reach directly: start through it (a path that
                // works whatever the underlay between us), and promote once a probe succeeds.
                if !self.endpoints.contains_key(&vouched_by) {
                    self.observe();
                }
                let relay = (vouched_by != key)
                    .then(|| self.ids.get(&vouched_by).copied())
                    .flatten()
                    .filter(|_| {
                        self.endpoints
                            .get(&vouched_by)
                            .is_some_and(|e| !is_relayed(e))
                    });
                match (relay, endpoint) {
                    (Some(relay), _) => config = config.endpoint(path::via(relay)),
                    (None, Some(e)) => config = config.endpoint(e),
                    (None, None) => {}
                }
                match self
                    .tx
                    .ask(|reply| ControlRequest::AddPeer(Box::new(config), reply))
                {
                    Ok(Ok(id)) => {
                        self.keys.insert(id, key);
                        self.ids.insert(key, id);
                        if relay.is_some() {
                            self.paths
                                .track(Instant::now(), key, vouched_by, &candidates);
                        }
                        // Handshake now: the pair talks directly from here on.
                        let _ = self.tx.tell(ControlRequest::Connect(id));
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(member = %key.short(), error = %e, "member not admitted");
                        if let Ok(mut d) = self.hub.discovery.lock() {
                            d.admission_failed(&key);
                        }
                    }
                    Err(_) => {}
                }
            }
            Action::Update { key, allowed_ips } => {
                let Some(id) = self.ids.get(&key).copied() else {
                    return;
                };
                let config = self.member_config(key, allowed_ips);
                let _ = self
                    .tx
                    .ask(|reply| ControlRequest::UpdatePeer(id, Box::new(config), reply));
            }
            Action::Forget { key } => {
                self.paths.forget(&key);
                if let Some(id) = self.ids.remove(&key) {
                    self.keys.remove(&id);
                    let _ = self.tx.ask(|reply| ControlRequest::RemovePeer(id, reply));
                }
            }
        }
    }
}

/// The peer a session event is about.
fn session_peer(event: &Event) -> Option<PeerId> {
    match *event {
        Event::PeerUp { peer }
        | Event::PeerDown { peer }
        | Event::HandshakeCompleted { peer, .. }
        | Event::EndpointChanged { peer, .. } => Some(peer),
        _ => None,
    }
}

fn on_session(d: &mut Discovery, now: Instant, event: Event, key: PublicKey) {
    match event {
        Event::PeerUp { .. } | Event::HandshakeCompleted { .. } => d.session_up(now, key),
        Event::PeerDown { .. } => d.session_down(&key),
        Event::EndpointChanged { new, .. } => d.set_observed(key, Some(new)),
        _ => {}
    }
}

/// The wall clock in µs since the UNIX epoch (record versions).
pub(crate) fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
