//! Message channels between two mesh nodes: ordered, reliable, flow-controlled, carrying messages
//! larger than one packet. This is the sans-I/O core; the node carries its packets as UDP datagrams
//! between mesh addresses on its channel port, so the outer wire stays WireGuard.
//!
//! - [`wire`]: the versioned 48-byte header, field by field.
//! - [`fragment`]: the sending half (fragmentation, retransmission on timeout and on selective
//!   acknowledgement, RTT estimate).
//! - [`reassembly`]: the receiving half (bounded out-of-order ring, reassembly within a per-peer
//!   memory [`Budget`], acknowledgements).
//! - [`flow`]: credit-based flow control and fragment-number arithmetic.
//!
//! [`PeerChannels`] holds every channel with one peer and their shared budget. Inputs are
//! [`PeerChannels::handle_packet`] and the application's calls; outputs are
//! [`PeerChannels::poll_transmit`], [`PeerChannels::poll_timeout`] and [`PeerChannels::poll_event`],
//! as for the protocol core. Every refused packet is counted by [`ChannelDrop`] and changes nothing.
//!
//! There is no congestion control beyond the window cap (the ECN and LEDBAT fields are modelled
//! only, see [`crate::fields`]).

pub mod flow;
pub mod fragment;
pub mod reassembly;
pub mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use thiserror::Error;

use crate::config::ConfigError;
use crate::fields::LedbatDelay;
use fragment::Sender;
pub use reassembly::Budget;
use reassembly::Receiver;
use wire::{HEADER_LEN, Header, HeaderError, Kind, PROBE};

/// A channel as the application names it: the peer's mesh address and the channel's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId {
    /// The mesh address of the node at the other end.
    pub peer: std::net::IpAddr,
    /// The channel's id (chosen at random by the side that opened it).
    pub id: u32,
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{:08x}", self.peer, self.id)
    }
}

/// Limits of the channels with one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The largest message, default 16 MiB.
    pub max_message: usize,
    /// Reassembly memory per peer (out-of-order rings, messages being built and unread), default 40 MiB.
    pub reassembly_limit: usize,
    /// Bytes of messages queued per channel before `send` blocks, default 16 MiB.
    pub send_buffer: usize,
    /// Fragments in flight and in the receive ring per channel, default 256.
    pub window: u32,
    /// Payload bytes per fragment; the node sets it from its MTU.
    pub max_fragment: usize,
    /// Channels per peer at most, default 16.
    pub max_channels: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            max_message: 16 << 20,
            reassembly_limit: 40 << 20,
            send_buffer: 16 << 20,
            window: 256,
            max_fragment: 1420 - 20 - 8 - HEADER_LEN,
            max_channels: 16,
        }
    }
}

impl ChannelConfig {
    /// The fragment size that fills an inner packet of `mtu` bytes with the IPv6 and UDP headers.
    pub fn fragment_for_mtu(mtu: u16) -> usize {
        usize::from(mtu).saturating_sub(40 + 8 + HEADER_LEN)
    }

    /// Checks the limits against each other.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field (`channels.window`, …) and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, value: usize, reason: String| {
            Err(ConfigError::invalid(
                format!("channels.{field}"),
                value,
                reason,
            ))
        };
        if !(flow::INITIAL_WINDOW..=4096).contains(&self.window) {
            return bad(
                "window",
                self.window as usize,
                format!("must be between {} and 4096", flow::INITIAL_WINDOW),
            );
        }
        if self.max_fragment == 0 {
            return bad(
                "max_fragment",
                0,
                "must be at least 1 (raise the MTU)".into(),
            );
        }
        if self.max_message > u32::MAX as usize {
            return bad(
                "max_message",
                self.max_message,
                "must fit in 32 bits".into(),
            );
        }
        if self.send_buffer < self.max_message {
            return bad(
                "send_buffer",
                self.send_buffer,
                format!("must hold the largest message ({})", self.max_message),
            );
        }
        let ring = self.window as usize * self.max_fragment;
        if self.reassembly_limit < ring + self.max_message {
            return bad(
                "reassembly_limit",
                self.reassembly_limit,
                format!(
                    "must hold one receive ring ({ring}) and the largest message ({})",
                    self.max_message
                ),
            );
        }
        if self.max_channels == 0 {
            return bad("max_channels", 0, "must be at least 1".into());
        }
        Ok(())
    }
}

