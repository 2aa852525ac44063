//! Sending from outside the shards: a packet is built in a buffer of the application pool, routed by
//! its destination (cryptokey routing) and handed to the data shard that owns the peer. The
//! [`Node`](super::Node)'s send calls and the channel driver thread both send through here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet_mesh_shard::{BufferPool, Commander, HEADROOM, ShardId};

use super::NodeError;
use crate::proto::{PacketBuf, ip, route_packet};
use crate::runtime::{Command, ControlRequest, Shared};

/// How long a blocking call on the control shard (peer changes, stats) waits for its answer.
const CONTROL_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a thread needs to send into the mesh.
#[derive(Debug, Clone)]
pub(crate) struct Transmitter {
    pub(crate) commander: Commander<Command>,
    pub(crate) pool: BufferPool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) mesh_addresses: Vec<IpAddr>,
    pub(crate) mtu: usize,
    pub(crate) data_shards: usize,
}

impl Transmitter {
    /// The largest UDP payload towards `to`.
    pub(crate) fn max_datagram(&self, to: IpAddr) -> usize {
        let headers = if to.is_ipv4() { 20 + 8 } else { 40 + 8 };
        self.mtu.saturating_sub(headers)
    }

    /// Sends `payload` from our mesh address of `to`'s family and `from_port` to `to`.
    pub(crate) fn try_send_udp(
        &self,
        from_port: u16,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), NodeError> {
        self.try_send_udp_via(from_port, to, payload, None)
    }

    /// [`try_send_udp`](Self::try_send_udp), the sealed datagram going to the outer address
    /// `outer` instead of the peer's endpoint when given (a path probe).
    pub(crate) fn try_send_udp_via(
        &self,
        from_port: u16,
        to: SocketAddr,
        payload: &[u8],
        outer: Option<SocketAddr>,
    ) -> Result<(), NodeError> {
        let max = self.max_datagram(to.ip());
        if payload.len() > max {
            return Err(NodeError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let src_ip = self
            .mesh_addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == to.is_ipv4())
            .ok_or(NodeError::NoMeshAddress { to })?;
        let src = SocketAddr::new(src_ip, from_port);
        self.try_send_with_to(
            |packet| {
                let headers = ip::udp_headers_len(&to);
                packet
                    .get_mut(headers..headers + payload.len())?
                    .copy_from_slice(payload);
                ip::emit_udp(packet, src, to, payload.len())
            },
            outer,
        )
    }

    /// Builds a packet with `fill` (which writes it at the start of the slice it gets and returns
    /// its length) in a buffer of the owning shard, and hands it over.
    pub(crate) fn try_send_with(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<(), NodeError> {
        self.try_send_with_to(fill, None)
    }

    fn try_send_with_to(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
        outer: Option<SocketAddr>,
    ) -> Result<(), NodeError> {
        let pool = &self.pool;
        // The application's own pool: a fast sender cannot starve the shards' receive buffers.
        let mut buf = pool.take_application().ok_or(NodeError::WouldBlock)?;
        let area = buf.as_mut_slice();
        let Some(len) = area.get_mut(HEADROOM..).and_then(|a| {
            let room = a.len().saturating_sub(PacketBuf::TAILROOM);
            fill(a.get_mut(..room)?)
        }) else {
            pool.release(buf);
            return Err(NodeError::TooLarge {
                len: 0,
                max: self.mtu,
            });
        };
        let peer = {
            let routes = self
                .shared
                .routes
                .read()
                .map_err(|_| NodeError::Closed)?
                .clone();
            let pkt = PacketBuf::new(buf.as_mut_slice(), len);
            match pkt
                .map_err(NodeError::from)
                .and_then(|pkt| route_packet(&routes, self.mtu, &pkt).map_err(NodeError::from))
            {
                Ok(peer) => peer,
                Err(e) => {
                    pool.release(buf);
                    return Err(e);
                }
            }
        };
        let shard = ShardId::data((peer.0 as usize) % self.data_shards.max(1));
        let command = match outer {
            None => Command::Send { buf, len, peer },
            Some(to) => Command::SendTo { buf, len, peer, to },
        };
        match self.commander.send_command(shard, command) {
            Ok(()) => Ok(()),
            Err(Command::Send { buf, .. } | Command::SendTo { buf, .. }) => {
                pool.release(buf);
                Err(NodeError::WouldBlock)
            }
            Err(_) => Err(NodeError::WouldBlock),
        }
    }

    /// Sends `request` to the control shard and waits for its answer.
    ///
    /// # Errors
    /// [`NodeError::Closed`] when the control shard's queue stays full or it does not answer in time.
    pub(crate) fn ask<T>(
        &self,
        request: impl FnOnce(std::sync::mpsc::SyncSender<T>) -> ControlRequest,
    ) -> Result<T, NodeError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut command = Command::Control(request(tx));
        let deadline = Instant::now() + CONTROL_REPLY_TIMEOUT;
        loop {
            match self.commander.send_command(ShardId::CONTROL, command) {
                Ok(()) => break,
                Err(back) if Instant::now() < deadline => {
                    command = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return Err(NodeError::Closed),
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| NodeError::Closed)
    }

    /// Sends `request` to the control shard without waiting for an answer.
    ///
    /// # Errors
    /// [`NodeError::WouldBlock`] if the control shard's queue is full.
    pub(crate) fn tell(&self, request: ControlRequest) -> Result<(), NodeError> {
        self.commander
            .send_command(ShardId::CONTROL, Command::Control(request))
            .map_err(|_| NodeError::WouldBlock)
    }
}
