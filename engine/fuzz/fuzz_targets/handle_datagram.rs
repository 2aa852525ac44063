//! A datagram from anywhere, fed to a primed initiator and responder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::handle_datagram(data));
