//! Harness for a real `wireguard-go` peer running in a private network namespace.
//!
//! Std-only, for integration tests (`mod support;` then `support::wg_go::*`).
//!
//! Layout of one [`WgGoPeer`]:
//!
//! ```text
//!  root namespace (the test process)          namespace pnwg-<pid>-<r>
//!  ─────────────────────────────────          ────────────────────────────────────────────
//!  pnh<pid>x<r>  10.213.Y.(4k+1)/30  <─veth─>  veth0  10.213.Y.(4k+2)/30
//!  (our UDP socket binds here)                  wireguard-go -f pw<pid>x<r>   (UDP :51820)
//!                                               pw<pid>x<r>: tunnel_addrs, routes to allowed-ips
//!                                               recorder.py: UDP sockets on tunnel_addrs:5555
//! ```
//!
//! No route for the tunnel subnets is ever added in the root namespace: the test talks to
//! wireguard-go's UDP endpoint over the veth only; everything "inside" the tunnel lives in the
//! namespace and is observed through the recorder.
//!
//! The recorder is a small python3 script (embedded below) started with `ip netns exec`. It
//! appends every datagram it receives to `received.log` as `src_ip src_port hexpayload\n`, and
//! serves send requests over a Unix datagram socket (`ctl.sock` in the peer's temp directory;
//! filesystem Unix sockets work across network namespaces). It also acts as a watchdog: when its
//! parent (the test process) dies without running `Drop`, it terminates wireguard-go; the
//! namespace, veth and temp files left behind are then swept by the next `WgGoPeer::start` (names
//! carry the pid of the run that made them).
//!
//! Tests that create namespaces should hold [`machine_lock`] so that concurrent runs serialize.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// UDP port the recorder binds on every tunnel address.
pub const RECORDER_PORT: u16 = 5555;
/// UDP port wireguard-go listens on inside its namespace.
pub const WG_LISTEN_PORT: u16 = 51820;
/// Machine-wide lock file used by [`machine_lock`].
pub const LOCK_PATH: &str = "/tmp/pnet-mesh-netns.lock";

/// Prefix of every namespace and temp directory this module creates (`pnwg-<pid>-<hex>`).
const NS_PREFIX: &str = "pnwg-";
/// Prefix of the host end of the veth (`pnh<pid>x<hex>`, ≤ 15 chars).
const HOST_VETH_PREFIX: &str = "pnh";
/// Prefix of wireguard-go's interface name (`pw<pid>x<hex>`, ≤ 15 chars).
const WG_IF_PREFIX: &str = "pw";
/// Name of the namespace end of the veth (only needs to be unique inside the namespace).
const NS_VETH: &str = "veth0";
/// Directory of wireguard-go's UAPI sockets (shared by all namespaces).
const UAPI_DIR: &str = "/var/run/wireguard";
/// Base of the per-peer temp directories: fixed and short (not `$TMPDIR`) because they hold Unix
/// socket paths, which must stay under 108 bytes.
const TMP_BASE: &str = "/tmp";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Configuration of the wireguard-go peer.
#[derive(Debug, Clone)]
pub struct WgGoConfig {
    /// wireguard-go's own private key (base64).
    pub private_key: String,
    /// Our (the test process's) public key (base64).
    pub peer_public_key: String,
    /// Optional preshared key (base64).
    pub preshared_key: Option<String>,
    /// Where wireguard-go sends to reach us (normally `host_addr():port`); `None` = learn by roaming.
    /// `host_addr()` is only known once `start` has picked the veth subnet, so an unspecified IPv4
    /// address (`0.0.0.0:PORT`) is replaced by `host_addr():PORT`. Alternatively use
    /// [`WgGoPeer::start_with`] or [`WgGoPeer::set_endpoint`].
    pub peer_endpoint: Option<SocketAddr>,
    /// Allowed IPs of our peer, e.g. `["10.77.0.1/32", "fd77::1/128"]`.
    pub peer_allowed_ips: Vec<String>,
    /// Addresses on wireguard-go's interface, e.g. `["10.77.0.2/24", "fd77::2/64"]`.
    pub tunnel_addrs: Vec<String>,
    /// Persistent keepalive interval in seconds (`None` = off).
    pub persistent_keepalive: Option<u16>,
    /// MTU of wireguard-go's interface (1420).
    pub mtu: u16,
}

impl Default for WgGoConfig {
    fn default() -> Self {
        WgGoConfig {
            private_key: String::new(),
            peer_public_key: String::new(),
            preshared_key: None,
            peer_endpoint: None,
            peer_allowed_ips: Vec::new(),
            tunnel_addrs: Vec::new(),
            persistent_keepalive: None,
            mtu: 1420,
        }
    }
}

/// Our peer as seen by wireguard-go (`wg show <if> dump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgShow {
    /// Latest handshake, unix seconds; 0 = never.
    pub latest_handshake: u64,
    /// Bytes received from us (as counted by wireguard-go).
    pub rx_bytes: u64,
    /// Bytes sent to us.
    pub tx_bytes: u64,
    /// Endpoint wireguard-go currently uses for us.
    pub endpoint: Option<SocketAddr>,
    /// Whether a preshared key is set for the peer.
    pub has_preshared_key: bool,
    /// Allowed IPs as printed by `wg` (e.g. `10.77.0.1/32`).
    pub allowed_ips: Vec<String>,
    /// Persistent keepalive in seconds, `None` = off.
    pub persistent_keepalive: Option<u16>,
    /// wireguard-go's listen port.
    pub listen_port: u16,
}

