//! `--tun-compare`: two benchmark reports (one per implementation) into one comparison: the raw
//! reports, each figure normalized once per side under the same key, the ratios, traceability, and
//! an optional report-only regression section against an earlier comparison.

use serde_json::{Map, Value, json};

/// The keys of `normalized.<side>`, in display order, with their meaning.
pub const NORMALIZED: [(&str, &str); 12] = [
    ("tcp_gbps", "iperf3 TCP a→b, receiver Gbit/s"),
    ("tcp_reverse_gbps", "iperf3 TCP b→a, receiver Gbit/s"),
    ("tcp_retransmits", "TCP a→b retransmissions"),
    ("udp_gbps", "iperf3 UDP a→b, receiver Gbit/s"),
    ("udp_loss_pct", "UDP a→b datagrams lost, %"),
    ("udp_reverse_loss_pct", "UDP b→a datagrams lost, %"),
    ("ping_p50_ms", "IPv4 ping median, ms"),
    ("ping6_p50_ms", "IPv6 ping median, ms"),
    ("ping_p90_ms", "IPv4 ping 90th percentile, ms"),
    ("rss_mb", "largest tunnel process RSS over the run, MiB"),
    (
        "cpu_seconds",
        "CPU seconds of both tunnel processes over the iperf3 steps",
    ),
    ("threads", "most threads of a tunnel process"),
];

/// Ratios reported as pnet ÷ wireguard.
pub const RATIOS: [&str; 5] = [
    "tcp_gbps",
    "tcp_reverse_gbps",
    "rss_mb",
    "cpu_seconds",
    "ping_p50_ms",
];

fn step<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report
        .get("steps")?
        .as_array()?
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
}

