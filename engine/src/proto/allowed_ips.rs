//! Cryptokey routing: which peer owns an address, by longest-prefix match over the peers' allowed IPs.
//!
//! One hash map per prefix length that is in use, probed from the longest length down: a lookup costs
//! at most one probe per distinct length (33 for IPv4, 129 for IPv6), and usually a handful.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::PeerId;
use crate::config::AllowedIp;

#[derive(Debug, Default, Clone)]
struct Family {
    /// Prefix lengths in use, longest first.
    lengths: Vec<u8>,
    /// (length, masked address) → peer.
    routes: HashMap<(u8, u128), PeerId>,
}

impl Family {
    fn insert(&mut self, bits: u8, addr: u128, len: u8, peer: PeerId) -> Option<PeerId> {
        let key = (len, mask(addr, bits, len));
        let old = self.routes.insert(key, peer);
        if !self.lengths.contains(&len) {
            self.lengths.push(len);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        old
    }

    fn lookup(&self, bits: u8, addr: u128) -> Option<PeerId> {
        self.lengths
            .iter()
            .find_map(|&len| self.routes.get(&(len, mask(addr, bits, len))).copied())
    }
}

fn mask(addr: u128, bits: u8, len: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let host_bits = u32::from(bits.saturating_sub(len));
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    addr & all & !((1u128 << host_bits) - 1)
}

/// The allowed-IPs table of all peers.
#[derive(Debug, Default, Clone)]
pub struct AllowedIps {
    v4: Family,
    v6: Family,
}

impl AllowedIps {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `net` to `peer`; returns the peer that held exactly this prefix before, if any.
    pub fn insert(&mut self, net: AllowedIp, peer: PeerId) -> Option<PeerId> {
        match net.addr() {
            IpAddr::V4(a) => self
                .v4
                .insert(32, u128::from(u32::from(a)), net.prefix_len(), peer),
            IpAddr::V6(a) => self.v6.insert(128, u128::from(a), net.prefix_len(), peer),
        }
    }

    /// The peer whose allowed IPs hold `addr` with the longest prefix.
    pub fn lookup(&self, addr: IpAddr) -> Option<PeerId> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(32, u128::from(u32::from(a))),
            IpAddr::V6(a) => self.v6.lookup(128, u128::from(a)),
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
