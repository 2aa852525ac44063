//! The control shard: handshake messages in, initiations and cookie replies out, keypairs and other
//! commands to the data shards, notices back, timers, and the application's peer requests.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use pnet_mesh_shard::{HEADROOM, RecvBatch, SendBatch, ShardContext, ShardId};

use super::{Command, ControlRequest, Shared};
use crate::proto::path::RelayPath;
use crate::proto::under_load::{LoadMonitor, UNDER_LOAD_HANDSHAKES_PER_SECOND};
use crate::proto::wire::{self, MessageType, TransportHeader};
use crate::proto::{ControlPlane, DataCommand, Datagram, shard_of_index};

/// Commands held back because a data shard's channel was full, retried first on the next turn.
const BACKLOG_CAPACITY: usize = 4096;

pub(crate) struct ControlShard {
    control: ControlPlane,
    shared: Arc<Shared>,
    load: LoadMonitor,
    backlog: VecDeque<(u8, DataCommand)>,
    backlog_dropped: u64,
}

impl ControlShard {
    pub(crate) fn new(control: ControlPlane, shared: Arc<Shared>) -> Self {
        ControlShard {
            control,
            shared,
            load: LoadMonitor::new(UNDER_LOAD_HANDSHAKES_PER_SECOND),
            backlog: VecDeque::with_capacity(64),
            backlog_dropped: 0,
        }
    }

