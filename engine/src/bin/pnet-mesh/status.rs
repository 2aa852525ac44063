//! `show`: a running node's status, gathered by the node (as JSON over its control socket) and
//! printed by the client in `wg show`'s layout or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use pnet_mesh::Node;
use pnet_mesh::proto::path::RelayPath;
use pnet_mesh::wg_quick::WgQuickConfig;
use serde::{Deserialize, Serialize};

use crate::control;
use crate::forward::{Counters, ExposeRule, ForwardRule, RuleCounters};

/// Everything `show` prints about one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The name `show` knows the node by.
    pub interface: String,
    /// Its public key (base64).
    pub public_key: String,
    /// The UDP port it listens on.
    pub listening_port: u16,
    /// Every bound UDP address.
    pub listen: Vec<String>,
    /// Its mesh addresses.
    pub mesh_addresses: Vec<String>,
    /// `io_uring` or `mmsg`.
    pub backend: String,
    /// Data shards running.
    pub data_shards: usize,
    /// One entry per peer, in configuration order.
    pub peers: Vec<PeerStatus>,
    /// One entry per `--forward`.
    pub forwards: Vec<RuleStatus>,
    /// One entry per `--expose`.
    pub exposes: Vec<RuleStatus>,
    /// Datagrams from the mesh to a port no rule serves.
    pub unrouted: u64,
    /// Handshake load: under load (cookies required), cookie replies sent, limiter sources.
    #[serde(default)]
    pub handshakes: HandshakeLoad,
    /// Packets the node dropped, by reason (only reasons that occurred).
    pub drops: BTreeMap<String, u64>,
    /// Discovery, when `MeshPresharedKey` is set.
    #[serde(default)]
    pub discovery: Option<DiscoveryStatus>,
    /// Frames this node relayed for members, and its own relayed traffic.
    #[serde(default)]
    pub relay: RelayStatus,
    /// Messages that crossed channels (`--channel-echo`, `--channel-send`).
    #[serde(default)]
    pub channels: crate::channels::ChannelStatus,
    /// Memory of the packet buffer pools.
    #[serde(default)]
    pub memory: MemoryStatus,
}

/// Memory the node holds for packets: the buffer pools are reserved at start and become resident
/// page by page as traffic first writes them, so their resident part grows with the deepest burst
/// seen, up to the reservation, and is never given back while the node runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryStatus {
    /// Bytes of address space mapped for every buffer.
    pub buffer_pools_reserved_bytes: u64,
    /// Bytes of it resident now.
    pub buffer_pools_resident_bytes: u64,
}

/// Relay counters of the node (and of its path prober, when discovery runs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RelayStatus {
    /// Frames passed on for other members.
    pub forwarded: u64,
    /// Frames for this node that a relay brought.
    pub delivered: u64,
    /// Frames this node started (for peers it reaches through a relay).
    pub originated: u64,
    /// Frames refused, by reason (only reasons that occurred).
    pub drops: BTreeMap<String, u64>,
    /// Members reached through a relay whose paths are probed.
    pub probed_members: usize,
    /// Of those, promoted to a direct path now.
    pub direct_members: usize,
    /// Promotions and fallbacks so far.
    pub promotions: u64,
    /// See `promotions`.
    pub fallbacks: u64,
    /// Moves of relayed members to another relay after theirs stopped answering probes.
    #[serde(default)]
    pub relay_failovers: u64,
    /// Probe answers that came back through the relay they were sent through.
    #[serde(default)]
    pub relay_answers: u64,
    /// Next hops of frames for members not reached directly.
    #[serde(default)]
    pub routes: Vec<RouteStatus>,
}

/// One next hop.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteStatus {
    /// The member frames are for (base64 key).
    pub member: String,
    /// The neighbour they go to (base64 key).
    pub via: String,
}

/// What discovery knows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiscoveryStatus {
    /// Every member held.
    pub members: Vec<MemberStatus>,
    /// Discovery messages sent and received.
    pub messages_sent: u64,
    /// See `messages_sent`.
    pub messages_received: u64,
    /// Records and messages refused, by reason (only reasons that occurred).
    pub drops: BTreeMap<String, u64>,
}

/// One member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its key (base64).
    pub public_key: String,
    /// The member whose session carried its latest record.
    pub vouched_by: String,
    /// Its record's version (µs since the UNIX epoch when issued).
    pub version: u64,
    /// The addresses it claims.
    pub addresses: Vec<String>,
    /// Whether the node's own configuration names it.
    pub configured: bool,
}

