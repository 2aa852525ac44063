//! [`NodeError`]: what the node's calls can fail with, worded for an operator.

use std::net::{IpAddr, SocketAddr};

use pnet_mesh_shard::StartError;

use crate::config::ConfigError;
use crate::proto::SendError;
use crate::proto::gso::GsoError;

/// Why a [`Node`](crate::Node) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A queue is full; try again (or wait on the readiness descriptor).
    #[error("would block: the queue is full")]
    WouldBlock,
    /// Nothing arrived in time.
    #[error("timed out")]
    TimedOut,
    /// Larger than the MTU allows (or than the caller's buffer).
    #[error("{len} bytes exceed the maximum of {max}")]
    TooLarge {
        /// Bytes offered.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// No peer's allowed IPs hold the destination.
    #[error("no peer's allowed ips contain {0}")]
    NoRoute(IpAddr),
    /// The node has no mesh address of the destination's family.
    #[error("no mesh address of the family of {to}: configure one with mesh_address")]
    NoMeshAddress {
        /// The destination.
        to: SocketAddr,
    },
    /// Not a well-formed IPv4 or IPv6 packet.
    #[error("not a well-formed IPv4 or IPv6 packet")]
    InvalidPacket,
    /// A GSO super-packet that cannot be split into segments.
    #[error("cannot segment the super-packet: {0}")]
    Segmentation(#[from] GsoError),
    /// The protocol core refused the packet.
    #[error(transparent)]
    Send(SendError),
    /// A configuration field is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The runtime could not start.
    #[error("the runtime could not start: {0}")]
    Start(#[from] StartError),
    /// An I/O resource could not be created.
    #[error("{what}: {source}")]
    Io {
        /// What was being created.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A channel call failed.
    #[error(transparent)]
    Channel(crate::mesh::channel::ChannelError),
    /// The node's shards stopped.
    #[error("the node is shut down")]
    Closed,
}

impl From<crate::mesh::channel::ChannelError> for NodeError {
    /// A full send buffer is the node's usual backpressure, [`NodeError::WouldBlock`].
    fn from(e: crate::mesh::channel::ChannelError) -> Self {
        match e {
            crate::mesh::channel::ChannelError::WouldBlock => NodeError::WouldBlock,
            other => NodeError::Channel(other),
        }
    }
}
