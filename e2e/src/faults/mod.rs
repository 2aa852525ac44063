//! The fault suite's lab: real processes in network namespaces this run creates, as
//! `../shared/FAULT_PLAN.md` draws them — node A, a router, node B and an attacker, every name
//! carrying a per-run id, the whole suite serialized on a machine-wide lock.
//!
//! ```text
//!   pm-a (A 10.31.1.2) ── ra│ pm-r (router, ip_forward) │rb ── pm-b (B 10.31.2.2)
//!                            │rx
//!                          pm-x (attacker 10.31.9.2, and 10.31.10.0/24 as 256 sources)
//! ```
//!
//! Impairments go on the router (iptables, nft, tc, the interface MTU), so the nodes run unmodified.
//! Nodes are `pnet-mesh up` processes ([`node::NodeProcess`]) whose counters come from
//! `pnet-mesh show --json` and whose events (with timestamps) come from `--events`; traffic and
//! attacks come from the `fault-tool` binary run inside the namespaces.

pub mod lab;
pub mod node;
pub mod pair;
pub mod report;
pub mod sequence;
pub mod wireguard_go;

pub use lab::{FaultLab, Side};
pub use node::{NodeProcess, NodeSpec};
pub use wireguard_go::WireguardGo;
