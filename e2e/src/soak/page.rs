//! The soak's page: the summary as a table and each series over time as an inline SVG plot, one
//! self-contained HTML file with no script and nothing fetched.

use std::fmt::Write;

use serde_json::Value;

use super::Sample;

/// One line of a plot.
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 10.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round upper bound for an axis (1, 2 or 5 times a power of ten).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

/// An SVG line plot of `series` against seconds, the y axis from 0 (or from `y_min`) to a round
/// bound above the largest value.
fn plot(title: &str, unit: &str, series: &[Series<'_>], y_min: Option<f64>) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_max = nice_ceiling(xs.fold(0.0, f64::max));
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let lowest = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let y0 = y_min.map_or(0.0, |m| m.min(lowest).max(0.0));
    let y1 = y0 + nice_ceiling(ys.iter().copied().fold(0.0, f64::max) - y0);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * w;
    let sy = |y: f64| TOP + h - (y - y0) / (y1 - y0).max(f64::MIN_POSITIVE) * h;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"11\">",
        escape(title)
    );
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
            LEFT + w,
            sy(y),
            sy(y),
            LEFT - 4.0,
            sy(y) + 4.0,
            format_number(y),
            escape(unit)
        );
        let x = x_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} s</text>",
            sx(x),
            HEIGHT - 8.0,
            format_number(x)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>",
            s.colour,
            points.join(" "),
            LEFT + 8.0 + 90.0 * i as f64,
            TOP + 12.0,
            s.colour,
            escape(s.name)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

fn format_number(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The page for `report` and its `samples`.
pub(super) fn render(report: &Value, samples: &[Sample]) -> String {
    let over = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (s.t_s, f(s))).collect()
    };
    let both = |name_a, name_b, f: &dyn Fn(&Sample, usize) -> f64| {
        [
            Series {
                name: name_a,
                colour: "#1f77b4",
                points: over(&|s| f(s, 0)),
            },
            Series {
                name: name_b,
                colour: "#d62728",
                points: over(&|s| f(s, 1)),
            },
        ]
    };
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>PNet Mesh soak (F15)</title>\
         <style>body{font-family:sans-serif;max-width:760px;margin:2em auto}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
         figcaption{font-weight:bold;margin-top:1em}</style></head><body>\
         <h1>PNet Mesh soak (F15)</h1>\n",
    );
    let config = &report["config"];
    let summary = &report["summary"];
    let _ = write!(
        html,
        "<p>{} s at {} Mbit/s of {}-byte datagrams, echoed, {} with <code>{}</code> both ways; \
         a sample every {} s.</p>\n<table>",
        config["seconds"],
        config["rate_mbit"],
        config["size"],
        escape(config["route"].as_str().unwrap_or("")),
        escape(config["impairments"].as_str().unwrap_or("")),
        config["interval_s"]
    );
    let rows = [
        (
            "rekeys (A's handshakes after the first)",
            summary["rekeys"].clone(),
        ),
        (
            "rekey interval, s (min, max)",
            summary["rekey_interval_s"].clone(),
        ),
        (
            "longest gap between echoes, ms",
            summary["longest_gap_ms"].clone(),
        ),
        ("gaps over 1 s", summary["gaps_over_1s"].clone()),
        ("RSS, KiB (after the warm-up)", summary["rss_kib"].clone()),
        (
            "RSS outside the buffer pools, KiB",
            summary["rss_outside_buffer_pools_kib"].clone(),
        ),
        (
            "buffer pools resident, KiB",
            summary["buffer_pools_resident_kib"].clone(),
        ),
        ("open descriptors", summary["fds"].clone()),
        ("sent / echoed / lost", {
            let s = &report["stream"];
            Value::String(format!("{} / {} / {}", s["sent"], s["echoed"], s["lost"]))
        }),
        ("panics", summary["panics"].clone()),
        (
            "violations of the smoke's bounds",
            summary["violations"].clone(),
        ),
    ];
    for (what, value) in rows {
        let _ = write!(
            html,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            escape(what),
            escape(&value.to_string())
        );
    }
    html.push_str("</table>\n");
    html.push_str(&plot(
        "Resident memory",
        "KiB",
        &both("A", "B", &|s, i| s.rss_kib[i] as f64),
        Some(0.0),
    ));
    html.push_str(&plot(
        "Resident memory outside the packet buffer pools",
        "KiB",
        &both("A", "B", &|s, i| {
            s.rss_kib[i].saturating_sub(s.pool_kib[i]) as f64
        }),
        Some(0.0),
    ));
    html.push_str(&plot(
        "Resident part of the packet buffer pools",
        "KiB",
        &both("A", "B", &|s, i| s.pool_kib[i] as f64),
        Some(0.0),
    ));
    html.push_str(&plot(
        "Open descriptors",
        "",
        &both("A", "B", &|s, i| s.fds[i] as f64),
        None,
    ));
    html.push_str(&plot(
        "Handshakes completed",
        "",
        &both("A", "B", &|s, i| s.handshakes[i] as f64),
        None,
    ));
    html.push_str(&plot(
        "Echoed payload per interval",
        "Mbit/s",
        &[Series {
            name: "A → B → A",
            colour: "#2ca02c",
            points: over(&|s| s.echoed_mbit_s),
        }],
        None,
    ));
    html.push_str(&plot(
        "Longest silence between two echoes per interval",
        "ms",
        &[Series {
            name: "gap",
            colour: "#9467bd",
            points: over(&|s| s.max_gap_ms),
        }],
        None,
    ));
    html.push_str(&plot(
        "Round-trip time per interval",
        "ms",
        &[
            Series {
                name: "p50",
                colour: "#1f77b4",
                points: over(&|s| s.rtt_ms[0].unwrap_or(0.0)),
            },
            Series {
                name: "p99",
                colour: "#ff7f0e",
                points: over(&|s| s.rtt_ms[1].unwrap_or(0.0)),
            },
        ],
        None,
    ));
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_are_round_and_above_the_data() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12_500.0), 20_000.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn the_page_has_a_plot_per_series_and_the_summary() {
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                t_s: f64::from(i) * 10.0,
                rss_kib: [9000 + i as u64, 9100],
                pool_kib: [2000, 2100],
                fds: [20, 21],
                handshakes: [1, 1],
                echoed_mbit_s: 49.5,
                max_gap_ms: 3.0,
                rtt_ms: [Some(41.0), Some(52.0)],
                ..Sample::default()
            })
            .collect();
        let report = serde_json::json!({
            "config": {"seconds": 40, "rate_mbit": 50, "size": 1200, "route": "A → <proxy> → B",
                       "impairments": "--loss 0.005", "interval_s": 10},
            "summary": {"rekeys": 0, "panics": 0, "violations": []},
            "stream": {"sent": 1, "echoed": 1, "lost": 0},
        });
        let html = render(&report, &samples);
        assert_eq!(html.matches("<svg").count(), 8);
        assert!(html.contains("A → &lt;proxy&gt; → B"), "text is escaped");
        assert!(html.contains("<polyline"));
        assert!(!html.contains("NaN"));
    }
}
