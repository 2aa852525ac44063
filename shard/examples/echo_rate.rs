//! Echo rate on loopback for each backend, with GSO/GRO off and on, side by side in one run.
//!
//! A server runtime echoes; a client runtime keeps a window of datagrams in flight and sends a new one
//! for every reply. Both run the same backend. Reported: echoed datagrams per second and the ratio to
//! the first row, so a noisy machine still gives a comparison.
//!
//! ```text
//! cargo run --release -p pnet-mesh-shard --example echo_rate -- [--seconds 3] [--size 1452] [--window 256]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pnet_mesh_shard::{
    Backend, DatagramHandler, RecvBatch, Runtime, RuntimeConfig, SendBatch, ShardContext, ShardId,
    SteeringRule,
};

const RULE: SteeringRule = SteeringRule {
    type_byte: 4,
    index_offset: 4,
    min_len: 32,
};

struct Echo;

impl DatagramHandler for Echo {
    type Command = ();
    fn on_recv(
        &mut self,
        _: &mut ShardContext<'_, ()>,
        _: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        for i in 0..rx.len() {
            let Some(meta) = rx.meta(i).copied() else {
                continue;
            };
            if meta.segments() == 1 {
                if let Some((_, range)) = rx.buffer_mut(i) {
                    let _ = tx.push_rx(rx, i, meta.from, range);
                }
            } else {
                let data = rx.data(i).unwrap_or_default().to_vec();
                for seg in data.chunks(meta.stride) {
                    let _ = tx.push(meta.from, seg);
                }
            }
        }
    }
    fn on_command(&mut self, _: &mut ShardContext<'_, ()>, _: Instant, _: (), _: &mut SendBatch) {}
}

/// Keeps `window` datagrams in flight to the server.
struct Client {
    datagram: Vec<u8>,
    echoed: Arc<AtomicU64>,
    server: Option<SocketAddr>,
}

impl DatagramHandler for Client {
    type Command = (SocketAddr, usize);
    fn on_recv(
        &mut self,
        _: &mut ShardContext<'_, Self::Command>,
        _: Instant,
        rx: &mut RecvBatch,
        tx: &mut SendBatch,
    ) {
        let Some(server) = self.server else { return };
        let mut n = 0;
        for i in 0..rx.len() {
            if let Some(meta) = rx.meta(i) {
                n += meta.segments();
            }
        }
        self.echoed.fetch_add(n as u64, Ordering::Relaxed);
        for _ in 0..n {
            if tx.push(server, &self.datagram).is_err() {
                break;
            }
        }
    }
    fn on_command(
        &mut self,
        _: &mut ShardContext<'_, Self::Command>,
        _: Instant,
        (server, window): Self::Command,
        tx: &mut SendBatch,
    ) {
        self.server = Some(server);
        for _ in 0..window {
            let _ = tx.push(server, &self.datagram);
        }
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(backend: Backend, offload: bool) -> RuntimeConfig {
    RuntimeConfig::new(["127.0.0.1:0".parse().expect("literal")])
        .backend(backend)
        .data_shards(1)
        .steering(RULE)
        .gso(offload)
        .gro(offload)
        .batch(64)
        .buffers_per_shard(2048)
        .channel_capacity(4096)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if cfg!(debug_assertions) {
        eprintln!(
            "echo_rate measures a debug build; use: cargo run --release -p pnet-mesh-shard --example echo_rate"
        );
    }
    let seconds = arg("--seconds", 3) as u64;
    let size = arg("--size", 1452);
    let window = arg("--window", 256);
    let mut datagram = vec![0u8; size];
    datagram[0] = 4;
    println!("echo on loopback: {size}-byte datagrams, window {window}, {seconds} s per row");
    println!(
        "{:<10} {:<8} {:>14} {:>10} {:>8}",
        "backend", "gso/gro", "datagrams/s", "Gbit/s", "ratio"
    );
    let mut first = None;
    for backend in [Backend::Mmsg, Backend::IoUring] {
        for offload in [false, true] {
            let server = Runtime::start(config(backend, offload), |_| Echo)?;
            let echoed = Arc::new(AtomicU64::new(0));
            let counter = echoed.clone();
            let payload = datagram.clone();
            let client = Runtime::start(config(backend, offload), move |_| Client {
                datagram: payload.clone(),
                echoed: counter.clone(),
                server: None,
            })?;
            let target = server.local_addrs()[0];
            client
                .send_command(ShardId::data(0), (target, window))
                .map_err(|_| "client channel full")?;
            std::thread::sleep(Duration::from_millis(500));
            let start_count = echoed.load(Ordering::Relaxed);
            let start = Instant::now();
            std::thread::sleep(Duration::from_secs(seconds));
            let count = echoed.load(Ordering::Relaxed) - start_count;
            let rate = count as f64 / start.elapsed().as_secs_f64();
            let base = *first.get_or_insert(rate);
            let report = server.report().clone();
            println!(
                "{:<10} {:<8} {:>14.0} {:>10.2} {:>8.2}",
                report.backend.to_string(),
                if report.offload.gso && report.offload.gro {
                    "on"
                } else if offload {
                    "refused"
                } else {
                    "off"
                },
                rate,
                rate * size as f64 * 8.0 / 1e9,
                rate / base
            );
            client.shutdown();
            server.shutdown();
        }
    }
    Ok(())
}
