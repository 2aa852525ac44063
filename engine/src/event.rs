//! Events the endpoint reports through [`Endpoint::poll_event`](crate::Endpoint::poll_event).

use std::net::SocketAddr;

use pnet_mesh_crypto::PublicKey;

use crate::PeerId;

/// Which side of a handshake we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the initiation.
    Initiator,
    /// We answered it.
    Responder,
}

/// Something that happened to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A handshake completed: as initiator when the response arrived, as responder when the first
    /// transport message under the new keys arrived.
    HandshakeCompleted {
        /// The peer.
        peer: PeerId,
        /// Our side.
        role: Role,
    },
    /// The peer has a working session after having none.
    PeerUp {
        /// The peer.
        peer: PeerId,
    },
    /// The peer's keys were erased (no session for 3 × REJECT_AFTER_TIME) or its handshake given up.
    PeerDown {
        /// The peer.
        peer: PeerId,
    },
    /// An initiation went out to the peer: `attempt` 0 starts a handshake, 1.. are its retransmissions
    /// (one REKEY_TIMEOUT plus jitter apart).
    HandshakeInitiated {
        /// The peer.
        peer: PeerId,
        /// Retransmissions before this one in the current handshake.
        attempt: u32,
    },
    /// No response after REKEY_ATTEMPT_TIME of retries; packets held for the peer were dropped.
    HandshakeFailed {
        /// The peer.
        peer: PeerId,
    },
    /// A new keypair replaced a working one (a rekey); the old one stays to open late packets.
    KeypairRotated {
        /// The peer.
        peer: PeerId,
    },
    /// A peer node opened a message channel to us ([`Node`](crate::Node) only).
    ChannelOpened {
        /// The channel.
        channel: crate::mesh::channel::ChannelId,
    },
    /// The peer finished a channel and everything it sent has been read.
    ChannelClosed {
        /// The channel.
        channel: crate::mesh::channel::ChannelId,
    },
    /// A channel was reset (by the peer, or after a framing violation).
    ChannelReset {
        /// The channel.
        channel: crate::mesh::channel::ChannelId,
    },
    /// Discovery admitted a member: its record arrived, vouched for by `vouched_by` (the member
    /// itself when it told us directly). A key we were not configured with is now a peer.
    MemberJoined {
        /// The member's key.
        member: PublicKey,
        /// The member whose session carried the record.
        vouched_by: PublicKey,
    },
    /// A newer record of a member arrived (a refresh, a new claim, or the member restarted).
    MemberUpdated {
        /// The member's key.
        member: PublicKey,
        /// The member whose session carried the record.
        vouched_by: PublicKey,
    },
    /// A member left (its tombstone arrived) or its record expired; a discovered peer is removed.
    MemberLeft {
        /// The member's key.
        member: PublicKey,
        /// The member whose session carried the departure; `None` when the record expired.
        vouched_by: Option<PublicKey>,
    },
    /// An authenticated packet arrived from a new address (roaming).
    EndpointChanged {
        /// The peer.
        peer: PeerId,
        /// The address used before, if any.
        old: Option<SocketAddr>,
        /// The address now used.
        new: SocketAddr,
    },
    /// A member is reached through `relay` (admitted so, or its relay changed).
    RelayChosen {
        /// The member.
        member: PublicKey,
        /// The relay member.
        relay: PublicKey,
    },
    /// The relay a member is reached through stopped carrying probes to it and back: the member
    /// moves to another relay that answers (a [`RelayChosen`](Event::RelayChosen) follows), or stays
    /// until one does.
    RelayLost {
        /// The member.
        member: PublicKey,
        /// The relay that stopped answering.
        relay: PublicKey,
    },
    /// A relayed member answered an authenticated probe at `endpoint`: it is reached directly now.
    PathPromoted {
        /// The member.
        member: PublicKey,
        /// Its direct endpoint.
        endpoint: SocketAddr,
    },
    /// A member's direct path stopped answering: it is reached through `relay` again.
    PathFellBack {
        /// The member.
        member: PublicKey,
        /// The relay member.
        relay: PublicKey,
    },
}
