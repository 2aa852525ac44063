//! The batched `recvmmsg`/`sendmmsg` backend: `poll` on the sockets and the shard's waker, then as
//! many datagrams per system call as the batch allows. Message headers, iovecs, addresses and control
//! buffers are allocated once; buffers come from the shard's pool.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tracing::warn;

use super::cmsg::{self, CmsgBuf};
use super::{Io, Offload, ShardIo, ShardSockets, gso, poll_readable, sockaddr};
use crate::buffers::Buf;
use crate::config::{BackendKind, HEADROOM};
use crate::handler::{Outgoing, RecvBatch, RecvMeta, SendBatch};
use crate::stats::ShardStats;

/// Storage for one batch of message headers, reused by every call.
struct Slots {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf>,
    leased: Vec<Option<Buf>>,
}

impl Slots {
    fn new(batch: usize) -> Self {
        // SAFETY: mmsghdr and iovec are plain old data; all-zero is a valid empty value.
        let (hdr, iov) = unsafe {
            (
                std::mem::zeroed::<libc::mmsghdr>(),
                std::mem::zeroed::<libc::iovec>(),
            )
        };
        Slots {
            hdrs: vec![hdr; batch],
            iovs: vec![iov; batch],
            addrs: vec![sockaddr::empty(); batch],
            cmsgs: vec![CmsgBuf::default(); batch],
            leased: (0..batch).map(|_| None).collect(),
        }
    }
}

/// The mmsg backend of one shard.
pub(crate) struct MmsgIo {
    sockets: ShardSockets,
    offload: Vec<Offload>,
    waker_fd: RawFd,
    batch: usize,
    slots: Slots,
    pollfds: Vec<libc::pollfd>,
    scratch: Vec<Outgoing>,
}

impl std::fmt::Debug for MmsgIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgIo")
            .field("sockets", &self.sockets.locals)
            .field("batch", &self.batch)
            .finish()
    }
}

