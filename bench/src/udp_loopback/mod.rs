//! The `udp-loopback` macro scenario: two nodes over localhost UDP through the real runtime, node A's
//! sending shard and the producer on one CPU, node B's receiving shard and the consumer on the other,
//! measured beside, in the same run and with the same placement, sizes, batching and buffers:
//!
//! - the **ceiling**: the same runtime moving the same datagrams with a bare aws-lc-rs seal and open
//!   and no protocol ([`ceiling`]);
//! - **bare UDP**: the same with no crypto at all;
//! - the **peer**: boringtun's `noise::Tunn` the way its device loop drives it ([`boringtun_link`]).
//!
//! Each leg runs twice: flat out for the packet rate, then paced at half of that rate for the one-way
//! latency. With `--backend both`, io_uring and mmsg are measured one after the other.

pub mod boringtun_link;
pub mod ceiling;
pub mod drive;
pub mod node_link;

use std::sync::Arc;
use std::time::Duration;

use pnet_mesh::Backend;
use serde::Serialize;

use crate::alloc_count;
use crate::environment::Environment;
use crate::histogram::Latency;
use crate::in_memory::MTU;
use crate::pair;
use crate::threads::{self, ThreadReport};
use ceiling::{CeilingLink, Crypto};
use drive::{Link, Phase, PhaseOptions, STAMP_LEN};
use node_link::NodeLink;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpLoopbackOptions {
    /// The inner IP packet length (IPv4 + UDP headers + application bytes), 44 to [`MTU`].
    pub payload: usize,
    /// Untimed first, in each phase.
    pub warmup: Duration,
    /// Measured, in each phase.
    pub duration: Duration,
    /// Data shards per node.
    pub shards: usize,
    /// The backends to measure, in order (the first is the report's headline).
    pub backends: Vec<Backend>,
}

/// One leg's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct LegReport {
    /// What the leg moves and how.
    pub what: &'static str,
    /// Datagrams received per second, flat out.
    pub packets_per_sec: f64,
    /// Datagrams the producer got accepted in the flat-out window.
    pub packets_sent: u64,
    /// Datagrams the consumer took in it.
    pub packets_received: u64,
    /// `1 - received / sent` in that window (loss on the way, or still in flight at its end).
    pub loss_ratio: f64,
    /// Outer UDP payload bytes received per second.
    pub wire_bytes_per_sec: f64,
    /// One-way latency, paced at half of `packets_per_sec`.
    pub latency: Option<Latency>,
    /// The rate offered while the latency was measured.
    pub latency_offered_per_sec: f64,
    /// Heap allocations in the flat-out window, every thread.
    pub allocations: Option<u64>,
    /// Bytes those requested.
    pub allocated_bytes: Option<u64>,
    /// Threads that ran in the flat-out window.
    pub threads: Vec<ThreadReport>,
}

/// Everything measured on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendRun {
    /// The backend the nodes ran.
    pub backend: String,
    /// Why io_uring was not used, when it was wanted.
    pub io_uring_unavailable: Option<String>,
    /// UDP GSO on the sending sockets.
    pub gso: bool,
    /// UDP GRO on the receiving sockets.
    pub gro: bool,
    /// `SO_RCVBUF` granted.
    pub recv_buffer: usize,
    /// `SO_SNDBUF` granted.
    pub send_buffer: usize,
    /// Packets per second (ours).
    pub packets_per_sec: f64,
    /// Application bytes per second.
    pub payload_bytes_per_sec: f64,
    /// Inner IP bytes per second.
    pub inner_bytes_per_sec: f64,
    /// Outer UDP payload bytes per second.
    pub wire_bytes_per_sec: f64,
    /// Packets node B opened but dropped because its consumer's queue was full (whole run).
    pub receiver_delivery_dropped: u64,
    /// Times node B's shards found their receive pool empty (whole run).
    pub receiver_no_buffer: u64,
    /// Ours in full.
    pub ours: LegReport,
    /// The same runtime with a bare seal and open.
    pub ceiling: LegReport,
    /// The same runtime with no crypto.
    pub bare_udp: LegReport,
    /// `ours / ceiling`.
    pub ratio_vs_ceiling: f64,
    /// `ours / bare_udp`.
    pub ratio_vs_bare_udp: f64,
    /// `ours / boringtun`.
    pub ratio_vs_boringtun: f64,
}

