//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod wg_go;
