//! The fault suite's traffic and attack tools, run inside the lab's namespaces with
//! `ip netns exec`. Every mode is bounded in rate and time and writes a JSON report.
//!
//! ```text
//! fault-tool sink --listen 127.0.0.1:7200 --seconds 10 --report sink.json      # echo and count
//! fault-tool send --to 127.0.0.1:7100 --count 2000 --rate 2000 --size 1000 --wait-ms 2000 --report send.json
//! fault-tool proxy --listen 10.31.1.1:51900 --upstream 10.31.2.2:51820 --seconds 30 --seed 7 \
//!     --corrupt 0.01 [--loss P] [--reorder P --reorder-delay-ms D] [--delay-ms D --jitter-ms J] \
//!     [--gilbert G2B,B2G,LOSS_BAD,LOSS_GOOD] [--rate-pps N] --report proxy.json
//! ```
//!
//! The proxy is the engine's seeded impairment proxy, the same impairments both ways; it runs for
//! `--seconds`, or until a file named like its report with `.stop` appended appears.
//!
//! A datagram of `send` carries its sequence number and send time (16 bytes) and padding; the sink
//! echoes it and counts sequence numbers: received, unique, duplicates, out of order.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let (mut received, mut out_of_order, mut highest) = (0u64, 0u64, None::<u64>);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        received += 1;
        if n >= 8 {
            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
            *seen.entry(seq).or_default() += 1;
            if highest.is_some_and(|h| seq < h) {
                out_of_order += 1;
            }
            highest = Some(highest.map_or(seq, |h| h.max(seq)));
        }
        if echo {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
    let duplicates: u64 = seen.values().map(|&c| u64::from(c.saturating_sub(1))).sum();
    write_report(
        args,
        &json!({
            "received": received,
            "unique": seen.len(),
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "highest_seq": highest,
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
    write_report(
        args,
        &json!({
            "sent": count,
            "send_errors": send_errors,
            "echoed": echoed.len(),
            "duplicates": duplicates,
            "seconds": sent_for.as_secs_f64(),
            "goodput_mbit_s": echoed.len() as f64 * size as f64 * 8.0 / sent_for.as_secs_f64().max(1e-9) / 1e6,
            "rtt_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": rtts.last()},
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sink") => sink(&args),
        Some("send") => send(&args),
        Some("proxy") => proxy(&args),
        _ => Err("usage: fault-tool sink|send|proxy … (see the source's header)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-tool: {e}");
            ExitCode::from(2)
        }
    }
}