impl MmsgIo {
    /// Wraps the shard's sockets; turns GRO on where asked and the kernel allows, and GSO on where
    /// asked and supported.
    pub(crate) fn new(
        sockets: ShardSockets,
        waker_fd: RawFd,
        batch: usize,
        send_capacity: usize,
        gso: bool,
        gro: bool,
    ) -> Self {
        let offload = sockets
            .sockets
            .iter()
            .map(|s| {
                let fd = s.as_raw_fd();
                let gro = gro && match gso::enable_gro(fd) {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(error = %e, "UDP GRO refused by the kernel; receiving datagrams one by one");
                        false
                    }
                };
                Offload {
                    gso: gso && gso::gso_supported(fd),
                    gro,
                }
            })
            .collect();
        let pollfds = (0..=sockets.sockets.len())
            .map(|_| libc::pollfd {
                fd: -1,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        MmsgIo {
            sockets,
            offload,
            waker_fd,
            batch,
            slots: Slots::new(batch),
            pollfds,
            scratch: Vec::with_capacity(send_capacity),
        }
    }

    /// Receives from socket `s` until it is drained or `rx` is full.
    fn recv_socket(&mut self, ctx: &ShardIo<'_>, s: usize, rx: &mut RecvBatch) -> io::Result<()> {
        let Some(socket) = self.sockets.sockets.get(s) else {
            return Ok(());
        };
        let fd = socket.as_raw_fd();
        let local = self
            .sockets
            .locals
            .get(s)
            .copied()
            .unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
        let gro = self.offload.get(s).is_some_and(|o| o.gro);
        while rx.has_room() {
            let want = rx.room().min(self.batch);
            let mut n = 0;
            while n < want {
                let Some(mut buf) = ctx.pools.take(ctx.shard) else {
                    ShardStats::add(&ctx.stats.no_buffer, 1);
                    break;
                };
                let cap = buf.data_capacity();
                let data = buf.as_mut_slice();
                self.slots.iovs[n] = libc::iovec {
                    iov_base: data[HEADROOM..].as_mut_ptr().cast(),
                    iov_len: cap,
                };
                self.slots.leased[n] = Some(buf);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            for i in 0..n {
                let hdr = &mut self.slots.hdrs[i];
                hdr.msg_len = 0;
                let m = &mut hdr.msg_hdr;
                m.msg_name = (&mut self.slots.addrs[i] as *mut libc::sockaddr_storage).cast();
                m.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                m.msg_iov = &mut self.slots.iovs[i];
                m.msg_iovlen = 1;
                m.msg_flags = 0;
                if gro {
                    cmsg::prepare_recv(m, &mut self.slots.cmsgs[i]);
                } else {
                    cmsg::clear(m);
                }
            }
            // SAFETY: the first `n` headers point at iovecs, addresses and control buffers owned by
            // `self.slots`, and each iovec at the data area of a buffer held in `self.slots.leased`;
            // all stay alive and unmoved for the duration of the call.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.slots.hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            let received = if r < 0 {
                let e = io::Error::last_os_error();
                self.release_leased(ctx, 0);
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => return Ok(()),
                    // An ICMP error from an earlier send surfaces here: not fatal for the socket.
                    _ if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNREFUSED)
                            | Some(libc::EHOSTUNREACH)
                            | Some(libc::ENETUNREACH)
                    ) =>
                    {
                        continue;
                    }
                    _ => return Err(e),
                }
            } else {
                r as usize
            };
            let mut segments = 0u64;
            let mut bytes = 0u64;
            for i in 0..received {
                let Some(buf) = self.slots.leased[i].take() else {
                    continue;
                };
                let hdr = &self.slots.hdrs[i];
                let len = hdr.msg_len as usize;
                if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    ShardStats::add(&ctx.stats.rx_truncated, 1);
                    ctx.pools.release(buf);
                    continue;
                }
                let Some(from) = sockaddr::decode(&self.slots.addrs[i]) else {
                    ctx.pools.release(buf);
                    continue;
                };
                let stride = if gro {
                    cmsg::gro_segment_size(&hdr.msg_hdr).unwrap_or(len)
                } else {
                    len
                };
                let meta = RecvMeta {
                    from,
                    local,
                    len,
                    stride: stride.min(len).max(1),
                };
                segments += meta.segments() as u64;
                bytes += len as u64;
                rx.push(buf, meta);
            }
            self.release_leased(ctx, received);
            ShardStats::add(&ctx.stats.rx_datagrams, segments);
            ShardStats::add(&ctx.stats.rx_bytes, bytes);
            ShardStats::add(&ctx.stats.rx_batches, 1);
            if received < n {
                return Ok(());
            }
        }
        Ok(())
    }

    fn release_leased(&mut self, ctx: &ShardIo<'_>, from: usize) {
        for slot in self.slots.leased.iter_mut().skip(from) {
            if let Some(buf) = slot.take() {
                ctx.pools.release(buf);
            }
        }
    }

    /// Sends `entries[start..end]` (all for socket `s`); returns how many the kernel took, or the error
    /// of the first one it refused.
    fn sendmmsg(&mut self, s: usize, entries: &mut [Outgoing]) -> Result<usize, io::Error> {
        let Some(socket) = self.sockets.sockets.get(s) else {
            return Ok(entries.len());
        };
        let fd = socket.as_raw_fd();
        let n = entries.len().min(self.batch);
        for (i, out) in entries.iter_mut().take(n).enumerate() {
            let len = out.range.len();
            let data = &mut out.buf.as_mut_slice()[out.range.clone()];
            self.slots.iovs[i] = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: len,
            };
            let namelen = sockaddr::encode(&out.to, &mut self.slots.addrs[i]);
            let hdr = &mut self.slots.hdrs[i];
            hdr.msg_len = 0;
            let m = &mut hdr.msg_hdr;
            m.msg_name = (&mut self.slots.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_namelen = namelen;
            m.msg_iov = &mut self.slots.iovs[i];
            m.msg_iovlen = 1;
            m.msg_flags = 0;
            match out.segment_size {
                Some(seg) if seg < len => {
                    cmsg::set_udp_segment(m, &mut self.slots.cmsgs[i], seg as u16)
                }
                _ => cmsg::clear(m),
            }
        }
        loop {
            // SAFETY: the first `n` headers point at iovecs, addresses and control buffers in
            // `self.slots` and each iovec at bytes of a buffer in `entries`; all outlive the call.
            let r =
                unsafe { libc::sendmmsg(fd, self.slots.hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // The socket buffer is full: wait for room (bounded), then try again.
                    let mut pfd = [libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    }];
                    // SAFETY: a valid one-element pollfd array for the duration of the call.
                    let ready = unsafe { libc::poll(pfd.as_mut_ptr(), 1, 100) };
                    if ready <= 0 {
                        return Err(e);
                    }
                }
                _ => return Err(e),
            }
        }
    }

    /// Sends one coalesced entry segment by segment (GSO was refused).
    fn send_segments(&mut self, s: usize, out: &Outgoing, stats: &ShardStats) {
        let Some(socket) = self.sockets.sockets.get(s) else {
            return;
        };
        let seg = out.segment_size.unwrap_or(out.range.len()).max(1);
        let Some(data) = out.buf.as_slice().get(out.range.clone()) else {
            return;
        };
        for chunk in data.chunks(seg) {
            match socket.send_to(chunk, out.to) {
                Ok(n) => {
                    ShardStats::add(&stats.tx_datagrams, 1);
                    ShardStats::add(&stats.tx_bytes, n as u64);
                }
                Err(_) => ShardStats::add(&stats.tx_errors, 1),
            }
        }
    }
}

