//! The node's view of relaying: what it forwarded for members, delivered from relays and started
//! itself, and what it refused.

use std::sync::atomic::Ordering;

use pnet_mesh_crypto::PublicKey;

use super::Node;
use crate::mesh::relay::RelayDrops;

/// Relay counters of a node, all data shards together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Frames this node passed on for other members.
    pub forwarded: u64,
    /// Frames for this node that a relay brought (their end-to-end payload went to the protocol
    /// core, which authenticates it as usual).
    pub delivered: u64,
    /// Frames this node started: datagrams for peers it reaches through a relay.
    pub originated: u64,
    /// Frames refused, by reason.
    pub drops: RelayDrops,
}

impl Node {
    /// Relay counters (forwarded, delivered, originated, drops by reason).
    pub fn relay_stats(&self) -> RelayStats {
        let mut stats = RelayStats::default();
        for c in &self.shared.relay_counters {
            stats.forwarded += c.forwarded.load(Ordering::Relaxed);
            stats.delivered += c.delivered.load(Ordering::Relaxed);
            stats.originated += c.originated.load(Ordering::Relaxed);
            if let Ok(d) = c.drops.lock() {
                stats.drops.merge(&d);
            }
        }
        stats
    }

    /// The next hops of frames for members this node does not reach directly: `(member,
    /// neighbour)`, the configured ones (`NodeBuilder::relay_route`) first, then those learned from
    /// discovery (the neighbour that vouched for the member's current record).
    pub fn relay_routes(&self) -> Vec<(PublicKey, PublicKey)> {
        self.shared.relay_routes()
    }
}
