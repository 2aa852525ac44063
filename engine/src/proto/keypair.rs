//! Transport keypairs and their rotation: current, previous and next (wireguard-go `keypair.go`).
//!
//! The initiator uses a new keypair at once; the responder keeps it as `next` until the first transport
//! message under it arrives, which proves the initiator has it too (whitepaper §5.4.5).

use std::time::{Duration, Instant};

use pnet_mesh_crypto::aead::AeadKey;

use super::constants::REJECT_AFTER_MESSAGES;
use super::handshake::SessionKeys;
use super::replay::ReplayWindow;
use super::wire::{TAG_LEN, TRANSPORT_HEADER_LEN, TransportHeader};
use crate::event::Role;
use crate::proto::SendError;

/// One direction pair of transport keys with its counters.
pub(crate) struct Keypair {
    send: AeadKey,
    recv: AeadKey,
    send_counter: u64,
    pub(crate) replay: ReplayWindow,
    pub(crate) local_index: u32,
    pub(crate) remote_index: u32,
    pub(crate) created: Instant,
    pub(crate) role: Role,
    /// REJECT_AFTER_TIME as configured.
    reject_after: Duration,
}

impl core::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keypair")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("send_counter", &self.send_counter)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Keypair {
    pub(crate) fn new(
        keys: &SessionKeys,
        local_index: u32,
        remote_index: u32,
        created: Instant,
        role: Role,
        reject_after: Duration,
    ) -> Self {
        Keypair {
            send: AeadKey::new(&keys.send),
            recv: AeadKey::new(&keys.recv),
            send_counter: 0,
            replay: ReplayWindow::new(),
            local_index,
            remote_index,
            created,
            role,
            reject_after,
        }
    }

    /// Whether the keypair may still send: younger than REJECT_AFTER_TIME and below the message limit.
    pub(crate) fn can_send(&self, now: Instant) -> bool {
        self.send_counter < REJECT_AFTER_MESSAGES && !self.is_expired(now)
    }

    /// Older than REJECT_AFTER_TIME: never used again in either direction.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created) >= self.reject_after
    }

    pub(crate) fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// Seals the `len` plaintext bytes at `buf[16..16 + len]` into a transport message that starts at
    /// `buf[0]`: header, ciphertext padded to a multiple of 16 (never past `mtu`), tag. Returns the
    /// message length. The padding bytes are zeroed first.
    pub(crate) fn seal(
        &mut self,
        buf: &mut [u8],
        len: usize,
        mtu: usize,
    ) -> Result<usize, SendError> {
        if len > mtu {
            return Err(SendError::TooLarge { len, max: mtu });
        }
        let padded = len.next_multiple_of(16).min(mtu).max(len);
        let total = TRANSPORT_HEADER_LEN + padded + TAG_LEN;
        if buf.len() < total {
            return Err(SendError::BufferTooSmall { needed: total });
        }
        let counter = self.send_counter;
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(SendError::KeypairExhausted);
        }
        self.send_counter += 1;
        let (header, rest) = buf.split_at_mut(TRANSPORT_HEADER_LEN);
        let header_fields = TransportHeader {
            receiver: self.remote_index,
            counter,
        };
        header_fields
            .emit(header)
            .map_err(|_| SendError::BufferTooSmall { needed: total })?;
        let (body, tail) = rest.split_at_mut(padded);
        if let Some(pad) = body.get_mut(len..) {
            pad.fill(0);
        }
        let tag = self.send.seal_in_place(counter, &[], body);
        if let Some(dst) = tail.get_mut(..TAG_LEN) {
            dst.copy_from_slice(&tag);
        }
        Ok(total)
    }

    /// Opens `body` (ciphertext ‖ tag) in place under `counter`; zeroes `body` on failure.
    pub(crate) fn open<'a>(&self, counter: u64, body: &'a mut [u8]) -> Option<&'a mut [u8]> {
        self.recv.open_in_place(counter, &[], body).ok()
    }
}

/// Which slot a keypair sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Current,
    Previous,
    Next,
}

/// A peer's keypairs. Indices of keypairs that leave are returned so the caller frees them.
#[derive(Debug, Default)]
pub(crate) struct Keypairs {
    pub(crate) current: Option<Keypair>,
    pub(crate) previous: Option<Keypair>,
    pub(crate) next: Option<Keypair>,
}

/// Local indices freed by a rotation (at most two keypairs leave at once).
pub(crate) type Retired = [Option<u32>; 2];

impl Keypairs {
    pub(crate) fn slot_of(&self, local_index: u32) -> Option<Slot> {
        let is = |k: &Option<Keypair>| k.as_ref().is_some_and(|k| k.local_index == local_index);
        if is(&self.current) {
            Some(Slot::Current)
        } else if is(&self.next) {
            Some(Slot::Next)
        } else if is(&self.previous) {
            Some(Slot::Previous)
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, slot: Slot) -> Option<&mut Keypair> {
        match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Previous => self.previous.as_mut(),
            Slot::Next => self.next.as_mut(),
        }
    }

    /// The initiator's new keypair becomes current at once.
    pub(crate) fn install_initiator(&mut self, kp: Keypair) -> Retired {
        let mut retired: Retired = [None, None];
        if let Some(next) = self.next.take() {
            // A responder keypair that was never confirmed becomes previous (it may still receive).
            retired[0] = self.previous.replace(next).map(|k| k.local_index);
            retired[1] = self.current.take().map(|k| k.local_index);
        } else {
            let old_previous = core::mem::replace(&mut self.previous, self.current.take());
            retired[0] = old_previous.map(|k| k.local_index);
        }
        self.current = Some(kp);
        retired
    }

    /// The responder's new keypair waits as `next` until confirmed.
    pub(crate) fn install_responder(&mut self, kp: Keypair) -> Retired {
        let old_next = self.next.replace(kp).map(|k| k.local_index);
        let old_previous = self.previous.take().map(|k| k.local_index);
        [old_next, old_previous]
    }

    /// The first packet under `next` arrived: rotate it to current.
    pub(crate) fn confirm_next(&mut self) -> Retired {
        let Some(next) = self.next.take() else {
            return [None, None];
        };
        let old_previous = core::mem::replace(&mut self.previous, self.current.replace(next));
        [old_previous.map(|k| k.local_index), None]
    }

    /// Drops every keypair (zeroing keys); returns their indices.
    pub(crate) fn clear(&mut self) -> [Option<u32>; 3] {
        [
            self.current.take().map(|k| k.local_index),
            self.previous.take().map(|k| k.local_index),
            self.next.take().map(|k| k.local_index),
        ]
    }
}