/// The JSON object the scenario prints.
#[derive(Debug, Clone, Serialize)]
pub struct UdpLoopbackReport {
    /// `"udp-loopback"`.
    pub scenario: &'static str,
    /// Data shards per node.
    pub shards: usize,
    /// The inner IP packet length.
    pub payload_size: usize,
    /// Application bytes per datagram.
    pub application_bytes_per_packet: usize,
    /// Outer UDP payload bytes per datagram (transport header, padded packet, tag).
    pub wire_bytes_per_packet: usize,
    /// The nodes' MTU.
    pub mtu: usize,
    /// Warm-up of each phase, seconds.
    pub warmup_secs: f64,
    /// Measured window of each phase, seconds.
    pub measured_secs: f64,
    /// `(sender, receiver)` CPUs.
    pub cpus: (usize, usize),
    /// The headline: the first backend measured.
    #[serde(flatten)]
    pub headline: BackendRun,
    /// The other backends measured (with `--backend both`).
    pub other_backends: Vec<BackendRun>,
    /// io_uring's packets per second over mmsg's, when both ran.
    pub ratio_io_uring_vs_mmsg: Option<f64>,
    /// boringtun, one datagram per syscall.
    pub boringtun: LegReport,
    /// How latency is measured.
    pub latency_method: &'static str,
    /// Machine and build.
    #[serde(flatten)]
    pub environment: Environment,
}

const LATENCY_METHOD: &str = "one way: the producer stamps the send instant into the payload, the \
    consumer on the other CPU reads it on receipt; offered at half of the flat-out rate the same leg \
    reached in this run";

