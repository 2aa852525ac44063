//! Starting the shards, their loop, and the handle the owner keeps.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, info_span, warn};

use crate::backend::mmsg::MmsgIo;
use crate::backend::uring::{self, UringIo};
use crate::backend::{Io, Offload, ShardIo, ShardSockets};
use crate::buffers::Pools;
use crate::channel::{self, Inbox, Message, Outbox};
use crate::config::{
    Backend, BackendKind, MAX_UDP_PAYLOAD, RuntimeConfig, StartError, SteeringRule,
};
use crate::handler::{DatagramHandler, RecvBatch, SendBatch, ShardContext, ShardId};
use crate::placement;
use crate::socket;
use crate::stats::{ShardStats, ShardStatsSnapshot};

/// What the runtime found and chose at start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeReport {
    /// The backend every shard runs.
    pub backend: BackendKind,
    /// Why io_uring is not in use, when the configuration allowed it.
    pub io_uring_unavailable: Option<String>,
    /// Number of data shards.
    pub data_shards: usize,
    /// Whether the cBPF steering program is attached (with a steering rule configured).
    pub steering_program: bool,
    /// `SO_RCVBUF` the kernel granted.
    pub recv_buffer: usize,
    /// `SO_SNDBUF` the kernel granted.
    pub send_buffer: usize,
    /// GSO/GRO state of the shards' sockets at start.
    pub offload: Offload,
    /// The core each shard was pinned to (control first), if pinned.
    pub cores: Vec<Option<usize>>,
}

/// A running set of shards. Dropping it stops and joins them.
#[derive(Debug)]
pub struct Runtime<C: Send + 'static> {
    outbox: Outbox<C>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<ShardStats>>,
    owner_stats: Arc<ShardStats>,
    locals: Vec<std::net::SocketAddr>,
    report: RuntimeReport,
    pools: Pools,
}

/// Sends commands to the shards from any thread (see [`Runtime::commander`]).
#[derive(Debug)]
pub struct Commander<C> {
    outbox: Outbox<C>,
    stats: Arc<ShardStats>,
}

