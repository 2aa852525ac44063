//! The fault suite's traffic and attack tools, run inside the lab's namespaces with
//! `ip netns exec`. Every mode is bounded in rate and time and writes a JSON report.
//!
//! ```text
//! fault-tool sink --listen 127.0.0.1:7200 --seconds 10 --report sink.json      # echo and count
//! fault-tool send --to 127.0.0.1:7100 --count 2000 --rate 2000 --size 1000 --wait-ms 2000 --report send.json
//! fault-tool stream --to 127.0.0.1:7100 --rate-mbit 50 --size 1200 --seconds 1800 --every-ms 10000 \
//!     --wait-ms 2000 --progress stream.jsonl --report stream.json                    # a soak's traffic
//! fault-tool proxy --listen 10.31.1.1:51900 --upstream 10.31.2.2:51820 --seconds 30 --seed 7 \
//!     --corrupt 0.01 [--loss P] [--reorder P --reorder-delay-ms D] [--delay-ms D --jitter-ms J] \
//!     [--gilbert G2B,B2G,LOSS_BAD,LOSS_GOOD] [--rate-pps N] --report proxy.json
//! fault-tool replay --pcap cap.pcap --to 10.31.2.2:51820 [--from 10.31.1.2:51820] --gap-ms 2 --report r.json
//! fault-tool handshakers --keys keys.txt --peer KEY --endpoint 10.31.2.2:51820 --timer-scale 0.2 \
//!     --seconds 30 --report h.json
//! fault-tool flood-random --to 10.31.2.2:51820 --rate 20000 --seconds 4 --seed 3 --report f.json
//! fault-tool flood-initiations --to 10.31.2.2:51820 --responder KEY --sources 10.31.10 \
//!     --rate 5000 --seconds 4 --report f.json
//! ```
//!
//! - `send` datagrams carry their sequence number and send time (16 bytes) and padding; `sink`
//!   echoes them and counts sequence numbers: received, unique, duplicates, out of order.
//! - `stream` is `send` for as long as a soak: a payload rate, bounded memory, and one progress line
//!   per interval (sent, echoed, the longest silence between echoes, round-trip percentiles).
//! - `proxy` is the engine's seeded impairment proxy, the same impairments both ways; it runs for
//!   `--seconds`, or until a file named like its report with `.stop` appended appears.
//! - `replay` sends again every UDP payload of a capture (`tcpdump -w`, Ethernet) addressed to
//!   `--to`, from `--from` (bound with IP_TRANSPARENT, so the copies carry the original source; run
//!   it on the router) or from an ordinary socket of its namespace (re-sourced).
//! - `handshakers` runs one node per private key of `--keys` (one base64 key a line), each with the
//!   one peer `--peer` at `--endpoint`, all handshaking at once; it reports when each completed
//!   and how many initiations each sent.
//! - `flood-random` sends seeded random 148-byte datagrams. `flood-initiations` sends initiations
//!   with a valid mac1 for the responder's key from 256 sources (`SOURCES.0` to `SOURCES.255`), each
//!   from an initiator key the responder does not know, and counts the cookie replies that come
//!   back (and the largest).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pnet_mesh_e2e::faults::sequence::SequenceWindow;
use serde_json::json;

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn need<T: std::str::FromStr>(args: &[String], name: &str) -> Result<T, String> {
    let v = arg(args, name).ok_or_else(|| format!("{name} is required"))?;
    v.parse().map_err(|_| format!("{name} {v}: not valid"))
}

fn write_report(args: &[String], value: &serde_json::Value) -> Result<(), String> {
    let path = arg(args, "--report").ok_or("--report is required")?;
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )
    .map_err(|e| format!("write {path}: {e}"))
}

