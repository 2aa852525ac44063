//! The `relay-loopback` macro scenario: A → R → B, three nodes over localhost UDP where A reaches B
//! only through the relay member R (`PeerConfig::via`), beside a direct A → B pair measured in the
//! same run with the same placement and sizes. `ratio_vs_direct` is the relayed packet rate over the
//! direct one. Every relayed datagram is sealed twice at A (end to end, then into A's session with
//! R), opened and sealed again at R, and opened twice at B.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::mesh::relay::RELAY_OVERHEAD;
use pnet_mesh::{Backend, Node, NodeError, PeerConfig};
use serde::Serialize;

use crate::environment::Environment;
use crate::in_memory::MTU;
use crate::pair;
use crate::threads;
use crate::udp_loopback::drive::{Link, PhaseOptions, STAMP_LEN};
use crate::udp_loopback::node_link::{NodeLink, wait_for_session};
use crate::udp_loopback::{LegReport, leg, ratio};

const A_MESH: &str = "10.78.0.1";
const R_MESH: &str = "10.78.0.2";
const B_MESH: &str = "10.78.0.3";
const PORT: u16 = 51800;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLoopbackOptions {
    /// The inner IP packet length (IPv4 + UDP headers + application bytes).
    pub payload: usize,
    /// Untimed first, in each phase.
    pub warmup: Duration,
    /// Measured, in each phase.
    pub duration: Duration,
    /// Data shards per node.
    pub shards: usize,
    /// The backend of all three nodes.
    pub backend: Backend,
}

/// The JSON object the scenario prints.
#[derive(Debug, Clone, Serialize)]
pub struct RelayLoopbackReport {
    /// `"relay-loopback"`.
    pub scenario: &'static str,
    /// Data shards per node.
    pub shards: usize,
    /// The backend the nodes ran.
    pub backend: String,
    /// The inner IP packet length.
    pub payload_size: usize,
    /// Application bytes per datagram.
    pub application_bytes_per_packet: usize,
    /// Outer UDP payload bytes per relayed datagram on each hop (frame, end-to-end message, outer
    /// transport header and tag).
    pub wire_bytes_per_packet: usize,
    /// The nodes' MTU.
    pub mtu: usize,
    /// Warm-up of each phase, seconds.
    pub warmup_secs: f64,
    /// Measured window of each phase, seconds.
    pub measured_secs: f64,
    /// `(sender, receiver)` CPUs; the relay is not pinned.
    pub cpus: (usize, usize),
    /// Relayed packets per second.
    pub packets_per_sec: f64,
    /// Application bytes per second, relayed.
    pub payload_bytes_per_sec: f64,
    /// Outer UDP payload bytes per second on one hop, relayed.
    pub wire_bytes_per_sec: f64,
    /// The relayed leg in full.
    pub ours: LegReport,
    /// The direct pair, same run.
    pub direct: LegReport,
    /// `ours / direct`.
    pub ratio_vs_direct: f64,
    /// Frames the relay forwarded over the whole run.
    pub relay_forwarded: u64,
    /// Frames the relay refused over the whole run.
    pub relay_dropped: u64,
    /// Machine and build.
    #[serde(flatten)]
    pub environment: Environment,
}

/// A, R and B; A sends to B through R.
#[derive(Debug)]
struct RelayLink {
    a: Node,
    r: Node,
    b: Node,
    to: SocketAddr,
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| format!("{s}: {e}"))
}

