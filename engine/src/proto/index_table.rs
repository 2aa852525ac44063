//! Receiver indices: random 32-bit values, unique on this node, each naming a peer's handshake or
//! keypair (wireguard-go `indextable.go`).

use std::collections::HashMap;

use pnet_mesh_crypto::rng::Rng;

use crate::PeerId;

/// The table of indices in use.
#[derive(Debug, Default)]
pub(crate) struct IndexTable {
    entries: HashMap<u32, PeerId>,
}

impl IndexTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        IndexTable {
            entries: HashMap::with_capacity(capacity),
        }
    }

    /// Draws a fresh index for `peer`.
    pub(crate) fn allocate(&mut self, rng: &mut dyn Rng, peer: PeerId) -> u32 {
        loop {
            let index = rng.next_u32();
            if let std::collections::hash_map::Entry::Vacant(slot) = self.entries.entry(index) {
                slot.insert(peer);
                return index;
            }
        }
    }

    pub(crate) fn get(&self, index: u32) -> Option<PeerId> {
        self.entries.get(&index).copied()
    }

    pub(crate) fn remove(&mut self, index: u32) {
        self.entries.remove(&index);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
