//! The `bench` command line, parsed by hand (no argument-parsing dependency in the CI build).

use std::path::PathBuf;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::tun::Implementation;

/// The usage text.
pub const USAGE: &str = "\
usage: bench --macro SCENARIO [--payload N] [--warmup DUR] [--duration DUR]
             [--shards N] [--backend auto|io-uring|mmsg|both] [--output FILE] [--smoke]
       bench report DIR [--output FILE]
       bench --tun-topology plan|preflight|create|teardown [--implementation IMPL] [--output FILE]
       bench --tun-benchmark IMPL [--ping-count N] [--iperf-duration DUR] [--output FILE] [--smoke]
       bench --tun-compare --pnet A.json --wireguard B.json [--baseline C.json] [--output FILE]
             [--page FILE]

  report DIR         turn the JSON reports in DIR into one HTML page with SVG charts (throughput and
                     latency by payload size, ours beside the ceiling and the peer); default output
                     DIR/report.html

  --macro SCENARIO   in-memory (two endpoints, no sockets); udp-loopback (two nodes over localhost
                     UDP beside the ceiling, bare UDP and boringtun); channel-proxy (channel
                     goodput direct, then through the impairment proxy at 0 % and 5 % loss);
                     relay-loopback (A -> relay -> B on loopback beside a direct pair,
                     ratio_vs_direct); testnode-smoke (two node containers on Docker, one
                     datagram in flight through A -> B -> host echo and back: manual and
                     non-deterministic)
  --payload N        inner IP packet length in bytes, 28 to 1420 (default 1420); for
                     channel-proxy the message size, 1 to 16777216 (default 1048576)
  --warmup DUR       untimed run first (default 1s)
  --duration DUR     measured run (default 5s)
  --shards N         data shards per node (udp-loopback, relay-loopback; default 1; in-memory: 1)
  --backend B        socket backend; `both` runs io-uring beside mmsg (in-memory has none: auto)
  --output FILE      write the JSON here instead of
                     artifacts/benchmarks/results/macro-<scenario>-<payload>.json
  --smoke            run even from a build with debug assertions (CI's smoke test: it proves the
                     scenario runs; the report's `build` says its numbers are not comparable)

TUN workflow (report-only; Docker, /dev/net/tun; IMPL is pnet-mesh-tun or wireguard-go):
  --tun-topology     plan: the fixed dual-stack topology as JSON; preflight: pass/skip/fail for each
                     need; create: the topology for --implementation (default pnet-mesh-tun), left
                     running; teardown: remove every resource with the lab's label
  --tun-benchmark    create the topology, ping IPv4 and IPv6 (--ping-count, default 20), iperf3 TCP
                     and UDP (-u -b 500M -l 1372) both ways (--iperf-duration, default 10s), sample
                     both tunnel processes, tear down; exit 1 if any step failed
  --tun-compare      one comparison of the two reports (normalized.pnet/.wireguard, ratios,
                     traceability, regression against --baseline); --page also renders it as HTML

DUR is 500ms, 2s, 3m, 1h or hh:mm:ss. The JSON report goes to stdout and to the file; progress goes
to stderr. Build with --release: `cargo run --release -p pnet-mesh-bench -- --macro in-memory ...`.
";

/// A macro scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Two endpoints in one thread, no sockets.
    InMemory,
    /// Two nodes over localhost UDP (needs the node).
    UdpLoopback,
    /// Channel goodput between two nodes, direct and through the impairment proxy.
    ChannelProxy,
    /// Three nodes, A → relay → B, beside a direct pair.
    RelayLoopback,
    /// Node containers (needs the node and the container harness).
    TestnodeSmoke,
}

impl Scenario {
    /// The name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::InMemory => "in-memory",
            Scenario::UdpLoopback => "udp-loopback",
            Scenario::ChannelProxy => "channel-proxy",
            Scenario::RelayLoopback => "relay-loopback",
            Scenario::TestnodeSmoke => "testnode-smoke",
        }
    }

    /// `--payload` when none is given: a full inner packet, or a 1 MiB channel message.
    pub fn default_payload(self) -> usize {
        match self {
            Scenario::ChannelProxy => 1 << 20,
            _ => 1420,
        }
    }
}

