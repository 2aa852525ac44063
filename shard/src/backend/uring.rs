//! The io_uring backend: a small ring per shard that keeps receives in flight on every socket and one
//! read on the shard's waker, so a single `io_uring_enter` waits for datagrams, wake-ups and the
//! timeout at once.
//!
//! - **Receive.** Each socket has a fixed number of `RecvMsg` requests in flight, one per slot of a
//!   slab allocated at construction (message header, iovec, address and control buffer per slot), each
//!   on a pool buffer. A buffer stays leased to the ring until its completion is reaped; completions
//!   are queued in arrival order and handed up as `rx` has room, and each delivered slot is re-armed
//!   with a fresh buffer from the pool (or left idle, counted as `no_buffer`, until one comes back).
//! - **Send.** Synchronous from the caller's view: one `SendMsg` per datagram (or per GSO
//!   super-datagram), at most half the ring at a time, and `send` returns once every completion is
//!   reaped, when the buffers go back to the pool. A GSO refusal turns GSO off for that socket for
//!   good and resends the refused datagrams one segment at a time, as the mmsg backend does.
//! - **Bounds.** Receives, the waker read and one send chunk together never exceed the ring's size,
//!   so the completion queue (twice the ring) cannot overflow. Nothing is allocated in steady state.
//! - **Shutdown.** `Drop` cancels every request still in flight and waits for its completion before
//!   any buffer or header is freed; if the kernel does not confirm in time, the memory is leaked
//!   rather than freed under it.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};
use tracing::warn;

use super::cmsg::{self, CmsgBuf};
use super::{Io, Offload, ShardIo, ShardSockets, gso, sockaddr};
use crate::buffers::{Buf, Pools};
use crate::config::{BackendKind, HEADROOM};
use crate::handler::{Outgoing, RecvBatch, RecvMeta, SendBatch};
use crate::stats::ShardStats;

pub(crate) mod probe;
mod send;

use probe::create_ring;
pub(crate) use probe::probe;

/// Smaller rings are raised to this, so that receives, the waker and a send chunk all fit.
const MIN_ENTRIES: u32 = 8;
/// How long `Drop` waits for the kernel to confirm the cancellation of requests in flight.
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// How soon a shard whose receive slots found the pool empty looks for returned buffers again.
const STARVED_RETRY: Duration = Duration::from_micros(200);

// `user_data`: the kind of request in the high 32 bits, its slot in the low 32.
const KIND_MASK: u64 = !0xffff_ffff;
const KIND_RECV: u64 = 1 << 32;
const KIND_SEND: u64 = 2 << 32;
const KIND_WAKER: u64 = 3 << 32;
const KIND_CANCEL: u64 = 4 << 32;

/// Queues `sqe`, submitting first if the submission queue is full.
///
/// # Safety
/// Everything `sqe` points at (message header, iovec, address, control buffer, data) must stay valid
/// and in place until its completion is reaped.
unsafe fn push(ring: &mut IoUring, sqe: &squeue::Entry) -> io::Result<()> {
    // SAFETY: the caller keeps what `sqe` points at alive and unmoved until its completion.
    if unsafe { ring.submission().push(sqe) }.is_ok() {
        return Ok(());
    }
    submit(ring)?;
    // SAFETY: the same entry, under the same contract: its targets outlive its completion.
    unsafe { ring.submission().push(sqe) }
        .map_err(|_| io::Error::new(io::ErrorKind::WouldBlock, "io_uring submission queue full"))
}

/// Hands the queued requests to the kernel. EINTR, EBUSY (completions to reap first) and EAGAIN (the
/// kernel short of memory) leave them queued for the next enter, so they are not errors here.
fn submit(ring: &mut IoUring) -> io::Result<()> {
    match ring.submit() {
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// Errors on a receive that say nothing about the socket itself (ICMP reports, memory pressure): the
/// slot is simply re-armed.
fn is_transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNREFUSED
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::ENETDOWN
            | libc::EAGAIN
            | libc::EINTR
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::ECANCELED
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    /// Not in the ring; `buf` may hold a buffer to re-arm with.
    Idle,
    /// A `RecvMsg` on `buf` is in the ring.
    InFlight,
    /// Completed with this many bytes, queued in `ready`, not yet handed up.
    Ready(usize),
}

/// One receive request's storage. The slab holding it is allocated once and never resized, so the
/// kernel's pointers into it stay valid.
struct RecvSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    name: libc::sockaddr_storage,
    cmsg: CmsgBuf,
    socket: usize,
    buf: Option<Buf>,
    state: RecvState,
}

