//! CPU time, resident memory and threads of running processes, sampled from `/proc` in a thread of
//! its own while a step runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

/// How often a process is sampled.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, MiB.
    pub rss_mb: f64,
    /// Threads.
    pub threads: u32,
}

/// What one process used during a step.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Usage {
    /// Host process id.
    pub pid: u32,
    /// CPU seconds consumed between the first and the last sample.
    pub cpu_seconds: f64,
    /// Largest resident set size seen, MiB.
    pub rss_mb_max: f64,
    /// Mean resident set size, MiB.
    pub rss_mb_mean: f64,
    /// Most threads seen.
    pub threads_max: u32,
    /// Samples taken (0: the process could not be read).
    pub samples: usize,
}

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            // USER_HZ is 100 on every Linux architecture we run on.
            .unwrap_or(100.0)
    })
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` when the process is gone or unreadable.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_proc(
        &stat,
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
    )?)
    .map(|mut r| {
        r.cpu_seconds /= ticks_per_second();
        r
    })
}

/// Parses `stat` (utime and stime, in ticks, into `cpu_seconds`) and `status` (VmRSS, Threads).
pub fn parse_proc(stat: &str, status: &str) -> Option<Reading> {
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the whole line, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let value = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(Reading {
        cpu_seconds: utime + stime,
        rss_mb: value("VmRSS:")? / 1024.0,
        threads: value("Threads:")? as u32,
    })
}

/// Summarises a run of readings of one process.
pub fn summarise(pid: u32, readings: &[Reading]) -> Usage {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return Usage {
            pid,
            ..Usage::default()
        };
    };
    Usage {
        pid,
        cpu_seconds: (last.cpu_seconds - first.cpu_seconds).max(0.0),
        rss_mb_max: readings.iter().map(|r| r.rss_mb).fold(0.0, f64::max),
        rss_mb_mean: readings.iter().map(|r| r.rss_mb).sum::<f64>() / readings.len() as f64,
        threads_max: readings.iter().map(|r| r.threads).max().unwrap_or(0),
        samples: readings.len(),
    }
}

/// A sampling thread over some processes; [`stop`](Self::stop) returns their usage.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Vec<Reading>>>>,
    pids: Vec<u32>,
}

impl Sampler {
    /// Starts sampling `pids` every [`INTERVAL`] (and once at once).
    pub fn start(pids: &[u32]) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, pids) = (stop.clone(), pids.to_vec());
            std::thread::Builder::new()
                .name("tun-sampler".into())
                .spawn(move || {
                    let mut all = vec![Vec::new(); pids.len()];
                    loop {
                        for (pid, out) in pids.iter().zip(all.iter_mut()) {
                            if let Some(r) = read(*pid) {
                                out.push(r);
                            }
                        }
                        if stop.load(Ordering::Acquire) {
                            return all;
                        }
                        std::thread::sleep(INTERVAL);
                    }
                })
                .ok()
        };
        Sampler {
            stop,
            thread,
            pids: pids.to_vec(),
        }
    }

    /// Takes a last sample and returns each process's usage, in the order given.
    pub fn stop(mut self) -> Vec<Usage> {
        self.stop.store(true, Ordering::Release);
        let readings = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_else(|| vec![Vec::new(); self.pids.len()]);
        self.pids
            .iter()
            .zip(readings)
            .map(|(pid, r)| summarise(*pid, &r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (pnet (tun) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 8 0 \
                    1234 480152576 14563 18446744073709551615";
        let status = "Name:\tpnet\nVmRSS:\t   58272 kB\nThreads:\t8\n";
        let r = parse_proc(stat, status).unwrap();
        assert_eq!(r.cpu_seconds, 300.0);
        assert!((r.rss_mb - 56.90625).abs() < 1e-9);
        assert_eq!(r.threads, 8);
        assert!(parse_proc("garbage", status).is_none());
    }

    #[test]
    fn usage_is_the_cpu_between_first_and_last_and_the_largest_rss() {
        let r = |cpu, rss, threads| Reading {
            cpu_seconds: cpu,
            rss_mb: rss,
            threads,
        };
        let u = summarise(7, &[r(1.0, 10.0, 4), r(1.5, 30.0, 9), r(3.0, 20.0, 8)]);
        assert_eq!(
            (u.cpu_seconds, u.rss_mb_max, u.rss_mb_mean),
            (2.0, 30.0, 20.0)
        );
        assert_eq!((u.threads_max, u.samples, u.pid), (9, 3, 7));
        assert_eq!(summarise(7, &[]).samples, 0);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = Sampler::start(&[std::process::id()]);
        std::thread::sleep(Duration::from_millis(150));
        let u = s.stop();
        assert!(u[0].samples >= 2 && u[0].rss_mb_max > 0.0 && u[0].threads_max >= 2);
    }
}
