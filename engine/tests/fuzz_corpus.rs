//! Replays the checked-in fuzz corpus (`engine/fuzz/corpus/<target>/`) through the same
//! `pnet_mesh::fuzzing` entry points the cargo-fuzz targets call, on the stable toolchain
//! (STYLE.md §5 "Fuzzing"). A crash the fuzzer once found stays fixed once its input is in the corpus.
//!
//! Each target's directory must exist and hold at least one input, so a moved or mistyped path fails
//! here instead of silently replaying nothing.

use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// Calls `entry` on every file of `target`'s corpus and returns how many inputs it replayed.
fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fuzz corpus directory {} is missing ({e}); it must hold the checked-in inputs of target `{target}`",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .map(|e| {
            e.map(|e| e.path())
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        })
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "fuzz corpus directory {} is empty: target `{target}` would replay nothing",
        dir.display()
    );
    let mut total_bytes = 0;
    for path in &paths {
        let input = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        total_bytes += input.len();
        // A panic here names the input: re-run it with `cargo fuzz run <target> <path>`.
        eprintln!("replaying {}", path.display());
        entry(&input);
    }
    println!(
        "{target}: replayed {} inputs ({total_bytes} bytes) from {}",
        paths.len(),
        dir.display()
    );
    paths.len()
}

#[test]
fn replay_wire_message_corpus() {
    replay("wire_message", pnet_mesh::fuzzing::wire_message);
}

#[test]
fn replay_ip_header_corpus() {
    replay("ip_header", pnet_mesh::fuzzing::ip_header);
}

#[test]
fn replay_handle_datagram_corpus() {
    replay("handle_datagram", pnet_mesh::fuzzing::handle_datagram);
}

#[test]
fn replay_seal_open_corpus() {
    replay("seal_open", pnet_mesh::fuzzing::seal_open);
}

#[test]
fn replay_mesh_control_corpus() {
    replay("mesh_control", pnet_mesh::fuzzing::mesh_control);
}

/// The seeds `engine/fuzz/seeds_mesh_control.py` wrote carry valid MACs, so the replay and the
/// fuzzer reach the member table, not only the MAC check.
#[test]
fn mesh_control_seeds_pass_the_mac() {
    use pnet_mesh::crypto::PresharedKey;
    use pnet_mesh::mesh::wire::{MemberRecord, MessageHeader, RecordKey};
    let key = RecordKey::new(&PresharedKey::from_bytes(
        pnet_mesh::fuzzing::MESH_CONTROL_PSK,
    ));
    let mut valid = 0;
    for entry in fs::read_dir(corpus_dir("mesh_control")).unwrap() {
        let input = fs::read(entry.unwrap().path()).unwrap();
        if let Ok((_, records)) = MessageHeader::decode(&input)
            && MemberRecord::decode(&key, records).is_ok()
        {
            valid += 1;
        }
    }
    assert!(valid >= 5, "{valid} seeds with a valid first record");
}

#[test]
fn replay_cookie_consume_corpus() {
    replay("cookie_consume", pnet_mesh::fuzzing::cookie_consume);
}

#[test]
fn replay_transport_decrypt_corpus() {
    replay("transport_decrypt", pnet_mesh::fuzzing::transport_decrypt);
}

#[test]
fn replay_relay_frame_corpus() {
    replay("relay_frame", pnet_mesh::fuzzing::relay_frame);
}

#[test]
fn replay_channel_reassembly_corpus() {
    replay("channel_reassembly", pnet_mesh::fuzzing::channel_reassembly);
}

#[test]
fn replay_wg_quick_corpus() {
    replay("wg_quick", pnet_mesh::fuzzing::wg_quick);
}
