//! A `pnet-mesh up` process in one of the lab's namespaces: its configuration written from a spec,
//! its counters from `show --json`, its events (with wall-clock times) from `--events`, its memory
//! and descriptors from `/proc`.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey};
use serde_json::Value;

use super::lab::{FaultLab, Side};

/// A peer in a node's configuration.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Its key.
    pub public_key: PublicKey,
    /// `Endpoint`, if any.
    pub endpoint: Option<String>,
    /// `AllowedIPs`.
    pub allowed_ips: String,
    /// `PersistentKeepalive`, if any.
    pub keepalive: Option<u16>,
    /// `Via`: the relay peer it is reached through, if any.
    pub via: Option<PublicKey>,
    /// `RelayFor`: members whose relay frames go to this peer.
    pub relay_for: Vec<PublicKey>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its name (file names, `--name`).
    pub name: String,
    /// Where it runs.
    pub side: Side,
    /// Its key.
    pub key: PrivateKey,
    /// `ListenPort`.
    pub listen_port: u16,
    /// `Address` (mesh address with prefix).
    pub address: String,
    /// `MTU`, if set.
    pub mtu: Option<u16>,
    /// Its peers.
    pub peers: Vec<PeerSpec>,
    /// `--forward` rules.
    pub forwards: Vec<String>,
    /// `--expose` rules.
    pub exposes: Vec<String>,
    /// `--timer-scale`, if any.
    pub timer_scale: Option<f64>,
    /// A command the node runs under (`env FAKETIME=… LD_PRELOAD=…`), if any.
    pub prefix: Vec<String>,
    /// `MeshPresharedKey`: discovery on, with this mesh PSK.
    pub mesh_psk: Option<PresharedKey>,
}

impl NodeSpec {
    /// The wg-quick file.
    pub fn config(&self) -> String {
        let mut s = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {}\nAddress = {}\n",
            self.key.to_base64(),
            self.listen_port,
            self.address
        );
        if let Some(mtu) = self.mtu {
            s.push_str(&format!("MTU = {mtu}\n"));
        }
        if let Some(psk) = &self.mesh_psk {
            s.push_str(&format!("MeshPresharedKey = {}\n", psk.to_base64()));
        }
        for p in &self.peers {
            s.push_str(&format!(
                "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\n",
                p.public_key, p.allowed_ips
            ));
            if let Some(e) = &p.endpoint {
                s.push_str(&format!("Endpoint = {e}\n"));
            }
            if let Some(k) = p.keepalive {
                s.push_str(&format!("PersistentKeepalive = {k}\n"));
            }
            if let Some(relay) = &p.via {
                s.push_str(&format!("Via = {relay}\n"));
            }
            if !p.relay_for.is_empty() {
                let members: Vec<String> = p.relay_for.iter().map(ToString::to_string).collect();
                s.push_str(&format!("RelayFor = {}\n", members.join(", ")));
            }
        }
        s
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeProcess {
    /// Its spec.
    pub spec: NodeSpec,
    child: Option<Child>,
    binary: PathBuf,
    control: PathBuf,
    events: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

/// The `pnet-mesh` binary of this build.
///
/// # Errors
/// It was not built.
pub fn binary() -> Result<PathBuf, String> {
    let path = crate::profile_dir()?.join("pnet-mesh");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build the workspace with --all-features (the `cli` feature)",
            path.display()
        ))
    }
}

impl NodeProcess {
    /// Writes the configuration and starts the node, waiting for its `ready` line.
    ///
    /// # Errors
    /// The binary is missing, or the node did not become ready (with its log).
    pub fn start(lab: &FaultLab, spec: NodeSpec) -> Result<NodeProcess, String> {
        let dir = lab.dir();
        let config = dir.join(format!("{}.conf", spec.name));
        std::fs::write(&config, spec.config())
            .map_err(|e| format!("write {}: {e}", config.display()))?;
        let mut node = NodeProcess {
            child: None,
            binary: binary()?,
            control: dir.join(format!("{}.sock", spec.name)),
            events: dir.join(format!("{}.events", spec.name)),
            log: dir.join(format!("{}.log", spec.name)),
            config,
            spec,
        };
        node.launch(lab)?;
        Ok(node)
    }

    fn launch(&mut self, lab: &FaultLab) -> Result<(), String> {
        let bin = self.binary.display().to_string();
        let config = self.config.display().to_string();
        let control = self.control.display().to_string();
        let events = self.events.display().to_string();
        let mut argv: Vec<String> = self.spec.prefix.clone();
        argv.extend([
            bin,
            "up".into(),
            config,
            "--name".into(),
            self.spec.name.clone(),
            "--control".into(),
            control,
            "--events".into(),
            events,
        ]);
        for f in &self.spec.forwards {
            argv.extend(["--forward".into(), f.clone()]);
        }
        for e in &self.spec.exposes {
            argv.extend(["--expose".into(), e.clone()]);
        }
        if let Some(s) = self.spec.timer_scale {
            argv.extend(["--timer-scale".into(), s.to_string()]);
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut child = lab.spawn_child(self.spec.side, &argv, &self.log)?;
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(" ready interface=") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "node {} exited with {status} before it was ready:\n{log}",
                    self.spec.name
                ));
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                return Err(format!("node {} not ready in 15 s:\n{log}", self.spec.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL (a crash), keeping its files.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same configuration (the same key).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self, lab: &FaultLab) -> Result<(), String> {
        self.kill();
        let _ = std::fs::remove_file(&self.control);
        // A killed process's io_uring lets go of its sockets a moment after it is gone.
        let mut tries = 0;
        loop {
            match self.launch(lab) {
                Err(e) if e.contains("already in use") && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    /// `pnet-mesh show --json` of the node.
    ///
    /// # Errors
    /// The node does not answer.
    pub fn show(&self) -> Result<Value, String> {
        let out = Command::new(&self.binary)
            .args(["show", "--json", "--control"])
            .arg(&self.control)
            .output()
            .map_err(|e| format!("show: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "show {} failed: {}",
                self.spec.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // `show --json` lists every node it asked; this one asked one.
        let all: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("show {}: {e}", self.spec.name))?;
        all.get(0)
            .cloned()
            .ok_or_else(|| format!("show {}: no status in {all}", self.spec.name))
    }

    /// The drop counter `reason` (0 when absent).
    pub fn drops(&self, reason: &str) -> u64 {
        self.show()
            .ok()
            .and_then(|s| s["drops"][reason].as_u64())
            .unwrap_or(0)
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The times (ms since the epoch) of events of `kind`, oldest first.
    pub fn event_times(&self, kind: &str) -> Vec<u64> {
        self.events()
            .iter()
            .filter(|e| e["kind"] == kind)
            .filter_map(|e| e["at_ms"].as_u64())
            .collect()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How it ended, once it has (a crash, a panic's exit); `None` while it runs or after a kill.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory, KiB.
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// Open file descriptors.
    pub fn fds(&self) -> Option<usize> {
        Some(
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()?))
                .ok()?
                .count(),
        )
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