/// A parsed `--macro` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroArgs {
    /// Which scenario.
    pub scenario: Scenario,
    /// Inner IP packet length.
    pub payload: usize,
    /// Warm-up.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// `--shards`, if given.
    pub shards: Option<u32>,
    /// `--backend`, if given.
    pub backend: Option<String>,
    /// `--output`, if given.
    pub output: Option<PathBuf>,
    /// `--smoke`: run even from a build with debug assertions (CI's smoke test; numbers not comparable).
    pub smoke: bool,
}

/// What `--tun-topology` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyAction {
    /// Print the plan.
    Plan,
    /// Check the machine.
    Preflight,
    /// Create the topology and leave it running.
    Create,
    /// Remove it.
    Teardown,
}

/// A parsed `--tun-*` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunCommand {
    /// `--tun-topology ACTION`.
    Topology {
        /// What to do.
        action: TopologyAction,
        /// For `create`: which tunnel.
        implementation: Implementation,
    },
    /// `--tun-benchmark IMPL`.
    Benchmark {
        /// Which tunnel.
        implementation: Implementation,
        /// Echo requests per ping step.
        ping_count: u32,
        /// Seconds per iperf3 step.
        iperf_duration: Duration,
    },
    /// `--tun-compare`.
    Compare {
        /// The pnet-mesh-tun report.
        pnet: PathBuf,
        /// The wireguard-go report.
        wireguard: PathBuf,
        /// An earlier comparison to report changes against.
        baseline: Option<PathBuf>,
        /// The HTML page to write.
        page: Option<PathBuf>,
    },
}

/// A TUN workflow command with its output options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunArgs {
    /// What to do.
    pub command: TunCommand,
    /// `--output`, if given.
    pub output: Option<PathBuf>,
    /// `--smoke`: run from a build with debug assertions.
    pub smoke: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `--tun-topology`, `--tun-benchmark`, `--tun-compare`.
    Tun(TunArgs),
    /// `--help`.
    Help,
    /// `--macro …`.
    Macro(MacroArgs),
    /// `report DIR [--output FILE]`: saved JSON reports to an HTML page.
    Report {
        /// Where the JSON reports are.
        dir: PathBuf,
        /// The page; default `DIR/report.html`.
        output: Option<PathBuf>,
    },
}

/// Parses the arguments after the program name.
///
/// # Errors
/// A message naming the offending argument.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("report") {
        args.next();
        let dir = args
            .next()
            .ok_or("report needs a directory: bench report DIR")?;
        let output = match (args.next().as_deref(), args.next()) {
            (None, _) => None,
            (Some("--output"), Some(file)) => Some(PathBuf::from(file)),
            (Some(other), _) => return Err(format!("report: unknown argument `{other}`")),
        };
        return Ok(Command::Report {
            dir: PathBuf::from(dir),
            output,
        });
    }
    let args: Vec<String> = args.collect();
    if args.iter().any(|a| {
        ["--tun-topology", "--tun-benchmark", "--tun-compare"]
            .contains(&a.split('=').next().unwrap_or(""))
    }) {
        return parse_tun(args).map(Command::Tun);
    }
    let mut args = args.into_iter().peekable();
    let mut scenario = None;
    let mut payload = None;
    let mut warmup = Duration::from_secs(1);
    let mut duration = Duration::from_secs(5);
    let mut shards = None;
    let mut backend = None;
    let mut output = None;
    let mut smoke = false;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        if flag == "--smoke" {
            smoke = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--macro" => {
                let v = value()?;
                scenario = Some(match v.as_str() {
                    "in-memory" => Scenario::InMemory,
                    "udp-loopback" => Scenario::UdpLoopback,
                    "channel-proxy" => Scenario::ChannelProxy,
                    "relay-loopback" => Scenario::RelayLoopback,
                    "testnode-smoke" => Scenario::TestnodeSmoke,
                    _ => {
                        return Err(format!(
                            "--macro {v}: unknown scenario (in-memory, udp-loopback, channel-proxy, relay-loopback, testnode-smoke)"
                        ));
                    }
                });
            }
            "--payload" => {
                let v = value()?;
                payload = Some(
                    v.parse()
                        .map_err(|_| format!("--payload {v}: not a whole number of bytes"))?,
                );
            }
            "--warmup" => {
                warmup = parse_duration(&value()?).map_err(|e| format!("--warmup: {e}"))?
            }
            "--duration" => {
                duration = parse_duration(&value()?).map_err(|e| format!("--duration: {e}"))?;
                if duration.is_zero() {
                    return Err("--duration must be longer than zero".into());
                }
            }
            "--shards" => {
                let v = value()?;
                shards = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--shards {v}: not a positive whole number"))?,
                );
            }
            "--backend" => {
                let v = value()?;
                if !["auto", "io-uring", "mmsg", "both"].contains(&v.as_str()) {
                    return Err(format!(
                        "--backend {v}: unknown backend (auto, io-uring, mmsg, both)"
                    ));
                }
                backend = Some(v);
            }
            "--output" => output = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    let scenario = scenario.ok_or("--macro SCENARIO is required")?;
    Ok(Command::Macro(MacroArgs {
        scenario,
        payload: payload.unwrap_or(scenario.default_payload()),
        warmup,
        duration,
        shards,
        backend,
        output,
        smoke,
    }))
}