#[derive(Debug, Default)]
struct RecvState {
    offset: u64,
    partial: Vec<u8>,
    items: Vec<(SocketAddr, Vec<u8>)>,
}

/// A running wireguard-go peer in its own network namespace. Everything is torn down on drop.
#[derive(Debug)]
pub struct WgGoPeer {
    netns: String,
    ifname: String,
    host_veth: String,
    host_addr: Ipv4Addr,
    ns_addr: Ipv4Addr,
    prefix_base: Ipv4Addr,
    wg_public_key: String,
    peer_public_key: String,
    tunnel_ips: Vec<IpAddr>,
    dir: PathBuf,
    wg_child: Option<Child>,
    recorder: Option<Child>,
    netns_created: bool,
    veth_created: bool,
    recv: Mutex<RecvState>,
    seq: AtomicU64,
}

impl WgGoPeer {
    /// Creates the namespace, veth pair, wireguard-go and the recorder (see the module docs).
    pub fn start(config: &WgGoConfig) -> Result<WgGoPeer, String> {
        Self::start_with(config, |_, _| {})
    }

    /// Like [`WgGoPeer::start`], but calls `adjust(&mut config_copy, host_addr)` once the host end
    /// of the veth is up with its address and before wireguard-go is configured. Use it to set
    /// `peer_endpoint = Some((host_addr, port).into())` and to bind the test's UDP socket on
    /// `host_addr` early: with `persistent_keepalive` set, wireguard-go sends its first handshake
    /// initiation as soon as it is configured, i.e. before `start` returns; a socket bound later
    /// misses it (the kernel answers port-unreachable) and the retry comes only after 5 s.
    pub fn start_with(
        config: &WgGoConfig,
        adjust: impl FnOnce(&mut WgGoConfig, Ipv4Addr),
    ) -> Result<WgGoPeer, String> {
        sweep_stale();
        let python = python_path()?;
        let pid = std::process::id();

        // Unique names: every one carries the pid, plus 16 random bits.
        let (netns, ifname, host_veth, dir) = {
            let mut tries = 0;
            loop {
                let r = (rand_u64() & 0xffff) as u16;
                let netns = format!("{NS_PREFIX}{pid}-{r:04x}");
                let ifname = format!("{WG_IF_PREFIX}{pid}x{r:04x}");
                let host_veth = format!("{HOST_VETH_PREFIX}{pid}x{r:04x}");
                let dir = Path::new(TMP_BASE).join(&netns);
                let free = !Path::new("/run/netns").join(&netns).exists()
                    && !Path::new("/sys/class/net").join(&host_veth).exists()
                    && !uapi_sock(&ifname).exists()
                    && !dir.exists();
                if free {
                    break (netns, ifname, host_veth, dir);
                }
                tries += 1;
                if tries > 100 {
                    return Err("could not find unused netns/interface names".into());
                }
            }
        };
        debug_assert!(ifname.len() <= 15 && host_veth.len() <= 15);

        let mut peer = WgGoPeer {
            netns,
            ifname,
            host_veth,
            host_addr: Ipv4Addr::UNSPECIFIED,
            ns_addr: Ipv4Addr::UNSPECIFIED,
            prefix_base: Ipv4Addr::UNSPECIFIED,
            wg_public_key: String::new(),
            peer_public_key: config.peer_public_key.trim().to_string(),
            tunnel_ips: Vec::new(),
            dir,
            wg_child: None,
            recorder: None,
            netns_created: false,
            veth_created: false,
            recv: Mutex::new(RecvState::default()),
            seq: AtomicU64::new(0),
        };
        // From here on, any early return drops `peer`, which removes whatever was created.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&peer.dir)
            .map_err(|e| format!("create {}: {e}", peer.dir.display()))?;

        // Parse the tunnel addresses first so that config errors fail fast.
        let mut tunnel = Vec::new();
        for a in &config.tunnel_addrs {
            let (ip, len) = parse_prefix(a)?;
            tunnel.push((ip, len));
            peer.tunnel_ips.push(ip);
        }
        let mut allowed = Vec::new();
        for a in &config.peer_allowed_ips {
            allowed.push(parse_prefix(a)?);
        }

        // Namespace.
        run(Command::new("ip").args(["netns", "add", &peer.netns]))?;
        peer.netns_created = true;
        peer.ns_run("ip", &["link", "set", "lo", "up"])?;

        // Veth pair with a /30 that nothing in the root namespace uses.
        let base = pick_subnet()?;
        let b = base.octets();
        peer.prefix_base = base;
        peer.host_addr = Ipv4Addr::new(b[0], b[1], b[2], b[3] + 1);
        peer.ns_addr = Ipv4Addr::new(b[0], b[1], b[2], b[3] + 2);
        run(Command::new("ip").args([
            "link",
            "add",
            &peer.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            NS_VETH,
            "netns",
            &peer.netns,
        ]))?;
        peer.veth_created = true;
        // No IPv6 on the host end: keeps router solicitations and DAD noise off the link.
        let _ = fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", peer.host_veth),
            "1",
        );
        let host_cidr = format!("{}/30", peer.host_addr);
        run(Command::new("ip").args(["addr", "add", &host_cidr, "dev", &peer.host_veth]))?;
        run(Command::new("ip").args(["link", "set", "dev", &peer.host_veth, "up"]))?;
        let ns_cidr = format!("{}/30", peer.ns_addr);
        peer.ns_run("ip", &["addr", "add", &ns_cidr, "dev", NS_VETH])?;
        peer.ns_run("ip", &["link", "set", "dev", NS_VETH, "up"])?;

