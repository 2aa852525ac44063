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
/// first segment is copied after it (the last of a run may be shorter). Uses `scratch` (kept by the
/// caller, same capacity) so nothing is allocated.
pub(crate) fn coalesce(entries: &mut Vec<Outgoing>, scratch: &mut Vec<Outgoing>, pools: &Pools) {
    scratch.clear();
    for next in entries.drain(..) {
        if let Some(run) = scratch.last_mut()
            && can_append(run, &next)
        {
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
        scratch.push(next);
    }
    std::mem::swap(entries, scratch);
}

fn can_append(run: &Outgoing, next: &Outgoing) -> bool {
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
        && run.range.end + len <= run.buf.as_slice().len()
}