/// One peer, as `wg show` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    /// Public key (base64).
    pub public_key: String,
    /// Whether a preshared key is configured (never the key itself).
    pub preshared_key: bool,
    /// Where its packets go now: a socket address, or `via KEY` through the relay member KEY.
    pub endpoint: Option<String>,
    /// The relay member it is reached through, if it is.
    #[serde(default)]
    pub via: Option<String>,
    /// Allowed IPs.
    pub allowed_ips: Vec<String>,
    /// Unix seconds of the latest handshake; 0 = never (as `wg show dump`).
    pub latest_handshake: u64,
    /// Bytes received from the peer.
    pub transfer_rx: u64,
    /// Bytes sent to the peer.
    pub transfer_tx: u64,
    /// Persistent keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// Transport messages received and sent, keepalives included.
    pub rx_packets: u64,
    /// See `rx_packets`.
    pub tx_packets: u64,
    /// Handshake initiations sent.
    pub handshakes_initiated: u64,
    /// Packets held for a handshake and then dropped (the hold queue was full, or the handshake
    /// failed).
    #[serde(default)]
    pub staged_dropped: u64,
}

/// The control plane's defences against handshake floods.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HandshakeLoad {
    /// Whether the node is under load now (initiations need a valid mac2).
    pub under_load: bool,
    /// Cookie replies sent so far.
    pub cookie_replies_sent: u64,
    /// Sources the per-source rate limiter tracks now.
    pub rate_limiter_entries: u64,
}

/// One forwarding rule's counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleStatus {
    /// The rule as given on the command line.
    pub rule: String,
    /// Flows held now.
    pub flows: usize,
    /// Datagrams into the mesh.
    pub to_mesh: u64,
    /// Datagrams out of the mesh.
    pub from_mesh: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Flows dropped to make room.
    pub evicted: u64,
}

/// Every packet the node dropped, by reason (only reasons that occurred): the per-reason counters,
/// and the drops counted apart from them: packets held for a handshake that did not go out, packets
/// the data shards could not send, packets the application's receive queue had no room for.
fn packet_drops(stats: &pnet_mesh::NodeStats) -> BTreeMap<String, u64> {
    let shards =
        |f: fn(&pnet_mesh::node::DataShardStats) -> u64| stats.data_shards.iter().map(f).sum();
    let apart = DropsCountedApart {
        staged: stats.peers.iter().map(|(_, p)| p.staged_dropped).sum(),
        send_failed: shards(|s| s.send_failed),
        delivery_queue_full: shards(|s| s.delivery_dropped),
    };
    apart.merged_with(stats.drops.iter().map(|(reason, n)| (reason.name(), n)))
}

/// Drops the peers and data shards count apart from the per-reason counters.
struct DropsCountedApart {
    staged: u64,
    send_failed: u64,
    delivery_queue_full: u64,
}

impl DropsCountedApart {
    /// These with the per-reason `(reason, count)`s, the reasons that occurred.
    fn merged_with<'a>(
        &self,
        receive: impl Iterator<Item = (&'a str, u64)>,
    ) -> BTreeMap<String, u64> {
        receive
            .chain([
                ("StagedDropped", self.staged),
                ("SendFailed", self.send_failed),
                ("DeliveryQueueFull", self.delivery_queue_full),
            ])
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| (reason.to_owned(), n))
            .collect()
    }
}

/// What the node side needs to answer `show`.
pub struct Source<'a> {
    pub interface: String,
    pub node: &'a Node,
    pub config: &'a WgQuickConfig,
    pub forwards: Vec<ForwardRule>,
    pub exposes: Vec<ExposeRule>,
    pub counters: &'a Counters,
    pub channels: &'a crate::channels::Channels,
}