impl<C> Clone for Commander<C> {
    fn clone(&self) -> Self {
        Commander {
            outbox: self.outbox.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<C: Send> Commander<C> {
    /// Sends `command` to `shard`.
    ///
    /// # Errors
    /// Gives the command back when that shard's channel is full or the runtime has stopped.
    pub fn send_command(&self, shard: ShardId, command: C) -> Result<(), C> {
        self.outbox.command(shard, command, &self.stats)
    }
}

/// What a shard thread needs besides its handler.
struct ShardSetup<C> {
    id: ShardId,
    sockets: ShardSockets,
    kind: BackendKind,
    inbox: Inbox<C>,
    outbox: Outbox<C>,
    pools: Pools,
    stats: Arc<ShardStats>,
    core: Option<usize>,
    data_shards: usize,
    steering: Option<SteeringRule>,
    batch: usize,
    ring_entries: u32,
    gso: bool,
    gro: bool,
}

impl<C: Send + 'static> Runtime<C> {
    /// Validates `config`, chooses the backend, binds every socket group and starts the shards, each
    /// with the handler `make_handler` builds for it. Returns once every shard is ready.
    ///
    /// # Errors
    /// [`StartError`] naming what failed: a configuration field, an address in use, a socket option,
    /// io_uring when it was required, or a shard that could not set up its backend.
    pub fn start<H, F>(config: RuntimeConfig, mut make_handler: F) -> Result<Runtime<C>, StartError>
    where
        H: DatagramHandler<Command = C>,
        F: FnMut(ShardId) -> H,
    {
        config.validate()?;
        let data_shards = config.data_shards.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(254)
        });
        let shards = data_shards + 1;
        let (kind, io_uring_unavailable) = choose_backend(&config)?;
        let data_capacity = if config.gro || config.gso {
            MAX_UDP_PAYLOAD
        } else {
            config.max_datagram
        };
        let groups = socket::build(&config, shards, data_shards)?;
        // Large buffers: at least a batch of receives on every socket of a shard and a batch of
        // sends, whatever was configured, so a shard with several sockets never starves its ring.
        let sockets_per_shard = groups
            .per_shard
            .iter()
            .map(|g| g.sockets.len())
            .max()
            .unwrap_or(1);
        let large = config
            .buffers_per_shard
            .max((sockets_per_shard + 1) * config.batch);
        let pools = Pools::new(
            shards,
            large,
            config.small_buffers_per_shard,
            config.application_buffers,
            data_capacity,
            config.max_datagram,
        );
        let (outbox, inboxes) = channel::mesh::<C>(shards, config.channel_capacity, pools.clone())
            .map_err(|source| StartError::Shard {
                shard: 0,
                what: "eventfd",
                source,
            })?;
        let stats: Vec<Arc<ShardStats>> = (0..shards)
            .map(|_| Arc::new(ShardStats::default()))
            .collect();

        let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<Offload, std::io::Error>)>();
        let mut threads = Vec::with_capacity(shards);
        let mut cores = Vec::with_capacity(shards);
        for (index, (sockets, inbox)) in groups.per_shard.into_iter().zip(inboxes).enumerate() {
            let id = ShardId(index as u16);
            let core = if config.pin_threads {
                placement::core_for(index, config.cpus.as_deref())
            } else {
                None
            };
            cores.push(core);
            let setup = ShardSetup {
                id,
                sockets,
                kind,
                inbox,
                outbox: outbox.clone(),
                pools: pools.clone(),
                stats: stats[index].clone(),
                core,
                data_shards,
                steering: config.steering,
                batch: config.batch,
                ring_entries: config.ring_entries,
                gso: config.gso,
                gro: config.gro,
            };
            let handler = make_handler(id);
            let ready = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("pnet-shard-{id}"))
                .spawn(move || run_shard(setup, handler, ready))
                .map_err(|source| StartError::Shard {
                    shard: index,
                    what: "spawn thread",
                    source,
                })?;
            threads.push(thread);
        }
        drop(ready_tx);
        let mut offload = Offload {
            gso: true,
            gro: true,
        };
        let mut failure = None;
        for _ in 0..shards {
            match ready_rx.recv() {
                Ok((_, Ok(o))) => {
                    offload.gso &= o.gso;
                    offload.gro &= o.gro;
                }
                Ok((shard, Err(source))) => {
                    failure.get_or_insert(StartError::Shard {
                        shard,
                        what: "start the I/O backend",
                        source,
                    });
                }
                Err(_) => {
                    failure.get_or_insert(StartError::Shard {
                        shard: 0,
                        what: "start",
                        source: std::io::Error::other("a shard thread exited during start"),
                    });
                    break;
                }
            }
        }
        let report = RuntimeReport {
            backend: kind,
            io_uring_unavailable,
            data_shards,
            steering_program: groups.steering_attached,
            recv_buffer: groups.granted.recv_buffer,
            send_buffer: groups.granted.send_buffer,
            offload,
            cores,
        };
        let runtime = Runtime {
            outbox,
            threads,
            stats,
            owner_stats: Arc::new(ShardStats::default()),
            locals: groups.locals,
            report,
            pools,
        };
        if let Some(e) = failure {
            drop(runtime);
            return Err(e);
        }
        info!(
            backend = %runtime.report.backend,
            data_shards,
            gso = runtime.report.offload.gso,
            gro = runtime.report.offload.gro,
            steering_program = runtime.report.steering_program,
            recv_buffer = runtime.report.recv_buffer,
            "runtime started"
        );
        Ok(runtime)
    }

    /// The bound addresses, one per listen address, in configuration order (port 0 resolved).
    pub fn local_addrs(&self) -> &[std::net::SocketAddr] {
        &self.locals
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        self.report.backend
    }

    /// What was found and chosen at start.
    pub fn report(&self) -> &RuntimeReport {
        &self.report
    }

    /// Counters of `shard`.
    pub fn stats(&self, shard: ShardId) -> Option<ShardStatsSnapshot> {
        self.stats.get(shard.index()).map(|s| s.snapshot())
    }

    /// What the buffer pools reserved at start and how much of it traffic has made resident.
    pub fn buffer_memory(&self) -> crate::PoolMemory {
        self.pools.memory()
    }

    /// Counters of every shard, control first.
    pub fn all_stats(&self) -> Vec<ShardStatsSnapshot> {
        self.stats.iter().map(|s| s.snapshot()).collect()
    }

    /// Sends `command` to `shard`.
    ///
    /// # Errors
    /// Gives the command back when that shard's channel is full (the backpressure).
    pub fn send_command(&self, shard: ShardId, command: C) -> Result<(), C> {
        self.outbox.command(shard, command, &self.owner_stats)
    }

    /// A handle that sends commands to the shards from another thread, like
    /// [`send_command`](Self::send_command); once the runtime has stopped, every send fails.
    pub fn commander(&self) -> Commander<C> {
        Commander {
            outbox: self.outbox.clone(),
            stats: self.owner_stats.clone(),
        }
    }

    /// The shards' buffer pools, to fill a buffer outside a shard and hand it over with a command.
    pub fn buffer_pool(&self) -> crate::BufferPool {
        crate::BufferPool {
            pools: self.pools.clone(),
        }
    }

    /// Stops every shard and waits for them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for i in 0..self.outbox.len() {
            self.outbox.shutdown(ShardId(i as u16));
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                error!("a shard thread panicked");
            }
        }
    }
}

