//! The send half of the io_uring backend: one `SendMsg` per datagram or GSO super-datagram, in
//! chunks of at most the send slab, each chunk waited for before the next, and the fallback to
//! single segments when the kernel refuses GSO.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use io_uring::{opcode, types};
use tracing::warn;

use super::{KIND_SEND, UringIo, push};
use crate::backend::ShardIo;
use crate::backend::{cmsg, gso, sockaddr};
use crate::buffers::Pools;
use crate::handler::Outgoing;
use crate::stats::ShardStats;

/// Where the send loop is in the batch: the `pos`-th entry of the pass, and for an entry sent segment
/// by segment, the next segment.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    pos: usize,
    seg: usize,
}

impl Cursor {
    fn next_entry(&mut self) {
        self.pos += 1;
        self.seg = 0;
    }
}

impl UringIo {
    /// Returns the buffers of an earlier failed send once the kernel is done with them.
    pub(super) fn release_stranded(&mut self, pools: &Pools) {
        if self.sends_in_flight == 0 {
            for out in self.stranded.drain(..) {
                pools.release(out.buf);
            }
        }
    }

    /// Sends every entry: a first pass (GSO where on), then the entries whose GSO send was refused,
    /// segment by segment.
    pub(super) fn send_entries(
        &mut self,
        ctx: &ShardIo<'_>,
        entries: &[Outgoing],
    ) -> io::Result<()> {
        self.retry.clear();
        let mut cursor = Cursor::default();
        loop {
            let n = self.fill_sends(ctx, entries, None, &mut cursor)?;
            if n == 0 {
                break;
            }
            self.flush_sends()?;
            self.account_sends(ctx, n);
        }
        if self.retry.is_empty() {
            return Ok(());
        }
        // Taking the list leaves an empty Vec behind (no allocation); it is put back below.
        let retry = std::mem::take(&mut self.retry);
        let mut cursor = Cursor::default();
        let result = loop {
            let n = match self.fill_sends(ctx, entries, Some(&retry), &mut cursor) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if let Err(e) = self.flush_sends() {
                break Err(e);
            }
            self.account_sends(ctx, n);
        };
        self.retry = retry;
        result
    }

    /// Queues up to one chunk (every send slot) of send requests from `entries`, in the order of
    /// `order` (all entries when `None`, and then segment by segment). Returns how many were queued.
    fn fill_sends(
        &mut self,
        ctx: &ShardIo<'_>,
        entries: &[Outgoing],
        order: Option<&[usize]>,
        cursor: &mut Cursor,
    ) -> io::Result<usize> {
        let single = order.is_some();
        let mut n = 0;
        while n < self.send.len() {
            let e = match order {
                None => cursor.pos,
                Some(list) => match list.get(cursor.pos) {
                    Some(&e) => e,
                    None => break,
                },
            };
            let Some(out) = entries.get(e) else { break };
            let len = out.range.len();
            let seg = out.segment_size.filter(|&s| s > 0 && s < len);
            let all_segments = seg.map_or(1, |s| len.div_ceil(s));
            let Some(s) = self.sockets.for_destination(&out.to) else {
                ShardStats::add(&ctx.stats.tx_errors, all_segments as u64);
                cursor.next_entry();
                continue;
            };
            let gso_on = !single && self.offload.get(s).is_some_and(|o| o.gso);
            let (range, segments, gso_size) = match seg.map(|sz| (sz, u16::try_from(sz))) {
                Some((_, Ok(sz16))) if gso_on => {
                    cursor.next_entry();
                    (out.range.clone(), all_segments, Some(sz16))
                }
                Some((sz, _)) => {
                    let start = out.range.start + cursor.seg * sz;
                    let end = (start + sz).min(out.range.end);
                    if end >= out.range.end {
                        cursor.next_entry();
                    } else {
                        cursor.seg += 1;
                    }
                    (start..end, 1, None)
                }
                None => {
                    cursor.next_entry();
                    (out.range.clone(), 1, None)
                }
            };
            let (Some(data), Some(fd), Some(slot)) = (
                out.buf.as_slice().get(range.clone()),
                self.sockets.sockets.get(s).map(AsRawFd::as_raw_fd),
                self.send.get_mut(n),
            ) else {
                ShardStats::add(&ctx.stats.tx_errors, segments as u64);
                continue;
            };
            slot.iov = libc::iovec {
                // The kernel only reads through a send's iovec.
                iov_base: data.as_ptr().cast_mut().cast(),
                iov_len: data.len(),
            };
            slot.hdr.msg_namelen = sockaddr::encode(&out.to, &mut slot.name);
            slot.hdr.msg_name = (&mut slot.name as *mut libc::sockaddr_storage).cast();
            slot.hdr.msg_iov = &mut slot.iov;
            slot.hdr.msg_iovlen = 1;
            slot.hdr.msg_flags = 0;
            match gso_size {
                Some(sz) => cmsg::set_udp_segment(&mut slot.hdr, &mut slot.cmsg, sz),
                None => cmsg::clear(&mut slot.hdr),
            }
            slot.entry = e;
            slot.socket = s;
            slot.segments = segments;
            slot.bytes = data.len();
            slot.gso = gso_size.is_some();
            slot.result = None;
            let sqe = opcode::SendMsg::new(types::Fd(fd), &slot.hdr)
                .build()
                .user_data(KIND_SEND | n as u64);
            // SAFETY: the header, iovec, address and control buffer live in `self.send`, a slab that is
            // never resized; the data lives in a buffer of `entries`, which `send` keeps (or strands in
            // `self.stranded`) until every send completion is reaped.
            unsafe { push(&mut self.ring, &sqe) }?;
            slot.in_flight = true;
            self.sends_in_flight += 1;
            self.in_flight += 1;
            n += 1;
        }
        Ok(n)
    }

    /// Submits the queued sends and waits until every one has completed.
    fn flush_sends(&mut self) -> io::Result<()> {
        while self.sends_in_flight > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(e) => return Err(e),
            }
            self.reap();
        }
        Ok(())
    }

    /// Counts the results of the first `n` send slots; GSO refusals turn GSO off for that socket and
    /// queue the entry for a resend segment by segment.
    fn account_sends(&mut self, ctx: &ShardIo<'_>, n: usize) {
        for slot in self.send.iter_mut().take(n) {
            let Some(res) = slot.result.take() else {
                continue;
            };
            if res >= 0 {
                ShardStats::add(&ctx.stats.tx_datagrams, slot.segments as u64);
                ShardStats::add(&ctx.stats.tx_bytes, slot.bytes as u64);
                if slot.gso {
                    ShardStats::add(&ctx.stats.tx_gso_sends, 1);
                }
                continue;
            }
            let e = io::Error::from_raw_os_error(-res);
            if slot.gso && gso::is_gso_refusal(&e) {
                if let Some(o) = self.offload.get_mut(slot.socket)
                    && o.gso
                {
                    o.gso = false;
                    if let Some(local) = self.sockets.locals.get(slot.socket) {
                        warn!(error = %e, socket = %local, "UDP GSO refused by the kernel; sending datagrams one by one");
                    }
                }
                ctx.stats.gso.store(false, Ordering::Relaxed);
                self.retry.push(slot.entry);
            } else {
                ShardStats::add(&ctx.stats.tx_errors, slot.segments as u64);
            }
        }
    }
}
