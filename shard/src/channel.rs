//! Bounded channels between shards, each with a waker so a sleeping shard notices new work. A full
//! channel is counted and reported, never grown.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::buffers::{Buf, Pools};
use crate::handler::{RecvMeta, ShardId};
use crate::stats::ShardStats;

/// What travels between shards.
#[derive(Debug)]
pub(crate) enum Message<C> {
    /// A command for the handler.
    Command(C),
    /// A datagram received by the wrong shard, moved (not copied) to its owner.
    Datagram(Buf, RecvMeta),
    /// Stop the shard.
    Shutdown,
}

/// An eventfd a shard sleeps on beside its sockets. Writers only touch it while the shard sleeps.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a negative return is an error, handled below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Waker {
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The shard is about to block: from now on senders must write the eventfd.
    pub(crate) fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// The shard is awake again.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Wakes the shard if it sleeps.
    pub(crate) fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            let _ = unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Clears a pending wake-up.
    pub(crate) fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        let _ = unsafe { libc::read(self.fd(), (&mut value as *mut u64).cast(), 8) };
    }
}

/// One shard's receiving end.
#[derive(Debug)]
pub(crate) struct Inbox<C> {
    pub(crate) rx: Receiver<Message<C>>,
    pub(crate) waker: Arc<Waker>,
}

/// Senders to every shard's inbox (index = [`ShardId`]).
#[derive(Debug)]
pub struct Outbox<C> {
    senders: Vec<Sender<Message<C>>>,
    wakers: Vec<Arc<Waker>>,
    pools: Pools,
}

impl<C> Clone for Outbox<C> {
    fn clone(&self) -> Self {
        Outbox {
            senders: self.senders.clone(),
            wakers: self.wakers.clone(),
            pools: self.pools.clone(),
        }
    }
}

/// Builds the inboxes of `shards` shards and the outbox that reaches them.
pub(crate) fn mesh<C>(
    shards: usize,
    capacity: usize,
    pools: Pools,
) -> io::Result<(Outbox<C>, Vec<Inbox<C>>)> {
    let mut senders = Vec::with_capacity(shards);
    let mut wakers = Vec::with_capacity(shards);
    let mut inboxes = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let waker = Arc::new(Waker::new()?);
        senders.push(tx);
        wakers.push(waker.clone());
        inboxes.push(Inbox { rx, waker });
    }
    Ok((
        Outbox {
            senders,
            wakers,
            pools,
        },
        inboxes,
    ))
}

impl<C> Outbox<C> {
    fn send(&self, shard: ShardId, msg: Message<C>) -> Result<(), Message<C>> {
        let Some(tx) = self.senders.get(shard.index()) else {
            return Err(msg);
        };
        match tx.try_send(msg) {
            Ok(()) => {
                if let Some(w) = self.wakers.get(shard.index()) {
                    w.wake();
                }
                Ok(())
            }
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => Err(m),
        }
    }

    /// Sends a command; gives it back if the channel is full (counted in `stats`).
    pub(crate) fn command(&self, shard: ShardId, command: C, stats: &ShardStats) -> Result<(), C> {
        match self.send(shard, Message::Command(command)) {
            Ok(()) => Ok(()),
            Err(msg) => {
                ShardStats::add(&stats.commands_dropped, 1);
                match msg {
                    Message::Command(c) => Err(c),
                    // `send` hands back exactly the message it was given.
                    _ => Ok(()),
                }
            }
        }
    }

    /// Moves a misdelivered datagram to its owner; drops (and counts) it when the channel is full.
    pub(crate) fn forward(&self, shard: ShardId, buf: Buf, meta: RecvMeta, stats: &ShardStats) {
        match self.send(shard, Message::Datagram(buf, meta)) {
            Ok(()) => ShardStats::add(&stats.forwarded_out, 1),
            Err(Message::Datagram(buf, _)) => {
                ShardStats::add(&stats.forward_dropped, 1);
                self.pools.release(buf);
            }
            Err(_) => {}
        }
    }

    /// Asks `shard` to stop.
    pub(crate) fn shutdown(&self, shard: ShardId) {
        // A full channel still gets the message through eventually; retry a few times.
        let mut msg = Message::Shutdown;
        for _ in 0..1000 {
            match self.send(shard, msg) {
                Ok(()) => return,
                Err(m) => {
                    msg = m;
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Number of shards reachable.
    pub(crate) fn len(&self) -> usize {
        self.senders.len()
    }
}
