//! The optional Linux TUN bridge of PNet Mesh: a TUN interface configured like wg-quick (`Address`,
//! `MTU`) whose packets travel through a [`Node`]'s public raw-IP API
//! ([`Node::try_send_packet`], [`Node::recv_packet_timeout`]), so the library itself never needs a
//! TUN device, root or any capability.
//!
//! The pump is written against [`PacketDevice`], so it is tested without privilege against an
//! in-memory device; [`open_tun`] gives the real one.
//!
//! ```no_run
//! use pnet_mesh::wg_quick::WgQuickConfig;
//! use pnet_mesh_tun::{Bridge, TunSettings, open_tun};
//!
//! let config = WgQuickConfig::load("wg0.conf")?;
//! let settings = TunSettings::from_wg_quick(&config, "pmtun0")?;
//! let node = config.node_builder().start()?;
//! let device = open_tun(&settings)?;
//! let bridge = Bridge::start(std::sync::Arc::new(node), std::sync::Arc::new(device))?;
//! # drop(bridge);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pnet_mesh::wg_quick::WgQuickConfig;
use pnet_mesh::{Node, NodeError};

/// The largest packet the pump moves (a TUN without offloads hands over one IP packet at a time).
const MAX_PACKET: usize = 65_535;
/// How long the mesh-side pump waits before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(100);

/// What the TUN interface is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunSettings {
    /// The interface name.
    pub name: String,
    /// Addresses with their prefix lengths (wg-quick `Address`).
    pub addresses: Vec<(IpAddr, u8)>,
    /// The MTU (wg-quick `MTU`, default 1420).
    pub mtu: u16,
}

impl TunSettings {
    /// The interface settings a wg-quick file asks for.
    ///
    /// # Errors
    /// A name that is empty or longer than 15 bytes, or a file without an `Address`.
    pub fn from_wg_quick(config: &WgQuickConfig, name: &str) -> Result<TunSettings, String> {
        if name.is_empty() || name.len() > 15 || name.contains('/') {
            return Err(format!(
                "--name `{name}`: an interface name is 1 to 15 bytes without `/`"
            ));
        }
        let addresses: Vec<(IpAddr, u8)> = config
            .interface
            .addresses
            .iter()
            .map(|a| (a.addr, a.prefix_len))
            .collect();
        if addresses.is_empty() {
            return Err(format!(
                "{}: [Interface] has no Address for the TUN interface",
                config.file
            ));
        }
        Ok(TunSettings {
            name: name.to_owned(),
            addresses,
            mtu: config.interface.mtu.unwrap_or(1420),
        })
    }
}

/// A device that moves whole IP packets (a TUN interface, or a test double).
pub trait PacketDevice: Send + Sync {
    /// Reads one packet into `buf`, waiting at most about `POLL` (`Ok(0)`: nothing yet).
    ///
    /// # Errors
    /// The device failed.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one packet.
    ///
    /// # Errors
    /// The device failed.
    fn send(&self, packet: &[u8]) -> io::Result<usize>;
    /// Wakes a `recv` blocked in another thread (the bridge is stopping).
    fn shutdown(&self) {}
}

/// A Linux TUN interface (tun-rs), without offloads. Non-blocking, read through a poll with a
/// timeout so a stopping bridge is never stuck in a read.
pub struct Tun {
    device: tun_rs::SyncDevice,
    poll: std::sync::Mutex<(mio::Poll, mio::Events)>,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun").finish_non_exhaustive()
    }
}

impl PacketDevice for Tun {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.device.recv(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
        let Ok(mut guard) = self.poll.lock() else {
            return Ok(0);
        };
        let (poll, events) = &mut *guard;
        match poll.poll(events, Some(POLL)) {
            Ok(()) | Err(_) => {}
        }
        match self.device.recv(buf) {
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(0)
            }
            other => other,
        }
    }

    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        loop {
            match self.device.send(packet) {
                // The interface's queue is full: the kernel drains it quickly.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                other => return other,
            }
        }
    }
}

/// Creates the TUN interface with `settings`' addresses and MTU, and brings it up.
///
/// # Errors
/// No `/dev/net/tun`, no CAP_NET_ADMIN, or an address the kernel refuses; the message says which.
pub fn open_tun(settings: &TunSettings) -> io::Result<Tun> {
    let mut builder = tun_rs::DeviceBuilder::new()
        .name(&settings.name)
        .mtu(settings.mtu);
    for (addr, prefix) in &settings.addresses {
        builder = match addr {
            IpAddr::V4(a) => builder.ipv4(*a, *prefix, None),
            IpAddr::V6(a) => builder.ipv6(*a, *prefix),
        };
    }
    let device = builder.build_sync().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot create TUN interface {} ({e}): it needs /dev/net/tun and CAP_NET_ADMIN",
                settings.name
            ),
        )
    })?;
    device.set_nonblocking(true)?;
    let poll = mio::Poll::new()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&device);
    poll.registry().register(
        &mut mio::unix::SourceFd(&fd),
        mio::Token(0),
        mio::Interest::READABLE,
    )?;
    Ok(Tun {
        device,
        poll: std::sync::Mutex::new((poll, mio::Events::with_capacity(4))),
    })
}

/// Packets moved and dropped by a running bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Packets read from the device and handed to the node.
    pub to_mesh: AtomicU64,
    /// Packets from the node written to the device.
    pub from_mesh: AtomicU64,
    /// Packets the node refused (no route, too large, queue full).
    pub to_mesh_dropped: AtomicU64,
    /// Packets the device refused.
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
                .spawn(move || {
                    let mut buf = vec![0u8; MAX_PACKET];
                    while !stop.load(Ordering::Acquire) {
                        let n = match device.recv(&mut buf) {
                            Ok(0) => continue,
                            Ok(n) => n,
                            Err(e) => {
                                tracing::warn!(error = %e, "TUN read failed; the bridge stops");
                                break;
                            }
                        };
                        let packet = buf.get(..n).unwrap_or_default();
                        match send_blocking(&node, packet, &stop) {
                            Ok(()) => stats.to_mesh.fetch_add(1, Ordering::Relaxed),
                            Err(_) => stats.to_mesh_dropped.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })?
        };
        let from_mesh = {
            let (device, stop, stats) = (device.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("pnet-tun-from-mesh".into())
                .spawn(move || {
                    let mut buf = vec![0u8; MAX_PACKET];
                    while !stop.load(Ordering::Acquire) {
                        match node.recv_packet_timeout(&mut buf, Some(POLL)) {
                            Ok((n, _peer)) => {
                                let ok = device.send(buf.get(..n).unwrap_or_default()).is_ok();
                                let c = if ok {
                                    &stats.from_mesh
                                } else {
                                    &stats.from_mesh_dropped
                                };
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(NodeError::TimedOut | NodeError::WouldBlock) => {}
                            Err(NodeError::TooLarge { .. }) => {
                                stats.from_mesh_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                })?
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

#[cfg(test)]
mod tests;