impl Source<'_> {
    /// The node's status now.
    pub fn status(&self) -> Status {
        let stats = self.node.stats();
        let listen = self.node.local_addrs();
        let key_of = |id: pnet_mesh::PeerId| {
            stats
                .peers
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, p)| p.public_key.to_string())
        };
        let via = |e: &std::net::SocketAddr| {
            RelayPath::from_addr(e).map(|p| key_of(p.relay).unwrap_or_else(|| p.relay.to_string()))
        };
        let peers = stats
            .peers
            .iter()
            .map(|(id, p)| PeerStatus {
                public_key: p.public_key.to_string(),
                // With a mesh PSK every peer has one (its own, or the mesh's).
                preshared_key: self.config.interface.mesh_preshared_key.is_some()
                    || self
                        .config
                        .peers
                        .get(id.0 as usize)
                        .is_some_and(|s| s.has_preshared_key),
                endpoint: p.endpoint.map(|e| match via(&e) {
                    Some(relay) => format!("via {relay}"),
                    None => e.to_string(),
                }),
                via: p.endpoint.as_ref().and_then(via),
                allowed_ips: p.allowed_ips.iter().map(|n| n.to_string()).collect(),
                latest_handshake: p
                    .last_handshake
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
                transfer_rx: p.rx_bytes,
                transfer_tx: p.tx_bytes,
                persistent_keepalive: p.persistent_keepalive,
                rx_packets: p.rx_packets,
                tx_packets: p.tx_packets,
                handshakes_initiated: p.handshakes_initiated,
                staged_dropped: p.staged_dropped,
            })
            .collect();
        let rule = |rule: String, c: &RuleCounters| RuleStatus {
            rule,
            flows: c.flows.load(Ordering::Relaxed),
            to_mesh: c.to_mesh.load(Ordering::Relaxed),
            from_mesh: c.from_mesh.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
        };
        Status {
            interface: self.interface.clone(),
            public_key: self.node.public_key().to_string(),
            listening_port: listen.first().map_or(0, |a| a.port()),
            listen: listen.iter().map(|a| a.to_string()).collect(),
            mesh_addresses: self
                .node
                .mesh_addresses()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            backend: stats.backend.to_string(),
            data_shards: stats.data_shards.len(),
            peers,
            forwards: self
                .forwards
                .iter()
                .zip(&self.counters.forwards)
                .map(|(r, c)| rule(r.to_string(), c))
                .collect(),
            exposes: self
                .exposes
                .iter()
                .zip(&self.counters.exposes)
                .map(|(r, c)| rule(r.to_string(), c))
                .collect(),
            unrouted: self.counters.unrouted.load(Ordering::Relaxed),
            handshakes: HandshakeLoad {
                under_load: stats.under_load,
                cookie_replies_sent: stats.cookie_replies_sent,
                rate_limiter_entries: stats.rate_limiter_entries,
            },
            drops: packet_drops(&stats),
            discovery: self.discovery(),
            relay: self.relay(),
            channels: self.channels.status(),
            memory: MemoryStatus {
                buffer_pools_reserved_bytes: stats.buffer_pools.reserved_bytes as u64,
                buffer_pools_resident_bytes: stats.buffer_pools.resident_bytes as u64,
            },
        }
    }

    fn relay(&self) -> RelayStatus {
        let r = self.node.relay_stats();
        let p = self.node.path_stats().unwrap_or_default();
        RelayStatus {
            forwarded: r.forwarded,
            delivered: r.delivered,
            originated: r.originated,
            drops: r
                .drops
                .iter()
                .map(|(reason, n)| (reason.name().to_owned(), n))
                .collect(),
            probed_members: p.members,
            direct_members: p.direct,
            promotions: p.promotions,
            fallbacks: p.fallbacks,
            relay_failovers: p.relay_failovers,
            relay_answers: p.relay_answers,
            routes: self
                .node
                .relay_routes()
                .into_iter()
                .map(|(member, via)| RouteStatus {
                    member: member.to_string(),
                    via: via.to_string(),
                })
                .collect(),
        }
    }

    fn discovery(&self) -> Option<DiscoveryStatus> {
        let stats = self.node.discovery_stats()?;
        let mut members: Vec<MemberStatus> = self
            .node
            .members()
            .unwrap_or_default()
            .into_iter()
            .map(|m| MemberStatus {
                public_key: m.record.public_key.to_string(),
                vouched_by: m.vouched_by.to_string(),
                version: m.record.version,
                addresses: m.record.addresses.iter().map(|a| a.to_string()).collect(),
                configured: m.configured,
            })
            .collect();
        members.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        Some(DiscoveryStatus {
            members,
            messages_sent: stats.messages_sent,
            messages_received: stats.messages_received,
            drops: stats
                .drops
                .iter()
                .map(|(reason, n)| (reason.name().to_owned(), n))
                .collect(),
        })
    }
}