        let mut config = config.clone();
        if let Some(ep) = config.peer_endpoint
            && ep.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        {
            config.peer_endpoint = Some(SocketAddr::new(IpAddr::V4(peer.host_addr), ep.port()));
        }
        adjust(&mut config, peer.host_addr);

        // wireguard-go in the foreground, output to a log file.
        let log = File::create(peer.wg_log_path())
            .map_err(|e| format!("create {}: {e}", peer.wg_log_path().display()))?;
        let log2 = log.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &peer.netns,
                "wireguard-go",
                "-f",
                &peer.ifname,
            ])
            .env("LOG_LEVEL", "debug")
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| {
                format!(
                    "spawn `ip netns exec {} wireguard-go -f {}`: {e}",
                    peer.netns, peer.ifname
                )
            })?;
        peer.wg_child = Some(child);
        peer.wait_uapi()?;

        // wg set: keys through files in the 0700 temp dir.
        let key_file = peer.write_secret("private.key", &config.private_key)?;
        let mut args: Vec<String> = vec![
            "set".into(),
            peer.ifname.clone(),
            "listen-port".into(),
            WG_LISTEN_PORT.to_string(),
            "private-key".into(),
            key_file.display().to_string(),
            "peer".into(),
            peer.peer_public_key.clone(),
        ];
        if let Some(psk) = &config.preshared_key {
            let psk_file = peer.write_secret("preshared.key", psk)?;
            args.push("preshared-key".into());
            args.push(psk_file.display().to_string());
        }
        if !allowed.is_empty() {
            args.push("allowed-ips".into());
            args.push(
                allowed
                    .iter()
                    .map(|(ip, len)| format!("{}/{len}", network_of(*ip, *len)))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        if let Some(ep) = config.peer_endpoint {
            args.push("endpoint".into());
            args.push(ep.to_string());
        }
        if let Some(ka) = config.persistent_keepalive {
            args.push("persistent-keepalive".into());
            args.push(ka.to_string());
        }
        let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
        peer.ns_run("wg", &args_ref).map_err(|e| peer.with_log(e))?;
        peer.wg_public_key = peer
            .ns_run("wg", &["show", &peer.ifname, "public-key"])?
            .trim()
            .to_string();

        // Interface addresses (IPv6 without DAD so the recorder can bind at once), MTU, up.
        let mtu = config.mtu.to_string();
        peer.ns_run("ip", &["link", "set", "dev", &peer.ifname, "mtu", &mtu])?;
        for (ip, len) in &tunnel {
            let cidr = format!("{ip}/{len}");
            match ip {
                IpAddr::V4(_) => {
                    peer.ns_run("ip", &["-4", "addr", "add", &cidr, "dev", &peer.ifname])?
                }
                IpAddr::V6(_) => peer.ns_run(
                    "ip",
                    &["-6", "addr", "add", &cidr, "dev", &peer.ifname, "nodad"],
                )?,
            };
        }
        peer.ns_run("ip", &["link", "set", "dev", &peer.ifname, "up"])?;
        // Routes for the allowed IPs (those inside a tunnel_addrs subnet are already connected;
        // a more specific route through the same device is harmless).
        for (ip, len) in &allowed {
            let cidr = format!("{}/{len}", network_of(*ip, *len));
            let fam = if ip.is_ipv4() { "-4" } else { "-6" };
            peer.ns_run("ip", &[fam, "route", "replace", &cidr, "dev", &peer.ifname])?;
        }
        if tunnel.iter().any(|(ip, _)| ip.is_ipv6()) {
            let out = peer.ns_run("ip", &["-6", "addr", "show", "dev", &peer.ifname])?;
            if out.contains("tentative") {
                return Err(format!(
                    "IPv6 address still tentative on {}:\n{out}",
                    peer.ifname
                ));
            }
        }
        peer.wait_listening()?;

        // Recorder.
        let script = peer.dir.join("recorder.py");
        fs::write(&script, RECORDER_PY).map_err(|e| format!("write {}: {e}", script.display()))?;
        let rlog = File::create(peer.recorder_log_path())
            .map_err(|e| format!("create {}: {e}", peer.recorder_log_path().display()))?;
        let rlog2 = rlog.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
        File::create(peer.received_path())
            .map_err(|e| format!("create {}: {e}", peer.received_path().display()))?;
        let wg_pid = peer.wg_pid().unwrap_or(0).to_string();
        let port = RECORDER_PORT.to_string();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &peer.netns, python, "-I", "-u"])
            .arg(&script)
            .arg(peer.received_path())
            .arg(peer.ctl_path())
            .arg(peer.ready_path())
            .arg(&wg_pid)
            .arg(&port);
        for ip in &peer.tunnel_ips {
            cmd.arg(ip.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(rlog))
            .stderr(Stdio::from(rlog2))
            .spawn()
            .map_err(|e| format!("spawn recorder `{}`: {e}", describe(&cmd)))?;
        peer.recorder = Some(child);
        peer.wait_recorder()?;
        Ok(peer)
    }

    /// Host end of the veth (bind our UDP socket here).
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// wireguard-go's listen address (namespace end of the veth : [`WG_LISTEN_PORT`]).
    pub fn wg_endpoint(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ns_addr), WG_LISTEN_PORT)
    }

    /// wireguard-go's public key (base64).
    pub fn wg_public_key(&self) -> String {
        self.wg_public_key.clone()
    }

    /// Name of the network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Name of wireguard-go's interface (inside the namespace).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Name of the host (root namespace) end of the veth.
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }

    /// The /30 used on the veth, e.g. `10.213.7.4/30`.
    pub fn veth_subnet(&self) -> String {
        format!("{}/30", self.prefix_base)
    }

    /// IPs of the tunnel addresses (where the recorder listens).
    pub fn tunnel_ips(&self) -> &[IpAddr] {
        &self.tunnel_ips
    }

    /// Process id of wireguard-go (`ip netns exec` execs, so it is the child's pid).
    pub fn wg_pid(&self) -> Option<u32> {
        self.wg_child.as_ref().map(Child::id)
    }

    /// Process id of the recorder.
    pub fn recorder_pid(&self) -> Option<u32> {
        self.recorder.as_ref().map(Child::id)
    }

    /// The peer's temp directory (keys, logs, recorder files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Last `lines` lines of wireguard-go's log (it runs with `LOG_LEVEL=debug`).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.wg_log_path(), lines)
    }

    /// Whole wireguard-go log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.wg_log_path()).unwrap_or_default()
    }

    /// Last `lines` lines of the recorder's own log (errors, sends).
    pub fn recorder_log_tail(&self, lines: usize) -> String {
        tail_file(&self.recorder_log_path(), lines)
    }

    /// `wg show <if> dump` parsed for our peer.
    pub fn show(&self) -> Result<WgShow, String> {
        let out = self.ns_run("wg", &["show", &self.ifname, "dump"])?;
        parse_dump(&out, &self.peer_public_key)
    }

    /// Plain `wg show <if>` output (or the error), for logs and evidence.
    pub fn show_text(&self) -> String {
        match self.ns_run("wg", &["show", &self.ifname]) {
            Ok(s) => s,
            Err(e) => format!("(wg show failed: {e})"),
        }
    }

    /// Runs `prog args...` inside the namespace; returns stdout.
    pub fn run_in_ns(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        self.ns_run(prog, args)
    }

    /// Datagrams received so far by the recorder, as (source, payload), in arrival order.
    pub fn received(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.poll_received().items.clone()
    }

    /// Number of datagrams received so far.
    pub fn received_count(&self) -> usize {
        self.poll_received().items.len()
    }

    /// Waits up to `timeout` until a received payload equals `payload`.
    pub fn wait_received(&self, payload: &[u8], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.poll_received().items.iter().any(|(_, p)| p == payload) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// Makes the recorder send `payload` from its socket bound to `from`:[`RECORDER_PORT`] (one of
    /// the tunnel addresses) to `to` (an address behind the tunnel). The datagram goes through
    /// wireguard-go's TUN, so wireguard-go encrypts it (after a handshake if needed). Returns once
    /// the recorder's `sendto` has succeeded (or with its error).
    pub fn send_from_tunnel(
        &self,
        from: IpAddr,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), String> {
        if !self.tunnel_ips.contains(&from) {
            return Err(format!(
                "send_from_tunnel: {from} is not a tunnel address (have {:?})",
                self.tunnel_ips
            ));
        }
        if from.is_ipv4() != to.is_ipv4() {
            return Err(format!(
                "send_from_tunnel: address family mismatch {from} -> {to}"
            ));
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let cli_path = self.dir.join(format!("cli-{seq}.sock"));
        let _ = fs::remove_file(&cli_path);
        let sock = UnixDatagram::bind(&cli_path)
            .map_err(|e| format!("bind {}: {e}", cli_path.display()))?;
        let result = (|| {
            sock.set_read_timeout(Some(SEND_TIMEOUT))
                .map_err(|e| e.to_string())?;
            let mut msg = format!("send {} {} {}\n", from, to.ip(), to.port()).into_bytes();
            msg.extend_from_slice(payload);
            sock.send_to(&msg, self.ctl_path())
                .map_err(|e| format!("send to recorder {}: {e}", self.ctl_path().display()))?;
            let mut buf = [0u8; 4096];
            let n = sock
                .recv(&mut buf)
                .map_err(|e| format!("no reply from recorder: {e}"))?;
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            if reply == "ok" {
                Ok(())
            } else {
                Err(format!("recorder: {reply}"))
            }
        })();
        let _ = fs::remove_file(&cli_path);
        result.map_err(|e| {
            format!(
                "send_from_tunnel({from} -> {to}, {} bytes) failed: {e}\nrecorder log:\n{}",
                payload.len(),
                self.recorder_log_tail(20)
            )
        })
    }

    /// Sets (`Some`) or removes (`None`) the preshared key of our peer at runtime.
    pub fn set_preshared_key(&self, psk: Option<&str>) -> Result<(), String> {
        let file = match psk {
            Some(psk) => self
                .write_secret("preshared.key", psk)?
                .display()
                .to_string(),
            None => "/dev/null".to_string(),
        };
        let peer = self.peer_public_key.clone();
        self.wg_set(&["peer", &peer, "preshared-key", &file])
    }

    /// Sets our endpoint as seen by wireguard-go.
    pub fn set_endpoint(&self, endpoint: SocketAddr) -> Result<(), String> {
        let peer = self.peer_public_key.clone();
        self.wg_set(&["peer", &peer, "endpoint", &endpoint.to_string()])
    }

    /// Sets the persistent keepalive (0 = off).
    pub fn set_persistent_keepalive(&self, secs: u16) -> Result<(), String> {
        let peer = self.peer_public_key.clone();
        self.wg_set(&["peer", &peer, "persistent-keepalive", &secs.to_string()])
    }

    /// Runs `wg set <if> args...` inside the namespace.
    pub fn wg_set(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["set", self.ifname.as_str()];
        all.extend_from_slice(args);
        self.ns_run("wg", &all)
            .map(|_| ())
            .map_err(|e| self.with_log(e))
    }

    // ---- internals ----

    fn wg_log_path(&self) -> PathBuf {
        self.dir.join("wireguard-go.log")
    }
    fn recorder_log_path(&self) -> PathBuf {
        self.dir.join("recorder.log")
    }
    fn received_path(&self) -> PathBuf {
        self.dir.join("received.log")
    }
    fn ctl_path(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }
    fn ready_path(&self) -> PathBuf {
        self.dir.join("recorder.ready")
    }

    fn with_log(&self, e: String) -> String {
        format!("{e}\nwireguard-go log (tail):\n{}", self.log_tail(30))
    }

    fn ns_run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.netns, prog])
            .args(args))
    }

    fn write_secret(&self, name: &str, value: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("create {}: {e}", tmp.display()))?;
        f.write_all(format!("{}\n", value.trim()).as_bytes())
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
        Ok(path)
    }

    fn check_wg_alive(&mut self) -> Result<(), String> {
        if let Some(child) = self.wg_child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(self.with_log(format!(
                "wireguard-go (`ip netns exec {} wireguard-go -f {}`) exited early: {status}",
                self.netns, self.ifname
            )));
        }
        Ok(())
    }

    fn wait_uapi(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let sock = uapi_sock(&self.ifname);
        let mut last_err = String::from("UAPI socket not created");
        loop {
            self.check_wg_alive()?;
            if sock.exists() {
                match self.ns_run("wg", &["show", &self.ifname]) {
                    Ok(_) => return Ok(()),
                    Err(e) => last_err = e,
                }
            }
            if Instant::now() >= deadline {
                return Err(self.with_log(format!(
                    "timed out after {START_TIMEOUT:?} waiting for wireguard-go's UAPI socket {}: {last_err}",
                    sock.display()
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Waits until wireguard-go's UDP socket is bound (read from `/proc/<wg pid>/net/udp*`, which
    /// shows the sockets of that process's namespace).
    fn wait_listening(&mut self) -> Result<(), String> {
        let pid = self.wg_pid().unwrap_or(0);
        let deadline = Instant::now() + START_TIMEOUT;
        let port_hex = format!(":{WG_LISTEN_PORT:04X}");
        loop {
            self.check_wg_alive()?;
            let v4 = fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
            let listening = v4.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| local.ends_with(&port_hex))
            });
            if listening {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.with_log(format!(
                    "timed out waiting for wireguard-go to listen on UDP {WG_LISTEN_PORT}; /proc/{pid}/net/udp:\n{v4}"
                )));
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn wait_recorder(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.recorder.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "recorder exited early ({status}); log:\n{}",
                    self.recorder_log_tail(30)
                ));
            }
            if self.ready_path().exists() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out waiting for the recorder to bind; log:\n{}",
                    self.recorder_log_tail(30)
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn poll_received(&self) -> MutexGuard<'_, RecvState> {
        let mut st = self.recv.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(mut f) = File::open(self.received_path())
            && f.seek(SeekFrom::Start(st.offset)).is_ok()
        {
            let mut buf = Vec::new();
            if let Ok(n) = f.read_to_end(&mut buf) {
                st.offset += n as u64;
                st.partial.extend_from_slice(&buf);
            }
        }
        while let Some(pos) = st.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = st.partial.drain(..=pos).collect();
            if let Some(item) = parse_record(&line[..line.len() - 1]) {
                st.items.push(item);
            }
        }
        st
    }

    fn cleanup(&mut self) {
        // 1. Recorder (it would otherwise outlive us inside the namespace).
        if let Some(mut c) = self.recorder.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // 2. wireguard-go: SIGTERM so it closes the TUN and removes its UAPI socket, then SIGKILL.
        if let Some(mut c) = self.wg_child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill")
                .args(["-TERM", &pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => sleep(Duration::from_millis(10)),
                }
            }
        }
        // 3. Anything else left in the namespace, veth, namespace.
        if self.netns_created {
            kill_netns_pids(&self.netns);
        }
        if self.veth_created {
            let _ = quiet(Command::new("ip").args(["link", "del", &self.host_veth]));
        }
        if self.netns_created
            && let Err(e) = run(Command::new("ip").args(["netns", "del", &self.netns]))
        {
            eprintln!("wg_go: cleanup: {e}");
        }
        let _ = fs::remove_file(uapi_sock(&self.ifname));
        let _ = fs::remove_dir_all(&self.dir);
        self.netns_created = false;
        self.veth_created = false;
    }
}

