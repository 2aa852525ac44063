//! UDP GSO and GRO: turning them on, and coalescing runs of equal-size datagrams to one destination
//! into one super-datagram (as wireguard-go's `coalesceMessages`).

use std::io;
use std::os::fd::RawFd;

use crate::buffers::Pools;
use crate::config::MAX_UDP_PAYLOAD;
use crate::handler::Outgoing;

/// The kernel's limit on segments in one GSO send (`UDP_MAX_SEGMENTS`).
pub(crate) const MAX_SEGMENTS: usize = 64;

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Asks the kernel to coalesce received datagrams (`UDP_GRO`).
pub(crate) fn enable_gro(fd: RawFd) -> io::Result<()> {
    set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Whether the kernel accepts `UDP_SEGMENT` on this socket (probed by reading the option).
pub(crate) fn gso_supported(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live c_int and a pointer to its size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0
}

/// Whether an error from a GSO send means the path cannot segment (turn GSO off and retry singly).
pub(crate) fn is_gso_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}

/// Merges runs in `entries`: a datagram to the same destination with the same length as the run's
/// first segment is copied after it (the last of a run may be shorter). A run that starts in a small
/// buffer moves to a large buffer of `shard` when the second datagram joins it (or stays as it is
/// when none is free). Uses `scratch` (kept by the caller, same capacity) so nothing is allocated.
pub(crate) fn coalesce(
    entries: &mut Vec<Outgoing>,
    scratch: &mut Vec<Outgoing>,
    pools: &Pools,
    shard: usize,
) {
    scratch.clear();
    for next in entries.drain(..) {
        if let Some(run) = scratch.last_mut() {
            if run.segment_size.is_none()
                && fits_a_run(run, &next)
                && run.range.end + next.range.len() > run.buf.as_slice().len()
            {
                grow(run, pools, shard);
            }
            if can_append(run, &next) {
                let len = next.range.len();
                let at = run.range.end;
                if let (Some(dst), Some(src)) = (
                    run.buf.as_mut_slice().get_mut(at..at + len),
                    next.buf.as_slice().get(next.range.clone()),
                ) {
                    dst.copy_from_slice(src);
                    run.segment_size = Some(run.segment_size.unwrap_or(run.range.len()));
                    run.range.end += len;
                    pools.release(next.buf);
                    continue;
                }
            }
        }
        scratch.push(next);
    }
    std::mem::swap(entries, scratch);
}

/// Moves a one-datagram run into a large buffer of `shard` at the same offsets, if one is free.
fn grow(run: &mut Outgoing, pools: &Pools, shard: usize) {
    let Some(mut large) = pools.take(shard) else {
        return;
    };
    let range = run.range.clone();
    match (
        large.as_mut_slice().get_mut(range.clone()),
        run.buf.as_slice().get(range),
    ) {
        (Some(dst), Some(src)) => {
            dst.copy_from_slice(src);
            let small = std::mem::replace(&mut run.buf, large);
            pools.release(small);
        }
        _ => pools.release(large),
    }
}

/// Whether `next` may follow `run` in one GSO send, room in the buffer aside.
fn fits_a_run(run: &Outgoing, next: &Outgoing) -> bool {
    let seg = run.segment_size.unwrap_or(run.range.len());
    let len = next.range.len();
    let segments = run.range.len().div_ceil(seg.max(1));
    run.to == next.to
        && len > 0
        && len <= seg
        // A shorter segment ends a run: nothing may follow it.
        && run.range.len().is_multiple_of(seg.max(1))
        && segments < MAX_SEGMENTS
        && run.range.len() + len <= MAX_UDP_PAYLOAD
}

fn can_append(run: &Outgoing, next: &Outgoing) -> bool {
    fits_a_run(run, next) && run.range.end + next.range.len() <= run.buf.as_slice().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HEADROOM;

    fn datagram(pools: &Pools, len: usize, byte: u8, to: &str) -> Outgoing {
        let mut buf = pools.take_application().expect("a small buffer");
        buf.as_mut_slice()[HEADROOM..HEADROOM + len].fill(byte);
        Outgoing {
            buf,
            range: HEADROOM..HEADROOM + len,
            to: to.parse().unwrap(),
            segment_size: None,
        }
    }

    #[test]
    fn a_run_of_small_buffers_moves_into_one_large_buffer_in_order() {
        let pools = Pools::new(1, 2, 2, 8, MAX_UDP_PAYLOAD, 1500);
        let mut entries: Vec<Outgoing> = (0..5)
            .map(|i| datagram(&pools, 1000, i as u8, "10.0.0.2:51820"))
            .collect();
        entries.push(datagram(&pools, 1000, 9, "10.0.0.3:51820"));
        let mut scratch = Vec::with_capacity(entries.len());
        coalesce(&mut entries, &mut scratch, &pools, 0);
        assert_eq!(entries.len(), 2, "one run per destination");
        let run = &entries[0];
        assert_eq!((run.range.len(), run.segment_size), (5000, Some(1000)));
        assert!(
            run.buf.as_slice().len() > pools.small_len(),
            "in a large buffer"
        );
        let bytes = &run.buf.as_slice()[run.range.clone()];
        for (i, chunk) in bytes.chunks(1000).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8), "segment {i} in order");
        }
        assert_eq!(entries[1].segment_size, None);
        // The five small buffers of the run came home; one large is lent.
        let free = std::iter::from_fn(|| pools.take_application()).count();
        assert_eq!(free, 8 - 1);
        assert_eq!(pools.available(0), 1);
    }

    #[test]
    fn without_a_free_large_buffer_small_datagrams_go_one_by_one() {
        let pools = Pools::new(1, 0, 0, 4, MAX_UDP_PAYLOAD, 1500);
        let mut entries: Vec<Outgoing> = (0..3)
            .map(|_| datagram(&pools, 1000, 1, "10.0.0.2:51820"))
            .collect();
        let mut scratch = Vec::with_capacity(3);
        coalesce(&mut entries, &mut scratch, &pools, 0);
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|e| e.segment_size.is_none()));
    }
}
