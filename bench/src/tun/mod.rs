//! The TUN benchmark workflow: the same two-container dual-stack Docker topology run once with two
//! `pnet-mesh-tun` bridges and once with two stock wireguard-go interfaces, the kernel's `ping` and
//! `iperf3` through the tunnel, each tunnel process's CPU time, RSS and threads sampled during every
//! step, and one comparison of the two runs (JSON and a page with charts).
//!
//! Report-only: nothing here passes or fails on speed. The pieces: the fixed topology ([`plan`]),
//! what the machine must give ([`preflight`]), creating and removing the labeled resources
//! ([`topology`]), one run ([`benchmark`]) with its process sampler ([`sample`]) and the tools'
//! output parsers ([`parse`]), and the comparison ([`compare`]) with its page ([`page`]).

pub mod benchmark;
pub mod compare;
pub mod page;
pub mod parse;
pub mod plan;
pub mod preflight;
pub mod sample;
pub mod topology;

pub use plan::Implementation;
