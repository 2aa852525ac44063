//! The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake with WireGuard's framing (whitepaper §5.4.2-§5.4.5).
//!
//! `create_*` / `consume_*` pairs, as wireguard-go's `noise-protocol.go`. Each `consume_*` works on local
//! copies and returns everything the caller must commit; it changes no state itself, so a message that
//! fails any step leaves the node exactly as it was. The whitepaper's line is quoted above each step.

use pnet_mesh_crypto::blake2s::{hash, kdf1, kdf2, kdf3};
use pnet_mesh_crypto::{PrivateKey, PublicKey, Tai64N, aead};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::constants::{CONSTRUCTION, IDENTIFIER, LABEL_COOKIE, LABEL_MAC1};
use super::wire::{Initiation, Response};

/// Why a handshake message was refused after its MACs passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// A Diffie-Hellman result was all zero: a low-order ephemeral or static key.
    LowOrderKey,
    /// An AEAD in the message did not verify (corrupted, or another key or PSK).
    DecryptFailed,
    /// The static key decrypted to a key that is not a configured peer.
    UnknownPeer,
}

/// Our static identity with the values derived from it once.
pub(crate) struct Identity {
    pub(crate) private: PrivateKey,
    pub(crate) public: PublicKey,
    /// `HASH(LABEL_MAC1 ‖ our public key)`: checks mac1 of messages sent to us.
    pub(crate) mac1_key: [u8; 32],
    /// `HASH(LABEL_COOKIE ‖ our public key)`: encrypts cookie replies we send.
    pub(crate) cookie_key: [u8; 32],
    /// `HASH(HASH(HASH(CONSTRUCTION) ‖ IDENTIFIER) ‖ our public key)`: the responder's initial hash.
    initial_hash: [u8; 32],
}

impl Identity {
    pub(crate) fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        Identity {
            mac1_key: hash(&[LABEL_MAC1, public.as_bytes()]),
            cookie_key: hash(&[LABEL_COOKIE, public.as_bytes()]),
            initial_hash: hash(&[&initial_chain_hash().1, public.as_bytes()]),
            private,
            public,
        }
    }
}

/// What we know about one peer's keys, precomputed at configuration.
#[derive(ZeroizeOnDrop)]
pub(crate) struct PeerKeys {
    #[zeroize(skip)]
    pub(crate) public: PublicKey,
    pub(crate) psk: [u8; 32],
    /// `DH(our static, their static)`, the `ss` term, computed once.
    static_static: [u8; 32],
    /// `HASH(HASH(HASH(CONSTRUCTION) ‖ IDENTIFIER) ‖ their public key)`: the initiator's initial hash.
    initial_hash: [u8; 32],
    /// `HASH(LABEL_MAC1 ‖ their public key)`: keys mac1 of messages we send them.
    pub(crate) mac1_key: [u8; 32],
    /// `HASH(LABEL_COOKIE ‖ their public key)`: decrypts cookie replies they send us.
    pub(crate) cookie_key: [u8; 32],
}

impl PeerKeys {
    /// Precomputes the peer's values.
    ///
    /// A low-order peer key (refused by configuration validation anyway) leaves the `ss` term zero;
    /// every handshake with it then fails at its ephemeral-static exchange.
    pub(crate) fn new(identity: &Identity, public: PublicKey, psk: Option<[u8; 32]>) -> Self {
        let static_static = identity
            .private
            .diffie_hellman(&public)
            .map(|ss| *ss.as_bytes())
            .unwrap_or([0; 32]);
        PeerKeys {
            public,
            psk: psk.unwrap_or([0; 32]),
            static_static,
            initial_hash: hash(&[&initial_chain_hash().1, public.as_bytes()]),
            mac1_key: hash(&[LABEL_MAC1, public.as_bytes()]),
            cookie_key: hash(&[LABEL_COOKIE, public.as_bytes()]),
        }
    }
}

/// `(C, H)` before any message: `Ci := HASH(Construction)`, `Hi := HASH(Ci ‖ Identifier)`.
fn initial_chain_hash() -> ([u8; 32], [u8; 32]) {
    let ck = hash(&[CONSTRUCTION]);
    let h = hash(&[&ck, IDENTIFIER]);
    (ck, h)
}

/// The initiator's state between sending an initiation and receiving its response.
#[derive(ZeroizeOnDrop)]
pub(crate) struct InitiationState {
    #[zeroize(skip)]
    pub(crate) local_index: u32,
    ephemeral: PrivateKey,
    chaining_key: [u8; 32],
    hash: [u8; 32],
}

/// Transport keys derived at the end of a handshake.
#[derive(ZeroizeOnDrop)]
pub(crate) struct SessionKeys {
    pub(crate) send: [u8; 32],
    pub(crate) recv: [u8; 32],
}

/// An initiation that decrypted to a configured peer, with what the response needs.
#[derive(ZeroizeOnDrop)]
pub(crate) struct ConsumedInitiation {
    #[zeroize(skip)]
    pub(crate) sender: u32,
    #[zeroize(skip)]
    pub(crate) timestamp: Tai64N,
    remote_ephemeral: [u8; 32],
    chaining_key: [u8; 32],
    hash: [u8; 32],
}

