//! A stock wireguard-go as node B: its own TUN interface in B's namespace (a name unique to the
//! run, since its control socket lives in the shared `/var/run/wireguard`), configured with `wg` and
//! `ip`; its view of the peer read back with `wg show`.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::{PrivateKey, PublicKey};

use super::lab::{FaultLab, Side};

/// A running wireguard-go.
#[derive(Debug)]
pub struct WireguardGo {
    /// Its interface.
    pub interface: String,
    child: Option<Child>,
    ns: String,
}

impl WireguardGo {
    /// Starts wireguard-go in B's namespace with `key`, listening on `port`, at tunnel `address`
    /// (with prefix), with one peer (`peer`, `allowed_ips`, and `endpoint` if given).
    ///
    /// # Errors
    /// wireguard-go or wg missing, or a step that failed.
    pub fn start(
        lab: &FaultLab,
        key: &PrivateKey,
        port: u16,
        address: &str,
        peer: &PublicKey,
        allowed_ips: &str,
        endpoint: Option<&str>,
    ) -> Result<WireguardGo, String> {
        let ns = lab.ns(Side::B);
        let interface = format!("w{}", ns.trim_end_matches('b'));
        let log = lab.dir().join("wireguard-go.log");
        let child = lab
            .spawn_child(Side::B, &["wireguard-go", "-f", &interface], &log)
            .map_err(|e| format!("{e} (the fault suite needs wireguard-go)"))?;
        let sock = PathBuf::from(format!("/var/run/wireguard/{interface}.sock"));
        let started = Instant::now();
        while !sock.exists() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "wireguard-go made no control socket in 10 s: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let key_file = lab.dir().join("wg-b.key");
        std::fs::write(&key_file, format!("{}\n", key.to_base64()))
            .map_err(|e| format!("write {}: {e}", key_file.display()))?;
        let wg = WireguardGo {
            interface,
            child: Some(child),
            ns,
        };
        let port = port.to_string();
        let peer = peer.to_string();
        let key_path = key_file.display().to_string();
        let mut set = vec![
            "wg",
            "set",
            wg.interface.as_str(),
            "private-key",
            key_path.as_str(),
            "listen-port",
            port.as_str(),
            "peer",
            peer.as_str(),
            "allowed-ips",
            allowed_ips,
        ];
        if let Some(e) = endpoint {
            set.extend(["endpoint", e]);
        }
        lab.exec(Side::B, &set)?;
        lab.exec(
            Side::B,
            &["ip", "address", "add", address, "dev", &wg.interface],
        )?;
        lab.exec(
            Side::B,
            &["ip", "link", "set", &wg.interface, "mtu", "1420", "up"],
        )?;
        Ok(wg)
    }

    /// `wg show INTERFACE KEY` of the one peer: its second column (`endpoints`, `latest-handshakes`,
    /// `transfer`).
    pub fn show(&self, what: &str) -> String {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "wg",
                "show",
                &self.interface,
                what,
            ])
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
    }

    /// The endpoint it sends to.
    pub fn endpoint(&self) -> String {
        self.show("endpoints")
    }

    /// Unix time of its latest handshake with the peer (0: none).
    pub fn latest_handshake(&self) -> u64 {
        self.show("latest-handshakes").parse().unwrap_or(0)
    }
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.interface));
    }
}
