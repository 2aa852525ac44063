use std::net::{IpAddr, SocketAddr};

use pnet_mesh_crypto::{PrivateKey, PublicKey};

use super::*;
use crate::mesh::wire::relay::RelayFrame;

fn key(n: u8) -> PublicKey {
    PrivateKey::from_bytes([n; 32]).public_key()
}

fn host(s: &str) -> AllowedIp {
    s.parse().unwrap()
}

/// R (key 1) with peers A (2, peer 0), B (3, peer 1) and C (4, peer 2, no host route, a /24).
fn relay_table() -> RelayTable {
    let mut t = RelayTable::new(
        key(1),
        vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
        DEFAULT_RELAY_PORT,
        DEFAULT_HOP_LIMIT,
    );
    t.set_peer(PeerId(0), key(2), &[host("10.0.0.2/32")]);
    t.set_peer(
        PeerId(1),
        key(3),
        &[host("10.9.0.0/16"), host("fd00::3/128")],
    );
    t.set_peer(PeerId(2), key(4), &[]);
    t
}

fn frame(hop_limit: u8, source: PublicKey, destination: PublicKey) -> RelayFrame<'static> {
    RelayFrame {
        hop_limit,
        source,
        destination,
        payload: &[4, 0, 0, 0, 1, 2, 3],
    }
}

#[test]
fn a_frame_for_a_neighbour_is_forwarded_with_one_hop_less() {
    let t = relay_table();
    assert_eq!(
        t.route(PeerId(0), &frame(4, key(2), key(3))),
        Ok(FrameAction::Forward {
            next: PeerId(1),
            address: "fd00::3".parse().unwrap(),
            hop_limit: 3,
        })
    );
}

#[test]
fn a_frame_for_this_node_is_delivered_over_the_path_it_came() {
    let t = relay_table();
    assert_eq!(
        t.route(PeerId(1), &frame(1, key(3), key(1))),
        Ok(FrameAction::Deliver {
            path: RelayPath {
                relay: PeerId(1),
                peer: PeerId(1)
            }
        })
    );
}

#[test]
fn frames_that_would_leave_the_members_or_circulate_are_refused() {
    let t = relay_table();
    assert_eq!(
        t.route(PeerId(0), &frame(4, key(9), key(3))),
        Err(RelayDrop::UnknownSource)
    );
    assert_eq!(
        t.route(PeerId(0), &frame(4, key(2), key(9))),
        Err(RelayDrop::UnknownDestination)
    );
    assert_eq!(
        t.route(PeerId(0), &frame(1, key(2), key(3))),
        Err(RelayDrop::HopLimit)
    );
    assert_eq!(
        t.route(PeerId(0), &frame(0, key(2), key(3))),
        Err(RelayDrop::HopLimit)
    );
    // Back where it came from.
    assert_eq!(
        t.route(PeerId(0), &frame(4, key(3), key(2))),
        Err(RelayDrop::Loop)
    );
    // Our own frame, returned by a loop elsewhere.
    assert_eq!(
        t.route(PeerId(1), &frame(4, key(1), key(2))),
        Err(RelayDrop::Loop)
    );
    assert_eq!(
        t.route(PeerId(0), &frame(4, key(2), key(4))),
        Err(RelayDrop::NoAddress)
    );
}

#[test]
fn learned_routes_lead_through_the_vouching_neighbour() {
    let mut t = relay_table();
    let far = key(7);
    assert_eq!(t.next_hop(&far), None);
    t.set_routes([(far, key(3)), (key(8), key(99)), (key(3), key(3))]);
    assert_eq!(t.next_hop(&far), Some(PeerId(1)));
    // A route through an unknown neighbour, or a member as its own next hop, is ignored.
    assert_eq!(t.next_hop(&key(8)), None);
    assert_eq!(t.next_hop(&key(3)), Some(PeerId(1)));
    // A learned route wins over the member being a (relayed) peer itself.
    t.set_peer(PeerId(5), far, &[host("10.0.0.7/32")]);
    assert_eq!(t.next_hop(&far), Some(PeerId(1)));
    assert!(matches!(
        t.route(PeerId(0), &frame(4, key(2), far)),
        Ok(FrameAction::Forward {
            next: PeerId(1),
            ..
        })
    ));
}

#[test]
fn a_frame_packet_reads_back_as_the_same_frame() {
    let t = relay_table();
    let target = t
        .target(RelayPath {
            relay: PeerId(0),
            peer: PeerId(1),
        })
        .unwrap();
    assert_eq!(target.destination, key(3));
    let dst = SocketAddr::new(target.address, t.port());
    let src = SocketAddr::new(t.own_address_for(target.address).unwrap(), t.port());
    let sent = frame(t.hop_limit(), *t.own_key(), target.destination);
    let mut out = [0u8; 200];
    let len = write_frame_packet(&mut out, src, dst, &sent).unwrap();
    let udp = ip::parse_udp(&out[..len]).unwrap();
    assert_eq!((udp.src, udp.dst), (src, dst));
    assert_eq!(parse_frame(udp.payload), Ok(Some(sent)));
    assert_eq!(
        write_frame_packet(&mut out[..100], src, dst, &sent),
        Err(RelayDrop::TooLarge)
    );
    assert_eq!(parse_frame(&[1]), Err(RelayDrop::Malformed));
    assert_eq!(parse_frame(&[1, 2, 0, 0]), Ok(None));
    assert_eq!(
        t.target(RelayPath {
            relay: PeerId(2),
            peer: PeerId(1)
        }),
        Err(RelayDrop::NoAddress)
    );
    let _: IpAddr = target.address;
}