/// What the application is told when a channel call cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The message exceeds the maximum message size.
    #[error("message of {len} bytes exceeds the channel maximum of {max}")]
    MessageTooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The send buffer is full; retry when the peer has acknowledged more.
    #[error("would block: the channel's send buffer is full")]
    WouldBlock,
    /// The channel was closed (by us, or the peer finished and everything was read).
    #[error("the channel is closed")]
    Closed,
    /// The channel was reset.
    #[error("the channel was reset")]
    Reset,
    /// No channel with that id (never opened, or gone).
    #[error("no channel {0:#010x}")]
    UnknownChannel(u32),
    /// The peer already has the maximum number of channels.
    #[error("the peer already has {max} channels")]
    TooManyChannels {
        /// The maximum.
        max: usize,
    },
    /// The peer's reassembly memory cannot hold another channel's receive ring.
    #[error("the peer's reassembly memory is exhausted")]
    NoMemory,
}

/// A message framing error inside a valid session: the channel is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// `FIRST` while a message was being built.
    FirstInsideMessage,
    /// `FIN` while a message was being built.
    FinInsideMessage,
    /// A middle fragment with no message started.
    FragmentOutsideMessage,
    /// The fragments do not add up to the declared length.
    LengthMismatch,
    /// The declared length exceeds the maximum message.
    MessageTooLarge,
}

drop_counters! {
    /// Why a channel packet was dropped; each is counted, none changes any state.
    enum ChannelDrop;
    /// Drop counters, one per [`ChannelDrop`].
    struct ChannelDrops;
    /// Shorter than the header.
    Truncated,
    /// A header version other than 1.
    UnsupportedVersion,
    /// A header field out of range or inconsistent.
    Malformed,
    /// For no channel of ours, and not an `OPEN`.
    UnknownChannel,
    /// A fragment already received.
    Duplicate,
    /// A fragment past the credit we offered.
    OutOfWindow,
    /// A payload longer than a fragment.
    Oversized,
    /// An acknowledgement of fragments we never sent.
    ForgedAck,
    /// Message framing broken; the channel was reset.
    Violation,
    /// An `OPEN` beyond the peer's channel limit.
    TooManyChannels,
    /// An `OPEN` the reassembly budget cannot pay for.
    NoMemory,
}

impl From<HeaderError> for ChannelDrop {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::Truncated => ChannelDrop::Truncated,
            HeaderError::UnsupportedVersion => ChannelDrop::UnsupportedVersion,
            HeaderError::Malformed => ChannelDrop::Malformed,
        }
    }
}

/// Something that happened to a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEvent {
    /// The peer opened a channel.
    Opened(u32),
    /// A message can be read.
    Readable(u32),
    /// The peer finished sending and everything it sent has been read.
    Closed(u32),
    /// The channel was reset (by the peer, or by us after a framing violation).
    Reset(u32),
}

#[derive(Debug)]
struct Channel {
    sender: Sender,
    receiver: Receiver,
    reset: bool,
    reset_pending: bool,
    /// The application has been told of the reset (it is forgotten after that).
    reset_seen: bool,
    probe_pending: bool,
    closed_reported: bool,
    ledbat: LedbatDelay,
    /// The timestamp of the latest DATA received, echoed in every header we send.
    echo: u32,
}

/// Events held per peer at most; older ones are dropped first (the state itself is never lost).
const MAX_EVENTS: usize = 256;

/// Every channel with one peer.
#[derive(Debug)]
pub struct PeerChannels {
    config: ChannelConfig,
    budget: Budget,
    channels: BTreeMap<u32, Channel>,
    events: VecDeque<ChannelEvent>,
    events_dropped: u64,
    drops: ChannelDrops,
    epoch: Instant,
    /// Round-robin position for [`poll_transmit`](Self::poll_transmit).
    cursor: u32,
}

impl PeerChannels {
    /// No channels yet; `config` must have passed [`ChannelConfig::validate`].
    pub fn new(config: ChannelConfig, now: Instant) -> PeerChannels {
        PeerChannels {
            budget: Budget::new(config.reassembly_limit),
            config,
            channels: BTreeMap::new(),
            events: VecDeque::new(),
            events_dropped: 0,
            drops: ChannelDrops::default(),
            epoch: now,
            cursor: 0,
        }
    }