impl<C: Send + 'static> Drop for Runtime<C> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// io_uring when allowed and the probe passes; mmsg otherwise, with the reason.
fn choose_backend(config: &RuntimeConfig) -> Result<(BackendKind, Option<String>), StartError> {
    match config.backend {
        Backend::Mmsg => Ok((BackendKind::Mmsg, None)),
        Backend::IoUring => match uring::probe(config.ring_entries) {
            Ok(()) => Ok((BackendKind::IoUring, None)),
            Err(f) => Err(StartError::IoUringUnavailable { reason: f.reason }),
        },
        Backend::Auto => match uring::probe(config.ring_entries) {
            Ok(()) => Ok((BackendKind::IoUring, None)),
            Err(f) => {
                warn!(reason = %f.reason, "io_uring unavailable; using the recvmmsg/sendmmsg backend");
                Ok((BackendKind::Mmsg, Some(f.reason)))
            }
        },
    }
}

fn run_shard<H: DatagramHandler>(
    setup: ShardSetup<H::Command>,
    mut handler: H,
    ready: mpsc::Sender<(usize, Result<Offload, std::io::Error>)>,
) {
    let ShardSetup {
        id,
        sockets,
        kind,
        inbox,
        outbox,
        pools,
        stats,
        core,
        data_shards,
        steering,
        batch,
        ring_entries,
        gso,
        gro,
    } = setup;
    let span = info_span!("shard", shard = %id);
    let _enter = span.enter();
    if let Some(core) = core {
        placement::pin_current(core);
    }
    let rx_capacity = batch * 2;
    let tx_capacity = rx_capacity + batch;
    let io: Result<Box<dyn Io>, std::io::Error> = match kind {
        BackendKind::Mmsg => Ok(Box::new(MmsgIo::new(
            sockets,
            inbox.waker.fd(),
            batch,
            tx_capacity,
            gso,
            gro,
        ))),
        BackendKind::IoUring => {
            UringIo::new(sockets, inbox.waker.fd(), ring_entries, batch, gso, gro)
                .map(|u| Box::new(u) as Box<dyn Io>)
        }
    };
    let mut io = match io {
        Ok(io) => io,
        Err(e) => {
            let _ = ready.send((id.index(), Err(e)));
            return;
        }
    };
    let offload = io.offload();
    tracing::debug!(backend = %io.kind(), gso = offload.gso, gro = offload.gro, "shard ready");
    stats
        .gso
        .store(offload.gso, std::sync::atomic::Ordering::Relaxed);
    stats
        .gro
        .store(offload.gro, std::sync::atomic::Ordering::Relaxed);
    let _ = ready.send((id.index(), Ok(offload)));
    drop(ready);

    let mut rx = RecvBatch::with_capacity(rx_capacity);
    let mut tx = SendBatch::new(tx_capacity, pools.clone(), id.index());
    let io_ctx = ShardIo {
        pools: &pools,
        shard: id.index(),
        waker: &inbox.waker,
        stats: &stats,
    };
    let mut ctx = ShardContext {
        shard: id,
        data_shards,
        outbox: &outbox,
        stats: &stats,
        pools: &pools,
    };
    let mut stop = false;
    while !stop {
        let now = Instant::now();
        let deadline = handler.poll_timeout();
        inbox.waker.prepare_sleep();
        // Checked after announcing the sleep, so a message sent meanwhile either is seen here or wakes us.
        let timeout = if !inbox.rx.is_empty() {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(now))
        };
        let received = io.recv(&io_ctx, &mut rx, timeout);
        inbox.waker.awake();
        if let Err(e) = received {
            error!(error = %e, "receive failed; the shard stops");
            break;
        }
        if let Some(rule) = steering {
            steer_batch(&rule, data_shards, id, &mut rx, &outbox, &stats);
        }
        let now = Instant::now();
        while let Ok(msg) = inbox.rx.try_recv() {
            match msg {
                Message::Command(c) => {
                    handler.on_command(&mut ctx, now, c, &mut tx);
                    // A burst of commands that each send something must not overrun the batch.
                    if tx.remaining() == 0 {
                        flush(io.as_mut(), &io_ctx, &mut tx, &stats);
                    }
                }
                Message::Datagram(buf, meta) => {
                    ShardStats::add(&stats.forwarded_in, 1);
                    rx.push(buf, meta);
                    if !rx.has_room() {
                        deliver(
                            &mut handler,
                            &mut ctx,
                            now,
                            &mut rx,
                            &mut tx,
                            &pools,
                            &stats,
                        );
                        flush(io.as_mut(), &io_ctx, &mut tx, &stats);
                    }
                }
                Message::Shutdown => stop = true,
            }
        }
        deliver(
            &mut handler,
            &mut ctx,
            now,
            &mut rx,
            &mut tx,
            &pools,
            &stats,
        );
        if handler.poll_timeout().is_some_and(|d| d <= Instant::now()) {
            handler.on_timeout(&mut ctx, Instant::now(), &mut tx);
        }
        flush(io.as_mut(), &io_ctx, &mut tx, &stats);
    }
    rx.release_all(&pools);
}

