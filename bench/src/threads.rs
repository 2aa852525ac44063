//! Threads of the benchmark process: pinning the calling thread, and each thread's core and on-CPU
//! time over a window, read from `/proc/self/task` (so the shards' threads are reported too, not only
//! the benchmark's own).

use serde::Serialize;

/// A thread's placement and CPU time over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadReport {
    /// The thread's name (`pnet-shard-data0`, `bench-producer`, …) or its role.
    pub name: String,
    /// Its kernel thread id, where known.
    pub tid: Option<u32>,
    /// The CPU it last ran on, where readable.
    pub cpu: Option<u32>,
    /// On-CPU time during the measured window, where readable.
    pub cpu_time_secs: Option<f64>,
}

/// Pins the calling thread to `cpu`; false if the system refused (the run goes on unpinned).
pub fn pin_current(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// The CPUs a two-sided run uses: the sender's and the receiver's. On a one-CPU machine both are 0.
pub fn sender_receiver_cpus() -> (usize, usize) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0, usize::from(n > 1))
}

/// This thread's on-CPU nanoseconds, from `/proc/thread-self/schedstat`.
pub fn current_cpu_ns() -> Option<u64> {
    schedstat_ns("/proc/thread-self/schedstat")
}

/// The CPU this thread last ran on.
pub fn current_cpu() -> Option<u32> {
    stat_cpu("/proc/thread-self/stat")
}

fn schedstat_ns(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Field 39 (`processor`) of a `stat` file.
fn stat_cpu(path: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces; field 3 is first.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
}

/// Every thread of the process at one instant: `(tid, name, on-CPU ns)`.
#[derive(Debug, Clone, Default)]
pub struct TaskSnapshot(Vec<(u32, String, u64)>);

impl TaskSnapshot {
    /// Reads `/proc/self/task`; empty where it cannot be read.
    pub fn take() -> Self {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return TaskSnapshot::default();
        };
        let tasks = dir
            .flatten()
            .filter_map(|e| {
                let tid: u32 = e.file_name().to_str()?.parse().ok()?;
                let base = format!("/proc/self/task/{tid}");
                let name = std::fs::read_to_string(format!("{base}/comm")).ok()?;
                let ns = schedstat_ns(&format!("{base}/schedstat"))?;
                Some((tid, name.trim().to_string(), ns))
            })
            .collect();
        TaskSnapshot(tasks)
    }

    /// The threads alive at both snapshots that ran during the window, with their CPU time in it and
    /// the CPU they are on now. Threads whose names start with `skip` are left out.
    pub fn window(&self, after: &TaskSnapshot, skip: &[&str]) -> Vec<ThreadReport> {
        after
            .0
            .iter()
            .filter(|(_, name, _)| !skip.iter().any(|s| name.starts_with(s)))
            .filter_map(|(tid, name, ns)| {
                let before = self.0.iter().find(|(t, _, _)| t == tid)?.2;
                let spent = ns.saturating_sub(before);
                (spent > 0).then(|| ThreadReport {
                    name: name.clone(),
                    tid: Some(*tid),
                    cpu: stat_cpu(&format!("/proc/self/task/{tid}/stat")),
                    cpu_time_secs: Some(spent as f64 / 1e9),
                })
            })
            .collect()
    }
}
