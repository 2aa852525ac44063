//! The packet device the bridge pumps: the trait, and the Linux TUN interface (tun-rs) with or without
//! the kernel's offloads.
//!
//! With offloads the TUN carries a virtio-net header before every packet (`IFF_VNET_HDR`) and the
//! kernel may hand over one TCP or UDP *super-packet* of up to 64 KiB with a segment size instead of
//! many MTU-sized packets (`TUN_F_TSO4/6`, `TUN_F_USO4/6`), with a partial checksum
//! (`TUN_F_CSUM`). The bridge gives those to the node whole ([`Node::send_gso`](pnet_mesh::Node::send_gso)
//! splits and checksums them), and writes what the node delivers in batches that tun-rs coalesces
//! back into super-packets (GRO), so a TCP flow crosses the kernel in large pieces at both ends.

use std::io;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::TunSettings;

/// Bytes kept in front of every packet written to a device: room for the virtio-net header.
pub const HEADROOM: usize = tun_rs::VIRTIO_NET_HDR_LEN;

/// How long a read waits before the caller looks at its stop flag again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// What the node must do with a packet read from the device before it can travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// An ordinary packet, checksums complete.
    None,
    /// One packet whose TCP or UDP checksum is partial (pseudo-header only): complete it.
    Checksum,
    /// A super-packet to split into segments of this many payload bytes (checksums completed).
    Segment(u16),
    /// A frame the bridge cannot carry (an unknown GSO type, or no room for the header); dropped and
    /// counted.
    Refused,
}

/// One frame read from a device: the IP packet is `buf[start..start + len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound {
    /// Where the IP packet starts (after the virtio-net header, with offloads).
    pub start: usize,
    /// Its length.
    pub len: usize,
    /// What it needs before it is sent.
    pub offload: Offload,
}

/// A device that moves IP packets: a TUN interface, or a test double.
pub trait PacketDevice: Send + Sync {
    /// Reads one frame into `buf`, waiting at most about 100 ms (`Ok(None)`: nothing yet).
    ///
    /// # Errors
    /// The device failed.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Inbound>>;
    /// Writes a batch of packets, each one after [`HEADROOM`] bytes of its buffer; the device may
    /// coalesce them and may change the buffers. Returns how many packets it refused.
    ///
    /// # Errors
    /// The device failed (it is gone).
    fn send_batch(&self, batch: &mut [Vec<u8>]) -> io::Result<usize>;
    /// Whether reads may return [`Offload::Checksum`] and [`Offload::Segment`] frames, and writes
    /// are coalesced.
    fn offloads(&self) -> bool {
        false
    }
    /// The interface's MTU: packets from the mesh up to this size (at least 1500) are written.
    fn mtu(&self) -> usize {
        1500
    }
    /// Wakes a `recv` blocked in another thread (the bridge is stopping).
    fn shutdown(&self) {}
}

/// Decodes the virtio-net header at the start of a frame of `len` bytes read from an offloading TUN.
pub(crate) fn decode_vnet_frame(frame: &[u8]) -> Inbound {
    let (Some(&flags), Some(&gso_type), Some(gso_size)) = (
        frame.first(),
        frame.get(1),
        frame.get(4..6).map(|b| u16::from_le_bytes([b[0], b[1]])),
    ) else {
        return Inbound {
            start: 0,
            len: 0,
            offload: Offload::Refused,
        };
    };
    let len = frame.len().saturating_sub(HEADROOM);
    let offload = match gso_type & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_NONE if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 => Offload::Checksum,
        VIRTIO_NET_HDR_GSO_NONE => Offload::None,
        VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_UDP_L4
            if gso_size > 0 =>
        {
            Offload::Segment(gso_size)
        }
        _ => Offload::Refused,
    };
    Inbound {
        start: HEADROOM,
        len: if frame.len() > HEADROOM { len } else { 0 },
        offload: if frame.len() > HEADROOM {
            offload
        } else {
            Offload::Refused
        },
    }
}

