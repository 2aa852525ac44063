//! The two threads every leg of the scenario runs the same way: a producer pinned to the sender's CPU
//! that offers datagrams (as fast as it can, or paced), and a consumer pinned to the receiver's CPU
//! that takes them and reads the send instant stamped in each to record the one-way latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::alloc_count::{self, AllocSnapshot};
use crate::histogram::Histogram;
use crate::threads::{self, TaskSnapshot, ThreadReport};

/// Bytes at the start of every application payload: a sequence number and the send instant (ns since
/// the run's epoch), both little-endian `u64`.
pub const STAMP_LEN: usize = 16;

/// One way of moving datagrams from the sender's CPU to the receiver's: a node pair, the ceiling, bare
/// UDP, boringtun.
pub trait Link: Send + Sync {
    /// Queues one datagram carrying `app` (the application bytes); `false` when it would block.
    fn try_send(&self, app: &[u8]) -> bool;
    /// Waits up to `wait` for the next datagram and copies its application bytes into `buf`.
    fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<usize>;
}

/// A counter on a cache line of its own, so the producer's and the consumer's do not share one.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

#[derive(Debug, Default)]
struct Flags {
    stop: AtomicBool,
    measuring: AtomicBool,
    sent: Padded,
    received: Padded,
}

/// What one phase measured.
#[derive(Debug)]
pub struct Phase {
    /// Datagrams offered and accepted by the link in the window.
    pub sent: u64,
    /// Datagrams the consumer took in the window.
    pub received: u64,
    /// The window as it ran.
    pub secs: f64,
    /// One-way latency of the datagrams received in the window.
    pub latency: Histogram,
    /// Heap use in the window, every thread.
    pub allocations: AllocSnapshot,
    /// Threads that ran in the window (placement and CPU time).
    pub threads: Vec<ThreadReport>,
}

impl Phase {
    /// Datagrams received per second.
    pub fn received_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.received as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Placement and pacing of a phase.
#[derive(Debug, Clone, Copy)]
pub struct PhaseOptions {
    /// Application bytes per datagram.
    pub app_len: usize,
    /// `(sender, receiver)` CPUs.
    pub cpus: (usize, usize),
    /// Untimed first.
    pub warmup: Duration,
    /// Then measured.
    pub duration: Duration,
    /// Datagrams per second to offer; `None` for as fast as the link takes them.
    pub rate: Option<f64>,
}

/// Runs the producer and the consumer over `link` for the warm-up and the measured window.
///
/// # Errors
/// A thread that could not be started or panicked.
pub fn run_phase(link: Arc<dyn Link>, opts: PhaseOptions) -> Result<Phase, String> {
    let flags = Arc::new(Flags::default());
    let epoch = Instant::now();
    let producer = {
        let (link, flags) = (link.clone(), flags.clone());
        std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || produce(&*link, &flags, epoch, opts))
            .map_err(|e| format!("cannot start the producer thread: {e}"))?
    };
    let consumer = {
        let (link, flags) = (link.clone(), flags.clone());
        std::thread::Builder::new()
            .name("bench-consumer".into())
            .spawn(move || consume(&*link, &flags, epoch, opts))
            .map_err(|e| format!("cannot start the consumer thread: {e}"))?
    };
    std::thread::sleep(opts.warmup);
    let tasks_before = TaskSnapshot::take();
    let allocs_before = alloc_count::snapshot();
    let (sent0, received0) = (
        flags.sent.0.load(Ordering::Acquire),
        flags.received.0.load(Ordering::Acquire),
    );
    let t0 = Instant::now();
    flags.measuring.store(true, Ordering::Release);
    std::thread::sleep(opts.duration);
    flags.measuring.store(false, Ordering::Release);
    let secs = t0.elapsed().as_secs_f64();
    let (sent1, received1) = (
        flags.sent.0.load(Ordering::Acquire),
        flags.received.0.load(Ordering::Acquire),
    );
    let allocations = alloc_count::snapshot() - allocs_before;
    let threads = tasks_before.window(&TaskSnapshot::take(), &[]);
    flags.stop.store(true, Ordering::Release);
    producer
        .join()
        .map_err(|_| "the producer thread panicked".to_string())?;
    let latency = consumer
        .join()
        .map_err(|_| "the consumer thread panicked".to_string())?;
    Ok(Phase {
        sent: sent1 - sent0,
        received: received1 - received0,
        secs,
        latency,
        allocations,
        threads,
    })
}

fn produce(link: &dyn Link, flags: &Flags, epoch: Instant, opts: PhaseOptions) {
    threads::pin_current(opts.cpus.0);
    let mut app = vec![0x5au8; opts.app_len];
    let start = Instant::now();
    let mut seq: u64 = 0;
    while !flags.stop.load(Ordering::Relaxed) {
        if let Some(rate) = opts.rate {
            // Offer what the schedule allows so far, then sleep a little: bursts of a few datagrams.
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            if seq >= due {
                std::thread::sleep(Duration::from_micros(20));
                continue;
            }
        }
        if let Some(stamp) = app.get_mut(..STAMP_LEN) {
            stamp[..8].copy_from_slice(&seq.to_le_bytes());
            let now = epoch.elapsed().as_nanos() as u64;
            stamp[8..].copy_from_slice(&now.to_le_bytes());
        }
        if link.try_send(&app) {
            seq += 1;
            flags.sent.0.fetch_add(1, Ordering::Relaxed);
        } else {
            // The sending shard shares this CPU: let it drain.
            std::thread::yield_now();
        }
    }
}

fn consume(link: &dyn Link, flags: &Flags, epoch: Instant, opts: PhaseOptions) -> Histogram {
    threads::pin_current(opts.cpus.1);
    let mut hist = Histogram::new();
    let mut buf = vec![0u8; 65_536];
    while !flags.stop.load(Ordering::Relaxed) {
        let Some(n) = link.recv(&mut buf, Duration::from_millis(20)) else {
            continue;
        };
        flags.received.0.fetch_add(1, Ordering::Relaxed);
        if n >= STAMP_LEN && flags.measuring.load(Ordering::Relaxed) {
            let mut sent_at = [0u8; 8];
            sent_at.copy_from_slice(&buf[8..16]);
            let now = epoch.elapsed().as_nanos() as u64;
            hist.record(now.saturating_sub(u64::from_le_bytes(sent_at)));
        }
    }
    hist
}