/// `pnet-mesh show [NAME] [--json] [--control PATH]`.
pub fn show(name: Option<&str>, control_path: Option<PathBuf>, json: bool) -> Result<(), String> {
    let paths = match (control_path, name) {
        (Some(path), _) => vec![path],
        (None, Some(name)) => vec![control::socket_path(&control::run_dir(), name)],
        (None, None) => control::running_sockets(&control::run_dir())?,
    };
    let mut statuses = Vec::with_capacity(paths.len());
    for path in &paths {
        statuses.push(control::query(path)?);
    }
    if json {
        let text = serde_json::to_string_pretty(&statuses).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let texts: Vec<String> = statuses.iter().map(|s| render(s, now)).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(())
}

/// The `wg show` layout, with our additions (mesh addresses, backend, forwarding) in the interface
/// block. `now` is unix seconds, for "latest handshake: … ago".
pub fn render(s: &Status, now: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "interface: {}", s.interface);
    let _ = writeln!(out, "  public key: {}", s.public_key);
    let _ = writeln!(out, "  private key: (hidden)");
    let _ = writeln!(out, "  listening port: {}", s.listening_port);
    if !s.mesh_addresses.is_empty() {
        let _ = writeln!(out, "  mesh addresses: {}", s.mesh_addresses.join(", "));
    }
    let _ = writeln!(
        out,
        "  backend: {} ({} data shards)",
        s.backend, s.data_shards
    );
    if s.memory.buffer_pools_reserved_bytes > 0 {
        let _ = writeln!(
            out,
            "  buffers: {} resident of {} reserved",
            bytes(s.memory.buffer_pools_resident_bytes),
            bytes(s.memory.buffer_pools_reserved_bytes)
        );
    }
    if let Some(d) = &s.discovery {
        let _ = writeln!(
            out,
            "  discovery: {} members ({} messages sent, {} received)",
            d.members.len(),
            d.messages_sent,
            d.messages_received
        );
    }
    let r = &s.relay;
    if r.forwarded + r.delivered + r.originated > 0 || r.probed_members > 0 {
        let _ = writeln!(
            out,
            "  relay: {} forwarded, {} delivered, {} originated, {} refused; {} of {} relayed members direct, {} relay failovers",
            r.forwarded,
            r.delivered,
            r.originated,
            r.drops.values().sum::<u64>(),
            r.direct_members,
            r.probed_members,
            r.relay_failovers
        );
    }
    for (kind, rules) in [("forward", &s.forwards), ("expose", &s.exposes)] {
        for r in rules {
            let _ = writeln!(
                out,
                "  {kind}: {} ({} flows, {} to mesh, {} from mesh, {} dropped)",
                r.rule, r.flows, r.to_mesh, r.from_mesh, r.dropped
            );
        }
    }
    for p in &s.peers {
        let _ = writeln!(out, "\npeer: {}", p.public_key);
        if p.preshared_key {
            let _ = writeln!(out, "  preshared key: (hidden)");
        }
        if let Some(endpoint) = &p.endpoint {
            let _ = writeln!(out, "  endpoint: {endpoint}");
        }
        let allowed = if p.allowed_ips.is_empty() {
            "(none)".to_owned()
        } else {
            p.allowed_ips.join(", ")
        };
        let _ = writeln!(out, "  allowed ips: {allowed}");
        if p.latest_handshake > 0 {
            let _ = writeln!(
                out,
                "  latest handshake: {}",
                ago(now.saturating_sub(p.latest_handshake))
            );
        }
        if p.transfer_rx > 0 || p.transfer_tx > 0 {
            let _ = writeln!(
                out,
                "  transfer: {} received, {} sent",
                bytes(p.transfer_rx),
                bytes(p.transfer_tx)
            );
        }
        if let Some(k) = p.persistent_keepalive {
            let _ = writeln!(
                out,
                "  persistent keepalive: every {}",
                duration(u64::from(k))
            );
        }
    }
    out
}

/// "1 minute, 5 seconds ago", or "Now", as `wg show` prints it.
fn ago(seconds: u64) -> String {
    if seconds == 0 {
        "Now".to_owned()
    } else {
        format!("{} ago", duration(seconds))
    }
}

fn duration(seconds: u64) -> String {
    let units = [
        (seconds / (365 * 86400), "year"),
        (seconds % (365 * 86400) / 86400, "day"),
        (seconds % 86400 / 3600, "hour"),
        (seconds % 3600 / 60, "minute"),
        (seconds % 60, "second"),
    ];
    let parts: Vec<String> = units
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    parts.join(", ")
}

