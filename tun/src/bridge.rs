//! The pump: two threads between a [`PacketDevice`] and a [`Node`], through the node's public raw-IP
//! API only, with backpressure both ways and counters.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pnet_mesh::{Node, NodeError};

use crate::device::{HEADROOM, Inbound, Offload, POLL, PacketDevice};

/// The largest frame read from a device: a 64 KiB super-packet after its virtio-net header.
const MAX_FRAME: usize = HEADROOM + 65_535;
/// Packets the mesh-side pump gathers before one device write (room for the kernel to coalesce).
const BATCH: usize = 64;
/// The smallest limit on packets taken from the node (a device's MTU when larger): peers send at
/// most their MTU; anything longer than the limit is dropped and counted.
const MIN_PACKET_LIMIT: usize = 1_500;

/// Packets moved and dropped by a running bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Packets read from the device and handed to the node (each segment of a super-packet counts).
    pub to_mesh: AtomicU64,
    /// Super-packets (TSO/GSO frames) read from the device and split by the node.
    pub super_packets: AtomicU64,
    /// Packets from the node written to the device.
    pub from_mesh: AtomicU64,
    /// Device writes (one per batch; with offloads the kernel receives them coalesced).
    pub device_writes: AtomicU64,
    /// Packets the node refused (no route, too large, malformed).
    pub to_mesh_dropped: AtomicU64,
    /// Packets the device refused, or too large to take from the node.
    pub from_mesh_dropped: AtomicU64,
}

/// Two pump threads between a device and a node; dropping it stops and joins them.
pub struct Bridge {
    device: Arc<dyn PacketDevice>,
    stop: Arc<AtomicBool>,
    stats: Arc<BridgeStats>,
    threads: Vec<JoinHandle<()>>,
}

impl Bridge {
    /// Starts pumping packets between `device` and `node` both ways.
    ///
    /// # Errors
    /// A thread that could not start.
    pub fn start(node: Arc<Node>, device: Arc<dyn PacketDevice>) -> io::Result<Bridge> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(BridgeStats::default());
        let to_mesh = {
            let (node, device, stop, stats) =
                (node.clone(), device.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("pnet-tun-to-mesh".into())
                .spawn(move || pump_to_mesh(&node, &*device, &stop, &stats))?
        };
        let from_mesh = {
            let (device, stop, stats) = (device.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("pnet-tun-from-mesh".into())
                .spawn(move || pump_from_mesh(&node, &*device, &stop, &stats))?
        };
        Ok(Bridge {
            device,
            stop,
            stats,
            threads: vec![to_mesh, from_mesh],
        })
    }

    /// The bridge's counters.
    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }
}

fn pump_to_mesh(node: &Node, device: &dyn PacketDevice, stop: &AtomicBool, stats: &BridgeStats) {
    let mut buf = vec![0u8; MAX_FRAME];
    while !stop.load(Ordering::Acquire) {
        let Inbound {
            start,
            len,
            offload,
        } = match device.recv(&mut buf) {
            Ok(None) => continue,
            Ok(Some(frame)) => frame,
            Err(e) => {
                tracing::warn!(error = %e, "TUN read failed; the bridge stops");
                break;
            }
        };
        let packet = buf.get(start..start + len).unwrap_or_default();
        let segment = match offload {
            Offload::None => {
                count(send_blocking(node, packet, stop), 1, stats);
                continue;
            }
            // One segment as large as the packet: the node completes its checksum.
            Offload::Checksum => usize::from(u16::MAX),
            Offload::Segment(size) => {
                stats.super_packets.fetch_add(1, Ordering::Relaxed);
                usize::from(size)
            }
            Offload::Refused => {
                stats.to_mesh_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        match node.send_gso(packet, segment) {
            Ok(n) => {
                stats.to_mesh.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                stats.to_mesh_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn count(result: Result<(), NodeError>, n: u64, stats: &BridgeStats) {
    let counter = if result.is_ok() {
        &stats.to_mesh
    } else {
        &stats.to_mesh_dropped
    };
    counter.fetch_add(n, Ordering::Relaxed);
}

fn pump_from_mesh(node: &Node, device: &dyn PacketDevice, stop: &AtomicBool, stats: &BridgeStats) {
    // Buffers keep their capacity from batch to batch: coalescing grows the first packet of a flow
    // in place, and nothing is allocated per packet once they have grown.
    let limit = HEADROOM + device.mtu().max(MIN_PACKET_LIMIT);
    let mut batch: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(limit)).collect();
    while !stop.load(Ordering::Acquire) {
        let mut filled = 0;
        while filled < BATCH {
            let Some(buf) = batch.get_mut(filled) else {
                break;
            };
            buf.resize(limit, 0);
            let wait = (filled == 0).then_some(POLL);
            let result = match wait {
                Some(t) => node.recv_packet_timeout(&mut buf[HEADROOM..], Some(t)),
                None => node.try_recv_packet(&mut buf[HEADROOM..]),
            };
            match result {
                Ok((n, _peer)) => {
                    buf.truncate(HEADROOM + n);
                    buf[..HEADROOM].fill(0);
                    filled += 1;
                }
                Err(NodeError::TooLarge { .. }) => {
                    stats.from_mesh_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(NodeError::TimedOut | NodeError::WouldBlock) => break,
                Err(_) => return,
            }
        }
        if filled == 0 {
            continue;
        }
        match device.send_batch(&mut batch[..filled]) {
            Ok(refused) => {
                stats.device_writes.fetch_add(1, Ordering::Relaxed);
                let refused = refused.min(filled);
                stats
                    .from_mesh
                    .fetch_add((filled - refused) as u64, Ordering::Relaxed);
                stats
                    .from_mesh_dropped
                    .fetch_add(refused as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "TUN write failed; the bridge stops");
                return;
            }
        }
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Hands `packet` to the node, waiting while its queue is full (backpressure to the TUN reader).
fn send_blocking(node: &Node, packet: &[u8], stop: &AtomicBool) -> Result<(), NodeError> {
    loop {
        match node.try_send_packet(packet) {
            Err(NodeError::WouldBlock) if !stop.load(Ordering::Acquire) => {
                std::thread::sleep(Duration::from_micros(50));
            }
            other => return other,
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.device.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
