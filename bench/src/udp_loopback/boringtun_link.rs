//! The peer: the crates.io `boringtun` library (`noise::Tunn`) doing the same handshake and transport
//! over loopback UDP the way its own device loop does: one datagram per `sendto`/`recvfrom`, 4 MiB
//! socket buffers, `decapsulate` then repeated empty `decapsulate` calls to flush what it queued.
//!
//! Runs are short (the handshake is done once at start, and no timer pass runs), so a measured window
//! must stay under boringtun's REKEY_AFTER_TIME of 120 s.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use pnet_mesh::ip;
use socket2::{Domain, Socket, Type};

use super::drive::Link;

const SOCKET_BUFFER: usize = 4 << 20;
const SCRATCH: usize = 65_536;

struct Side {
    tunn: Tunn,
    packet: Vec<u8>,
    out: Vec<u8>,
}

/// Tunnel A sends, tunnel B receives.
pub struct BoringtunLink {
    a: Mutex<Side>,
    b: Mutex<Side>,
    sock_a: UdpSocket,
    sock_b: UdpSocket,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    src: SocketAddr,
    dst: SocketAddr,
}

impl std::fmt::Debug for BoringtunLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoringtunLink")
            .field("a", &self.a_addr)
            .field("b", &self.b_addr)
            .finish_non_exhaustive()
    }
}

fn socket() -> Result<UdpSocket, String> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(|e| format!("socket: {e}"))?;
    // As boringtun's device sets them; the kernel may grant less without privilege.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    let any: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    s.bind(&any.into()).map_err(|e| format!("bind: {e}"))?;
    Ok(s.into())
}

fn side(private: [u8; 32], peer_public: PublicKey, index: u32) -> Side {
    Side {
        tunn: Tunn::new(
            StaticSecret::from(private),
            peer_public,
            None,
            None,
            index,
            None,
        ),
        packet: vec![0u8; SCRATCH],
        out: vec![0u8; SCRATCH],
    }
}

impl BoringtunLink {
    /// Two tunnels and their sockets, handshake done.
    ///
    /// # Errors
    /// A socket that could not be set up, or a handshake that did not complete.
    pub fn start() -> Result<BoringtunLink, String> {
        let (a_private, b_private) = ([0x1a; 32], [0x2b; 32]);
        let a_public = PublicKey::from(&StaticSecret::from(a_private));
        let b_public = PublicKey::from(&StaticSecret::from(b_private));
        let (sock_a, sock_b) = (socket()?, socket()?);
        for s in [&sock_a, &sock_b] {
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|e| format!("read timeout: {e}"))?;
        }
        let a_addr = sock_a.local_addr().map_err(|e| e.to_string())?;
        let b_addr = sock_b.local_addr().map_err(|e| e.to_string())?;
        let parse = |s: &str| s.parse().map_err(|e| format!("{s}: {e}"));
        let link = BoringtunLink {
            a: Mutex::new(side(a_private, b_public, 1)),
            b: Mutex::new(side(b_private, a_public, 2)),
            sock_a,
            sock_b,
            a_addr,
            b_addr,
            src: parse("10.77.0.1:51800")?,
            dst: parse("10.77.0.2:51800")?,
        };
        link.handshake()?;
        Ok(link)
    }

    fn handshake(&self) -> Result<(), String> {
        let mut a = self.a.lock().map_err(|_| "lock")?;
        let a = &mut *a;
        match a.tunn.format_handshake_initiation(&mut a.out, false) {
            TunnResult::WriteToNetwork(init) => self.send(&self.sock_a, init, self.b_addr)?,
            _ => return Err("boringtun made no initiation".into()),
        }
        let mut wire = vec![0u8; SCRATCH];
        let (n, _) = self
            .sock_b
            .recv_from(&mut wire)
            .map_err(|e| format!("initiation not received: {e}"))?;
        {
            let mut b = self.b.lock().map_err(|_| "lock")?;
            let b = &mut *b;
            match b
                .tunn
                .decapsulate(Some(self.a_addr.ip()), &wire[..n], &mut b.out)
            {
                TunnResult::WriteToNetwork(resp) => self.send(&self.sock_b, resp, self.a_addr)?,
                _ => return Err("boringtun made no response".into()),
            }
        }
        let (n, _) = self
            .sock_a
            .recv_from(&mut wire)
            .map_err(|e| format!("response not received: {e}"))?;
        match a
            .tunn
            .decapsulate(Some(self.b_addr.ip()), &wire[..n], &mut a.out)
        {
            // The confirming keepalive; B's receive path takes it like any datagram.
            TunnResult::WriteToNetwork(keepalive) => {
                self.send(&self.sock_a, keepalive, self.b_addr)
            }
            TunnResult::Done => Ok(()),
            TunnResult::Err(e) => Err(format!("handshake response refused: {e:?}")),
            _ => Err("unexpected result for the handshake response".into()),
        }
    }

    fn send(&self, sock: &UdpSocket, datagram: &[u8], to: SocketAddr) -> Result<(), String> {
        sock.send_to(datagram, to)
            .map(|_| ())
            .map_err(|e| format!("send: {e}"))
    }
}

impl Link for BoringtunLink {
    fn try_send(&self, app: &[u8]) -> bool {
        let Ok(mut a) = self.a.lock() else {
            return false;
        };
        let a = &mut *a;
        let headers = ip::udp_headers_len(&self.dst);
        let Some(body) = a.packet.get_mut(headers..headers + app.len()) else {
            return false;
        };
        body.copy_from_slice(app);
        let Some(len) = ip::emit_udp(&mut a.packet, self.src, self.dst, app.len()) else {
            return false;
        };
        match a.tunn.encapsulate(&a.packet[..len], &mut a.out) {
            TunnResult::WriteToNetwork(d) => self.sock_a.send_to(d, self.b_addr).is_ok(),
            _ => false,
        }
    }

    fn recv(&self, buf: &mut [u8], _wait: Duration) -> Option<usize> {
        let Ok(mut b) = self.b.lock() else {
            return None;
        };
        let b = &mut *b;
        // The read timeout set at start bounds the wait.
        let (n, from) = self.sock_b.recv_from(&mut b.packet).ok()?;
        let src: IpAddr = from.ip();
        match b.tunn.decapsulate(Some(src), &b.packet[..n], &mut b.out) {
            TunnResult::WriteToTunnelV4(packet, _) => ip::parse_udp(packet).and_then(|udp| {
                buf.get_mut(..udp.payload.len())?
                    .copy_from_slice(udp.payload);
                Some(udp.payload.len())
            }),
            TunnResult::WriteToNetwork(d) => {
                let _ = self.sock_b.send_to(d, from);
                // As the device loop does: flush whatever else it queued.
                while let TunnResult::WriteToNetwork(d) = b.tunn.decapsulate(None, &[], &mut b.out)
                {
                    let _ = self.sock_b.send_to(d, from);
                }
                None
            }
            _ => None,
        }
    }
}
