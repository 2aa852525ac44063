//! Two PNet Mesh nodes on loopback: a real WireGuard handshake over UDP sockets, then datagrams both
//! ways, IPv4 and IPv6 inside the tunnel. Prints what happened on the wire and in each node.
//!
//! ```text
//! cargo run -p pnet-mesh --example loopback_pair
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh::crypto::{PresharedKey, PrivateKey};
use pnet_mesh::{Datagram, Endpoint, EndpointConfig, PacketBuf, PeerConfig, PeerId, ip};

/// One node: the sans-I/O endpoint and the socket that carries its datagrams.
struct Node {
    name: &'static str,
    endpoint: Endpoint,
    socket: UdpSocket,
}

impl Node {
    /// Sends every datagram the endpoint has ready and prints its events.
    fn flush(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        let mut out = [0u8; 2048];
        while let Some(t) = self.endpoint.poll_transmit(now, &mut out) {
            println!(
                "{}: sends {} bytes ({}) to {}",
                self.name,
                t.len,
                kind(&out[..t.len]),
                t.to
            );
            self.socket.send_to(&out[..t.len], t.to)?;
        }
        while let Some(event) = self.endpoint.poll_event() {
            println!("{}: event {event:?}", self.name);
        }
        Ok(())
    }

    /// Receives one datagram (if any arrives within 100 ms) and returns a delivered UDP payload.
    fn receive(&mut self) -> std::io::Result<Option<(SocketAddr, Vec<u8>)>> {
        let mut buf = [0u8; 2048];
        let (n, from) = match self.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        println!(
            "{}: receives {n} bytes ({}) from {from}",
            self.name,
            kind(&buf[..n])
        );
        let delivered = match self
            .endpoint
            .handle_datagram(Instant::now(), from, &mut buf[..n])
        {
            Datagram::Deliver { packet, .. } => {
                ip::parse_udp(packet).map(|udp| (udp.src, udp.payload.to_vec()))
            }
            Datagram::Reply { to, len } => {
                println!(
                    "{}: replies {len} bytes ({}) to {to}",
                    self.name,
                    kind(&buf[..len])
                );
                self.socket.send_to(&buf[..len], to)?;
                None
            }
            Datagram::Consumed => None,
            Datagram::Dropped(reason) => {
                println!("{}: dropped ({reason})", self.name);
                None
            }
        };
        self.flush()?;
        Ok(delivered)
    }

    /// Wraps `payload` in an IP/UDP packet from `from` to `to` and hands it to the endpoint.
    fn send_udp(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let hdr = ip::udp_headers_len(&to);
        let mut buf = vec![0u8; PacketBuf::HEADROOM + hdr + payload.len() + PacketBuf::TAILROOM];
        let mut pkt = PacketBuf::new(&mut buf, hdr + payload.len())?;
        pkt.payload_mut()[hdr..].copy_from_slice(payload);
        ip::emit_udp(pkt.payload_mut(), from, to, payload.len())
            .ok_or("cannot build the UDP packet")?;
        match self.endpoint.send_packet(Instant::now(), &mut pkt)? {
            Some(t) => {
                println!(
                    "{}: seals {:?} into {} bytes for {}",
                    self.name,
                    String::from_utf8_lossy(payload),
                    t.len,
                    t.to
                );
                self.socket.send_to(&pkt.datagram()[..t.len], t.to)?;
            }
            None => println!(
                "{}: holds {:?} until the handshake completes",
                self.name,
                String::from_utf8_lossy(payload)
            ),
        }
        self.flush()?;
        Ok(())
    }
}

fn kind(datagram: &[u8]) -> &'static str {
    match datagram.first() {
        Some(1) => "handshake initiation",
        Some(2) => "handshake response",
        Some(3) => "cookie reply",
        Some(4) if datagram.len() == 32 => "keepalive",
        Some(4) => "transport data",
        _ => "unknown",
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alice_socket = UdpSocket::bind("127.0.0.1:0")?;
    let bob_socket = UdpSocket::bind("127.0.0.1:0")?;
    for s in [&alice_socket, &bob_socket] {
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
    }
    let alice_key = PrivateKey::generate(&mut OsRng);
    let bob_key = PrivateKey::generate(&mut OsRng);
    let psk = PresharedKey::from_bytes(*PrivateKey::generate(&mut OsRng).as_bytes());
    println!(
        "alice {} on {}",
        alice_key.public_key(),
        alice_socket.local_addr()?
    );
    println!(
        "bob   {} on {}",
        bob_key.public_key(),
        bob_socket.local_addr()?
    );

    let alice_config = EndpointConfig::builder(alice_key.clone())
        .peer(
            PeerConfig::new(bob_key.public_key())
                .preshared_key(psk.clone())
                .endpoint(bob_socket.local_addr()?)
                .allowed_ip("10.99.0.2/32".parse()?)
                .allowed_ip("fd99::2/128".parse()?),
        )
        .build()?;
    // Bob does not know Alice's address: he learns it from her authenticated handshake (roaming).
    let bob_config = EndpointConfig::builder(bob_key)
        .peer(
            PeerConfig::new(alice_key.public_key())
                .preshared_key(psk)
                .allowed_ip("10.99.0.1/32".parse()?)
                .allowed_ip("fd99::1/128".parse()?),
        )
        .build()?;
    let now = Instant::now();
    let mut alice = Node {
        name: "alice",
        endpoint: Endpoint::new(Arc::new(alice_config), Box::new(OsRng), now),
        socket: alice_socket,
    };
    let mut bob = Node {
        name: "bob",
        endpoint: Endpoint::new(Arc::new(bob_config), Box::new(OsRng), now),
        socket: bob_socket,
    };

    let a4: SocketAddr = "10.99.0.1:9000".parse()?;
    let b4: SocketAddr = "10.99.0.2:9000".parse()?;
    let a6: SocketAddr = "[fd99::1]:9000".parse()?;
    let b6: SocketAddr = "[fd99::2]:9000".parse()?;

    alice.send_udp(a4, b4, b"hello bob over ipv4")?;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 4 && Instant::now() < deadline {
        if let Some(d) = bob.receive()? {
            println!(
                "bob: delivered {:?} from {}",
                String::from_utf8_lossy(&d.1),
                d.0
            );
            if d.1 == b"hello bob over ipv4" {
                bob.send_udp(b4, a4, b"hello alice over ipv4")?;
                bob.send_udp(b6, a6, b"hello alice over ipv6")?;
            }
            got.push(d);
        }
        if let Some(d) = alice.receive()? {
            println!(
                "alice: delivered {:?} from {}",
                String::from_utf8_lossy(&d.1),
                d.0
            );
            if d.1 == b"hello alice over ipv6" {
                alice.send_udp(a6, b6, b"hello bob over ipv6")?;
            }
            got.push(d);
        }
    }
    for (name, node) in [("alice", &alice), ("bob", &bob)] {
        let stats = node.endpoint.peer_stats(PeerId(0)).ok_or("no stats")?;
        println!(
            "{name}: peer {} endpoint {:?} sent {} B in {} packets, received {} B in {} packets",
            stats.public_key.short(),
            stats.endpoint,
            stats.tx_bytes,
            stats.tx_packets,
            stats.rx_bytes,
            stats.rx_packets
        );
    }
    if got.len() < 4 {
        return Err(format!("only {} of 4 datagrams arrived", got.len()).into());
    }
    println!("ok: handshake done, 4 datagrams delivered (IPv4 and IPv6, both ways)");
    Ok(())
}
