//! Control messages: `UDP_SEGMENT` on send (GSO) and `UDP_GRO` on receive.

use std::mem;

/// Room for one control message carrying an `int`-sized value (aligned as the kernel wants).
pub(crate) const SPACE: usize = 32;

/// An aligned control-message buffer.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct CmsgBuf(pub(crate) [u8; SPACE]);

impl Default for CmsgBuf {
    fn default() -> Self {
        CmsgBuf([0; SPACE])
    }
}

/// Writes a `SOL_UDP`/`UDP_SEGMENT` message with `segment_size` into `buf` and points `hdr` at it.
pub(crate) fn set_udp_segment(hdr: &mut libc::msghdr, buf: &mut CmsgBuf, segment_size: u16) {
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= SPACE);
    buf.0 = [0; SPACE];
    hdr.msg_control = buf.0.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: `hdr` points at `buf`, which holds `space` bytes, enough for one header and a u16; so
    // CMSG_FIRSTHDR returns a pointer inside `buf` and CMSG_DATA stays within it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment_size);
    }
}

/// Clears the control data of `hdr`.
pub(crate) fn clear(hdr: &mut libc::msghdr) {
    hdr.msg_control = std::ptr::null_mut();
    hdr.msg_controllen = 0;
}

/// Points `hdr` at an empty receive control buffer.
pub(crate) fn prepare_recv(hdr: &mut libc::msghdr, buf: &mut CmsgBuf) {
    buf.0 = [0; SPACE];
    hdr.msg_control = buf.0.as_mut_ptr().cast();
    hdr.msg_controllen = SPACE as _;
}

/// The GRO segment size the kernel reported in a received message's control data, if any.
pub(crate) fn gro_segment_size(hdr: &libc::msghdr) -> Option<usize> {
    if hdr.msg_control.is_null() || hdr.msg_controllen < mem::size_of::<libc::cmsghdr>() {
        return None;
    }
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of well-formed control
    // messages; CMSG_FIRSTHDR/CMSG_NXTHDR stay within that length and return null at its end.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(size).ok().filter(|s| *s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}
