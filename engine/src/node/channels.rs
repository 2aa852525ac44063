//! Message channels through the [`Node`]: open one to a peer node, send and receive messages of
//! any size up to the configured maximum, close or reset it. The channel driver thread does the
//! protocol work; these calls only touch its table. Sends block (or `try_` calls return
//! [`NodeError::WouldBlock`]) while the channel's send buffer is full; receives wait on the node's
//! readiness descriptor.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use pnet_mesh_crypto::rng::{OsRng, Rng};

use super::{Node, NodeError};
use crate::mesh::channel::fragment::SenderStats;
use crate::mesh::channel::{ChannelDrops, ChannelError, ChannelId};

impl Node {
    /// Opens a message channel to the node whose mesh address is `peer`; it sees
    /// [`Event::ChannelOpened`](crate::Event::ChannelOpened) with the same [`ChannelId`].
    ///
    /// # Errors
    /// [`NodeError::NoRoute`] if no peer's allowed IPs hold `peer`; [`NodeError::Channel`] when
    /// the peer has the maximum of channels or its reassembly memory is spent.
    pub fn open_channel(&self, peer: IpAddr) -> Result<ChannelId, NodeError> {
        let routed = self
            .shared
            .routes
            .read()
            .map_err(|_| NodeError::Closed)?
            .lookup(peer)
            .is_some();
        if !routed {
            return Err(NodeError::NoRoute(peer));
        }
        let mut table = self.channels.hub().lock()?;
        let channels = table
            .peer(peer, Instant::now())
            .ok_or(NodeError::Channel(ChannelError::NoMemory))?;
        let id = loop {
            let id = OsRng.next_u32();
            match channels.open(id) {
                Ok(()) => break id,
                // Already in use: draw again.
                Err(ChannelError::UnknownChannel(_)) => {}
                Err(e) => return Err(e.into()),
            }
        };
        drop(table);
        self.channels.wake();
        Ok(ChannelId { peer, id })
    }

    /// Queues `message` on `channel`, waiting while its send buffer is full.
    ///
    /// # Errors
    /// As [`try_channel_send`](Self::try_channel_send), except [`NodeError::WouldBlock`].
    pub fn channel_send(&self, channel: ChannelId, message: &[u8]) -> Result<(), NodeError> {
        self.blocking(|| self.try_channel_send(channel, message))
    }

    /// Queues `message` on `channel` if its send buffer has room now.
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] when the buffer is full; [`NodeError::Channel`] with
    /// [`ChannelError::MessageTooLarge`], `Closed`, `Reset` or `UnknownChannel`.
    pub fn try_channel_send(&self, channel: ChannelId, message: &[u8]) -> Result<(), NodeError> {
        let mut table = self.channels.hub().lock()?;
        let channels = table
            .existing(channel.peer)
            .ok_or(ChannelError::UnknownChannel(channel.id))?;
        channels.check_send(channel.id, message.len())?;
        channels.send(channel.id, message.to_vec())?;
        drop(table);
        self.channels.wake();
        Ok(())
    }

    /// The next message of `channel`, waiting up to `timeout` (`None`: for ever).
    ///
    /// # Errors
    /// [`NodeError::TimedOut`], or as [`try_channel_recv`](Self::try_channel_recv).
    pub fn channel_recv(
        &self,
        channel: ChannelId,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, NodeError> {
        self.blocking_recv(timeout, || self.try_channel_recv(channel))
    }

    /// The next message of `channel` if one is complete.
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] when none is; [`NodeError::Channel`] with
    /// [`ChannelError::Closed`] once the peer finished and everything was read, `Reset` or
    /// `UnknownChannel`.
    pub fn try_channel_recv(&self, channel: ChannelId) -> Result<Vec<u8>, NodeError> {
        let mut table = self.channels.hub().lock()?;
        let channels = table
            .existing(channel.peer)
            .ok_or(ChannelError::UnknownChannel(channel.id))?;
        let message = channels.recv(channel.id)?;
        drop(table);
        match message {
            Some(m) => {
                // Reading frees reassembly memory: the peer may be waiting for credit.
                self.channels.wake();
                Ok(m)
            }
            None => Err(NodeError::WouldBlock),
        }
    }

    /// Finishes `channel`: the peer reads what was queued, then sees
    /// [`Event::ChannelClosed`](crate::Event::ChannelClosed).
    ///
    /// # Errors
    /// [`NodeError::Channel`] with `UnknownChannel` or `Reset`.
    pub fn close_channel(&self, channel: ChannelId) -> Result<(), NodeError> {
        let mut table = self.channels.hub().lock()?;
        table
            .existing(channel.peer)
            .ok_or(ChannelError::UnknownChannel(channel.id))?
            .close(channel.id)?;
        drop(table);
        self.channels.wake();
        Ok(())
    }

    /// Aborts `channel`: unread data is discarded and the peer sees
    /// [`Event::ChannelReset`](crate::Event::ChannelReset).
    ///
    /// # Errors
    /// [`NodeError::Closed`] if the node is shut down.
    pub fn reset_channel(&self, channel: ChannelId) -> Result<(), NodeError> {
        let mut table = self.channels.hub().lock()?;
        if let Some(c) = table.existing(channel.peer) {
            c.reset(channel.id);
        }
        drop(table);
        self.channels.wake();
        Ok(())
    }

    /// Counters of `channel`'s sending half (fragments sent, retransmissions, timeouts).
    pub fn channel_sender_stats(&self, channel: ChannelId) -> Option<SenderStats> {
        let mut table = self.channels.hub().lock().ok()?;
        table.existing(channel.peer)?.sender_stats(channel.id)
    }

    /// A one-line summary of `channel`'s state, for diagnostics and test evidence.
    pub fn describe_channel(&self, channel: ChannelId) -> Option<String> {
        let mut table = self.channels.hub().lock().ok()?;
        table.existing(channel.peer)?.describe(channel.id)
    }

    /// Channel packets dropped, by reason, over every peer.
    pub fn channel_drops(&self) -> ChannelDrops {
        self.channels
            .hub()
            .lock()
            .map(|t| t.drops())
            .unwrap_or_default()
    }
}
