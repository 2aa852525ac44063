//! `genkey`, `pubkey` and `genpsk`: the same base64 keys `wg` reads and prints.

use std::io::Read;

use pnet_mesh::crypto::rng::{OsRng, Rng};
use pnet_mesh::crypto::{PresharedKey, PrivateKey};
use zeroize::Zeroizing;

/// A new private key, clamped as `wg genkey` clamps it (RFC 7748 §5), so both tools print the same
/// kind of key.
pub fn genkey() -> Result<(), String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    bytes[0] &= 248;
    bytes[31] = (bytes[31] & 127) | 64;
    let text = Zeroizing::new(PrivateKey::from_bytes(*bytes).to_base64());
    println!("{}", text.as_str());
    Ok(())
}

/// Reads a base64 private key on standard input and prints its public key.
pub fn pubkey() -> Result<(), String> {
    let mut text = Zeroizing::new(String::new());
    // A key is 44 characters; anything much longer is not one.
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("pubkey: cannot read standard input: {e}"))?;
    let key = PrivateKey::from_base64(text.trim())
        .map_err(|_| "pubkey: standard input is not a base64 private key of 32 bytes".to_owned())?;
    println!("{}", key.public_key());
    Ok(())
}

/// A new preshared key: 32 random bytes.
pub fn genpsk() -> Result<(), String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    let text = Zeroizing::new(PresharedKey::from_bytes(*bytes).to_base64());
    println!("{}", text.as_str());
    Ok(())
}
