//! Property tests for `pnet_mesh_crypto` (proptest): round trips, tamper detection with a zeroed
//! buffer, KDF consistency, X25519 agreement and `SeededRng` determinism.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use pnet_mesh_crypto::aead::{self, AeadKey, TAG_LEN};
use pnet_mesh_crypto::rng::{Rng, SeededRng};
use pnet_mesh_crypto::{CryptoError, PrivateKey, blake2s, xaead};

/// Payloads up to a full Ethernet MTU, the largest a transport packet carries.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..1500)
}

fn aad() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

/// Seals `plain` and returns `ciphertext || tag`.
fn seal_to_vec(key: &AeadKey, counter: u64, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    let tag = key.seal_in_place(counter, aad, &mut buf);
    buf.extend_from_slice(&tag);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn aead_roundtrip(
        key in any::<[u8; 32]>(),
        counter in any::<u64>(),
        aad in aad(),
        data in payload(),
    ) {
        let k = AeadKey::new(&key);
        let mut buf = seal_to_vec(&k, counter, &aad, &data);
        prop_assert_eq!(buf.len(), data.len() + TAG_LEN);
        // The ciphertext differs from the plaintext (probability 2^-8n of a false alarm is
        // negligible for n >= 8).
        if data.len() >= 8 {
            prop_assert_ne!(&buf[..data.len()], &data[..]);
        }
        let plain = k.open_in_place(counter, &aad, &mut buf).expect("own seal opens");
        prop_assert_eq!(&plain[..], &data[..]);
    }

    #[test]
    fn aead_key_and_one_shot_agree(
        key in any::<[u8; 32]>(),
        counter in any::<u64>(),
        aad in aad(),
        data in payload(),
    ) {
        let mut a = data.clone();
        let tag_a = AeadKey::new(&key).seal_in_place(counter, &aad, &mut a);
        let mut b = data.clone();
        let tag_b = aead::seal(&key, counter, &aad, &mut b);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(tag_a, tag_b);
        b.extend_from_slice(&tag_b);
        let plain = aead::open(&key, counter, &aad, &mut b).expect("one-shot open");
        prop_assert_eq!(&plain[..], &data[..]);
    }

    #[test]
    fn aead_any_bit_flip_fails_and_zeroes(
        key in any::<[u8; 32]>(),
        counter in any::<u64>(),
        aad in aad(),
        data in payload(),
        bit in any::<Index>(),
    ) {
        let k = AeadKey::new(&key);
        let mut buf = seal_to_vec(&k, counter, &aad, &data);
        let bit = bit.index(buf.len() * 8);
        buf[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(
            k.open_in_place(counter, &aad, &mut buf),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert!(buf.iter().all(|&b| b == 0), "buffer not zeroed after flipping bit {}", bit);
    }

    #[test]
    fn aead_aad_bit_flip_fails_and_zeroes(
        key in any::<[u8; 32]>(),
        counter in any::<u64>(),
        aad in vec(any::<u8>(), 1..64),
        data in payload(),
        bit in any::<Index>(),
    ) {
        let k = AeadKey::new(&key);
        let mut buf = seal_to_vec(&k, counter, &aad, &data);
        let mut bad_aad = aad.clone();
        let bit = bit.index(bad_aad.len() * 8);
        bad_aad[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(
            k.open_in_place(counter, &bad_aad, &mut buf),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn aead_wrong_counter_or_key_fails_and_zeroes(
        key in any::<[u8; 32]>(),
        other_key in any::<[u8; 32]>(),
        counter in any::<u64>(),
        other_counter in any::<u64>(),
        data in payload(),
    ) {
        prop_assume!(key != other_key && counter != other_counter);
        let k = AeadKey::new(&key);
        let sealed = seal_to_vec(&k, counter, b"", &data);

        let mut buf = sealed.clone();
        prop_assert_eq!(
            k.open_in_place(other_counter, b"", &mut buf),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert!(buf.iter().all(|&b| b == 0));

        let mut buf = sealed;
        prop_assert_eq!(
            AeadKey::new(&other_key).open_in_place(counter, b"", &mut buf),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn aead_truncated_input_fails_and_zeroes(
        key in any::<[u8; 32]>(),
        counter in any::<u64>(),
        data in payload(),
        cut in any::<Index>(),
    ) {
        let k = AeadKey::new(&key);
        let mut sealed = seal_to_vec(&k, counter, b"", &data);
        let keep = cut.index(sealed.len()); // strictly shorter than the sealed message
        let buf = &mut sealed[..keep];
        let result = k.open_in_place(counter, b"", buf);
        if keep < TAG_LEN {
            prop_assert_eq!(result, Err(CryptoError::TooShort { len: keep }));
        } else {
            prop_assert_eq!(result, Err(CryptoError::AuthenticationFailed));
        }
        prop_assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn xaead_roundtrip(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 24]>(),
        aad in aad(),
        data in payload(),
    ) {
        let mut buf = data.clone();
        let tag = xaead::seal(&key, &nonce, &aad, &mut buf);
        if data.len() >= 8 {
            prop_assert_ne!(&buf, &data);
        }
        xaead::open(&key, &nonce, &aad, &mut buf, &tag).expect("own seal opens");
        prop_assert_eq!(&buf, &data);
    }

    #[test]
    fn xaead_any_bit_flip_fails_and_zeroes(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 24]>(),
        aad in aad(),
        data in vec(any::<u8>(), 0..256),
        bit in any::<Index>(),
    ) {
        let mut buf = data.clone();
        let mut tag = xaead::seal(&key, &nonce, &aad, &mut buf);
        // Flip one bit anywhere in ciphertext || tag.
        let bit = bit.index((buf.len() + tag.len()) * 8);
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        if byte < buf.len() {
            buf[byte] ^= mask;
        } else {
            tag[byte - buf.len()] ^= mask;
        }
        prop_assert_eq!(
            xaead::open(&key, &nonce, &aad, &mut buf, &tag),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn kdf_outputs_are_prefix_consistent(key in any::<[u8; 32]>(), input in vec(any::<u8>(), 0..200)) {
        let t1 = blake2s::kdf1(&key, &input);
        let (a1, a2) = blake2s::kdf2(&key, &input);
        let (b1, b2, b3) = blake2s::kdf3(&key, &input);
        prop_assert_eq!(t1, a1);
        prop_assert_eq!(a1, b1);
        prop_assert_eq!(a2, b2);
        // The chain's outputs are distinct.
        prop_assert_ne!(b1, b2);
        prop_assert_ne!(b2, b3);
        prop_assert_ne!(b1, b3);
    }

    #[test]
    fn kdf_is_hkdf_over_hmac(key in any::<[u8; 32]>(), input in vec(any::<u8>(), 0..200)) {
        // RFC 5869 with the WireGuard shape: PRK = HMAC(key, input); T1 = HMAC(PRK, 0x01);
        // T(i) = HMAC(PRK, T(i-1) || i).
        let prk = blake2s::hmac(&key, &[&input]);
        let t1 = blake2s::hmac(&prk, &[&[1]]);
        let t2 = blake2s::hmac(&prk, &[&t1, &[2]]);
        let t3 = blake2s::hmac(&prk, &[&t2, &[3]]);
        prop_assert_eq!(blake2s::kdf3(&key, &input), (t1, t2, t3));
    }

    #[test]
    fn hash_mac_hmac_ignore_how_input_is_split(
        key in any::<[u8; 32]>(),
        data in vec(any::<u8>(), 0..300),
        split_a in any::<Index>(),
        split_b in any::<Index>(),
    ) {
        let (i, j) = {
            let x = split_a.index(data.len() + 1);
            let y = split_b.index(data.len() + 1);
            (x.min(y), x.max(y))
        };
        let parts: [&[u8]; 3] = [&data[..i], &data[i..j], &data[j..]];
        prop_assert_eq!(blake2s::hash(&parts), blake2s::hash(&[&data]));
        prop_assert_eq!(blake2s::mac(&key, &parts), blake2s::mac(&key, &[&data]));
        prop_assert_eq!(blake2s::hmac(&key, &parts), blake2s::hmac(&key, &[&data]));
    }

    #[test]
    fn x25519_agreement(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let alice = PrivateKey::from_bytes(a);
        let bob = PrivateKey::from_bytes(b);
        prop_assert!(!alice.public_key().is_low_order());
        let ab = alice.diffie_hellman(&bob.public_key()).expect("ordinary keys");
        let ba = bob.diffie_hellman(&alice.public_key()).expect("ordinary keys");
        prop_assert_eq!(ab.as_bytes(), ba.as_bytes());
    }

    #[test]
    fn key_base64_roundtrip(bytes in any::<[u8; 32]>()) {
        let private = PrivateKey::from_bytes(bytes);
        let again = PrivateKey::from_base64(&private.to_base64()).expect("own encoding parses");
        prop_assert_eq!(again.as_bytes(), &bytes);
        let public = private.public_key();
        prop_assert_eq!(pnet_mesh_crypto::PublicKey::from_base64(&public.to_string()), Ok(public));
    }

    #[test]
    fn seeded_rng_is_deterministic_per_seed(seed in any::<u64>(), len in 0usize..300) {
        let mut a = SeededRng::new(seed);
        let mut b = SeededRng::new(seed);
        let mut x = vec![0u8; len];
        let mut y = vec![0u8; len];
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        prop_assert_eq!(&x, &y);
        // A clone continues the same stream.
        let mut c = a.clone();
        prop_assert_eq!(a.next_u64(), c.next_u64());
        let (ka, kc) = (PrivateKey::generate(&mut a), PrivateKey::generate(&mut c));
        prop_assert_eq!(ka.as_bytes(), kc.as_bytes());
    }

    #[test]
    fn seeded_rng_blocks_do_not_repeat(seed in any::<u64>()) {
        // Each 32-byte block hashes a fresh counter: a stuck counter would repeat the first block.
        let mut rng = SeededRng::new(seed);
        let mut out = [0u8; 96];
        rng.fill_bytes(&mut out);
        let (a, rest) = out.split_at(32);
        let (b, c) = rest.split_at(32);
        prop_assert_ne!(a, b);
        prop_assert_ne!(b, c);
        prop_assert_ne!(a, c);
    }

    #[test]
    fn seeded_rng_differs_across_seeds(s1 in any::<u64>(), s2 in any::<u64>()) {
        prop_assume!(s1 != s2);
        let mut a = SeededRng::new(s1);
        let mut b = SeededRng::new(s2);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        prop_assert_ne!(x, y);
    }

    #[test]
    fn seeded_rng_stream_does_not_depend_on_chunking(
        seed in any::<u64>(),
        chunks in vec(0usize..80, 0..10),
    ) {
        let total: usize = chunks.iter().sum();
        let mut whole = vec![0u8; total];
        SeededRng::new(seed).fill_bytes(&mut whole);
        let mut rng = SeededRng::new(seed);
        let mut pieces = Vec::with_capacity(total);
        for n in chunks {
            let mut chunk = vec![0u8; n];
            rng.fill_bytes(&mut chunk);
            pieces.extend_from_slice(&chunk);
        }
        prop_assert_eq!(whole, pieces);
    }
}
