//! Every WireGuard message codec: parse, then emit must give back the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::wire_message(data));
