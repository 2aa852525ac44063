//! `bench`: the macro benchmarks of PNet Mesh. Release builds only.
//!
//! ```text
//! cargo run --release -p pnet-mesh-bench -- --macro in-memory --payload 1280 --warmup 1s --duration 3s
//! ```
//!
//! Prints one JSON object on stdout and writes it under `artifacts/benchmarks/results/`; progress goes
//! to stderr. Exit codes: 0 done, 1 the run failed, 2 bad usage, a debug build, or a scenario that is
//! not implemented yet.

use std::process::ExitCode;

use pnet_mesh::Backend;

use pnet_mesh_bench::alloc_count::CountingAllocator;
use pnet_mesh_bench::channel_proxy::{self, ChannelProxyOptions};
use pnet_mesh_bench::cli::{
    Command, MacroArgs, Scenario, TopologyAction, TunArgs, TunCommand, USAGE, parse_args,
};
use pnet_mesh_bench::environment::{results_dir, write_report};
use pnet_mesh_bench::in_memory::{self, InMemoryOptions};
use pnet_mesh_bench::relay_loopback::{self, RelayLoopbackOptions};
use pnet_mesh_bench::testnode_smoke::{self, TestnodeSmokeOptions};
use pnet_mesh_bench::udp_loopback::{self, UdpLoopbackOptions};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(args.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let m = match command {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Macro(m) => m,
        Command::Report { dir, output } => return run_report(&dir, output),
        Command::Tun(t) => return run_tun(t, &args),
    };
    if cfg!(debug_assertions) && !m.smoke {
        eprintln!(
            "bench: refusing to run: this build has debug assertions (a debug or `ci` profile build), so \
             its numbers would mislead; run the release build instead:\n    \
             cargo run --release -p pnet-mesh-bench -- {}",
            shell_words(&args)
        );
        return ExitCode::from(2);
    }
    match m.scenario {
        Scenario::InMemory => run_in_memory(&m),
        Scenario::UdpLoopback => run_udp_loopback(&m),
        Scenario::ChannelProxy => run_channel_proxy(&m),
        Scenario::RelayLoopback => run_relay_loopback(&m),
        Scenario::TestnodeSmoke => run_testnode_smoke(&m),
    }
}

fn run_in_memory(m: &MacroArgs) -> ExitCode {
    if let Some(n) = m.shards.filter(|n| *n != 1) {
        eprintln!("bench: --shards {n}: the in-memory scenario runs in one thread (--shards 1)");
        return ExitCode::from(2);
    }
    if let Some(b) = m.backend.as_deref().filter(|b| *b != "auto") {
        eprintln!("bench: --backend {b}: the in-memory scenario has no sockets (--backend auto)");
        return ExitCode::from(2);
    }
    let opts = InMemoryOptions {
        payload: m.payload,
        warmup: m.warmup,
        duration: m.duration,
    };
    finish(
        m,
        in_memory::run(&opts, &mut |line| eprintln!("bench: {line}")),
    )
}

fn run_udp_loopback(m: &MacroArgs) -> ExitCode {
    let opts = UdpLoopbackOptions {
        payload: m.payload,
        warmup: m.warmup,
        duration: m.duration,
        shards: m.shards.map_or(1, |n| n as usize),
        backends: backends(m),
    };
    finish(
        m,
        udp_loopback::run(&opts, &mut |line| eprintln!("bench: {line}")),
    )
}

fn run_channel_proxy(m: &MacroArgs) -> ExitCode {
    let [backend] = backends(m)[..] else {
        eprintln!("bench: --backend both: channel-proxy measures one backend per run");
        return ExitCode::from(2);
    };
    let opts = ChannelProxyOptions {
        message: m.payload,
        warmup: m.warmup,
        duration: m.duration,
        shards: m.shards.map_or(1, |n| n as usize),
        backend,
    };
    finish(
        m,
        channel_proxy::run(&opts, &mut |line| eprintln!("bench: {line}")),
    )
}

fn run_testnode_smoke(m: &MacroArgs) -> ExitCode {
    let opts = TestnodeSmokeOptions {
        payload: if m.payload == Scenario::TestnodeSmoke.default_payload() {
            1024
        } else {
            m.payload
        },
        warmup: m.warmup,
        duration: m.duration,
    };
    finish(
        m,
        testnode_smoke::run(&opts, &mut |line| eprintln!("bench: {line}")),
    )
}

fn run_relay_loopback(m: &MacroArgs) -> ExitCode {
    let [backend] = backends(m)[..] else {
        eprintln!("bench: --backend both: relay-loopback measures one backend per run");
        return ExitCode::from(2);
    };
    let opts = RelayLoopbackOptions {
        payload: m.payload,
        warmup: m.warmup,
        duration: m.duration,
        shards: m.shards.map_or(1, |n| n as usize),
        backend,
    };
    finish(
        m,
        relay_loopback::run(&opts, &mut |line| eprintln!("bench: {line}")),
    )
}

/// The backends `--backend` asks for, in the order to measure them.
fn backends(m: &MacroArgs) -> Vec<Backend> {
    match m.backend.as_deref().unwrap_or("auto") {
        "io-uring" => vec![Backend::IoUring],
        "mmsg" => vec![Backend::Mmsg],
        "both" => vec![Backend::IoUring, Backend::Mmsg],
        _ => vec![Backend::Auto],
    }
}

