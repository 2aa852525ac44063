//! The comparison as a page: grouped bar charts (throughput, latency, CPU, RSS) with the two
//! implementations side by side, the normalized table with ratios, failures, and the regression
//! section when there is one. Inline SVG, no script.

use std::fmt::Write as _;

use serde_json::Value;

use super::compare::NORMALIZED;
use crate::report::escape;

/// A chart: title, unit, and the (normalized key, label) of each group.
type Chart = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PNET_COLOR: &str = "#1f77b4";
const WIREGUARD_COLOR: &str = "#ff7f0e";

/// Renders a `--tun-compare` document.
pub fn render(comparison: &Value) -> String {
    let n = &comparison["normalized"];
    let value = |side: &str, key: &str| n[side][key].as_f64();
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>PNet Mesh TUN comparison</title>\
         <style>body{font-family:sans-serif;max-width:980px;margin:2em auto}svg{background:#fff}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
         th:first-child,td:first-child{text-align:left}p.note{color:#555}</style></head><body>\n\
         <h1>pnet-mesh-tun beside wireguard-go</h1>\n",
    );
    let t = &comparison["traceability"];
    let _ = writeln!(
        html,
        "<p class=\"note\">Same topology, same run of the workflow; report-only. commit {} · \
         pnet-mesh-tun {} · wireguard-go {} · {}</p>",
        escape(t["commit"].as_str().unwrap_or("unknown")),
        escape(t["versions"]["pnet-mesh-tun"].as_str().unwrap_or("?")),
        escape(t["versions"]["wireguard-go"].as_str().unwrap_or("?")),
        escape(t["versions"]["iperf3"].as_str().unwrap_or("iperf3 ?")),
    );
    let charts: [Chart; 4] = [
        (
            "Throughput",
            "Gbit/s",
            &[
                ("tcp_gbps", "TCP a→b"),
                ("tcp_reverse_gbps", "TCP b→a"),
                ("udp_gbps", "UDP a→b"),
            ],
        ),
        (
            "Latency",
            "ms",
            &[
                ("ping_p50_ms", "IPv4 p50"),
                ("ping_p90_ms", "IPv4 p90"),
                ("ping6_p50_ms", "IPv6 p50"),
            ],
        ),
        ("CPU", "seconds", &[("cpu_seconds", "iperf3 steps")]),
        ("Memory", "MiB RSS", &[("rss_mb", "largest process")]),
    ];
    for (title, unit, keys) in charts {
        let groups: Vec<(&str, Option<f64>, Option<f64>)> = keys
            .iter()
            .map(|(k, label)| (*label, value("pnet", k), value("wireguard", k)))
            .collect();
        let _ = writeln!(html, "<h2>{title}</h2>\n{}", bar_chart(unit, &groups));
    }
    html.push_str("<h2>Figures</h2>\n<table><tr><th>figure</th><th>pnet-mesh-tun</th><th>wireguard-go</th><th>pnet ÷ wireguard</th></tr>\n");
    for (key, meaning) in NORMALIZED {
        let ratio = comparison["ratios"][key]
            .as_f64()
            .map_or(String::new(), |r| format!("{r:.2}"));
        let _ = writeln!(
            html,
            "<tr><td>{} <small>({})</small></td><td>{}</td><td>{}</td><td>{ratio}</td></tr>",
            escape(key),
            escape(meaning),
            cell(&n["pnet"][key]),
            cell(&n["wireguard"][key]),
        );
    }
    let _ = writeln!(
        html,
        "<tr><td>tun_offloads</td><td>{}</td><td>{}</td><td></td></tr></table>",
        cell(&n["pnet"]["tun_offloads"]),
        cell(&n["wireguard"]["tun_offloads"])
    );
    for side in ["pnet", "wireguard"] {
        if let Some(f) = comparison["failures"][side]
            .as_array()
            .filter(|f| !f.is_empty())
        {
            let _ = writeln!(html, "<h2>Failed steps ({side})</h2><ul>");
            for e in f {
                let _ = writeln!(html, "<li>{}</li>", escape(e.as_str().unwrap_or("")));
            }
            html.push_str("</ul>\n");
        }
    }
    if let Some(r) = comparison.get("regression") {
        let _ = writeln!(
            html,
            "<h2>Against the baseline</h2><p class=\"note\">{} (commit {}); report-only.</p>\
             <table><tr><th>figure</th><th>side</th><th>baseline</th><th>now</th><th>change %</th></tr>",
            escape(r["baseline"].as_str().unwrap_or("")),
            escape(r["baseline_commit"].as_str().unwrap_or("unknown"))
        );
        for (key, _) in NORMALIZED {
            for side in ["pnet", "wireguard"] {
                let c = &r["changes"][side][key];
                let _ = writeln!(
                    html,
                    "<tr><td>{key}</td><td>{side}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    cell(&c["baseline"]),
                    cell(&c["current"]),
                    c["change_pct"]
                        .as_f64()
                        .map_or(String::new(), |p| format!("{p:+.1}"))
                );
            }
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Number(x) => x
            .as_f64()
            .map_or_else(|| x.to_string(), |f| format!("{f:.3}")),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

/// Grouped bars: per group one pnet bar and one wireguard bar, labeled with their values.
pub fn bar_chart(unit: &str, groups: &[(&str, Option<f64>, Option<f64>)]) -> String {
    let (width, height, left, bottom, top) = (720.0, 260.0, 60.0, 40.0, 20.0);
    let max = groups
        .iter()
        .flat_map(|(_, a, b)| [a.unwrap_or(0.0), b.unwrap_or(0.0)])
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let plot_h = height - bottom - top;
    let slot = (width - left - 10.0) / groups.len().max(1) as f64;
    let bar = (slot / 3.0).min(80.0);
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-size=\"12\"><text x=\"4\" y=\"14\">{}</text>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>",
        escape(unit),
        height - bottom,
        width - 10.0,
        height - bottom
    );
    for (i, (label, a, b)) in groups.iter().enumerate() {
        let x0 = left + i as f64 * slot + (slot - 2.0 * bar) / 2.0;
        for (j, (v, color)) in [(a, PNET_COLOR), (b, WIREGUARD_COLOR)]
            .into_iter()
            .enumerate()
        {
            let x = x0 + j as f64 * bar;
            match v {
                Some(v) => {
                    let h = v / max * plot_h;
                    let _ = write!(
                        svg,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"/>\
                         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                        height - bottom - h,
                        bar - 4.0,
                        x + bar / 2.0 - 2.0,
                        height - bottom - h - 4.0,
                        short(*v)
                    );
                }
                None => {
                    let _ = write!(
                        svg,
                        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">n/a</text>",
                        x + bar / 2.0,
                        height - bottom - 4.0
                    );
                }
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x0 + bar,
            height - bottom + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        "<rect x=\"{}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{PNET_COLOR}\"/>\
         <text x=\"{}\" y=\"13\">pnet-mesh-tun</text>\
         <rect x=\"{}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{WIREGUARD_COLOR}\"/>\
         <text x=\"{}\" y=\"13\">wireguard-go</text></svg>",
        width - 250.0,
        width - 236.0,
        width - 130.0,
        width - 116.0
    );
    svg
}

fn short(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_has_every_chart_and_marks_missing_figures() {
        let c = json!({
            "normalized": {
                "pnet": {"tcp_gbps": 3.2, "rss_mb": 20.0, "tun_offloads": "on"},
                "wireguard": {"tcp_gbps": 0.5, "rss_mb": 100.0, "tun_offloads": "not applicable"},
            },
            "ratios": {"tcp_gbps": 6.4},
            "traceability": {"commit": "abc<1>", "versions": {}},
            "failures": {"pnet": [], "wireguard": ["udp_b_to_a: boom"]},
        });
        let html = render(&c);
        for needle in [
            "Throughput",
            "Latency",
            "CPU",
            "Memory",
            "6.40",
            "abc&lt;1&gt;",
            "udp_b_to_a: boom",
            "n/a",
            "not applicable",
        ] {
            assert!(html.contains(needle), "{needle}");
        }
        assert_eq!(html.matches("<svg").count(), 4);
    }
}