/// One send request's storage.
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    name: libc::sockaddr_storage,
    cmsg: CmsgBuf,
    /// Index of the entry in the batch being sent.
    entry: usize,
    socket: usize,
    segments: usize,
    bytes: usize,
    gso: bool,
    in_flight: bool,
    result: Option<i32>,
}

fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain old data (pointers and integers); all-zero is a valid empty header.
    unsafe { std::mem::zeroed() }
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

/// The io_uring backend of one shard.
pub(crate) struct UringIo {
    // Field order matters: the ring is declared first so that it is dropped (closed) first, before the
    // slabs and buffers the kernel may point into. `Drop` also cancels every request and waits for
    // its completion before anything is freed, and leaks the memory if the kernel does not confirm.
    ring: IoUring,
    sockets: ShardSockets,
    offload: Vec<Offload>,
    waker_fd: RawFd,
    /// The eventfd read's 8-byte target; boxed so its address never changes.
    waker_buf: Box<u64>,
    waker_armed: bool,
    /// The waker fired since the last `recv` returned.
    woken: bool,
    /// A receive slot found the pool empty at the last arming.
    starved: bool,
    recv: Box<[RecvSlot]>,
    /// Completed receive slots in completion order (capacity: every slot, so it never grows).
    ready: VecDeque<usize>,
    send: Box<[SendSlot]>,
    /// Entries whose GSO send was refused, to resend one segment at a time.
    retry: Vec<usize>,
    scratch: Vec<Outgoing>,
    /// Buffers of a send that failed while some of its requests were still in the ring; returned to
    /// the pool once those complete.
    stranded: Vec<Outgoing>,
    in_flight: usize,
    sends_in_flight: usize,
    /// A receive or waker completion failed in a way re-arming cannot fix; reported by the next `recv`.
    fatal: Option<io::Error>,
    /// The shard's pools, learnt on the first call, so `Drop` can return leased buffers.
    pools: Option<Pools>,
}

