//! The `in-memory` macro scenario: two endpoints, no sockets, a closed loop of IPv4/UDP packets A → B
//! and B → A through `send_packet` and `handle_datagram`, beside a bare ChaCha20-Poly1305 seal and open
//! of the same sizes (aws-lc-rs through `pnet_mesh::crypto::aead`) run the same way.

use std::time::{Duration, Instant};

use pnet_mesh::PacketBuf;
use pnet_mesh::crypto::aead::{AeadKey, TAG_LEN};
use serde::Serialize;

use crate::alloc_count;
use crate::environment::Environment;
use crate::histogram::{Histogram, Latency};
use crate::pair::{self, Pair, Side};
use crate::threads::{self, ThreadReport};

/// The MTU of the scenario's endpoints (the engine's default).
pub const MTU: usize = 1420;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InMemoryOptions {
    /// The inner IP packet length (IPv4 + UDP headers + application bytes), 28 to [`MTU`].
    pub payload: usize,
    /// Run untimed for this long first.
    pub warmup: Duration,
    /// Then measure for this long.
    pub duration: Duration,
}

/// The bare AEAD loop's result.
#[derive(Debug, Clone, Serialize)]
pub struct BareAead {
    /// What it does per packet.
    pub what: &'static str,
    /// Packets sealed and opened per second.
    pub packets_per_sec: f64,
    /// Per-packet latency (seal start to open end).
    pub latency: Latency,
}

/// The JSON object the scenario prints.
#[derive(Debug, Clone, Serialize)]
pub struct InMemoryReport {
    /// `"in-memory"`.
    pub scenario: &'static str,
    /// `"in-memory"`: no sockets.
    pub backend: &'static str,
    /// Shards (threads moving packets): 1.
    pub shards: u32,
    /// The inner IP packet length, as given by `--payload`.
    pub payload_size: usize,
    /// Application (UDP payload) bytes per packet: `payload_size - 28`.
    pub application_bytes_per_packet: usize,
    /// WireGuard transport message bytes per packet (the outer UDP payload: header, padded packet,
    /// tag).
    pub wire_bytes_per_packet: usize,
    /// The MTU of both endpoints.
    pub mtu: usize,
    /// Warm-up, seconds.
    pub warmup_secs: f64,
    /// The measured window as it ran, seconds.
    pub measured_secs: f64,
    /// Packets delivered in the measured window (both directions).
    pub packets: u64,
    /// Packets delivered per second.
    pub packets_per_sec: f64,
    /// Application bytes delivered per second.
    pub payload_bytes_per_sec: f64,
    /// Inner IP bytes delivered per second.
    pub inner_bytes_per_sec: f64,
    /// Transport message bytes sealed per second.
    pub wire_bytes_per_sec: f64,
    /// Per-packet latency.
    pub latency: Latency,
    /// Heap allocations in the measured window (`null` if the counting allocator is not installed).
    pub allocations: Option<u64>,
    /// Bytes those allocations requested.
    pub allocated_bytes: Option<u64>,
    /// Datagrams dropped by either endpoint in the measured window.
    pub drops: u64,
    /// Packets that were held for a handshake instead of sealed, in the measured window.
    pub staged: u64,
    /// Handshake and keepalive datagrams moved by the periodic timer pass in the measured window.
    pub control_datagrams: u64,
    /// The same sizes through a bare aws-lc-rs ChaCha20-Poly1305 seal and open, same loop shape.
    pub bare_aead: BareAead,
    /// `packets_per_sec / bare_aead.packets_per_sec`.
    pub ratio_vs_bare_aead: f64,
    /// The one thread.
    pub threads: Vec<ThreadReport>,
    /// Machine and build.
    #[serde(flatten)]
    pub environment: Environment,
}

const LATENCY_METHOD: &str = "closed loop, one packet in flight: from just before send_packet (seal) to \
                              handle_datagram returning Deliver (open), every packet, both directions";
const BARE_METHOD: &str = "closed loop: from just before seal_in_place to open_in_place returning, every \
                           packet";

