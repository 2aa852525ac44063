//! Receiver indices: random 32-bit values, unique on this node, each naming a peer's handshake or
//! keypair (wireguard-go `indextable.go`).
//!
//! Indices are also how the runtime finds the data shard that owns a session without reading any
//! state: the steering program sends a transport message to data shard `byte[4] % n`, and byte 4 of a
//! transport message is the low byte of the receiver index (little-endian). So every index of a peer
//! is drawn with `(index & 0xff) % n == shard of the peer`, and a rekey never moves a session.

use std::collections::HashMap;

use pnet_mesh_crypto::rng::Rng;

use crate::PeerId;

/// Which of `data_shards` shards owns the session named by `index`: the low byte, modulo the count.
pub fn shard_of_index(index: u32, data_shards: u8) -> u8 {
    if data_shards == 0 {
        return 0;
    }
    (index & 0xff) as u8 % data_shards
}

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

    /// Draws a fresh index for `peer` whose owner among `data_shards` shards is `shard`.
    pub(crate) fn allocate(
        &mut self,
        rng: &mut dyn Rng,
        peer: PeerId,
        shard: u8,
        data_shards: u8,
    ) -> u32 {
        let n = u32::from(data_shards.max(1));
        let shard = u32::from(shard) % n;
        loop {
            let r = rng.next_u32();
            // Move the low byte down to the nearest value that is `shard` modulo n; values with no
            // such neighbour below 256 are drawn again, which keeps the choice uniform.
            let low = r & 0xff;
            let adjusted = low - low % n + shard;
            if adjusted > 0xff {
                continue;
            }
            let index = (r & !0xff) | adjusted;
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

#[cfg(test)]
mod tests {
    use pnet_mesh_crypto::rng::SeededRng;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every index drawn for a shard maps back to that shard, and indices never repeat.
        #[test]
        fn indices_map_to_their_shard(seed: u64, data_shards in 1u8..=254, draws in 1usize..300) {
            let mut rng = SeededRng::new(seed);
            let mut table = IndexTable::default();
            let mut seen = std::collections::HashSet::new();
            for i in 0..draws {
                let shard = (i % usize::from(data_shards)) as u8;
                let index = table.allocate(&mut rng, PeerId(i as u32), shard, data_shards);
                prop_assert_eq!(shard_of_index(index, data_shards), shard);
                prop_assert!(seen.insert(index));
                prop_assert_eq!(table.get(index), Some(PeerId(i as u32)));
            }
        }
    }

    #[test]
    fn low_bytes_spread_over_the_whole_range() {
        // With 3 shards, shard 2 uses low bytes 2, 5, … 254: all of them appear.
        let mut rng = SeededRng::new(9);
        let mut table = IndexTable::default();
        let mut lows = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            lows.insert(table.allocate(&mut rng, PeerId(0), 2, 3) & 0xff);
        }
        assert_eq!(lows.len(), 85);
        assert!(lows.iter().all(|l| l % 3 == 2));
    }
}