impl fmt::Debug for UringIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringIo")
            .field("sockets", &self.sockets.locals)
            .field("recv_slots", &self.recv.len())
            .field("send_slots", &self.send.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl UringIo {
    /// A ring of `entries` (at least 8) for `sockets` and the shard's waker eventfd. Each socket gets up
    /// to `batch` receives in flight (fewer if the ring is small: receives and the waker take at most
    /// half of it, a send chunk the other half). GRO is turned on where asked and the kernel allows,
    /// GSO where asked and supported.
    ///
    /// # Errors
    /// Setting up the ring failed (after one retry on ENOMEM), or the kernel lacks timed waits.
    pub(crate) fn new(
        sockets: ShardSockets,
        waker_fd: RawFd,
        entries: u32,
        batch: usize,
        gso: bool,
        gro: bool,
    ) -> io::Result<UringIo> {
        let entries = entries.max(MIN_ENTRIES);
        let ring = create_ring(entries)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks IORING_FEAT_EXT_ARG (timed waits need Linux 5.11 or later)",
            ));
        }
        let offload = sockets
            .sockets
            .iter()
            .zip(&sockets.locals)
            .map(|(s, local)| {
                let fd = s.as_raw_fd();
                let gro = gro
                    && match gso::enable_gro(fd) {
                        Ok(()) => true,
                        Err(e) => {
                            warn!(error = %e, socket = %local, "UDP GRO refused by the kernel; receiving datagrams one by one");
                            false
                        }
                    };
                Offload {
                    gso: gso && gso::gso_supported(fd),
                    gro,
                }
            })
            .collect();

        let half = entries as usize / 2;
        let n_sockets = sockets.sockets.len();
        // One entry of the receive half is the waker's.
        let per_socket = batch.min(half.saturating_sub(1) / n_sockets.max(1)).max(1);
        let recv: Box<[RecvSlot]> = (0..n_sockets * per_socket)
            .map(|i| RecvSlot {
                hdr: zeroed_msghdr(),
                iov: empty_iovec(),
                name: sockaddr::empty(),
                cmsg: CmsgBuf::default(),
                socket: i / per_socket,
                buf: None,
                state: RecvState::Idle,
            })
            .collect();
        let send: Box<[SendSlot]> = (0..half.max(1))
            .map(|_| SendSlot {
                hdr: zeroed_msghdr(),
                iov: empty_iovec(),
                name: sockaddr::empty(),
                cmsg: CmsgBuf::default(),
                entry: 0,
                socket: 0,
                segments: 0,
                bytes: 0,
                gso: false,
                in_flight: false,
                result: None,
            })
            .collect();
        Ok(UringIo {
            ring,
            sockets,
            offload,
            waker_fd,
            waker_buf: Box::new(0),
            waker_armed: false,
            woken: false,
            starved: false,
            ready: VecDeque::with_capacity(recv.len()),
            recv,
            retry: Vec::with_capacity(send.len()),
            send,
            scratch: Vec::with_capacity(batch),
            stranded: Vec::new(),
            in_flight: 0,
            sends_in_flight: 0,
            fatal: None,
            pools: None,
        })
    }

    /// Remembers the shard's pools (an `Arc` clone, once) so `Drop` can return leased buffers.
    fn adopt(&mut self, ctx: &ShardIo<'_>) {
        if self.pools.is_none() {
            self.pools = Some(ctx.pools.clone());
        }
    }

    /// Puts every idle receive slot back in the ring (with its own buffer, or a fresh one from the
    /// pool) and re-arms the waker read. Counts `no_buffer` once if the pool ran dry.
    fn arm_idle(&mut self, ctx: &ShardIo<'_>) -> io::Result<()> {
        let mut dry = false;
        for (i, slot) in self.recv.iter_mut().enumerate() {
            if slot.state != RecvState::Idle {
                continue;
            }
            let buf = match slot.buf.take() {
                Some(buf) => buf,
                None => match ctx.pools.take(ctx.shard) {
                    Some(buf) => buf,
                    None => {
                        dry = true;
                        continue;
                    }
                },
            };
            let Some(fd) = self
                .sockets
                .sockets
                .get(slot.socket)
                .map(AsRawFd::as_raw_fd)
            else {
                ctx.pools.release(buf);
                continue;
            };
            arm_recv(&mut self.ring, slot, i, fd, buf)?;
            self.in_flight += 1;
        }
        if dry {
            ShardStats::add(&ctx.stats.no_buffer, 1);
        }
        self.starved = dry;
        if !self.waker_armed {
            let sqe = opcode::Read::new(
                types::Fd(self.waker_fd),
                (&mut *self.waker_buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(KIND_WAKER);
            // SAFETY: the read targets `*self.waker_buf`, a boxed u64 whose address never changes and
            // which is freed only after this request's completion is reaped (or leaked, see `Drop`).
            unsafe { push(&mut self.ring, &sqe) }?;
            self.waker_armed = true;
            self.in_flight += 1;
        }
        Ok(())
    }

    /// Takes every completion the kernel has posted.
    fn reap(&mut self) {
        loop {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            let index = (cqe.user_data() & !KIND_MASK) as usize;
            let res = cqe.result();
            match cqe.user_data() & KIND_MASK {
                KIND_RECV => self.complete_recv(index, res),
                KIND_SEND => {
                    if let Some(slot) = self.send.get_mut(index)
                        && slot.in_flight
                    {
                        slot.in_flight = false;
                        slot.result = Some(res);
                        self.sends_in_flight -= 1;
                        self.in_flight -= 1;
                    }
                }
                KIND_WAKER if self.waker_armed => {
                    self.waker_armed = false;
                    self.in_flight -= 1;
                    // The read already consumed the eventfd's counter: that is the drain.
                    if res >= 0 {
                        self.woken = true;
                    } else if !is_transient(-res) {
                        self.fatal = Some(io::Error::from_raw_os_error(-res));
                    }
                }
                // KIND_CANCEL acknowledges a cancellation (the cancelled request posts its own
                // completion); anything else is stale.
                _ => {}
            }
        }
    }

    fn complete_recv(&mut self, index: usize, res: i32) {
        let Some(slot) = self.recv.get_mut(index) else {
            return;
        };
        if slot.state != RecvState::InFlight {
            return;
        }
        self.in_flight -= 1;
        if let Ok(len) = usize::try_from(res) {
            slot.state = RecvState::Ready(len);
            self.ready.push_back(index);
        } else {
            // The buffer stays in the slot and goes back into the ring with it.
            slot.state = RecvState::Idle;
            if !is_transient(-res) {
                self.fatal = Some(io::Error::from_raw_os_error(-res));
            }
        }
    }

    /// Submits what is queued and waits for one completion or the timeout.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            None => self.ring.submit_and_wait(1),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            // ETIME: the timeout passed. EINTR: a signal. EBUSY/EAGAIN: completions to reap first or
            // the kernel short of memory; the caller reaps and comes back.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Hands completed receives to `rx` in completion order while it has room.
    fn deliver(&mut self, ctx: &ShardIo<'_>, rx: &mut RecvBatch) {
        let (mut entries, mut segments, mut bytes) = (0u64, 0u64, 0u64);
        while rx.has_room() {
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            let Some(slot) = self.recv.get_mut(i) else {
                continue;
            };
            let RecvState::Ready(len) = slot.state else {
                continue;
            };
            // Idle: `arm_idle` puts the slot back in the ring, with its buffer if it kept it.
            slot.state = RecvState::Idle;
            let Some(buf) = slot.buf.take() else { continue };
            if slot.hdr.msg_flags & libc::MSG_TRUNC != 0 {
                ShardStats::add(&ctx.stats.rx_truncated, 1);
                slot.buf = Some(buf);
                continue;
            }
            let Some(from) = sockaddr::decode(&slot.name) else {
                slot.buf = Some(buf);
                continue;
            };
            let local = self
                .sockets
                .locals
                .get(slot.socket)
                .copied()
                .unwrap_or(from);
            let stride = cmsg::gro_segment_size(&slot.hdr)
                .unwrap_or(len)
                .min(len)
                .max(1);
            let meta = RecvMeta {
                from,
                local,
                len,
                stride,
            };
            entries += 1;
            segments += meta.segments() as u64;
            bytes += len as u64;
            rx.push(buf, meta);
        }
        if entries > 0 {
            ShardStats::add(&ctx.stats.rx_datagrams, segments);
            ShardStats::add(&ctx.stats.rx_bytes, bytes);
            ShardStats::add(&ctx.stats.rx_batches, 1);
        }
    }

    /// Cancels every request in the ring and waits (up to [`CANCEL_GRACE`]) for their completions.
    fn cancel_all(&mut self) {
        let recv = self
            .recv
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == RecvState::InFlight)
            .map(|(i, _)| KIND_RECV | i as u64);
        let send = self
            .send
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_flight)
            .map(|(i, _)| KIND_SEND | i as u64);
        let waker = self.waker_armed.then_some(KIND_WAKER);
        let targets: Vec<u64> = recv.chain(send).chain(waker).collect();
        for target in targets {
            let sqe = opcode::AsyncCancel::new(target)
                .build()
                .user_data(KIND_CANCEL);
            // SAFETY: a cancellation carries no pointer, only the user_data of the request to cancel.
            if unsafe { push(&mut self.ring, &sqe) }.is_err() {
                break;
            }
        }
        let deadline = Instant::now() + CANCEL_GRACE;
        while self.in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if self
                .wait(Some((deadline - now).min(Duration::from_millis(50))))
                .is_err()
            {
                break;
            }
            self.reap();
        }
    }
}

