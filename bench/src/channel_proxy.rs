//! The `channel-proxy` macro scenario: channel goodput between two running nodes on loopback, one leg
//! per impairment, all in the same run so their ratios mean something:
//!
//! - **direct**: A's channel straight to B, no proxy (the reference);
//! - **proxy, 0 % loss**: through the seeded impairment proxy with nothing impaired (what the relay
//!   hop itself costs);
//! - **proxy, 5 % loss**: the same proxy losing 5 % of datagrams each way, uniformly.
//!
//! Each leg opens one channel and keeps it full of `--payload`-byte messages (blocking sends, so the
//! sender runs at the pace the credit window and the send buffer allow) while the receiver reads; the
//! bytes delivered in the measured window over its length are the goodput.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::SeededRng;
use pnet_mesh::mesh::channel::{ChannelConfig, ChannelId};
use pnet_mesh::testing::impair::{Impairment, ImpairmentProxy, ProxyConfig};
use pnet_mesh::{Backend, Event, Node, NodeError, PeerConfig};
use serde::Serialize;

use crate::environment::Environment;
use crate::in_memory::MTU;

/// The largest `--payload` (message size) the scenario accepts: the default channel maximum.
pub const MAX_MESSAGE: usize = 16 << 20;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelProxyOptions {
    /// Bytes per message, 1 to [`MAX_MESSAGE`].
    pub message: usize,
    /// Untimed first, in each leg.
    pub warmup: Duration,
    /// Measured, in each leg.
    pub duration: Duration,
    /// Data shards per node.
    pub shards: usize,
    /// The nodes' backend.
    pub backend: Backend,
}

/// One leg's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelLeg {
    /// What the leg moves through.
    pub what: String,
    /// Loss the proxy applied each way (`None`: no proxy).
    pub loss: Option<f64>,
    /// Message bytes delivered per second in the measured window.
    pub goodput_bytes_per_sec: f64,
    /// Whole messages delivered in it.
    pub messages: u64,
    /// Fragments A sent, first copies and retransmissions (whole leg).
    pub fragments_sent: u64,
    /// Of those, retransmissions.
    pub retransmitted: u64,
    /// Retransmissions on three duplicate acknowledgements.
    pub fast_retransmits: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Datagrams the proxy dropped, both ways (whole leg).
    pub proxy_lost: u64,
    /// Channel packets the nodes dropped, by reason (whole leg, both nodes).
    pub channel_drops: Vec<(String, u64)>,
}

/// The JSON object the scenario prints.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelProxyReport {
    /// `"channel-proxy"`.
    pub scenario: &'static str,
    /// Bytes per message.
    pub payload_size: usize,
    /// The backend the nodes ran.
    pub backend: String,
    /// Data shards per node.
    pub shards: usize,
    /// Warm-up of each leg, seconds.
    pub warmup_secs: f64,
    /// Measured window of each leg, seconds.
    pub measured_secs: f64,
    /// Channel fragment payload bytes (from the node MTU).
    pub fragment_bytes: usize,
    /// Direct, then the proxy at 0 % and at 5 % loss.
    pub legs: Vec<ChannelLeg>,
    /// Proxy at 0 % over direct.
    pub ratio_proxy_vs_direct: f64,
    /// Proxy at 5 % loss over proxy at 0 %.
    pub ratio_5pct_loss_vs_0pct: f64,
    /// Machine and build.
    #[serde(flatten)]
    pub environment: Environment,
}

const A: &str = "10.91.0.1";
const B: &str = "10.91.0.2";

