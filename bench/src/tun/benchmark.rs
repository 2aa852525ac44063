//! One `--tun-benchmark` run: create the topology for one implementation, ping both families and
//! run iperf3 TCP and UDP in both directions through the tunnel while the two tunnel processes are
//! sampled, record every step's command, outcome and parsed figures, and tear the topology down
//! whatever happened.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::parse;
use super::plan::{self, Implementation, PING_INTERVAL_S, UDP_BITRATE, UDP_LENGTH};
use super::sample::{Sampler, Usage};
use super::topology::{self, Topology};
use crate::environment::Environment;

/// What a run is asked for.
#[derive(Debug, Clone)]
pub struct BenchmarkOptions {
    /// Which tunnel.
    pub implementation: Implementation,
    /// Echo requests per ping step.
    pub ping_count: u32,
    /// Length of each iperf3 step (whole seconds, at least one).
    pub iperf_duration: Duration,
    /// The command line that asked, for the report.
    pub command_line: Vec<String>,
}

/// The two tunnel processes' usage during a step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    /// Side a (client).
    pub a: Usage,
    /// Side b (server).
    pub b: Usage,
}

/// One step of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Its name (`ping_ipv4`, `tcp_a_to_b`, …).
    pub name: &'static str,
    /// The container it ran in.
    pub container: String,
    /// The command, as run.
    pub command: Vec<String>,
    /// Whether it succeeded (the tool's exit status and a parsable result).
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Wall time of the step, seconds.
    pub elapsed_s: f64,
    /// The parsed figures.
    pub result: Option<Value>,
    /// What the tool printed (iperf3: its `end` summary).
    pub raw: Value,
    /// The tunnel processes' usage meanwhile.
    pub resources: Resources,
}

/// The settings a run used, as the comparison needs them.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Tunnel MTU.
    pub mtu: u16,
    /// Echo requests per ping step.
    pub ping_count: u32,
    /// Seconds between echo requests.
    pub ping_interval_s: f64,
    /// Seconds per iperf3 step.
    pub iperf_duration_s: u64,
    /// iperf3 UDP bitrate.
    pub udp_bitrate: &'static str,
    /// iperf3 UDP datagram payload length.
    pub udp_length: usize,
    /// What carries the traffic.
    pub payload_mode: &'static str,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchmarkReport {
    /// Schema name.
    pub schema: &'static str,
    /// Which tunnel.
    pub implementation: Implementation,
    /// The tunnel's version (`--version`).
    pub version: Option<String>,
    /// iperf3's version.
    pub iperf3_version: Option<String>,
    /// The machine and build.
    pub environment: Environment,
    /// The command line.
    pub command_line: Vec<String>,
    /// Settings.
    pub settings: Settings,
    /// The topology.
    pub topology: plan::Plan,
    /// Whether the bridges got TUN offloads (pnet-mesh-tun only).
    pub offloads: Value,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The tunnel processes over the whole run.
    pub resources: Resources,
    /// Why the run could not start (the topology failed), if so.
    pub failure: Option<String>,
    /// Whether the topology was removed afterwards.
    pub torn_down: bool,
    /// Every step succeeded.
    pub ok: bool,
}

