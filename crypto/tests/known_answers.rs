//! Known-answer tests for `pnet_mesh_crypto`: published vectors, and values computed with an
//! independent implementation (Python's standard library) where no published vector fits our API.
//!
//! Sources and licences of the copied vectors:
//!
//! - RFC 8439 (ChaCha20-Poly1305), RFC 7748 (X25519), RFC 7693 (BLAKE2) and
//!   draft-irtf-cfrg-xchacha-03 (XChaCha20-Poly1305): Copyright (c) IETF Trust and the persons
//!   identified as the document authors; reproduced under the IETF Trust Legal Provisions (code
//!   components, which include test vectors, under the Revised BSD License).
//! - wireguard-go `device/kdf_test.go`: Copyright (C) 2017-2019 WireGuard LLC, MIT licence.
//! - The seven low-order Curve25519 points, in the base64 form of the Linux kernel WireGuard
//!   selftest `tools/testing/selftests/wireguard/netns.sh` (GPL-2.0). They are mathematical
//!   constants (the points of small order listed at <https://cr.yp.to/ecdh.html>), not expression
//!   copied from that script.
//! - "Python hashlib" values: computed by `tests/vectors/python_reference.py` with Python 3.11's
//!   `hashlib`/`hmac`, which share no code with the Rust crates under test. That script also
//!   cross-checks every RFC/draft vector below against OpenSSL through the `cryptography` package.

use std::time::{Duration, SystemTime};

use pnet_mesh_crypto::aead::{self, AeadKey};
use pnet_mesh_crypto::rng::{Rng, SeededRng};
use pnet_mesh_crypto::{CryptoError, PrivateKey, PublicKey, Tai64N, blake2s, xaead};

/// Decodes a hex string into a fixed-size array, panicking on a malformed test constant.
fn h<const N: usize>(s: &str) -> [u8; N] {
    let v = hex::decode(s).expect("test constant is hex");
    <[u8; N]>::try_from(v.as_slice()).expect("test constant has the expected length")
}

/// Decodes a hex string of any length.
fn hv(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test constant is hex")
}