    fn make_channel(&mut self, open: bool) -> Result<Channel, ChannelError> {
        if self.channels.len() >= self.config.max_channels {
            return Err(ChannelError::TooManyChannels {
                max: self.config.max_channels,
            });
        }
        let c = &self.config;
        let receiver = Receiver::new(c.window, c.max_fragment, c.max_message, &mut self.budget)
            .ok_or(ChannelError::NoMemory)?;
        Ok(Channel {
            sender: Sender::new(c.max_fragment, c.max_message, c.send_buffer, c.window, open),
            receiver,
            reset: false,
            reset_pending: false,
            reset_seen: false,
            probe_pending: false,
            closed_reported: false,
            ledbat: LedbatDelay::default(),
            echo: 0,
        })
    }

    /// Opens channel `id` (pick it at random, so that a stale packet of an old channel cannot hit
    /// a new one).
    ///
    /// # Errors
    /// [`ChannelError::TooManyChannels`], [`ChannelError::NoMemory`], or
    /// [`ChannelError::UnknownChannel`] if `id` is already in use.
    pub fn open(&mut self, id: u32) -> Result<(), ChannelError> {
        if self.channels.contains_key(&id) {
            return Err(ChannelError::UnknownChannel(id));
        }
        let channel = self.make_channel(true)?;
        self.channels.insert(id, channel);
        Ok(())
    }

    fn channel(&mut self, id: u32) -> Result<&mut Channel, ChannelError> {
        let channel = self
            .channels
            .get_mut(&id)
            .ok_or(ChannelError::UnknownChannel(id))?;
        if channel.reset {
            channel.reset_seen = true;
            return Err(ChannelError::Reset);
        }
        Ok(channel)
    }

    /// Queues a message on channel `id`.
    ///
    /// # Errors
    /// As [`fragment::Sender::push`], or the channel's state.
    pub fn send(&mut self, id: u32, message: Vec<u8>) -> Result<(), ChannelError> {
        self.channel(id)?.sender.push(message)
    }

    /// Whether channel `id` would take a message of `len` bytes now, and if not, why.
    ///
    /// # Errors
    /// As [`send`](Self::send) would fail.
    pub fn check_send(&self, id: u32, len: usize) -> Result<(), ChannelError> {
        let channel = self
            .channels
            .get(&id)
            .ok_or(ChannelError::UnknownChannel(id))?;
        if channel.reset {
            return Err(ChannelError::Reset);
        }
        channel.sender.check(len)
    }

    /// Whether channel `id` would take a message of `len` bytes now.
    pub fn can_send(&self, id: u32, len: usize) -> bool {
        self.channels
            .get(&id)
            .is_some_and(|c| !c.reset && c.sender.has_room(len))
    }

    /// The next message of channel `id`, if one is complete.
    ///
    /// # Errors
    /// [`ChannelError::Closed`] once the peer finished and everything was read,
    /// [`ChannelError::Reset`], [`ChannelError::UnknownChannel`].
    pub fn recv(&mut self, id: u32) -> Result<Option<Vec<u8>>, ChannelError> {
        let channel = self
            .channels
            .get_mut(&id)
            .ok_or(ChannelError::UnknownChannel(id))?;
        if channel.reset {
            channel.reset_seen = true;
            return Err(ChannelError::Reset);
        }
        match channel.receiver.read(&mut self.budget) {
            Ok(Some(message)) => Ok(Some(message)),
            Ok(None) if channel.receiver.finished() => Err(ChannelError::Closed),
            Ok(None) => Ok(None),
            Err(_) => {
                channel.abort(&mut self.budget);
                channel.reset_pending = true;
                channel.reset_seen = true;
                self.drops.count(ChannelDrop::Violation);
                Err(ChannelError::Reset)
            }
        }
    }

    /// Sends `FIN` on channel `id` after what is queued; the peer sees [`ChannelEvent::Closed`]
    /// once it has read everything.
    ///
    /// # Errors
    /// [`ChannelError::UnknownChannel`] or [`ChannelError::Reset`].
    pub fn close(&mut self, id: u32) -> Result<(), ChannelError> {
        self.channel(id)?.sender.finish();
        Ok(())
    }

    /// Aborts channel `id`: a `RESET` goes to the peer and unread data is discarded.
    pub fn reset(&mut self, id: u32) {
        if let Some(c) = self.channels.get_mut(&id) {
            c.abort(&mut self.budget);
            c.reset_pending = true;
            c.reset_seen = true;
        }
    }

