//! `bench report DIR`: the JSON reports saved in a directory turned into one self-contained HTML page
//! with inline SVG charts — throughput and latency by payload size, ours beside the ceiling, bare UDP
//! and boringtun (udp-loopback) or bare AEAD (in-memory).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// One line of a chart: a name, a colour and `(payload size, value)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// SVG colour.
    pub color: &'static str,
    /// Points, sorted by x when drawn.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Reads every `*.json` report in `dir` and returns the HTML page.
///
/// # Errors
/// The directory cannot be read, or holds no report this page understands.
pub fn render_dir(dir: &Path) -> Result<String, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut reports = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("scenario").is_some() => reports.push(v),
            // Other JSON (criterion's, a comparison) is not ours to chart.
            _ => {}
        }
    }
    if reports.is_empty() {
        return Err(format!(
            "{}: no bench report (JSON with a \"scenario\" field) found",
            dir.display()
        ));
    }
    Ok(render(&reports))
}

/// The page for these reports.
pub fn render(reports: &[Value]) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>PNet Mesh benchmarks</title>\
         <style>body{font-family:sans-serif;max-width:960px;margin:2em auto}svg{background:#fff}\
         h2{margin-top:2em}p.note{color:#555}</style></head><body>\n<h1>PNet Mesh benchmarks</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p class=\"note\">{} report(s). Every ratio compares legs measured in the same run.</p>",
        reports.len()
    );
    // udp-loopback: one group of charts per backend.
    let mut by_backend: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in reports.iter().filter(|r| scenario(r) == "udp-loopback") {
        let mut runs = vec![r];
        if let Some(Value::Array(others)) = r.get("other_backends") {
            runs.extend(others.iter());
        }
        for run in runs {
            by_backend
                .entry(text(run, "backend"))
                .or_default()
                .push(run);
        }
    }
    let boringtun: Vec<(f64, f64)> = reports
        .iter()
        .filter(|r| scenario(r) == "udp-loopback")
        .filter_map(|r| {
            Some((
                num(r, &["payload_size"])?,
                num(r, &["boringtun", "packets_per_sec"])?,
            ))
        })
        .collect();
    for (backend, runs) in &by_backend {
        // Runs nested under other_backends carry no payload size: take their parent's.
        let size_of =
            |run: &Value| num(run, &["payload_size"]).or_else(|| parent_size(reports, run));
        let leg = |path: &[&str]| -> Vec<(f64, f64)> {
            runs.iter()
                .filter_map(|run| Some((size_of(run)?, num(run, path)?)))
                .collect()
        };
        let _ = writeln!(html, "<h2>udp-loopback, {}</h2>", escape(backend));
        html.push_str(&line_chart(
            "Datagrams per second by payload size",
            "inner packet bytes",
            "datagrams/s",
            &[
                series("ours", 0, leg(&["ours", "packets_per_sec"])),
                series(
                    "ceiling (bare AEAD)",
                    1,
                    leg(&["ceiling", "packets_per_sec"]),
                ),
                series("bare UDP", 2, leg(&["bare_udp", "packets_per_sec"])),
                series("boringtun", 3, boringtun.clone()),
            ],
        ));
        html.push_str(&line_chart(
            "One-way latency at half load (µs)",
            "inner packet bytes",
            "µs",
            &[
                series(
                    "ours p50",
                    0,
                    scale(leg(&["ours", "latency", "p50_ns"]), 1e-3),
                ),
                series(
                    "ours p99",
                    4,
                    scale(leg(&["ours", "latency", "p99_ns"]), 1e-3),
                ),
                series(
                    "ceiling p99",
                    1,
                    scale(leg(&["ceiling", "latency", "p99_ns"]), 1e-3),
                ),
            ],
        ));
    }
    let in_memory: Vec<&Value> = reports
        .iter()
        .filter(|r| scenario(r) == "in-memory")
        .collect();
    if !in_memory.is_empty() {
        let leg = |path: &[&str]| -> Vec<(f64, f64)> {
            in_memory
                .iter()
                .filter_map(|r| Some((num(r, &["payload_size"])?, num(r, path)?)))
                .collect()
        };
        html.push_str("<h2>in-memory</h2>\n");
        html.push_str(&line_chart(
            "Packets per second by payload size",
            "inner packet bytes",
            "packets/s",
            &[
                series("ours", 0, leg(&["packets_per_sec"])),
                series("bare AEAD", 1, leg(&["bare_aead", "packets_per_sec"])),
            ],
        ));
        html.push_str(&line_chart(
            "Per-packet latency (µs)",
            "inner packet bytes",
            "µs",
            &[
                series("p50", 0, scale(leg(&["latency", "p50_ns"]), 1e-3)),
                series("p99", 4, scale(leg(&["latency", "p99_ns"]), 1e-3)),
            ],
        ));
    }
    html.push_str("</body></html>\n");
    html
}

