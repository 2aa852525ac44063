//! A UDP impairment proxy: a relay between two endpoints that loses, drops in bursts (the
//! Gilbert-Elliott model), reorders, duplicates, delays with jitter and corrupts datagrams, each
//! direction on its own settings, deterministically for a seed, counting everything it does.
//!
//! ```text
//!   A ──► front socket ──[a_to_b impairments]──► back socket ──► B (upstream)
//!   A ◄── front socket ◄─[b_to_a impairments]─── back socket ◄── B
//! ```
//!
//! A sends to [`ImpairmentProxy::front_addr`]; B sees the proxy's back socket as A's address, and
//! its datagrams go back to wherever A last sent from. Every decision (lose, duplicate, corrupt,
//! which bit, how much delay) comes from a per-direction generator seeded from the proxy's seed and
//! the datagram's position in its direction, so one seed gives the same impairments for the same
//! traffic. Memory is bounded (`max_queue` datagrams held for delay per direction; more are dropped
//! and counted), the rate can be capped, and the proxy stops by itself after `lifetime`.
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use pnet_mesh::testing::impair::{Impairment, ImpairmentProxy, ProxyConfig};
//!
//! let b = UdpSocket::bind("127.0.0.1:0").unwrap();
//! let config = ProxyConfig {
//!     a_to_b: Impairment { duplicate: 1.0, ..Impairment::default() },
//!     ..ProxyConfig::new(7)
//! };
//! let proxy = ImpairmentProxy::start("127.0.0.1:0".parse().unwrap(), b.local_addr().unwrap(), config).unwrap();
//! let a = UdpSocket::bind("127.0.0.1:0").unwrap();
//! a.send_to(b"twice", proxy.front_addr()).unwrap();
//! b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
//! let mut buf = [0u8; 16];
//! for _ in 0..2 {
//!     let (n, _) = b.recv_from(&mut buf).unwrap();
//!     assert_eq!(&buf[..n], b"twice");
//! }
//! assert_eq!(proxy.stats().a_to_b.duplicated, 1);
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The Gilbert-Elliott two-state loss model (as netem's `loss gemodel p r 1-h 1-k`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// Probability of moving from the good state to the bad one, per datagram.
    pub good_to_bad: f64,
    /// Probability of moving from the bad state back to the good one, per datagram.
    pub bad_to_good: f64,
    /// Loss probability in the bad state.
    pub loss_in_bad: f64,
    /// Loss probability in the good state.
    pub loss_in_good: f64,
}

/// What happens to the datagrams of one direction. All probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Independent random loss.
    pub loss: f64,
    /// Burst loss, applied after `loss`.
    pub burst: Option<Gilbert>,
    /// Probability that a datagram is held back by `reorder_delay` more, so later ones overtake it.
    pub reorder: f64,
    /// The extra hold-back of a reordered datagram.
    pub reorder_delay: Duration,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Probability that one bit of a datagram is flipped.
    pub corrupt: f64,
    /// Delay of every datagram.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter`.
    pub jitter: Duration,
    /// Datagrams per second at most; the excess is dropped (`None`: no cap).
    pub rate_pps: Option<u32>,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            duplicate: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_pps: None,
        }
    }
}

impl Impairment {
    fn check(&self, direction: &str) -> io::Result<()> {
        let mut probabilities = vec![
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
        ];
        if let Some(g) = &self.burst {
            probabilities.extend([
                ("burst.good_to_bad", g.good_to_bad),
                ("burst.bad_to_good", g.bad_to_good),
                ("burst.loss_in_bad", g.loss_in_bad),
                ("burst.loss_in_good", g.loss_in_good),
            ]);
        }
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    format!("{direction}.{name} = {p}: a probability must be between 0 and 1"),
                ));
            }
        }
        Ok(())
    }
}

/// Settings of the whole proxy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyConfig {
    /// Impairments of datagrams from A (the front) to B (upstream).
    pub a_to_b: Impairment,
    /// Impairments of datagrams from B back to A.
    pub b_to_a: Impairment,
    /// Seed of every random decision.
    pub seed: u64,
    /// Datagrams held for delay per direction; beyond it new ones are dropped and counted.
    pub max_queue: usize,
    /// The proxy stops by itself after this long.
    pub lifetime: Duration,
}

impl ProxyConfig {
    /// No impairment, seeded with `seed`, 4096 datagrams of queue, a 10-minute lifetime.
    pub fn new(seed: u64) -> Self {
        ProxyConfig {
            a_to_b: Impairment::default(),
            b_to_a: Impairment::default(),
            seed,
            max_queue: 4096,
            lifetime: Duration::from_secs(600),
        }
    }