/// "1.50 KiB", as `wg show` prints byte counts.
fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            return format!("{:.2} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A status with one busy and one idle peer and one forward.
    pub fn status(interface: &str) -> Status {
        Status {
            interface: interface.into(),
            public_key: "PUB".into(),
            listening_port: 51820,
            listen: vec!["[::]:51820".into()],
            mesh_addresses: vec!["10.0.0.1".into()],
            backend: "io_uring".into(),
            data_shards: 2,
            peers: vec![
                PeerStatus {
                    public_key: "PEER".into(),
                    preshared_key: true,
                    endpoint: Some("192.0.2.2:51820".into()),
                    via: None,
                    allowed_ips: vec!["10.0.0.2/32".into(), "fd00::2/128".into()],
                    latest_handshake: 1000,
                    transfer_rx: 1536,
                    transfer_tx: 92,
                    persistent_keepalive: Some(25),
                    rx_packets: 3,
                    tx_packets: 1,
                    handshakes_initiated: 1,
                    staged_dropped: 0,
                },
                PeerStatus {
                    public_key: "IDLE".into(),
                    preshared_key: false,
                    endpoint: None,
                    via: None,
                    allowed_ips: vec![],
                    latest_handshake: 0,
                    transfer_rx: 0,
                    transfer_tx: 0,
                    persistent_keepalive: None,
                    rx_packets: 0,
                    tx_packets: 0,
                    handshakes_initiated: 0,
                    staged_dropped: 0,
                },
            ],
            forwards: vec![RuleStatus {
                rule: "127.0.0.1:7000=10.0.0.2:53".into(),
                flows: 1,
                to_mesh: 4,
                from_mesh: 3,
                dropped: 0,
                evicted: 0,
            }],
            exposes: vec![],
            unrouted: 0,
            handshakes: HandshakeLoad::default(),
            drops: BTreeMap::new(),
            discovery: None,
            relay: RelayStatus::default(),
            channels: crate::channels::ChannelStatus::default(),
            memory: MemoryStatus::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        tests_support::status("wg0")
    }

    #[test]
    fn renders_relayed_peers_and_the_relay_counters() {
        let mut s = sample();
        s.peers[1].endpoint = Some("via RELAYKEY".into());
        s.peers[1].via = Some("RELAYKEY".into());
        s.relay = RelayStatus {
            forwarded: 10,
            delivered: 4,
            originated: 3,
            drops: BTreeMap::from([("HopLimit".to_owned(), 2)]),
            probed_members: 2,
            direct_members: 1,
            promotions: 1,
            fallbacks: 0,
            relay_failovers: 1,
            relay_answers: 9,
            routes: vec![RouteStatus {
                member: "FAR".into(),
                via: "RELAYKEY".into(),
            }],
        };
        let text = render(&s, 1065);
        assert!(
            text.contains(
                "  relay: 10 forwarded, 4 delivered, 3 originated, 2 refused; 1 of 2 relayed members direct, 1 relay failovers\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("peer: IDLE\n  endpoint: via RELAYKEY\n"),
            "{text}"
        );
        let json = serde_json::to_string(&s).unwrap();
        let back: Status = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn counts_the_drops_counted_apart_with_the_per_reason_ones() {
        let apart = DropsCountedApart {
            staged: 21,
            send_failed: 0,
            delivery_queue_full: 3,
        };
        let drops = apart.merged_with([("Replayed", 2), ("HopLimit", 0)].into_iter());
        assert_eq!(
            drops,
            BTreeMap::from([
                ("DeliveryQueueFull".to_owned(), 3),
                ("Replayed".to_owned(), 2),
                ("StagedDropped".to_owned(), 21),
            ])
        );
    }

    #[test]
    fn renders_the_buffer_pools_memory_once_known() {
        let mut s = sample();
        s.memory = MemoryStatus {
            buffer_pools_reserved_bytes: 24 << 20,
            buffer_pools_resident_bytes: 3 << 20,
        };
        let text = render(&s, 1065);
        assert!(
            text.contains("  backend: io_uring (2 data shards)\n  buffers: 3.00 MiB resident of 24.00 MiB reserved\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_the_wg_show_layout() {
        let text = render(&sample(), 1065);
        assert_eq!(
            text,
            "interface: wg0\n  public key: PUB\n  private key: (hidden)\n  listening port: 51820\n\
             \x20 mesh addresses: 10.0.0.1\n  backend: io_uring (2 data shards)\n\
             \x20 forward: 127.0.0.1:7000=10.0.0.2:53 (1 flows, 4 to mesh, 3 from mesh, 0 dropped)\n\
             \npeer: PEER\n  preshared key: (hidden)\n  endpoint: 192.0.2.2:51820\n\
             \x20 allowed ips: 10.0.0.2/32, fd00::2/128\n  latest handshake: 1 minute, 5 seconds ago\n\
             \x20 transfer: 1.50 KiB received, 92 B sent\n  persistent keepalive: every 25 seconds\n\
             \npeer: IDLE\n  allowed ips: (none)\n"
        );
    }

    #[test]
    fn json_round_trips() {
        let s = sample();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), s);
    }

    #[test]
    fn durations_and_sizes_read_like_wg() {
        assert_eq!(ago(0), "Now");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(3600 * 2 + 1), "2 hours, 1 second ago");
        assert_eq!(duration(86400 + 60), "1 day, 1 minute");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
    }
}
