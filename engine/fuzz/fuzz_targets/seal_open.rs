//! Seal an arbitrary packet at the initiator and open it at the responder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::seal_open(data));
