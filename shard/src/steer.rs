//! The classic-BPF program that steers datagrams within a `SO_REUSEPORT` group
//! (`SO_ATTACH_REUSEPORT_CBPF`), compiled from a [`SteeringRule`].
//!
//! The kernel runs the program on every datagram that reaches the group and delivers the datagram to
//! the socket at the returned position; positions follow bind order. The runtime therefore binds the
//! control socket first (position 0) and data shard `k` at position `k + 1`, and the program returns
//! `0` for control datagrams and `1 + (byte[index_offset] % n)` for data datagrams. A return value
//! at or past the group's size makes the kernel fall back to hashing the 4-tuple, which is why the
//! group must be complete before the program can steer anything (and why every data shard still
//! checks ownership, see STYLE §2).
//!
//! For UDP the kernel runs the program with `skb->data` advanced past the UDP header
//! (`run_bpf_filter` in `net/core/sock_reuseport.c` pulls `sizeof(struct udphdr)`), so absolute
//! loads and `BPF_LEN` see the UDP payload. `tests::kernel_runs_program_on_udp_payload` checks this
//! on the running kernel.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use libc::{c_int, sock_filter, sock_fprog};

use crate::config::SteeringRule;

// Opcode fields from `linux/bpf_common.h`; libc 0.2 exports every one this file needs for Linux,
// as it does `SO_ATTACH_REUSEPORT_CBPF` (Linux 4.5) and `SO_DETACH_REUSEPORT_BPF` (Linux 5.3).
use libc::{
    BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_B, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_LEN,
    BPF_MOD, BPF_RET, BPF_W,
};

/// `BPF_STMT` from `linux/filter.h`; libc's version is an `unsafe fn` for no reason we need.
const fn stmt(code: u32, k: u32) -> sock_filter {
    // Every opcode is a sum of `bpf_common.h` fields, all below 0x100.
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// `BPF_JUMP` from `linux/filter.h`: `jt`/`jf` count instructions skipped after this one.
const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The program for `rule` over a group of one control socket and `data_shards` data sockets bound
/// in that order: it returns 0 (control) unless the datagram is at least `rule.min_len` bytes long,
/// holds `rule.index_offset` and starts with `rule.type_byte`, and `1 + (byte[rule.index_offset] %
/// data_shards)` otherwise. It returns what [`SteeringRule::owner`] says, with `None` as 0 and
/// `Some(k)` as `k + 1`. With no data shards everything goes to control.
pub(crate) fn program(rule: &SteeringRule, data_shards: usize) -> Vec<sock_filter> {
    if data_shards == 0 {
        return vec![stmt(BPF_RET | BPF_K, 0)];
    }
    // `owner` needs byte 0 and the index byte to exist; checking the length once up front keeps
    // the program from relying on the out-of-bounds-load-returns-0 rule.
    let min_len = u32::from(rule.min_len).max(u32::from(rule.index_offset) + 1);
    // A byte is below 256, so `b % n == b % 256` for every `n >= 256`: clamping keeps the result
    // exact and the constant in `u32`.
    let modulus = u32::try_from(data_shards.min(256)).unwrap_or(256);
    let type_byte = u32::from(rule.type_byte);
    // Jump offsets count the instructions skipped after the jump; every failure lands here.
    const RET_CONTROL: u8 = 8;
    vec![
        // 0: A = payload length; 1: too short → control.
        stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        jump(BPF_JMP | BPF_JGE | BPF_K, min_len, 0, RET_CONTROL - 2),
        // 2: A = byte 0; 3: another message type → control.
        stmt(BPF_LD | BPF_B | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, type_byte, 0, RET_CONTROL - 4),
        // 4..=7: return 1 + byte[index_offset] % n, the data shard's position.
        stmt(BPF_LD | BPF_B | BPF_ABS, u32::from(rule.index_offset)),
        stmt(BPF_ALU | BPF_MOD | BPF_K, modulus),
        stmt(BPF_ALU | BPF_ADD | BPF_K, 1),
        stmt(BPF_RET | BPF_A, 0),
        // 8 = RET_CONTROL.
        stmt(BPF_RET | BPF_K, 0),
    ]
}

/// Attaches the program for `rule` to the `SO_REUSEPORT` group of `socket`.
///
/// The program belongs to the group, not to the socket: attach it once per group (per listen
/// address), after `socket` is bound, so that it lands on the group the others join. Attaching again
/// replaces the previous program.
///
/// # Errors
///
/// The OS error of `setsockopt`: `EINVAL` if `socket` has no `SO_REUSEPORT`, or the kernel rejects
/// the program; `ENOPROTOOPT` on kernels before 4.5.
pub(crate) fn attach(
    socket: &impl AsRawFd,
    rule: &SteeringRule,
    data_shards: usize,
) -> io::Result<()> {
    attach_program(socket.as_raw_fd(), &program(rule, data_shards))
}

/// Removes the steering program from the `SO_REUSEPORT` group of `socket`; the kernel goes back to
/// hashing the 4-tuple.
///
/// # Errors
///
/// The OS error of `setsockopt`: `ENOENT` if the group has no program, `EINVAL` if `socket` has no
/// `SO_REUSEPORT`, `ENOPROTOOPT` on kernels before 5.3.
#[allow(
    dead_code,
    reason = "the runtime attaches once per group and never detaches yet; the tests use it"
)]
pub(crate) fn detach(socket: &impl AsRawFd) -> io::Result<()> {
    // The kernel ignores the value but, as for every SOL_SOCKET option, wants an int's worth.
    let unused: c_int = 0;
    set_socket_option(socket.as_raw_fd(), libc::SO_DETACH_REUSEPORT_BPF, &unused)
}

/// Attaches an arbitrary classic-BPF program to the `SO_REUSEPORT` group of `fd`.
fn attach_program(fd: RawFd, filter: &[sock_filter]) -> io::Result<()> {
    let len = u16::try_from(filter.len())
        .ok()
        .filter(|&len| c_int::from(len) <= libc::BPF_MAXINSNS)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "steering program longer than BPF_MAXINSNS",
            )
        })?;
    // The kernel only reads through `filter` (it copies the program during the call); the field is
    // `*mut` because the C struct is not const-qualified.
    let fprog = sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    set_socket_option(fd, libc::SO_ATTACH_REUSEPORT_CBPF, &fprog)
}

/// `setsockopt(fd, SOL_SOCKET, name, value, sizeof *value)`.
fn set_socket_option<T>(fd: RawFd, name: c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "socket option value too large")
    })?;
    // SAFETY: `value` points to a live, initialised `T` of exactly `len` bytes for the whole call, and
    // any pointer inside it (the `sock_fprog` filter) borrows memory the caller keeps alive across the
    // call; the kernel copies what it needs and keeps no pointer. A bad `fd` yields EBADF/ENOTSOCK,
    // not undefined behaviour.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            std::ptr::from_ref(value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