    /// The same impairments both ways.
    pub fn symmetric(seed: u64, impairment: Impairment) -> Self {
        ProxyConfig {
            a_to_b: impairment,
            b_to_a: impairment,
            ..ProxyConfig::new(seed)
        }
    }
}

/// What one direction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams that arrived at the proxy.
    pub received: u64,
    /// Datagrams sent on (duplicates included).
    pub forwarded: u64,
    /// Lost to random or burst loss.
    pub lost: u64,
    /// Of those, lost in the burst model's bad state.
    pub lost_in_burst: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// With one bit flipped.
    pub corrupted: u64,
    /// Dropped because the delay queue was full.
    pub queue_full: u64,
    /// Dropped by the rate cap.
    pub rate_limited: u64,
    /// B→A datagrams with nowhere to go yet (A had not sent anything).
    pub no_destination: u64,
}

/// Both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// A → B.
    pub a_to_b: DirectionStats,
    /// B → A.
    pub b_to_a: DirectionStats,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    lost: AtomicU64,
    lost_in_burst: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    queue_full: AtomicU64,
    rate_limited: AtomicU64,
    no_destination: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            lost: get(&self.lost),
            lost_in_burst: get(&self.lost_in_burst),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
            corrupted: get(&self.corrupted),
            queue_full: get(&self.queue_full),
            rate_limited: get(&self.rate_limited),
            no_destination: get(&self.no_destination),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A running proxy; it stops when dropped or when its lifetime ends.
#[derive(Debug)]
pub struct ImpairmentProxy {
    front: SocketAddr,
    back: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<[Counters; 2]>,
    threads: Vec<JoinHandle<()>>,
}

impl ImpairmentProxy {
    /// Binds the front socket on `listen` and a back socket of `upstream`'s family, and starts one
    /// thread per direction.
    ///
    /// # Errors
    /// A probability outside `0..=1` (naming the field), or a socket that cannot be set up.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: ProxyConfig,
    ) -> io::Result<ImpairmentProxy> {
        config.a_to_b.check("a_to_b")?;
        config.b_to_a.check("b_to_a")?;
        let front = Arc::new(UdpSocket::bind(listen)?);
        grow_buffers(&front);
        let any: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().map_err(io::Error::other)?
        } else {
            "[::]:0".parse().map_err(io::Error::other)?
        };
        let back = UdpSocket::bind(any)?;
        // Connected, so that only B's datagrams come in and the address B sees is known.
        back.connect(upstream)?;
        grow_buffers(&back);
        let back = Arc::new(back);
        for s in [&front, &back] {
            s.set_read_timeout(Some(POLL))?;
        }
        let front_addr = front.local_addr()?;
        let back_addr = back.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters: Arc<[Counters; 2]> = Arc::new(Default::default());
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let deadline = Instant::now() + config.lifetime;
        let directions = [
            Direction {
                from: front.clone(),
                to: back.clone(),
                destination: Destination::Fixed(upstream),
                impairment: config.a_to_b,
                rng: SplitMix::new(config.seed, 0),
                index: 0,
            },
            Direction {
                from: back,
                to: front,
                destination: Destination::LastClient,
                impairment: config.b_to_a,
                rng: SplitMix::new(config.seed, 1),
                index: 1,
            },
        ];
        let mut threads = Vec::with_capacity(2);
        for direction in directions {
            let (stop, counters, client) = (stop.clone(), counters.clone(), client.clone());
            let max_queue = config.max_queue.max(1);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("impair-{}", direction.index))
                    .spawn(move || {
                        direction.run(&stop, &counters, &client, max_queue, deadline);
                    })?,
            );
        }
        Ok(ImpairmentProxy {
            front: front_addr,
            back: back_addr,
            stop,
            counters,
            threads,
        })
    }

    /// Where A sends.
    pub fn front_addr(&self) -> SocketAddr {
        self.front
    }

    /// The address B sees A's datagrams come from.
    pub fn back_addr(&self) -> SocketAddr {
        self.back
    }

    /// What each direction did so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            a_to_b: self.counters[0].snapshot(),
            b_to_a: self.counters[1].snapshot(),
        }
    }

    /// Stops both directions (datagrams still held are dropped) and returns the final counts.
    pub fn stop(mut self) -> ProxyStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ImpairmentProxy {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Socket buffers as large as the node's own (the kernel caps them at `net.core.rmem_max` and
/// `wmem_max`), so that a burst is impaired by the proxy's rules, not lost to a full buffer.
const SOCKET_BUFFER: usize = 8 << 20;

fn grow_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
}

