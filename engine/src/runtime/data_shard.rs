//! A data shard: transport messages opened in place and handed to the application, application
//! packets sealed in place and sent, keypairs installed on command, notices to the control shard.

use std::sync::Arc;
use std::time::Instant;

use pnet_mesh_shard::{Buf, HEADROOM, RecvBatch, SendBatch, ShardContext, ShardId};

use super::{Command, Delivery, Shared};
use crate::PeerId;
use crate::proto::wire::{self, MessageType, TRANSPORT_HEADER_LEN, TransportHeader};
use crate::proto::{DataPath, Datagram, PacketBuf, shard_of_index};
use crate::proto::{ip, published};

pub(crate) struct DataShard {
    path: DataPath,
    shared: Arc<Shared>,
}

impl DataShard {
    pub(crate) fn new(path: DataPath, shared: Arc<Shared>) -> Self {
        DataShard { path, shared }
    }

    fn index(&self) -> usize {
        usize::from(self.path.shard())
    }

    pub(crate) fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        self.shared.pool.get_or_init(|| ctx.buffer_pool());
        let me = self.path.shard();
        let data_shards = ctx.data_shards() as u8;
        let counters = self.shared.data_counters.get(self.index());
        let mut delivered_any = false;
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            let stride = meta.stride.max(1);
            let single = meta.len <= stride;
            let Some((buf, range)) = rx.buffer_mut(i) else {
                continue;
            };
            let Some(data) = buf.get_mut(range.clone()) else {
                continue;
            };
            // Set when a single datagram's buffer is to be handed to the application as it is.
            let mut keep: Option<(core::ops::Range<usize>, PeerId)> = None;
            for (k, segment) in data.chunks_mut(stride).enumerate() {
                // Every segment is checked: a GRO batch is steered by its first datagram only.
                let owner = match wire::peek_type(segment) {
                    Ok(MessageType::Transport) => TransportHeader::parse(segment).ok().map(|h| {
                        ShardId::data(usize::from(shard_of_index(h.receiver, data_shards)))
                    }),
                    _ => Some(ShardId::CONTROL),
                };
                if let Some(owner) = owner
                    && owner != ShardId::data(usize::from(me))
                {
                    if let Some(c) = counters {
                        published::add(&c.misdelivered, 1);
                    }
                    ctx.forward_copy(owner, meta.from, meta.local, segment);
                    continue;
                }
                match self.path.handle_transport(now, meta.from, segment) {
                    Datagram::Deliver { peer, packet } => {
                        if let Some(c) = counters {
                            published::add(&c.opened, 1);
                        }
                        let at = range.start + k * stride + TRANSPORT_HEADER_LEN;
                        let packet_range = at..at + packet.len();
                        if single {
                            keep = Some((packet_range, peer));
                        } else {
                            delivered_any |= self.deliver_copy(peer, packet);
                        }
                    }
                    Datagram::Consumed => {
                        if let Some(c) = counters {
                            published::add(&c.opened, 1);
                        }
                    }
                    Datagram::Reply { .. } | Datagram::Dropped(_) => {}
                }
            }
            if let Some((packet_range, peer)) = keep
                && let Some((buf, _)) = rx.take(i)
            {
                delivered_any |= self.deliver(Delivery {
                    buf,
                    range: packet_range,
                    peer,
                });
            }
        }
        if delivered_any {
            self.shared.readiness.signal();
        }
        self.drain(ctx, now, tx);
    }

    /// Queues a packet for the application; drops and counts it when the queue is full.
    fn deliver(&self, delivery: Delivery) -> bool {
        let counters = self.shared.data_counters.get(self.index());
        let packet = delivery.buf.as_slice().get(delivery.range.clone());
        if let Some((queue, wake)) = packet
            .and_then(ip::udp_destination_port)
            .and_then(|port| self.shared.driver_for(port))
        {
            // For the channel or discovery driver; it wakes on its own descriptor, not the
            // application's.
            match queue.push(delivery) {
                Ok(()) => wake.signal(),
                Err(d) => {
                    if let Some(c) = counters {
                        published::add(&c.delivery_dropped, 1);
                    }
                    self.shared.release(d.buf);
                }
            }
            return false;
        }
        match self.shared.deliveries.push(delivery) {
            Ok(()) => {
                if let Some(c) = counters {
                    published::add(&c.delivered, 1);
                }
                true
            }
            Err(d) => {
                if let Some(c) = counters {
                    published::add(&c.delivery_dropped, 1);
                }
                self.shared.release(d.buf);
                false
            }
        }
    }

    /// A segment of a GRO batch: copied into a buffer of its own.
    fn deliver_copy(&self, peer: PeerId, packet: &[u8]) -> bool {
        let Some(pool) = self.shared.pool.get() else {
            return false;
        };
        let Some(mut buf) = pool.take(ShardId::data(self.index())) else {
            if let Some(c) = self.shared.data_counters.get(self.index()) {
                published::add(&c.delivery_dropped, 1);
            }
            return false;
        };
        let range = HEADROOM..HEADROOM + packet.len();
        match buf.as_mut_slice().get_mut(range.clone()) {
            Some(dst) => dst.copy_from_slice(packet),
            None => {
                pool.release(buf);
                return false;
            }
        }
        self.deliver(Delivery { buf, range, peer })
    }

    pub(crate) fn on_command(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        command: Command,
        tx: &mut SendBatch,
    ) {
        self.shared.pool.get_or_init(|| ctx.buffer_pool());
        match command {
            Command::Data(command) => self.path.handle_command(command),
            Command::Send { buf, len, peer } => self.send(now, buf, len, peer, tx),
            Command::Notice(_) | Command::Control(_) => {}
        }
        self.drain(ctx, now, tx);
    }

    /// Seals an application packet in its own buffer and queues it, or holds it for a handshake.
    fn send(&mut self, now: Instant, mut buf: Buf, len: usize, peer: PeerId, tx: &mut SendBatch) {
        let counters = self.shared.data_counters.get(self.index());
        let sealed = match PacketBuf::new(buf.as_mut_slice(), len) {
            Ok(mut pkt) => match self.path.send_packet(now, peer, &mut pkt) {
                Ok(Some(t)) => Some((t.to, pkt.range())),
                // Held (copied) until the handshake completes.
                Ok(None) => None,
                Err(e) => {
                    tracing::trace!(error = %e, "packet not sent");
                    if let Some(c) = counters {
                        published::add(&c.send_failed, 1);
                    }
                    None
                }
            },
            Err(_) => {
                if let Some(c) = counters {
                    published::add(&c.send_failed, 1);
                }
                None
            }
        };
        let Some((to, range)) = sealed else {
            self.shared.release(buf);
            return;
        };
        match tx.push_buf(buf, range, to) {
            Ok(()) => {
                if let Some(c) = counters {
                    published::add(&c.sealed, 1);
                }
            }
            Err((_, buf)) => {
                if let Some(c) = counters {
                    published::add(&c.send_failed, 1);
                }
                self.shared.release(buf);
            }
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub(crate) fn on_timeout(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        tx: &mut SendBatch,
    ) {
        self.drain(ctx, now, tx);
    }

    /// Sends what the data path produced (responses, released packets, keepalives) and its notices.
    fn drain(&mut self, ctx: &mut ShardContext<'_, Command>, now: Instant, tx: &mut SendBatch) {
        while tx.remaining() > 0 {
            let mut sent = false;
            let pushed = tx.push_with(|buf| {
                let out = buf.get_mut(HEADROOM..)?;
                let t = self.path.poll_transmit(now, out)?;
                sent = true;
                Some((t.to, HEADROOM..HEADROOM + t.len))
            });
            if pushed.is_err() || !sent {
                break;
            }
            if let Some(c) = self.shared.data_counters.get(self.index()) {
                published::add(&c.sealed, 1);
            }
        }
        while let Some(notice) = self.path.poll_notice() {
            if let Err(Command::Notice(notice)) =
                ctx.send_command(ShardId::CONTROL, Command::Notice(notice))
            {
                self.path.restore_notice(notice);
                if let Some(c) = self.shared.data_counters.get(self.index()) {
                    published::add(&c.channel_dropped, 1);
                }
                break;
            }
        }
        self.shared
            .publish_drops(self.index() + 1, self.path.drop_counters());
        if let Some(c) = self.shared.data_counters.get(self.index()) {
            c.retirements_lost.store(
                self.path.retirements_lost(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}
