//! The channel driver: one thread that runs every peer's [`PeerChannels`] for a node. Data shards
//! hand it the packets addressed to the channel port; application threads call into the same
//! table under its lock; the driver runs the timers and sends what the channels emit through the
//! node's [`Transmitter`], as UDP between mesh addresses on the channel port.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::mesh::channel::{
    ChannelConfig, ChannelDrop, ChannelDrops, ChannelEvent, ChannelId, PeerChannels,
};
use crate::node::NodeError;
use crate::node::transmit::Transmitter;
use crate::proto::ip;
use crate::runtime::Shared;

/// Peers with channel state at most; packets from further sources are dropped and counted.
const MAX_PEERS: usize = 4096;
/// How long the driver sleeps with no timer pending.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How soon it retries a packet the shards could not take.
const RETRY_WAIT: Duration = Duration::from_micros(200);

/// Every peer's channels.
#[derive(Debug)]
pub(crate) struct ChannelTable {
    config: ChannelConfig,
    peers: HashMap<IpAddr, PeerChannels>,
    /// Drops of packets that reached no peer's table, and of peers that were forgotten.
    unattributed: ChannelDrops,
    too_many_peers: u64,
}

impl ChannelTable {
    /// The channels with `peer`, made on first use (bounded).
    pub(crate) fn peer(&mut self, peer: IpAddr, now: Instant) -> Option<&mut PeerChannels> {
        if !self.peers.contains_key(&peer) {
            if self.peers.len() >= MAX_PEERS {
                self.too_many_peers += 1;
                return None;
            }
            self.peers.insert(peer, PeerChannels::new(self.config, now));
        }
        self.peers.get_mut(&peer)
    }

    /// The channels with `peer` if any exist.
    pub(crate) fn existing(&mut self, peer: IpAddr) -> Option<&mut PeerChannels> {
        self.peers.get_mut(&peer)
    }

    /// Drops by reason over every peer.
    pub(crate) fn drops(&self) -> ChannelDrops {
        let mut all = self.unattributed.clone();
        for p in self.peers.values() {
            all.merge(p.drops());
        }
        all
    }
}

/// What the node and the driver share.
#[derive(Debug)]
pub(crate) struct ChannelHub {
    table: Mutex<ChannelTable>,
    stop: AtomicBool,
    /// Packets the shards could not take and that were retried (the channel's own retransmission
    /// covers a packet only if it is lost on the way, never here).
    pub(crate) send_retries: AtomicU64,
}

impl ChannelHub {
    pub(crate) fn new(config: ChannelConfig) -> ChannelHub {
        ChannelHub {
            table: Mutex::new(ChannelTable {
                config,
                peers: HashMap::new(),
                unattributed: ChannelDrops::default(),
                too_many_peers: 0,
            }),
            stop: AtomicBool::new(false),
            send_retries: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, ChannelTable>, NodeError> {
        self.table.lock().map_err(|_| NodeError::Closed)
    }
}

/// The driver thread; stopping it (or dropping this) joins it.
#[derive(Debug)]
pub(crate) struct ChannelDriver {
    hub: Arc<ChannelHub>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ChannelDriver {
    pub(crate) fn start(
        hub: Arc<ChannelHub>,
        shared: Arc<Shared>,
        tx: Transmitter,
    ) -> std::io::Result<ChannelDriver> {
        let (h, s) = (hub.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("pnet-channels".into())
            .spawn(move || drive(&h, &s, &tx))?;
        Ok(ChannelDriver {
            hub,
            shared,
            thread: Some(thread),
        })
    }

    /// The table, for the application's calls.
    pub(crate) fn hub(&self) -> &ChannelHub {
        &self.hub
    }

    /// Wakes the driver (after the application queued something or read something).
    pub(crate) fn wake(&self) {
        self.shared.channel_wake.signal();
    }
}

impl Drop for ChannelDriver {
    fn drop(&mut self) {
        self.hub.stop.store(true, Ordering::Release);
        self.shared.channel_wake.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One packet the shards could not take yet.
struct Pending {
    to: SocketAddr,
    len: usize,
}

fn drive(hub: &ChannelHub, shared: &Shared, tx: &Transmitter) {
    let port = shared.channel_port;
    let mut out = vec![0u8; 65_536];
    let mut pending: Option<Pending> = None;
    let mut events = Vec::new();
    while !hub.stop.load(Ordering::Acquire) {
        shared.channel_wake.clear();
        let now = Instant::now();
        let Ok(mut table) = hub.table.lock() else {
            return;
        };
        while let Some(d) = shared.channel_deliveries.pop() {
            let udp = d
                .buf
                .as_slice()
                .get(d.range.clone())
                .and_then(ip::parse_udp);
            if let Some(udp) = udp {
                match table.peer(udp.src.ip(), now) {
                    Some(peer) => {
                        let _ = peer.handle_packet(now, udp.payload);
                    }
                    None => table.unattributed.count(ChannelDrop::UnknownChannel),
                }
            }
            shared.release(d.buf);
        }
        let mut blocked = false;
        if let Some(p) = &pending {
            match out
                .get(..p.len)
                .map(|packet| tx.try_send_udp(port, p.to, packet))
            {
                Some(Err(NodeError::WouldBlock)) => blocked = true,
                _ => pending = None,
            }
        }
        let mut next = None::<Instant>;
        for (&peer, channels) in table.peers.iter_mut() {
            channels.handle_timeout(now);
            while !blocked {
                let Some(len) = channels.poll_transmit(now, &mut out) else {
                    break;
                };
                let to = SocketAddr::new(peer, port);
                // Sent, or refused for good (no route any more): the channel retransmits or gives
                // up by itself. Only a full queue keeps the packet for another try.
                if let Some(Err(NodeError::WouldBlock)) = out
                    .get(..len)
                    .map(|packet| tx.try_send_udp(port, to, packet))
                {
                    hub.send_retries.fetch_add(1, Ordering::Relaxed);
                    pending = Some(Pending { to, len });
                    blocked = true;
                }
            }
            while let Some(e) = channels.poll_event() {
                events.push(match e {
                    ChannelEvent::Opened(id) => Some(Event::ChannelOpened {
                        channel: ChannelId { peer, id },
                    }),
                    ChannelEvent::Closed(id) => Some(Event::ChannelClosed {
                        channel: ChannelId { peer, id },
                    }),
                    ChannelEvent::Reset(id) => Some(Event::ChannelReset {
                        channel: ChannelId { peer, id },
                    }),
                    // Readable only wakes the application; an event per message would flood the queue.
                    ChannelEvent::Readable(_) => None,
                });
                if matches!(e, ChannelEvent::Readable(_)) {
                    shared.readiness.signal();
                }
            }
            if let Some(t) = channels.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        drop(table);
        for e in events.drain(..).flatten() {
            shared.push_event(e);
        }
        let wait = if blocked {
            RETRY_WAIT
        } else {
            next.map_or(IDLE_WAIT, |t| t.saturating_duration_since(Instant::now()))
        };
        if !wait.is_zero() {
            shared.channel_wake.wait(Some(wait));
        }
    }
}