/// How long a direction waits on its socket before looking at its queue and the stop flag.
const POLL: Duration = Duration::from_millis(1);
const MAX_DATAGRAM: usize = 65_536;

enum Destination {
    Fixed(SocketAddr),
    LastClient,
}

struct Direction {
    from: Arc<UdpSocket>,
    to: Arc<UdpSocket>,
    destination: Destination,
    impairment: Impairment,
    rng: SplitMix,
    index: usize,
}

/// A datagram waiting for its time.
struct Held {
    due: Instant,
    /// Arrival order, so that equal due times keep their order.
    order: u64,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

impl Direction {
    fn run(
        mut self,
        stop: &AtomicBool,
        counters: &[Counters; 2],
        client: &Mutex<Option<SocketAddr>>,
        max_queue: usize,
        deadline: Instant,
    ) {
        let Some(c) = counters.get(self.index) else {
            return;
        };
        let mut queue: BinaryHeap<Reverse<Held>> = BinaryHeap::with_capacity(max_queue);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut order = 0u64;
        let mut burst_bad = false;
        let mut bucket = TokenBucket::new(self.impairment.rate_pps);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            self.send_due(&mut queue, c);
            let (n, from) = match self.from.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => continue,
            };
            bump(&c.received);
            let to = match self.destination {
                Destination::Fixed(to) => {
                    if let Ok(mut last) = client.lock() {
                        *last = Some(from);
                    }
                    to
                }
                Destination::LastClient => match client.lock().ok().and_then(|c| *c) {
                    Some(to) => to,
                    None => {
                        bump(&c.no_destination);
                        continue;
                    }
                },
            };
            let now = Instant::now();
            if !bucket.take(now) {
                bump(&c.rate_limited);
                continue;
            }
            let imp = self.impairment;
            // Every datagram draws the same number of values in the same order, so the decisions
            // depend only on the seed and its position.
            let draws = [
                self.rng.unit(),
                self.rng.unit(),
                self.rng.unit(),
                self.rng.unit(),
                self.rng.unit(),
                self.rng.unit(),
                self.rng.unit(),
            ];
            let [lose, transition, burst_lose, dup, reorder, corrupt, jitter] = draws;
            let bit = self.rng.next();
            if let Some(g) = imp.burst {
                burst_bad = if burst_bad {
                    transition >= g.bad_to_good
                } else {
                    transition < g.good_to_bad
                };
            }
            if lose < imp.loss {
                bump(&c.lost);
                continue;
            }
            if let Some(g) = imp.burst {
                let p = if burst_bad {
                    g.loss_in_bad
                } else {
                    g.loss_in_good
                };
                if burst_lose < p {
                    bump(&c.lost);
                    if burst_bad {
                        bump(&c.lost_in_burst);
                    }
                    continue;
                }
            }
            let Some(bytes) = buf.get(..n) else { continue };
            let mut bytes = bytes.to_vec();
            if corrupt < imp.corrupt && !bytes.is_empty() {
                let bit = (bit % (bytes.len() as u64 * 8)) as usize;
                if let Some(b) = bytes.get_mut(bit / 8) {
                    *b ^= 1 << (bit % 8);
                }
                bump(&c.corrupted);
            }
            let mut delay = imp.delay + imp.jitter.mul_f64(jitter);
            if reorder < imp.reorder {
                delay += imp.reorder_delay;
                bump(&c.reordered);
            }
            let copies = if dup < imp.duplicate { 2 } else { 1 };
            for copy in 0..copies {
                if queue.len() >= max_queue {
                    bump(&c.queue_full);
                    continue;
                }
                if copy == 1 {
                    bump(&c.duplicated);
                }
                order += 1;
                queue.push(Reverse(Held {
                    due: now + delay,
                    order,
                    to,
                    bytes: bytes.clone(),
                }));
            }
            self.send_due(&mut queue, c);
        }
    }

    fn send_due(&self, queue: &mut BinaryHeap<Reverse<Held>>, c: &Counters) {
        let now = Instant::now();
        while queue.peek().is_some_and(|Reverse(h)| h.due <= now) {
            if let Some(Reverse(held)) = queue.pop()
                && self.to.send_to(&held.bytes, held.to).is_ok()
            {
                bump(&c.forwarded);
            }
        }
    }
}

/// Packets per second, with a one-second burst.
struct TokenBucket {
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: Option<u32>) -> Self {
        let rate = rate.map(f64::from);
        TokenBucket {
            rate,
            tokens: rate.unwrap_or(0.0),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// SplitMix64: small, fast, and fully determined by its seed (not for secrets).
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64, stream: u64) -> Self {
        SplitMix(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
