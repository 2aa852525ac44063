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
            initial_hash: initial_hash(&public),
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
            initial_hash: initial_hash(&public),
            mac1_key: hash(&[LABEL_MAC1, public.as_bytes()]),
            cookie_key: hash(&[LABEL_COOKIE, public.as_bytes()]),
        }
    }
}

/// The Noise symmetric state `(C, H)`: chaining key and transcript hash, zeroized on drop.
#[derive(Clone, ZeroizeOnDrop)]
struct Chain {
    ck: [u8; 32],
    h: [u8; 32],
}

impl Chain {
    /// `Ci := HASH(Construction)`, `Hi := HASH(HASH(Ci ‖ Identifier) ‖ responder public key)`, with the
    /// second hash precomputed per responder key (`initial_hash`).
    fn start(initial_hash: [u8; 32]) -> Self {
        Chain {
            ck: hash(&[CONSTRUCTION]),
            h: initial_hash,
        }
    }

    /// `H := HASH(H ‖ data)`.
    fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    /// `C := KDF1(C, input)`.
    fn mix_key(&mut self, input: &[u8]) {
        self.ck = kdf1(&self.ck, input);
    }

    /// `(C, κ) := KDF2(C, input)`; returns κ.
    fn mix_key_get(&mut self, input: &[u8]) -> Key {
        let (ck, key) = kdf2(&self.ck, input);
        self.ck = ck;
        Key(key)
    }

    /// `(C, τ, κ) := KDF3(C, Q); H := HASH(H ‖ τ)`; returns κ.
    fn mix_psk(&mut self, psk: &[u8; 32]) -> Key {
        let (ck, mut tau, key) = kdf3(&self.ck, psk);
        self.ck = ck;
        self.mix_hash(&tau);
        tau.zeroize();
        Key(key)
    }

    /// `out := AEAD(κ, 0, plain, H); H := HASH(H ‖ out)`, where `out` is `plain` and the tag.
    fn encrypt_and_hash<const N: usize>(&mut self, key: &Key, plain: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        let (body, tag) = out.split_at_mut(N - aead::TAG_LEN);
        body.copy_from_slice(plain);
        tag.copy_from_slice(&aead::seal(&key.0, 0, &self.h, body));
        self.mix_hash(&out);
        out
    }

    /// `plain := AEAD-open(κ, 0, msg, H); H := HASH(H ‖ msg)`; `M` is the plaintext length.
    fn decrypt_and_hash<const N: usize, const M: usize>(
        &mut self,
        key: &Key,
        msg: &[u8; N],
    ) -> Result<[u8; M], HandshakeError> {
        let mut buf = *msg;
        let plain =
            aead::open(&key.0, 0, &self.h, &mut buf).map_err(|_| HandshakeError::DecryptFailed)?;
        let mut out = [0u8; M];
        if plain.len() != M {
            return Err(HandshakeError::DecryptFailed);
        }
        out.copy_from_slice(plain);
        self.mix_hash(msg);
        Ok(out)
    }

    /// `(T_first, T_second) := KDF2(C, ε)`: the transport keys, in the initiator's send order.
    fn split(&self) -> ([u8; 32], [u8; 32]) {
        kdf2(&self.ck, &[])
    }
}

/// A one-use AEAD key, zeroized on drop.
#[derive(ZeroizeOnDrop)]
struct Key([u8; 32]);

/// `HASH(HASH(HASH(CONSTRUCTION) ‖ IDENTIFIER) ‖ key)`: the initial hash of a handshake whose responder
/// holds `key`.
fn initial_hash(key: &PublicKey) -> [u8; 32] {
    let ck = hash(&[CONSTRUCTION]);
    hash(&[&hash(&[&ck, IDENTIFIER]), key.as_bytes()])
}

fn dh(
    private: &PrivateKey,
    public: &[u8; 32],
) -> Result<pnet_mesh_crypto::SharedSecret, HandshakeError> {
    private
        .diffie_hellman(&PublicKey::from_bytes(*public))
        .map_err(|_| HandshakeError::LowOrderKey)
}

/// The initiator's state between sending an initiation and receiving its response.
#[derive(ZeroizeOnDrop)]
pub(crate) struct InitiationState {
    #[zeroize(skip)]
    pub(crate) local_index: u32,
    ephemeral: PrivateKey,
    chain: Chain,
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
    chain: Chain,
}

/// Builds an initiation (mac1 and mac2 left zero; the cookie module fills them).
pub(crate) fn create_initiation(
    identity: &Identity,
    peer: &PeerKeys,
    local_index: u32,
    ephemeral: PrivateKey,
    timestamp: Tai64N,
) -> Result<(Initiation, InitiationState), HandshakeError> {
    // Ci := HASH(Construction); Hi := HASH(HASH(Ci ‖ Identifier) ‖ Spub_r)
    let mut chain = Chain::start(peer.initial_hash);
    // msg.ephemeral := Epub_i; Ci := KDF1(Ci, Epub_i); Hi := HASH(Hi ‖ msg.ephemeral)
    let e_pub = *ephemeral.public_key().as_bytes();
    chain.mix_key(&e_pub);
    chain.mix_hash(&e_pub);
    // (Ci, κ) := KDF2(Ci, DH(Epriv_i, Spub_r)); msg.static := AEAD(κ, 0, Spub_i, Hi); Hi := HASH(Hi ‖ msg.static)
    let key = chain.mix_key_get(dh(&ephemeral, peer.public.as_bytes())?.as_bytes());
    let encrypted_static = chain.encrypt_and_hash(&key, identity.public.as_bytes());
    // (Ci, κ) := KDF2(Ci, DH(Spriv_i, Spub_r)); msg.timestamp := AEAD(κ, 0, TAI64N(), Hi); Hi := HASH(Hi ‖ msg.timestamp)
    let key = chain.mix_key_get(&peer.static_static);
    let encrypted_timestamp = chain.encrypt_and_hash(&key, timestamp.as_bytes());
    let msg = Initiation {
        sender: local_index,
        ephemeral: e_pub,
        encrypted_static,
        encrypted_timestamp,
        mac1: [0; 16],
        mac2: [0; 16],
    };
    let state = InitiationState {
        local_index,
        ephemeral,
        chain,
    };
    Ok((msg, state))
}

