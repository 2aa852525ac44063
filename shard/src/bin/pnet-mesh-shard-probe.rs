//! Says which I/O backend the runtime would use on this machine and why: starts a one-shard runtime on
//! loopback with the automatic choice, prints the report, and exits.
//!
//! ```text
//! pnet-mesh-shard-probe                     # the automatic choice
//! pnet-mesh-shard-probe --require-io-uring  # fail (exit 1) unless io_uring works
//! ```

use std::process::ExitCode;
use std::time::Instant;

use pnet_mesh_shard::{
    Backend, DatagramHandler, RecvBatch, Runtime, RuntimeConfig, SendBatch, ShardContext,
};

struct Idle;

impl DatagramHandler for Idle {
    type Command = ();
    fn on_recv(
        &mut self,
        _: &mut ShardContext<'_, ()>,
        _: Instant,
        _: &mut RecvBatch,
        _: &mut SendBatch,
    ) {
    }
    fn on_command(&mut self, _: &mut ShardContext<'_, ()>, _: Instant, _: (), _: &mut SendBatch) {}
}

fn main() -> ExitCode {
    let require = std::env::args().any(|a| a == "--require-io-uring");
    let backend = if require {
        Backend::IoUring
    } else {
        Backend::Auto
    };
    let config = RuntimeConfig::new(["127.0.0.1:0".parse().expect("literal address")])
        .backend(backend)
        .data_shards(1)
        .pin_threads(false);
    match Runtime::start(config, |_| Idle) {
        Ok(runtime) => {
            let r = runtime.report();
            println!("backend: {}", r.backend);
            match &r.io_uring_unavailable {
                Some(reason) => println!("io_uring: unavailable: {reason}"),
                None => println!("io_uring: available"),
            }
            println!("gso: {}", r.offload.gso);
            println!("gro: {}", r.offload.gro);
            println!("recv_buffer: {}", r.recv_buffer);
            println!("send_buffer: {}", r.send_buffer);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