/// `0, 1, 2, ...` wrapping at 256: the input pattern of the BLAKE2 reference KATs.
fn seq(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// ChaCha20-Poly1305 (RFC 8439)
// ---------------------------------------------------------------------------------------------

// Which RFC 8439 AEAD vectors our API can express: `AeadKey` takes a u64 counter and builds the
// WireGuard nonce 00 00 00 00 || LE64(counter).
// - §2.8.2 uses nonce 07 00 00 00 40 41 42 43 44 45 46 47. Its first four bytes are not zero, so no
//   counter produces it: that vector cannot be run through this API and is not used.
// - Appendix A.5 uses nonce 00 00 00 00 01 02 03 04 05 06 07 08 = 4 zero bytes || LE64
//   0x0807060504030201, which is exactly our form. It is the vector used here.
// (RFC 8439 A.5 is byte-identical to RFC 7539 A.5.)

/// RFC 8439 Appendix A.5 key.
const A5_KEY: &str = "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0";
/// RFC 8439 Appendix A.5 nonce 000000000102030405060708, as our counter.
const A5_COUNTER: u64 = 0x0807_0605_0403_0201;
/// RFC 8439 Appendix A.5 associated data.
const A5_AAD: &str = "f33388860000000000004e91";
/// RFC 8439 Appendix A.5 plaintext (the quotes are U+201C / U+201D in UTF-8).
const A5_PLAINTEXT: &[u8] = b"Internet-Drafts are draft documents valid for a maximum of six \
months and may be updated, replaced, or obsoleted by other documents at any time. It is \
inappropriate to use Internet-Drafts as reference material or to cite them other than as \
/\xe2\x80\x9cwork in progress./\xe2\x80\x9d";
/// RFC 8439 Appendix A.5 ciphertext.
const A5_CIPHERTEXT: &str = "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2\
4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b9481\
14ad176e008d33bd60f982b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4\
b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a\
0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10\
49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b";
/// RFC 8439 Appendix A.5 tag.
const A5_TAG: &str = "eead9d67890cbb22392336fea1851f38";

/// `ciphertext || tag` of the A.5 vector.
fn a5_sealed() -> Vec<u8> {
    let mut v = hv(A5_CIPHERTEXT);
    v.extend_from_slice(&hv(A5_TAG));
    v
}

#[test]
fn rfc8439_a5_plaintext_is_the_published_265_bytes() {
    // Guards the transcription of the plaintext (its hex form in the RFC is 265 bytes).
    assert_eq!(A5_PLAINTEXT.len(), 265);
    assert_eq!(hv(A5_CIPHERTEXT).len(), A5_PLAINTEXT.len());
}

#[test]
fn rfc8439_a5_seal_matches_ciphertext_and_tag() {
    let key = AeadKey::new(&h(A5_KEY));
    let mut buf = A5_PLAINTEXT.to_vec();
    let tag = key.seal_in_place(A5_COUNTER, &hv(A5_AAD), &mut buf);
    assert_eq!(hex::encode(&buf), A5_CIPHERTEXT);
    assert_eq!(hex::encode(tag), A5_TAG);
}

#[test]
fn rfc8439_a5_one_shot_seal_matches() {
    let mut buf = A5_PLAINTEXT.to_vec();
    let tag = aead::seal(&h(A5_KEY), A5_COUNTER, &hv(A5_AAD), &mut buf);
    assert_eq!(hex::encode(&buf), A5_CIPHERTEXT);
    assert_eq!(hex::encode(tag), A5_TAG);
}

#[test]
fn rfc8439_a5_open_recovers_plaintext() {
    let key = AeadKey::new(&h(A5_KEY));
    let mut buf = a5_sealed();
    let plain = key
        .open_in_place(A5_COUNTER, &hv(A5_AAD), &mut buf)
        .expect("the RFC vector authenticates");
    assert_eq!(&plain[..], A5_PLAINTEXT);

    let mut buf = a5_sealed();
    let plain = aead::open(&h(A5_KEY), A5_COUNTER, &hv(A5_AAD), &mut buf).expect("one-shot open");
    assert_eq!(&plain[..], A5_PLAINTEXT);
}

#[test]
fn rfc8439_a5_flipped_bit_fails_and_zeroes_buffer() {
    let key = AeadKey::new(&h(A5_KEY));
    let sealed = a5_sealed();
    // A bit in the first ciphertext byte, one in the middle, one in the last ciphertext byte, and
    // the first and last bits of the tag.
    let last_ct_bit = A5_PLAINTEXT.len() * 8 - 1;
    for bit in [0, 1000, last_ct_bit, last_ct_bit + 1, sealed.len() * 8 - 1] {
        let mut buf = sealed.clone();
        buf[bit / 8] ^= 1 << (bit % 8);
        let err = key
            .open_in_place(A5_COUNTER, &hv(A5_AAD), &mut buf)
            .expect_err("a flipped bit must not authenticate");
        assert_eq!(err, CryptoError::AuthenticationFailed, "bit {bit}");
        assert!(
            buf.iter().all(|&b| b == 0),
            "buffer not zeroed after bit {bit}"
        );
    }
}

#[test]
fn rfc8439_a5_wrong_counter_or_aad_fails_and_zeroes_buffer() {
    let key = AeadKey::new(&h(A5_KEY));

    let mut buf = a5_sealed();
    assert_eq!(
        key.open_in_place(A5_COUNTER + 1, &hv(A5_AAD), &mut buf),
        Err(CryptoError::AuthenticationFailed)
    );
    assert!(buf.iter().all(|&b| b == 0));

    let mut aad = hv(A5_AAD);
    aad[11] ^= 0x80;
    let mut buf = a5_sealed();
    assert_eq!(
        key.open_in_place(A5_COUNTER, &aad, &mut buf),
        Err(CryptoError::AuthenticationFailed)
    );
    assert!(buf.iter().all(|&b| b == 0));

    // One-shot open zeroes too.
    let mut buf = a5_sealed();
    buf[0] ^= 1;
    assert_eq!(
        aead::open(&h(A5_KEY), A5_COUNTER, &hv(A5_AAD), &mut buf),
        Err(CryptoError::AuthenticationFailed)
    );
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn aead_counter_is_little_endian_after_four_zero_bytes() {
    // If the counter were placed big-endian (or without the 4 zero bytes), the A.5 nonce would come
    // from the byte-swapped counter instead; that must not reproduce the RFC ciphertext.
    let key = AeadKey::new(&h(A5_KEY));
    let mut buf = A5_PLAINTEXT.to_vec();
    let tag = key.seal_in_place(A5_COUNTER.swap_bytes(), &hv(A5_AAD), &mut buf);
    assert_ne!(hex::encode(&buf), A5_CIPHERTEXT);
    assert_ne!(hex::encode(tag), A5_TAG);
}

#[test]
fn aead_open_shorter_than_tag_is_too_short_and_zeroed() {
    let key = AeadKey::new(&[7; 32]);
    for len in 0..16 {
        let mut buf = vec![0xAA; len];
        assert_eq!(
            key.open_in_place(0, b"", &mut buf),
            Err(CryptoError::TooShort { len })
        );
        assert!(buf.iter().all(|&b| b == 0));
    }
}

#[test]
fn aead_empty_plaintext_is_tag_only() {
    let key = AeadKey::new(&[7; 32]);
    let tag = key.seal_in_place(5, b"header", &mut []);
    let mut buf = tag.to_vec();
    let plain = key
        .open_in_place(5, b"header", &mut buf)
        .expect("tag-only message opens");
    assert!(plain.is_empty());
    // WireGuard's keepalive is exactly this; a different counter must not accept it.
    let mut buf = tag.to_vec();
    assert!(key.open_in_place(6, b"header", &mut buf).is_err());
}

// ---------------------------------------------------------------------------------------------
// X25519 (RFC 7748)
// ---------------------------------------------------------------------------------------------

/// `X25519(k, u)` through the public API. The scalar is passed unclamped: `PrivateKey` keeps the raw
/// bytes and x25519-dalek clamps at use, as RFC 7748 §5 specifies.
fn x25519(k: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    *PrivateKey::from_bytes(k)
        .diffie_hellman(&PublicKey::from_bytes(u))
        .expect("vector inputs are not low order")
        .as_bytes()
}

#[test]
fn rfc7748_5_2_vector_1() {
    // RFC 7748 §5.2, first vector. The scalar a546...c4 is not clamped (low bits 101, top bit 1):
    // the published output only comes out if clamping is applied.
    let k = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    assert_eq!(
        hex::encode(x25519(k, u)),
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    );
}

#[test]
fn rfc7748_5_2_vector_2() {
    // RFC 7748 §5.2, second vector. Its u-coordinate has the top bit set (…a493), which §5 says must
    // be masked off: the published output checks that too.
    let k = h("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d");
    let u = h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493");
    let expected = "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957";
    assert_eq!(hex::encode(x25519(k, u)), expected);
    // Same u with the top bit cleared: same result.
    let mut u_masked = u;
    u_masked[31] &= 0x7f;
    assert_eq!(hex::encode(x25519(k, u_masked)), expected);
}

#[test]
fn private_key_keeps_raw_bytes_and_clamps_at_use() {
    let raw = h::<32>("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let key = PrivateKey::from_bytes(raw);
    assert_eq!(
        key.as_bytes(),
        &raw,
        "from_bytes must not clamp the stored bytes"
    );
    let mut clamped = raw;
    clamped[0] &= 248;
    clamped[31] &= 127;
    clamped[31] |= 64;
    assert_eq!(
        key.public_key(),
        PrivateKey::from_bytes(clamped).public_key(),
        "raw and clamped scalars must act the same"
    );
}

/// RFC 7748 §5.2 iterated test: k = u = 9; each round sets (k, u) = (X25519(k, u), k).
fn rfc7748_iterate(n: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for _ in 0..n {
        let next = x25519(k, u);
        u = k;
        k = next;
    }
    k
}

#[test]
fn rfc7748_5_2_one_iteration() {
    assert_eq!(
        hex::encode(rfc7748_iterate(1)),
        "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    );
}

#[test]
fn rfc7748_5_2_thousand_iterations() {
    // The 1,000,000-iteration value is left out: too slow for every test run.
    assert_eq!(
        hex::encode(rfc7748_iterate(1000)),
        "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"
    );
}

#[test]
fn rfc7748_6_1_diffie_hellman() {
    let alice = PrivateKey::from_bytes(h(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let bob = PrivateKey::from_bytes(h(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    let alice_pub = alice.public_key();
    let bob_pub = bob.public_key();
    assert_eq!(
        hex::encode(alice_pub.as_bytes()),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    assert_eq!(
        hex::encode(bob_pub.as_bytes()),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    );
    let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    let ab = alice.diffie_hellman(&bob_pub).expect("valid peer key");
    let ba = bob.diffie_hellman(&alice_pub).expect("valid peer key");
    assert_eq!(hex::encode(ab.as_bytes()), shared);
    assert_eq!(hex::encode(ba.as_bytes()), shared);
}

#[test]
fn rfc7748_keys_roundtrip_through_base64() {
    let alice = PrivateKey::from_bytes(h(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let text = alice.to_base64();
    assert_eq!(text, "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=");
    let back = PrivateKey::from_base64(&format!("  {text}\n")).expect("trimmed base64 parses");
    assert_eq!(back.as_bytes(), alice.as_bytes());

    let public = alice.public_key();
    assert_eq!(
        public.to_string(),
        "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
    );
    assert_eq!(public.short(), "hSDwCYkw");
    assert_eq!(PublicKey::from_base64(&public.to_string()), Ok(public));
}

#[test]
fn key_base64_rejects_wrong_length_and_garbage() {
    for bad in [
        "",
        "AAAA",
        // 31 bytes.
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        // 33 bytes.
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not base64 at all!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        assert_eq!(
            PublicKey::from_base64(bad),
            Err(CryptoError::InvalidKeyEncoding),
            "{bad:?}"
        );
        assert!(
            matches!(
                PrivateKey::from_base64(bad),
                Err(CryptoError::InvalidKeyEncoding)
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn debug_output_does_not_print_secrets() {
    let key = PrivateKey::from_bytes([0x11; 32]);
    let debug = format!("{key:?}");
    assert!(!debug.contains(&key.to_base64()));
    assert!(!debug.contains(&hex::encode(key.as_bytes())));
    let shared = key
        .diffie_hellman(&PrivateKey::from_bytes([0x22; 32]).public_key())
        .expect("valid key");
    let debug = format!("{shared:?}");
    assert!(!debug.contains(&hex::encode(shared.as_bytes())));
    assert!(!format!("{:?}", AeadKey::new(&[0x33; 32])).contains("33"));
}

// ---------------------------------------------------------------------------------------------
// Low-order points (WireGuard kernel selftest netns.sh)
// ---------------------------------------------------------------------------------------------

/// The seven low-order public keys `netns.sh` feeds to `wg set ... peer`: 0, 1, the two points of
/// order 8, and p - 1, p, p + 1 (non-canonical encodings).
const LOW_ORDER_POINTS: [&str; 7] = [
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
    "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
    "7P///////////////////////////////////////38=",
    "7f///////////////////////////////////////38=",
    "7v///////////////////////////////////////38=",
];

fn some_private_keys() -> Vec<PrivateKey> {
    let mut rng = SeededRng::new(2024);
    let mut keys = vec![
        PrivateKey::from_bytes(h(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        )),
        PrivateKey::from_bytes([0xff; 32]),
        PrivateKey::from_bytes([0; 32]),
    ];
    keys.extend((0..4).map(|_| PrivateKey::generate(&mut rng)));
    keys
}

#[test]
fn netns_low_order_points_are_low_order() {
    for text in LOW_ORDER_POINTS {
        let key = PublicKey::from_base64(text).expect("selftest key decodes");
        assert!(key.is_low_order(), "{text} must be reported low order");
    }
}

#[test]
fn netns_low_order_points_with_top_bit_set_are_low_order() {
    // RFC 7748 §5 ignores bit 255 of u, so the same points with the top bit set are low order too.
    for text in LOW_ORDER_POINTS {
        let mut bytes = *PublicKey::from_base64(text).expect("decodes").as_bytes();
        bytes[31] |= 0x80;
        assert!(
            PublicKey::from_bytes(bytes).is_low_order(),
            "{text} | 2^255"
        );
    }
}

#[test]
fn netns_low_order_points_refuse_diffie_hellman() {
    for text in LOW_ORDER_POINTS {
        let peer = PublicKey::from_base64(text).expect("selftest key decodes");
        for key in some_private_keys() {
            assert!(
                matches!(key.diffie_hellman(&peer), Err(CryptoError::LowOrderPoint)),
                "{text} with private key {}",
                key.public_key()
            );
        }
    }
}

#[test]
fn ordinary_public_keys_are_not_low_order() {
    let mut basepoint = [0u8; 32];
    basepoint[0] = 9;
    let mut candidates = vec![
        PublicKey::from_bytes(basepoint),
        PublicKey::from_bytes(h(
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        )),
        PublicKey::from_bytes(h(
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        )),
    ];
    candidates.extend(some_private_keys().iter().map(PrivateKey::public_key));
    for peer in candidates {
        assert!(!peer.is_low_order(), "{peer} is an ordinary key");
        for key in some_private_keys() {
            assert!(key.diffie_hellman(&peer).is_ok(), "{peer}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BLAKE2s: HASH, MAC, HMAC
// ---------------------------------------------------------------------------------------------

#[test]
fn blake2s_rfc7693_appendix_b_abc() {
    // RFC 7693 Appendix B: BLAKE2s-256("abc").
    let expected = "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982";
    assert_eq!(hex::encode(blake2s::hash(&[b"abc"])), expected);
    // The parts are concatenated: any split of the input gives the same digest.
    assert_eq!(hex::encode(blake2s::hash(&[b"a", b"", b"bc"])), expected);
}

#[test]
fn blake2s_empty_input() {
    // Python hashlib: hashlib.blake2s(b"").
    let expected = "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9";
    assert_eq!(hex::encode(blake2s::hash(&[])), expected);
    assert_eq!(hex::encode(blake2s::hash(&[b""])), expected);
}

#[test]
fn blake2s_block_boundaries() {
    // Python hashlib: hashlib.blake2s(bytes(range(n))) for n around the 64-byte block.
    for (n, expected) in [
        (
            64,
            "56f34e8b96557e90c1f24b52d0c89d51086acf1b00f634cf1dde9233b8eaaa3e",
        ),
        (
            65,
            "1b53ee94aaf34e4b159d48de352c7f0661d0a40edff95a0b1639b4090e974472",
        ),
        (
            255,
            "f03f5789d3336b80d002d59fdf918bdb775b00956ed5528e86aa994acb38fe2d",
        ),
    ] {
        let data = seq(n);
        assert_eq!(hex::encode(blake2s::hash(&[&data])), expected, "n = {n}");
        let (a, b) = data.split_at(n / 3);
        assert_eq!(
            hex::encode(blake2s::hash(&[a, b])),
            expected,
            "n = {n} split"
        );
    }
}

#[test]
fn blake2s_mac_matches_python_hashlib() {
    // Python hashlib: hashlib.blake2s(data, key=key, digest_size=16) with key 00..1f and data
    // 00 01 02 ... of the given length (the input pattern of the official blake2s-kat.txt, whose own
    // outputs are 32 bytes and so cannot be used for a 16-byte MAC: the digest length is part of the
    // BLAKE2 parameter block, so a 16-byte MAC is not a truncated 32-byte one).
    let key = seq(32);
    for (n, expected) in [
        (0, "9536f9b267655743dee97b8a670f9f53"),
        (1, "13bacfb85b48a1223c595f8c1e7e82cb"),
        (3, "1e2a79436a7796a3e9826bfedf07659f"),
        (63, "ece382a8bd5018f1de5da44b72cea75b"),
        (64, "f1efa90d2547036841ecd3627fafbc36"),
        (65, "811ff8686d23a435ecbd0bdafcd27b1b"),
        (255, "cd075928ab7e6883e697fe7fd3ac43ee"),
    ] {
        let data = seq(n);
        assert_eq!(
            hex::encode(blake2s::mac(&key, &[&data])),
            expected,
            "n = {n}"
        );
        let (a, b) = data.split_at(n / 2);
        assert_eq!(
            hex::encode(blake2s::mac(&key, &[a, b])),
            expected,
            "n = {n} split"
        );
    }
}

#[test]
fn blake2s_mac_with_cookie_sized_and_empty_keys() {
    // Python hashlib: a 16-byte key (the size of a WireGuard cookie, which keys mac2) ...
    let cookie: Vec<u8> = (0xa0..0xb0).collect();
    assert_eq!(
        hex::encode(blake2s::mac(&cookie, &[b"cookie-input"])),
        "6c0ec05138cf84c63ef9044866d17d6d"
    );
    // ... and the empty key, which is unkeyed BLAKE2s-128: hashlib.blake2s(b"abc", digest_size=16).
    assert_eq!(
        hex::encode(blake2s::mac(&[], &[b"abc"])),
        "aa4938119b1dc7b87cbad0ffd200d0ae"
    );
}

#[test]
#[should_panic(expected = "at most 32 bytes")]
fn blake2s_mac_key_longer_than_32_bytes_panics() {
    let _ = blake2s::mac(&[0; 33], &[b"x"]);
}

#[test]
fn hmac_blake2s_matches_python_hmac() {
    // Python: hmac.new(key, msg, hashlib.blake2s).hexdigest().
    let seq_key: [u8; 32] = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let zero_key = [0u8; 32];
    let long = seq(200);
    for (key, msg, expected) in [
        (
            &seq_key,
            &b""[..],
            "e2641d24dfa8dd89e8cb77f1cdc77d8c006e5bebdfc4d6a3a3a6f8d5b7586fb0",
        ),
        (
            &seq_key,
            b"abc",
            "82623be5bc0a391b24dce53e67d028eff92d586de0485ac37822e597d049c74f",
        ),
        (
            &seq_key,
            &long,
            "543eec9b22646365ef782d72dae137cc761d018005f8d33d0f20bfbd01e62974",
        ),
        (
            &zero_key,
            b"",
            "eaf4bb25938f4d20e72656bbbc7a9bf63c0c18537333c35bdb67db1402661acd",
        ),
        (
            &zero_key,
            b"abc",
            "4a79a31b10a8c34b7c89735b8088e6b810b4bad4f36d671b65ca2ea0914952bf",
        ),
        (
            &zero_key,
            &long,
            "37bfd84146a999397d51a647e2fa1ddf4195ae34da253a7be156b06db7c233b6",
        ),
    ] {
        assert_eq!(hex::encode(blake2s::hmac(key, &[msg])), expected);
        let (a, b) = msg.split_at(msg.len() / 2);
        assert_eq!(hex::encode(blake2s::hmac(key, &[a, b])), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// HKDF-BLAKE2s (wireguard-go device/kdf_test.go)
// ---------------------------------------------------------------------------------------------

/// One `TestKDF` case: key, input, t0, t1, t2.
type KdfVector = (
    &'static [u8],
    &'static [u8],
    &'static str,
    &'static str,
    &'static str,
);

/// wireguard-go `device/kdf_test.go` `TestKDF` vectors: (key, input, t0, t1, t2), keys and inputs
/// as text.
///
/// wireguard-go keys HMAC with the key as given ("test-key" is 8 bytes). Our `kdf*` take a 32-byte
/// key; RFC 2104 zero-pads any key of at most the 64-byte block to the block, so a short key and the
/// same key zero-padded to 32 bytes give one and the same HMAC. `python_reference.py` checks that
/// equality on these three vectors before printing them.
const WG_GO_KDF: [KdfVector; 3] = [
    (
        b"test-key",
        b"test-input",
        "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
        "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
        "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24",
    ),
    (
        b"wireguard",
        b"wireguard",
        "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
        "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
        "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160",
    ),
    (
        b"",
        b"",
        "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
        "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
        "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e",
    ),
];

fn zero_padded(key: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..key.len()].copy_from_slice(key);
    k
}

#[test]
fn wireguard_go_kdf3_vectors() {
    for (key, input, t0, t1, t2) in WG_GO_KDF {
        let (a, b, c) = blake2s::kdf3(&zero_padded(key), input);
        assert_eq!(hex::encode(a), t0, "{key:?}");
        assert_eq!(hex::encode(b), t1, "{key:?}");
        assert_eq!(hex::encode(c), t2, "{key:?}");
    }
}

#[test]
fn wireguard_go_kdf2_vectors() {
    for (key, input, t0, t1, _) in WG_GO_KDF {
        let (a, b) = blake2s::kdf2(&zero_padded(key), input);
        assert_eq!(hex::encode(a), t0, "{key:?}");
        assert_eq!(hex::encode(b), t1, "{key:?}");
    }
}

#[test]
fn wireguard_go_kdf1_vectors() {
    for (key, input, t0, _, _) in WG_GO_KDF {
        assert_eq!(
            hex::encode(blake2s::kdf1(&zero_padded(key), input)),
            t0,
            "{key:?}"
        );
    }
}

#[test]
fn wireguard_initial_chain_key_and_hash() {
    // Python hashlib: Ci = blake2s(CONSTRUCTION), Hi = blake2s(Ci || IDENTIFIER). The same 32-byte
    // constants appear as INITIAL_CK / INITIAL_HS in wireguard-rs (src/wireguard/handshake/noise.rs)
    // and in the kernel's handshake_init_chaining_key / handshake_init_hash.
    let ck = blake2s::hash(&[b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"]);
    assert_eq!(
        hex::encode(ck),
        "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36"
    );
    let hi = blake2s::hash(&[&ck, b"WireGuard v1 zx2c4 Jason@zx2c4.com"]);
    assert_eq!(
        hex::encode(hi),
        "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3"
    );
}

// ---------------------------------------------------------------------------------------------
// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 Appendix A.3.1)
// ---------------------------------------------------------------------------------------------

const X_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const X_NONCE: &str = "404142434445464748494a4b4c4d4e4f5051525354555657";
const X_AAD: &str = "50515253c0c1c2c3c4c5c6c7";
const X_PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
const X_CIPHERTEXT: &str = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e\
3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e";
const X_TAG: &str = "c0875924c1c7987947deafd8780acf49";

#[test]
fn xchacha_draft_a3_1_seal_matches() {
    let mut buf = X_PLAINTEXT.to_vec();
    let tag = xaead::seal(&h(X_KEY), &h(X_NONCE), &hv(X_AAD), &mut buf);
    assert_eq!(hex::encode(&buf), X_CIPHERTEXT);
    assert_eq!(hex::encode(tag), X_TAG);
}

#[test]
fn xchacha_draft_a3_1_open_recovers_plaintext() {
    let mut buf = hv(X_CIPHERTEXT);
    xaead::open(&h(X_KEY), &h(X_NONCE), &hv(X_AAD), &mut buf, &h(X_TAG))
        .expect("the draft vector authenticates");
    assert_eq!(buf, X_PLAINTEXT);
}

#[test]
fn xchacha_draft_a3_1_tampering_fails_and_zeroes_data() {
    let key = h(X_KEY);
    let nonce: [u8; 24] = h(X_NONCE);
    let aad = hv(X_AAD);
    let tag: [u8; 16] = h(X_TAG);

    // A flipped ciphertext bit.
    let mut buf = hv(X_CIPHERTEXT);
    buf[57] ^= 0x10;
    assert_eq!(
        xaead::open(&key, &nonce, &aad, &mut buf, &tag),
        Err(CryptoError::AuthenticationFailed)
    );
    assert!(buf.iter().all(|&b| b == 0));

    // A flipped tag bit.
    let mut bad_tag = tag;
    bad_tag[15] ^= 0x80;
    let mut buf = hv(X_CIPHERTEXT);
    assert_eq!(
        xaead::open(&key, &nonce, &aad, &mut buf, &bad_tag),
        Err(CryptoError::AuthenticationFailed)
    );
    assert!(buf.iter().all(|&b| b == 0));

    // A flipped bit in the part of the nonce HChaCha20 consumes, and in the part ChaCha20 consumes.
    for byte in [0, 23] {
        let mut bad_nonce = nonce;
        bad_nonce[byte] ^= 1;
        let mut buf = hv(X_CIPHERTEXT);
        assert_eq!(
            xaead::open(&key, &bad_nonce, &aad, &mut buf, &tag),
            Err(CryptoError::AuthenticationFailed)
        );
        assert!(buf.iter().all(|&b| b == 0));
    }

    // Different associated data.
    let mut buf = hv(X_CIPHERTEXT);
    assert_eq!(
        xaead::open(&key, &nonce, &aad[1..], &mut buf, &tag),
        Err(CryptoError::AuthenticationFailed)
    );
    assert!(buf.iter().all(|&b| b == 0));
}

// ---------------------------------------------------------------------------------------------
// TAI64N
// ---------------------------------------------------------------------------------------------

#[test]
fn tai64n_unix_epoch_encoding() {
    // TAI64 label of 1970-01-01 00:00:00 UTC is 2^62 + 10 (https://cr.yp.to/libtai/tai64.html).
    let t = Tai64N::from_system_time(SystemTime::UNIX_EPOCH);
    assert_eq!(hex::encode(t.as_bytes()), "400000000000000a00000000");
}

#[test]
fn tai64n_known_encoding_with_whitened_nanoseconds() {
    // Python: struct.pack(">QI", 2**62 + 10 + 1700000000, 123456789 & ~0xffffff).
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    assert_eq!(
        hex::encode(Tai64N::from_system_time(t).as_bytes()),
        "400000006553f10a07000000"
    );
}

#[test]
fn tai64n_before_epoch_clamps_to_epoch() {
    let t = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
    assert_eq!(
        Tai64N::from_system_time(t),
        Tai64N::from_system_time(SystemTime::UNIX_EPOCH)
    );
}

#[test]
fn tai64n_nanoseconds_are_a_multiple_of_2_pow_24() {
    for nanos in [0, 1, 0x00ff_ffff, 0x0100_0000, 0x0100_0001, 999_999_999] {
        let t = SystemTime::UNIX_EPOCH + Duration::new(42, nanos);
        let enc = Tai64N::from_system_time(t);
        let got = u32::from_be_bytes(enc.as_bytes()[8..].try_into().expect("4 bytes"));
        assert_eq!(got % (1 << 24), 0, "nanos {nanos}");
        assert_eq!(got, nanos & !0x00ff_ffff, "nanos {nanos}");
        assert!(
            got <= nanos && nanos - got < 1 << 24,
            "rounded down within 2^24 ns"
        );
    }
}

#[test]
fn tai64n_ordering() {
    let at =
        |secs, nanos| Tai64N::from_system_time(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos));
    let earlier = at(1_000, 0);
    let later_nanos = at(1_000, 1 << 24);
    let later_secs = at(1_001, 0);
    assert!(later_nanos.is_after(&earlier));
    assert!(later_secs.is_after(&later_nanos));
    assert!(later_secs.is_after(&earlier));
    assert!(!earlier.is_after(&later_nanos));
    assert!(!earlier.is_after(&later_secs));
    // Equal is not after: a replayed initiation is refused.
    assert!(!earlier.is_after(&earlier));
    // Within one 2^24 ns step the whitened timestamps are equal, so neither is after the other.
    let same_step = at(1_000, (1 << 24) - 1);
    assert_eq!(same_step, earlier);
    assert!(!same_step.is_after(&earlier));
    // Seconds dominate nanoseconds (big-endian seconds first).
    assert!(at(1_001, 0).is_after(&at(1_000, 999_999_999)));
    // Anything real is after ZERO; ZERO is after nothing.
    assert!(earlier.is_after(&Tai64N::ZERO));
    assert!(!Tai64N::ZERO.is_after(&Tai64N::ZERO));
}

#[test]
fn tai64n_from_bytes_roundtrips() {
    let bytes = h::<12>("400000006553f10a07000000");
    let t = Tai64N::from_bytes(bytes);
    assert_eq!(t.as_bytes(), &bytes);
    assert_eq!(
        t,
        Tai64N::from_system_time(
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)
        )
    );
}

// ---------------------------------------------------------------------------------------------
// SeededRng and constant_time_eq
// ---------------------------------------------------------------------------------------------

#[test]
fn seeded_rng_stream_is_pinned() {
    // Python hashlib: s = blake2s(b"pnet-mesh seeded rng" || LE64(seed)); block i = blake2s(s || LE64(i)).
    // Pinned because tests and fuzz corpora elsewhere rely on SeededRng drawing the same bytes.
    for (seed, expected) in [
        (
            0,
            "54950110aa81edbf48b741ffba76e7c59bf14d8fb33de2a8cee5c970e939c993\
             ea2745487d500f049bae663a7c639e203b2c179546cefabf016d755c2f418fca",
        ),
        (
            7,
            "85b14cfa07e1a220224259fd2e14642308719ad1959649cbfd9e637320e177a9\
             a13fe65fd144d2079ac541adbf6ea165afee3715bad7b04a7d6432d82c715ad6",
        ),
    ] {
        let mut rng = SeededRng::new(seed);
        let mut out = [0u8; 64];
        rng.fill_bytes(&mut out);
        assert_eq!(hex::encode(out), expected, "seed {seed}");
    }
}

#[test]
fn seeded_rng_words_are_little_endian_draws() {
    let mut a = SeededRng::new(0);
    assert_eq!(a.next_u32(), 0x1001_9554);
    assert_eq!(a.next_u64(), u64::from_le_bytes(h("aa81edbf48b741ff")));
}

#[test]
fn constant_time_eq_semantics() {
    use pnet_mesh_crypto::constant_time_eq;
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"", b"a"));
    assert!(!constant_time_eq(&[0u8; 32], &[0u8; 31]));
}