/// Points `slot`'s header at its own iovec, address and control storage and at `buf`'s data area,
/// and queues a `RecvMsg` for it. On failure the buffer stays in the slot, idle.
fn arm_recv(
    ring: &mut IoUring,
    slot: &mut RecvSlot,
    index: usize,
    fd: RawFd,
    mut buf: Buf,
) -> io::Result<()> {
    let cap = buf.data_capacity();
    let Some(data) = buf.as_mut_slice().get_mut(HEADROOM..HEADROOM + cap) else {
        slot.buf = Some(buf);
        return Ok(());
    };
    slot.iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: cap,
    };
    slot.name = sockaddr::empty();
    slot.hdr.msg_name = (&mut slot.name as *mut libc::sockaddr_storage).cast();
    slot.hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    slot.hdr.msg_iov = &mut slot.iov;
    slot.hdr.msg_iovlen = 1;
    slot.hdr.msg_flags = 0;
    cmsg::prepare_recv(&mut slot.hdr, &mut slot.cmsg);
    // Moving the `Buf` moves only its handle; the data the iovec points at stays where it is.
    slot.buf = Some(buf);
    let sqe = opcode::RecvMsg::new(types::Fd(fd), &mut slot.hdr)
        .build()
        .user_data(KIND_RECV | index as u64);
    // SAFETY: the header, iovec, address and control buffer live in the receive slab, which is never
    // resized or freed while a request is in flight; the buffer stays leased to the ring (held in
    // `slot.buf`, state InFlight) until its CQE is reaped.
    unsafe { push(ring, &sqe) }?;
    slot.state = RecvState::InFlight;
    Ok(())
}