impl Io for MmsgIo {
    fn kind(&self) -> BackendKind {
        BackendKind::Mmsg
    }

    fn offload(&self) -> Offload {
        Offload::all(&self.offload)
    }

    fn recv(
        &mut self,
        ctx: &ShardIo<'_>,
        rx: &mut RecvBatch,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.pollfds[0].fd = self.waker_fd;
        for (i, s) in self.sockets.sockets.iter().enumerate() {
            self.pollfds[i + 1].fd = s.as_raw_fd();
        }
        if poll_readable(&mut self.pollfds, timeout)? == 0 {
            return Ok(());
        }
        if self.pollfds[0].revents != 0 {
            ctx.waker.drain();
        }
        for s in 0..self.sockets.sockets.len() {
            if self.pollfds[s + 1].revents != 0 {
                self.recv_socket(ctx, s, rx)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, ctx: &ShardIo<'_>, tx: &mut SendBatch) -> io::Result<()> {
        if self.offload.iter().any(|o| o.gso) {
            gso::coalesce(&mut tx.entries, &mut self.scratch, ctx.pools, ctx.shard);
        }
        let mut entries = std::mem::take(&mut tx.entries);
        let mut start = 0;
        while start < entries.len() {
            let Some(s) = self.sockets.for_destination(&entries[start].to) else {
                ShardStats::add(&ctx.stats.tx_errors, 1);
                start += 1;
                continue;
            };
            // A run of entries for the same socket.
            let mut end = start + 1;
            while end < entries.len() && self.sockets.for_destination(&entries[end].to) == Some(s) {
                end += 1;
            }
            match self.sendmmsg(s, &mut entries[start..end]) {
                Ok(sent) => {
                    for out in &entries[start..start + sent] {
                        let segs = out
                            .segment_size
                            .map_or(1, |seg| out.range.len().div_ceil(seg.max(1)));
                        ShardStats::add(&ctx.stats.tx_datagrams, segs as u64);
                        ShardStats::add(&ctx.stats.tx_bytes, out.range.len() as u64);
                        if segs > 1 {
                            ShardStats::add(&ctx.stats.tx_gso_sends, 1);
                        }
                    }
                    start += sent;
                    if sent == 0 {
                        ShardStats::add(&ctx.stats.tx_errors, 1);
                        start += 1;
                    }
                }
                Err(e) => {
                    let failed = &entries[start];
                    let coalesced = failed
                        .segment_size
                        .is_some_and(|seg| seg < failed.range.len());
                    if coalesced && gso::is_gso_refusal(&e) {
                        if let Some(o) = self.offload.get_mut(s) {
                            if o.gso {
                                warn!(error = %e, socket = %self.sockets.locals[s], "UDP GSO refused by the kernel; sending datagrams one by one");
                            }
                            o.gso = false;
                        }
                        ctx.stats
                            .gso
                            .store(false, std::sync::atomic::Ordering::Relaxed);
                        self.send_segments(s, &entries[start], ctx.stats);
                    } else {
                        let segs = failed
                            .segment_size
                            .map_or(1, |seg| failed.range.len().div_ceil(seg.max(1)));
                        ShardStats::add(&ctx.stats.tx_errors, segs as u64);
                    }
                    start += 1;
                }
            }
        }
        for out in entries.drain(..) {
            ctx.pools.release(out.buf);
        }
        tx.entries = entries;
        Ok(())
    }
}
