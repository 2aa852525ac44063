//! The optional Linux TUN bridge of PNet Mesh: a TUN interface configured like wg-quick (`Address`,
//! `MTU`) whose packets travel through a [`Node`]'s public raw-IP API
//! ([`Node::send_gso`], [`Node::try_send_packet`], [`Node::recv_packet_timeout`]), so the library
//! itself never needs a TUN device, root or any capability.
//!
//! With the kernel's TUN offloads (on unless [`TunSettings::offload`] is false, and used only when the
//! kernel grants them) a TCP flow leaves the interface as 64 KiB super-packets that the node splits
//! and seals, and arrives coalesced again; the socket side uses UDP GSO and GRO. Without them every
//! packet crosses one at a time. The `ready` line of `pnet-mesh-tun up` says which.
//!
//! The pump is written against [`PacketDevice`], so it is tested without privilege against an
//! in-memory device; [`open_tun`] gives the real one.
//!
//! ```no_run
//! use pnet_mesh::wg_quick::WgQuickConfig;
//! use pnet_mesh::Node;
//! use pnet_mesh_tun::{Bridge, TunSettings, open_tun};
//!
//! let config = WgQuickConfig::load("wg0.conf")?;
//! let settings = TunSettings::from_wg_quick(&config, "pmtun0")?;
//! let node = config.node_builder().start()?;
//! let device = open_tun(&settings)?;
//! let bridge = Bridge::start(std::sync::Arc::new(node), std::sync::Arc::new(device))?;
//! # drop(bridge);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(doc)]
use pnet_mesh::Node;

mod bridge;
mod device;
mod settings;

pub use bridge::{Bridge, BridgeStats};
pub use device::{HEADROOM, Inbound, Offload, PacketDevice, Tun, open_tun};
pub use settings::TunSettings;

#[cfg(test)]
mod tests;
