//! Ours: two [`Node`]s over localhost UDP through the real runtime, A's shards on the sender's CPU and
//! B's on the receiver's, datagrams from A's mesh address to B's through the public API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::{Backend, Node, NodeError, PeerConfig};

use super::drive::Link;

const A_MESH: &str = "10.77.0.1";
const B_MESH: &str = "10.77.0.2";
const PORT: u16 = 51800;

/// Nodes A (sends) and B (receives).
#[derive(Debug)]
pub struct NodeLink {
    /// The sender.
    pub a: Node,
    /// The receiver.
    pub b: Node,
    to: SocketAddr,
}

impl NodeLink {
    /// Starts both nodes with `data_shards` each on `backend`, pins them and completes the handshake.
    ///
    /// # Errors
    /// A node that would not start, or no session within five seconds.
    pub fn start(
        backend: Backend,
        data_shards: usize,
        cpus: (usize, usize),
    ) -> Result<NodeLink, String> {
        let a_key = PrivateKey::generate(&mut SeededRng::new(0xa));
        let b_key = PrivateKey::generate(&mut SeededRng::new(0xb));
        fn ip<T: std::str::FromStr>(s: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            s.parse().map_err(|e| format!("{s}: {e}"))
        }
        let b = Node::builder(b_key.clone())
            .listen(ip("127.0.0.1:0")?)
            .mesh_address(ip(B_MESH)?)
            .backend(backend)
            .data_shards(data_shards)
            .cores(vec![cpus.1; data_shards + 1])
            .datagram_port(PORT)
            .peer(PeerConfig::new(a_key.public_key()).allowed_ip(ip(&format!("{A_MESH}/32"))?))
            .start()
            .map_err(|e| format!("node B: {e}"))?;
        let a = Node::builder(a_key)
            .listen(ip("127.0.0.1:0")?)
            .mesh_address(ip(A_MESH)?)
            .backend(backend)
            .data_shards(data_shards)
            .cores(vec![cpus.0; data_shards + 1])
            .datagram_port(PORT)
            .peer(
                PeerConfig::new(b_key.public_key())
                    .endpoint(b.local_addrs()[0])
                    .allowed_ip(ip(&format!("{B_MESH}/32"))?),
            )
            .start()
            .map_err(|e| format!("node A: {e}"))?;
        let to = SocketAddr::new(ip(B_MESH)?, PORT);
        wait_for_session(&a, &b, to, Duration::from_secs(5))?;
        Ok(NodeLink { a, b, to })
    }
}

/// Sends from `a` to `to` (on `b`) until a datagram arrives: the first one waits for the handshake,
/// so once one arrives the session is up.
///
/// # Errors
/// No datagram within `within`.
pub fn wait_for_session(
    a: &Node,
    b: &Node,
    to: SocketAddr,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64];
    loop {
        let _ = a.try_send_to(b"hello", to);
        if b.recv_from_timeout(&mut buf, Duration::from_millis(100))
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no session between the nodes within {within:?}"));
        }
    }
}

impl Link for NodeLink {
    fn try_send(&self, app: &[u8]) -> bool {
        match self.a.try_send_to(app, self.to) {
            Ok(()) => true,
            Err(NodeError::WouldBlock) => false,
            // Anything else is a bug in the setup; count it as not sent (the rate shows it).
            Err(_) => false,
        }
    }

    fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<usize> {
        self.b.recv_from_timeout(buf, wait).ok().map(|(n, _)| n)
    }
}