/// Moves every datagram this shard does not own to its owner.
fn steer_batch<C>(
    rule: &SteeringRule,
    data_shards: usize,
    me: ShardId,
    rx: &mut RecvBatch,
    outbox: &Outbox<C>,
    stats: &ShardStats,
) {
    for i in 0..rx.len() {
        let Some(data) = rx.data(i) else { continue };
        let owner = rule
            .owner(data, data_shards)
            .map_or(ShardId::CONTROL, ShardId::data);
        if owner != me
            && let Some((buf, meta)) = rx.take(i)
        {
            outbox.forward(owner, buf, meta, stats);
        }
    }
}

fn deliver<H: DatagramHandler>(
    handler: &mut H,
    ctx: &mut ShardContext<'_, H::Command>,
    now: Instant,
    rx: &mut RecvBatch,
    tx: &mut SendBatch,
    pools: &Pools,
    stats: &ShardStats,
) {
    let present = (0..rx.len()).filter(|i| rx.meta(*i).is_some()).count();
    if present > 0 {
        ShardStats::add(&stats.handled_datagrams, present as u64);
        handler.on_recv(ctx, now, rx, tx);
    }
    rx.release_all(pools);
}

fn flush(io: &mut dyn Io, io_ctx: &ShardIo<'_>, tx: &mut SendBatch, stats: &ShardStats) {
    ShardStats::add(&stats.send_batch_full, tx.take_full_count());
    if tx.is_empty() {
        return;
    }
    if let Err(e) = io.send(io_ctx, tx) {
        warn!(error = %e, "send failed");
    }
    // Whatever the backend left (on error) goes back to the pool.
    tx.release_all();
}
