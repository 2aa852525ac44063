//! What every report says about the machine and the build, and where reports go.

use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

/// The machine and build a measurement ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// Always `"rust"`.
    pub runtime: &'static str,
    /// `rustc --version` of the compiler that built this binary, if the build script could run it.
    pub rustc: Option<&'static str>,
    /// The cargo profile's optimisation: `"release"` unless debug assertions are on.
    pub build: &'static str,
    /// `std::env::consts::OS`.
    pub os: &'static str,
    /// The kernel release (`/proc/sys/kernel/osrelease`), where readable.
    pub kernel: Option<String>,
    /// The first `model name` of `/proc/cpuinfo`, where readable.
    pub cpu_model: Option<String>,
    /// `std::env::consts::ARCH`.
    pub arch: &'static str,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `git rev-parse HEAD` of the source tree, with `-dirty` when it has uncommitted changes; `None`
    /// outside a git checkout.
    pub commit: Option<String>,
}

impl Environment {
    /// Reads what can be read cheaply; fields that cannot be read are `None`.
    pub fn detect() -> Self {
        let rustc = option_env!("PNET_MESH_BENCH_RUSTC").filter(|s| !s.is_empty());
        Environment {
            runtime: "rust",
            rustc,
            build: if cfg!(debug_assertions) {
                "debug assertions on (smoke run only: numbers not comparable)"
            } else {
                "release"
            },
            os: std::env::consts::OS,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            }),
            arch: std::env::consts::ARCH,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            commit: commit(),
        }
    }
}

/// The source tree's commit (read-only git queries in the crate's own directory).
fn commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["-C", dir, "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())?;
    let dirty = Command::new("git")
        // --no-optional-locks: a status query must not rewrite the index's stat cache.
        .args([
            "-C",
            dir,
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    Some(format!(
        "{}{}",
        head.trim(),
        if dirty { "-dirty" } else { "" }
    ))
}

/// Where reports are written: `$PNET_MESH_BENCH_RESULTS` if set, else
/// `artifacts/benchmarks/results/` at the root of the workspace this crate was built from (so
/// `cargo bench`, which runs in `bench/`, and `cargo run` from the root agree). `artifacts/` is
/// git-ignored.
pub fn results_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PNET_MESH_BENCH_RESULTS") {
        return PathBuf::from(dir);
    }
    match std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        Some(workspace) if workspace.join("Cargo.toml").is_file() => {
            workspace.join("artifacts/benchmarks/results")
        }
        _ => PathBuf::from("artifacts/benchmarks/results"),
    }
}

/// Writes `text` to `path`, creating its directory.
///
/// # Errors
/// The I/O error, with the path in its message.
pub fn write_report(path: &std::path::Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
