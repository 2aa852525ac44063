//! The fault suite, F0–F13 of `FAULT_PLAN.md`: node A and node B (`pnet-mesh up` processes) in
//! namespaces joined by a router that carries the fault, traffic from `fault-tool`. Counts, ordering
//! and state are asserted from the nodes' own counters and events; intervals from the event times
//! with at least 20 % tolerance, under the test-only timer scale where real durations are long.
//! Throughput, latency and handshake times are measured and written to `artifacts/faults/`, never
//! asserted. Needs root, `ip`, `iptables`, `nft`, `tc`; runs one scenario at a time
//! (a machine-wide lock).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh_e2e::faults::lab::{A_ADDR, A_ADDR_2, B_ADDR, TOWARDS_B};
use pnet_mesh_e2e::faults::node::PeerSpec;
use pnet_mesh_e2e::faults::pair::{
    A_FORWARD, A_MESH, A_SERVICE, A_SINK, B_FORWARD, B_MESH, B_SERVICE, B_SINK, PORT, PROXY, Proxy,
    spec_a, spec_b,
};
use pnet_mesh_e2e::faults::{FaultLab, NodeProcess, NodeSpec, Side, lab, report};
use serde_json::{Value, json};

fn tool() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fault-tool"))
}

/// How a scenario's nodes are set up.
#[derive(Debug, Clone, Copy, Default)]
struct Options {
    /// `--timer-scale` of A (B keeps real timers unless `scale_b`).
    timer_scale: Option<f64>,
    /// Also scale B.
    scale_b: bool,
    /// `MTU` of both.
    mtu: Option<u16>,
    /// B knows A's endpoint too.
    b_knows_a: bool,
    /// A reaches B through the impairment proxy on the router, with these `fault-tool proxy`
    /// arguments (both directions).
    proxy: Option<&'static [&'static str]>,
    /// B also has this many peers (10.98.0.1, …), whose keys [`Pair::extra_keys`] holds.
    extra_peers: usize,
}

struct Pair {
    lab: FaultLab,
    a: NodeProcess,
    b: NodeProcess,
    runs: usize,
    proxy: Option<Proxy>,
    extra_keys: Vec<PrivateKey>,
}

