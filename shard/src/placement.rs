//! Pinning shard threads to cores (core_affinity), as a configuration value.

use tracing::debug;

/// The core for shard `index`: from the configured list if any, else cores in order, wrapping.
pub(crate) fn core_for(index: usize, cpus: Option<&[usize]>) -> Option<usize> {
    match cpus {
        Some(list) if !list.is_empty() => list.get(index % list.len()).copied(),
        _ => {
            let cores = core_affinity::get_core_ids()?;
            let n = cores.len().max(1);
            cores.get(index % n).map(|c| c.id)
        }
    }
}

/// Pins the calling thread to `core`; says so at debug level, and why not if it fails.
pub(crate) fn pin_current(core: usize) -> bool {
    let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: core });
    debug!(core, pinned, "shard thread placement");
    pinned
}
