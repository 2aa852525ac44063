//! A bounded table of UDP flows, the one piece both forwarding directions keep their state in: a
//! flow is created by its first datagram, touched by every later one, forgotten after it has been idle
//! too long, and the least recently active one makes room when the table is full.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Flows keyed by `K` (who sent), each holding a `V` (what carries its replies).
#[derive(Debug)]
pub struct FlowTable<K, V> {
    flows: HashMap<K, Flow<V>>,
    capacity: usize,
    idle: Duration,
}

#[derive(Debug)]
struct Flow<V> {
    value: V,
    last_active: Instant,
}

impl<K: Copy + Eq + Hash, V> FlowTable<K, V> {
    /// At most `capacity` flows (at least one), each forgotten after `idle` without traffic.
    pub fn new(capacity: usize, idle: Duration) -> Self {
        let capacity = capacity.max(1);
        FlowTable {
            flows: HashMap::with_capacity(capacity),
            capacity,
            idle,
        }
    }

    /// The flow of `key`, marked active at `now`.
    pub fn touch(&mut self, key: &K, now: Instant) -> Option<&V> {
        let flow = self.flows.get_mut(key)?;
        flow.last_active = now;
        Some(&flow.value)
    }

    /// The flow of `key` without marking it active.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.flows.get(key).map(|f| &f.value)
    }

    /// Whether the table is full, so that [`insert`](Self::insert) will evict.
    pub fn is_full(&self) -> bool {
        self.flows.len() >= self.capacity
    }

    /// Adds a flow; when the table is full the least recently active flow is removed and returned
    /// (the caller releases what it held).
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> Option<(K, V)> {
        let evicted = if self.is_full() {
            let oldest = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_active)
                .map(|(k, _)| *k);
            oldest.and_then(|k| self.flows.remove(&k).map(|f| (k, f.value)))
        } else {
            None
        };
        self.flows.insert(
            key,
            Flow {
                value,
                last_active: now,
            },
        );
        evicted
    }

    /// Removes every flow idle for longer than the table's limit, handing each to `release`.
    pub fn expire(&mut self, now: Instant, mut release: impl FnMut(K, V)) {
        let idle = self.idle;
        let stale: Vec<K> = self
            .flows
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_active) > idle)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(f) = self.flows.remove(&k) {
                release(k, f.value);
            }
        }
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_table_evicts_the_least_recently_active_flow() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(2, Duration::from_secs(60));
        assert!(table.insert(1, "a", t0).is_none());
        assert!(table.insert(2, "b", t0 + Duration::from_secs(1)).is_none());
        // 1 is touched after 2, so 2 is now the least recently active.
        assert_eq!(table.touch(&1, t0 + Duration::from_secs(2)), Some(&"a"));
        assert_eq!(
            table.insert(3, "c", t0 + Duration::from_secs(3)),
            Some((2, "b"))
        );
        assert_eq!(table.len(), 2);
        assert!(table.get(&2).is_none());
        assert_eq!(table.get(&3), Some(&"c"));
    }

    #[test]
    fn idle_flows_expire_and_are_released() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(8, Duration::from_secs(10));
        table.insert(1, 'a', t0);
        table.insert(2, 'b', t0 + Duration::from_secs(5));
        let mut released = Vec::new();
        table.expire(t0 + Duration::from_secs(12), |k, v| released.push((k, v)));
        assert_eq!(released, [(1, 'a')]);
        assert_eq!(table.len(), 1);
        table.expire(t0 + Duration::from_secs(12), |_, _| {
            panic!("nothing else is idle")
        });
    }

    #[test]
    fn capacity_is_at_least_one() {
        let mut table = FlowTable::new(0, Duration::from_secs(1));
        let now = Instant::now();
        assert!(table.insert(1, (), now).is_none());
        assert_eq!(table.insert(2, (), now), Some((1, ())));
    }
}
