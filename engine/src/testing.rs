//! Test support shared by the integration tests and the benchmarks (feature `testing`): things that
//! stand in for a network this machine does not have.
//!
//! - [`impair`]: a seeded UDP impairment proxy (loss, Gilbert burst loss, reorder, duplication,
//!   delay with jitter, corruption, rate), since the kernel here has no netem qdisc.

pub mod impair;
