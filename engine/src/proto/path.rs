//! Where a peer is reached: a UDP socket address, or a path through a relay.
//!
//! The protocol core keeps one `SocketAddr` per peer (what `wg show` calls the endpoint). A peer
//! reached through a relay member gets a *relay path* instead: an address in `100::/64`, the IPv6
//! discard-only prefix of RFC 6666, that no socket can send to or receive from, carrying the local ids
//! of the relay and of the peer itself. The runtime sees the prefix on a [`Transmit`](super::Transmit)
//! and carries the datagram as the payload of a relay frame inside the session with the relay, instead
//! of writing it to a socket; a datagram that arrived inside a relay frame is handled as if it came
//! from the relay path. The relay never holds the end-to-end keys, and its socket address never
//! becomes the endpoint of the peer behind it, so a relay cannot make a pair roam onto itself.
//!
//! Roaming keeps one extra rule: a datagram that arrived through a relay never moves a peer off a
//! direct endpoint. Only the owner of the path choice (the mesh prober, or the application through
//! the peer's configuration) falls back from direct to relayed, so packets still in flight through
//! the relay after a promotion cannot drag a pair back onto it.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use crate::PeerId;

/// The first 64 bits of every relay path: `100::/64` (RFC 6666).
const PREFIX: [u16; 4] = [0x0100, 0, 0, 0];
/// The port of every relay path (any non-zero value; it is never used on a socket).
pub const RELAY_PATH_PORT: u16 = 1;

/// A path to `peer` through the member `relay`, both local peer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayPath {
    /// The peer whose session carries the frames (the first hop).
    pub relay: PeerId,
    /// The peer at the far end.
    pub peer: PeerId,
}

impl RelayPath {
    /// The path as an endpoint address.
    pub fn to_addr(self) -> SocketAddr {
        let [a, b, c, d] = PREFIX;
        let ip = Ipv6Addr::new(
            a,
            b,
            c,
            d,
            (self.relay.0 >> 16) as u16,
            self.relay.0 as u16,
            (self.peer.0 >> 16) as u16,
            self.peer.0 as u16,
        );
        SocketAddr::V6(SocketAddrV6::new(ip, RELAY_PATH_PORT, 0, 0))
    }

    /// The path an endpoint address stands for, if it is one.
    pub fn from_addr(addr: &SocketAddr) -> Option<RelayPath> {
        let SocketAddr::V6(v6) = addr else {
            return None;
        };
        let [a, b, c, d, r1, r0, p1, p0] = v6.ip().segments();
        if [a, b, c, d] != PREFIX {
            return None;
        }
        Some(RelayPath {
            relay: PeerId((u32::from(r1) << 16) | u32::from(r0)),
            peer: PeerId((u32::from(p1) << 16) | u32::from(p0)),
        })
    }
}

/// A path through `relay` to whichever peer it is stored for (the core writes the peer's own id into
/// it when it stores it).
pub fn via(relay: PeerId) -> SocketAddr {
    RelayPath {
        relay,
        peer: PeerId(u32::MAX),
    }
    .to_addr()
}

/// Whether `addr` is a relay path.
pub fn is_relayed(addr: &SocketAddr) -> bool {
    RelayPath::from_addr(addr).is_some()
}

/// `addr` as stored for `peer`: a relay path names the peer it leads to, whatever the datagram or
/// the configuration that produced it claimed; a socket address is unchanged.
pub(crate) fn bind(addr: SocketAddr, peer: PeerId) -> SocketAddr {
    match RelayPath::from_addr(&addr) {
        Some(p) => RelayPath {
            relay: p.relay,
            peer,
        }
        .to_addr(),
        None => addr,
    }
}

/// How long a relay path that carried an authenticated packet is kept against a packet that came
/// through another relay. A member's relays are all probed every interval, so answers through the
/// relays not in use arrive all the time: without the hold, each would move the endpoint there and
/// back. The relay in use is left by the prober when it stops answering, or by roaming once it has
/// been silent this long.
pub const RELAY_ROAM_HOLD: Duration = Duration::from_secs(5);

/// The endpoint `peer` roams to after an authenticated datagram from `from`, or `None` to stay:
/// unchanged, a relay path offered while a direct endpoint is held, or another relay path while the
/// one held was heard from within [`RELAY_ROAM_HOLD`] (`current_heard`).
pub(crate) fn roam_target(
    current: Option<SocketAddr>,
    from: SocketAddr,
    peer: PeerId,
    current_heard: bool,
) -> Option<SocketAddr> {
    let from = bind(from, peer);
    if current == Some(from) {
        return None;
    }
    if is_relayed(&from) && current.is_some_and(|c| !is_relayed(&c) || current_heard) {
        return None;
    }
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_paths_roundtrip_and_never_look_like_socket_addresses() {
        let p = RelayPath {
            relay: PeerId(0x0001_0002),
            peer: PeerId(u32::MAX - 1),
        };
        assert_eq!(RelayPath::from_addr(&p.to_addr()), Some(p));
        assert!(is_relayed(&via(PeerId(3))));
        for real in [
            "127.0.0.1:51820",
            "[::1]:51820",
            "[2001:db8::1]:1",
            "[101::1]:1",
        ] {
            assert!(!is_relayed(&real.parse().unwrap()), "{real}");
        }
    }

    #[test]
    fn a_relayed_datagram_roams_a_relayed_or_unknown_endpoint_but_never_a_direct_one() {
        let peer = PeerId(7);
        let direct: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let other: SocketAddr = "192.0.2.9:51820".parse().unwrap();
        let r1 = via(PeerId(1));
        let bound_r1 = bind(r1, peer);
        assert_eq!(
            RelayPath::from_addr(&bound_r1),
            Some(RelayPath {
                relay: PeerId(1),
                peer
            })
        );
        for heard in [false, true] {
            assert_eq!(roam_target(None, r1, peer, heard), Some(bound_r1));
            assert_eq!(roam_target(Some(bound_r1), r1, peer, heard), None);
            assert_eq!(roam_target(Some(direct), r1, peer, heard), None);
            assert_eq!(
                roam_target(Some(bound_r1), direct, peer, heard),
                Some(direct)
            );
            assert_eq!(roam_target(Some(direct), other, peer, heard), Some(other));
        }
        // Another relay: only once the one held has gone quiet.
        let r2 = via(PeerId(2));
        assert_eq!(roam_target(Some(bound_r1), r2, peer, true), None);
        assert_eq!(
            roam_target(Some(bound_r1), r2, peer, false),
            Some(bind(r2, peer))
        );
    }
}
