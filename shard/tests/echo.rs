//! Echo on loopback through every shard, IPv4 and IPv6, with GSO/GRO on and off, for each backend.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use pnet_mesh_shard::{Backend, BackendKind, ShardId};

const DATA_SHARDS: usize = 2;

fn listen() -> Vec<SocketAddr> {
    vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()]
}

/// Sends data datagrams for every data shard and control datagrams, over IPv4 and IPv6, and checks
/// every one comes back tagged by the shard that owns it.
fn echo_through_every_shard(backend: Backend, offload: bool) {
    let (runtime, _) = echo_runtime(&listen(), backend, DATA_SHARDS, offload, true);
    let expected_kind = match backend {
        Backend::Mmsg => BackendKind::Mmsg,
        _ => BackendKind::IoUring,
    };
    assert_eq!(runtime.backend(), expected_kind);
    assert_eq!(runtime.report().offload.gso, offload);
    assert_eq!(runtime.report().offload.gro, offload);
    let locals = runtime.local_addrs();
    assert_eq!(
        locals[0].port(),
        locals[1].port(),
        "the second port-0 address takes the first one's port: one port for both families"
    );
    for &server in locals {
        assert_ne!(server.port(), 0, "port 0 resolved");
        let mut sent = Vec::new();
        for seq in 0..200u32 {
            let k = (seq % 8) as u8;
            sent.push(data_datagram(k, seq, 64 + (seq as usize % 5) * 100));
        }
        for seq in 200..220u32 {
            sent.push(control_datagram(seq));
        }
        let replies = exchange(server, &sent, Duration::from_secs(10));
        assert_eq!(
            replies.len(),
            sent.len(),
            "every datagram echoed via {server}"
        );
        for reply in &replies {
            let seq = u32::from_le_bytes(reply[8..12].try_into().unwrap());
            let original = &sent[seq as usize];
            assert_eq!(reply.len(), original.len());
            let owner = if original[0] == 4 {
                ShardId::data(usize::from(original[4]) % DATA_SHARDS)
            } else {
                ShardId::CONTROL
            };
            assert_eq!(
                reply[TAG_AT], owner.0 as u8,
                "datagram {seq} handled by its owner"
            );
            assert_eq!(reply[12..], original[12..], "payload intact");
        }
    }
    let stats = runtime.all_stats();
    for (shard, s) in stats.iter().enumerate() {
        assert!(
            s.handled_datagrams > 0,
            "shard {shard} handled datagrams: {s:?}"
        );
        assert_eq!(s.forward_dropped, 0);
    }
    runtime.shutdown();
}

/// Sends super-datagrams with UDP GSO from the client so the server receives GRO batches, and checks
/// the server answers with GSO sends.
fn echo_gso_gro(backend: Backend) {
    let (runtime, gro_batches) = echo_runtime(&listen()[..1], backend, 1, true, true);
    let server = runtime.local_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let segment = 1452usize;
    let per_send = 16usize;
    let sends = 20u32;
    let mut received = 0usize;
    let mut buf = vec![0u8; 65536];
    for s in 0..sends {
        let mut payload = Vec::with_capacity(segment * per_send);
        for j in 0..per_send {
            payload.extend_from_slice(&data_datagram(0, s * 100 + j as u32, segment));
        }
        send_gso(&client, server, &payload, segment as u16);
        while let Ok((n, _)) = client.recv_from(&mut buf) {
            assert_eq!(n, segment);
            received += 1;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while received < sends as usize * per_send && std::time::Instant::now() < deadline {
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            assert_eq!(n, segment);
            received += 1;
        }
    }
    assert_eq!(received, sends as usize * per_send, "every segment echoed");
    assert!(
        gro_batches.load(Ordering::Relaxed) > 0,
        "the server received GRO super-datagrams"
    );
    let data = runtime.stats(ShardId::data(0)).unwrap();
    assert!(
        data.tx_gso_sends > 0,
        "the server answered with GSO sends: {data:?}"
    );
    assert_eq!(data.tx_datagrams, (sends as usize * per_send) as u64);
    runtime.shutdown();
}

/// One sendmsg with a UDP_SEGMENT control message.
fn send_gso(socket: &UdpSocket, to: SocketAddr, payload: &[u8], segment: u16) {
    let SocketAddr::V4(v4) = to else {
        panic!("IPv4 only")
    };
    // SAFETY: sockaddr_in is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = v4.port().to_be();
    addr.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    #[repr(C, align(8))]
    struct Cmsg([u8; 32]);
    let mut control = Cmsg([0; 32]);
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
    hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
    // SAFETY: the header points at live locals (address, iovec over `payload`, a 32-byte aligned
    // control buffer, room for one u16 message) that outlive the call.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
        let r = libc::sendmsg(socket.as_raw_fd(), &hdr, 0);
        assert_eq!(
            r as usize,
            payload.len(),
            "GSO send: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn echo_every_shard_ipv4_ipv6_offload_on_mmsg() {
    echo_through_every_shard(Backend::Mmsg, true);
}

#[test]
fn echo_every_shard_ipv4_ipv6_offload_off_mmsg() {
    echo_through_every_shard(Backend::Mmsg, false);
}

#[test]
fn echo_every_shard_ipv4_ipv6_offload_on_io_uring() {
    echo_through_every_shard(Backend::IoUring, true);
}

#[test]
fn echo_every_shard_ipv4_ipv6_offload_off_io_uring() {
    echo_through_every_shard(Backend::IoUring, false);
}

#[test]
fn echo_gso_gro_super_datagrams_mmsg() {
    echo_gso_gro(Backend::Mmsg);
}

#[test]
fn echo_gso_gro_super_datagrams_io_uring() {
    echo_gso_gro(Backend::IoUring);
}