impl Drop for WgGoPeer {
    fn drop(&mut self) {
        self.cleanup();
    }
}

// ---------------------------------------------------------------------------------------------
// Recorder script
// ---------------------------------------------------------------------------------------------

/// argv: received_path ctl_path ready_path wg_pid port addr...
const RECORDER_PY: &str = r#"
import os, sys, socket, select, signal, time

out_path, ctl_path, ready_path = sys.argv[1], sys.argv[2], sys.argv[3]
wg_pid, port = int(sys.argv[4]), int(sys.argv[5])
addrs = sys.argv[6:]
ppid0 = os.getppid()

def log(msg):
    sys.stderr.write("recorder: %s\n" % msg)
    sys.stderr.flush()

signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
signal.signal(signal.SIGINT, lambda *a: os._exit(0))

def pid_alive(pid):
    # A zombie counts as gone (the reaper may be slow to collect it).
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 1:].split()[0] not in ("Z", "X")

def watchdog():
    # The test process died without dropping the WgGoPeer: stop wireguard-go and leave.
    if os.getppid() == ppid0:
        return
    log("parent %d gone, terminating wireguard-go %d" % (ppid0, wg_pid))
    if pid_alive(wg_pid):
        try:
            os.kill(wg_pid, signal.SIGTERM)
            for _ in range(200):
                if not pid_alive(wg_pid):
                    break
                time.sleep(0.01)
            if pid_alive(wg_pid):
                os.kill(wg_pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)

