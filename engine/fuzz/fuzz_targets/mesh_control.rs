//! Discovery messages: record codecs roundtrip, and a primed node's discovery takes any input from a
//! member and from a non-member without panicking or growing past its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::mesh_control(data));