impl RelayLink {
    fn start(backend: Backend, shards: usize, cpus: (usize, usize)) -> Result<RelayLink, String> {
        let [a_key, r_key, b_key] =
            [0x1a, 0x1b, 0x1c].map(|s| PrivateKey::generate(&mut SeededRng::new(s)));
        let host = |ip: &str| parse(&format!("{ip}/32"));
        let r = Node::builder(r_key.clone())
            .listen(parse("127.0.0.1:0")?)
            .mesh_address(parse(R_MESH)?)
            .backend(backend)
            .data_shards(shards)
            .peer(PeerConfig::new(a_key.public_key()).allowed_ip(host(A_MESH)?))
            .peer(PeerConfig::new(b_key.public_key()).allowed_ip(host(B_MESH)?))
            .start()
            .map_err(|e| format!("relay R: {e}"))?;
        let r_addr = r.local_addrs()[0];
        let b = Node::builder(b_key.clone())
            .listen(parse("127.0.0.1:0")?)
            .mesh_address(parse(B_MESH)?)
            .backend(backend)
            .data_shards(shards)
            .cores(vec![cpus.1; shards + 1])
            .datagram_port(PORT)
            .peer(
                PeerConfig::new(r_key.public_key())
                    .endpoint(r_addr)
                    .allowed_ip(host(R_MESH)?)
                    .persistent_keepalive(25),
            )
            .peer(
                PeerConfig::new(a_key.public_key())
                    .via(r_key.public_key())
                    .allowed_ip(host(A_MESH)?),
            )
            .start()
            .map_err(|e| format!("node B: {e}"))?;
        let a = Node::builder(a_key)
            .listen(parse("127.0.0.1:0")?)
            .mesh_address(parse(A_MESH)?)
            .backend(backend)
            .data_shards(shards)
            .cores(vec![cpus.0; shards + 1])
            .datagram_port(PORT)
            .peer(
                PeerConfig::new(r_key.public_key())
                    .endpoint(r_addr)
                    .allowed_ip(host(R_MESH)?),
            )
            .peer(
                PeerConfig::new(b_key.public_key())
                    .via(r_key.public_key())
                    .allowed_ip(host(B_MESH)?),
            )
            .start()
            .map_err(|e| format!("node A: {e}"))?;
        let to = SocketAddr::new(parse(B_MESH)?, PORT);
        wait_for_session(&a, &b, to, Duration::from_secs(10))
            .map_err(|e| format!("relayed: {e}"))?;
        Ok(RelayLink { a, r, b, to })
    }
}

impl Link for RelayLink {
    fn try_send(&self, app: &[u8]) -> bool {
        match self.a.try_send_to(app, self.to) {
            Ok(()) => true,
            Err(NodeError::WouldBlock) => false,
            Err(_) => false,
        }
    }

    fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<usize> {
        self.b.recv_from_timeout(buf, wait).ok().map(|(n, _)| n)
    }
}

/// Runs the scenario; `progress` gets one line per phase.
///
/// # Errors
/// A payload outside 44..=MTU, or a leg that would not start.
pub fn run(
    opts: &RelayLoopbackOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RelayLoopbackReport, String> {
    let len = opts.payload;
    let min = pair::UDP_IPV4_HEADERS + STAMP_LEN;
    if !(min..=MTU).contains(&len) {
        return Err(format!(
            "--payload {len}: the inner IP packet must be {min} to {MTU} bytes"
        ));
    }
    let environment = Environment::detect();
    let cpus = threads::sender_receiver_cpus();
    let app_len = len - pair::UDP_IPV4_HEADERS;
    let direct_wire = pair::transport_len(len, MTU);
    // The end-to-end message in a frame (IPv4 + UDP + 68-byte header) in the hop's session.
    let frame_len = pair::UDP_IPV4_HEADERS + 68 + direct_wire;
    let wire = pair::transport_len(frame_len, MTU + RELAY_OVERHEAD);
    let phase = PhaseOptions {
        app_len,
        cpus,
        warmup: opts.warmup,
        duration: opts.duration,
        rate: None,
    };
    progress("relay-loopback: direct pair");
    let direct = {
        let nodes = Arc::new(NodeLink::start(opts.backend, opts.shards, cpus)?);
        leg(
            "two pnet-mesh nodes, direct",
            nodes,
            phase,
            direct_wire,
            progress,
        )?
    };
    progress("relay-loopback: A -> R -> B");
    let link = Arc::new(RelayLink::start(opts.backend, opts.shards, cpus)?);
    let backend = link.a.backend().to_string();
    let ours = leg(
        "three pnet-mesh nodes, A reaches B through the relay R (nested: end to end inside A-R and R-B)",
        link.clone(),
        phase,
        wire,
        progress,
    )?;
    let relay = link.r.relay_stats();
    let pps = ours.packets_per_sec;
    progress(&format!(
        "relay-loopback: {:.0}/s relayed, {:.0}/s direct, ratio {:.2}",
        pps,
        direct.packets_per_sec,
        ratio(pps, direct.packets_per_sec)
    ));
    Ok(RelayLoopbackReport {
        scenario: "relay-loopback",
        shards: opts.shards,
        backend,
        payload_size: len,
        application_bytes_per_packet: app_len,
        wire_bytes_per_packet: wire,
        mtu: MTU,
        warmup_secs: opts.warmup.as_secs_f64(),
        measured_secs: opts.duration.as_secs_f64(),
        cpus,
        packets_per_sec: pps,
        payload_bytes_per_sec: pps * app_len as f64,
        wire_bytes_per_sec: pps * wire as f64,
        ratio_vs_direct: ratio(pps, direct.packets_per_sec),
        direct,
        ours,
        relay_forwarded: relay.forwarded,
        relay_dropped: relay.drops.total(),
        environment,
    })
}