fn result(report: &Value, name: &str, key: &str) -> Value {
    step(report, name)
        .and_then(|s| s.get("result"))
        .and_then(|r| r.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The normalized figures of one report (`null` where a step failed).
pub fn normalize(report: &Value) -> Value {
    let usage = |side: &str, key: &str| {
        report
            .get("resources")
            .and_then(|r| r.get(side))
            .and_then(|u| u.get(key))
            .and_then(Value::as_f64)
    };
    let rss = match (usage("a", "rss_mb_max"), usage("b", "rss_mb_max")) {
        (Some(a), Some(b)) => json!(a.max(b)),
        _ => Value::Null,
    };
    let threads = match (usage("a", "threads_max"), usage("b", "threads_max")) {
        (Some(a), Some(b)) => json!(a.max(b)),
        _ => Value::Null,
    };
    let iperf_steps = ["tcp_a_to_b", "tcp_b_to_a", "udp_a_to_b", "udp_b_to_a"];
    let cpu: Option<f64> = iperf_steps
        .iter()
        .map(|name| {
            let s = step(report, name)?;
            let side = |k: &str| s.get("resources")?.get(k)?.get("cpu_seconds")?.as_f64();
            Some(side("a")? + side("b")?)
        })
        .sum();
    let mut m = Map::new();
    m.insert(
        "tcp_gbps".into(),
        result(report, "tcp_a_to_b", "received_gbps"),
    );
    m.insert(
        "tcp_reverse_gbps".into(),
        result(report, "tcp_b_to_a", "received_gbps"),
    );
    m.insert(
        "tcp_retransmits".into(),
        result(report, "tcp_a_to_b", "retransmits"),
    );
    m.insert(
        "udp_gbps".into(),
        result(report, "udp_a_to_b", "received_gbps"),
    );
    m.insert(
        "udp_loss_pct".into(),
        result(report, "udp_a_to_b", "lost_pct"),
    );
    m.insert(
        "udp_reverse_loss_pct".into(),
        result(report, "udp_b_to_a", "lost_pct"),
    );
    m.insert("ping_p50_ms".into(), result(report, "ping_ipv4", "p50_ms"));
    m.insert("ping6_p50_ms".into(), result(report, "ping_ipv6", "p50_ms"));
    m.insert("ping_p90_ms".into(), result(report, "ping_ipv4", "p90_ms"));
    m.insert("rss_mb".into(), rss);
    m.insert("cpu_seconds".into(), cpu.map_or(Value::Null, |c| json!(c)));
    m.insert("threads".into(), threads);
    let settings = report.get("settings").cloned().unwrap_or(Value::Null);
    m.insert(
        "udp_bitrate".into(),
        settings.get("udp_bitrate").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "udp_length".into(),
        settings.get("udp_length").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "iperf_duration_s".into(),
        settings
            .get("iperf_duration_s")
            .cloned()
            .unwrap_or(Value::Null),
    );
    // Fields of one implementation only are marked, never zero.
    let offloads = match report.get("offloads") {
        Some(Value::String(s)) => json!(s),
        _ => json!("not applicable"),
    };
    m.insert("tun_offloads".into(), offloads);
    Value::Object(m)
}

/// Steps that failed, `name: error`.
fn failures(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("ok") != Some(&Value::Bool(true)))
        .map(|s| {
            format!(
                "{}: {}",
                s.get("name").and_then(Value::as_str).unwrap_or("?"),
                s.get("error").and_then(Value::as_str).unwrap_or("failed")
            )
        })
        .collect();
    if let Some(e) = report.get("failure").and_then(Value::as_str) {
        out.push(format!("topology: {e}"));
    }
    out
}

/// The comparison of `pnet` and `wireguard` reports (read from `inputs`), with a regression section
/// when a `baseline` comparison is given.
///
/// # Errors
/// A report of the wrong implementation or schema.
pub fn compare(
    pnet: &Value,
    wireguard: &Value,
    inputs: (&str, &str),
    baseline: Option<(&str, &Value)>,
) -> Result<Value, String> {
    for (report, want, file) in [
        (pnet, "pnet-mesh-tun", inputs.0),
        (wireguard, "wireguard-go", inputs.1),
    ] {
        if report.get("schema").and_then(Value::as_str) != Some("pnet-mesh.tun-benchmark.v1") {
            return Err(format!("{file}: not a --tun-benchmark report"));
        }
        let got = report.get("implementation").and_then(Value::as_str);
        if got != Some(want) {
            return Err(format!("{file}: a report of {got:?}, expected {want}"));
        }
    }
    let (np, nw) = (normalize(pnet), normalize(wireguard));
    let mut ratios = Map::new();
    for key in RATIOS {
        let r = match (f(&np[key]), f(&nw[key])) {
            (Some(a), Some(b)) if b > 0.0 => json!(a / b),
            _ => Value::Null,
        };
        ratios.insert(key.into(), r);
    }
    let tcp_ratio = f(&ratios["tcp_gbps"]);
    let rss_ratio = f(&ratios["rss_mb"]);
    let loss = f(&np["udp_loss_pct"]);
    let targets = json!({
        "note": "report-only: the issue's targets, never a pass or fail of the run",
        "tcp_gbps_ratio_at_least": 6.0,
        "tcp_gbps_ratio_met": tcp_ratio.map(|r| r >= 6.0),
        "rss_mb_ratio_at_most": 0.25,
        "rss_mb_ratio_met": rss_ratio.map(|r| r <= 0.25),
        "udp_loss_pct_below": 1.0,
        "udp_loss_pct_met": loss.map(|l| l < 1.0),
    });
    let env = |r: &Value, k: &str| r.get("environment").and_then(|e| e.get(k)).cloned();
    let mut out = json!({
        "schema": "pnet-mesh.tun-comparison.v1",
        "implementation": {"pnet": "pnet-mesh-tun", "wireguard": "wireguard-go"},
        "environment": pnet.get("environment").cloned().unwrap_or(Value::Null),
        "traceability": {
            "commit": env(pnet, "commit"),
            "versions": {
                "pnet-mesh-tun": pnet.get("version"),
                "wireguard-go": wireguard.get("version"),
                "iperf3": pnet.get("iperf3_version"),
                "rustc": env(pnet, "rustc"),
            },
            "command_lines": {
                "pnet": pnet.get("command_line"),
                "wireguard": wireguard.get("command_line"),
            },
            "inputs": {"pnet": inputs.0, "wireguard": inputs.1},
        },
        "settings": {
            "pnet": pnet.get("settings"),
            "wireguard": wireguard.get("settings"),
            "same": pnet.get("settings") == wireguard.get("settings"),
        },
        "normalized": {"pnet": np, "wireguard": nw},
        "ratios": Value::Object(ratios),
        "targets": targets,
        "failures": {"pnet": failures(pnet), "wireguard": failures(wireguard)},
        "ok": pnet.get("ok") == Some(&Value::Bool(true)) && wireguard.get("ok") == Some(&Value::Bool(true)),
        "raw": {"pnet": pnet, "wireguard": wireguard},
    });
    if let Some((file, base)) = baseline {
        out["regression"] = regression(&out, file, base);
    }
    Ok(out)
}

/// Each normalized figure beside the baseline's, with the change in percent (report-only).
fn regression(current: &Value, file: &str, baseline: &Value) -> Value {
    let mut changes = Map::new();
    for side in ["pnet", "wireguard"] {
        let mut m = Map::new();
        for (key, _) in NORMALIZED {
            let now = f(&current["normalized"][side][key]);
            let then = f(&baseline["normalized"][side][key]);
            let change = match (now, then) {
                (Some(n), Some(t)) if t != 0.0 => json!((n - t) / t * 100.0),
                _ => Value::Null,
            };
            m.insert(
                key.into(),
                json!({"baseline": then, "current": now, "change_pct": change}),
            );
        }
        changes.insert(side.into(), Value::Object(m));
    }
    json!({
        "note": "report-only: changes against the baseline, never a pass or fail",
        "baseline": file,
        "baseline_commit": baseline["traceability"]["commit"],
        "changes": Value::Object(changes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(implementation: &str, tcp: f64, rss: f64, offloads: Value) -> Value {
        let usage = |cpu: f64| json!({"a": {"cpu_seconds": cpu}, "b": {"cpu_seconds": cpu}});
        json!({
            "schema": "pnet-mesh.tun-benchmark.v1",
            "implementation": implementation,
            "ok": true,
            "offloads": offloads,
            "settings": {"udp_bitrate": "500M", "udp_length": 1372, "iperf_duration_s": 2},
            "resources": {"a": {"rss_mb_max": rss, "threads_max": 8}, "b": {"rss_mb_max": rss / 2.0, "threads_max": 9}},
            "steps": [
                {"name": "tcp_a_to_b", "ok": true, "result": {"received_gbps": tcp, "retransmits": 3}, "resources": usage(1.0)},
                {"name": "tcp_b_to_a", "ok": true, "result": {"received_gbps": tcp}, "resources": usage(1.0)},
                {"name": "udp_a_to_b", "ok": true, "result": {"received_gbps": 0.5, "lost_pct": 0.2}, "resources": usage(0.5)},
                {"name": "udp_b_to_a", "ok": false, "error": "iperf3: boom", "resources": usage(0.5)},
                {"name": "ping_ipv4", "ok": true, "result": {"p50_ms": 0.4, "p90_ms": 0.6}},
            ],
        })
    }

    #[test]
    fn each_figure_appears_once_per_side_under_the_same_key() {
        let p = report("pnet-mesh-tun", 3.0, 20.0, json!("on"));
        let w = report("wireguard-go", 0.5, 100.0, Value::Null);
        let c = compare(&p, &w, ("p.json", "w.json"), None).unwrap();
        for side in ["pnet", "wireguard"] {
            for key in [
                "tcp_gbps",
                "udp_loss_pct",
                "ping_p50_ms",
                "rss_mb",
                "cpu_seconds",
            ] {
                assert!(c["normalized"][side].get(key).is_some(), "{side}.{key}");
            }
        }
        assert_eq!(c["normalized"]["pnet"]["tcp_gbps"], 3.0);
        assert_eq!(c["normalized"]["pnet"]["rss_mb"], 20.0);
        assert_eq!(c["normalized"]["pnet"]["cpu_seconds"], 6.0);
        assert_eq!(c["normalized"]["pnet"]["threads"], 9.0);
        assert_eq!(c["ratios"]["tcp_gbps"], 6.0);
        assert_eq!(c["ratios"]["rss_mb"], 0.2);
        assert_eq!(c["targets"]["tcp_gbps_ratio_met"], true);
        // A failed step leaves its figure null and names itself; never a zero.
        assert!(c["normalized"]["pnet"]["udp_reverse_loss_pct"].is_null());
        assert_eq!(c["failures"]["pnet"][0], "udp_b_to_a: iperf3: boom");
        // Offloads apply to pnet-mesh-tun only.
        assert_eq!(c["normalized"]["pnet"]["tun_offloads"], "on");
        assert_eq!(
            c["normalized"]["wireguard"]["tun_offloads"],
            "not applicable"
        );
        assert_eq!(c["raw"]["wireguard"]["implementation"], "wireguard-go");
        assert!(c.get("regression").is_none());
    }

    #[test]
    fn a_baseline_adds_changes_in_percent_and_swapped_inputs_are_refused() {
        let p = report("pnet-mesh-tun", 3.0, 20.0, json!("on"));
        let w = report("wireguard-go", 0.5, 100.0, Value::Null);
        let base = compare(
            &report("pnet-mesh-tun", 2.0, 20.0, json!("on")),
            &w,
            ("a", "b"),
            None,
        )
        .unwrap();
        let c = compare(&p, &w, ("p", "w"), Some(("base.json", &base))).unwrap();
        assert_eq!(
            c["regression"]["changes"]["pnet"]["tcp_gbps"]["change_pct"],
            50.0
        );
        assert_eq!(c["regression"]["baseline"], "base.json");
        assert!(
            compare(&w, &p, ("w", "p"), None)
                .unwrap_err()
                .contains("expected pnet-mesh-tun")
        );
    }
}
