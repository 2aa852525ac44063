//! Message channels from the command line: `--channel-echo` answers every message a peer sends on a
//! channel with the same message, and `--channel-send MESH_ADDR=FILE` sends a file as one message on
//! a channel to a peer and waits for its echo. What crossed (sizes and BLAKE2s digests) shows in
//! `show --json` under `channels`, so a test or an operator can check a transfer end to end.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use pnet_mesh::crypto::blake2s;
use pnet_mesh::mesh::channel::ChannelId;
use pnet_mesh::{Node, NodeError};
use serde::{Deserialize, Serialize};

/// Channels served at once at most by the echo; more are reset.
const MAX_ECHO_CHANNELS: usize = 64;
/// Transfers remembered for `show`.
const MAX_RECORDS: usize = 32;
/// How long a `--channel-send` waits for the peer's session and for its echo.
const SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// `--channel-send MESH_ADDR=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSend {
    /// The peer's mesh address.
    pub to: IpAddr,
    /// The file to send as one message.
    pub file: PathBuf,
}

impl FromStr for ChannelSend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (to, file) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected MESH_ADDR=FILE"))?;
        let to = to
            .parse()
            .map_err(|_| format!("`{s}`: `{to}` is not an IP address"))?;
        if file.is_empty() {
            return Err(format!("`{s}`: no file"));
        }
        Ok(ChannelSend {
            to,
            file: file.into(),
        })
    }
}

/// One message that crossed a channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Transfer {
    /// The peer (its mesh address for sends, its peer id for received messages).
    pub peer: String,
    /// Bytes.
    pub bytes: usize,
    /// BLAKE2s-256 of the message, hex.
    pub blake2s: String,
    /// For a send: whether the same message came back; for a received one: whether it was echoed.
    pub echoed: bool,
    /// What went wrong, if anything.
    #[serde(default)]
    pub error: Option<String>,
}

/// What `show` prints about channels.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelStatus {
    /// Messages received (and echoed, with `--channel-echo`), newest last.
    pub received: Vec<Transfer>,
    /// `--channel-send` transfers, newest last.
    pub sent: Vec<Transfer>,
}

fn hex_digest(data: &[u8]) -> String {
    blake2s::hash(&[data])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn push(list: &mut Vec<Transfer>, t: Transfer) {
    if list.len() >= MAX_RECORDS {
        list.remove(0);
    }
    list.push(t);
}

/// The channel side of a running `up`.
#[derive(Debug, Default)]
pub struct Channels {
    echo: bool,
    /// Incoming channels being served, with a message waiting to be echoed if the send would block.
    open: Mutex<VecDeque<(ChannelId, Option<Vec<u8>>)>>,
    status: Mutex<ChannelStatus>,
}

impl Channels {
    pub fn new(echo: bool) -> Self {
        Channels {
            echo,
            ..Default::default()
        }
    }

    /// A peer opened `channel` to us.
    pub fn opened(&self, node: &Node, channel: ChannelId) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        if open.len() >= MAX_ECHO_CHANNELS {
            let _ = node.reset_channel(channel);
            return;
        }
        open.push_back((channel, None));
    }

    /// Reads what arrived on the served channels and echoes it when asked to. Never blocks: a
    /// message whose echo would block waits (one per channel, so memory stays bounded) and the
    /// channel is not read further until it went.
    pub fn pump(&self, node: &Node) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        open.retain_mut(|(channel, pending)| {
            loop {
                if let Some(message) = pending.take() {
                    match node.try_channel_send(*channel, &message) {
                        Ok(()) => {}
                        Err(NodeError::WouldBlock) => {
                            *pending = Some(message);
                            return true;
                        }
                        Err(_) => return false,
                    }
                }
                match node.try_channel_recv(*channel) {
                    Ok(message) => {
                        if let Ok(mut s) = self.status.lock() {
                            push(
                                &mut s.received,
                                Transfer {
                                    peer: channel.peer.to_string(),
                                    bytes: message.len(),
                                    blake2s: hex_digest(&message),
                                    echoed: self.echo,
                                    error: None,
                                },
                            );
                        }
                        if self.echo {
                            *pending = Some(message);
                        }
                    }
                    Err(NodeError::WouldBlock) => return true,
                    // Closed, reset or gone: stop serving it.
                    Err(_) => return false,
                }
            }
        });
    }

    /// Sends `send.file` on a new channel to `send.to` and waits for the echo (blocking: run it on
    /// a thread of its own).
    pub fn send_file(&self, node: &Node, send: &ChannelSend) {
        let result = (|| -> Result<(Vec<u8>, bool), String> {
            let data = std::fs::read(&send.file)
                .map_err(|e| format!("read {}: {e}", send.file.display()))?;
            let channel = node
                .open_channel(send.to)
                .map_err(|e| format!("open a channel to {}: {e}", send.to))?;
            node.channel_send(channel, &data)
                .map_err(|e| format!("send on {channel:?}: {e}"))?;
            let echo = node
                .channel_recv(channel, Some(SEND_TIMEOUT))
                .map_err(|e| format!("no echo on {channel:?}: {e}"))?;
            let _ = node.close_channel(channel);
            let same = echo == data;
            Ok((data, same))
        })();
        let t = match result {
            Ok((data, echoed)) => Transfer {
                peer: send.to.to_string(),
                bytes: data.len(),
                blake2s: hex_digest(&data),
                echoed,
                error: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "channel send failed");
                Transfer {
                    peer: send.to.to_string(),
                    bytes: 0,
                    blake2s: String::new(),
                    echoed: false,
                    error: Some(e),
                }
            }
        };
        tracing::info!(to = %send.to, bytes = t.bytes, echoed = t.echoed, "channel send done");
        if let Ok(mut s) = self.status.lock() {
            push(&mut s.sent, t);
        }
    }

    /// For `show`.
    pub fn status(&self) -> ChannelStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_send_rules_parse_and_say_what_is_wrong() {
        let s: ChannelSend = "10.0.0.2=/tmp/payload.bin".parse().unwrap();
        assert_eq!(s.to, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(s.file, PathBuf::from("/tmp/payload.bin"));
        assert!(
            "10.0.0.2"
                .parse::<ChannelSend>()
                .unwrap_err()
                .contains("MESH_ADDR=FILE")
        );
        assert!(
            "x=/f"
                .parse::<ChannelSend>()
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            "10.0.0.2="
                .parse::<ChannelSend>()
                .unwrap_err()
                .contains("no file")
        );
    }

    #[test]
    fn transfers_are_bounded_and_digested() {
        let mut list = Vec::new();
        for i in 0..(MAX_RECORDS + 5) {
            push(
                &mut list,
                Transfer {
                    peer: i.to_string(),
                    bytes: i,
                    blake2s: hex_digest(&[i as u8]),
                    echoed: false,
                    error: None,
                },
            );
        }
        assert_eq!(list.len(), MAX_RECORDS);
        assert_eq!(list[0].peer, "5");
        assert_eq!(hex_digest(b"").len(), 64);
    }
}
