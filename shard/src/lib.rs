//! The thread-per-core UDP runtime of PNet Mesh.
//!
//! It moves datagrams between UDP sockets and a [`DatagramHandler`] the caller plugs into each shard,
//! and knows nothing of the protocol those datagrams carry (as quinn-udp knows nothing of QUIC).
//!
//! - **Shards.** One control shard and N data shards, each a thread pinned to a core, each owning a
//!   socket per listen address, an I/O backend and a fixed buffer pool. Idle shards block in the kernel.
//! - **Steering.** Per listen address, a `SO_REUSEPORT` group with fixed positions (control first, data
//!   shard k at k + 1) and a classic-BPF program compiled from a [`SteeringRule`]. Every shard checks the
//!   rule again and moves datagrams it does not own to their owner over a bounded channel, counted.
//! - **Backends.** io_uring or batched `recvmmsg`/`sendmmsg`, both with UDP GSO and GRO; io_uring is
//!   probed at start and the runtime falls back to mmsg by itself, saying why.
//!
//! # Example
//!
//! An echo handler on loopback:
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//!
//! use pnet_mesh_shard::{DatagramHandler, RecvBatch, Runtime, RuntimeConfig, SendBatch, ShardContext};
//!
//! struct Echo;
//!
//! impl DatagramHandler for Echo {
//!     type Command = ();
//!     fn on_recv(&mut self, _: &mut ShardContext<'_, ()>, _: Instant, rx: &mut RecvBatch, tx: &mut SendBatch) {
//!         for i in 0..rx.len() {
//!             if let (Some(meta), Some((_, range))) = (rx.meta(i).copied(), rx.buffer_mut(i)) {
//!                 let _ = tx.push_rx(rx, i, meta.from, range);
//!             }
//!         }
//!     }
//!     fn on_command(&mut self, _: &mut ShardContext<'_, ()>, _: Instant, _: (), _: &mut SendBatch) {}
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RuntimeConfig::new(["127.0.0.1:0".parse()?]).data_shards(1).pin_threads(false);
//! let runtime = Runtime::start(config, |_| Echo)?;
//! let server = runtime.local_addrs()[0];
//!
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.set_read_timeout(Some(Duration::from_secs(5)))?;
//! client.send_to(b"ping", server)?;
//! let mut buf = [0u8; 16];
//! let (n, _) = client.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"ping");
//! println!("echoed by the {} backend", runtime.backend());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod buffers;
mod channel;
mod config;
mod handler;
mod placement;
mod readiness;
mod runtime;
mod socket;
mod stats;
mod steer;

pub use backend::Offload;
pub use buffers::{Buf, BufferPool, PoolMemory};
pub use channel::Outbox;
pub use config::{
    Backend, BackendKind, HEADROOM, MAX_UDP_PAYLOAD, RuntimeConfig, StartError, SteeringRule,
    TAILROOM,
};
pub use handler::{
    DatagramHandler, RecvBatch, RecvMeta, SendBatch, SendBatchFull, ShardContext, ShardId,
};
pub use readiness::Readiness;
pub use runtime::{Commander, Runtime, RuntimeReport};
pub use stats::{ShardStats, ShardStatsSnapshot};