/// Starts the proxy on the router with `impairments`.
fn start_proxy(lab: &FaultLab, impairments: &[&str], tag: &str) -> Proxy {
    Proxy::start(lab, &tool().display().to_string(), impairments, tag, 120)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn pair(o: Options) -> Pair {
    let lab = FaultLab::new().unwrap_or_else(|e| panic!("{e}"));
    let proxy = o.proxy.map(|args| start_proxy(&lab, args, "1"));
    let extra_keys: Vec<PrivateKey> = (0..o.extra_peers)
        .map(|_| PrivateKey::generate(&mut OsRng))
        .collect();
    let (ka, kb) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let mut b = spec_b(
        kb.clone(),
        ka.public_key(),
        o.b_knows_a.then(|| format!("{A_ADDR}:{PORT}")),
    );
    b.mtu = o.mtu;
    b.timer_scale = if o.scale_b { o.timer_scale } else { None };
    b.peers.extend(extra_keys.iter().enumerate().map(|(i, k)| {
        pnet_mesh_e2e::faults::pair::peer(k.public_key(), format!("10.98.0.{}/32", i + 1), None)
    }));
    let b = NodeProcess::start(&lab, b).unwrap_or_else(|e| panic!("{e}"));
    let b_endpoint = if proxy.is_some() {
        PROXY.to_owned()
    } else {
        format!("{B_ADDR}:{PORT}")
    };
    let mut a = spec_a(ka, kb.public_key(), b_endpoint);
    a.mtu = o.mtu;
    a.timer_scale = o.timer_scale;
    let a = NodeProcess::start(&lab, a).unwrap_or_else(|e| panic!("{e}"));
    Pair {
        lab,
        a,
        b,
        runs: 0,
        proxy,
        extra_keys,
    }
}

/// What one exchange measured: the sender's report and the sink's.
struct Exchange {
    send: Value,
    sink: Value,
}

impl Pair {
    /// Stops the proxy and returns its counters.
    fn stop_proxy(&mut self) -> Value {
        let proxy = self.proxy.take().expect("a proxy runs");
        proxy.stop().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The sum of a node's drop counters.
    fn all_drops(node: &NodeProcess) -> u64 {
        drops(node)
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
    }

    /// Sends `count` datagrams of `size` bytes at `rate`/s from A's side through A's forward to B's
    /// sink, which echoes them; waits `wait_ms` for the last echoes.
    fn exchange(&mut self, count: u64, rate: f64, size: usize, wait_ms: u64) -> Exchange {
        exchange_via(
            &self.lab,
            &mut self.runs,
            B_SINK,
            (count, rate, size, wait_ms),
        )
    }
}

/// The exchange of [`Pair::exchange`] with the sink at `sink` in B's namespace.
fn exchange_via(
    lab: &FaultLab,
    runs: &mut usize,
    sink_addr: &str,
    params: (u64, f64, usize, u64),
) -> Exchange {
    exchange_between(
        lab,
        runs,
        (Side::A, A_FORWARD),
        (Side::B, sink_addr),
        params,
    )
}

/// An exchange from a sender in `from.0` to the forward `from.1`, with the sink at `sink.1` in
/// `sink.0`'s namespace.
fn exchange_between(
    lab: &FaultLab,
    runs: &mut usize,
    (sender_side, forward): (Side, &str),
    (sink_side, sink_addr): (Side, &str),
    (count, rate, size, wait_ms): (u64, f64, usize, u64),
) -> Exchange {
    *runs += 1;
    let run = *runs;
    let dir = lab.dir().to_path_buf();
    let sink_report = dir.join(format!("sink-{run}.json"));
    let send_report = dir.join(format!("send-{run}.json"));
    let seconds = count as f64 / rate + wait_ms as f64 / 1000.0 + 1.0;
    let tool = tool().display().to_string();
    let mut sink = lab
        .spawn_child(
            sink_side,
            &[
                &tool,
                "sink",
                "--listen",
                sink_addr,
                "--seconds",
                &seconds.to_string(),
                "--report",
                &sink_report.display().to_string(),
            ],
            &dir.join(format!("sink-{run}.log")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(100));
    lab.exec(
        sender_side,
        &[
            &tool,
            "send",
            "--to",
            forward,
            "--count",
            &count.to_string(),
            "--rate",
            &rate.to_string(),
            "--size",
            &size.to_string(),
            "--wait-ms",
            &wait_ms.to_string(),
            "--report",
            &send_report.display().to_string(),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let status = sink.wait().expect("the sink ends");
    assert!(status.success(), "sink: {status}");
    let read = |p: &PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    Exchange {
        send: read(&send_report),
        sink: read(&sink_report),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every drop counter of a node's `show --json` (the reasons that occurred).
fn drops(node: &NodeProcess) -> Value {
    node.show()
        .map(|s| s["drops"].clone())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The gaps between consecutive times, ms.
fn gaps(times: &[u64]) -> Vec<u64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Resource figures of both nodes, and a check that they stay small.
fn resources(p: &Pair) -> Value {
    let (ra, rb) = (p.a.rss_kb().unwrap_or(0), p.b.rss_kb().unwrap_or(0));
    let (fa, fb) = (p.a.fds().unwrap_or(0), p.b.fds().unwrap_or(0));
    assert!(ra > 0 && rb > 0, "both nodes run");
    assert!(
        ra < 64 * 1024 && rb < 64 * 1024,
        "RSS stays small: {ra} KiB, {rb} KiB"
    );
    assert!(fa < 128 && fb < 128, "descriptors stay few: {fa}, {fb}");
    json!({"a_rss_kib": ra, "b_rss_kib": rb, "a_fds": fa, "b_fds": fb})
}

#[test]
fn fault_f00_baseline() {
    let mut p = pair(Options::default());
    // The handshake, with a little traffic (packets beyond the per-peer staging bound while it runs
    // would be dropped, by design).
    let warm = p.exchange(20, 100.0, 200, 1000);
    assert_eq!(u(&warm.send["echoed"]), 20, "{}", warm.send);
    let x = p.exchange(2000, 2000.0, 1000, 2000);
    assert_eq!(
        u(&x.send["echoed"]),
        2000,
        "every datagram came back: {}",
        x.send
    );
    assert_eq!(u(&x.send["duplicates"]), 0);
    assert_eq!(
        (u(&x.sink["unique"]), u(&x.sink["duplicates"])),
        (2000, 0),
        "{}",
        x.sink
    );
    // One handshake, started by A, and nothing dropped on a clean path.
    let init = p.a.event_times("HandshakeInitiated");
    let done = p.a.event_times("HandshakeCompleted");
    assert_eq!((init.len(), done.len()), (1, 1), "{:#?}", p.a.events());
    for node in [&p.a, &p.b] {
        let d = drops(node);
        assert!(
            d.as_object()
                .is_some_and(|m| m.values().all(|v| v.as_u64() == Some(0))),
            "{} dropped nothing: {d}",
            node.spec.name
        );
    }
    let res = resources(&p);
    report::write(
        "fault_f00_baseline",
        &json!({
            "handshake_ms": done[0].saturating_sub(init[0]),
            "rtt_ms": x.send["rtt_ms"],
            "goodput_mbit_s": x.send["goodput_mbit_s"],
            "resources": res,
        }),
    );
}

/// Loss of 1, 5 and 30 % both ways on the router, 3000 datagrams each: inner loss follows outer.
fn random_loss(lab: &FaultLab, runs: &mut usize, sink: &str) -> Vec<Value> {
    let mut figures = Vec::new();
    for loss in [0.01, 0.05, 0.30] {
        let prob = loss.to_string();
        let rule = [
            "FORWARD",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &prob,
            "-j",
            "DROP",
        ];
        lab.router_iptables(&[&["-I"][..], &rule[..]].concat())
            .unwrap();
        let n = 3000u64;
        let x = exchange_via(lab, runs, sink, (n, 3000.0, 500, 2000));
        lab.router_iptables(&[&["-D"][..], &rule[..]].concat())
            .unwrap();
        // A round trip crosses the router twice: it survives with (1 - p)².
        let expected = (1.0 - loss) * (1.0 - loss);
        let got = u(&x.send["echoed"]) as f64 / n as f64;
        let sigma = (expected * (1.0 - expected) / n as f64).sqrt();
        assert!(
            (got - expected).abs() <= 5.0 * sigma + 0.01,
            "at {loss}: {got:.4} of the round trips, expected {expected:.4}"
        );
        // One way: inner loss tracks outer loss.
        let one_way = u(&x.sink["unique"]) as f64 / n as f64;
        assert!(
            (one_way - (1.0 - loss)).abs() <= 5.0 * ((1.0 - loss) * loss / n as f64).sqrt() + 0.01,
            "at {loss}: {one_way:.4} arrived one way"
        );
        assert_eq!(u(&x.sink["duplicates"]), 0, "loss never duplicates");
        figures.push(json!({"loss": loss, "round_trip_delivered": got, "one_way_delivered": one_way, "rtt_ms": x.send["rtt_ms"]}));
    }
    figures
}

/// At most one initiation per REKEY_TIMEOUT (5 s) per peer since `started`.
fn initiation_rate_holds(a: &NodeProcess, started: Instant) -> usize {
    let initiations = a.event_times("HandshakeInitiated");
    let allowed = 1 + (started.elapsed().as_secs() / 5) as usize;
    assert!(
        initiations.len() <= allowed,
        "{} initiations, at most {allowed}",
        initiations.len()
    );
    assert!(
        gaps(&initiations).iter().all(|&g| g >= 4000),
        "{:?}",
        gaps(&initiations)
    );
    initiations.len()
}

#[test]
fn fault_f01_random_loss() {
    let mut p = pair(Options {
        extra_peers: 20,
        ..Options::default()
    });
    // The session first, on a clean path.
    p.exchange(50, 500.0, 200, 1000);
    let started = Instant::now();
    let figures = random_loss(&p.lab, &mut p.runs, B_SINK);
    let initiations = initiation_rate_holds(&p.a, started);
    // Twenty peers handshaking with B at once through 30 % loss each way all get there within
    // REKEY_ATTEMPT_TIME, at most one initiation per REKEY_TIMEOUT each (timers scaled by 0.2:
    // 90 s -> 18 s, 5 s -> 1 s).
    let scale = 0.2;
    let keys = p.lab.dir().join("handshakers.keys");
    let text: String = p
        .extra_keys
        .iter()
        .map(|k| format!("{}\n", k.to_base64()))
        .collect();
    std::fs::write(&keys, text).unwrap();
    let report_path = p.lab.dir().join("handshakers.json");
    let rule = [
        "FORWARD",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.3",
        "-j",
        "DROP",
    ];
    p.lab
        .router_iptables(&[&["-I"][..], &rule[..]].concat())
        .unwrap();
    let (tool, b_key) = (
        tool().display().to_string(),
        p.b.spec.key.public_key().to_string(),
    );
    p.lab
        .exec(
            Side::A,
            &[
                &tool,
                "handshakers",
                "--keys",
                &keys.display().to_string(),
                "--peer",
                &b_key,
                "--endpoint",
                &format!("{B_ADDR}:{PORT}"),
                "--timer-scale",
                &scale.to_string(),
                "--seconds",
                "30",
                "--report",
                &report_path.display().to_string(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    p.lab
        .router_iptables(&[&["-D"][..], &rule[..]].concat())
        .unwrap();
    let h: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let completed: Vec<f64> = h["completed_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_f64()
                .unwrap_or_else(|| panic!("a peer never completed: {h}"))
        })
        .collect();
    assert_eq!(completed.len(), 20);
    let slowest = completed.iter().copied().fold(0.0, f64::max);
    assert!(
        slowest <= 90.0 * scale * 1.2,
        "all 20 within REKEY_ATTEMPT_TIME: {h}"
    );
    for (c, n) in completed.iter().zip(h["initiations"].as_array().unwrap()) {
        let sent = n.as_u64().unwrap();
        let allowed = 1 + (c / (5.0 * scale * 0.8)) as u64;
        assert!(sent <= allowed, "{sent} initiations in {c:.1} s: {h}");
    }
    report::write(
        "fault_f01_random_loss",
        &json!({"runs": figures, "initiations": initiations, "twenty_peers_at_30_pct": h}),
    );
}

#[test]
fn fault_f04_duplication() {
    let mut p = pair(Options::default());
    p.exchange(20, 200.0, 200, 1000);
    let mut figures = Vec::new();
    for percent in [10, 100] {
        let table = format!("dup{percent}");
        let cond = if percent == 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {percent} ")
        };
        let rules = format!(
            "table ip {table} {{\n  chain forward_dup {{\n    type filter hook forward priority 0; policy accept;\n    \
             oifname \"{TOWARDS_B}\" udp dport {PORT} {cond}counter dup to {B_ADDR} device \"{TOWARDS_B}\"\n  }}\n}}\n"
        );
        let rule_file = p.lab.dir().join(format!("{table}.nft"));
        std::fs::write(&rule_file, rules).unwrap();
        p.lab
            .router_nft(&["-f", &rule_file.display().to_string()])
            .unwrap();
        let packets = |node: &NodeProcess, key: &str| {
            node.show().unwrap()["peers"][0][key].as_u64().unwrap_or(0)
        };
        let n = 600u64;
        let (before, a_tx, b_rx) = (
            p.b.drops("Replayed"),
            packets(&p.a, "tx_packets"),
            packets(&p.b, "rx_packets"),
        );
        let x = p.exchange(n, 300.0, 300, 1500);
        let listing = p.lab.router_nft(&["list", "table", "ip", &table]).unwrap();
        p.lab
            .router_nft(&["delete", "table", "ip", &table])
            .unwrap();
        // The router counts what it copied; a GSO batch is one copy of several datagrams.
        let duplicated: u64 = listing
            .split("counter packets ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {listing}"));
        let replayed = p.b.drops("Replayed") - before;
        let sent = packets(&p.a, "tx_packets") - a_tx;
        let accepted = packets(&p.b, "rx_packets") - b_rx;
        assert!(duplicated > 0, "the router duplicated something");
        assert_eq!(accepted, sent, "every original accepted exactly once");
        // Every copy is dropped as a replay; when the router copies everything, each datagram's.
        assert!(
            replayed >= duplicated && replayed <= sent,
            "{replayed} replays of {duplicated} copies, {sent} sent"
        );
        if percent == 100 {
            assert_eq!(replayed, sent, "each datagram's copy refused");
        }
        assert_eq!(
            u(&x.sink["duplicates"]),
            0,
            "the application sees no duplicate"
        );
        assert_eq!(u(&x.sink["unique"]), n, "and every datagram once");
        figures
            .push(json!({"percent": percent, "duplicated": duplicated, "replay_drops": replayed}));
    }
    report::write("fault_f04_duplication", &json!({"runs": figures}));
}

/// A's handshake schedule into a blackhole under the 0.1 timer scale: the first initiation and its
/// retransmissions until the attempt count passes REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 18 (19
/// retries, as wireguard-go and the kernel do: `handshakeAttempts > MaxTimerHandshakes` gives up),
/// 500 + 0..33 ms apart, then silence. Returns the initiation times and the give-up delay.
fn blackhole_schedule(a: &NodeProcess) -> (Vec<u64>, u64) {
    wait_until("A gives up", Duration::from_secs(20), || {
        !a.event_times("HandshakeFailed").is_empty()
    });
    let init = a.event_times("HandshakeInitiated");
    let failed = a.event_times("HandshakeFailed")[0];
    assert_eq!(init.len(), 20, "{:?}", gaps(&init));
    let (lo, hi) = ((500.0 * 0.8) as u64, ((500.0 + 33.3) * 1.2) as u64);
    for g in gaps(&init) {
        assert!(
            (lo..=hi).contains(&g),
            "retransmit spacing {g} ms, 500 + 0..33 ms expected"
        );
    }
    // Twenty retransmit timers of 500 + 0..33 ms: about 10.3 s (about 103 s unscaled).
    let give_up = failed - init[0];
    assert!(
        (8_000..=12_800).contains(&give_up),
        "gave up {give_up} ms after the first initiation, about 10.3 s expected"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        a.event_times("HandshakeInitiated").len(),
        20,
        "nothing after giving up"
    );
    (init, give_up)
}

#[test]
fn fault_f07_blackhole() {
    // REKEY_TIMEOUT 5 s -> 0.5 s, REKEY_ATTEMPT_TIME 90 s -> 9 s, jitter 333 ms -> 33 ms.
    let scale = 0.1;
    let mut p = pair(Options {
        timer_scale: Some(scale),
        ..Options::default()
    });
    p.lab
        .router_iptables(&["-I", "FORWARD", "-j", "DROP"])
        .unwrap();
    // One datagram asks for a session that cannot come.
    let x = p.exchange(1, 100.0, 100, 200);
    assert_eq!(u(&x.send["echoed"]), 0);
    let (init, give_up) = blackhole_schedule(&p.a);
    // Restored: the next send brings the session back.
    p.lab
        .router_iptables(&["-D", "FORWARD", "-j", "DROP"])
        .unwrap();
    let back = p.exchange(20, 100.0, 100, 1500);
    assert_eq!(u(&back.send["echoed"]), 20, "{}", back.send);
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        21,
        "one new handshake"
    );
    report::write(
        "fault_f07_blackhole",
        &json!({"timer_scale": scale, "initiations": init.len(), "spacing_ms": gaps(&init),
                "give_up_ms": give_up, "rtt_after_restore_ms": back.send["rtt_ms"]}),
    );
}

#[test]
fn fault_f08_initiations_dropped() {
    // REKEY_TIMEOUT 5 s -> 1.25 s; the block lasts 3 s (12 s scaled the same way).
    let scale = 0.25;
    let mut p = pair(Options {
        timer_scale: Some(scale),
        ..Options::default()
    });
    // An initiation is 148 bytes of UDP: 176 bytes of IPv4.
    let rule = [
        "FORWARD", "-p", "udp", "-m", "length", "--length", "176", "-j", "DROP",
    ];
    p.lab
        .router_iptables(&[&["-I"][..], &rule[..]].concat())
        .unwrap();
    let x = p.exchange(1, 100.0, 100, 100);
    assert_eq!(u(&x.send["echoed"]), 0);
    std::thread::sleep(Duration::from_millis(2800));
    let removed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    p.lab
        .router_iptables(&[&["-D"][..], &rule[..]].concat())
        .unwrap();
    let a = &p.a;
    wait_until("the handshake completes", Duration::from_secs(10), || {
        !a.event_times("HandshakeCompleted").is_empty()
    });
    let init = p.a.event_times("HandshakeInitiated");
    let done = p.a.event_times("HandshakeCompleted")[0];
    let after: Vec<u64> = init.iter().copied().filter(|&t| t >= removed_at).collect();
    assert_eq!(
        after.len(),
        1,
        "the first retry after the block succeeds: {init:?}"
    );
    let wait = after[0] - removed_at;
    assert!(
        wait <= ((5_000.0 + 333.0) * scale * 1.2) as u64,
        "retry {wait} ms after the block"
    );
    assert!(done >= after[0]);
    let blocked = init.len() - 1;
    assert!(blocked >= 2, "initiations were refused meanwhile: {init:?}");
    // The staged datagram went out once the session came up; traffic flows.
    let y = p.exchange(20, 100.0, 100, 1000);
    assert_eq!(u(&y.send["echoed"]), 20);
    report::write(
        "fault_f08_initiations_dropped",
        &json!({"timer_scale": scale, "blocked_initiations": blocked, "retry_after_block_ms": wait,
                "handshake_ms": done - after[0]}),
    );
}

#[test]
fn fault_f13_path_mtu() {
    // The router's link towards B carries 1280 bytes; both nodes use MTU 1200, so the largest
    // sealed datagram is 20 + 8 + 32 + 1200 = 1260 bytes of IPv4.
    let mut p = pair(Options {
        mtu: Some(1200),
        ..Options::default()
    });
    let r = p.lab.ns(Side::R);
    pnet_mesh_e2e::faults::lab::run(&["ip", "-n", &r, "link", "set", TOWARDS_B, "mtu", "1280"])
        .unwrap();
    let frag_creates = |lab: &FaultLab| -> u64 {
        let out = lab.exec(Side::R, &["cat", "/proc/net/snmp"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines().filter(|l| l.starts_with("Ip:"));
        let (names, values) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "FragCreates")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let frags_before = frag_creates(&p.lab);
    // The largest UDP payload inside: 1200 - 20 - 8.
    let x = p.exchange(200, 400.0, 1172, 1500);
    assert_eq!(
        u(&x.send["echoed"]),
        200,
        "full-size datagrams cross: {}",
        x.send
    );
    assert_eq!(
        frag_creates(&p.lab),
        frags_before,
        "the router fragmented nothing"
    );
    // One byte more does not fit the MTU: the node refuses it and counts it, nothing crosses.
    let dropped_before = p.a.show().unwrap()["forwards"][0]["dropped"]
        .as_u64()
        .unwrap();
    let y = p.exchange(20, 200.0, 1173, 500);
    assert_eq!(u(&y.sink["received"]), 0, "nothing oversize arrived");
    let dropped = p.a.show().unwrap()["forwards"][0]["dropped"]
        .as_u64()
        .unwrap()
        - dropped_before;
    assert_eq!(
        dropped, 20,
        "every oversize datagram was refused and counted"
    );
    assert_eq!(frag_creates(&p.lab), frags_before);
    report::write(
        "fault_f13_path_mtu",
        &json!({"largest_payload": 1172, "refused": dropped}),
    );
}

#[test]
fn fault_f02_burst_loss() {
    // Gilbert-Elliott as netem's `loss gemodel 1% 10% 70% 0.1%`, both ways.
    let mut p = pair(Options {
        proxy: Some(&["--gilbert", "0.01,0.1,0.7,0.001"]),
        ..Options::default()
    });
    let n = 3000u64;
    let x = p.exchange(n, 1000.0, 300, 1500);
    let stats = p.stop_proxy();
    let burst_lost = u(&stats["a_to_b"]["lost_in_burst"]) + u(&stats["b_to_a"]["lost_in_burst"]);
    assert!(burst_lost > 0, "bursts happened: {stats}");
    assert_eq!(u(&x.sink["duplicates"]), 0);
    // No stuck state: through a clean proxy (B sees A roam to its new port) everything arrives,
    // on the same session.
    p.proxy = Some(start_proxy(&p.lab, &[], "2"));
    let clean = p.exchange(500, 500.0, 300, 1500);
    assert_eq!(u(&clean.send["echoed"]), 500, "{}", clean.send);
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        1,
        "one session throughout"
    );
    assert_eq!(
        p.b.event_times("HandshakeCompleted").len(),
        1,
        "no duplicate session at B"
    );
    report::write(
        "fault_f02_burst_loss",
        &json!({"round_trips_delivered": u(&x.send["echoed"]) as f64 / n as f64,
                "lost_in_burst": burst_lost, "proxy": stats}),
    );
}

#[test]
fn fault_f03_reorder() {
    // 10 ms delay, a quarter of the datagrams held back 10 ms more, both ways.
    let mut p = pair(Options {
        proxy: Some(&[
            "--delay-ms",
            "10",
            "--reorder",
            "0.25",
            "--reorder-delay-ms",
            "10",
        ]),
        ..Options::default()
    });
    // The session first: at 1,000 datagrams/s a handshake slower than 128 ms (the round trip is
    // 20–40 ms here, more on a loaded machine) would overflow the hold queue, a loss that is not
    // the reordering's.
    assert_eq!(u(&p.exchange(5, 20.0, 300, 2000).send["echoed"]), 5);
    let n = 2000u64;
    let x = p.exchange(n, 1000.0, 300, 2000);
    let stats = p.stop_proxy();
    assert!(u(&stats["a_to_b"]["reordered"]) > 0, "{stats}");
    assert!(
        u(&x.sink["out_of_order"]) > 0,
        "the sink saw reordering: {}",
        x.sink
    );
    // Reordering far shallower than the 8128-counter window: nothing is taken for a replay.
    assert_eq!(p.b.drops("Replayed"), 0);
    assert_eq!(p.a.drops("Replayed"), 0);
    // Where a datagram went missing: the proxy's counters, both nodes' drops and the socket
    // buffers' overflow count name the place.
    let where_lost = || {
        format!(
            "proxy {stats}\nsender {}\nsink {}\nA {}\nB {}\nUDP receive buffer errors {:?}",
            x.send,
            x.sink,
            p.a.show().unwrap_or_default(),
            p.b.show().unwrap_or_default(),
            [Side::A, Side::B, Side::R].map(|side| p.lab.udp_receive_buffer_errors(side))
        )
    };
    assert_eq!(
        (u(&x.sink["unique"]), u(&x.sink["duplicates"])),
        (n, 0),
        "every datagram once: {}",
        where_lost()
    );
    assert_eq!(u(&x.send["echoed"]), n, "{}", where_lost());
    report::write(
        "fault_f03_reorder",
        &json!({"sink_out_of_order": x.sink["out_of_order"], "rtt_ms": x.send["rtt_ms"], "proxy": stats}),
    );
}

#[test]
fn fault_f05_corruption() {
    let mut p = pair(Options {
        proxy: Some(&["--corrupt", "0.01"]),
        ..Options::default()
    });
    let n = 3000u64;
    let x = p.exchange(n, 1000.0, 300, 1500);
    let stats = p.stop_proxy();
    let (to_b, to_a) = (
        u(&stats["a_to_b"]["corrupted"]),
        u(&stats["b_to_a"]["corrupted"]),
    );
    assert!(to_b > 0 && to_a > 0, "{stats}");
    // Every flipped datagram is refused and counted where it arrives, and nothing else is.
    assert_eq!(Pair::all_drops(&p.b), to_b, "B: {}", drops(&p.b));
    assert_eq!(Pair::all_drops(&p.a), to_a, "A: {}", drops(&p.a));
    assert!(p.b.drops("TransportDecryptFailed") > 0);
    // Only the corrupted ones are missing, none twice, and no endpoint moved.
    assert_eq!(u(&x.sink["unique"]), n - to_b, "{}", x.sink);
    assert_eq!(u(&x.sink["duplicates"]), 0);
    assert_eq!(
        p.b.event_times("EndpointChanged").len(),
        1,
        "B learned A's endpoint once"
    );
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        1,
        "the session held"
    );
    assert!(
        p.a.pid().is_some() && p.b.show().is_ok(),
        "both nodes still run"
    );
    report::write(
        "fault_f05_corruption",
        &json!({"corrupted_to_b": to_b, "corrupted_to_a": to_a,
        "drops_b": drops(&p.b), "drops_a": drops(&p.a)}),
    );
}

#[test]
fn fault_f06_latency_and_rate() {
    // 300 ms ± 50 ms each way, and about 10 Mbit/s of 1400-byte datagrams (900 per second).
    let mut p = pair(Options {
        proxy: Some(&[
            "--delay-ms",
            "300",
            "--jitter-ms",
            "50",
            "--rate-pps",
            "900",
        ]),
        ..Options::default()
    });
    // The handshake first: what A sends meanwhile beyond the per-peer staging bound is dropped.
    let warm = p.exchange(3, 10.0, 200, 3000);
    assert_eq!(u(&warm.send["echoed"]), 3, "{}", warm.send);
    let x = p.exchange(300, 200.0, 1000, 3000);
    assert_eq!(u(&x.send["echoed"]), 300, "{}", x.send);
    let init = p.a.event_times("HandshakeInitiated");
    let done = p.a.event_times("HandshakeCompleted");
    assert_eq!(
        (init.len(), done.len()),
        (1, 1),
        "a 600 ms round trip is well within REKEY_TIMEOUT"
    );
    // Above the rate: the excess is lost, the session is not, and no initiation storm follows.
    let y = p.exchange(3000, 2000.0, 1000, 2500);
    let stats = p.stop_proxy();
    assert!(u(&stats["a_to_b"]["rate_limited"]) > 0, "{stats}");
    assert!(u(&y.send["echoed"]) > 0);
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        1,
        "no retransmit storm"
    );
    // Jitter reorders within the window: no replay drops.
    assert_eq!(p.b.drops("Replayed"), 0);
    report::write(
        "fault_f06_latency_and_rate",
        &json!({"handshake_ms": done[0] - init[0], "rtt_ms": x.send["rtt_ms"],
                "over_rate_delivered": u(&y.send["echoed"]) as f64 / 3000.0, "proxy": stats}),
    );
}

/// B's current endpoint for A, from its `show --json`.
fn b_endpoint_of_a(p: &Pair) -> String {
    p.b.show().unwrap()["peers"][0]["endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A's address changes under it: the new one first, then the old one goes.
fn move_a(lab: &FaultLab) {
    let a = lab.ns(Side::A);
    let lab_run = pnet_mesh_e2e::faults::lab::run;
    let new = format!("{A_ADDR_2}/24");
    let old = format!("{A_ADDR}/24");
    for argv in [
        &[
            "ip",
            "netns",
            "exec",
            &a,
            "sysctl",
            "-qw",
            "net.ipv4.conf.a0.promote_secondaries=1",
        ][..],
        &["ip", "-n", &a, "addr", "add", &new, "dev", "a0"],
        &["ip", "-n", &a, "addr", "del", &old, "dev", "a0"],
        &[
            "ip",
            "-n",
            &a,
            "route",
            "replace",
            "default",
            "via",
            "10.31.1.1",
        ],
    ] {
        lab_run(argv).unwrap();
    }
}

/// The router masquerades A behind its own address and a port range, and forgets its flows.
fn nat_a(lab: &FaultLab) {
    lab.router_iptables(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        TOWARDS_B,
        "-p",
        "udp",
        "-j",
        "SNAT",
        "--to-source",
        "10.31.2.1:40000-40100",
    ])
    .unwrap();
    lab.exec(Side::R, &["conntrack", "-F"]).unwrap();
}

#[test]
fn fault_f09_endpoint_change() {
    let mut p = pair(Options::default());
    assert_eq!(u(&p.exchange(20, 100.0, 200, 1000).send["echoed"]), 20);
    assert_eq!(b_endpoint_of_a(&p), format!("{A_ADDR}:{PORT}"));
    move_a(&p.lab);
    let moved = p.exchange(200, 200.0, 200, 1500);
    assert_eq!(u(&moved.send["echoed"]), 200, "{}", moved.send);
    // B followed on the first authenticated packet from the new address, with no new handshake.
    assert_eq!(b_endpoint_of_a(&p), format!("{A_ADDR_2}:{PORT}"));
    let changes: Vec<String> =
        p.b.events()
            .iter()
            .filter(|e| e["kind"] == "EndpointChanged")
            .filter_map(|e| e["endpoint"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(
        changes,
        [format!("{A_ADDR}:{PORT}"), format!("{A_ADDR_2}:{PORT}")]
    );
    assert_eq!(p.a.event_times("HandshakeInitiated").len(), 1);
    // NAT rebinding: the router now masquerades A behind its own address and a port range, and
    // forgets its flows; B follows again.
    nat_a(&p.lab);
    let natted = p.exchange(200, 200.0, 200, 1500);
    assert_eq!(u(&natted.send["echoed"]), 200, "{}", natted.send);
    let now: std::net::SocketAddr = b_endpoint_of_a(&p).parse().unwrap();
    assert_eq!(
        now.ip().to_string(),
        "10.31.2.1",
        "B follows A behind the NAT"
    );
    assert!((40_000..=40_100).contains(&now.port()), "{now}");
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        1,
        "still the same session"
    );
    report::write(
        "fault_f09_endpoint_change",
        &json!({"endpoints_seen_by_b": changes, "behind_nat": now.to_string()}),
    );
}

/// The prefix that runs a node with its wall clock an hour behind (libfaketime; monotonic time is
/// left alone, so its timers run normally).
fn an_hour_ago() -> Vec<String> {
    let faketime = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "the fault suite needs libfaketime (package faketime; scripts/test.sh installs it)",
        );
    vec![
        "env".into(),
        format!("LD_PRELOAD={faketime}"),
        "FAKETIME=-3600".into(),
        "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
    ]
}

/// Now, ms since the epoch (the events' clock).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn fault_f10_restart() {
    let mut p = pair(Options {
        b_knows_a: true,
        timer_scale: Some(0.1),
        scale_b: true,
        ..Options::default()
    });
    assert_eq!(u(&p.exchange(20, 100.0, 200, 1000).send["echoed"]), 20);
    // A crashes and comes back a second later with the same key; it sends first.
    p.a.kill();
    std::thread::sleep(Duration::from_secs(1));
    p.a.restart(&p.lab).unwrap();
    let back = p.exchange(100, 100.0, 200, 2000);
    assert_eq!(u(&back.send["echoed"]), 100, "{}", back.send);
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        1,
        "one handshake after the restart"
    );
    assert_eq!(p.b.event_times("HandshakeCompleted").len(), 2);
    assert_eq!(p.b.drops("StaleTimestamp"), 0);
    // Now A crashes again and only B sends: B keeps sealing with keys A has lost until nothing
    // authenticated has come back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s; 1.5 s at B's 0.1
    // scale), then starts a handshake of its own.
    p.a.kill();
    std::thread::sleep(Duration::from_secs(1));
    p.a.restart(&p.lab).unwrap();
    let b_initiations = p.b.event_times("HandshakeInitiated").len();
    let sent_at = now_ms();
    let b_only = exchange_between(
        &p.lab,
        &mut p.runs,
        (Side::B, B_FORWARD),
        (Side::A, A_SINK),
        (100, 25.0, 200, 2000),
    );
    let b_init = p.b.event_times("HandshakeInitiated");
    assert!(b_init.len() > b_initiations, "B started a handshake itself");
    let waited = b_init[b_initiations] - sent_at;
    assert!(
        (1_200..=(1_500.0 * 1.2 + 200.0) as u64).contains(&waited),
        "B's handshake came {waited} ms after its first send, 1.5 s expected"
    );
    assert!(
        u(&b_only.sink["unique"]) > 0,
        "B's traffic reaches A again: {}",
        b_only.sink
    );
    let completed = p.b.event_times("HandshakeCompleted").len();
    // With its clock an hour behind, A's initiations carry older timestamps than B has accepted:
    // B refuses them (counted) and no session forms; documented in FAULT_PLAN.md's F10 row.
    p.a.kill();
    p.a.spec.prefix = an_hour_ago();
    p.a.restart(&p.lab).unwrap();
    let stale = p.exchange(5, 10.0, 200, 1500);
    assert_eq!(u(&stale.send["echoed"]), 0);
    assert!(p.b.drops("StaleTimestamp") >= 1, "{}", drops(&p.b));
    assert_eq!(
        p.b.event_times("HandshakeCompleted").len(),
        completed,
        "no session from the past"
    );
    report::write(
        "fault_f10_restart",
        &json!({"rtt_after_restart_ms": back.send["rtt_ms"], "b_only_handshake_after_ms": waited,
                "stale_timestamps_refused": p.b.drops("StaleTimestamp")}),
    );
}

#[test]
fn fault_f12_replay() {
    let mut p = pair(Options::default());
    assert_eq!(u(&p.exchange(10, 50.0, 200, 1000).send["echoed"]), 10);
    // Everything towards B's port is captured on the router while a real exchange runs, the
    // handshake included.
    let capture = p.lab.dir().join("capture.pcap");
    let cap_log = p.lab.dir().join("tcpdump.log");
    let filter = format!("udp and dst host {B_ADDR} and dst port {PORT}");
    let mut tcpdump = p
        .lab
        .spawn_child(
            Side::R,
            &[
                "tcpdump",
                "-i",
                TOWARDS_B,
                // Each packet handed over as it arrives, not when a 1 s ring block retires, so
                // the last ones are in the file when the capture stops.
                "--immediate-mode",
                "-U",
                "-n",
                "-w",
                &capture.display().to_string(),
                &filter,
            ],
            &cap_log,
        )
        .unwrap_or_else(|e| panic!("the fault suite needs tcpdump: {e}"));
    wait_until("tcpdump listens", Duration::from_secs(10), || {
        std::fs::read_to_string(&cap_log)
            .unwrap_or_default()
            .contains("listening on")
    });
    // A restarts, so the capture holds a fresh handshake; then slowly, so every datagram is its own
    // packet on the wire (no GSO batch to take apart, one staged datagram at most).
    p.a.restart(&p.lab).unwrap();
    let x = p.exchange(60, 20.0, 200, 1500);
    assert_eq!(u(&x.send["echoed"]), 60);
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT, so tcpdump writes out what it holds and says how much it captured.
    lab::run(&["kill", "-INT", &tcpdump.id().to_string()]).unwrap_or_else(|e| panic!("{e}"));
    let _ = tcpdump.wait();
    let status = |p: &Pair| p.b.show().unwrap();
    let before = status(&p);
    let endpoint = b_endpoint_of_a(&p);
    let counter = |s: &Value, reason: &str| s["drops"][reason].as_u64().unwrap_or(0);
    let tool = tool().display().to_string();
    let cap = capture.display().to_string();
    let to = format!("{B_ADDR}:{PORT}");
    let from = format!("{A_ADDR}:{PORT}");
    let mut replays = Vec::new();
    // Under A's own address (from the router, IP_TRANSPARENT), then re-sourced from the attacker.
    for (side, extra) in [(Side::R, vec!["--from", from.as_str()]), (Side::X, vec![])] {
        let report = p.lab.dir().join(format!("replay-{side:?}.json"));
        let report_s = report.display().to_string();
        let mut argv = vec![
            tool.as_str(),
            "replay",
            "--pcap",
            cap.as_str(),
            "--to",
            to.as_str(),
            "--gap-ms",
            "1",
            "--report",
            report_s.as_str(),
        ];
        argv.extend(extra);
        p.lab.exec(side, &argv).unwrap_or_else(|e| panic!("{e}"));
        replays.push(
            serde_json::from_str::<Value>(&std::fs::read_to_string(&report).unwrap()).unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = status(&p);
    let transports = u(&replays[0]["transport"]);
    let initiations = u(&replays[0]["initiations"]);
    assert!(
        transports >= 60 && initiations >= 1,
        "the capture holds the exchange: {} (tcpdump: {})",
        replays[0],
        std::fs::read_to_string(&cap_log).unwrap_or_default().trim()
    );
    // Nothing accepted: no packet counted in, nothing handed to the exposed service.
    assert_eq!(
        after["peers"][0]["rx_packets"], before["peers"][0]["rx_packets"],
        "0 accepted"
    );
    assert_eq!(
        after["exposes"][0]["from_mesh"],
        before["exposes"][0]["from_mesh"]
    );
    // Each replayed transport datagram refused as a replay, each initiation by its timestamp (or
    // by the 20 ms flood rule when two copies follow each other closely).
    assert_eq!(
        counter(&after, "Replayed") - counter(&before, "Replayed"),
        2 * transports
    );
    let stale = counter(&after, "StaleTimestamp") - counter(&before, "StaleTimestamp");
    let flood = counter(&after, "InitiationFlood") - counter(&before, "InitiationFlood");
    assert!(
        stale >= 1,
        "initiations refused by timestamp: {}",
        after["drops"]
    );
    assert_eq!(stale + flood, 2 * initiations);
    assert_eq!(b_endpoint_of_a(&p), endpoint, "no endpoint moved");
    // The real session is untouched.
    assert_eq!(u(&p.exchange(20, 100.0, 200, 1000).send["echoed"]), 20);
    report::write(
        "fault_f12_replay",
        &json!({"captured": replays[0], "replay_drops": 2 * transports, "stale_timestamps": stale,
                "initiation_flood": flood}),
    );
}

#[test]
fn fault_f11_handshake_flood() {
    // A's REKEY_TIMEOUT 5 s -> 1 s, so its cookie-guarded retry comes a second after the cookie.
    let scale = 0.2;
    let mut p = pair(Options {
        timer_scale: Some(scale),
        ..Options::default()
    });
    assert_eq!(u(&p.exchange(20, 100.0, 200, 1000).send["echoed"]), 20);
    let calm = p.exchange(1000, 500.0, 300, 1500);
    let rss_before = p.b.rss_kb().unwrap();
    // From the attacker, bounded: random 148-byte datagrams at 20,000/s and initiations with a
    // valid mac1 from 256 sources at 5,000/s, for 8 seconds.
    let tool = tool().display().to_string();
    let to = format!("{B_ADDR}:{PORT}");
    let b_key = p.b.spec.key.public_key().to_string();
    let dir = p.lab.dir().to_path_buf();
    let (random_report, init_report) = (dir.join("flood-random.json"), dir.join("flood-init.json"));
    let mut floods = Vec::new();
    for argv in [
        vec![
            tool.as_str(),
            "flood-random",
            "--to",
            to.as_str(),
            "--rate",
            "20000",
            "--seconds",
            "8",
            "--seed",
            "3",
        ],
        vec![
            tool.as_str(),
            "flood-initiations",
            "--to",
            to.as_str(),
            "--responder",
            b_key.as_str(),
            "--sources",
            "10.31.10",
            "--rate",
            "5000",
            "--seconds",
            "8",
        ],
    ] {
        let report = if argv[1] == "flood-random" {
            &random_report
        } else {
            &init_report
        };
        let mut argv = argv.clone();
        let report_s = report.display().to_string();
        argv.extend(["--report", report_s.as_str()]);
        let log = dir.join(format!("{}.log", argv[1]));
        floods.push(
            p.lab
                .spawn_child(Side::X, &argv, &log)
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let b = &p.b;
    wait_until("B goes under load", Duration::from_secs(5), || {
        b.show()
            .is_ok_and(|s| s["handshakes"]["under_load"] == true)
    });
    // The established session keeps delivering meanwhile.
    let during = p.exchange(1000, 500.0, 300, 1500);
    assert!(u(&during.send["echoed"]) > 0, "{}", during.send);
    // A legitimate peer that must handshake again (A restarts) gets through with the cookie.
    p.a.restart(&p.lab).unwrap();
    let back = p.exchange(30, 30.0, 200, 3000);
    assert!(
        u(&back.send["echoed"]) > 0,
        "A came back during the flood: {}",
        back.send
    );
    let init = p.a.event_times("HandshakeInitiated");
    let done = p.a.event_times("HandshakeCompleted");
    assert!(
        init.len() >= 2 && !done.is_empty(),
        "refused once, then in with mac2: {init:?} {done:?}"
    );
    let took = done[0] - init[0];
    let rekey_timeout = 5_000.0 * scale;
    assert!(
        (took as f64) <= 2.0 * (rekey_timeout + 333.0 * scale) * 1.2,
        "re-handshake took {took} ms, at most 2 x REKEY_TIMEOUT"
    );
    let under_load_during = p.b.show().unwrap()["handshakes"].clone();
    for mut f in floods {
        assert!(f.wait().unwrap().success(), "a flood tool failed");
    }
    let read = |path: &PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (random, inits) = (read(&random_report), read(&init_report));
    let handshakes = p.b.show().unwrap()["handshakes"].clone();
    let cookies = u(&handshakes["cookie_replies_sent"]);
    // At most one cookie reply per offending initiation, and never larger than the request.
    assert!(cookies > 0, "{handshakes}");
    assert!(
        cookies <= u(&inits["sent"]) + init.len() as u64,
        "{cookies} cookie replies"
    );
    assert!(u(&inits["cookie_replies"]) <= u(&inits["sent"]));
    assert!(
        u(&inits["largest_reply"]) <= 64 && u(&inits["initiation_len"]) == 148,
        "{inits}"
    );
    // The limiter's memory is bounded by the sources it saw, its RSS growth small.
    assert!(
        u(&handshakes["rate_limiter_entries"]) <= 256 + 4,
        "{handshakes}"
    );
    let growth = p.b.rss_kb().unwrap().saturating_sub(rss_before);
    assert!(growth < 16 * 1024, "RSS grew {growth} KiB under the flood");
    assert!(
        drops(&p.b)["Mac1Invalid"].as_u64().unwrap_or(0)
            + drops(&p.b)["UnknownType"].as_u64().unwrap_or(0)
            > 0
    );
    let delivered = |x: &Exchange| u(&x.send["echoed"]) as f64 / 1000.0;
    report::write(
        "fault_f11_handshake_flood",
        &json!({"random_sent": random["sent"], "initiations_sent": inits["sent"],
                "cookie_replies_sent": cookies, "cookie_replies_received": inits["cookie_replies"],
                "delivered_calm": delivered(&calm), "delivered_under_flood": delivered(&during),
                "goodput_ratio": delivered(&during) / delivered(&calm).max(1e-9),
                "rehandshake_ms": took, "rss_growth_kib": growth, "b": under_load_during}),
    );
}

// ---- the same faults against a stock wireguard-go as B --------------------------------------------

/// B's service on a wireguard-go B: a socket on its tunnel address.
const WG_SINK: &str = "10.99.0.2:7000";

struct WgPair {
    lab: FaultLab,
    a: NodeProcess,
    b: pnet_mesh_e2e::faults::WireguardGo,
    runs: usize,
}

fn wg_pair(o: Options) -> WgPair {
    let lab = FaultLab::new().unwrap_or_else(|e| panic!("{e}"));
    let (ka, kb) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let a_endpoint = format!("{A_ADDR}:{PORT}");
    let b = pnet_mesh_e2e::faults::WireguardGo::start(
        &lab,
        &kb,
        PORT,
        &format!("{B_MESH}/24"),
        &ka.public_key(),
        &format!("{A_MESH}/32"),
        o.b_knows_a.then_some(a_endpoint.as_str()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut a = spec_a(ka, kb.public_key(), format!("{B_ADDR}:{PORT}"));
    a.forwards = vec![format!("{A_FORWARD}={WG_SINK}")];
    a.exposes = vec![];
    a.timer_scale = o.timer_scale;
    let a = NodeProcess::start(&lab, a).unwrap_or_else(|e| panic!("{e}"));
    WgPair { lab, a, b, runs: 0 }
}

impl WgPair {
    fn exchange(&mut self, count: u64, rate: f64, size: usize, wait_ms: u64) -> Exchange {
        exchange_via(
            &self.lab,
            &mut self.runs,
            WG_SINK,
            (count, rate, size, wait_ms),
        )
    }
}

#[test]
fn fault_f01_random_loss_against_wireguard_go() {
    let mut p = wg_pair(Options::default());
    assert_eq!(u(&p.exchange(50, 500.0, 200, 1000).send["echoed"]), 50);
    let started = Instant::now();
    let figures = random_loss(&p.lab, &mut p.runs, WG_SINK);
    let initiations = initiation_rate_holds(&p.a, started);
    report::write(
        "fault_f01_random_loss_against_wireguard_go",
        &json!({"runs": figures, "initiations": initiations}),
    );
}

#[test]
fn fault_f07_blackhole_against_wireguard_go() {
    let mut p = wg_pair(Options {
        timer_scale: Some(0.1),
        ..Options::default()
    });
    p.lab
        .router_iptables(&["-I", "FORWARD", "-j", "DROP"])
        .unwrap();
    assert_eq!(u(&p.exchange(1, 100.0, 100, 200).send["echoed"]), 0);
    let (init, give_up) = blackhole_schedule(&p.a);
    p.lab
        .router_iptables(&["-D", "FORWARD", "-j", "DROP"])
        .unwrap();
    let back = p.exchange(20, 100.0, 100, 1500);
    assert_eq!(u(&back.send["echoed"]), 20, "{}", back.send);
    assert!(
        p.b.latest_handshake() > 0,
        "wireguard-go completed the handshake"
    );
    report::write(
        "fault_f07_blackhole_against_wireguard_go",
        &json!({"initiations": init.len(), "give_up_ms": give_up, "rtt_after_restore_ms": back.send["rtt_ms"]}),
    );
}

#[test]
fn fault_f09_endpoint_change_against_wireguard_go() {
    let mut p = wg_pair(Options::default());
    assert_eq!(u(&p.exchange(20, 100.0, 200, 1000).send["echoed"]), 20);
    assert_eq!(p.b.endpoint(), format!("{A_ADDR}:{PORT}"));
    move_a(&p.lab);
    assert_eq!(u(&p.exchange(200, 200.0, 200, 1500).send["echoed"]), 200);
    assert_eq!(
        p.b.endpoint(),
        format!("{A_ADDR_2}:{PORT}"),
        "wireguard-go followed A"
    );
    nat_a(&p.lab);
    assert_eq!(u(&p.exchange(200, 200.0, 200, 1500).send["echoed"]), 200);
    let now: std::net::SocketAddr = p.b.endpoint().parse().unwrap();
    assert_eq!(now.ip().to_string(), "10.31.2.1");
    assert!((40_000..=40_100).contains(&now.port()), "{now}");
    assert_eq!(
        p.a.event_times("HandshakeInitiated").len(),
        1,
        "one session throughout"
    );
    report::write(
        "fault_f09_endpoint_change_against_wireguard_go",
        &json!({"behind_nat": now.to_string()}),
    );
}

#[test]
fn fault_f10_restart_against_wireguard_go() {
    let mut p = wg_pair(Options {
        b_knows_a: true,
        ..Options::default()
    });
    assert_eq!(u(&p.exchange(20, 100.0, 200, 1000).send["echoed"]), 20);
    p.a.kill();
    std::thread::sleep(Duration::from_secs(1));
    p.a.restart(&p.lab).unwrap();
    let back = p.exchange(100, 100.0, 200, 2000);
    assert_eq!(u(&back.send["echoed"]), 100, "{}", back.send);
    assert_eq!(p.a.event_times("HandshakeInitiated").len(), 1);
    // An hour behind: wireguard-go refuses the initiations by their timestamp.
    let accepted = p.b.latest_handshake();
    p.a.kill();
    p.a.spec.prefix = an_hour_ago();
    p.a.restart(&p.lab).unwrap();
    let stale = p.exchange(5, 10.0, 200, 1500);
    assert_eq!(u(&stale.send["echoed"]), 0, "no session from the past");
    assert!(
        !p.a.event_times("HandshakeInitiated").is_empty(),
        "A did try"
    );
    assert_eq!(
        p.b.latest_handshake(),
        accepted,
        "wireguard-go accepted no new handshake"
    );
    report::write(
        "fault_f10_restart_against_wireguard_go",
        &json!({"rtt_after_restart_ms": back.send["rtt_ms"]}),
    );
}

/// The relays of F14: both in the router's namespace, R1 and R2 on their own ports.
const RELAY_PORTS: [u16; 2] = [7101, 7102];
const RELAY_MESH: [&str; 2] = ["10.99.0.11", "10.99.0.12"];
/// A member no node reaches: R1 and R2 route its frames to each other (the loop).
const NOWHERE_MESH: &str = "10.99.0.9";
/// A's forward to the member that is nowhere.
const A_FORWARD_NOWHERE: &str = "127.0.0.1:7500";

#[test]
fn fault_f14_relay_failure() {
    let lab = FaultLab::new().unwrap_or_else(|e| panic!("{e}"));
    let mesh_psk =
        pnet_mesh::crypto::PresharedKey::from_bytes(*PrivateKey::generate(&mut OsRng).as_bytes());
    let key = || PrivateKey::generate(&mut OsRng);
    let (ka, kb, kx) = (key(), key(), key());
    let kr = [key(), key()];
    let peer = |k: &PrivateKey, ip: &str, endpoint: Option<String>| PeerSpec {
        public_key: k.public_key(),
        endpoint,
        allowed_ips: format!("{ip}/32"),
        keepalive: None,
        via: None,
        relay_for: vec![],
    };
    let spec = |name: &str, side, k: &PrivateKey, port, ip: &str, peers| NodeSpec {
        name: name.into(),
        side,
        key: k.clone(),
        listen_port: port,
        address: format!("{ip}/24"),
        mtu: None,
        peers,
        forwards: vec![],
        exposes: vec![],
        timer_scale: None,
        prefix: vec![],
        mesh_psk: Some(mesh_psk.clone()),
    };
    // No direct path between A and B: the router drops what it would forward between them, so the
    // pair can only talk through a relay (the relays are the router's own processes).
    for (s, d) in [
        ("10.31.1.0/24", "10.31.2.0/24"),
        ("10.31.2.0/24", "10.31.1.0/24"),
    ] {
        lab.router_iptables(&["-I", "FORWARD", "-s", s, "-d", d, "-j", "DROP"])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Each relay knows A, B and the other relay; frames for the member that is nowhere go to the
    // other relay (RelayFor), in both: a loop in the configuration.
    let mut relays: Vec<NodeProcess> = (0..2)
        .map(|i| {
            let other = 1 - i;
            let mut to_other = peer(
                &kr[other],
                RELAY_MESH[other],
                Some(format!("127.0.0.1:{}", RELAY_PORTS[other])),
            );
            to_other.relay_for = vec![kx.public_key()];
            let peers = vec![peer(&ka, A_MESH, None), peer(&kb, B_MESH, None), to_other];
            NodeProcess::start(
                &lab,
                spec(
                    &format!("r{}", i + 1),
                    Side::R,
                    &kr[i],
                    RELAY_PORTS[i],
                    RELAY_MESH[i],
                    peers,
                ),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let relay_peers = |router: &str| -> Vec<PeerSpec> {
        (0..2)
            .map(|i| {
                peer(
                    &kr[i],
                    RELAY_MESH[i],
                    Some(format!("{router}:{}", RELAY_PORTS[i])),
                )
            })
            .collect()
    };
    let mut b_spec = spec("b", Side::B, &kb, PORT, B_MESH, relay_peers("10.31.2.1"));
    b_spec.forwards = vec![format!("{B_FORWARD}={A_MESH}:{A_SERVICE}")];
    b_spec.exposes = vec![format!("{B_SERVICE}={B_SINK}")];
    let b = NodeProcess::start(&lab, b_spec).unwrap_or_else(|e| panic!("{e}"));
    let mut a_peers = relay_peers("10.31.1.1");
    let mut nowhere = peer(&kx, NOWHERE_MESH, None);
    nowhere.via = Some(kr[0].public_key());
    a_peers.push(nowhere);
    let mut a_spec = spec("a", Side::A, &ka, PORT, A_MESH, a_peers);
    a_spec.forwards = vec![
        format!("{A_FORWARD}={B_MESH}:{B_SERVICE}"),
        format!("{A_FORWARD_NOWHERE}={NOWHERE_MESH}:7000"),
    ];
    a_spec.exposes = vec![format!("{A_SERVICE}={A_SINK}")];
    let a = NodeProcess::start(&lab, a_spec).unwrap_or_else(|e| panic!("{e}"));

    // A learns B through the relays and reaches it through one of them.
    let b_key = kb.public_key().to_string();
    let relay_of_b = |a: &NodeProcess| -> Option<String> {
        let s = a.show().ok()?;
        let p = s["peers"]
            .as_array()?
            .iter()
            .find(|p| p["public_key"] == b_key.as_str())?;
        (p["latest_handshake"].as_u64()? > 0)
            .then(|| p["via"].as_str().map(str::to_owned))
            .flatten()
    };
    let learned = wait_until(
        "A reaches B through a relay",
        Duration::from_secs(30),
        || relay_of_b(&a).is_some(),
    );
    let mut runs = 0;
    let warm = exchange_via(&lab, &mut runs, B_SINK, (50, 50.0, 200, 2000));
    assert_eq!(u(&warm.send["echoed"]), 50, "{}", warm.send);
    let first = relay_of_b(&a).expect("a relay");
    let used = (0..2)
        .find(|i| kr[*i].public_key().to_string() == first)
        .unwrap_or_else(|| panic!("B is reached via {first}, not a relay"));
    let spare = 1 - used;

    // The loop: what A sends to the member that is nowhere starts a handshake with it, whose
    // initiations go through R1 as frames; R1 passes each to R2, whose next hop is R1, the relay
    // it came from: dropped and counted. Each frame crosses the loop once.
    let loop_started = now_ms();
    exchange_between(
        &lab,
        &mut runs,
        (Side::A, A_FORWARD_NOWHERE),
        (Side::A, "127.0.0.1:7600"),
        (20, 20.0, 100, 6000),
    );
    let loop_seconds = (now_ms() - loop_started) as f64 / 1000.0;
    let loop_drops = |r: &NodeProcess, reason: &str| -> u64 {
        r.show()
            .ok()
            .and_then(|s| s["relay"]["drops"][reason].as_u64())
            .unwrap_or(0)
    };
    let initiations_to_nowhere = a
        .show()
        .ok()
        .and_then(|s| {
            s["peers"].as_array()?.iter().find_map(|p| {
                (p["public_key"] == kx.public_key().to_string().as_str())
                    .then(|| p["handshakes_initiated"].as_u64())
                    .flatten()
            })
        })
        .unwrap_or(0);
    let (r1_loop, r2_loop) = (
        loop_drops(&relays[0], "Loop"),
        loop_drops(&relays[1], "Loop"),
    );
    let hop_limit = loop_drops(&relays[0], "HopLimit") + loop_drops(&relays[1], "HopLimit");
    assert!(
        initiations_to_nowhere >= 2,
        "A retried the handshake: {initiations_to_nowhere}"
    );
    assert_eq!(
        r2_loop, initiations_to_nowhere,
        "R2 refused each of A's frames for the member, once"
    );
    assert_eq!(r1_loop, 0, "no frame came back to R1");
    assert_eq!(hop_limit, 0, "cut before the hop limit (4) was needed");
    // Each frame: an initiation (148) in a frame (68), IPv4+UDP (28) and a transport (32).
    let loop_bytes_per_s = r2_loop as f64 * (148.0 + 68.0 + 28.0 + 32.0) / loop_seconds;
    assert!(
        loop_bytes_per_s <= 70_000.0,
        "loop traffic {loop_bytes_per_s} B/s"
    );

    // The relay in use dies mid-stream: 100 datagrams/s for 12 s, the relay killed after 4 s.
    let interval_ms = 1000.0;
    let stream = std::thread::scope(|scope| {
        let lab = &lab;
        let sender = scope.spawn(move || {
            let mut runs = 10;
            exchange_via(lab, &mut runs, B_SINK, (1200, 100.0, 200, 3000))
        });
        std::thread::sleep(Duration::from_millis(4000));
        let killed_at = now_ms();
        relays[used].kill();
        (sender.join().expect("the stream ends"), killed_at)
    });
    let (stream, killed_at) = stream;
    let lost_events = a.event_times("RelayLost");
    let chosen = a
        .event_times("RelayChosen")
        .into_iter()
        .find(|t| *t >= killed_at);
    let failover_ms = chosen.map(|t| t - killed_at);
    let b_failover_ms = b
        .event_times("RelayChosen")
        .into_iter()
        .find(|t| *t >= killed_at)
        .map(|t| t - killed_at);
    assert!(
        failover_ms.is_some_and(|ms| (ms as f64) <= 3.0 * interval_ms * 1.2),
        "A moved to the other relay within 3 probe intervals of the kill: {failover_ms:?} ms \
         (RelayLost at {lost_events:?}, killed at {killed_at})"
    );
    assert_eq!(
        relay_of_b(&a).as_deref(),
        Some(kr[spare].public_key().to_string().as_str()),
        "B is now reached through the other relay"
    );
    // Only what was sent while the dead relay was still in use is missing: one window from the
    // kill (less what was already on its way) to the failover, nothing before or after it.
    let started = u(&stream.send["started_unix_ms"]);
    let sent_at = |seq: u64| started + seq * 10;
    let lost: Vec<(u64, u64)> = stream.send["lost_ranges"]
        .as_array()
        .expect("lost ranges")
        .iter()
        .map(|r| (u(&r[0]), u(&r[1])))
        .collect();
    let lost_total: u64 = lost.iter().map(|(f, l)| l - f + 1).sum();
    let window_end = killed_at + (3.0 * interval_ms * 1.2) as u64 + 200;
    for (first, last) in &lost {
        assert!(
            sent_at(*first) + 200 >= killed_at && sent_at(*last) <= window_end,
            "datagrams {first}..={last} (sent {}..{} ms after the kill) were lost outside the \
             failover window",
            sent_at(*first) as i64 - killed_at as i64,
            sent_at(*last) as i64 - killed_at as i64
        );
    }
    assert_eq!(u(&stream.send["duplicates"]), 0, "{}", stream.send);
    assert_eq!(
        u(&stream.send["echoed"]) + lost_total,
        1200,
        "the lost ranges account for every missing datagram: {}",
        stream.send
    );
    // After the failover, everything arrives again.
    let after = exchange_via(&lab, &mut runs, B_SINK, (200, 100.0, 200, 2000));
    assert_eq!(u(&after.send["echoed"]), 200, "{}", after.send);
    let a_status = a.show().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        u(&a_status["relay"]["relay_failovers"]) >= 1,
        "{}",
        a_status["relay"]
    );
    report::write(
        "fault_f14_relay_failure",
        &json!({
            "probe_interval_ms": interval_ms,
            "learned_ms": learned.as_millis() as u64,
            "relay_killed": format!("r{}", used + 1),
            "a_failover_ms": failover_ms,
            "b_failover_ms": b_failover_ms,
            "stream": {"sent": 1200, "echoed": stream.send["echoed"], "lost": lost_total,
                       "lost_ranges": stream.send["lost_ranges"],
                       "lost_ms": lost_total * 10},
            "after": {"sent": 200, "echoed": after.send["echoed"]},
            "loop": {"initiations": initiations_to_nowhere, "r2_loop_drops": r2_loop,
                     "r1_loop_drops": r1_loop, "hop_limit_drops": hop_limit,
                     "seconds": loop_seconds, "bytes_per_s": loop_bytes_per_s},
            "a_relay": a_status["relay"],
            "a_drops": a_status["drops"],
        }),
    );
}