/// Builds an initiation (mac1 and mac2 left zero; the cookie module fills them).
pub(crate) fn create_initiation(
    identity: &Identity,
    peer: &PeerKeys,
    local_index: u32,
    ephemeral: PrivateKey,
    timestamp: Tai64N,
) -> Result<(Initiation, InitiationState), HandshakeError> {
    // Ci := HASH(Construction); Hi := HASH(Ci ‖ Identifier); Hi := HASH(Hi ‖ Spub_r)
    let (mut ck, _) = initial_chain_hash();
    let mut h = peer.initial_hash;
    // msg.ephemeral := Epub_i; Ci := KDF1(Ci, Epub_i); Hi := HASH(Hi ‖ msg.ephemeral)
    let e_pub = ephemeral.public_key();
    ck = kdf1(&ck, e_pub.as_bytes());
    h = hash(&[&h, e_pub.as_bytes()]);
    // (Ci, κ) := KDF2(Ci, DH(Epriv_i, Spub_r)); msg.static := AEAD(κ, 0, Spub_i, Hi); Hi := HASH(Hi ‖ msg.static)
    let es = ephemeral
        .diffie_hellman(&peer.public)
        .map_err(|_| HandshakeError::LowOrderKey)?;
    let (ck2, mut key) = kdf2(&ck, es.as_bytes());
    ck = ck2;
    let mut encrypted_static = [0u8; 48];
    encrypted_static[..32].copy_from_slice(identity.public.as_bytes());
    let tag = aead::seal(&key, 0, &h, &mut encrypted_static[..32]);
    encrypted_static[32..].copy_from_slice(&tag);
    h = hash(&[&h, &encrypted_static]);
    // (Ci, κ) := KDF2(Ci, DH(Spriv_i, Spub_r)); msg.timestamp := AEAD(κ, 0, TAI64N(), Hi); Hi := HASH(Hi ‖ msg.timestamp)
    let (ck3, key2) = kdf2(&ck, &peer.static_static);
    ck = ck3;
    key.zeroize();
    key = key2;
    let mut encrypted_timestamp = [0u8; 28];
    encrypted_timestamp[..12].copy_from_slice(timestamp.as_bytes());
    let tag = aead::seal(&key, 0, &h, &mut encrypted_timestamp[..12]);
    encrypted_timestamp[12..].copy_from_slice(&tag);
    h = hash(&[&h, &encrypted_timestamp]);
    key.zeroize();

    let msg = Initiation {
        sender: local_index,
        ephemeral: *e_pub.as_bytes(),
        encrypted_static,
        encrypted_timestamp,
        mac1: [0; 16],
        mac2: [0; 16],
    };
    let state = InitiationState {
        local_index,
        ephemeral,
        chaining_key: ck,
        hash: h,
    };
    ck.zeroize();
    Ok((msg, state))
}

/// Decrypts an initiation addressed to `identity`. `lookup` maps the decrypted static key to a configured
/// peer. Changes nothing: the caller checks the timestamp and flood limits and then commits.
pub(crate) fn consume_initiation<'p, P>(
    identity: &Identity,
    msg: &Initiation,
    lookup: impl FnOnce(&PublicKey) -> Option<(P, &'p PeerKeys)>,
) -> Result<(P, ConsumedInitiation), HandshakeError> {
    let (mut ck, _) = initial_chain_hash();
    let mut h = identity.initial_hash;
    // Cr := KDF1(Cr, msg.ephemeral); Hr := HASH(Hr ‖ msg.ephemeral)
    ck = kdf1(&ck, &msg.ephemeral);
    h = hash(&[&h, &msg.ephemeral]);
    // (Cr, κ) := KDF2(Cr, DH(Spriv_r, msg.ephemeral)); Spub_i := AEAD-open(κ, 0, msg.static, Hr)
    let es = identity
        .private
        .diffie_hellman(&PublicKey::from_bytes(msg.ephemeral))
        .map_err(|_| HandshakeError::LowOrderKey)?;
    let (ck2, mut key) = kdf2(&ck, es.as_bytes());
    ck = ck2;
    let mut static_buf = msg.encrypted_static;
    let opened = aead::open(&key, 0, &h, &mut static_buf);
    key.zeroize();
    let remote_static = match opened {
        Ok(plain) => {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(plain);
            PublicKey::from_bytes(bytes)
        }
        Err(_) => return Err(HandshakeError::DecryptFailed),
    };
    h = hash(&[&h, &msg.encrypted_static]);
    let (peer_id, peer) = lookup(&remote_static).ok_or(HandshakeError::UnknownPeer)?;
    // (Cr, κ) := KDF2(Cr, DH(Spriv_r, Spub_i)); timestamp := AEAD-open(κ, 0, msg.timestamp, Hr)
    let (ck3, mut key) = kdf2(&ck, &peer.static_static);
    ck = ck3;
    let mut ts_buf = msg.encrypted_timestamp;
    let opened = aead::open(&key, 0, &h, &mut ts_buf);
    key.zeroize();
    let timestamp = match opened {
        Ok(plain) => {
            let mut bytes = [0u8; 12];
            bytes.copy_from_slice(plain);
            Tai64N::from_bytes(bytes)
        }
        Err(_) => return Err(HandshakeError::DecryptFailed),
    };
    h = hash(&[&h, &msg.encrypted_timestamp]);
    let consumed = ConsumedInitiation {
        sender: msg.sender,
        timestamp,
        remote_ephemeral: msg.ephemeral,
        chaining_key: ck,
        hash: h,
    };
    ck.zeroize();
    Ok((peer_id, consumed))
}

