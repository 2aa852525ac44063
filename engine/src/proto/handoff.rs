//! What the control plane and the data paths say to each other.
//!
//! The control plane never seals a transport message and never holds a transport key after handing it
//! over: a finished handshake becomes a [`KeypairUpdate`] for the data path that owns the peer, which
//! installs the keypair *before* it sends the handshake response or the confirming keepalive, so the
//! peer's first transport packet never arrives before its key. The data paths answer with
//! [`DataNotice`]s, coalesced per peer and kind.

use std::net::SocketAddr;
use std::sync::Arc;

use super::allowed_ips::AllowedIps;
use super::keypair::Keypair;
use super::published::Published;
use super::wire::RESPONSE_LEN;
use crate::PeerId;

/// A command from the control plane to the data path that owns `peer`.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataCommand {
    /// Install a new keypair, then send what the handshake needs.
    Install(Box<KeypairUpdate>),
    /// Send a keepalive (or ask for a handshake if there is no session).
    Keepalive {
        /// The peer.
        peer: PeerId,
    },
    /// The peer's endpoint changed (configuration or an authenticated handshake from a new address).
    SetEndpoint {
        /// The peer.
        peer: PeerId,
        /// Its new address.
        endpoint: SocketAddr,
    },
    /// The handshake was given up: drop the packets held for it.
    DropStaged {
        /// The peer.
        peer: PeerId,
    },
    /// No session for 3 × REJECT_AFTER_TIME: erase every key of the peer.
    ClearKeys {
        /// The peer.
        peer: PeerId,
    },
    /// A peer this data path now owns.
    AddPeer(PeerHandle),
    /// The peer was removed: erase its keys and drop its packets.
    RemovePeer {
        /// The peer.
        peer: PeerId,
    },
    /// A new allowed-IPs table (peers changed).
    Routes(Arc<AllowedIps>),
}

/// A peer as a data path sees it at creation.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    pub(crate) peer: PeerId,
    pub(crate) published: Arc<Published>,
    pub(crate) endpoint: Option<SocketAddr>,
}

/// A finished handshake's keypair and what to send once it is installed.
#[derive(Debug)]
pub struct KeypairUpdate {
    pub(crate) peer: PeerId,
    pub(crate) keypair: Keypair,
    pub(crate) endpoint: SocketAddr,
    pub(crate) then: AfterInstall,
}

impl KeypairUpdate {
    /// The peer the keypair belongs to.
    pub fn peer(&self) -> PeerId {
        self.peer
    }
}

/// What a data path sends after installing a keypair.
#[derive(Debug)]
pub(crate) enum AfterInstall {
    /// Responder: the handshake response (the keypair waits as `next` until the initiator confirms).
    Respond([u8; RESPONSE_LEN]),
    /// Initiator: the packets held back during the handshake, or else a keepalive, confirm the session.
    Confirm,
}

/// What a data path tells the control plane. Coalesced: at most one of each kind per peer is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataNotice {
    /// A packet needs a session (none, or the current one is due for a rekey).
    NeedHandshake {
        /// The peer.
        peer: PeerId,
    },
    /// The first transport message under the responder's `next` keypair arrived: the handshake is
    /// complete.
    Confirmed {
        /// The peer.
        peer: PeerId,
    },
    /// An authenticated transport message came from a new address; the data path already sends there.
    Roamed {
        /// The peer.
        peer: PeerId,
        /// Its new address.
        endpoint: SocketAddr,
    },
    /// A keypair left: its receiver index is free again.
    Retired {
        /// The peer it belonged to.
        peer: PeerId,
        /// Our receiver index of that keypair.
        index: u32,
    },
}

impl DataCommand {
    /// The peer the command is about, if one.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            DataCommand::Install(u) => Some(u.peer),
            DataCommand::Keepalive { peer }
            | DataCommand::SetEndpoint { peer, .. }
            | DataCommand::DropStaged { peer }
            | DataCommand::ClearKeys { peer }
            | DataCommand::RemovePeer { peer } => Some(*peer),
            DataCommand::AddPeer(h) => Some(h.peer),
            DataCommand::Routes(_) => None,
        }
    }
}