/// Echoes and counts sequence numbers for `--seconds`.
fn sink(args: &[String]) -> Result<(), String> {
    let listen: SocketAddr = need(args, "--listen")?;
    let seconds: f64 = need(args, "--seconds")?;
    let echo = !args.iter().any(|a| a == "--no-echo");
    let socket = UdpSocket::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    // Bounded, so a sink can run for the length of a soak.
    let mut seen = SequenceWindow::new();
    let mut received = 0u64;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        received += 1;
        if n >= 8 {
            seen.record(u64::from_le_bytes(buf[..8].try_into().unwrap_or_default()));
        }
        if echo {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
    write_report(
        args,
        &json!({
            "received": received,
            "unique": seen.unique,
            "duplicates": seen.duplicates,
            "out_of_order": seen.out_of_order,
            "highest_seq": seen.highest,
        }),
    )
}

/// Sends `--count` datagrams at `--rate` per second and collects the echoes.
fn send(args: &[String]) -> Result<(), String> {
    let to: SocketAddr = need(args, "--to")?;
    let count: u64 = need(args, "--count")?;
    let rate: f64 = need(args, "--rate")?;
    let size: usize = need::<usize>(args, "--size")?.max(16);
    let wait = Duration::from_millis(need(args, "--wait-ms")?);
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut echoed: HashMap<u64, u32> = HashMap::new();
    let mut rtts: Vec<f64> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut payload = vec![0u8; size];
    let mut drain = |echoed: &mut HashMap<u64, u32>, rtts: &mut Vec<f64>| {
        while let Ok(n) = socket.recv(&mut buf) {
            if n < 16 {
                continue;
            }
            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
            let sent_ns = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
            let now_ns = started.elapsed().as_nanos() as u64;
            let c = echoed.entry(seq).or_default();
            if *c == 0 {
                rtts.push(now_ns.saturating_sub(sent_ns) as f64 / 1e6);
            }
            *c += 1;
        }
    };
    let mut send_errors = 0u64;
    for seq in 0..count {
        let due = Duration::from_secs_f64(seq as f64 / rate.max(1.0));
        while started.elapsed() < due {
            drain(&mut echoed, &mut rtts);
            std::thread::sleep(Duration::from_micros(200));
        }
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        payload[8..16].copy_from_slice(&(started.elapsed().as_nanos() as u64).to_le_bytes());
        if socket.send_to(&payload, to).is_err() {
            send_errors += 1;
        }
    }
    let sent_for = started.elapsed();
    let end = Instant::now() + wait;
    while Instant::now() < end && (echoed.len() as u64) < count {
        drain(&mut echoed, &mut rtts);
        std::thread::sleep(Duration::from_millis(1));
    }
    rtts.sort_by(f64::total_cmp);
    let q = |p: f64| {
        rtts.get(((rtts.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
    };
    let duplicates: u64 = echoed
        .values()
        .map(|&c| u64::from(c.saturating_sub(1)))
        .sum();
    // The sequence numbers that never came back, as ranges (the first 64): datagram `seq` went out
    // at `started_unix_ms + seq / rate * 1000`.
    let mut lost: Vec<[u64; 2]> = Vec::new();
    for seq in (0..count).filter(|s| !echoed.contains_key(s)) {
        if let Some(r) = lost.last_mut().filter(|r| r[1] + 1 == seq) {
            r[1] = seq;
        } else if lost.len() < 64 {
            lost.push([seq, seq]);
        } else {
            break;
        }
    }
    write_report(
        args,
        &json!({
            "sent": count,
            "send_errors": send_errors,
            "echoed": echoed.len(),
            "duplicates": duplicates,
            "lost_ranges": lost,
            "started_unix_ms": started_unix_ms,
            "rate": rate,
            "seconds": sent_for.as_secs_f64(),
            "goodput_mbit_s": echoed.len() as f64 * size as f64 * 8.0 / sent_for.as_secs_f64().max(1e-9) / 1e6,
            "rtt_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": rtts.last()},
        }),
    )
}

/// Round-trip times in quarter-millisecond buckets up to 1 s (and one bucket above), for the
/// percentiles of one interval without keeping every sample.
struct RttHistogram([u32; 4001]);

impl RttHistogram {
    const BUCKET_MS: f64 = 0.25;

    fn add(&mut self, ms: f64) {
        let i = ((ms / Self::BUCKET_MS) as usize).min(self.0.len() - 1);
        self.0[i] += 1;
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.0.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((total - 1) as f64 * q).round() as u64;
        let mut seen = 0u64;
        for (i, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen > rank {
                return Some((i as f64 + 0.5) * Self::BUCKET_MS);
            }
        }
        None
    }

    fn clear(&mut self) {
        self.0.fill(0);
    }
}

/// A stream at `--rate-mbit` of payload for `--seconds`, echoed back by a sink: every
/// `--every-ms` one JSON line of progress goes to `--progress` (what was sent and echoed, the
/// longest silence between two echoes, round-trip percentiles), so a soak can plot it while it
/// runs. Memory stays bounded however long it runs.
fn stream(args: &[String]) -> Result<(), String> {
    use std::io::Write;
    let to: SocketAddr = need(args, "--to")?;
    let seconds: f64 = need(args, "--seconds")?;
    let rate_mbit: f64 = need(args, "--rate-mbit")?;
    let size: usize = need::<usize>(args, "--size")?.max(16);
    let every = Duration::from_millis(need(args, "--every-ms")?);
    let wait = Duration::from_millis(need(args, "--wait-ms")?);
    let progress_path: String = need(args, "--progress")?;
    let mut progress = std::fs::File::create(&progress_path)
        .map_err(|e| format!("create {progress_path}: {e}"))?;
    let pps = (rate_mbit * 1e6 / 8.0 / size as f64).max(1.0);
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut window = SequenceWindow::new();
    let mut rtt = Box::new(RttHistogram([0; 4001]));
    let (mut buf, mut payload) = (vec![0u8; 65_536], vec![0u8; size]);
    let (mut sent, mut send_errors) = (0u64, 0u64);
    // Silences between two echoes: the longest in this interval and overall, and each above 200 ms.
    let (mut last_echo, mut interval_gap, mut longest_gap) =
        (None::<Instant>, Duration::ZERO, Duration::ZERO);
    let mut long_gaps: Vec<serde_json::Value> = Vec::new();
    let (mut interval_sent, mut interval_echoed) = (0u64, 0u64);
    let mut next_progress = started + every;
    let send_for = Duration::from_secs_f64(seconds);
    loop {
        let now = Instant::now();
        let elapsed = now - started;
        let sending = elapsed < send_for;
        if sending {
            let due = (elapsed.as_secs_f64() * pps) as u64;
            while sent < due {
                payload[..8].copy_from_slice(&sent.to_le_bytes());
                payload[8..16]
                    .copy_from_slice(&(started.elapsed().as_nanos() as u64).to_le_bytes());
                if socket.send_to(&payload, to).is_err() {
                    send_errors += 1;
                }
                sent += 1;
                interval_sent += 1;
            }
        } else if elapsed >= send_for + wait || window.unique >= sent {
            break;
        }
        while let Ok(n) = socket.recv(&mut buf) {
            if n < 16 {
                continue;
            }
            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
            let sent_ns = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
            if seq >= sent || !window.record(seq) {
                continue;
            }
            let at = Instant::now();
            rtt.add(
                (at - started)
                    .as_nanos()
                    .saturating_sub(u128::from(sent_ns)) as f64
                    / 1e6,
            );
            if let Some(last) = last_echo {
                let gap = at - last;
                interval_gap = interval_gap.max(gap);
                if gap > Duration::from_millis(200) && long_gaps.len() < 256 {
                    long_gaps.push(json!({
                        "ended_ms": (at - started).as_millis() as u64,
                        "gap_ms": gap.as_secs_f64() * 1000.0,
                    }));
                }
            }
            last_echo = Some(at);
            interval_echoed += 1;
        }
        let now = Instant::now();
        if now >= next_progress {
            // An outage still going on counts in the interval it is seen in.
            if sending && let Some(last) = last_echo {
                interval_gap = interval_gap.max(now - last);
            }
            longest_gap = longest_gap.max(interval_gap);
            let line = json!({
                "t_ms": (now - started).as_millis() as u64,
                "sent": sent,
                "echoed": window.unique,
                "lost": window.lost,
                "duplicates": window.duplicates,
                "out_of_order": window.out_of_order,
                "send_errors": send_errors,
                "interval": {
                    "sent": interval_sent,
                    "echoed": interval_echoed,
                    "echoed_mbit_s": interval_echoed as f64 * size as f64 * 8.0 / every.as_secs_f64() / 1e6,
                    "max_gap_ms": interval_gap.as_secs_f64() * 1000.0,
                    "rtt_p50_ms": rtt.quantile(0.5),
                    "rtt_p99_ms": rtt.quantile(0.99),
                },
            });
            writeln!(progress, "{line}").map_err(|e| format!("write {progress_path}: {e}"))?;
            (interval_sent, interval_echoed, interval_gap) = (0, 0, Duration::ZERO);
            rtt.clear();
            next_progress += every;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    longest_gap = longest_gap.max(interval_gap);
    window.finish(sent);
    write_report(
        args,
        &json!({
            "sent": sent,
            "send_errors": send_errors,
            "echoed": window.unique,
            "lost": window.lost,
            "duplicates": window.duplicates,
            "out_of_order": window.out_of_order,
            "started_unix_ms": started_unix_ms,
            "packets_per_sec": pps,
            "size": size,
            "longest_gap_ms": longest_gap.as_secs_f64() * 1000.0,
            "gaps_over_200ms": long_gaps,
        }),
    )
}

/// The impairment proxy between A and B for `--seconds`.
fn proxy(args: &[String]) -> Result<(), String> {
    use pnet_mesh::testing::impair::{Gilbert, Impairment, ImpairmentProxy, ProxyConfig};
    let listen: SocketAddr = need(args, "--listen")?;
    let upstream: SocketAddr = need(args, "--upstream")?;
    let seconds: f64 = need(args, "--seconds")?;
    let opt = |name: &str| -> Result<Option<f64>, String> {
        arg(args, name)
            .map(|v| v.parse().map_err(|_| format!("{name} {v}: not a number")))
            .transpose()
    };
    let ms = |v: Option<f64>| Duration::from_secs_f64(v.unwrap_or(0.0) / 1000.0);
    let burst = match arg(args, "--gilbert") {
        None => None,
        Some(v) => {
            let p: Vec<f64> = v
                .split(',')
                .map(|x| {
                    x.parse()
                        .map_err(|_| format!("--gilbert {v}: four numbers"))
                })
                .collect::<Result<_, _>>()?;
            let [good_to_bad, bad_to_good, loss_in_bad, loss_in_good] = p[..] else {
                return Err(format!("--gilbert {v}: four numbers"));
            };
            Some(Gilbert {
                good_to_bad,
                bad_to_good,
                loss_in_bad,
                loss_in_good,
            })
        }
    };
    let impairment = Impairment {
        loss: opt("--loss")?.unwrap_or(0.0),
        burst,
        reorder: opt("--reorder")?.unwrap_or(0.0),
        reorder_delay: ms(opt("--reorder-delay-ms")?.or(Some(5.0))),
        duplicate: opt("--duplicate")?.unwrap_or(0.0),
        corrupt: opt("--corrupt")?.unwrap_or(0.0),
        delay: ms(opt("--delay-ms")?),
        jitter: ms(opt("--jitter-ms")?),
        rate_pps: opt("--rate-pps")?.map(|r| r as u32),
    };
    let seed: u64 = need(args, "--seed")?;
    let mut config = ProxyConfig::symmetric(seed, impairment);
    config.lifetime = Duration::from_secs_f64(seconds + 5.0);
    let proxy =
        ImpairmentProxy::start(listen, upstream, config).map_err(|e| format!("proxy: {e}"))?;
    let stop_file = format!("{}.stop", arg(args, "--report").unwrap_or("proxy"));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline && !std::path::Path::new(&stop_file).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = proxy.stop();
    let direction = |d: &pnet_mesh::testing::impair::DirectionStats| {
        json!({
            "received": d.received, "forwarded": d.forwarded, "lost": d.lost,
            "lost_in_burst": d.lost_in_burst, "duplicated": d.duplicated, "reordered": d.reordered,
            "corrupted": d.corrupted, "queue_full": d.queue_full, "rate_limited": d.rate_limited,
        })
    };
    write_report(
        args,
        &json!({"a_to_b": direction(&stats.a_to_b), "b_to_a": direction(&stats.b_to_a)}),
    )
}

/// The UDP payloads to `to` in a pcap file of Ethernet frames (IPv4 only).
fn pcap_payloads(bytes: &[u8], to: SocketAddr) -> Result<Vec<Vec<u8>>, String> {
    let header = bytes.get(..24).ok_or("pcap: no global header")?;
    let magic = u32::from_le_bytes(header[..4].try_into().unwrap_or_default());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => return Err(format!("pcap: magic {magic:#x}")),
    };
    let word = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap_or_default();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = word(&header[20..24]);
    if linktype != 1 {
        return Err(format!("pcap: link type {linktype}, Ethernet (1) expected"));
    }
    let std::net::IpAddr::V4(dst_ip) = to.ip() else {
        return Err("replay: IPv4 only".into());
    };
    let mut out = Vec::new();
    let mut at = 24;
    while let Some(record) = bytes.get(at..at + 16) {
        let incl = word(&record[8..12]) as usize;
        let Some(frame) = bytes.get(at + 16..at + 16 + incl) else {
            break;
        };
        at += 16 + incl;
        // Ethernet, IPv4, UDP.
        let Some(ip) = frame
            .get(14..)
            .filter(|_| frame.get(12..14) == Some(&[0x08, 0x00]))
        else {
            continue;
        };
        let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
        if ip.get(9) != Some(&17) || ip.get(16..20) != Some(&dst_ip.octets()[..]) {
            continue;
        }
        let Some(udp) = ip.get(ihl..) else { continue };
        let port = u16::from_be_bytes([
            udp.first().copied().unwrap_or(0),
            udp.get(1).copied().unwrap_or(0),
        ]);
        let dport = u16::from_be_bytes([
            udp.get(2).copied().unwrap_or(0),
            udp.get(3).copied().unwrap_or(0),
        ]);
        let _ = port;
        if dport != to.port() {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([
            udp.get(4).copied().unwrap_or(0),
            udp.get(5).copied().unwrap_or(0),
        ]));
        if let Some(payload) = udp.get(8..len.max(8)) {
            out.push(payload.to_vec());
        }
    }
    Ok(out)
}

/// Sends every captured payload to `--to` again.
fn replay(args: &[String]) -> Result<(), String> {
    let pcap = arg(args, "--pcap").ok_or("--pcap is required")?;
    let to: SocketAddr = need(args, "--to")?;
    let gap = Duration::from_millis(need(args, "--gap-ms")?);
    let bytes = std::fs::read(pcap).map_err(|e| format!("read {pcap}: {e}"))?;
    let payloads = pcap_payloads(&bytes, to)?;
    let socket = match arg(args, "--from") {
        Some(from) => {
            let from: SocketAddr = from
                .parse()
                .map_err(|_| format!("--from {from}: not an address"))?;
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .map_err(|e| e.to_string())?;
            s.set_ip_transparent_v4(true)
                .map_err(|e| format!("IP_TRANSPARENT (needs CAP_NET_ADMIN): {e}"))?;
            s.set_reuse_address(true).map_err(|e| e.to_string())?;
            s.bind(&from.into())
                .map_err(|e| format!("bind {from}: {e}"))?;
            UdpSocket::from(s)
        }
        None => UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?,
    };
    let kind = |p: &Vec<u8>| p.first().copied().unwrap_or(0);
    for p in &payloads {
        socket
            .send_to(p, to)
            .map_err(|e| format!("send to {to}: {e}"))?;
        std::thread::sleep(gap);
    }
    write_report(
        args,
        &json!({
            "datagrams": payloads.len(),
            "initiations": payloads.iter().filter(|p| kind(p) == 1).count(),
            "responses": payloads.iter().filter(|p| kind(p) == 2).count(),
            "transport": payloads.iter().filter(|p| kind(p) == 4).count(),
        }),
    )
}

/// Sends `per_tick` datagrams from `next` every millisecond for `--seconds`, at about `--rate`.
fn paced(args: &[String], mut next: impl FnMut(u64) -> bool) -> Result<(u64, f64), String> {
    let rate: f64 = need(args, "--rate")?;
    let seconds: f64 = need(args, "--seconds")?;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            if next(sent) {
                sent += 1;
            } else {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok((sent, started.elapsed().as_secs_f64()))
}

/// Seeded random datagrams.
fn flood_random(args: &[String]) -> Result<(), String> {
    use pnet_mesh::crypto::rng::{Rng as _, SeededRng};
    let to: SocketAddr = need(args, "--to")?;
    let size: usize =
        arg(args, "--size").map_or(Ok(148), |v| v.parse().map_err(|_| "--size".to_owned()))?;
    let mut rng = SeededRng::new(need(args, "--seed")?);
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; size];
    let (sent, secs) = paced(args, |_| {
        rng.fill_bytes(&mut buf);
        socket.send_to(&buf, to).is_ok()
    })?;
    write_report(args, &json!({"sent": sent, "seconds": secs, "size": size}))
}

/// Initiations with a valid mac1 from 256 sources, from keys the responder does not know.
fn flood_initiations(args: &[String]) -> Result<(), String> {
    use pnet_mesh::crypto::rng::OsRng;
    use pnet_mesh::crypto::{PrivateKey, PublicKey};
    use pnet_mesh::{Endpoint, EndpointConfig, PeerConfig, PeerId};
    let to: SocketAddr = need(args, "--to")?;
    let responder =
        PublicKey::from_base64(arg(args, "--responder").ok_or("--responder is required")?)
            .map_err(|e| format!("--responder: {e}"))?;
    let prefix = arg(args, "--sources").ok_or("--sources is required")?;
    let now = Instant::now();
    let mut sockets = Vec::with_capacity(256);
    let mut initiations = Vec::with_capacity(256);
    for i in 0..256u32 {
        let from: SocketAddr = format!("{prefix}.{i}:0").parse().map_err(|_| {
            format!("--sources {prefix}: not the first three bytes of an IPv4 address")
        })?;
        let socket = UdpSocket::bind(from).map_err(|e| format!("bind {from}: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        sockets.push(socket);
        let config = EndpointConfig::builder(PrivateKey::generate(&mut OsRng))
            .peer(PeerConfig::new(responder).endpoint(to))
            .build()
            .map_err(|e| e.to_string())?;
        let mut ep = Endpoint::new(std::sync::Arc::new(config), Box::new(OsRng), now);
        ep.connect(now, PeerId(0)).map_err(|e| format!("{e:?}"))?;
        let mut out = vec![0u8; 2048];
        let t = ep.poll_transmit(now, &mut out).ok_or("no initiation")?;
        out.truncate(t.len);
        initiations.push(out);
    }
    let (mut replies, mut largest) = (0u64, 0usize);
    let mut buf = [0u8; 2048];
    let (sent, secs) = paced(args, |k| {
        let i = (k % 256) as usize;
        let ok = sockets[i].send_to(&initiations[i], to).is_ok();
        if k % 64 == 0 {
            for s in &sockets {
                while let Ok(n) = s.recv(&mut buf) {
                    replies += 1;
                    largest = largest.max(n);
                }
            }
        }
        ok
    })?;
    std::thread::sleep(Duration::from_millis(200));
    for s in &sockets {
        while let Ok(n) = s.recv(&mut buf) {
            replies += 1;
            largest = largest.max(n);
        }
    }
    write_report(
        args,
        &json!({"sent": sent, "seconds": secs, "initiation_len": initiations[0].len(),
                "cookie_replies": replies, "largest_reply": largest}),
    )
}

/// Many nodes handshaking with one peer at once.
fn handshakers(args: &[String]) -> Result<(), String> {
    use pnet_mesh::crypto::{PrivateKey, PublicKey};
    use pnet_mesh::proto::constants::ProtocolTimes;
    use pnet_mesh::{Event, Node, PeerConfig, PeerId};
    let keys = std::fs::read_to_string(arg(args, "--keys").ok_or("--keys is required")?)
        .map_err(|e| format!("--keys: {e}"))?;
    let peer = PublicKey::from_base64(arg(args, "--peer").ok_or("--peer is required")?)
        .map_err(|e| format!("--peer: {e}"))?;
    let endpoint: SocketAddr = need(args, "--endpoint")?;
    let scale: f64 = need(args, "--timer-scale")?;
    let seconds: f64 = need(args, "--seconds")?;
    let mut nodes = Vec::new();
    for (i, line) in keys.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let key = PrivateKey::from_base64(line.trim())
            .map_err(|e| format!("--keys line {}: {e}", i + 1))?;
        let node = Node::builder(key)
            .listen("0.0.0.0:0".parse().map_err(|_| "listen")?)
            .mesh_address(std::net::IpAddr::from([10, 98, 0, (i + 1) as u8]))
            .data_shards(1)
            .protocol_times(ProtocolTimes::scaled(scale))
            .peer(
                PeerConfig::new(peer)
                    .endpoint(endpoint)
                    .allowed_ip("10.99.0.2/32".parse().map_err(|_| "allowed ip")?),
            )
            .start()
            .map_err(|e| format!("node {i}: {e}"))?;
        nodes.push(node);
    }
    let started = Instant::now();
    for n in &nodes {
        n.connect(PeerId(0)).map_err(|e| e.to_string())?;
    }
    let mut done: Vec<Option<f64>> = vec![None; nodes.len()];
    let mut initiations = vec![0u32; nodes.len()];
    while started.elapsed().as_secs_f64() < seconds && done.iter().any(Option::is_none) {
        for (i, n) in nodes.iter().enumerate() {
            while let Some(e) = n.poll_event() {
                match e.event {
                    Event::HandshakeInitiated { .. } => initiations[i] += 1,
                    Event::HandshakeCompleted { .. } if done[i].is_none() => {
                        done[i] = Some(started.elapsed().as_secs_f64());
                    }
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed().as_secs_f64();
    write_report(
        args,
        &json!({"nodes": nodes.len(), "completed_s": done, "initiations": initiations,
                "elapsed_s": elapsed}),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sink") => sink(&args),
        Some("send") => send(&args),
        Some("stream") => stream(&args),
        Some("proxy") => proxy(&args),
        Some("replay") => replay(&args),
        Some("flood-random") => flood_random(&args),
        Some("handshakers") => handshakers(&args),
        Some("flood-initiations") => flood_initiations(&args),
        _ => Err("usage: fault-tool sink|send|stream|proxy|replay|flood-random|flood-initiations|handshakers … (see the source's header)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-tool: {e}");
            ExitCode::from(2)
        }
    }
}
