//! The soak (F15 of `FAULT_PLAN.md`): the fault lab's pair, A reaching B through the impairment
//! proxy (20 ms ± 5 ms of delay, 0.5 % loss, 0.5 % duplication, 1 % reordering, both ways), a
//! 50 Mbit/s stream echoed by B's sink for N minutes. Every interval it samples both nodes'
//! resident memory, open descriptors and handshakes, and the stream's throughput, longest
//! silence and round-trip times; at the end it writes `soak.json` and `soak.html` (the plots).
//!
//! Report-only: [`Bounds`] are what the CI smoke holds it to (no growth of memory or descriptors
//! past a stated bound, no node that exited or panicked). The figures themselves (rekeys, gaps,
//! flatness) are for the reader.

mod page;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::OsRng;
use serde_json::{Value, json};

use crate::faults::lab::{B_ADDR, Side};
use crate::faults::pair::{A_FORWARD, B_SINK, PORT, PROXY, Proxy, spec_a, spec_b};
use crate::faults::{FaultLab, NodeProcess};

/// The impairments of F15, as `fault-tool proxy` arguments.
pub const IMPAIRMENTS: &[&str] = &[
    "--delay-ms",
    "20",
    "--jitter-ms",
    "5",
    "--loss",
    "0.005",
    "--duplicate",
    "0.005",
    "--reorder",
    "0.01",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long the stream runs.
    pub duration: Duration,
    /// Payload rate of the stream, Mbit/s (echoed, so both ways).
    pub rate_mbit: f64,
    /// Datagram payload size, bytes.
    pub size: usize,
    /// Sampling interval.
    pub interval: Duration,
    /// `--timer-scale` of both nodes (a shorter rekey interval), if any.
    pub timer_scale: Option<f64>,
    /// Where `soak.json` and `soak.html` go.
    pub output_dir: PathBuf,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            duration: Duration::from_secs(30 * 60),
            rate_mbit: 50.0,
            size: 1200,
            interval: Duration::from_secs(10),
            timer_scale: None,
            output_dir: PathBuf::from("artifacts/soak"),
        }
    }
}

/// The bounds the smoke checks: growth after the warm-up, relative and absolute.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// RSS may grow this many percent above its level at the end of the warm-up …
    pub rss_growth_pct: f64,
    /// … or this many KiB, whichever is larger (the allocator's arenas move in such steps).
    pub rss_growth_kib: u64,
    /// Open descriptors may grow by this many.
    pub fd_growth: usize,
}

impl Bounds {
    /// The smoke's bounds: 10 % or 2 MiB of RSS, 2 descriptors.
    pub const SMOKE: Bounds = Bounds {
        rss_growth_pct: 10.0,
        rss_growth_kib: 2048,
        fd_growth: 2,
    };
}

/// One sample of both nodes and the stream.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the stream started.
    pub t_s: f64,
    /// Resident memory of A and B, KiB.
    pub rss_kib: [u64; 2],
    /// Of that, the resident part of their packet buffer pools (`show --json`), KiB: committed
    /// page by page as bursts first reach a buffer, bounded by the pools' reservation.
    pub pool_kib: [u64; 2],
    /// Open descriptors of A and B.
    pub fds: [usize; 2],
    /// Handshakes A and B completed so far.
    pub handshakes: [usize; 2],
    /// Datagrams sent and echoed so far.
    pub sent: u64,
    /// Distinct datagrams echoed so far.
    pub echoed: u64,
    /// Echoed payload in the last interval, Mbit/s.
    pub echoed_mbit_s: f64,
    /// The longest silence between two echoes in the last interval, ms.
    pub max_gap_ms: f64,
    /// Round-trip percentiles of the last interval, ms.
    pub rtt_ms: [Option<f64>; 2],
}

impl Sample {
    fn to_json(&self) -> Value {
        json!({
            "t_s": self.t_s,
            "a_rss_kib": self.rss_kib[0], "b_rss_kib": self.rss_kib[1],
            "a_pool_kib": self.pool_kib[0], "b_pool_kib": self.pool_kib[1],
            "a_fds": self.fds[0], "b_fds": self.fds[1],
            "a_handshakes": self.handshakes[0], "b_handshakes": self.handshakes[1],
            "sent": self.sent, "echoed": self.echoed,
            "echoed_mbit_s": self.echoed_mbit_s, "max_gap_ms": self.max_gap_ms,
            "rtt_p50_ms": self.rtt_ms[0], "rtt_p99_ms": self.rtt_ms[1],
        })
    }
}

/// How a resource moved after the warm-up.
#[derive(Debug, Clone, Copy)]
struct Flatness {
    baseline: f64,
    min: f64,
    max: f64,
    last: f64,
}

