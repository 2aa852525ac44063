//! Tests of the steering program: an interpreter check against `SteeringRule::owner`, and the
//! kernel's own placement of datagrams in a real group.

use super::*;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// The rule the engine hands over for WireGuard (STYLE §2).
const WIREGUARD: SteeringRule = SteeringRule {
    type_byte: 4,
    index_offset: 4,
    min_len: 32,
};

/// Runs `prog` on `packet` as the kernel's classic-BPF interpreter would, for the instructions
/// `program` emits. Panics on anything else, and on programs the kernel's checker would reject
/// (a jump out of the program, falling off its end, division by zero).
fn run(prog: &[sock_filter], packet: &[u8]) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = prog
            .get(pc)
            .unwrap_or_else(|| panic!("fell off the program at {pc}"));
        let code = u32::from(insn.code);
        pc += 1;
        let mut skip = |n: u8| {
            pc += usize::from(n);
            assert!(pc < prog.len(), "jump past the end to {pc}");
        };
        match code {
            c if c == BPF_LD | BPF_W | BPF_LEN => a = u32::try_from(packet.len()).unwrap(),
            c if c == BPF_LD | BPF_B | BPF_ABS => match packet.get(insn.k as usize) {
                Some(&b) => a = u32::from(b),
                // An out-of-bounds load ends the program with 0.
                None => return 0,
            },
            c if c == BPF_ALU | BPF_MOD | BPF_K => {
                assert_ne!(insn.k, 0, "the checker rejects a constant modulus of 0");
                a %= insn.k;
            }
            c if c == BPF_ALU | BPF_ADD | BPF_K => a = a.wrapping_add(insn.k),
            c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                skip(if a == insn.k { insn.jt } else { insn.jf })
            }
            c if c == BPF_JMP | BPF_JGE | BPF_K => {
                skip(if a >= insn.k { insn.jt } else { insn.jf })
            }
            c if c == BPF_RET | BPF_K => return insn.k,
            c if c == BPF_RET | BPF_A => return a,
            other => panic!("opcode {other:#x} not handled by the test interpreter"),
        }
    }
}

fn expected(rule: &SteeringRule, packet: &[u8], data_shards: usize) -> u32 {
    match rule.owner(packet, data_shards) {
        None => 0,
        Some(k) => u32::try_from(k + 1).unwrap(),
    }
}

/// xorshift64: deterministic bytes without a dependency.
struct Bytes(u64);
impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.to_le_bytes()[0]
    }
}

