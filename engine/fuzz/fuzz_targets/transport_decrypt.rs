//! A forged transport message with fuzzed index and counter at the primed responder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::transport_decrypt(data));
