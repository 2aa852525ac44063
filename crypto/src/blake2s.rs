//! BLAKE2s (RFC 7693) as the WireGuard construction uses it: `HASH`, `MAC`, `HMAC` and `KDF1..3`.
//!
//! The functions take their input as a list of slices, so callers can hash `a ‖ b ‖ c` without
//! concatenating into a temporary buffer.

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Update};
use blake2::{Blake2s, Blake2s256, Blake2sMac};
use zeroize::Zeroize;

/// Output length of `HASH` and `HMAC`.
pub const HASH_LEN: usize = 32;
/// Output length of `MAC` (mac1, mac2, cookies).
pub const MAC_LEN: usize = 16;
/// BLAKE2s block size, the HMAC pad length.
const BLOCK_LEN: usize = 64;

/// `HASH(input)`: unkeyed BLAKE2s-256 over the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::default();
    for part in parts {
        Update::update(&mut h, part);
    }
    h.finalize_fixed().into()
}

/// `MAC(key, input)`: keyed BLAKE2s with a 16-byte output over the concatenation of `parts`.
///
/// `key` is at most 32 bytes (WireGuard keys it with a 32-byte hash or a 16-byte cookie). An empty
/// key gives unkeyed BLAKE2s-128, as RFC 7693 §2.5 (`kk = 0`) and the reference implementation do.
///
/// # Panics
/// If `key` is longer than 32 bytes: a programming error, never reachable from network input since
/// every key comes from a fixed-size array.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    if key.is_empty() {
        // blake2 0.10's `Blake2sMac` accepts an empty key but then still compresses an all-zero key
        // block while declaring `kk = 0`, which is no standard BLAKE2s (RustCrypto/hashes#509).
        let mut h = Blake2s::<U16>::default();
        for part in parts {
            Update::update(&mut h, part);
        }
        return h.finalize_fixed().into();
    }
    #[allow(clippy::expect_used)]
    let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(key)
        .expect("BLAKE2s MAC key is at most 32 bytes");
    for part in parts {
        Update::update(&mut m, part);
    }
    m.finalize_fixed().into()
}

/// `HMAC(key, input)`: RFC 2104 HMAC over BLAKE2s-256, as the Noise KDF uses it.
pub fn hmac(key: &[u8; HASH_LEN], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut pad = [0u8; BLOCK_LEN];
    pad[..HASH_LEN].copy_from_slice(key);
    for b in pad.iter_mut() {
        *b ^= 0x36;
    }
    let mut inner = Blake2s256::default();
    Update::update(&mut inner, &pad);
    for part in parts {
        Update::update(&mut inner, part);
    }
    let mut inner_digest: [u8; HASH_LEN] = inner.finalize_fixed().into();
    // Turn the inner pad (key ^ 0x36) into the outer pad (key ^ 0x5c).
    for b in pad.iter_mut() {
        *b ^= 0x36 ^ 0x5c;
    }
    let mut outer = Blake2s256::default();
    Update::update(&mut outer, &pad);
    Update::update(&mut outer, &inner_digest);
    let out = outer.finalize_fixed().into();
    pad.zeroize();
    inner_digest.zeroize();
    out
}

/// `KDF1(key, input)`: the first output of the HKDF-BLAKE2s chain.
pub fn kdf1(key: &[u8; HASH_LEN], input: &[u8]) -> [u8; HASH_LEN] {
    let mut prk = hmac(key, &[input]);
    let t1 = hmac(&prk, &[&[0x01]]);
    prk.zeroize();
    t1
}

/// `KDF2(key, input)`: the first two outputs of the HKDF-BLAKE2s chain.
pub fn kdf2(key: &[u8; HASH_LEN], input: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut prk = hmac(key, &[input]);
    let t1 = hmac(&prk, &[&[0x01]]);
    let t2 = hmac(&prk, &[&t1, &[0x02]]);
    prk.zeroize();
    (t1, t2)
}

/// `KDF3(key, input)`: the first three outputs of the HKDF-BLAKE2s chain.
pub fn kdf3(
    key: &[u8; HASH_LEN],
    input: &[u8],
) -> ([u8; HASH_LEN], [u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut prk = hmac(key, &[input]);
    let t1 = hmac(&prk, &[&[0x01]]);
    let t2 = hmac(&prk, &[&t1, &[0x02]]);
    let t3 = hmac(&prk, &[&t2, &[0x03]]);
    prk.zeroize();
    (t1, t2, t3)
}