/// Builds the response to a consumed initiation and derives the responder's transport keys.
pub(crate) fn create_response(
    peer: &PeerKeys,
    consumed: &ConsumedInitiation,
    local_index: u32,
    ephemeral: PrivateKey,
) -> Result<(Response, SessionKeys), HandshakeError> {
    let mut ck = consumed.chaining_key;
    let mut h = consumed.hash;
    // msg.ephemeral := Epub_r; Cr := KDF1(Cr, Epub_r); Hr := HASH(Hr ‖ msg.ephemeral)
    let e_pub = ephemeral.public_key();
    ck = kdf1(&ck, e_pub.as_bytes());
    h = hash(&[&h, e_pub.as_bytes()]);
    // Cr := KDF1(Cr, DH(Epriv_r, Epub_i))
    let ee = ephemeral
        .diffie_hellman(&PublicKey::from_bytes(consumed.remote_ephemeral))
        .map_err(|_| HandshakeError::LowOrderKey)?;
    ck = kdf1(&ck, ee.as_bytes());
    // Cr := KDF1(Cr, DH(Epriv_r, Spub_i))
    let se = ephemeral
        .diffie_hellman(&peer.public)
        .map_err(|_| HandshakeError::LowOrderKey)?;
    ck = kdf1(&ck, se.as_bytes());
    // (Cr, τ, κ) := KDF3(Cr, Q); Hr := HASH(Hr ‖ τ); msg.empty := AEAD(κ, 0, ε, Hr); Hr := HASH(Hr ‖ msg.empty)
    let (ck2, mut tau, mut key) = kdf3(&ck, &peer.psk);
    ck = ck2;
    h = hash(&[&h, &tau]);
    tau.zeroize();
    let encrypted_nothing = aead::seal(&key, 0, &h, &mut []);
    key.zeroize();
    h = hash(&[&h, &encrypted_nothing]);
    h.zeroize();
    // (Tr_recv, Tr_send) := KDF2(Cr, ε)
    let (recv, send) = kdf2(&ck, &[]);
    ck.zeroize();
    let msg = Response {
        sender: local_index,
        receiver: consumed.sender,
        ephemeral: *e_pub.as_bytes(),
        encrypted_nothing,
        mac1: [0; 16],
        mac2: [0; 16],
    };
    Ok((msg, SessionKeys { send, recv }))
}

/// Checks a response against our pending initiation and derives the initiator's transport keys.
/// Changes nothing on failure: a response made with another PSK or key yields no session.
pub(crate) fn consume_response(
    identity: &Identity,
    peer: &PeerKeys,
    state: &InitiationState,
    msg: &Response,
) -> Result<SessionKeys, HandshakeError> {
    let mut ck = state.chaining_key;
    let mut h = state.hash;
    let e_r = PublicKey::from_bytes(msg.ephemeral);
    // Ci := KDF1(Ci, msg.ephemeral); Hi := HASH(Hi ‖ msg.ephemeral)
    ck = kdf1(&ck, &msg.ephemeral);
    h = hash(&[&h, &msg.ephemeral]);
    // Ci := KDF1(Ci, DH(Epriv_i, msg.ephemeral))
    let ee = state
        .ephemeral
        .diffie_hellman(&e_r)
        .map_err(|_| HandshakeError::LowOrderKey)?;
    ck = kdf1(&ck, ee.as_bytes());
    // Ci := KDF1(Ci, DH(Spriv_i, msg.ephemeral))
    let se = identity
        .private
        .diffie_hellman(&e_r)
        .map_err(|_| HandshakeError::LowOrderKey)?;
    ck = kdf1(&ck, se.as_bytes());
    // (Ci, τ, κ) := KDF3(Ci, Q); Hi := HASH(Hi ‖ τ); AEAD-open(κ, 0, msg.empty, Hi)
    let (ck2, mut tau, mut key) = kdf3(&ck, &peer.psk);
    ck = ck2;
    h = hash(&[&h, &tau]);
    tau.zeroize();
    let mut empty = msg.encrypted_nothing;
    let opened = aead::open(&key, 0, &h, &mut empty);
    key.zeroize();
    h.zeroize();
    if opened.is_err() {
        ck.zeroize();
        return Err(HandshakeError::DecryptFailed);
    }
    // (Ti_send, Ti_recv) := KDF2(Ci, ε)
    let (send, recv) = kdf2(&ck, &[]);
    ck.zeroize();
    Ok(SessionKeys { send, recv })
}