/// Runs the scenario; `progress` gets one line per phase (the binary prints them on stderr).
///
/// # Errors
/// A payload outside 28..=MTU, or a protocol step that failed (no session, a drop at setup).
pub fn run(
    opts: &InMemoryOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<InMemoryReport, String> {
    let len = opts.payload;
    if !(pair::UDP_IPV4_HEADERS..=MTU).contains(&len) {
        return Err(format!(
            "--payload {len}: the inner IP packet must be {} to {MTU} bytes (IPv4 + UDP headers, MTU)",
            pair::UDP_IPV4_HEADERS
        ));
    }
    let environment = Environment::detect();
    let counting = alloc_count::is_installed();

    let start = Instant::now();
    let mut pair = Pair::established(0x1e7, start)?;
    progress("in-memory: handshake complete, session up both ways");

    let templates = [
        pair::udp_packet(len, Side::A).ok_or("packet template")?,
        pair::udp_packet(len, Side::B).ok_or("packet template")?,
    ];
    let mut bufs = [
        vec![0u8; pair::buffer_len(len)],
        vec![0u8; pair::buffer_len(len)],
    ];
    let mut hist = Histogram::new();

    progress(&format!("in-memory: warming up for {:?}", opts.warmup));
    let _ = protocol_loop(&mut pair, &templates, &mut bufs, &mut hist, opts.warmup)?;
    hist.clear();

    progress(&format!(
        "in-memory: measuring {len}-byte packets for {:?}",
        opts.duration
    ));
    let cpu_before = threads::current_cpu_ns();
    let allocs_before = alloc_count::snapshot();
    let stats = protocol_loop(&mut pair, &templates, &mut bufs, &mut hist, opts.duration)?;
    let allocs = alloc_count::snapshot() - allocs_before;
    let cpu_after = threads::current_cpu_ns();
    let latency = Latency::from(&hist, LATENCY_METHOD);

    progress(&format!(
        "in-memory: bare aead, warming up for {:?} then measuring for {:?}",
        opts.warmup, opts.duration
    ));
    let padded = pair::padded_len(len, MTU);
    let _ = bare_loop(&templates, &mut bufs, padded, &mut hist, opts.warmup);
    hist.clear();
    let (bare_packets, bare_elapsed) =
        bare_loop(&templates, &mut bufs, padded, &mut hist, opts.duration);
    let bare_pps = bare_packets as f64 / bare_elapsed.as_secs_f64();
    let bare = BareAead {
        what: "aws-lc-rs ChaCha20-Poly1305 seal_in_place then open_in_place of the padded packet, \
               alternating two keys, no protocol around it",
        packets_per_sec: bare_pps,
        latency: Latency::from(&hist, BARE_METHOD),
    };

    let secs = stats.elapsed.as_secs_f64();
    let pps = stats.packets as f64 / secs;
    let wire = pair::transport_len(len, MTU);
    progress("in-memory: done");
    Ok(InMemoryReport {
        scenario: "in-memory",
        backend: "in-memory",
        shards: 1,
        payload_size: len,
        application_bytes_per_packet: len - pair::UDP_IPV4_HEADERS,
        wire_bytes_per_packet: wire,
        mtu: MTU,
        warmup_secs: opts.warmup.as_secs_f64(),
        measured_secs: secs,
        packets: stats.packets,
        packets_per_sec: pps,
        payload_bytes_per_sec: pps * (len - pair::UDP_IPV4_HEADERS) as f64,
        inner_bytes_per_sec: pps * len as f64,
        wire_bytes_per_sec: stats.wire_bytes as f64 / secs,
        latency,
        allocations: counting.then_some(allocs.allocations),
        allocated_bytes: counting.then_some(allocs.bytes),
        drops: stats.drops,
        staged: stats.staged,
        control_datagrams: stats.control,
        ratio_vs_bare_aead: if bare_pps > 0.0 { pps / bare_pps } else { 0.0 },
        bare_aead: bare,
        threads: vec![ThreadReport {
            name: "both endpoints (sender and receiver) in one thread".to_string(),
            tid: None,
            cpu: threads::current_cpu(),
            cpu_time_secs: cpu_before
                .zip(cpu_after)
                .map(|(b, a)| a.saturating_sub(b) as f64 / 1e9),
        }],
        environment,
    })
}

/// What one run of [`protocol_loop`] counted.
#[derive(Debug, Default)]
struct LoopStats {
    packets: u64,
    wire_bytes: u64,
    drops: u64,
    staged: u64,
    control: u64,
    elapsed: Duration,
}

/// Packets between timer passes (`handle_timeout` and delivery of whatever the endpoints then queue).
const TIMER_EVERY: u64 = 1024;

/// Sends packets alternately A → B and B → A until `duration` has passed, timing each from just before
/// the seal to the delivery. The real clock is the endpoints' clock, so a long run rekeys as a real
/// node would, and every [`TIMER_EVERY`] packets the timers run and their output is delivered.
fn protocol_loop(
    pair: &mut Pair,
    templates: &[Vec<u8>; 2],
    bufs: &mut [Vec<u8>; 2],
    hist: &mut Histogram,
    duration: Duration,
) -> Result<LoopStats, String> {
    let len = templates[0].len();
    let drops_before = pair.a.drop_counters().total() + pair.b.drop_counters().total();
    let mut stats = LoopStats::default();
    let start = Instant::now();
    let deadline = start + duration;
    let mut i: u64 = 0;
    loop {
        let (side, template, buf) = if i & 1 == 0 {
            (Side::A, &templates[0], &mut bufs[0])
        } else {
            (Side::B, &templates[1], &mut bufs[1])
        };
        buf[PacketBuf::HEADROOM..][..len].copy_from_slice(template);
        let t0 = Instant::now();
        match pair.try_seal(side, t0, buf, len)? {
            Some((off, wire)) => {
                let delivered = pair
                    .open(side.other(), t0, &mut buf[off..off + wire])
                    .is_ok();
                let t1 = Instant::now();
                if delivered {
                    hist.record((t1 - t0).as_nanos() as u64);
                    stats.packets += 1;
                }
                stats.wire_bytes += wire as u64;
                if t1 >= deadline {
                    stats.elapsed = t1 - start;
                    break;
                }
            }
            None => stats.staged += 1,
        }
        i += 1;
        if i.is_multiple_of(TIMER_EVERY) {
            let now = Instant::now();
            pair.a.handle_timeout(now);
            pair.b.handle_timeout(now);
            stats.control += pair.pump(now) as u64;
            if now >= deadline {
                stats.elapsed = now - start;
                break;
            }
        }
    }
    stats.drops = pair.a.drop_counters().total() + pair.b.drop_counters().total() - drops_before;
    if stats.packets == 0 && !duration.is_zero() {
        return Err("no packet was delivered".into());
    }
    Ok(stats)
}

/// The bare-AEAD counterpart of [`protocol_loop`]: the same template copy, then a seal and an open of
/// the padded packet with a counter, alternating two keys. Returns packets and elapsed time.
fn bare_loop(
    templates: &[Vec<u8>; 2],
    bufs: &mut [Vec<u8>; 2],
    padded: usize,
    hist: &mut Histogram,
    duration: Duration,
) -> (u64, Duration) {
    let keys = [AeadKey::new(&[0x11; 32]), AeadKey::new(&[0x22; 32])];
    let len = templates[0].len();
    let at = PacketBuf::HEADROOM;
    let start = Instant::now();
    let deadline = start + duration;
    let mut counter: u64 = 0;
    loop {
        let k = (counter & 1) as usize;
        let (buf, key) = (&mut bufs[k], &keys[k]);
        buf[at..at + len].copy_from_slice(&templates[k]);
        buf[at + len..at + padded].fill(0);
        let t0 = Instant::now();
        let tag = key.seal_in_place(counter, &[], &mut buf[at..at + padded]);
        buf[at + padded..at + padded + TAG_LEN].copy_from_slice(&tag);
        let ok = key
            .open_in_place(counter, &[], &mut buf[at..at + padded + TAG_LEN])
            .is_ok();
        let t1 = Instant::now();
        if ok {
            hist.record((t1 - t0).as_nanos() as u64);
        }
        counter += 1;
        if t1 >= deadline {
            return (counter, t1 - start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_run_reports_packets_and_ratio() {
        let opts = InMemoryOptions {
            payload: 128,
            warmup: Duration::from_millis(5),
            duration: Duration::from_millis(20),
        };
        let r = run(&opts, &mut |_| {}).unwrap();
        assert!(r.packets > 0 && r.packets_per_sec > 0.0);
        assert_eq!(r.drops, 0);
        assert_eq!(r.wire_bytes_per_packet, 16 + 128 + 16);
        assert!(r.latency.p50_ns > 0 && r.latency.p50_ns <= r.latency.p99_ns);
        assert!(r.ratio_vs_bare_aead > 0.0);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "packets_per_sec",
            "payload_bytes_per_sec",
            "wire_bytes_per_sec",
            "runtime",
            "os",
            "arch",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn refuses_payloads_outside_the_mtu() {
        for payload in [0, 27, MTU + 1] {
            let opts = InMemoryOptions {
                payload,
                warmup: Duration::ZERO,
                duration: Duration::from_millis(1),
            };
            assert!(run(&opts, &mut |_| {}).unwrap_err().contains("--payload"));
        }
    }
}