socks = {}
for a in addrs:
    fam = socket.AF_INET6 if ":" in a else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    except OSError:
        pass
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((a, port))
    s.setblocking(False)
    socks[a] = s

try:
    os.unlink(ctl_path)
except FileNotFoundError:
    pass
ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ctl.bind(ctl_path)
ctl.setblocking(False)

out = open(out_path, "ab", buffering=0)
with open(ready_path + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready_path + ".tmp", ready_path)
log("ready: pid %d, ppid %d, sockets %s port %d" % (os.getpid(), ppid0, addrs, port))

def drain(s):
    while True:
        try:
            data, src = s.recvfrom(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log("recvfrom error: %s" % e)
            return
        out.write(("%s %d %s\n" % (src[0], src[1], data.hex())).encode())

def handle_ctl():
    while True:
        try:
            msg, addr = ctl.recvfrom(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        try:
            nl = msg.index(b"\n")
            parts = msg[:nl].decode().split()
            payload = msg[nl + 1:]
            if len(parts) != 4 or parts[0] != "send":
                raise ValueError("bad command %r" % msg[:nl])
            src, dst, dport = parts[1], parts[2], int(parts[3])
            s = socks.get(src)
            if s is None:
                raise ValueError("no socket bound to %s (have %s)" % (src, list(socks)))
            dest = (dst, dport, 0, 0) if ":" in dst else (dst, dport)
            n = s.sendto(payload, dest)
            log("sent %d bytes %s:%d -> %s:%d" % (n, src, port, dst, dport))
            reply = b"ok"
        except Exception as e:
            log("send failed: %r" % e)
            reply = ("err %r" % e).encode()
        if addr:
            try:
                ctl.sendto(reply, addr)
            except OSError as e:
                log("reply failed: %s" % e)

readers = list(socks.values()) + [ctl]
while True:
    watchdog()
    try:
        r, _, _ = select.select(readers, [], [], 0.2)
    except InterruptedError:
        continue
    for s in r:
        if s is ctl:
            handle_ctl()
        else:
            drain(s)
"#;

fn parse_record(line: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut it = line.split(' ');
    let ip_s = it.next()?;
    let ip: IpAddr = ip_s.split('%').next()?.parse().ok()?;
    let port: u16 = it.next()?.parse().ok()?;
    let payload = decode_hex(it.next().unwrap_or(""))?;
    Some((SocketAddr::new(ip, port), payload))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_dump(out: &str, peer_pub: &str) -> Result<WgShow, String> {
    let mut lines = out.lines();
    let iface = lines
        .next()
        .ok_or_else(|| format!("empty `wg show dump` output: {out:?}"))?;
    let ifields: Vec<&str> = iface.split('\t').collect();
    let listen_port = ifields.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 || f[0] != peer_pub {
            continue;
        }
        let num = |i: usize| -> Result<u64, String> {
            f[i].parse()
                .map_err(|e| format!("bad field {i} in dump line {line:?}: {e}"))
        };
        return Ok(WgShow {
            latest_handshake: num(4)?,
            rx_bytes: num(5)?,
            tx_bytes: num(6)?,
            endpoint: f[2].parse().ok(),
            has_preshared_key: f[1] != "(none)",
            allowed_ips: if f[3] == "(none)" {
                Vec::new()
            } else {
                f[3].split(',').map(str::to_string).collect()
            },
            persistent_keepalive: f[7].parse().ok(),
            listen_port,
        });
    }
    Err(format!(
        "peer {peer_pub} not in `wg show dump` output:\n{out}"
    ))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command; Ok(stdout) on success, Err naming the command, exit status and stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let desc = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("failed to run `{desc}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{desc}` failed ({}): stderr: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!("stdout: {}", stdout.trim())
            }
        ))
    }
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn uapi_sock(ifname: &str) -> PathBuf {
    Path::new(UAPI_DIR).join(format!("{ifname}.sock"))
}

