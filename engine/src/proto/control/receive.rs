//! The handshake receive paths, one per message type: check, then commit.

use std::net::SocketAddr;
use std::time::Instant;

use super::*;

impl ControlPlane {
    /// Type 1, after its MACs passed: decrypt → static key, timestamp and flood checks → commit, and
    /// the keypair and response handed to the owning data path.
    pub(super) fn handle_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Option<usize>, DropReason> {
        let msg = Initiation::parse(buf).map_err(wire_drop)?;
        let (peer_id, consumed) = {
            let (peers, by_key) = (&self.peers, &self.by_key);
            handshake::consume_initiation(&self.identity, &msg, |key| {
                let id = *by_key.get(key)?;
                peers
                    .get(id.0 as usize)
                    .and_then(Option::as_ref)
                    .map(|p| (id, &p.keys))
            })
            .map_err(handshake_drop)?
        };
        let peer = self
            .peers
            .get(peer_id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(DropReason::UnknownPeer)?;
        if !consumed.timestamp.is_after(&peer.last_timestamp) {
            return Err(DropReason::StaleTimestamp);
        }
        if peer
            .last_initiation_consumed
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.times.initiation_rate)
        {
            return Err(DropReason::InitiationFlood);
        }
        let ephemeral = PrivateKey::generate(self.rng.as_mut());
        let shard = self.peer_shard(peer_id);
        let local_index =
            self.indices
                .allocate(self.rng.as_mut(), peer_id, shard, self.config.data_shards);
        let Some(peer) = self
            .peers
            .get_mut(peer_id.0 as usize)
            .and_then(Option::as_mut)
        else {
            self.indices.remove(local_index);
            return Err(DropReason::UnknownPeer);
        };
        let (response, keys) =
            match handshake::create_response(&peer.keys, &consumed, local_index, ephemeral) {
                Ok(r) => r,
                Err(e) => {
                    self.indices.remove(local_index);
                    return Err(handshake_drop(e));
                }
            };
        // Every check passed: commit. The response leaves through the owning data path, after it
        // has installed the keypair.
        let mut reply = [0u8; RESPONSE_LEN];
        response.emit(&mut reply).map_err(wire_drop)?;
        peer.cookies
            .add_macs(now, &mut reply, Response::MAC1_OFFSET);
        peer.last_timestamp = consumed.timestamp;
        peer.last_initiation_consumed = Some(now);
        let keypair = Keypair::new(
            &keys,
            local_index,
            msg.sender,
            now,
            Role::Responder,
            self.config.times.reject_after_time,
        );
        peer.counters.rx_bytes += INITIATION_LEN as u64;
        peer.counters.tx_bytes += RESPONSE_LEN as u64;
        peer.counters.answered += 1;
        peer.published.authenticated_received(now);
        peer.timers.session_derived(now);
        peer.published.authenticated_sent(now);
        // A handshake sets the endpoint even when it came through a relay: the response must take the
        // path the initiation took.
        let from = path::bind(from, peer_id);
        self.roam(peer_id, from, false);
        self.install(peer_id, keypair, from, AfterInstall::Respond(reply));
        Ok(None)
    }

    /// Type 2, after its MACs passed: our pending initiation → decrypt → commit the session.
    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Option<usize>, DropReason> {
        let msg = Response::parse(buf).map_err(wire_drop)?;
        let (peer_id, peer) = peer_by_index(&self.indices, &mut self.peers, msg.receiver)?;
        let state = peer
            .handshake
            .as_ref()
            .filter(|s| s.local_index == msg.receiver)
            .ok_or(DropReason::UnexpectedResponse)?;
        let keys = handshake::consume_response(&self.identity, &peer.keys, state, &msg)
            .map_err(handshake_drop)?;
        // Authenticated: commit.
        peer.handshake = None;
        let keypair = Keypair::new(
            &keys,
            msg.receiver,
            msg.sender,
            now,
            Role::Initiator,
            self.config.times.reject_after_time,
        );
        peer.counters.rx_bytes += RESPONSE_LEN as u64;
        peer.published.authenticated_received(now);
        peer.timers.session_derived(now);
        peer.timers.handshake_complete();
        peer.last_handshake = Some(now);
        let rotated = core::mem::replace(&mut peer.has_session, true);
        let was_up = core::mem::replace(&mut peer.is_up, true);
        let from = path::bind(from, peer_id);
        self.roam(peer_id, from, false);
        // The data path installs it, then confirms the session with staged packets or a keepalive.
        self.install(peer_id, keypair, from, AfterInstall::Confirm);
        self.push_event(Event::HandshakeCompleted {
            peer: peer_id,
            role: Role::Initiator,
        });
        if rotated {
            self.push_event(Event::KeypairRotated { peer: peer_id });
        }
        if !was_up {
            self.push_event(Event::PeerUp { peer: peer_id });
        }
        Ok(None)
    }

    /// Type 3: our index → decrypt with our last mac1 as AAD → store the cookie for the next scheduled
    /// initiation (never an immediate resend).
    pub(super) fn handle_cookie_reply(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, DropReason> {
        let msg = CookieReply::parse(buf).map_err(wire_drop)?;
        let (_, peer) = peer_by_index(&self.indices, &mut self.peers, msg.receiver)?;
        peer.cookies.consume_reply(now, &msg).map_err(|e| match e {
            CookieReplyError::Unexpected => DropReason::CookieReplyUnexpected,
            CookieReplyError::DecryptFailed => DropReason::CookieReplyDecryptFailed,
        })?;
        Ok(None)
    }

    /// mac1 always; under load mac2 (or a cookie reply written over `buf`) and the per-source limit.
    pub(super) fn check_macs(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        mac1_offset: usize,
    ) -> Result<Option<usize>, DropReason> {
        if !self.checker.check_mac1(buf, mac1_offset) {
            return Err(DropReason::Mac1Invalid);
        }
        if !self.under_load {
            return Ok(None);
        }
        let mac2_offset = mac1_offset + wire::MAC_LEN;
        if !self
            .checker
            .check_mac2(now, self.rng.as_mut(), from, buf, mac2_offset)
        {
            let sender = buf
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(DropReason::BadLength)?;
            let mac1: [u8; wire::MAC_LEN] = buf
                .get(mac1_offset..mac2_offset)
                .and_then(|b| b.try_into().ok())
                .ok_or(DropReason::BadLength)?;
            let out = buf.get_mut(..REPLY_LEN).ok_or(DropReason::BadLength)?;
            let len = self
                .checker
                .create_reply(now, self.rng.as_mut(), from, sender, &mac1, out)
                .ok_or(DropReason::BadLength)?;
            return Ok(Some(len));
        }
        if !self.limiter.allow(now, from.ip()) {
            return Err(DropReason::RateLimited);
        }
        Ok(None)
    }
}

/// The peer that was issued our receiver index `index`. A free function over the two fields, so the
/// caller keeps using the endpoint's other fields (identity, cookies) while it holds the peer.
fn peer_by_index<'p>(
    indices: &IndexTable,
    peers: &'p mut [Option<Peer>],
    index: u32,
) -> Result<(PeerId, &'p mut Peer), DropReason> {
    let peer_id = indices.get(index).ok_or(DropReason::UnknownReceiverIndex)?;
    let peer = peers
        .get_mut(peer_id.0 as usize)
        .and_then(Option::as_mut)
        .ok_or(DropReason::UnknownReceiverIndex)?;
    Ok((peer_id, peer))
}