/// Runs the scenario; `progress` gets one line per phase.
///
/// # Errors
/// A payload outside 44..=MTU, or a leg that would not start.
pub fn run(
    opts: &UdpLoopbackOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<UdpLoopbackReport, String> {
    let len = opts.payload;
    let min = pair::UDP_IPV4_HEADERS + STAMP_LEN;
    if !(min..=MTU).contains(&len) {
        return Err(format!(
            "--payload {len}: the inner IP packet must be {min} to {MTU} bytes (IPv4 + UDP headers \
             and a 16-byte stamp, MTU)"
        ));
    }
    if opts.backends.is_empty() {
        return Err("no backend to measure".into());
    }
    let environment = Environment::detect();
    let cpus = threads::sender_receiver_cpus();
    let app_len = len - pair::UDP_IPV4_HEADERS;
    let wire = pair::transport_len(len, MTU);
    let phase = PhaseOptions {
        app_len,
        cpus,
        warmup: opts.warmup,
        duration: opts.duration,
        rate: None,
    };

    progress("udp-loopback: boringtun");
    let boringtun = leg(
        "boringtun 0.7 noise::Tunn, one datagram per sendto/recvfrom, 4 MiB socket buffers",
        Arc::new(boringtun_link::BoringtunLink::start()?),
        phase,
        wire,
        progress,
    )?;

    let mut runs = Vec::new();
    for backend in &opts.backends {
        progress(&format!("udp-loopback: {backend:?}: nodes"));
        let nodes = Arc::new(NodeLink::start(*backend, opts.shards, cpus)?);
        let report = nodes.a.report().clone();
        let ours = leg(
            "two pnet-mesh nodes, datagrams through send_to / recv_from",
            nodes.clone(),
            phase,
            wire,
            progress,
        )?;
        let receiver = nodes.b.stats();
        let delivery_dropped = receiver
            .data_shards
            .iter()
            .map(|d| d.delivery_dropped)
            .sum();
        let no_buffer = receiver.shards.iter().map(|s| s.no_buffer).sum();
        drop(nodes);
        progress(&format!("udp-loopback: {backend:?}: ceiling"));
        let ceiling = leg(
            "the same runtime and batching, bare aws-lc-rs ChaCha20-Poly1305 seal and open, no protocol",
            Arc::new(CeilingLink::start(*backend, Crypto::Aead, cpus)?),
            phase,
            wire,
            progress,
        )?;
        progress(&format!("udp-loopback: {backend:?}: bare UDP"));
        let bare_udp = leg(
            "the same runtime and batching, no crypto",
            Arc::new(CeilingLink::start(*backend, Crypto::None, cpus)?),
            phase,
            wire,
            progress,
        )?;
        let pps = ours.packets_per_sec;
        runs.push(BackendRun {
            backend: report.backend.to_string(),
            io_uring_unavailable: report.io_uring_unavailable.clone(),
            gso: report.offload.gso,
            gro: report.offload.gro,
            recv_buffer: report.recv_buffer,
            send_buffer: report.send_buffer,
            packets_per_sec: pps,
            payload_bytes_per_sec: pps * app_len as f64,
            inner_bytes_per_sec: pps * len as f64,
            wire_bytes_per_sec: pps * wire as f64,
            ratio_vs_ceiling: ratio(pps, ceiling.packets_per_sec),
            ratio_vs_bare_udp: ratio(pps, bare_udp.packets_per_sec),
            ratio_vs_boringtun: ratio(pps, boringtun.packets_per_sec),
            receiver_delivery_dropped: delivery_dropped,
            receiver_no_buffer: no_buffer,
            ours,
            ceiling,
            bare_udp,
        });
    }
    let find = |name: &str| {
        runs.iter()
            .find(|r| r.backend == name)
            .map(|r| r.packets_per_sec)
    };
    let ratio_io_uring_vs_mmsg = (runs.len() > 1)
        .then(|| find("io_uring").zip(find("mmsg")).map(|(u, m)| ratio(u, m)))
        .flatten();
    progress("udp-loopback: done");
    let mut runs = runs.into_iter();
    let headline = runs.next().ok_or("no backend ran")?;
    Ok(UdpLoopbackReport {
        scenario: "udp-loopback",
        shards: opts.shards,
        payload_size: len,
        application_bytes_per_packet: app_len,
        wire_bytes_per_packet: wire,
        mtu: MTU,
        warmup_secs: opts.warmup.as_secs_f64(),
        measured_secs: opts.duration.as_secs_f64(),
        cpus,
        headline,
        other_backends: runs.collect(),
        ratio_io_uring_vs_mmsg,
        boringtun,
        latency_method: LATENCY_METHOD,
        environment,
    })
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Flat out, then paced at half for the latency.
pub(crate) fn leg(
    what: &'static str,
    link: Arc<dyn Link>,
    phase: PhaseOptions,
    wire: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<LegReport, String> {
    let flat: Phase = drive::run_phase(link.clone(), phase)?;
    let pps = flat.received_per_sec();
    progress(&format!(
        "  flat out: {:.0} datagrams/s received ({} sent, {} received)",
        pps, flat.sent, flat.received
    ));
    let offered = pps / 2.0;
    let paced = drive::run_phase(
        link,
        PhaseOptions {
            rate: Some(offered.max(1.0)),
            ..phase
        },
    )?;
    let latency = (!paced.latency.is_empty()).then(|| Latency::from(&paced.latency, "one way"));
    if let Some(l) = &latency {
        progress(&format!(
            "  at {:.0}/s: p50 {} ns, p99 {} ns",
            offered, l.p50_ns, l.p99_ns
        ));
    }
    let counting = alloc_count::is_installed();
    Ok(LegReport {
        what,
        packets_per_sec: pps,
        packets_sent: flat.sent,
        packets_received: flat.received,
        loss_ratio: if flat.sent > 0 {
            1.0 - flat.received as f64 / flat.sent as f64
        } else {
            0.0
        },
        wire_bytes_per_sec: pps * wire as f64,
        latency,
        latency_offered_per_sec: offered,
        allocations: counting.then_some(flat.allocations.allocations),
        allocated_bytes: counting.then_some(flat.allocations.bytes),
        threads: flat.threads,
    })
}