/// Emits a scenario's report, or says why it failed: exit 2 for a bad `--payload`, 1 otherwise.
fn finish(m: &MacroArgs, result: Result<impl serde::Serialize, String>) -> ExitCode {
    match result {
        Ok(report) => emit(m, &report),
        Err(e) if e.starts_with("--payload") => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bench: {} scenario failed: {e}", m.scenario.name());
            ExitCode::FAILURE
        }
    }
}

/// Prints the report as JSON and writes it under the results directory (or `--output`).
fn emit(m: &MacroArgs, report: &impl serde::Serialize) -> ExitCode {
    let json = match serde_json::to_string_pretty(report) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("bench: cannot encode the report: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{json}");
    let path = m.output.clone().unwrap_or_else(|| {
        results_dir().join(format!("macro-{}-{}.json", m.scenario.name(), m.payload))
    });
    match write_report(&path, &(json + "\n")) {
        Ok(()) => {
            eprintln!("bench: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The TUN workflow: plan, preflight, create, teardown, one benchmark, or the comparison.
fn run_tun(t: TunArgs, args: &[String]) -> ExitCode {
    use pnet_mesh_bench::tun::{benchmark, compare, page, plan, preflight, topology};
    let mut progress = |line: &str| eprintln!("bench: {line}");
    let (value, default_name, ok) = match t.command {
        TunCommand::Topology {
            action,
            implementation,
        } => match action {
            TopologyAction::Plan => (to_value(&plan::plan()), None, true),
            TopologyAction::Preflight => {
                let p = preflight::run();
                let ok = p.ready;
                (to_value(&p), None, ok)
            }
            TopologyAction::Create => match topology::create(implementation, &mut progress) {
                Ok(topo) => (
                    serde_json::json!({
                        "created": plan::LAB,
                        "implementation": implementation,
                        "containers": [topo.a.name, topo.b.name],
                        "offloads": topo.offloads,
                        "teardown": "bench --tun-topology teardown",
                    }),
                    None,
                    true,
                ),
                Err(e) => {
                    eprintln!("bench: --tun-topology create: {e}");
                    return ExitCode::FAILURE;
                }
            },
            TopologyAction::Teardown => match topology::teardown() {
                Ok(n) => (
                    serde_json::json!({"removed": n, "lab": plan::LAB}),
                    None,
                    true,
                ),
                Err(e) => {
                    eprintln!("bench: --tun-topology teardown: {e}");
                    return ExitCode::FAILURE;
                }
            },
        },
        TunCommand::Benchmark {
            implementation,
            ping_count,
            iperf_duration,
        } => {
            if cfg!(debug_assertions) && !t.smoke {
                eprintln!(
                    "bench: refusing to run: this build has debug assertions; use the release build                      (or --smoke to prove the workflow runs)"
                );
                return ExitCode::from(2);
            }
            let opts = benchmark::BenchmarkOptions {
                implementation,
                ping_count,
                iperf_duration,
                command_line: std::iter::once("bench".to_owned())
                    .chain(args.iter().cloned())
                    .collect(),
            };
            let report = benchmark::run(&opts, &mut progress);
            for s in report.steps.iter().filter(|s| !s.ok) {
                eprintln!(
                    "bench: step {} failed: {}",
                    s.name,
                    s.error.as_deref().unwrap_or("?")
                );
            }
            if let Some(e) = &report.failure {
                eprintln!("bench: {e}");
            }
            let ok = report.ok;
            (
                to_value(&report),
                Some(format!("tun-benchmark-{}.json", implementation.name())),
                ok,
            )
        }
        TunCommand::Compare {
            pnet,
            wireguard,
            baseline,
            page: page_path,
        } => {
            let read = |p: &std::path::Path| -> Result<serde_json::Value, String> {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))
            };
            let result = (|| {
                let base = baseline.as_deref().map(read).transpose()?;
                let base_name = baseline.as_ref().map(|b| b.display().to_string());
                compare::compare(
                    &read(&pnet)?,
                    &read(&wireguard)?,
                    (
                        &pnet.display().to_string(),
                        &wireguard.display().to_string(),
                    ),
                    base_name.as_deref().zip(base.as_ref()),
                )
            })();
            let comparison = match result {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("bench: --tun-compare: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(path) = page_path {
                if let Err(e) = write_report(&path, &page::render(&comparison)) {
                    eprintln!("bench: {e}");
                    return ExitCode::FAILURE;
                }
                eprintln!("bench: wrote {}", path.display());
            }
            (comparison, Some("tun-comparison.json".to_owned()), true)
        }
    };
    let json = serde_json::to_string_pretty(&value).unwrap_or_default();
    println!("{json}");
    let path = t
        .output
        .or_else(|| default_name.map(|n| results_dir().join(n)));
    if let Some(path) = path {
        if let Err(e) = write_report(&path, &(json + "\n")) {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("bench: wrote {}", path.display());
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn to_value(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

fn run_report(dir: &std::path::Path, output: Option<std::path::PathBuf>) -> ExitCode {
    let html = match pnet_mesh_bench::report::render_dir(dir) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = output.unwrap_or_else(|| dir.join("report.html"));
    match write_report(&path, &html) {
        Ok(()) => {
            eprintln!("bench: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The arguments as a shell would need them typed.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_command_quotes_what_needs_it() {
        let args = [
            "--macro",
            "in-memory",
            "--output",
            "my file.json",
            "--warmup",
            "00:00:01",
        ];
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            shell_words(&args),
            "--macro in-memory --output 'my file.json' --warmup 00:00:01"
        );
    }
}