/// Decrypts an initiation addressed to `identity`. `lookup` maps the decrypted static key to a configured
/// peer. Changes nothing: the caller checks the timestamp and flood limits and then commits.
pub(crate) fn consume_initiation<'p, P>(
    identity: &Identity,
    msg: &Initiation,
    lookup: impl FnOnce(&PublicKey) -> Option<(P, &'p PeerKeys)>,
) -> Result<(P, ConsumedInitiation), HandshakeError> {
    let mut chain = Chain::start(identity.initial_hash);
    // Cr := KDF1(Cr, msg.ephemeral); Hr := HASH(Hr ‖ msg.ephemeral)
    chain.mix_key(&msg.ephemeral);
    chain.mix_hash(&msg.ephemeral);
    // (Cr, κ) := KDF2(Cr, DH(Spriv_r, msg.ephemeral)); Spub_i := AEAD-open(κ, 0, msg.static, Hr)
    let key = chain.mix_key_get(dh(&identity.private, &msg.ephemeral)?.as_bytes());
    let remote_static =
        PublicKey::from_bytes(chain.decrypt_and_hash::<48, 32>(&key, &msg.encrypted_static)?);
    let (peer_id, peer) = lookup(&remote_static).ok_or(HandshakeError::UnknownPeer)?;
    // (Cr, κ) := KDF2(Cr, DH(Spriv_r, Spub_i)); timestamp := AEAD-open(κ, 0, msg.timestamp, Hr)
    let key = chain.mix_key_get(&peer.static_static);
    let timestamp =
        Tai64N::from_bytes(chain.decrypt_and_hash::<28, 12>(&key, &msg.encrypted_timestamp)?);
    let consumed = ConsumedInitiation {
        sender: msg.sender,
        timestamp,
        remote_ephemeral: msg.ephemeral,
        chain,
    };
    Ok((peer_id, consumed))
}

/// Builds the response to a consumed initiation and derives the responder's transport keys.
pub(crate) fn create_response(
    peer: &PeerKeys,
    consumed: &ConsumedInitiation,
    local_index: u32,
    ephemeral: PrivateKey,
) -> Result<(Response, SessionKeys), HandshakeError> {
    let mut chain = consumed.chain.clone();
    // msg.ephemeral := Epub_r; Cr := KDF1(Cr, Epub_r); Hr := HASH(Hr ‖ msg.ephemeral)
    let e_pub = *ephemeral.public_key().as_bytes();
    chain.mix_key(&e_pub);
    chain.mix_hash(&e_pub);
    // Cr := KDF1(Cr, DH(Epriv_r, Epub_i)); Cr := KDF1(Cr, DH(Epriv_r, Spub_i))
    chain.mix_key(dh(&ephemeral, &consumed.remote_ephemeral)?.as_bytes());
    chain.mix_key(dh(&ephemeral, peer.public.as_bytes())?.as_bytes());
    // (Cr, τ, κ) := KDF3(Cr, Q); Hr := HASH(Hr ‖ τ); msg.empty := AEAD(κ, 0, ε, Hr); Hr := HASH(Hr ‖ msg.empty)
    let key = chain.mix_psk(&peer.psk);
    let encrypted_nothing = chain.encrypt_and_hash(&key, &[]);
    // (Tr_recv, Tr_send) := KDF2(Cr, ε)
    let (recv, send) = chain.split();
    let msg = Response {
        sender: local_index,
        receiver: consumed.sender,
        ephemeral: e_pub,
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
    let mut chain = state.chain.clone();
    // Ci := KDF1(Ci, msg.ephemeral); Hi := HASH(Hi ‖ msg.ephemeral)
    chain.mix_key(&msg.ephemeral);
    chain.mix_hash(&msg.ephemeral);
    // Ci := KDF1(Ci, DH(Epriv_i, msg.ephemeral)); Ci := KDF1(Ci, DH(Spriv_i, msg.ephemeral))
    chain.mix_key(dh(&state.ephemeral, &msg.ephemeral)?.as_bytes());
    chain.mix_key(dh(&identity.private, &msg.ephemeral)?.as_bytes());
    // (Ci, τ, κ) := KDF3(Ci, Q); Hi := HASH(Hi ‖ τ); AEAD-open(κ, 0, msg.empty, Hi)
    let key = chain.mix_psk(&peer.psk);
    chain.decrypt_and_hash::<16, 0>(&key, &msg.encrypted_nothing)?;
    // (Ti_send, Ti_recv) := KDF2(Ci, ε)
    let (send, recv) = chain.split();
    Ok(SessionKeys { send, recv })
}
