//! The soak (F15): `scripts/soak.sh` runs it. See [`pnet_mesh_e2e::soak`].
//!
//! ```text
//! soak [--minutes 30] [--rate-mbit 50] [--size 1200] [--interval-seconds 10] [--timer-scale S]
//!      [--output-dir artifacts/soak] [--check]
//! ```
//!
//! Report-only: it exits 0 whatever it measured, unless `--check` is given and the run broke the
//! smoke's bounds (memory or descriptors grew past them, a node exited or panicked). It exits 2 when
//! the run could not take place (not root, a missing binary or tool), naming what is missing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pnet_mesh_e2e::soak::{self, Bounds, SoakConfig};

fn parse(args: &[String]) -> Result<(SoakConfig, bool), String> {
    let mut config = SoakConfig::default();
    let mut check = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--check" {
            check = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{flag} {value}: a positive number expected"))
        };
        match flag.as_str() {
            "--minutes" => config.duration = Duration::from_secs_f64(number()? * 60.0),
            "--rate-mbit" => config.rate_mbit = number()?,
            "--size" => {
                config.size = value
                    .parse()
                    .ok()
                    .filter(|s| (16..=1400).contains(s))
                    .ok_or_else(|| format!("--size {value}: 16 to 1400 bytes"))?;
            }
            "--interval-seconds" => config.interval = Duration::from_secs_f64(number()?),
            "--timer-scale" => {
                let s = number()?;
                if s > 1.0 {
                    return Err(format!("--timer-scale {value}: at most 1"));
                }
                config.timer_scale = Some(s);
            }
            "--output-dir" => config.output_dir = PathBuf::from(value),
            _ => {
                return Err(format!(
                    "unknown option {flag} (see scripts/soak.sh --help)"
                ));
            }
        }
    }
    if config.interval * 2 > config.duration {
        return Err(format!(
            "--interval-seconds {:?} leaves fewer than 2 samples in {:?}",
            config.interval, config.duration
        ));
    }
    Ok((config, check))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, check) = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let bounds = Bounds::SMOKE;
    match soak::run(&config, bounds) {
        Ok(outcome) => {
            let s = &outcome.report["summary"];
            let moved = |v: &serde_json::Value| {
                format!(
                    "{} → max {} (+{:.1} %)",
                    v["after_warmup"],
                    v["max"],
                    v["max_growth_pct"].as_f64().unwrap_or(0.0)
                )
            };
            println!(
                "soak: {} rekeys, longest gap {:.1} ms, {} gaps over 1 s",
                s["rekeys"],
                s["longest_gap_ms"].as_f64().unwrap_or(f64::NAN),
                s["gaps_over_1s"],
            );
            for (what, key) in [
                ("RSS, KiB", "rss_kib"),
                (
                    "RSS outside the buffer pools, KiB",
                    "rss_outside_buffer_pools_kib",
                ),
                ("buffer pools resident, KiB", "buffer_pools_resident_kib"),
                ("descriptors", "fds"),
            ] {
                println!(
                    "soak: {what}: A {}, B {}",
                    moved(&s[key]["a"]),
                    moved(&s[key]["b"])
                );
            }
            if outcome.violations.is_empty() {
                println!(
                    "soak: within the bounds (RSS growth after the warm-up ≤ {} % or {} KiB, \
                     descriptors ≤ +{}, no exit, no panic)",
                    bounds.rss_growth_pct, bounds.rss_growth_kib, bounds.fd_growth
                );
                ExitCode::SUCCESS
            } else {
                for v in &outcome.violations {
                    println!("soak: {v}");
                }
                if check {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}
