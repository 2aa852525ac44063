//! PNet Mesh: an embeddable, WireGuard-compatible UDP data plane.
//!
//! A program links this crate and speaks the WireGuard protocol with other nodes and with stock
//! WireGuard peers over ordinary UDP sockets: no TUN device, no root, no capabilities.
//!
//! This release holds the **sans-I/O protocol core**, [`Endpoint`]: message codecs, the Noise IKpsk2
//! handshake, cookies under load, keypair rotation, the replay window, timers and cryptokey routing.
//! It takes bytes and time in and gives bytes, deadlines and events out; it never opens a socket, reads
//! a clock or spawns a thread, so the caller decides how packets move (an in-memory test, a blocking
//! loop, or the thread-per-core runtime).
//!
//! # Example
//!
//! Two endpoints complete a handshake in memory and move one IPv4 UDP packet:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Instant, SystemTime};
//!
//! use pnet_mesh::{Datagram, Endpoint, EndpointConfig, PacketBuf, PeerConfig, ip};
//! use pnet_mesh::crypto::{PrivateKey, rng::SeededRng};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let (a_key, b_key) = (PrivateKey::generate(&mut SeededRng::new(1)), PrivateKey::generate(&mut SeededRng::new(2)));
//! let (a_addr, b_addr) = ("192.0.2.1:51820".parse()?, "192.0.2.2:51820".parse()?);
//! let a_cfg = EndpointConfig::builder(a_key.clone())
//!     .clock_anchor(now, SystemTime::now())
//!     .peer(PeerConfig::new(b_key.public_key()).endpoint(b_addr).allowed_ip("10.0.0.2/32".parse()?))
//!     .build()?;
//! let b_cfg = EndpointConfig::builder(b_key)
//!     .clock_anchor(now, SystemTime::now())
//!     .peer(PeerConfig::new(a_key.public_key()).allowed_ip("10.0.0.1/32".parse()?))
//!     .build()?;
//! let mut a = Endpoint::new(Arc::new(a_cfg), Box::new(SeededRng::new(3)), now);
//! let mut b = Endpoint::new(Arc::new(b_cfg), Box::new(SeededRng::new(4)), now);
//!
//! // A has no session yet: its packet waits while the handshake runs.
//! let mut buf = [0u8; 2048];
//! let hdr = ip::udp_headers_len(&"10.0.0.2:7".parse()?);
//! let payload = b"hello";
//! let mut packet = vec![0u8; hdr + payload.len()];
//! packet[hdr..].copy_from_slice(payload);
//! ip::emit_udp(&mut packet, "10.0.0.1:7".parse()?, "10.0.0.2:7".parse()?, payload.len()).unwrap();
//! let mut pkt = PacketBuf::copy_from(&mut buf, &packet)?;
//! assert!(a.send_packet(now, &mut pkt)?.is_none());
//!
//! // Initiation A → B, response B → A, then the staged packet A → B.
//! let mut wire = [0u8; 2048];
//! let init = a.poll_transmit(now, &mut wire).unwrap();
//! let Datagram::Reply { len, .. } = b.handle_datagram(now, a_addr, &mut wire[..init.len]) else { panic!() };
//! assert!(matches!(a.handle_datagram(now, b_addr, &mut wire[..len]), Datagram::Consumed));
//! let data = a.poll_transmit(now, &mut wire).unwrap();
//! let Datagram::Deliver { packet, .. } = b.handle_datagram(now, a_addr, &mut wire[..data.len]) else { panic!() };
//! assert_eq!(ip::parse_udp(packet).unwrap().payload, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! # On real sockets
//! [`Node`] (feature `runtime`, on by default) runs the same core on the thread-per-core runtime of
//! `pnet-mesh-shard`: the [`ControlPlane`](proto::ControlPlane) on a control shard and one
//! [`DataPath`](proto::DataPath) per data shard, with message channels ([`mesh::channel`]) and crypto
//! discovery ([`mesh::discovery`], on with [`NodeBuilder::mesh_psk`]) each run by a thread of the node.
//! Relays and multi-hop routes come in a later release; see the project README.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod config;
pub mod event;
pub mod fields;
#[doc(hidden)]
pub mod fuzzing;
pub mod manual;
pub mod mesh;
#[cfg(feature = "runtime")]
pub mod node;
pub mod proto;
#[cfg(feature = "runtime")]
mod runtime;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wg_quick;

pub use pnet_mesh_crypto as crypto;

pub use config::{AllowedIp, ConfigError, EndpointConfig, EndpointConfigBuilder, PeerConfig};
pub use event::{Event, Role};
pub use proto::{Datagram, DropCounters, DropReason, Endpoint, PacketBuf, SendError, Transmit, ip};
pub use stats::PeerStats;

#[cfg(feature = "runtime")]
pub use node::{Node, NodeBuilder, NodeError, NodeEvent, NodeStats, RelayStats};
#[cfg(feature = "runtime")]
pub use pnet_mesh_shard::{Backend, BackendKind};

/// A peer of an [`Endpoint`]: its position in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl core::fmt::Display for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}
