//! Relay frames and path messages through their codecs and a relay's routing decision.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::relay_frame(data));
