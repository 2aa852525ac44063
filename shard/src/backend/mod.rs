//! The I/O backends behind one trait: io_uring ([`uring`]) and batched `recvmmsg`/`sendmmsg`
//! ([`mmsg`]). Both receive into pool buffers, coalesce sends for UDP GSO and split nothing on receive
//! (a GRO super-datagram is handed up whole with its stride).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::buffers::Pools;
use crate::channel::Waker;
use crate::config::BackendKind;
use crate::handler::{RecvBatch, SendBatch};
use crate::stats::ShardStats;

pub(crate) mod cmsg;
pub(crate) mod gso;
pub(crate) mod mmsg;
pub(crate) mod sockaddr;
pub(crate) mod uring;

/// Whether the kernel offloads segmentation for this shard's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// UDP GSO on send.
    pub gso: bool,
    /// UDP GRO on receive.
    pub gro: bool,
}

impl Offload {
    /// On for the shard only when on for every one of its sockets.
    pub(crate) fn all(per_socket: &[Offload]) -> Offload {
        Offload {
            gso: !per_socket.is_empty() && per_socket.iter().all(|o| o.gso),
            gro: !per_socket.is_empty() && per_socket.iter().all(|o| o.gro),
        }
    }
}

/// A shard's sockets: one per listen address, non-blocking, in the order of the configuration.
#[derive(Debug)]
pub(crate) struct ShardSockets {
    pub(crate) sockets: Vec<UdpSocket>,
    pub(crate) locals: Vec<SocketAddr>,
}

impl ShardSockets {
    /// The socket to send to `to` from: the one of the same address family.
    pub(crate) fn for_destination(&self, to: &SocketAddr) -> Option<usize> {
        self.locals.iter().position(|l| l.is_ipv4() == to.is_ipv4())
    }
}

/// Everything a backend needs from the shard it serves.
#[derive(Debug)]
pub(crate) struct ShardIo<'a> {
    pub(crate) pools: &'a Pools,
    pub(crate) shard: usize,
    pub(crate) waker: &'a Waker,
    pub(crate) stats: &'a ShardStats,
}

/// One shard's I/O. Built on, and used only by, the shard's own thread (it may hold raw pointers into
/// its preallocated message headers), so it need not be `Send`.
pub(crate) trait Io {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// GSO/GRO state now (a refusal by the kernel turns one off for good, said once in the log).
    fn offload(&self) -> Offload;

    /// Waits until a socket is readable, the waker fires or `timeout` passes (`None`: no limit), then
    /// receives as many datagrams as `rx` has room for into buffers of this shard. Counts what it
    /// receives, what it drops as truncated, and when the pool is empty.
    fn recv(
        &mut self,
        ctx: &ShardIo<'_>,
        rx: &mut RecvBatch,
        timeout: Option<Duration>,
    ) -> io::Result<()>;

    /// Sends everything in `tx` (coalescing equal-size runs to one destination when GSO is on) and
    /// returns every buffer to its pool. Counts what was sent and what the kernel refused.
    fn send(&mut self, ctx: &ShardIo<'_>, tx: &mut SendBatch) -> io::Result<()>;
}

/// `poll(2)` on `fds` for readability; returns how many are ready (0 on timeout).
pub(crate) fn poll_readable(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let ms = match timeout {
        None => -1,
        Some(t) => i32::try_from(
            t.as_millis()
                .div_ceil(1)
                .max(if t.is_zero() { 0 } else { 1 }),
        )
        .unwrap_or(i32::MAX),
    };
    for fd in fds.iter_mut() {
        fd.events = libc::POLLIN;
        fd.revents = 0;
    }
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}
