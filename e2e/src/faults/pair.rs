//! The pair every scenario and the soak start from: node A and node B with each other as their one
//! peer, A's `--forward` to B's exposed sink and B's to A's, and the impairment proxy that A can be
//! pointed through. The addresses are the plan's; each scenario changes what it tests and keeps the
//! rest.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use pnet_mesh::crypto::{PrivateKey, PublicKey};

use super::lab::{B_ADDR, FaultLab, Side};
use super::node::{NodeSpec, PeerSpec};

/// A's mesh address.
pub const A_MESH: &str = "10.99.0.1";
/// B's mesh address.
pub const B_MESH: &str = "10.99.0.2";
/// Both nodes' WireGuard port.
pub const PORT: u16 = 51820;
/// A's forward: datagrams sent here go to B's exposed service.
pub const A_FORWARD: &str = "127.0.0.1:7100";
/// B's exposed port, and the sink behind it.
pub const B_SERVICE: u16 = 7000;
/// The sink in B's namespace behind B's service.
pub const B_SINK: &str = "127.0.0.1:7200";
/// B's forward to A's exposed port (traffic that only B starts).
pub const B_FORWARD: &str = "127.0.0.1:7300";
/// A's exposed port.
pub const A_SERVICE: u16 = 7000;
/// The sink in A's namespace behind A's service.
pub const A_SINK: &str = "127.0.0.1:7400";
/// Where the impairment proxy listens (the router's address towards A).
pub const PROXY: &str = "10.31.1.1:51900";

/// A peer entry with only a key, its allowed IPs and (maybe) an endpoint.
pub fn peer(public_key: PublicKey, allowed_ips: String, endpoint: Option<String>) -> PeerSpec {
    PeerSpec {
        public_key,
        endpoint,
        allowed_ips,
        keepalive: None,
        via: None,
        relay_for: vec![],
    }
}

/// Node A: B at `b_endpoint` (B's address, or the proxy), A's forward to B's service and A's
/// service exposed to its sink.
pub fn spec_a(key: PrivateKey, b: PublicKey, b_endpoint: String) -> NodeSpec {
    NodeSpec {
        name: "a".into(),
        side: Side::A,
        key,
        listen_port: PORT,
        address: format!("{A_MESH}/24"),
        mtu: None,
        peers: vec![peer(b, format!("{B_MESH}/32"), Some(b_endpoint))],
        forwards: vec![format!("{A_FORWARD}={B_MESH}:{B_SERVICE}")],
        exposes: vec![format!("{A_SERVICE}={A_SINK}")],
        timer_scale: None,
        prefix: vec![],
        mesh_psk: None,
    }
}

/// Node B: A (at `a_endpoint`, or learned from A's first packet), B's forward to A's service and
/// B's service exposed to its sink.
pub fn spec_b(key: PrivateKey, a: PublicKey, a_endpoint: Option<String>) -> NodeSpec {
    NodeSpec {
        name: "b".into(),
        side: Side::B,
        key,
        listen_port: PORT,
        address: format!("{B_MESH}/24"),
        mtu: None,
        peers: vec![peer(a, format!("{A_MESH}/32"), a_endpoint)],
        forwards: vec![format!("{B_FORWARD}={A_MESH}:{A_SERVICE}")],
        exposes: vec![format!("{B_SERVICE}={B_SINK}")],
        timer_scale: None,
        prefix: vec![],
        mesh_psk: None,
    }
}

/// A running impairment proxy: the process and its report path.
#[derive(Debug)]
pub struct Proxy {
    child: Child,
    report: PathBuf,
}

impl Proxy {
    /// Starts `fault-tool proxy` (at `tool`) on the router, from [`PROXY`] to B's WireGuard port,
    /// with `impairments` (its arguments) both ways, for at most `seconds`.
    ///
    /// # Errors
    /// It could not start.
    pub fn start(
        lab: &FaultLab,
        tool: &str,
        impairments: &[&str],
        tag: &str,
        seconds: u64,
    ) -> Result<Proxy, String> {
        let report = lab.dir().join(format!("proxy-{tag}.json"));
        let report_s = report.display().to_string();
        let upstream = format!("{B_ADDR}:{PORT}");
        let seconds = seconds.to_string();
        let mut argv = vec![
            tool,
            "proxy",
            "--listen",
            PROXY,
            "--upstream",
            upstream.as_str(),
            "--seconds",
            seconds.as_str(),
            "--seed",
            "7",
            "--report",
            report_s.as_str(),
        ];
        argv.extend_from_slice(impairments);
        let child = lab.spawn_child(Side::R, &argv, &lab.dir().join(format!("proxy-{tag}.log")))?;
        // Bound before A's first packet.
        std::thread::sleep(Duration::from_millis(200));
        Ok(Proxy { child, report })
    }

    /// Stops it and returns its counters (each direction's received, forwarded, lost, …).
    ///
    /// # Errors
    /// It failed, or wrote no report.
    pub fn stop(mut self) -> Result<serde_json::Value, String> {
        std::fs::write(format!("{}.stop", self.report.display()), b"")
            .map_err(|e| format!("stop the proxy: {e}"))?;
        let status = self.child.wait().map_err(|e| format!("proxy: {e}"))?;
        if !status.success() {
            return Err(format!("proxy: {status}"));
        }
        let text = std::fs::read_to_string(&self.report)
            .map_err(|e| format!("{}: {e}", self.report.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", self.report.display()))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
