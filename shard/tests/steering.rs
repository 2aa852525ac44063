//! Steering: with the cBPF program attached, datagrams reach their owning shard directly; with it
//! detached, the kernel spreads them by hash and the ownership channels still bring each one home.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use pnet_mesh_shard::{Backend, ShardId};

fn steer(backend: Backend, attach: bool) {
    let listen: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    let (runtime, _) = echo_runtime(&listen, backend, 2, false, attach);
    assert_eq!(runtime.report().steering_program, attach);
    let server = runtime.local_addrs()[0];
    // Many client sockets, so the kernel's hash spreads them over the group when no program runs.
    let mut per_shard = [0u64; 3];
    for client in 0..16u32 {
        let mut sent = Vec::new();
        for i in 0..20u32 {
            let seq = client * 100 + i;
            let k = (i % 2) as u8;
            sent.push(data_datagram(k, seq, 96));
            per_shard[1 + usize::from(k)] += 1;
        }
        sent.push(control_datagram(client * 100 + 99));
        per_shard[0] += 1;
        // `exchange` indexes replies by sequence; rebuild a dense list for it.
        let dense: Vec<Vec<u8>> = sent
            .iter()
            .enumerate()
            .map(|(j, d)| {
                let mut d = d.clone();
                d[8..12].copy_from_slice(&(j as u32).to_le_bytes());
                d
            })
            .collect();
        let replies = exchange(server, &dense, Duration::from_secs(5));
        assert_eq!(replies.len(), dense.len());
        for r in &replies {
            let j = u32::from_le_bytes(r[8..12].try_into().unwrap()) as usize;
            let d = &dense[j];
            let owner = if d[0] == 4 {
                ShardId::data(usize::from(d[4]) % 2)
            } else {
                ShardId::CONTROL
            };
            assert_eq!(r[TAG_AT], owner.0 as u8, "handled by the owner");
        }
    }
    let stats = runtime.all_stats();
    let handled: Vec<u64> = stats.iter().map(|s| s.handled_datagrams).collect();
    assert_eq!(
        handled,
        per_shard.to_vec(),
        "each shard handled exactly its own datagrams"
    );
    let forwarded: u64 = stats.iter().map(|s| s.forwarded_out).sum();
    let forwarded_in: u64 = stats.iter().map(|s| s.forwarded_in).sum();
    assert_eq!(forwarded, forwarded_in);
    if attach {
        assert_eq!(
            forwarded, 0,
            "with the program attached nothing is misdelivered: {stats:?}"
        );
    } else {
        assert!(
            forwarded > 0,
            "without the program the channels carry misdeliveries: {stats:?}"
        );
    }
    runtime.shutdown();
}

#[test]
fn steering_program_delivers_to_owner_mmsg() {
    steer(Backend::Mmsg, true);
}

#[test]
fn steering_without_program_forwards_to_owner_mmsg() {
    steer(Backend::Mmsg, false);
}

#[test]
fn steering_program_delivers_to_owner_io_uring() {
    steer(Backend::IoUring, true);
}

#[test]
fn steering_without_program_forwards_to_owner_io_uring() {
    steer(Backend::IoUring, false);
}
