//! `--events FILE`: every node event as one JSON line with its wall-clock time, for scripts and the
//! fault suite (which reads handshake attempts, endpoint changes and rekeys from it).

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pnet_mesh::{Event, PeerId};

/// The open event file.
#[derive(Debug)]
pub struct EventLog {
    out: BufWriter<File>,
}

impl EventLog {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, String> {
        let file = File::create(path)
            .map_err(|e| format!("--events {}: cannot create: {e}", path.display()))?;
        Ok(EventLog {
            out: BufWriter::new(file),
        })
    }

    /// Appends `event`, naming peers with `name`, and flushes (events are rare; a reader tails the
    /// file while the node runs).
    pub fn write(&mut self, at: SystemTime, event: &Event, name: impl Fn(PeerId) -> String) {
        let at_ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let line = serde_json::json!({
            "at_ms": at_ms,
            "kind": kind(event),
            "peer": peer_of(event).map(&name),
            "detail": format!("{event:?}"),
            "attempt": match *event {
                Event::HandshakeInitiated { attempt, .. } => Some(attempt),
                _ => None,
            },
            "endpoint": match *event {
                Event::EndpointChanged { new, .. } => Some(new.to_string()),
                _ => None,
            },
        });
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

/// The event's variant name (`HandshakeInitiated`, `EndpointChanged`, …).
fn kind(event: &Event) -> String {
    let debug = format!("{event:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn peer_of(event: &Event) -> Option<PeerId> {
    match *event {
        Event::HandshakeInitiated { peer, .. }
        | Event::HandshakeCompleted { peer, .. }
        | Event::PeerUp { peer }
        | Event::PeerDown { peer }
        | Event::HandshakeFailed { peer }
        | Event::KeypairRotated { peer }
        | Event::EndpointChanged { peer, .. } => Some(peer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_json_line_with_its_time_kind_and_peer() {
        let dir = std::env::temp_dir().join(format!("pnet-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut log = EventLog::create(&path).unwrap();
        let at = std::time::SystemTime::now();
        log.write(
            at,
            &Event::HandshakeInitiated {
                peer: PeerId(3),
                attempt: 2,
            },
            |p| format!("peer{}", p.0),
        );
        log.write(
            at,
            &Event::EndpointChanged {
                peer: PeerId(3),
                old: None,
                new: "10.31.1.3:51820".parse().unwrap(),
            },
            |p| format!("peer{}", p.0),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["kind"], "HandshakeInitiated");
        assert_eq!(lines[0]["peer"], "peer3");
        assert_eq!(lines[0]["attempt"], 2);
        assert!(lines[0]["at_ms"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(lines[1]["kind"], "EndpointChanged");
        assert_eq!(lines[1]["endpoint"], "10.31.1.3:51820");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
