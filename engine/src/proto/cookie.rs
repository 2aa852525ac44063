//! MAC1, MAC2 and cookie replies (whitepaper §5.3 and §5.4.7).
//!
//! As wireguard-go splits it: [`CookieChecker`] is our side as the receiver of handshake messages (checks
//! mac1 and, under load, mac2; writes cookie replies), and [`CookieGenerator`] is our side towards one
//! peer (fills mac1/mac2 of what we send it; stores the cookie it gives us).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pnet_mesh_crypto::blake2s::mac;
use pnet_mesh_crypto::rng::Rng;
use pnet_mesh_crypto::{constant_time_eq, xaead};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::constants::ProtocolTimes;
use super::wire::{COOKIE_REPLY_LEN, CookieReply, MAC_LEN};

/// Checks the MACs of handshake messages sent to us and answers with cookies under load.
#[derive(ZeroizeOnDrop)]
pub(crate) struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    /// `Rm`, the random secret cookies are derived from; rotated every two minutes.
    secret: [u8; 32],
    #[zeroize(skip)]
    secret_born: Option<Instant>,
    #[zeroize(skip)]
    refresh: Duration,
}

impl CookieChecker {
    pub(crate) fn new(mac1_key: [u8; 32], cookie_key: [u8; 32], times: &ProtocolTimes) -> Self {
        CookieChecker {
            mac1_key,
            cookie_key,
            secret: [0; 32],
            secret_born: None,
            refresh: times.cookie_refresh_time,
        }
    }

    /// Whether `msg[mac1_offset..+16]` is `MAC(HASH("mac1----" ‖ our key), msg[..mac1_offset])`.
    pub(crate) fn check_mac1(&self, msg: &[u8], mac1_offset: usize) -> bool {
        let (Some(covered), Some(received)) = (
            msg.get(..mac1_offset),
            msg.get(mac1_offset..mac1_offset + MAC_LEN),
        ) else {
            return false;
        };
        constant_time_eq(&mac(&self.mac1_key, &[covered]), received)
    }

    /// Whether mac2 is `MAC(cookie(source), msg[..mac2_offset])`. Rotates the secret first if it is due,
    /// which draws from `rng`; the packet itself changes nothing.
    pub(crate) fn check_mac2(
        &mut self,
        now: Instant,
        rng: &mut dyn Rng,
        from: SocketAddr,
        msg: &[u8],
        mac2_offset: usize,
    ) -> bool {
        let (Some(covered), Some(received)) = (
            msg.get(..mac2_offset),
            msg.get(mac2_offset..mac2_offset + MAC_LEN),
        ) else {
            return false;
        };
        let mut cookie = self.cookie_for(now, rng, from);
        let expected = mac(&cookie, &[covered]);
        cookie.zeroize();
        constant_time_eq(&expected, received)
    }

    /// Writes a 64-byte cookie reply to the handshake message `msg` (from `from`) into `out`.
    /// The caller has checked `msg` is long enough and mac1 is valid.
    pub(crate) fn create_reply(
        &mut self,
        now: Instant,
        rng: &mut dyn Rng,
        from: SocketAddr,
        sender_index: u32,
        mac1: &[u8; MAC_LEN],
        out: &mut [u8],
    ) -> Option<usize> {
        let mut cookie = self.cookie_for(now, rng, from);
        let mut nonce = [0u8; xaead::NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut encrypted_cookie = [0u8; 32];
        encrypted_cookie[..16].copy_from_slice(&cookie);
        cookie.zeroize();
        let tag = xaead::seal(&self.cookie_key, &nonce, mac1, &mut encrypted_cookie[..16]);
        encrypted_cookie[16..].copy_from_slice(&tag);
        let reply = CookieReply {
            receiver: sender_index,
            nonce,
            encrypted_cookie,
        };
        reply.emit(out).ok()
    }

    /// `Tau := MAC(Rm, source IP ‖ source port)`, with `Rm` renewed when it is two minutes old.
    fn cookie_for(&mut self, now: Instant, rng: &mut dyn Rng, from: SocketAddr) -> [u8; MAC_LEN] {
        let stale = self
            .secret_born
            .is_none_or(|born| now.saturating_duration_since(born) >= self.refresh);
        if stale {
            rng.fill_bytes(&mut self.secret);
            self.secret_born = Some(now);
        }
        let port = from.port().to_be_bytes();
        match from.ip() {
            IpAddr::V4(ip) => mac(&self.secret, &[&ip.octets(), &port]),
            IpAddr::V6(ip) => mac(&self.secret, &[&ip.octets(), &port]),
        }
    }
}

/// Our MAC state towards one peer: the mac1 we last sent (the AAD a cookie reply must carry) and the
/// cookie the peer gave us.
#[derive(ZeroizeOnDrop)]
pub(crate) struct CookieGenerator {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    cookie: [u8; MAC_LEN],
    #[zeroize(skip)]
    cookie_born: Option<Instant>,
    last_mac1: [u8; MAC_LEN],
    /// Whether a mac1 is outstanding: a cookie reply is accepted only for one we sent, and only once
    /// (kernel `have_sent_mac1`).
    #[zeroize(skip)]
    have_sent_mac1: bool,
    /// How long a received cookie is used: COOKIE_REFRESH_TIME − REKEY_TIMEOUT, as the kernel.
    #[zeroize(skip)]
    cookie_lifetime: Duration,
}

/// Why a cookie reply was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieReplyError {
    /// No mac1 of ours is waiting for a cookie (none sent, or this is a second copy).
    Unexpected,
    /// The reply did not decrypt with our last mac1 as AAD.
    DecryptFailed,
}

