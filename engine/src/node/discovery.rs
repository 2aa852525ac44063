//! The node's view of discovery: the members it knows, its counters, and leaving the mesh.

use super::{Node, NodeError};
use crate::mesh::discovery::DiscoveryStats;
use crate::mesh::membership::Member;
use crate::mesh::probe::ProbeStats;
use crate::runtime::discovery::wall_us;

impl Node {
    /// The members this node knows (configured ones that showed a record included), or an empty
    /// list when discovery is off.
    ///
    /// # Errors
    /// [`NodeError::Closed`] if the discovery thread died.
    pub fn members(&self) -> Result<Vec<Member>, NodeError> {
        match &self.discovery {
            None => Ok(Vec::new()),
            Some(d) => Ok(d.hub().lock()?.members().cloned().collect()),
        }
    }

    /// Discovery counters (members, messages, drops by reason), or `None` when discovery is off.
    pub fn discovery_stats(&self) -> Option<DiscoveryStats> {
        let d = self.discovery.as_ref()?;
        d.hub().lock().ok().map(|d| d.stats())
    }

    /// Path prober counters (members reached through a relay, of those promoted to a direct path,
    /// probes, promotions, fallbacks), or `None` when discovery is off.
    pub fn path_stats(&self) -> Option<ProbeStats> {
        let d = self.discovery.as_ref()?;
        d.hub().path_stats.lock().ok().map(|s| *s)
    }

    /// Leaves the mesh: a tombstone of this node's record goes to every member it has a session
    /// with, and they forget it (and remove it as a peer unless configured with it). Call before
    /// [`shutdown`](Self::shutdown) for a planned departure; a node that just stops expires instead.
    ///
    /// # Errors
    /// [`NodeError::Closed`] if the discovery thread died; nothing happens when discovery is off.
    pub fn leave_mesh(&self) -> Result<(), NodeError> {
        if let Some(d) = &self.discovery {
            d.hub().lock()?.leave(wall_us());
            self.shared.discovery_wake.signal();
        }
        Ok(())
    }
}