impl Io for UringIo {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
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
        self.adopt(ctx);
        self.release_stranded(ctx.pools);
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        self.arm_idle(ctx)?;
        self.reap();
        if self.ready.is_empty() && !self.woken {
            // Buffers come back from other threads without a wake-up: while a receive slot waits for
            // one, look again soon rather than sleep until the next datagram or command.
            let timeout = if self.starved {
                Some(timeout.map_or(STARVED_RETRY, |t| t.min(STARVED_RETRY)))
            } else {
                timeout
            };
            self.wait(timeout)?;
            self.reap();
        }
        self.woken = false;
        self.deliver(ctx, rx);
        // Put the delivered slots back in the ring now, so the kernel receives while the handler runs.
        self.arm_idle(ctx)?;
        submit(&mut self.ring)
    }

    fn send(&mut self, ctx: &ShardIo<'_>, tx: &mut SendBatch) -> io::Result<()> {
        self.adopt(ctx);
        self.release_stranded(ctx.pools);
        if tx.entries.is_empty() {
            return Ok(());
        }
        if self.offload.iter().any(|o| o.gso) {
            gso::coalesce(&mut tx.entries, &mut self.scratch, ctx.pools, ctx.shard);
        }
        let result = self.send_entries(ctx, &tx.entries);
        if self.sends_in_flight == 0 {
            for out in tx.entries.drain(..) {
                ctx.pools.release(out.buf);
            }
        } else {
            // Only after a ring error: the kernel may still read these, keep them until it is done.
            self.stranded.append(&mut tx.entries);
        }
        result
    }
}

impl Drop for UringIo {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            self.cancel_all();
        }
        if self.in_flight > 0 {
            warn!(
                in_flight = self.in_flight,
                "io_uring requests not cancelled at shutdown; leaking their buffers rather than freeing memory the kernel may use"
            );
            std::mem::forget(std::mem::take(&mut self.recv));
            std::mem::forget(std::mem::take(&mut self.send));
            std::mem::forget(std::mem::take(&mut self.stranded));
            std::mem::forget(std::mem::replace(&mut self.waker_buf, Box::new(0)));
            return;
        }
        // Nothing is in flight: the buffers can go home.
        if let Some(pools) = self.pools.take() {
            for slot in self.recv.iter_mut() {
                if let Some(buf) = slot.buf.take() {
                    pools.release(buf);
                }
            }
            for out in self.stranded.drain(..) {
                pools.release(out.buf);
            }
        }
    }
}

#[cfg(test)]
mod tests;