    /// Takes one channel packet from the peer.
    ///
    /// # Errors
    /// The [`ChannelDrop`] it was counted under; nothing changed.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) -> Result<(), ChannelDrop> {
        let result = self.handle_inner(now, packet);
        if let Err(reason) = result {
            self.drops.count(reason);
        }
        result
    }

    fn handle_inner(&mut self, now: Instant, packet: &[u8]) -> Result<(), ChannelDrop> {
        let (header, payload) = Header::decode(packet)?;
        let id = header.channel;
        if !self.channels.contains_key(&id) {
            if header.kind != Kind::Data || header.flags & wire::OPEN == 0 {
                return Err(ChannelDrop::UnknownChannel);
            }
            let channel = self.make_channel(false).map_err(|e| match e {
                ChannelError::NoMemory => ChannelDrop::NoMemory,
                _ => ChannelDrop::TooManyChannels,
            })?;
            self.channels.insert(id, channel);
        }
        let local_us = micros(self.epoch, now);
        let Some(channel) = self.channels.get_mut(&id) else {
            return Err(ChannelDrop::UnknownChannel);
        };
        if channel.reset {
            return Err(ChannelDrop::UnknownChannel);
        }
        if header.kind == Kind::Reset {
            channel.abort(&mut self.budget);
            push_event(
                &mut self.events,
                &mut self.events_dropped,
                ChannelEvent::Reset(id),
            );
            return Ok(());
        }
        channel.sender.check_ack(header.ack)?;
        let data_check = match header.kind {
            Kind::Data => Some(channel.receiver.check(&header, payload)),
            _ => None,
        };
        channel
            .sender
            .on_ack(now, header.ack, header.sack, header.window);
        channel.ledbat.record(header.timestamp, local_us);
        if header.echo != 0 {
            let rtt = local_us.wrapping_sub(header.echo);
            // A sample from a clock that wrapped or an echo of nothing we sent is discarded.
            if rtt < 60_000_000 {
                channel
                    .sender
                    .on_rtt_sample(std::time::Duration::from_micros(u64::from(rtt)));
            }
        }
        if header.kind == Kind::Data {
            channel.echo = header.timestamp;
        }
        if header.flags & PROBE != 0 && header.kind == Kind::Ack {
            channel.receiver.ack_now();
        }
        match data_check {
            None => Ok(()),
            Some(Err(reason)) => {
                if matches!(reason, ChannelDrop::Duplicate | ChannelDrop::OutOfWindow) {
                    // The sender may have missed our acknowledgement: repeat it.
                    channel.receiver.ack_now();
                }
                Err(reason)
            }
            Some(Ok(())) => match channel
                .receiver
                .accept(now, &header, payload, &mut self.budget)
            {
                Ok(progress) => {
                    if progress.opened {
                        push_event(
                            &mut self.events,
                            &mut self.events_dropped,
                            ChannelEvent::Opened(id),
                        );
                    }
                    if progress.completed > 0 {
                        push_event(
                            &mut self.events,
                            &mut self.events_dropped,
                            ChannelEvent::Readable(id),
                        );
                    }
                    Ok(())
                }
                Err(_) => {
                    channel.abort(&mut self.budget);
                    channel.reset_pending = true;
                    push_event(
                        &mut self.events,
                        &mut self.events_dropped,
                        ChannelEvent::Reset(id),
                    );
                    Err(ChannelDrop::Violation)
                }
            },
        }
    }

    /// Writes the next packet for the peer into `out` (at least [`HEADER_LEN`] + `max_fragment`
    /// bytes) and returns its length: a reset, a fragment (with acknowledgement fields), or a bare
    /// acknowledgement. Channels take turns.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if out.len() < HEADER_LEN + self.config.max_fragment {
            return None;
        }
        let timestamp = micros(self.epoch, now);
        let ids: Vec<u32> = self
            .channels
            .range(self.cursor..)
            .chain(self.channels.range(..self.cursor))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(channel) = self.channels.get_mut(&id) else {
                continue;
            };
            let written = channel.transmit(id, now, timestamp, out);
            if written.is_some() {
                self.cursor = id.wrapping_add(1);
                return written;
            }
        }
        self.collect(now);
        None
    }

    /// Removes channels that are done: reset and told, or finished both ways with everything read.
    fn collect(&mut self, _now: Instant) {
        let mut gone = Vec::new();
        for (id, c) in &mut self.channels {
            let finished = c.receiver.finished() && c.receiver.ready() == 0;
            if finished && !c.closed_reported {
                c.closed_reported = true;
                push_event(
                    &mut self.events,
                    &mut self.events_dropped,
                    ChannelEvent::Closed(*id),
                );
            }
            if (c.reset && !c.reset_pending && c.reset_seen) || (finished && c.sender.fin_acked()) {
                gone.push(*id);
            }
        }
        for id in gone {
            if let Some(mut c) = self.channels.remove(&id) {
                c.receiver.release_all(&mut self.budget);
            }
        }
    }

    /// The earliest timer of any channel.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.channels
            .values()
            .filter(|c| !c.reset)
            .filter_map(
                |c| match (c.sender.poll_timeout(), c.receiver.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            )
            .min()
    }

    /// Runs every channel's timers at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for c in self.channels.values_mut().filter(|c| !c.reset) {
            if c.sender.on_timeout(now) {
                c.probe_pending = true;
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ChannelEvent> {
        self.events.pop_front()
    }

    /// Drops by reason.
    pub fn drops(&self) -> &ChannelDrops {
        &self.drops
    }

    /// The peer's reassembly budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Open channel ids.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.channels.keys().copied()
    }

    /// The sending half's counters of channel `id`.
    pub fn sender_stats(&self, id: u32) -> Option<fragment::SenderStats> {
        self.channels.get(&id).map(|c| c.sender.stats())
    }

    /// A one-line summary of channel `id`'s state, for diagnostics.
    pub fn describe(&self, id: u32) -> Option<String> {
        let c = self.channels.get(&id)?;
        let (ack, sack, window) = c.receiver.ack_fields();
        Some(format!(
            "sender {} | receiver ack {ack} sack {sack:#x} window {window} ready {} | budget {}/{}",
            c.sender.describe(),
            c.receiver.ready(),
            self.budget.used(),
            self.budget.limit()
        ))
    }

    /// The furthest right edge channel `id`'s sender has been granted.
    pub fn credit_edge(&self, id: u32) -> Option<u32> {
        self.channels
            .get(&id)
            .map(|c| c.sender.credit().right_edge())
    }
}

