//! Where a scenario's measured figures go: one JSON file per scenario beside the test output
//! (`artifacts/faults/`, or `PNET_FAULTS_REPORTS`), printed too. Measured, never asserted.

use std::path::PathBuf;

use serde_json::Value;

/// The directory for scenario reports.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PNET_FAULTS_REPORTS") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or_else(
        || PathBuf::from("artifacts/faults"),
        |w| w.join("artifacts/faults"),
    )
}

/// Writes `figures` as `<scenario>.json` and prints where.
pub fn write(scenario: &str, figures: &Value) {
    let dir = dir();
    let path = dir.join(format!("{scenario}.json"));
    let text = serde_json::to_string_pretty(figures).unwrap_or_default();
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text)) {
        Ok(()) => println!(
            "{scenario}: measured {text}\n{scenario}: wrote {}",
            path.display()
        ),
        Err(e) => println!(
            "{scenario}: measured {text}\n{scenario}: cannot write {}: {e}",
            path.display()
        ),
    }
}
