//! Runtime configuration and the errors of starting it.

use std::net::SocketAddr;

use thiserror::Error;

/// Which I/O backend the shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring if the start-up probe passes, batched `recvmmsg`/`sendmmsg` otherwise.
    Auto,
    /// io_uring or fail to start.
    IoUring,
    /// Batched `recvmmsg`/`sendmmsg`.
    Mmsg,
}

/// The backend actually running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// io_uring.
    IoUring,
    /// Batched `recvmmsg`/`sendmmsg`.
    Mmsg,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Mmsg => "mmsg",
        })
    }
}

/// How datagrams are assigned to shards: a datagram whose byte 0 is `type_byte` and that is at least
/// `min_len` long belongs to data shard `bytes[index_offset] % data_shards`; every other datagram
/// belongs to the control shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteeringRule {
    /// The first byte that marks a data datagram.
    pub type_byte: u8,
    /// Offset of the byte whose value, modulo the number of data shards, names the owner.
    pub index_offset: u16,
    /// Shorter datagrams go to the control shard.
    pub min_len: u16,
}

impl SteeringRule {
    /// The shard that owns `datagram`: `None` for the control shard, `Some(k)` for data shard `k`.
    pub fn owner(&self, datagram: &[u8], data_shards: usize) -> Option<usize> {
        if data_shards == 0
            || datagram.len() < usize::from(self.min_len)
            || datagram.first() != Some(&self.type_byte)
        {
            return None;
        }
        datagram
            .get(usize::from(self.index_offset))
            .map(|b| usize::from(*b) % data_shards)
    }
}

/// Everything the runtime needs to start. Build with [`RuntimeConfig::new`] and the setters.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) data_shards: Option<usize>,
    pub(crate) cpus: Option<Vec<usize>>,
    pub(crate) backend: Backend,
    pub(crate) batch: usize,
    pub(crate) buffers_per_shard: usize,
    pub(crate) small_buffers_per_shard: usize,
    pub(crate) application_buffers: usize,
    pub(crate) max_datagram: usize,
    pub(crate) socket_buffer: usize,
    pub(crate) gso: bool,
    pub(crate) gro: bool,
    pub(crate) steering: Option<SteeringRule>,
    pub(crate) attach_steering_program: bool,
    pub(crate) channel_capacity: usize,
    pub(crate) ring_entries: u32,
    pub(crate) pin_threads: bool,
}

/// Room kept before every buffer's data: a transport header, an IPv6 and a UDP header.
pub const HEADROOM: usize = 16 + 40 + 8;
/// Room kept after every buffer's data: padding and a tag.
pub const TAILROOM: usize = 15 + 16;
/// The largest UDP payload (and so the largest GRO super-datagram).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

impl RuntimeConfig {
    /// A runtime listening on `listen` (one socket group per address, at most one per family; port
    /// 0 picks a free port, shared by the whole group, and a port 0 after the first address takes
    /// the first one's port).
    pub fn new(listen: impl IntoIterator<Item = SocketAddr>) -> Self {
        RuntimeConfig {
            listen: listen.into_iter().collect(),
            data_shards: None,
            cpus: None,
            backend: Backend::Auto,
            batch: 32,
            buffers_per_shard: 64,
            small_buffers_per_shard: 1024,
            application_buffers: 256,
            max_datagram: 1500,
            socket_buffer: 4 << 20,
            gso: true,
            gro: true,
            steering: None,
            attach_steering_program: true,
            channel_capacity: 1024,
            ring_entries: 256,
            pin_threads: true,
        }
    }

    /// Number of data shards; default one per available core.
    pub fn data_shards(mut self, n: usize) -> Self {
        self.data_shards = Some(n);
        self
    }

    /// Cores to pin to, in shard order (control first); default: cores 0, 1, … wrapping.
    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Whether to pin shard threads at all (default yes).
    pub fn pin_threads(mut self, pin: bool) -> Self {
        self.pin_threads = pin;
        self
    }

    /// The backend to use; default [`Backend::Auto`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Datagrams per receive or send call (default 32).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Large buffers in each shard's pool, for the receive ring and coalesced sends (default 64, at
    /// least twice the batch: a batch of receives and a batch of sends in flight). With GSO or GRO on
    /// each holds a whole 64 KiB super-datagram, so the default reserves 4 MiB of address space per
    /// shard; without them, `max_datagram` bytes each.
    /// Memory is committed only as buffers are first written.
    pub fn buffers_per_shard(mut self, n: usize) -> Self {
        self.buffers_per_shard = n;
        self
    }

    /// Small buffers (`max_datagram` bytes) in each shard's pool, for single datagrams a shard makes or
    /// hands on: packets for the application, handshakes, relayed frames (default 1024).
    pub fn small_buffers_per_shard(mut self, n: usize) -> Self {
        self.small_buffers_per_shard = n;
        self
    }

