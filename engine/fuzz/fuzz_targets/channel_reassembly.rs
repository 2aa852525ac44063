//! A run of channel packets into one peer's channels with small bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::channel_reassembly(data));
