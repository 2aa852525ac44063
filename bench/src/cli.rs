//! The `bench` command line, parsed by hand (no argument-parsing dependency in the CI build).

use std::path::PathBuf;
use std::time::Duration;

use crate::duration::parse_duration;

/// The usage text.
pub const USAGE: &str = "\
usage: bench --macro SCENARIO [--payload N] [--warmup DUR] [--duration DUR]
             [--shards N] [--backend auto|io-uring|mmsg|both] [--output FILE] [--smoke]
       bench report DIR [--output FILE]

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

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
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

#[cfg(test)]
mod tests {
    use super::*;

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
