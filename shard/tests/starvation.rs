//! A shard whose receive pool runs dry because the application holds every buffer resumes receiving
//! by itself once the buffers come back, on both backends. Buffers return from another thread with no
//! wake-up of their own, so a backend that waits only for datagrams or commands would never look again.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use crossbeam_queue::ArrayQueue;
use pnet_mesh_shard::{
    Backend, Buf, DatagramHandler, RecvBatch, Runtime, RuntimeConfig, SendBatch, ShardContext,
    ShardId,
};

/// Keeps every received buffer, as a node does when it hands packets to a slow application.
struct Hoard {
    held: Arc<ArrayQueue<Buf>>,
}

impl DatagramHandler for Hoard {
    type Command = ();

    fn on_recv(
        &mut self,
        ctx: &mut ShardContext<'_, ()>,
        _: Instant,
        rx: &mut RecvBatch,
        _: &mut SendBatch,
    ) {
        for i in 0..rx.len() {
            if let Some((buf, _)) = rx.take(i)
                && let Err(buf) = self.held.push(buf)
            {
                ctx.buffer_pool().release(buf);
            }
        }
    }

    fn on_command(&mut self, _: &mut ShardContext<'_, ()>, _: Instant, _: (), _: &mut SendBatch) {}
}

/// Sends datagrams to the shard until `want` buffers are held or the deadline passes.
fn fill(client: &UdpSocket, to: std::net::SocketAddr, held: &ArrayQueue<Buf>, want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 0;
    while held.len() < want {
        if Instant::now() > deadline {
            return false;
        }
        client.send_to(&data_datagram(0, seq, 200), to).unwrap();
        seq += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

fn resumes_after_the_pool_runs_dry(backend: Backend) {
    const POOL: usize = 64;
    let held = Arc::new(ArrayQueue::new(4 * POOL));
    let hoard = held.clone();
    let config = RuntimeConfig::new(["127.0.0.1:0".parse().unwrap()])
        .backend(backend)
        .data_shards(1)
        .steering(RULE)
        .batch(8)
        .buffers_per_shard(POOL)
        .gso(false)
        .gro(false)
        .pin_threads(false);
    let runtime: Runtime<()> = Runtime::start(config, move |_| Hoard {
        held: hoard.clone(),
    })
    .unwrap_or_else(|e| panic!("runtime start ({backend:?}): {e}"));
    let server = runtime.local_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();

    // Until the pool is dry: every buffer the data shard has is held (some stay armed in the ring).
    assert!(
        fill(&client, server, &held, POOL),
        "{backend:?}: every buffer of the pool is held ({} held)",
        held.len()
    );
    assert!(
        runtime.stats(ShardId::data(0)).unwrap().no_buffer > 0,
        "{backend:?}: the shard saw its pool dry"
    );

    // The application gives everything back, from this thread, with no datagram or command after.
    let pool = runtime.buffer_pool();
    while let Some(buf) = held.pop() {
        pool.release(buf);
    }
    assert!(
        fill(&client, server, &held, 16),
        "{backend:?}: receiving resumed once the buffers came back ({} held)",
        held.len()
    );
    while let Some(buf) = held.pop() {
        pool.release(buf);
    }
    runtime.shutdown();
}

#[test]
fn receive_resumes_after_the_pool_runs_dry_mmsg() {
    resumes_after_the_pool_runs_dry(Backend::Mmsg);
}

#[test]
fn receive_resumes_after_the_pool_runs_dry_io_uring() {
    resumes_after_the_pool_runs_dry(Backend::IoUring);
}
