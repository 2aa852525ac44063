//! Benchmarks of PNet Mesh: the pieces behind the `bench` binary and the criterion micro benchmarks
//! in `benches/micro.rs`.
//!
//! Everything here drives `pnet-mesh` through its public API. Numbers come only from release builds:
//! the `bench` binary refuses a debug build. Reports are JSON under `artifacts/benchmarks/results/`
//! (git-ignored); see [`environment::results_dir`].
//!
//! What is here: the `in-memory` macro scenario ([`in_memory`]), the `udp-loopback` scenario with its
//! ceiling, bare-UDP and boringtun legs ([`udp_loopback`]), channel goodput through the impairment
//! proxy ([`channel_proxy`]), relayed throughput A → R → B beside a direct pair ([`relay_loopback`]), a counting global allocator for
//! allocations per operation ([`alloc_count`]), a fixed-size latency histogram ([`histogram`]), two
//! endpoints joined in memory ([`pair`]), thread placement and CPU time ([`threads`]), the HTML report ([`report`]) and the
//! command line ([`cli`], [`duration`]). The TUN workflow ([`tun`]) compares `pnet-mesh-tun` with wireguard-go
//! in Docker. The `testnode-smoke` scenario ([`testnode_smoke`]) runs two node
//! containers; it is manual and non-deterministic.
#![deny(missing_docs)]

pub mod alloc_count;
pub mod channel_proxy;
pub mod cli;
pub mod duration;
pub mod environment;
pub mod histogram;
pub mod in_memory;
pub mod pair;
pub mod relay_loopback;
pub mod report;
pub mod testnode_smoke;
pub mod threads;
pub mod tun;
pub mod udp_loopback;
