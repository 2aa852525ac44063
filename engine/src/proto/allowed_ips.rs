//! Cryptokey routing: which peer owns an address, by longest-prefix match over the peers' allowed IPs.
//!
//! A path-compressed binary trie per address family (the shape of wireguard-go's `allowedips.go`):
//! every node holds a prefix, and a node exists only where a route ends or two routes part, so a
//! lookup visits at most one node per distinct prefix on its path: about log2(routes), not one probe
//! per prefix length. IPv4 keys are left-aligned in a `u128`, so both families share the code.

use std::net::IpAddr;

use crate::PeerId;
use crate::config::AllowedIp;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    /// The prefix, left-aligned, host bits zero.
    key: u128,
    len: u8,
    peer: Option<PeerId>,
    child: [u32; 2],
}

fn prefix_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// Bit `i` (0 = most significant) of `key`.
fn bit(key: u128, i: u8) -> usize {
    if i >= 128 {
        0
    } else {
        ((key >> (127 - u32::from(i))) & 1) as usize
    }
}

#[derive(Debug, Clone)]
struct Trie {
    nodes: Vec<Node>,
    root: u32,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: Vec::new(),
            root: NONE,
        }
    }
}

impl Trie {
    fn push(&mut self, key: u128, len: u8, peer: Option<PeerId>) -> u32 {
        self.nodes.push(Node {
            key,
            len,
            peer,
            child: [NONE; 2],
        });
        (self.nodes.len() - 1) as u32
    }

    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize)
    }

    /// Points `parent`'s link (or the root) at `to`.
    fn relink(&mut self, parent: Option<(u32, usize)>, to: u32) {
        match parent {
            None => self.root = to,
            Some((p, b)) => {
                if let Some(slot) = self
                    .nodes
                    .get_mut(p as usize)
                    .and_then(|n| n.child.get_mut(b))
                {
                    *slot = to;
                }
            }
        }
    }

    fn set_child(&mut self, node: u32, b: usize, to: u32) {
        if let Some(slot) = self
            .nodes
            .get_mut(node as usize)
            .and_then(|n| n.child.get_mut(b))
        {
            *slot = to;
        }
    }

    fn insert(&mut self, key: u128, len: u8, peer: PeerId) -> Option<PeerId> {
        let key = key & prefix_mask(len);
        let mut parent: Option<(u32, usize)> = None;
        let mut cur = self.root;
        loop {
            let Some(node) = self.node(cur).cloned() else {
                let leaf = self.push(key, len, Some(peer));
                self.relink(parent, leaf);
                return None;
            };
            let common = ((node.key ^ key).leading_zeros() as u8)
                .min(node.len)
                .min(len);
            if common < node.len {
                // The new prefix parts from this node's above it: split.
                let joint = if common == len {
                    // The new prefix is an ancestor of the node.
                    self.push(key, len, Some(peer))
                } else {
                    let joint = self.push(key & prefix_mask(common), common, None);
                    let leaf = self.push(key, len, Some(peer));
                    self.set_child(joint, bit(key, common), leaf);
                    joint
                };
                self.set_child(joint, bit(node.key, common), cur);
                self.relink(parent, joint);
                return None;
            }
            if len == node.len {
                let old = self
                    .nodes
                    .get_mut(cur as usize)
                    .and_then(|n| n.peer.replace(peer));
                return old;
            }
            let b = bit(key, node.len);
            parent = Some((cur, b));
            cur = node.child.get(b).copied().unwrap_or(NONE);
        }
    }

    fn lookup(&self, key: u128) -> Option<PeerId> {
        let mut best = None;
        let mut cur = self.root;
        while let Some(node) = self.node(cur) {
            if key & prefix_mask(node.len) != node.key {
                break;
            }
            if node.peer.is_some() {
                best = node.peer;
            }
            if node.len >= 128 {
                break;
            }
            cur = node.child.get(bit(key, node.len)).copied().unwrap_or(NONE);
        }
        best
    }
}

fn v4_key(a: std::net::Ipv4Addr) -> u128 {
    u128::from(u32::from(a)) << 96
}

/// The allowed-IPs table of all peers.
#[derive(Debug, Default, Clone)]
pub struct AllowedIps {
    v4: Trie,
    v6: Trie,
}

