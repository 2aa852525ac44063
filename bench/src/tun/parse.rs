//! Parsers for what the tools print: `ping`'s text and `iperf3 -J`'s JSON.

use serde::Serialize;
use serde_json::Value;

/// A `ping` run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ping {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Replies received.
    pub received: u32,
    /// Loss, percent.
    pub loss_pct: f64,
    /// Smallest round trip, ms.
    pub min_ms: f64,
    /// Median round trip, ms.
    pub p50_ms: f64,
    /// 90th percentile round trip, ms.
    pub p90_ms: f64,
    /// Largest round trip, ms.
    pub max_ms: f64,
    /// Mean round trip, ms.
    pub mean_ms: f64,
}

/// Parses `ping -c N` output (iputils): every `time=… ms` and the summary line.
///
/// # Errors
/// No summary line, or no reply at all.
pub fn ping(text: &str) -> Result<Ping, String> {
    let mut rtts: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next())
        .filter_map(|t| t.parse().ok())
        .collect();
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .ok_or_else(|| format!("no ping summary in: {}", text.trim()))?;
    let number_before = |needle: &str| -> Option<f64> {
        let at = summary.find(needle)?;
        summary
            .get(..at)?
            .split([' ', ','])
            .rev()
            .find(|w| !w.is_empty())?
            .trim_end_matches('%')
            .parse()
            .ok()
    };
    let transmitted = number_before(" packets transmitted").unwrap_or(0.0) as u32;
    let received = number_before(" received").unwrap_or(0.0) as u32;
    let loss_pct = number_before("% packet loss")
        .or_else(|| number_before(" packet loss"))
        .unwrap_or(100.0);
    if rtts.is_empty() {
        return Err(format!("no ping reply: {}", summary.trim()));
    }
    rtts.sort_by(f64::total_cmp);
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize];
    Ok(Ping {
        transmitted,
        received,
        loss_pct,
        min_ms: rtts[0],
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        max_ms: rtts[rtts.len() - 1],
        mean_ms: rtts.iter().sum::<f64>() / rtts.len() as f64,
    })
}

/// An `iperf3 -J` run, from the receiver's side where the tool reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Iperf {
    /// What the receiver got, Gbit/s.
    pub received_gbps: f64,
    /// What the sender sent, Gbit/s.
    pub sent_gbps: f64,
    /// TCP retransmissions (TCP only).
    pub retransmits: Option<u64>,
    /// UDP datagrams lost, percent (UDP only).
    pub lost_pct: Option<f64>,
    /// UDP datagrams lost (UDP only).
    pub lost_packets: Option<u64>,
    /// UDP datagrams sent (UDP only).
    pub packets: Option<u64>,
    /// UDP jitter, ms (UDP only).
    pub jitter_ms: Option<f64>,
    /// Seconds measured.
    pub seconds: f64,
}

/// Parses `iperf3 -J` output for a TCP or UDP test.
///
/// # Errors
/// Not JSON, iperf3's own `error`, or no end summary.
pub fn iperf(text: &str, udp: bool) -> Result<Iperf, String> {
    // Warnings (`UDP block size … exceeds TCP MSS`) may come before the JSON on the same stream.
    let json = text.find('{').and_then(|at| text.get(at..)).unwrap_or(text);
    let v: Value = serde_json::from_str(json)
        .map_err(|e| format!("iperf3 output is not JSON ({e}): {}", text.trim()))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3: {e}"));
    }
    let end = v.get("end").ok_or("iperf3 JSON has no `end`")?;
    let sent = end.get("sum_sent").or_else(|| end.get("sum"));
    let received = end.get("sum_received").or_else(|| end.get("sum"));
    let (Some(sent), Some(received)) = (sent, received) else {
        return Err("iperf3 JSON has no sum_sent/sum_received".into());
    };
    let f = |o: &Value, k: &str| o.get(k).and_then(Value::as_f64);
    let u = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64);
    let gbps = |o: &Value| f(o, "bits_per_second").unwrap_or(0.0) / 1e9;
    Ok(Iperf {
        received_gbps: gbps(received),
        sent_gbps: gbps(sent),
        retransmits: if udp { None } else { u(sent, "retransmits") },
        lost_pct: if udp {
            f(received, "lost_percent")
        } else {
            None
        },
        lost_packets: if udp {
            u(received, "lost_packets")
        } else {
            None
        },
        packets: if udp { u(received, "packets") } else { None },
        jitter_ms: if udp { f(received, "jitter_ms") } else { None },
        seconds: f(received, "seconds").unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_output_gives_percentiles_and_loss() {
        let text = "PING 10.220.0.2 (10.220.0.2) 56(84) bytes of data.\n\
            64 bytes from 10.220.0.2: icmp_seq=1 ttl=64 time=0.900 ms\n\
            64 bytes from 10.220.0.2: icmp_seq=2 ttl=64 time=0.300 ms\n\
            64 bytes from 10.220.0.2: icmp_seq=4 ttl=64 time=0.500 ms\n\n\
            --- 10.220.0.2 ping statistics ---\n\
            4 packets transmitted, 3 received, 25% packet loss, time 603ms\n\
            rtt min/avg/max/mdev = 0.300/0.566/0.900/0.249 ms\n";
        let p = ping(text).unwrap();
        assert_eq!((p.transmitted, p.received, p.loss_pct), (4, 3, 25.0));
        assert_eq!((p.min_ms, p.p50_ms, p.max_ms), (0.3, 0.5, 0.9));
        let none = "--- x ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n";
        assert!(ping(none).unwrap_err().contains("no ping reply"));
        assert!(ping("ping: connect: Network is unreachable").is_err());
    }

    #[test]
    fn iperf_json_gives_the_receivers_view() {
        let tcp = r#"{"end":{"sum_sent":{"bits_per_second":2.5e9,"retransmits":7,"seconds":2},
            "sum_received":{"bits_per_second":2.4e9,"seconds":2}}}"#;
        let t = iperf(tcp, false).unwrap();
        assert_eq!(
            (t.received_gbps, t.sent_gbps, t.retransmits),
            (2.4, 2.5, Some(7))
        );
        assert_eq!(t.lost_pct, None);
        let udp = r#"{"end":{"sum":{"bits_per_second":5e8,"lost_percent":0,"sender":true},
            "sum_sent":{"bits_per_second":5e8},
            "sum_received":{"bits_per_second":4.9e8,"lost_percent":0.5,"lost_packets":23,
            "packets":4600,"jitter_ms":0.01,"seconds":2}}}"#;
        let u = iperf(udp, true).unwrap();
        assert_eq!(
            (u.lost_pct, u.lost_packets, u.packets),
            (Some(0.5), Some(23), Some(4600))
        );
        assert_eq!(u.received_gbps, 0.49);
        let err = r#"{"start":{},"error":"unable to connect to server: Connection refused"}"#;
        assert!(
            iperf(err, false)
                .unwrap_err()
                .contains("Connection refused")
        );
        assert!(iperf("not json", true).is_err());
        let warned = format!("warning: UDP block size 1372 exceeds TCP MSS 1368\n{udp}");
        assert_eq!(iperf(&warned, true).unwrap(), u);
    }
}