/// Runs the scenario; `progress` gets one line per leg.
///
/// # Errors
/// A message size out of range, or a node, proxy or channel that would not start.
pub fn run(
    opts: &ChannelProxyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ChannelProxyReport, String> {
    if !(1..=MAX_MESSAGE).contains(&opts.message) {
        return Err(format!(
            "--payload {}: a channel message must be 1 to {MAX_MESSAGE} bytes",
            opts.message
        ));
    }
    let environment = Environment::detect();
    let mut legs = Vec::new();
    for loss in [None, Some(0.0), Some(0.05)] {
        let what = match loss {
            None => "direct, no proxy".to_owned(),
            Some(l) => format!("impairment proxy, {:.0} % loss each way", l * 100.0),
        };
        progress(&format!("channel-proxy: {what}"));
        let leg = leg(opts, what, loss)?;
        progress(&format!(
            "channel-proxy: {:.1} MiB/s, {} retransmitted of {} fragments",
            leg.goodput_bytes_per_sec / f64::from(1 << 20),
            leg.retransmitted,
            leg.fragments_sent
        ));
        legs.push(leg);
    }
    let ratio = |a: &ChannelLeg, b: &ChannelLeg| {
        if b.goodput_bytes_per_sec > 0.0 {
            a.goodput_bytes_per_sec / b.goodput_bytes_per_sec
        } else {
            0.0
        }
    };
    Ok(ChannelProxyReport {
        scenario: "channel-proxy",
        payload_size: opts.message,
        backend: format!("{:?}", opts.backend),
        shards: opts.shards,
        warmup_secs: opts.warmup.as_secs_f64(),
        measured_secs: opts.duration.as_secs_f64(),
        fragment_bytes: ChannelConfig::fragment_for_mtu(MTU as u16),
        ratio_proxy_vs_direct: ratio(&legs[1], &legs[0]),
        ratio_5pct_loss_vs_0pct: ratio(&legs[2], &legs[1]),
        legs,
        environment,
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

/// Two nodes, A reaching B through a proxy losing `loss` each way (or directly when `None`).
fn start_pair(
    opts: &ChannelProxyOptions,
    loss: Option<f64>,
) -> Result<(Node, Node, Option<ImpairmentProxy>), String> {
    let key_a = PrivateKey::generate(&mut SeededRng::new(81));
    let key_b = PrivateKey::generate(&mut SeededRng::new(82));
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
    let node = |key: PrivateKey, me: &str| {
        Node::builder(key)
            .listen(loopback)
            .mesh_address(ip(me))
            .mtu(MTU as u16)
            .backend(opts.backend)
            .data_shards(opts.shards)
    };
    let b = node(key_b.clone(), B)
        .peer(PeerConfig::new(key_a.public_key()).allowed_ip(host(A)))
        .start()
        .map_err(|e| format!("node B: {e}"))?;
    let proxy = match loss {
        None => None,
        Some(loss) => {
            let impairment = Impairment {
                loss,
                ..Impairment::default()
            };
            let mut config = ProxyConfig::symmetric(2026, impairment);
            config.lifetime = opts.warmup + opts.duration + Duration::from_secs(60);
            Some(
                ImpairmentProxy::start(loopback, b.local_addrs()[0], config)
                    .map_err(|e| format!("impairment proxy: {e}"))?,
            )
        }
    };
    let endpoint = proxy
        .as_ref()
        .map_or(b.local_addrs()[0], ImpairmentProxy::front_addr);
    let a = node(key_a, A)
        .peer(
            PeerConfig::new(key_b.public_key())
                .endpoint(endpoint)
                .allowed_ip(host(B)),
        )
        .start()
        .map_err(|e| format!("node A: {e}"))?;
    Ok((a, b, proxy))
}

fn host(addr: &str) -> pnet_mesh::AllowedIp {
    format!("{addr}/32").parse().expect("a literal prefix")
}

fn leg(opts: &ChannelProxyOptions, what: String, loss: Option<f64>) -> Result<ChannelLeg, String> {
    let (a, b, proxy) = start_pair(opts, loss)?;
    let channel = a
        .open_channel(ip(B))
        .map_err(|e| format!("open a channel: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let message = vec![0x5a; opts.message];
    let result = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = a.channel_send(channel, &message) {
                    return Err(format!("channel send: {e}"));
                }
            }
            Ok(())
        });
        let received = receive(&b, opts);
        let stats = a.channel_sender_stats(channel).unwrap_or_default();
        stop.store(true, Ordering::Relaxed);
        // The sender may be blocked on a full window: resetting the channel frees it.
        let _ = a.reset_channel(channel);
        let sent = sender
            .join()
            .map_err(|_| "the sender panicked".to_owned())?;
        // A reset ends the blocked send with an error; only a failure before the end counts.
        let received = received?;
        if received.1 == 0 {
            sent?;
        }
        Ok::<_, String>((received, stats))
    });
    let mut drops = a.channel_drops();
    drops.merge(&b.channel_drops());
    let proxy_lost = proxy.as_ref().map_or(0, |p| {
        let s = p.stats();
        s.a_to_b.lost + s.b_to_a.lost
    });
    a.shutdown();
    b.shutdown();
    let ((bytes, messages), stats) = result?;
    Ok(ChannelLeg {
        what,
        loss,
        goodput_bytes_per_sec: bytes as f64 / opts.duration.as_secs_f64(),
        messages,
        fragments_sent: stats.fragments_sent,
        retransmitted: stats.retransmitted,
        fast_retransmits: stats.fast_retransmits,
        timeouts: stats.timeouts,
        proxy_lost,
        channel_drops: drops
            .iter()
            .map(|(reason, n)| (format!("{reason:?}"), n))
            .collect(),
    })
}

/// Reads from the channel B sees opened until warm-up and the measured window are over; returns the
/// bytes and messages delivered inside the window.
fn receive(b: &Node, opts: &ChannelProxyOptions) -> Result<(u64, u64), String> {
    let seen = wait_opened(b)?;
    let warm_until = Instant::now() + opts.warmup;
    let end = warm_until + opts.duration;
    let (mut bytes, mut messages) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok((bytes, messages));
        }
        match b.channel_recv(seen, Some(end - now)) {
            Ok(m) => {
                if Instant::now() >= warm_until && Instant::now() < end {
                    bytes += m.len() as u64;
                    messages += 1;
                }
            }
            Err(NodeError::TimedOut | NodeError::WouldBlock) => {}
            Err(e) => return Err(format!("channel receive: {e}")),
        }
    }
}

fn wait_opened(b: &Node) -> Result<ChannelId, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(e) = b.wait_event(Duration::from_millis(100))
            && let Event::ChannelOpened { channel } = e.event
        {
            return Ok(channel);
        }
    }
    Err(format!(
        "node B saw no channel open within 10 s; stats {:?}",
        b.stats()
    ))
}
