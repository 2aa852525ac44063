#!/usr/bin/env python3
"""Independent reference values for crypto/tests/known_answers.rs.

Every value printed here is computed with Python's standard library (hashlib, hmac), which wraps
the BLAKE2 reference code and RFC 2104 HMAC, so it shares no code with the Rust crates under test
(`blake2`, our hand-written HMAC and KDF). Run it with `python3 python_reference.py`; the Rust
tests embed its output as constants, with "Python hashlib" named as their source.

If the `cryptography` package is installed, it also cross-checks the RFC vectors copied into the
Rust tests (ChaCha20-Poly1305 RFC 8439 A.5, X25519 RFC 7748 5.2/6.1) against OpenSSL, and the
draft-irtf-cfrg-xchacha-03 A.3.1 vector against a HChaCha20 written here from the draft.
"""
import hashlib
import hmac
import struct


def h(b):
    return b.hex()


def mac16(key, data):
    return hashlib.blake2s(data, key=key, digest_size=16).hexdigest()


def hmac_b2s(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()


def kdf(key, data, n):
    prk = hmac_b2s(key, data)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = hmac_b2s(prk, prev + bytes([i]))
        out.append(prev)
    return out


def seq(n):
    return bytes(i & 0xFF for i in range(n))


print("== BLAKE2s-256 (hashlib.blake2s) ==")
for name, data in [("empty", b""), ("abc", b"abc"), ("seq64", seq(64)), ("seq65", seq(65)), ("seq255", seq(255))]:
    print(f"hash {name}: {hashlib.blake2s(data).hexdigest()}")

print("== keyed BLAKE2s, 16-byte digest (hashlib.blake2s(data, key=key, digest_size=16)) ==")
key32 = seq(32)
for n in [0, 1, 3, 63, 64, 65, 255]:
    print(f"mac key=seq32 data=seq{n}: {mac16(key32, seq(n))}")
key16 = bytes(range(0xA0, 0xB0))
print(f"mac key=a0..af data='cookie-input': {mac16(key16, b'cookie-input')}")

print(f"mac key=(empty) data='abc': {hashlib.blake2s(b'abc', digest_size=16).hexdigest()}")

print("== HMAC-BLAKE2s (hmac.new(key, msg, hashlib.blake2s)) ==")
for kname, key in [("seq32", seq(32)), ("zero32", bytes(32))]:
    for dname, data in [("empty", b""), ("abc", b"abc"), ("seq200", seq(200))]:
        print(f"hmac key={kname} data={dname}: {h(hmac_b2s(key, data))}")

print("== HKDF-BLAKE2s: short key vs zero-padded 32-byte key ==")
for key, inp in [(b"test-key", b"test-input"), (b"wireguard", b"wireguard"), (b"", b"")]:
    short = kdf(key, inp, 3)
    padded = kdf(key.ljust(32, b"\0"), inp, 3)
    assert short == padded, "zero-padding the HMAC key changed the result"
    print(f"kdf key={key!r} input={inp!r}: " + " ".join(h(t) for t in short))

print("== WireGuard initial chain key and hash ==")
ck = hashlib.blake2s(b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s").digest()
hh = hashlib.blake2s(ck + b"WireGuard v1 zx2c4 Jason@zx2c4.com").digest()
print(f"initial chain key: {h(ck)}")
print(f"initial hash: {h(hh)}")

print("== TAI64N ==")
secs, nanos = 1_700_000_000, 123_456_789
enc = struct.pack(">QI", (1 << 62) + 10 + secs, nanos & ~0xFFFFFF)
print(f"tai64n unix {secs}.{nanos:09d}: {h(enc)}")

print("== SeededRng: BLAKE2s(BLAKE2s('pnet-mesh seeded rng' || LE64 seed) || LE64 counter) ==")
for seed in (0, 7):
    state = hashlib.blake2s(b"pnet-mesh seeded rng" + struct.pack("<Q", seed)).digest()
    stream = b"".join(hashlib.blake2s(state + struct.pack("<Q", c)).digest() for c in range(2))
    print(f"seeded rng {seed}, first 64 bytes: {h(stream)}")

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives import serialization
except ImportError:
    print("cryptography not installed: RFC cross-checks skipped")
    raise SystemExit(0)

print("== cross-checks of copied RFC vectors against OpenSSL ==")
x = bytes.fromhex
key = x("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0")
nonce = x("000000000102030405060708")
aad = x("f33388860000000000004e91")
pt = (b"Internet-Drafts are draft documents valid for a maximum of six months and may be updated, "
      b"replaced, or obsoleted by other documents at any time. It is inappropriate to use "
      b"Internet-Drafts as reference material or to cite them other than as /\xe2\x80\x9cwork in "
      b"progress./\xe2\x80\x9d")
print(f"rfc8439 A.5 nonce as LE64 counter: {struct.unpack('<Q', nonce[4:])[0]:#018x}")
print(f"rfc8439 A.5 seal: {h(ChaCha20Poly1305(key).encrypt(nonce, pt, aad))}")


def x25519(k, u):
    priv = X25519PrivateKey.from_private_bytes(k)
    return priv.exchange(X25519PublicKey.from_public_bytes(u))


print("rfc7748 5.2 #1:", h(x25519(
    x("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
    x("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))))
print("rfc7748 5.2 #2:", h(x25519(
    x("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
    x("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"))))
k = u = (9).to_bytes(32, "little")
for i in range(1, 1001):
    k, u = x25519(k, u), k
    if i in (1, 1000):
        print(f"rfc7748 5.2 after {i} iteration(s): {h(k)}")
a = x("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
b = x("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
print("rfc7748 6.1 alice pub:", h(X25519PrivateKey.from_private_bytes(a).public_key().public_bytes(*raw)))
print("rfc7748 6.1 bob pub:", h(X25519PrivateKey.from_private_bytes(b).public_key().public_bytes(*raw)))
print("rfc7748 6.1 shared:", h(x25519(a, X25519PrivateKey.from_private_bytes(b).public_key().public_bytes(*raw))))


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    s = list(struct.unpack("<4I", b"expand 32-byte k")) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


xkey = x("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
xnonce = x("404142434445464748494a4b4c4d4e4f5051525354555657")
xaad = x("50515253c0c1c2c3c4c5c6c7")
xpt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
subkey = hchacha20(xkey, xnonce[:16])
print("xchacha A.3.1 seal:", h(ChaCha20Poly1305(subkey).encrypt(b"\0\0\0\0" + xnonce[16:], xpt, xaad)))