fn tail_file(path: &Path, lines: usize) -> String {
    let s = match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    };
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn rand_u64() -> u64 {
    static CTR: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(CTR.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip_s, len_s) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let ip: IpAddr = ip_s
        .trim()
        .parse()
        .map_err(|e| format!("bad address {s:?}: {e}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len_s {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .map_err(|e| format!("bad prefix length in {s:?}: {e}"))?,
        None => max,
    };
    if len > max {
        return Err(format!("prefix length too long in {s:?}"));
    }
    Ok((ip, len))
}

fn network_of(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

fn v4_overlap(a: u32, alen: u8, b: u32, blen: u8) -> bool {
    let len = alen.min(blen);
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    a & mask == b & mask
}

/// Picks 10.213.Y.(4k)/30 that overlaps no IPv4 address or non-default route of the root namespace.
fn pick_subnet() -> Result<Ipv4Addr, String> {
    let addrs = run(Command::new("ip").args(["-4", "-o", "addr", "show"]))?;
    let routes = run(Command::new("ip").args(["-4", "route", "show", "table", "all"]))?;
    let mut used: Vec<(u32, u8)> = Vec::new();
    for line in addrs.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = toks.iter().position(|t| *t == "inet")
            && let Some(Ok((IpAddr::V4(ip), len))) = toks.get(i + 1).map(|s| parse_prefix(s))
        {
            used.push((u32::from(ip), len));
        }
    }
    for line in routes.lines() {
        let mut toks = line.split_whitespace();
        let mut first = toks.next().unwrap_or("");
        if matches!(
            first,
            "local" | "broadcast" | "unicast" | "blackhole" | "unreachable" | "prohibit"
        ) {
            first = toks.next().unwrap_or("");
        }
        if first == "default" {
            continue;
        }
        if let Ok((IpAddr::V4(ip), len)) = parse_prefix(first)
            && len > 0
        {
            used.push((u32::from(ip), len));
        }
    }
    for _ in 0..256 {
        let r = rand_u64();
        let y = (r & 0xff) as u8;
        let k = ((r >> 8) & 0x3f) as u8;
        let base = Ipv4Addr::new(10, 213, y, k * 4);
        let b = u32::from(base);
        if !used.iter().any(|&(u, l)| v4_overlap(b, 30, u, l)) {
            return Ok(base);
        }
    }
    Err("no free 10.213.x.y/30 found for the veth".into())
}

/// Whether a process exists and is not a zombie (orphans are reaped late by this machine's pid 1).
fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// Kills (SIGKILL) every process in the namespace and waits briefly for them to go.
fn kill_netns_pids(netns: &str) {
    for _ in 0..50 {
        let pids: Vec<String> = run(Command::new("ip").args(["netns", "pids", netns]))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if pids.is_empty() {
            return;
        }
        let mut cmd = Command::new("kill");
        cmd.arg("-KILL").args(&pids);
        let _ = quiet(&mut cmd);
        sleep(Duration::from_millis(20));
    }
}

/// Pid embedded in one of our names after `prefix` (digits up to the first non-digit).
fn pid_in_name(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let sep = rest[digits.len()..].chars().next()?;
    if !(sep == '-' || sep == 'x') {
        return None;
    }
    digits.parse().ok()
}

/// Best-effort removal of what dead runs (pid gone) left behind: namespaces (and the processes in
/// them), host veths, UAPI sockets and temp directories.
pub fn sweep_stale() {
    let me = std::process::id();
    let stale = |pid: u32| pid != me && !pid_alive(pid);
    if let Ok(list) = run(Command::new("ip").args(["netns", "list"])) {
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(pid) = pid_in_name(name, NS_PREFIX)
                && stale(pid)
            {
                kill_netns_pids(name);
                let _ = quiet(Command::new("ip").args(["netns", "del", name]));
            }
        }
    }
    if let Ok(rd) = fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = pid_in_name(&name, HOST_VETH_PREFIX)
                && stale(pid)
            {
                let _ = quiet(Command::new("ip").args(["link", "del", &name]));
            }
        }
    }
    if let Ok(rd) = fs::read_dir(UAPI_DIR) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = pid_in_name(&name, WG_IF_PREFIX)
                && name.ends_with(".sock")
                && stale(pid)
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    if let Ok(rd) = fs::read_dir(Path::new(TMP_BASE)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = pid_in_name(&name, NS_PREFIX)
                && stale(pid)
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn python_path() -> Result<&'static str, String> {
    static PY: OnceLock<Result<String, String>> = OnceLock::new();
    PY.get_or_init(|| {
        // Resolve the real interpreter once (python3 may be a pyenv shim).
        let out = run(Command::new("python3").args(["-c", "import sys; print(sys.executable)"]))?;
        let p = out.trim().to_string();
        if p.is_empty() {
            Err("python3 did not report sys.executable".into())
        } else {
            Ok(p)
        }
    })
    .as_ref()
    .map(String::as_str)
    .map_err(Clone::clone)
}