fn parse_tun(args: Vec<String>) -> Result<TunArgs, String> {
    let mut args = args.into_iter();
    let mut mode: Option<(String, String)> = None;
    let mut implementation = Implementation::PnetMeshTun;
    let mut ping_count = 20;
    let mut iperf_duration = Duration::from_secs(10);
    let (mut pnet, mut wireguard, mut baseline, mut page, mut output) =
        (None, None, None, None, None);
    let mut smoke = false;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "--smoke" {
            smoke = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--tun-topology" | "--tun-benchmark" => {
                if mode.is_some() {
                    return Err(format!("{flag}: one --tun-* mode at a time"));
                }
                mode = Some((flag.clone(), value()?));
            }
            "--tun-compare" => {
                if mode.is_some() {
                    return Err(format!("{flag}: one --tun-* mode at a time"));
                }
                mode = Some((flag.clone(), String::new()));
            }
            "--implementation" => {
                implementation = Implementation::parse(&value()?)
                    .map_err(|e| format!("--implementation {e}"))?;
            }
            "--ping-count" => {
                let v = value()?;
                ping_count = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--ping-count {v}: not a positive whole number"))?;
            }
            "--iperf-duration" => {
                iperf_duration =
                    parse_duration(&value()?).map_err(|e| format!("--iperf-duration: {e}"))?;
                if iperf_duration < Duration::from_secs(1) {
                    return Err(
                        "--iperf-duration must be at least 1s (iperf3 counts seconds)".into(),
                    );
                }
            }
            "--pnet" => pnet = Some(PathBuf::from(value()?)),
            "--wireguard" => wireguard = Some(PathBuf::from(value()?)),
            "--baseline" => baseline = Some(PathBuf::from(value()?)),
            "--page" => page = Some(PathBuf::from(value()?)),
            "--output" => output = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    let (flag, v) = mode.ok_or("a --tun-* mode is required")?;
    let command = match flag.as_str() {
        "--tun-topology" => TunCommand::Topology {
            action: match v.as_str() {
                "plan" => TopologyAction::Plan,
                "preflight" => TopologyAction::Preflight,
                "create" => TopologyAction::Create,
                "teardown" => TopologyAction::Teardown,
                _ => {
                    return Err(format!(
                        "--tun-topology {v}: unknown action (plan, preflight, create, teardown)"
                    ));
                }
            },
            implementation,
        },
        "--tun-benchmark" => TunCommand::Benchmark {
            implementation: Implementation::parse(&v)
                .map_err(|e| format!("--tun-benchmark {e}"))?,
            ping_count,
            iperf_duration,
        },
        _ => TunCommand::Compare {
            pnet: pnet.ok_or("--tun-compare needs --pnet A.json")?,
            wireguard: wireguard.ok_or("--tun-compare needs --wireguard B.json")?,
            baseline,
            page,
        },
    };
    Ok(TunArgs {
        command,
        output,
        smoke,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tun_workflow_commands_parse_with_their_options() {
        assert_eq!(
            parse(&["--tun-topology", "plan"]),
            Ok(Command::Tun(TunArgs {
                command: TunCommand::Topology {
                    action: TopologyAction::Plan,
                    implementation: Implementation::PnetMeshTun
                },
                output: None,
                smoke: false
            }))
        );
        assert_eq!(
            parse(&[
                "--tun-benchmark",
                "wireguard-go",
                "--ping-count",
                "3",
                "--iperf-duration",
                "2s",
                "--output",
                "w.json",
                "--smoke"
            ]),
            Ok(Command::Tun(TunArgs {
                command: TunCommand::Benchmark {
                    implementation: Implementation::WireguardGo,
                    ping_count: 3,
                    iperf_duration: Duration::from_secs(2)
                },
                output: Some("w.json".into()),
                smoke: true
            }))
        );
        let Ok(Command::Tun(TunArgs {
            command:
                TunCommand::Compare {
                    pnet,
                    baseline,
                    page,
                    ..
                },
            ..
        })) = parse(&[
            "--tun-compare",
            "--pnet",
            "a.json",
            "--wireguard=b.json",
            "--page",
            "c.html",
        ])
        else {
            panic!()
        };
        assert_eq!(
            (pnet, baseline, page),
            ("a.json".into(), None, Some("c.html".into()))
        );
        for (args, needle) in [
            (&["--tun-topology", "build"][..], "--tun-topology build"),
            (&["--tun-benchmark", "boringtun"][..], "boringtun"),
            (&["--tun-compare", "--pnet", "a"][..], "--wireguard"),
            (
                &["--tun-benchmark", "wireguard-go", "--ping-count", "0"][..],
                "--ping-count 0",
            ),
            (
                &[
                    "--tun-benchmark",
                    "wireguard-go",
                    "--iperf-duration",
                    "500ms",
                ][..],
                "at least 1s",
            ),
            (
                &["--tun-topology", "plan", "--tun-compare"][..],
                "one --tun-* mode",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn macro_with_every_option() {
        let got = parse(&[
            "--macro",
            "in-memory",
            "--payload",
            "1280",
            "--warmup",
            "500ms",
            "--duration=00:00:03",
            "--shards",
            "1",
            "--backend",
            "auto",
            "--output",
            "x.json",
        ]);
        assert_eq!(
            got,
            Ok(Command::Macro(MacroArgs {
                scenario: Scenario::InMemory,
                payload: 1280,
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs(3),
                shards: Some(1),
                backend: Some("auto".into()),
                output: Some("x.json".into()),
                smoke: false,
            }))
        );
    }

    #[test]
    fn defaults_and_help() {
        let Ok(Command::Macro(m)) = parse(&["--macro", "udp-loopback"]) else {
            panic!()
        };
        assert_eq!((m.scenario, m.payload), (Scenario::UdpLoopback, 1420));
        let Ok(Command::Macro(m)) = parse(&["--macro", "channel-proxy"]) else {
            panic!()
        };
        assert_eq!((m.scenario, m.payload), (Scenario::ChannelProxy, 1 << 20));
        let Ok(Command::Macro(m)) = parse(&["--payload", "4096", "--macro", "channel-proxy"])
        else {
            panic!()
        };
        assert_eq!(m.payload, 4096, "--payload before --macro still wins");
        assert_eq!(
            (m.warmup, m.duration),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(
            parse(&["--macro", "in-memory", "--help"]),
            Ok(Command::Help)
        );
    }

    #[test]
    fn errors_name_the_argument() {
        for (args, needle) in [
            (&["--payload", "64"][..], "--macro"),
            (&["--macro"][..], "--macro needs a value"),
            (&["--macro", "tcp"][..], "--macro tcp"),
            (
                &["--macro", "in-memory", "--payload", "big"][..],
                "--payload big",
            ),
            (&["--macro", "in-memory", "--warmup", "2"][..], "--warmup"),
            (
                &["--macro", "in-memory", "--duration", "0s"][..],
                "--duration",
            ),
            (&["--macro", "in-memory", "--shards", "0"][..], "--shards 0"),
            (
                &["--macro", "in-memory", "--backend", "epoll"][..],
                "--backend epoll",
            ),
            (&["--macro", "in-memory", "--fast"][..], "--fast"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn report_takes_a_directory_and_an_optional_output() {
        assert_eq!(
            parse(&["report", "results"]),
            Ok(Command::Report {
                dir: "results".into(),
                output: None
            })
        );
        assert_eq!(
            parse(&["report", "results", "--output", "page.html"]),
            Ok(Command::Report {
                dir: "results".into(),
                output: Some("page.html".into())
            })
        );
        assert!(
            parse(&["report"])
                .unwrap_err()
                .contains("needs a directory")
        );
        assert!(
            parse(&["report", "d", "--bogus"])
                .unwrap_err()
                .contains("--bogus")
        );
    }
}