fn version_of(argv: &[&str]) -> Option<String> {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

/// Removes the topology when dropped, so a panic or an early return still cleans up.
struct Teardown<'a>(&'a Topology);

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Runs the whole benchmark; failures are in the report, never an early exit.
pub fn run(opts: &BenchmarkOptions, progress: &mut dyn FnMut(&str)) -> BenchmarkReport {
    let implementation = opts.implementation;
    let iperf_s = opts.iperf_duration.as_secs_f64().ceil().max(1.0) as u64;
    let version = match implementation {
        Implementation::PnetMeshTun => topology::pnet_binary()
            .ok()
            .and_then(|b| version_of(&[&b.display().to_string(), "--version"])),
        Implementation::WireguardGo => version_of(&["wireguard-go", "--version"]),
    };
    let mut report = BenchmarkReport {
        schema: "pnet-mesh.tun-benchmark.v1",
        implementation,
        version,
        iperf3_version: version_of(&["iperf3", "--version"]),
        environment: Environment::detect(),
        command_line: opts.command_line.clone(),
        settings: Settings {
            mtu: plan::MTU,
            ping_count: opts.ping_count,
            ping_interval_s: PING_INTERVAL_S,
            iperf_duration_s: iperf_s,
            udp_bitrate: UDP_BITRATE,
            udp_length: UDP_LENGTH,
            payload_mode: "kernel TCP and UDP from iperf3 and ICMP echo from ping, through the TUN",
        },
        topology: plan::plan(),
        offloads: Value::Null,
        steps: Vec::new(),
        resources: Resources::default(),
        failure: None,
        torn_down: false,
        ok: false,
    };
    let topo = match topology::create(implementation, progress) {
        Ok(t) => t,
        Err(e) => {
            report.failure = Some(e);
            report.torn_down = topology::teardown().is_ok();
            return report;
        }
    };
    report.offloads = match &topo.offloads {
        Some(o) => json!(o),
        None => json!("not applicable"),
    };
    {
        let _teardown = Teardown(&topo);
        let pids = [
            topo.lab.host_pid(&topo.a).unwrap_or(0),
            topo.lab.host_pid(&topo.b).unwrap_or(0),
        ];
        let whole = Sampler::start(&pids);
        let p = plan::plan();
        let (b4, b6) = (p.nodes[1].tunnel_v4_addr(), p.nodes[1].tunnel_v6_addr());
        let runner = StepRunner { topo: &topo, pids };
        report
            .steps
            .push(runner.wait_for_tunnel("tunnel_up_ipv4", &["ping", "-c", "1", "-W", "1", b4]));
        report.steps.push(
            runner.wait_for_tunnel("tunnel_up_ipv6", &["ping", "-6", "-c", "1", "-W", "1", b6]),
        );
        let count = opts.ping_count.to_string();
        let interval = PING_INTERVAL_S.to_string();
        for (name, family, to) in [("ping_ipv4", "-4", b4), ("ping_ipv6", "-6", b6)] {
            progress(name);
            report.steps.push(runner.step(
                name,
                false,
                &["ping", family, "-c", &count, "-i", &interval, "-W", "2", to],
                Parser::Ping,
            ));
        }
        report.steps.push(runner.step(
            "iperf3_server",
            true,
            &["iperf3", "-s", "-D"],
            Parser::None,
        ));
        let secs = iperf_s.to_string();
        let tcp = [
            "iperf3",
            "-c",
            b4,
            "-t",
            &secs,
            "-J",
            "--connect-timeout",
            "3000",
        ];
        let udp_extra = ["-u", "-b", UDP_BITRATE, "-l", &UDP_LENGTH.to_string()].map(str::to_owned);
        let with = |extra: &[String]| {
            tcp.iter()
                .map(|s| (*s).to_owned())
                .chain(extra.iter().cloned())
                .collect::<Vec<String>>()
        };
        let reverse = ["-R".to_owned()];
        let udp_reverse: Vec<String> = udp_extra
            .iter()
            .cloned()
            .chain(reverse.iter().cloned())
            .collect();
        for (name, argv, udp) in [
            ("tcp_a_to_b", with(&[]), false),
            ("tcp_b_to_a", with(&reverse), false),
            ("udp_a_to_b", with(&udp_extra), true),
            ("udp_b_to_a", with(&udp_reverse), true),
        ] {
            progress(name);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            report
                .steps
                .push(runner.step(name, false, &argv, Parser::Iperf { udp }));
        }
        let usage = whole.stop();
        report.resources = Resources {
            a: usage.first().cloned().unwrap_or_default(),
            b: usage.get(1).cloned().unwrap_or_default(),
        };
    }
    report.torn_down = topo.lab.resources_left() == 0;
    report.ok = report.failure.is_none() && report.steps.iter().all(|s| s.ok);
    report
}

#[derive(Debug, Clone, Copy)]
enum Parser {
    None,
    Ping,
    Iperf { udp: bool },
}

struct StepRunner<'a> {
    topo: &'a Topology,
    pids: [u32; 2],
}

impl StepRunner<'_> {
    /// Runs `argv` in container a (b when `on_b`) with both tunnels sampled.
    fn step(&self, name: &'static str, on_b: bool, argv: &[&str], parser: Parser) -> Step {
        let container = if on_b { &self.topo.b } else { &self.topo.a };
        let started = Instant::now();
        let sampler = Sampler::start(&self.pids);
        let outcome = self.topo.lab.exec(container, argv.iter().copied());
        let usage = sampler.stop();
        let elapsed_s = started.elapsed().as_secs_f64();
        let resources = Resources {
            a: usage.first().cloned().unwrap_or_default(),
            b: usage.get(1).cloned().unwrap_or_default(),
        };
        let command = argv.iter().map(|s| (*s).to_owned()).collect();
        let (code, out) = match outcome {
            Ok(r) => r,
            Err(e) => {
                return Step {
                    name,
                    container: container.name.clone(),
                    command,
                    ok: false,
                    error: Some(e.to_string()),
                    elapsed_s,
                    result: None,
                    raw: Value::Null,
                    resources,
                };
            }
        };
        let (parsed, raw) = match parser {
            Parser::None => (Ok(Value::Null), json!(out)),
            Parser::Ping => (
                parse::ping(&out).map(|p| serde_json::to_value(p).unwrap_or_default()),
                json!(out),
            ),
            Parser::Iperf { udp } => {
                let json = out.find('{').and_then(|at| out.get(at..)).unwrap_or(&out);
                let raw = serde_json::from_str::<Value>(json)
                    .ok()
                    .and_then(|v| v.get("end").cloned())
                    .unwrap_or_else(|| json!(out));
                (
                    parse::iperf(&out, udp).map(|p| serde_json::to_value(p).unwrap_or_default()),
                    raw,
                )
            }
        };
        let error = match (&parsed, code) {
            (Err(e), _) => Some(e.clone()),
            (Ok(_), 0) => None,
            (Ok(_), c) => Some(format!("exit status {c}: {}", out.trim())),
        };
        Step {
            name,
            container: container.name.clone(),
            command,
            ok: error.is_none(),
            error,
            elapsed_s,
            result: parsed.ok().filter(|v| !v.is_null()),
            raw,
            resources,
        }
    }

    /// Pings once a second for up to 20 s until a reply (handshake done, IPv6 addresses usable).
    fn wait_for_tunnel(&self, name: &'static str, argv: &[&str]) -> Step {
        let started = Instant::now();
        loop {
            let mut step = self.step(name, false, argv, Parser::Ping);
            if step.ok || started.elapsed() > Duration::from_secs(20) {
                step.elapsed_s = started.elapsed().as_secs_f64();
                return step;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