impl Channel {
    /// Ends the channel at once: unread data is discarded and its memory given back.
    fn abort(&mut self, budget: &mut Budget) {
        self.reset = true;
        self.receiver.release_all(budget);
    }

    fn transmit(&mut self, id: u32, now: Instant, timestamp: u32, out: &mut [u8]) -> Option<usize> {
        if self.reset_pending {
            self.reset_pending = false;
            Header::new(Kind::Reset, id).encode(out)?;
            return Some(HEADER_LEN);
        }
        if self.reset {
            return None;
        }
        let (ack, sack, window) = self.receiver.ack_fields();
        let mut header = Header {
            ack,
            sack,
            window,
            timestamp,
            delay: self.ledbat_delay(),
            echo: self.echo,
            ..Header::new(Kind::Ack, id)
        };
        let len = if let Some(fragment) = self.sender.next_fragment(now) {
            let payload = self.sender.payload(&fragment);
            header.kind = Kind::Data;
            header.seq = fragment.seq;
            header.flags = fragment.flags;
            header.message_len = fragment.message_len;
            let end = HEADER_LEN + payload.len();
            out.get_mut(HEADER_LEN..end)?.copy_from_slice(payload);
            end
        } else if self.receiver.ack_owed(now) || self.probe_pending {
            if self.probe_pending {
                header.flags = PROBE;
                self.probe_pending = false;
            }
            HEADER_LEN
        } else {
            return None;
        };
        header.encode(out)?;
        self.receiver.acked();
        Some(len)
    }

    fn ledbat_delay(&self) -> u32 {
        self.ledbat.queueing_delay()
    }
}

fn push_event(events: &mut VecDeque<ChannelEvent>, dropped: &mut u64, event: ChannelEvent) {
    if events.len() >= MAX_EVENTS {
        events.pop_front();
        *dropped += 1;
    }
    events.push_back(event);
}

/// Microseconds since `epoch`, wrapping at 32 bits (the LEDBAT timestamp field), never 0 (which
/// the echo field reserves for "none").
fn micros(epoch: Instant, now: Instant) -> u32 {
    (now.saturating_duration_since(epoch).as_micros() as u32).max(1)
}

#[cfg(test)]
mod tests;
