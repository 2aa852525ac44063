//! A forged cookie reply against the primed initiator's in-flight initiation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::cookie_consume(data));