/// Checks that this process can run [`WgGoPeer`]; the error names exactly what is missing.
pub fn require_root_and_tools() -> Result<(), String> {
    let mut missing: Vec<String> = Vec::new();
    let euid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| {
            l.split_whitespace()
                .nth(2)
                .and_then(|u| u.parse::<u32>().ok())
        })
    });
    if euid != Some(0) {
        missing.push(format!("root (effective uid is {euid:?})"));
    }
    if let Err(e) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        missing.push(format!("/dev/net/tun ({e})"));
    }
    if let Err(e) = run(Command::new("ip").args(["netns", "list"])) {
        missing.push(format!("`ip netns` (iproute2): {e}"));
    }
    // `--version` is safe; never pass `--help` (it creates an interface named --help).
    if let Err(e) = run(Command::new("wireguard-go").arg("--version")) {
        missing.push(format!("wireguard-go: {e}"));
    }
    if let Err(e) = run(Command::new("wg").arg("--version")) {
        missing.push(format!("wg (wireguard-tools): {e}"));
    }
    if let Err(e) = run(Command::new("kill").arg("-l")) {
        missing.push(format!("kill (procps): {e}"));
    }
    if let Err(e) = python_path() {
        missing.push(format!("python3: {e}"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "wireguard-go interop tests need: {}",
            missing.join("; ")
        ))
    }
}