/// A Linux TUN interface (tun-rs). Non-blocking, read through a poll with a timeout so a stopping
/// bridge is never stuck in a read.
pub struct Tun {
    device: tun_rs::SyncDevice,
    poll: Mutex<(mio::Poll, mio::Events)>,
    offloads: bool,
    mtu: u16,
    /// Coalescing state for writes with offloads; reused so a batch allocates nothing.
    gro: Mutex<tun_rs::GROTable>,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun")
            .field("offloads", &self.offloads)
            .finish_non_exhaustive()
    }
}

impl Tun {
    fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.device.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the kernel accepted the offloads (a virtio-net header with TSO/GSO).
    pub fn offloads(&self) -> bool {
        self.offloads
    }
}

impl PacketDevice for Tun {
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Inbound>> {
        let n = match self.read(buf)? {
            Some(n) => n,
            None => {
                if let Ok(mut guard) = self.poll.lock() {
                    let (poll, events) = &mut *guard;
                    // A failed or interrupted poll only means another read attempt.
                    let _ = poll.poll(events, Some(POLL));
                }
                match self.read(buf)? {
                    Some(n) => n,
                    None => return Ok(None),
                }
            }
        };
        let frame = buf.get(..n).unwrap_or_default();
        Ok(Some(if self.offloads {
            decode_vnet_frame(frame)
        } else {
            Inbound {
                start: 0,
                len: n,
                offload: Offload::None,
            }
        }))
    }

    fn send_batch(&self, batch: &mut [Vec<u8>]) -> io::Result<usize> {
        if self.offloads {
            let Ok(mut gro) = self.gro.lock() else {
                return Ok(batch.len());
            };
            // tun-rs writes every coalesced packet and reports the last failure; a refused write is a
            // drop (the kernel's queue was full), a vanished device ends the bridge.
            return match self.device.send_multiple(&mut gro, batch, HEADROOM) {
                Ok(_) => Ok(0),
                Err(e) if e.raw_os_error() == Some(libc_ebadfd()) => Err(e),
                Err(_) => Ok(1),
            };
        }
        let mut refused = 0;
        for packet in batch.iter() {
            let bytes = packet.get(HEADROOM..).unwrap_or_default();
            loop {
                match self.device.send(bytes) {
                    // The interface's queue is full: the kernel drains it quickly.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc_ebadfd()) => return Err(e),
                    Err(_) => {
                        refused += 1;
                        break;
                    }
                }
            }
        }
        Ok(refused)
    }

    fn offloads(&self) -> bool {
        self.offloads
    }

    fn mtu(&self) -> usize {
        usize::from(self.mtu)
    }
}

/// `EBADFD`: the TUN file descriptor is no longer usable.
const fn libc_ebadfd() -> i32 {
    77
}

/// Creates the TUN interface with `settings`' addresses and MTU (and offloads if asked for and the
/// kernel grants them), and brings it up.
///
/// # Errors
/// No `/dev/net/tun`, no CAP_NET_ADMIN, or an address the kernel refuses; the message says which.
pub fn open_tun(settings: &TunSettings) -> io::Result<Tun> {
    let build = |offload: bool| {
        let mut builder = tun_rs::DeviceBuilder::new()
            .name(&settings.name)
            .mtu(settings.mtu)
            .offload(offload);
        for (addr, prefix) in &settings.addresses {
            builder = match addr {
                IpAddr::V4(a) => builder.ipv4(*a, *prefix, None),
                IpAddr::V6(a) => builder.ipv6(*a, *prefix),
            };
        }
        builder.build_sync()
    };
    let device = match build(settings.offload) {
        Ok(d) => Ok(d),
        // A kernel that refuses TUNSETOFFLOAD still gives a plain TUN.
        Err(e) if settings.offload && e.kind() != io::ErrorKind::PermissionDenied => {
            tracing::warn!(error = %e, "TUN offloads refused; continuing without them");
            build(false)
        }
        Err(e) => Err(e),
    }
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot create TUN interface {} ({e}): it needs /dev/net/tun and CAP_NET_ADMIN",
                settings.name
            ),
        )
    })?;
    let offloads = device.tcp_gso();
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
        poll: Mutex::new((poll, mio::Events::with_capacity(4))),
        offloads,
        mtu: settings.mtu,
        gro: Mutex::new(tun_rs::GROTable::new()),
    })
}