impl CookieGenerator {
    pub(crate) fn new(mac1_key: [u8; 32], cookie_key: [u8; 32], times: &ProtocolTimes) -> Self {
        CookieGenerator {
            mac1_key,
            cookie_key,
            cookie: [0; MAC_LEN],
            cookie_born: None,
            last_mac1: [0; MAC_LEN],
            have_sent_mac1: false,
            cookie_lifetime: times
                .cookie_refresh_time
                .saturating_sub(times.rekey_timeout),
        }
    }

    /// Fills mac1 and (with a fresh cookie) mac2 of the handshake message in `msg`.
    pub(crate) fn add_macs(&mut self, now: Instant, msg: &mut [u8], mac1_offset: usize) {
        let mac2_offset = mac1_offset + MAC_LEN;
        let Some(covered) = msg.get(..mac1_offset) else {
            return;
        };
        let mac1 = mac(&self.mac1_key, &[covered]);
        if let Some(dst) = msg.get_mut(mac1_offset..mac2_offset) {
            dst.copy_from_slice(&mac1);
        }
        self.last_mac1 = mac1;
        self.have_sent_mac1 = true;
        // The kernel stops using a cookie a little before the responder's secret rotates.
        let fresh = self
            .cookie_born
            .is_some_and(|born| now.saturating_duration_since(born) < self.cookie_lifetime);
        let mac2 = match (fresh, msg.get(..mac2_offset)) {
            (true, Some(covered)) => mac(&self.cookie, &[covered]),
            _ => [0; MAC_LEN],
        };
        if let Some(dst) = msg.get_mut(mac2_offset..mac2_offset + MAC_LEN) {
            dst.copy_from_slice(&mac2);
        }
    }

    /// Decrypts a cookie reply and stores the cookie for the next scheduled handshake message; it never
    /// causes an immediate retransmission. Nothing changes on failure.
    pub(crate) fn consume_reply(
        &mut self,
        now: Instant,
        reply: &CookieReply,
    ) -> Result<(), CookieReplyError> {
        if !self.have_sent_mac1 {
            return Err(CookieReplyError::Unexpected);
        }
        let mut cookie = [0u8; MAC_LEN];
        cookie.copy_from_slice(&reply.encrypted_cookie[..MAC_LEN]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&reply.encrypted_cookie[MAC_LEN..]);
        xaead::open(
            &self.cookie_key,
            &reply.nonce,
            &self.last_mac1,
            &mut cookie,
            &tag,
        )
        .map_err(|_| CookieReplyError::DecryptFailed)?;
        self.cookie = cookie;
        cookie.zeroize();
        self.cookie_born = Some(now);
        self.have_sent_mac1 = false;
        Ok(())
    }
}

/// Length of the reply [`CookieChecker::create_reply`] writes.
pub(crate) const REPLY_LEN: usize = COOKIE_REPLY_LEN;
