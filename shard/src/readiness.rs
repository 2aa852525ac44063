//! [`Readiness`]: an eventfd that says "something is ready", for an application's own event loop (it
//! can sit in epoll, mio or tokio's `AsyncFd`) or for a blocking wait.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A level-style readiness signal backed by a non-blocking eventfd.
///
/// Producers call [`signal`](Self::signal); the consumer polls the descriptor for readability, calls
/// [`clear`](Self::clear), then drains its queue *after* clearing (so a signal raised meanwhile is not
/// lost).
#[derive(Debug)]
pub struct Readiness {
    fd: OwnedFd,
}

impl Readiness {
    /// A new, unsignalled eventfd.
    ///
    /// # Errors
    /// The `eventfd` call failed (descriptor limit).
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a negative return is an error, handled below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Readiness {
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Marks the descriptor readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd; a full counter (EAGAIN) already
        // means "readable", so the result does not matter.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Makes the descriptor unreadable until the next signal.
    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd; EAGAIN (nothing
        // signalled) is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }

    /// Blocks until signalled or `timeout` passes (`None`: no limit). Returns whether it was signalled.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| {
            i32::try_from(t.as_millis().max(u128::from(!t.is_zero()))).unwrap_or(i32::MAX)
        });
        // SAFETY: one live pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        n > 0 && pfd.revents & libc::POLLIN != 0
    }
}

impl AsRawFd for Readiness {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