#[test]
fn program_matches_owner_in_interpreter() {
    let rules = [
        WIREGUARD,
        SteeringRule {
            type_byte: 0,
            index_offset: 0,
            min_len: 0,
        },
        SteeringRule {
            type_byte: 255,
            index_offset: 1,
            min_len: 1,
        },
        SteeringRule {
            type_byte: 4,
            index_offset: 40,
            min_len: 32,
        },
        SteeringRule {
            type_byte: 2,
            index_offset: 8,
            min_len: 92,
        },
        SteeringRule {
            type_byte: 7,
            index_offset: u16::MAX,
            min_len: u16::MAX,
        },
    ];
    let shard_counts = [0, 1, 2, 3, 7, 8, 200, 254, 255, 256, 257, 1000, usize::MAX];
    let mut bytes = Bytes(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0u32;
    for rule in &rules {
        for &n in &shard_counts {
            let prog = program(rule, n);
            assert!(prog.len() <= 9);
            for len in (0..=100).chain([1400, 65_535, 65_536]) {
                for round in 0..8 {
                    let mut packet: Vec<u8> = (0..len).map(|_| bytes.next()).collect();
                    if round % 2 == 0
                        && let Some(first) = packet.first_mut()
                    {
                        *first = rule.type_byte;
                    }
                    assert_eq!(
                        run(&prog, &packet),
                        expected(rule, &packet, n),
                        "rule {rule:?}, {n} data shards, {len}-byte datagram {:?}",
                        &packet[..packet.len().min(16)]
                    );
                    checked += 1;
                }
            }
            // Every value of the index byte, on a datagram that passes the other checks.
            let len = usize::from(rule.min_len).max(usize::from(rule.index_offset) + 1);
            let mut packet = vec![0u8; len];
            packet[0] = rule.type_byte;
            for b in 0..=u8::MAX {
                packet[usize::from(rule.index_offset)] = b;
                assert_eq!(
                    run(&prog, &packet),
                    expected(rule, &packet, n),
                    "rule {rule:?}, n {n}, byte {b}"
                );
            }
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn wireguard_program_positions() {
    let prog = program(&WIREGUARD, 2);
    let mut transport = vec![0u8; 32];
    transport[0] = 4;
    for k in 0..8u8 {
        transport[4] = k;
        assert_eq!(run(&prog, &transport), 1 + u32::from(k % 2));
    }
    assert_eq!(
        run(&prog, &transport[..31]),
        0,
        "shorter than a transport message"
    );
    for handshake_type in [1u8, 2, 3] {
        let mut other = vec![0u8; 148];
        other[0] = handshake_type;
        assert_eq!(
            run(&prog, &other),
            0,
            "type {handshake_type} belongs to control"
        );
    }
    assert_eq!(run(&prog, &[]), 0);
}

/// A `SO_REUSEPORT` group on loopback: the control socket, then the data sockets, all on one port.
struct Group {
    sockets: Vec<Socket>,
    addr: SocketAddr,
}

impl Group {
    fn bind(ip: std::net::IpAddr, data_shards: usize) -> Group {
        let domain = Domain::for_address(SocketAddr::new(ip, 0));
        let mut addr = SocketAddr::new(ip, 0);
        let mut sockets = Vec::new();
        for position in 0..=data_shards {
            let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).expect("UDP socket");
            socket.set_reuse_port(true).expect("SO_REUSEPORT");
            if ip.is_ipv6() {
                socket.set_only_v6(true).expect("IPV6_V6ONLY");
            }
            socket.bind(&addr.into()).unwrap_or_else(|e| {
                panic!("bind position {position} to {addr}: {e} (is {ip} configured on lo?)")
            });
            socket.set_nonblocking(true).expect("O_NONBLOCK");
            if position == 0 {
                addr = socket.local_addr().unwrap().as_socket().unwrap();
            }
            sockets.push(socket);
        }
        Group { sockets, addr }
    }

    /// Sends `datagram` from `sender` and returns the position of the socket it arrived at.
    fn deliver(&self, sender: &UdpSocket, datagram: &[u8]) -> usize {
        sender.send_to(datagram, self.addr).expect("send");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 2048];
        loop {
            for (position, mut socket) in self.sockets.iter().enumerate() {
                match socket.read(&mut buf) {
                    Ok(n) => {
                        assert_eq!(
                            &buf[..n],
                            datagram,
                            "a different datagram arrived at position {position}"
                        );
                        return position;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("recv at position {position}: {e}"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}-byte datagram never arrived",
                datagram.len()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Several senders, so that a datagram falling back to the 4-tuple hash could not consistently
/// land where the program would have put it.
fn senders(ip: std::net::IpAddr) -> Vec<UdpSocket> {
    (0..4)
        .map(|_| UdpSocket::bind(SocketAddr::new(ip, 0)).expect("sender socket"))
        .collect()
}

/// What the program sees on this kernel: `BPF_LEN` is the UDP payload length and absolute loads
/// start at the first payload byte. Were the offsets relative to the UDP header, `len` would be
/// 8 more and byte 0 the high byte of the source port, so every probe would hash instead.
#[test]
fn kernel_runs_program_on_udp_payload() {
    let ip = Ipv4Addr::LOCALHOST.into();
    let group = Group::bind(ip, 2);
    let senders = senders(ip);

    attach_program(
        group.sockets[0].as_raw_fd(),
        &[stmt(BPF_LD | BPF_W | BPF_LEN, 0), stmt(BPF_RET | BPF_A, 0)],
    )
    .expect("attach `ret len`");
    for sender in &senders {
        for len in 0..=2 {
            assert_eq!(
                group.deliver(sender, &vec![0xee; len]),
                len,
                "`ret len` with a {len}-byte payload"
            );
        }
    }

    attach_program(
        group.sockets[1].as_raw_fd(),
        &[stmt(BPF_LD | BPF_B | BPF_ABS, 0), stmt(BPF_RET | BPF_A, 0)],
    )
    .expect("attach `ret byte[0]`");
    for sender in &senders {
        for first in 0..=2u8 {
            assert_eq!(
                group.deliver(sender, &[first, 0xee, 0xee]),
                usize::from(first),
                "`ret byte[0]` = {first}"
            );
        }
    }

    attach_program(
        group.sockets[2].as_raw_fd(),
        &[stmt(BPF_LD | BPF_B | BPF_ABS, 4), stmt(BPF_RET | BPF_A, 0)],
    )
    .expect("attach `ret byte[4]`");
    for sender in &senders {
        for fifth in 0..=2u8 {
            let datagram = [0xee, 0xee, 0xee, 0xee, fifth, 0xee];
            assert_eq!(
                group.deliver(sender, &datagram),
                usize::from(fifth),
                "`ret byte[4]` = {fifth}"
            );
        }
    }
}

fn steers_like_owner(ip: std::net::IpAddr) {
    const DATA_SHARDS: usize = 2;
    let group = Group::bind(ip, DATA_SHARDS);
    let senders = senders(ip);
    // Attached to a data socket on purpose: the program belongs to the whole group.
    attach(&group.sockets[DATA_SHARDS], &WIREGUARD, DATA_SHARDS).expect("attach steering program");

    let mut datagrams = Vec::new();
    for k in 0..8u8 {
        for len in [32, 33, 148, 1400] {
            let mut d = vec![0xaa; len];
            d[0] = 4;
            d[4] = k;
            datagrams.push(d);
        }
    }
    let mut short = vec![0xaa; 31];
    short[0] = 4;
    short[4] = 1;
    datagrams.push(short);
    for first in [1u8, 2, 3, 5, 0] {
        let mut d = vec![0xaa; 148];
        d[0] = first;
        d[4] = 1;
        datagrams.push(d);
    }
    datagrams.extend([vec![], vec![4], vec![4, 0, 0, 0, 1]]);

    for sender in &senders {
        for datagram in &datagrams {
            let want = expected(&WIREGUARD, datagram, DATA_SHARDS) as usize;
            assert_eq!(
                group.deliver(sender, datagram),
                want,
                "{}-byte datagram starting {:?}",
                datagram.len(),
                &datagram[..datagram.len().min(5)]
            );
        }
    }

    detach(&group.sockets[0]).expect("detach steering program");
    let err = detach(&group.sockets[0]).expect_err("second detach");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOENT),
        "second detach: {err}"
    );
}

#[test]
fn kernel_steers_like_owner_ipv4() {
    steers_like_owner(Ipv4Addr::LOCALHOST.into());
}

#[test]
fn kernel_steers_like_owner_ipv6() {
    steers_like_owner(Ipv6Addr::LOCALHOST.into());
}

#[test]
fn kernel_accepts_every_shape() {
    let group = Group::bind(Ipv4Addr::LOCALHOST.into(), 1);
    for rule in [
        WIREGUARD,
        SteeringRule {
            type_byte: 9,
            index_offset: u16::MAX,
            min_len: 0,
        },
    ] {
        for n in [0, 1, 2, 254, 255, 256, usize::MAX] {
            attach(&group.sockets[0], &rule, n)
                .unwrap_or_else(|e| panic!("rule {rule:?}, {n} data shards: {e}"));
        }
    }
}

#[test]
fn attach_without_reuseport_fails() {
    let plain = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let err = attach(&plain, &WIREGUARD, 2).expect_err("attach to a socket without SO_REUSEPORT");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}