    pub(crate) fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        let data_shards = ctx.data_shards() as u8;
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            let stride = meta.stride.max(1);
            let Some(data) = rx.data_mut(i) else { continue };
            for segment in data.chunks_mut(stride) {
                if wire::peek_type(segment).ok() == Some(MessageType::Transport) {
                    // Misdelivered (no steering program, or a socket joining): to its owner.
                    if let Ok(h) = TransportHeader::parse(segment) {
                        let owner = shard_of_index(h.receiver, data_shards);
                        ctx.forward_copy(
                            ShardId::data(usize::from(owner)),
                            meta.from,
                            meta.local,
                            segment,
                        );
                        continue;
                    }
                }
                let under_load = self.load.handshake_received(now);
                self.control.set_under_load(under_load);
                if let Datagram::Reply { to, len } =
                    self.control.handle_handshake(now, meta.from, segment)
                    && let Some(reply) = segment.get(..len)
                {
                    // Type 3: a cookie reply (the other replies are handshake responses).
                    if reply.first() == Some(&3) {
                        self.shared
                            .cookie_replies_sent
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(path) = RelayPath::from_addr(&to) {
                        self.relay(ctx, path, reply);
                    } else {
                        let _ = tx.push(to, reply);
                    }
                }
            }
        }
        self.shared
            .under_load
            .store(self.control.is_under_load(), Ordering::Relaxed);
        self.shared.rate_limiter_entries.store(
            self.control.rate_limiter_entries() as u64,
            Ordering::Relaxed,
        );
        self.drain(ctx, now, tx);
    }

    pub(crate) fn on_command(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        command: Command,
        tx: &mut SendBatch,
    ) {
        match command {
            Command::Notice(notice) => self.control.handle_notice(now, notice),
            Command::Control(request) => self.on_request(now, request),
            // Only data shards seal or take keypairs.
            Command::Data(_) => {}
            Command::Send { buf, .. }
            | Command::SendTo { buf, .. }
            | Command::SendFrame { buf, .. }
            | Command::Relay { buf, .. } => self.shared.release(buf),
        }
        self.drain(ctx, now, tx);
    }

    fn on_request(&mut self, now: Instant, request: ControlRequest) {
        match request {
            ControlRequest::Connect(peer) => {
                let _ = self.control.connect(now, peer);
            }
            ControlRequest::Keepalive(peer) => self.control.send_keepalive(peer),
            ControlRequest::AddPeer(config, reply) => {
                let _ = reply.send(self.control.add_peer(*config));
                self.publish_routes();
            }
            ControlRequest::UpdatePeer(peer, config, reply) => {
                let _ = reply.send(self.control.update_peer(peer, *config));
                self.publish_routes();
            }
            ControlRequest::RemovePeer(peer, reply) => {
                let _ = reply.send(self.control.remove_peer(peer));
                self.publish_routes();
            }
            ControlRequest::SetEndpoint(peer, endpoint) => {
                self.control.set_endpoint(peer, endpoint)
            }
            ControlRequest::PeerStats(reply) => {
                let stats = self
                    .control
                    .peer_ids()
                    .filter_map(|id| self.control.peer_stats(id).map(|s| (id, s)))
                    .collect();
                let _ = reply.send(stats);
            }
        }
    }

    fn publish_routes(&self) {
        if let Ok(mut routes) = self.shared.routes.write() {
            *routes = self.control.routes().clone();
        }
        self.shared.rebuild_relay(self.control.peer_keys());
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.control.has_output() {
            // Queued with no input to drain it (the initiations of persistent-keepalive peers at
            // start): now.
            return Some(Instant::now());
        }
        // Activity the data shards publish can bring a derived deadline forward from "none": never
        // sleep longer than the control plane allows.
        let cap = Instant::now() + self.control.max_sleep();
        Some(self.control.poll_timeout().map_or(cap, |d| d.min(cap)))
    }

    pub(crate) fn on_timeout(
        &mut self,
        ctx: &mut ShardContext<'_, Command>,
        now: Instant,
        tx: &mut SendBatch,
    ) {
        self.control.handle_timeout(now);
        self.drain(ctx, now, tx);
    }

    /// Sends what the control plane produced: initiations, commands to the data shards, events.
    fn drain(&mut self, ctx: &mut ShardContext<'_, Command>, now: Instant, tx: &mut SendBatch) {
        let pool = ctx.buffer_pool();
        while tx.remaining() > 0 {
            let Some(mut buf) = pool.take_small(ShardId::CONTROL) else {
                break;
            };
            let Some(t) = buf
                .as_mut_slice()
                .get_mut(HEADROOM..)
                .and_then(|out| self.control.poll_transmit(now, out))
            else {
                pool.release(buf);
                break;
            };
            let range = HEADROOM..HEADROOM + t.len;
            match RelayPath::from_addr(&t.to) {
                Some(path) => self.relay_buf(ctx, path, buf, range),
                None => {
                    if let Err((_, buf)) = tx.push_buf(buf, range, t.to) {
                        pool.release(buf);
                        break;
                    }
                }
            }
        }
        while let Some((shard, command)) = self.backlog.pop_front() {
            if let Err(Command::Data(command)) =
                ctx.send_command(ShardId::data(usize::from(shard)), Command::Data(command))
            {
                self.backlog.push_front((shard, command));
                break;
            }
        }
        while let Some((shard, command)) = self.control.poll_command() {
            if !self.backlog.is_empty() {
                self.hold(shard, command);
                continue;
            }
            if let Err(Command::Data(command)) =
                ctx.send_command(ShardId::data(usize::from(shard)), Command::Data(command))
            {
                self.hold(shard, command);
            }
        }
        while let Some(event) = self.control.poll_event() {
            self.shared.push_event(event);
        }
        self.shared.publish_drops(0, self.control.drop_counters());
    }

    /// Hands `message` (a cookie reply) for a peer reached along `path` to the data shard that owns
    /// the relay's session, which frames it.
    fn relay(&self, ctx: &ShardContext<'_, Command>, path: RelayPath, message: &[u8]) {
        let pool = ctx.buffer_pool();
        let Some(mut buf) = pool.take_small(ShardId::CONTROL) else {
            return;
        };
        let range = HEADROOM..HEADROOM + message.len();
        match buf.as_mut_slice().get_mut(range.clone()) {
            Some(dst) => dst.copy_from_slice(message),
            None => return pool.release(buf),
        }
        self.relay_buf(ctx, path, buf, range);
    }

    fn relay_buf(
        &self,
        ctx: &ShardContext<'_, Command>,
        path: RelayPath,
        buf: pnet_mesh_shard::Buf,
        range: std::ops::Range<usize>,
    ) {
        let owner = ShardId::data(usize::from(self.control.peer_shard(path.relay)));
        if let Err(Command::Relay { buf, .. }) =
            ctx.send_command(owner, Command::Relay { buf, range, path })
        {
            self.shared.release(buf);
        }
    }

    fn hold(&mut self, shard: u8, command: DataCommand) {
        if self.backlog.len() < BACKLOG_CAPACITY {
            self.backlog.push_back((shard, command));
        } else {
            self.backlog_dropped += 1;
            self.shared
                .control_backlog_dropped
                .store(self.backlog_dropped, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