fn parent_size(reports: &[Value], run: &Value) -> Option<f64> {
    reports.iter().find_map(|r| match r.get("other_backends") {
        Some(Value::Array(others)) if others.iter().any(|o| std::ptr::eq(o, run)) => {
            num(r, &["payload_size"])
        }
        _ => None,
    })
}

fn series(name: &str, color: usize, points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.to_string(),
        color: COLORS[color % COLORS.len()],
        points,
    }
}

fn scale(points: Vec<(f64, f64)>, k: f64) -> Vec<(f64, f64)> {
    points.into_iter().map(|(x, y)| (x, y * k)).collect()
}

fn scenario(v: &Value) -> String {
    text(v, "scenario")
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    at.as_f64()
}

/// `s` with HTML's special characters escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG line chart; the y axis starts at zero, x is linear in payload size.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    const W: f64 = 860.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 90.0;
    const RIGHT: f64 = 180.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{t}</title>\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\">{t}</text>",
        t = escape(title)
    );
    if !x_min.is_finite() {
        svg.push_str("<text x=\"100\" y=\"120\">no data</text></svg>\n");
        return svg;
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * pw;
    let py = |y: f64| TOP + ph - y / y_max * ph;
    // Axes, ticks and grid.
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#000\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#000\"/>",
        b = TOP + ph,
        r = LEFT + pw
    );
    for i in 0..=4 {
        let y = y_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{r}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" font-size=\"11\" text-anchor=\"end\">{label}</text>",
            yy = py(y),
            r = LEFT + pw,
            tx = LEFT - 6.0,
            ty = py(y) + 4.0,
            label = si(y)
        );
    }
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{x}</text>",
            px(x),
            TOP + ph + 16.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" font-size=\"12\" transform=\"rotate(-90 14 {:.1})\" \
         text-anchor=\"middle\">{}</text>",
        LEFT + pw / 2.0,
        H - 10.0,
        escape(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    for (k, s) in series.iter().enumerate() {
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if !path.is_empty() {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{p}\"/>",
                c = s.color,
                p = path.join(" ")
            );
            for &(x, y) in &pts {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{}: {} at {x}</title></circle>",
                    px(x),
                    py(y),
                    s.color,
                    escape(&s.name),
                    si(y)
                );
            }
        }
        let ly = TOP + 14.0 + k as f64 * 18.0;
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"{r:.1}\" width=\"12\" height=\"12\" fill=\"{c}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" font-size=\"12\">{n}</text>",
            lx = LEFT + pw + 16.0,
            r = ly - 10.0,
            c = s.color,
            tx = LEFT + pw + 34.0,
            ty = ly,
            n = escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `1.2M`, `340k`, `12.5`.
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_charts_every_backend_and_leg_of_saved_reports() {
        let report = |size: u64, ours: f64| {
            serde_json::json!({
                "scenario": "udp-loopback", "backend": "io_uring", "payload_size": size,
                "ours": {"packets_per_sec": ours, "latency": {"p50_ns": 90000, "p99_ns": 180000}},
                "ceiling": {"packets_per_sec": ours * 1.05, "latency": {"p99_ns": 150000}},
                "bare_udp": {"packets_per_sec": ours * 1.5},
                "boringtun": {"packets_per_sec": 390000.0},
                "other_backends": [{
                    "backend": "mmsg",
                    "ours": {"packets_per_sec": ours * 1.1},
                    "ceiling": {"packets_per_sec": ours * 1.2},
                    "bare_udp": {"packets_per_sec": ours * 2.0}
                }]
            })
        };
        let html = render(&[report(64, 440_000.0), report(1420, 370_000.0)]);
        assert!(html.contains("<h2>udp-loopback, io_uring</h2>"));
        assert!(html.contains("<h2>udp-loopback, mmsg</h2>"));
        // Both sizes on the x axis, every series in the legend, a point per size.
        assert!(html.contains(">1420</text>") && html.contains(">64</text>"));
        for name in [
            "ours",
            "ceiling (bare AEAD)",
            "bare UDP",
            "boringtun",
            "ours p99",
        ] {
            assert!(
                html.contains(&format!(">{name}</text>")),
                "{name} in the legend"
            );
        }
        assert!(html.contains("ours: 440k at 64"), "io_uring point");
        assert!(
            html.contains("ours: 484k at 64"),
            "mmsg point, sized from its parent"
        );
    }

    #[test]
    fn a_directory_without_reports_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("pnet-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = render_dir(&dir).unwrap_err();
        assert!(err.contains("no bench report"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