    /// Buffers (`max_datagram` bytes) an application thread fills outside the shards and hands over
    /// with a command ([`BufferPool::take_application`](crate::BufferPool::take_application); default
    /// 256). A pool of
    /// its own, so an application that sends fast cannot starve the shards' receive pools.
    pub fn application_buffers(mut self, n: usize) -> Self {
        self.application_buffers = n;
        self
    }

    /// The largest single datagram handled (default 1500). With GRO on, receive buffers hold a whole
    /// super-datagram (64 KiB) regardless.
    pub fn max_datagram(mut self, bytes: usize) -> Self {
        self.max_datagram = bytes;
        self
    }

    /// `SO_RCVBUF`/`SO_SNDBUF` to request (default 4 MiB); what the kernel granted is reported.
    pub fn socket_buffer(mut self, bytes: usize) -> Self {
        self.socket_buffer = bytes;
        self
    }

    /// UDP GSO on send (default on; turned off per socket if the kernel refuses).
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }

    /// UDP GRO on receive (default on; turned off per socket if the kernel refuses).
    pub fn gro(mut self, on: bool) -> Self {
        self.gro = on;
        self
    }

    /// Steer datagrams by `rule`: its datagrams to their data shard, all others to the control shard.
    /// Without a rule (the default) each datagram is handled by the shard whose socket the kernel's
    /// `SO_REUSEPORT` hash picked, which suits stateless services such as an echo.
    pub fn steering(mut self, rule: SteeringRule) -> Self {
        self.steering = Some(rule);
        self
    }

    /// Whether to attach the cBPF program for the steering rule (default yes). Without it the
    /// kernel spreads datagrams by hash and the ownership channels carry every misdelivery.
    pub fn attach_steering_program(mut self, attach: bool) -> Self {
        self.attach_steering_program = attach;
        self
    }

    /// Capacity of every channel between shards (default 1024).
    pub fn channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n;
        self
    }

    /// Entries of each io_uring submission queue (default 256; the locked-memory budget is small).
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.ring_entries = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), StartError> {
        let bad = |field: &str, value: String, reason: &str| {
            Err(StartError::Config {
                field: field.to_string(),
                value,
                reason: reason.to_string(),
            })
        };
        if self.listen.is_empty() {
            return bad("listen", "[]".into(), "needs at least one address");
        }
        if self.listen.iter().filter(|a| a.is_ipv4()).count() > 1
            || self.listen.iter().filter(|a| a.is_ipv6()).count() > 1
        {
            return bad(
                "listen",
                format!("{:?}", self.listen),
                "at most one IPv4 and one IPv6 address",
            );
        }
        if self.batch == 0 || self.batch > 1024 {
            return bad(
                "batch",
                self.batch.to_string(),
                "must be between 1 and 1024",
            );
        }
        if self.buffers_per_shard < 2 * self.batch {
            return bad(
                "buffers_per_shard",
                self.buffers_per_shard.to_string(),
                "must be at least twice the batch",
            );
        }
        if self.application_buffers == 0 {
            return bad(
                "application_buffers",
                self.application_buffers.to_string(),
                "must be at least 1",
            );
        }
        if self.max_datagram < 64 || self.max_datagram > MAX_UDP_PAYLOAD {
            return bad(
                "max_datagram",
                self.max_datagram.to_string(),
                "must be between 64 and 65507",
            );
        }
        if self.channel_capacity == 0 {
            return bad("channel_capacity", "0".into(), "must be at least 1");
        }
        if !self.ring_entries.is_power_of_two() || self.ring_entries > 4096 {
            return bad(
                "ring_entries",
                self.ring_entries.to_string(),
                "must be a power of two up to 4096",
            );
        }
        if self.data_shards == Some(0) {
            return bad("data_shards", "0".into(), "must be at least 1");
        }
        if self.data_shards.is_some_and(|n| n > 254) {
            return bad(
                "data_shards",
                format!("{:?}", self.data_shards),
                "must be at most 254",
            );
        }
        Ok(())
    }
}

/// Why the runtime did not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration field is invalid.
    #[error("{field} = \"{value}\": {reason}")]
    Config {
        /// The field.
        field: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Another socket already holds the address (outside our SO_REUSEPORT group).
    #[error("listen address {addr} is already in use; stop the other process or pick another port")]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// A socket could not be created, bound or configured.
    #[error("socket for {addr}: {what}: {source}")]
    Socket {
        /// The listen address.
        addr: SocketAddr,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// io_uring was required by configuration but is not usable here.
    #[error("io_uring backend required but unavailable: {reason}")]
    IoUringUnavailable {
        /// What the probe found.
        reason: String,
    },
    /// A shard thread could not be set up.
    #[error("shard {shard}: {what}: {source}")]
    Shard {
        /// The shard (0 is control).
        shard: usize,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