impl Flatness {
    fn of(values: impl Iterator<Item = f64>) -> Option<Flatness> {
        let mut it = values.peekable();
        let baseline = *it.peek()?;
        let mut f = Flatness {
            baseline,
            min: baseline,
            max: baseline,
            last: baseline,
        };
        for v in it {
            f.min = f.min.min(v);
            f.max = f.max.max(v);
            f.last = v;
        }
        Some(f)
    }

    fn growth(&self) -> f64 {
        self.max - self.baseline
    }

    fn to_json(self) -> Value {
        let pct = |v: f64| {
            if self.baseline > 0.0 {
                (v - self.baseline) / self.baseline * 100.0
            } else {
                0.0
            }
        };
        json!({
            "after_warmup": self.baseline, "min": self.min, "max": self.max, "last": self.last,
            "max_growth_pct": pct(self.max), "last_change_pct": pct(self.last),
            "within_5_pct": pct(self.max) <= 5.0 && pct(self.min) >= -5.0,
        })
    }
}

/// The soak's outcome: the report (also written as `soak.json`) and what broke the bounds.
#[derive(Debug)]
pub struct SoakOutcome {
    /// Everything measured.
    pub report: Value,
    /// Bound violations, crashes and panics; empty when the run held.
    pub violations: Vec<String>,
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The fault tool of this build, beside this executable.
fn fault_tool() -> Result<String, String> {
    let path = crate::profile_dir()?.join("fault-tool");
    if path.is_file() {
        Ok(path.display().to_string())
    } else {
        Err(format!(
            "{} is missing: build the pnet-mesh-e2e binaries with this profile",
            path.display()
        ))
    }
}

/// Runs the soak and writes its report and page into `config.output_dir`.
///
/// # Errors
/// The lab or a process could not start (with what is missing), or a report could not be read.
/// A run that broke the bounds is not an error: see [`SoakOutcome::violations`].
pub fn run(config: &SoakConfig, bounds: Bounds) -> Result<SoakOutcome, String> {
    let tool = fault_tool()?;
    let lab = FaultLab::new()?;
    let seconds = config.duration.as_secs_f64();
    let proxy = Proxy::start(&lab, &tool, IMPAIRMENTS, "soak", seconds as u64 + 60)?;
    let (ka, kb) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let mut b = spec_b(kb.clone(), ka.public_key(), None);
    b.timer_scale = config.timer_scale;
    let mut b = NodeProcess::start(&lab, b)?;
    let mut a = spec_a(ka, kb.public_key(), PROXY.to_owned());
    a.timer_scale = config.timer_scale;
    let mut a = NodeProcess::start(&lab, a)?;
    let dir = lab.dir().to_path_buf();
    let (sink_report, stream_report, progress) = (
        dir.join("sink.json"),
        dir.join("stream.json"),
        dir.join("stream.jsonl"),
    );
    let mut sink = lab.spawn_child(
        Side::B,
        &[
            &tool,
            "sink",
            "--listen",
            B_SINK,
            "--seconds",
            &(seconds + 8.0).to_string(),
            "--report",
            &sink_report.display().to_string(),
        ],
        &dir.join("sink.log"),
    )?;
    std::thread::sleep(Duration::from_millis(100));
    let mut stream = lab.spawn_child(
        Side::A,
        &[
            &tool,
            "stream",
            "--to",
            A_FORWARD,
            "--rate-mbit",
            &config.rate_mbit.to_string(),
            "--size",
            &config.size.to_string(),
            "--seconds",
            &seconds.to_string(),
            "--every-ms",
            &config.interval.as_millis().to_string(),
            "--wait-ms",
            "2000",
            "--progress",
            &progress.display().to_string(),
            "--report",
            &stream_report.display().to_string(),
        ],
        &dir.join("stream.log"),
    )?;
    let started = Instant::now();
    println!(
        "soak: {:.0} s at {} Mbit/s of {}-byte datagrams through the proxy ({}), a sample every {:?}",
        seconds,
        config.rate_mbit,
        config.size,
        IMPAIRMENTS.join(" "),
        config.interval
    );

    let mut samples: Vec<Sample> = Vec::new();
    let mut violations: Vec<String> = Vec::new();
    // The stream creates its progress file as it starts.
    let file = loop {
        match std::fs::File::open(&progress) {
            Ok(f) => break f,
            Err(e) if started.elapsed() > Duration::from_secs(10) => {
                return Err(format!(
                    "{}: {e}; the stream's log: {}",
                    progress.display(),
                    std::fs::read_to_string(dir.join("stream.log")).unwrap_or_default()
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut lines = BufReader::new(file);
    let mut pending = String::new();
    let stream_status = loop {
        std::thread::sleep(Duration::from_millis(200));
        for (node, name) in [(&mut a, "A"), (&mut b, "B")] {
            if let Some(status) = node.exited() {
                violations.push(format!("node {name} exited with {status} during the soak"));
            }
        }
        if !violations.is_empty() {
            let _ = stream.kill();
            break stream.wait().ok();
        }
        // One sample per progress line of the stream, taken as the line appears.
        while lines.read_line(&mut pending).map_err(|e| e.to_string())? > 0 {
            if !pending.ends_with('\n') {
                break;
            }
            let line: Value = serde_json::from_str(pending.trim()).map_err(|e| format!("{e}"))?;
            pending.clear();
            let sample = take_sample(&a, &b, &line);
            println!(
                "soak: {:>6.0} s  rss {:>6}/{:>6} KiB (pools {:>5}/{:>5})  fds {:>3}/{:>3}  \
                 handshakes {:>3}/{:>3}  {:>5.1} Mbit/s  longest gap {:>6.1} ms  rtt p50 {} ms",
                sample.t_s,
                sample.rss_kib[0],
                sample.rss_kib[1],
                sample.pool_kib[0],
                sample.pool_kib[1],
                sample.fds[0],
                sample.fds[1],
                sample.handshakes[0],
                sample.handshakes[1],
                sample.echoed_mbit_s,
                sample.max_gap_ms,
                sample.rtt_ms[0].map_or("-".into(), |v| format!("{v:.1}")),
            );
            samples.push(sample);
        }
        if let Ok(Some(status)) = stream.try_wait() {
            break Some(status);
        }
        if started.elapsed() > config.duration + Duration::from_secs(120) {
            violations.push("the stream did not end 2 minutes after its time".into());
            let _ = stream.kill();
            break stream.wait().ok();
        }
    };
    if !stream_status.is_some_and(|s| s.success()) && violations.is_empty() {
        violations.push(format!(
            "the stream failed ({stream_status:?}): {}",
            std::fs::read_to_string(dir.join("stream.log")).unwrap_or_default()
        ));
    }
    let _ = sink.wait();
    let proxy_stats = proxy.stop().unwrap_or_else(|e| json!({"error": e}));
    let stream_summary = read_json(&stream_report).unwrap_or_else(|e| json!({"error": e}));
    let sink_summary = read_json(&sink_report).unwrap_or_else(|e| json!({"error": e}));

    for (node, name) in [(&a, "A"), (&b, "B")] {
        let log = node.log();
        if let Some(at) = log.find("panicked") {
            let end = log[at..].find('\n').map_or(log.len(), |n| at + n);
            violations.push(format!("node {name} panicked: {}", &log[at..end]));
        }
    }
    let warmup = (seconds * 0.25).min(60.0);
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= warmup).collect();
    let flat = |f: &dyn Fn(&Sample) -> f64| Flatness::of(settled.iter().map(|s| f(s)));
    let rss = [
        flat(&|s| s.rss_kib[0] as f64),
        flat(&|s| s.rss_kib[1] as f64),
    ];
    let fds = [flat(&|s| s.fds[0] as f64), flat(&|s| s.fds[1] as f64)];
    let outside = |s: &Sample, i: usize| s.rss_kib[i].saturating_sub(s.pool_kib[i]) as f64;
    let rss_outside_pools = [flat(&|s| outside(s, 0)), flat(&|s| outside(s, 1))];
    let pools = [
        flat(&|s| s.pool_kib[0] as f64),
        flat(&|s| s.pool_kib[1] as f64),
    ];
    let reserved_kib = |n: &NodeProcess| {
        n.show()
            .ok()
            .and_then(|s| s["memory"]["buffer_pools_reserved_bytes"].as_u64())
            .map(|b| b / 1024)
    };
    if settled.len() < 2 {
        violations.push(format!(
            "only {} samples after the {warmup:.0} s warm-up: too few to judge growth",
            settled.len()
        ));
    }
    for (i, name) in ["A", "B"].iter().enumerate() {
        if let Some(r) = rss[i] {
            let allowed =
                (r.baseline * bounds.rss_growth_pct / 100.0).max(bounds.rss_growth_kib as f64);
            if r.growth() > allowed {
                violations.push(format!(
                    "node {name}'s RSS grew {:.0} KiB after the warm-up ({:.0} → {:.0} KiB), more than \
                     the bound of {allowed:.0} KiB",
                    r.growth(),
                    r.baseline,
                    r.max
                ));
            }
        }
        if let Some(f) = fds[i]
            && f.growth() > bounds.fd_growth as f64
        {
            violations.push(format!(
                "node {name}'s open descriptors grew from {:.0} to {:.0}, more than {}",
                f.baseline, f.max, bounds.fd_growth
            ));
        }
    }

    let handshake_times = a.event_times("HandshakeCompleted");
    let rekeys = handshake_times.len().saturating_sub(1);
    let intervals_s: Vec<f64> = handshake_times
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1000.0)
        .collect();
    let longest_gap_ms = stream_summary["longest_gap_ms"].as_f64();
    let report = json!({
        "scenario": "F15 soak",
        "config": {
            "seconds": seconds, "rate_mbit": config.rate_mbit, "size": config.size,
            "interval_s": config.interval.as_secs_f64(), "timer_scale": config.timer_scale,
            "impairments": IMPAIRMENTS.join(" "), "route": format!("A → proxy {PROXY} → B {B_ADDR}:{PORT}"),
        },
        "bounds": {
            "rss_growth_pct": bounds.rss_growth_pct, "rss_growth_kib": bounds.rss_growth_kib,
            "fd_growth": bounds.fd_growth, "warmup_s": warmup,
        },
        "summary": {
            "rekeys": rekeys,
            "handshakes": {"a": handshake_times.len(), "b": b.event_times("HandshakeCompleted").len()},
            "rekey_interval_s": {
                "min": intervals_s.iter().copied().reduce(f64::min),
                "max": intervals_s.iter().copied().reduce(f64::max),
            },
            "longest_gap_ms": longest_gap_ms,
            "gaps_over_1s": stream_summary["gaps_over_200ms"].as_array().map_or(0, |g| {
                g.iter().filter(|x| x["gap_ms"].as_f64().is_some_and(|v| v > 1000.0)).count()
            }),
            "rss_kib": {"a": rss[0].map(Flatness::to_json), "b": rss[1].map(Flatness::to_json)},
            "rss_outside_buffer_pools_kib": {
                "a": rss_outside_pools[0].map(Flatness::to_json),
                "b": rss_outside_pools[1].map(Flatness::to_json),
            },
            "buffer_pools_resident_kib": {
                "a": pools[0].map(Flatness::to_json), "b": pools[1].map(Flatness::to_json),
                "reserved_kib": {"a": reserved_kib(&a), "b": reserved_kib(&b)},
            },
            "fds": {"a": fds[0].map(Flatness::to_json), "b": fds[1].map(Flatness::to_json)},
            "panics": violations.iter().filter(|v| v.contains("panicked")).count(),
            "violations": violations,
        },
        "stream": stream_summary,
        "sink": sink_summary,
        "proxy": proxy_stats,
        "udp_receive_buffer_errors": {"a": lab.udp_receive_buffer_errors(Side::A), "b": lab.udp_receive_buffer_errors(Side::B)},
        "drops": {"a": a.show().map(|s| s["drops"].clone()).unwrap_or(Value::Null),
                  "b": b.show().map(|s| s["drops"].clone()).unwrap_or(Value::Null)},
        "samples": samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&config.output_dir)
        .map_err(|e| format!("create {}: {e}", config.output_dir.display()))?;
    let json_path = config.output_dir.join("soak.json");
    let html_path = config.output_dir.join("soak.html");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| format!("write {}: {e}", json_path.display()))?;
    std::fs::write(&html_path, page::render(&report, &samples))
        .map_err(|e| format!("write {}: {e}", html_path.display()))?;
    println!(
        "soak: wrote {} and {}",
        json_path.display(),
        html_path.display()
    );
    Ok(SoakOutcome { report, violations })
}

/// A sample of both nodes at the moment the stream wrote `line`. Descriptors are counted before
/// `show` opens a control connection to the node.
fn take_sample(a: &NodeProcess, b: &NodeProcess, line: &Value) -> Sample {
    let fds = [a.fds().unwrap_or(0), b.fds().unwrap_or(0)];
    let rss_kib = [a.rss_kb().unwrap_or(0), b.rss_kb().unwrap_or(0)];
    let pool = |n: &NodeProcess| {
        n.show().ok().map_or(0, |s| {
            s["memory"]["buffer_pools_resident_bytes"]
                .as_u64()
                .unwrap_or(0)
                / 1024
        })
    };
    let interval = &line["interval"];
    Sample {
        t_s: line["t_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        rss_kib,
        pool_kib: [pool(a), pool(b)],
        fds,
        handshakes: [
            a.event_times("HandshakeCompleted").len(),
            b.event_times("HandshakeCompleted").len(),
        ],
        sent: line["sent"].as_u64().unwrap_or(0),
        echoed: line["echoed"].as_u64().unwrap_or(0),
        echoed_mbit_s: interval["echoed_mbit_s"].as_f64().unwrap_or(0.0),
        max_gap_ms: interval["max_gap_ms"].as_f64().unwrap_or(0.0),
        rtt_ms: [
            interval["rtt_p50_ms"].as_f64(),
            interval["rtt_p99_ms"].as_f64(),
        ],
    }
}