impl AllowedIps {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `net` to `peer`; returns the peer that held exactly this prefix before, if any.
    pub fn insert(&mut self, net: AllowedIp, peer: PeerId) -> Option<PeerId> {
        match net.addr() {
            IpAddr::V4(a) => self.v4.insert(v4_key(a), net.prefix_len(), peer),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), net.prefix_len(), peer),
        }
    }

    /// The peer whose allowed IPs hold `addr` with the longest prefix.
    pub fn lookup(&self, addr: IpAddr) -> Option<PeerId> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(v4_key(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> AllowedIp {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = AllowedIps::new();
        t.insert(net("10.0.0.0/8"), PeerId(1));
        t.insert(net("10.1.0.0/16"), PeerId(2));
        t.insert(net("10.1.2.3/32"), PeerId(3));
        t.insert(net("::/0"), PeerId(4));
        t.insert(net("fd00:1::/64"), PeerId(5));
        assert_eq!(t.lookup("10.2.0.1".parse().unwrap()), Some(PeerId(1)));
        assert_eq!(t.lookup("10.1.9.9".parse().unwrap()), Some(PeerId(2)));
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), Some(PeerId(3)));
        assert_eq!(t.lookup("11.0.0.1".parse().unwrap()), None);
        assert_eq!(t.lookup("fd00:1::9".parse().unwrap()), Some(PeerId(5)));
        assert_eq!(t.lookup("2001:db8::1".parse().unwrap()), Some(PeerId(4)));
    }

    proptest! {
        /// IPv6: matches a linear scan for the longest matching prefix (probes near the routes too).
        #[test]
        fn ipv6_equals_linear_scan(routes in prop::collection::vec((any::<u128>(), 0u8..=128), 1..40), probes in prop::collection::vec(any::<u128>(), 1..40)) {
            let mask = |a: u128, l: u8| if l == 0 { 0 } else { a & (u128::MAX << (128 - u32::from(l))) };
            let mut t = AllowedIps::new();
            let mut model: Vec<(u128, u8, PeerId)> = Vec::new();
            for (i, (addr, len)) in routes.iter().enumerate() {
                let peer = PeerId(i as u32);
                let m = mask(*addr, *len);
                t.insert(AllowedIp::new(IpAddr::V6(m.into()), *len).unwrap(), peer);
                model.retain(|(a, l, _)| !(*a == m && l == len));
                model.push((m, *len, peer));
            }
            let near = routes.iter().map(|(a, _)| a ^ 1);
            for p in probes.iter().copied().chain(routes.iter().map(|(a, _)| *a)).chain(near) {
                let expected = model
                    .iter()
                    .filter(|(a, l, _)| mask(p, *l) == *a)
                    .max_by_key(|(_, l, _)| *l)
                    .map(|(_, _, peer)| *peer);
                prop_assert_eq!(t.lookup(IpAddr::V6(p.into())), expected);
            }
        }

        /// Matches a linear scan for the longest matching prefix.
        #[test]
        fn equals_linear_scan(routes in prop::collection::vec((any::<u32>(), 0u8..=32), 1..40), probes in prop::collection::vec(any::<u32>(), 1..40)) {
            let mut t = AllowedIps::new();
            let mut model: Vec<(u32, u8, PeerId)> = Vec::new();
            for (i, (addr, len)) in routes.iter().enumerate() {
                let peer = PeerId(i as u32);
                let m = if *len == 0 { 0 } else { addr & (u32::MAX << (32 - len)) };
                t.insert(AllowedIp::new(IpAddr::V4(m.into()), *len).unwrap(), peer);
                model.retain(|(a, l, _)| !(*a == m && l == len));
                model.push((m, *len, peer));
            }
            for p in probes.iter().chain(routes.iter().map(|(a, _)| a)) {
                let expected = model
                    .iter()
                    .filter(|(a, l, _)| *l == 0 || (p & (u32::MAX << (32 - l))) == *a)
                    .max_by_key(|(_, l, _)| *l)
                    .map(|(_, _, peer)| *peer);
                prop_assert_eq!(t.lookup(IpAddr::V4((*p).into())), expected);
            }
        }
    }
}