/// Generates a key pair with `wg genkey | wg pubkey`: (private, public), base64.
pub fn gen_keypair() -> (String, String) {
    let private = run(Command::new("wg").arg("genkey"))
        .unwrap_or_else(|e| panic!("wg genkey: {e}"))
        .trim()
        .to_string();
    let public = public_key_of(&private).unwrap_or_else(|e| panic!("{e}"));
    (private, public)
}

/// `wg pubkey` of a base64 private key.
pub fn public_key_of(private: &str) -> Result<String, String> {
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn `wg pubkey`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{}\n", private.trim()).as_bytes())
            .map_err(|e| format!("write to `wg pubkey`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`wg pubkey`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`wg pubkey` failed ({}): stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// Machine-wide lock
// ---------------------------------------------------------------------------------------------

/// Holds the machine-wide lock file until dropped.
#[derive(Debug)]
pub struct MachineLock {
    path: PathBuf,
    content: String,
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        // Only remove the file if it is still ours.
        if fs::read_to_string(&self.path).ok().as_deref() == Some(self.content.as_str()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Takes the machine-wide lock [`LOCK_PATH`], waiting as long as needed (panics after 20 minutes).
/// Not reentrant: a second call from a thread of the same process waits for the first to drop.
pub fn machine_lock() -> MachineLock {
    machine_lock_at(Path::new(LOCK_PATH), Duration::from_secs(20 * 60))
        .unwrap_or_else(|e| panic!("machine_lock: {e}"))
}

/// Start time (clock ticks since boot, field 22 of /proc/<pid>/stat) of a process.
fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether lock content `pid starttime token` names a live process.
fn lock_holder_alive(content: &str) -> Option<bool> {
    let mut it = content.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    Some(proc_start_time(pid) == Some(start))
}

/// Takes a lock at `path`: the file is created atomically (written to a temp file, then
/// hard-linked into place, which fails if it exists) and holds `pid starttime token`. A lock whose
/// process is gone (or whose pid was reused by another process) is broken.
pub fn machine_lock_at(path: &Path, timeout: Duration) -> Result<MachineLock, String> {
    let pid = std::process::id();
    let start = proc_start_time(pid).unwrap_or(0);
    let content = format!("{pid} {start} {:016x}\n", rand_u64());
    let tmp = PathBuf::from(format!("{}.{pid}.{:x}.tmp", path.display(), rand_u64()));
    fs::write(&tmp, &content).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    let result = loop {
        match fs::hard_link(&tmp, path) {
            Ok(()) => break Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => break Err(format!("link {} -> {}: {e}", tmp.display(), path.display())),
        }
        let holder = fs::read_to_string(path).unwrap_or_default();
        let stale = match lock_holder_alive(&holder) {
            Some(alive) => !alive,
            // Unparsable: stale if old (content is always complete when the link appears).
            None => fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(10)),
        };
        if stale && !holder.is_empty() {
            // Break atomically: move it aside, then check we moved what we judged stale.
            let aside = PathBuf::from(format!("{}.stale.{pid}.{:x}", path.display(), rand_u64()));
            if fs::rename(path, &aside).is_ok() {
                let moved = fs::read_to_string(&aside).unwrap_or_default();
                if moved != holder {
                    // Someone else's fresh lock: put it back unless a new one appeared already.
                    let _ = fs::hard_link(&aside, path);
                } else {
                    eprintln!(
                        "wg_go: broke stale lock {} held by: {}",
                        path.display(),
                        holder.trim()
                    );
                }
                let _ = fs::remove_file(&aside);
            }
            continue;
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "timed out after {timeout:?} waiting for {} (held by: {})",
                path.display(),
                holder.trim()
            ));
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "wg_go: still waiting for {} (held by: {})",
                path.display(),
                holder.trim()
            );
            last_report = Instant::now();
        }
        sleep(Duration::from_millis(50));
    };
    let _ = fs::remove_file(&tmp);
    result.map(|()| MachineLock {
        path: path.to_path_buf(),
        content,
    })
}

#[allow(unused)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<WgGoPeer>();
    check::<MachineLock>();
}
