//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

pub mod wg_go;
