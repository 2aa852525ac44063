//! The end-to-end harness of PNet Mesh: node containers that run the `pnet-mesh` command from a
//! mounted wg-quick file, with `--forward` / `--expose` rules and UDP echo services inside the
//! image, so a test drives traffic from the host through real sockets and reads each node's state
//! from `pnet-mesh show --json`. Images and networks come from [`pnet_mesh_topology`].
//!
//! The node image is built `FROM scratch` from the `pnet-mesh` binary of this build (found beside
//! the test executable, in `$CARGO_TARGET_DIR/<profile>/`), the image's first process `e2e-init`,
//! and their shared libraries; its tag is a hash of that content, so every harness of one build
//! shares one image and builds it once.
//!
//! [`faults`] is the other half: the fault suite's namespace lab, where `pnet-mesh up` processes
//! run behind a router that carries the fault (`tests/faults.rs`).

pub mod faults;
pub mod soak;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh::crypto::{PresharedKey, PrivateKey, PublicKey};
use pnet_mesh_topology::{
    Container, ContainerSpec, ImageRef, ImageSpec, Lab, Network, TopologyError,
};

/// The repository of the node image.
pub const NODE_IMAGE: &str = "localhost/pnet-mesh-node";
/// The line a node prints once its sockets are bound and its configuration is valid.
pub const READY: &str = "ready";
/// How long a node may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The WireGuard port of every node.
pub const WG_PORT: u16 = 51820;

/// A fresh private key.
pub fn private_key() -> PrivateKey {
    PrivateKey::generate(&mut OsRng)
}

/// A fresh preshared key.
pub fn preshared_key() -> PresharedKey {
    let k = private_key();
    PresharedKey::from_bytes(*k.public_key().as_bytes())
}

/// The directory of the build's binaries (`$CARGO_TARGET_DIR/<profile>/`): where this executable
/// is, or its parent for a test executable (in `deps/`).
///
/// # Errors
/// When the executable is not in a cargo target directory.
pub fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("{} is not in a cargo target directory", exe.display()))
    } else {
        Ok(dir.to_path_buf())
    }
}

/// The node image's content: `pnet-mesh` and `e2e-init` with their libraries.
///
/// # Errors
/// When the `pnet-mesh` binary was not built.
pub fn node_image_spec(e2e_init: &Path) -> Result<ImageSpec, String> {
    let node = profile_dir()?.join("pnet-mesh");
    if !node.is_file() {
        return Err(format!(
            "the pnet-mesh binary is missing at {}: build it first (cargo build -p pnet-mesh \
             --features cli with this profile; scripts/test.sh builds the workspace)",
            node.display()
        ));
    }
    Ok(ImageSpec::new(NODE_IMAGE)
        .binary(node, "/usr/local/bin/pnet-mesh")
        .binary(e2e_init, "/usr/local/bin/e2e-init")
        .dir("/config")
        .entrypoint(["/usr/local/bin/e2e-init"]))
}

/// The repository of the wireguard-go peer image.
pub const WIREGUARD_GO_IMAGE: &str = "localhost/pnet-mesh-wireguard-go";

/// A stock wireguard-go peer: Debian's `wireguard-go`, `wg` and `ip` from this machine with their
/// libraries, `sh` and `sleep` for its start script, and `e2e-init` for the echo.
///
/// # Errors
/// When one of the host binaries is missing.
pub fn wireguard_go_image_spec(e2e_init: &Path) -> Result<ImageSpec, String> {
    let mut spec = ImageSpec::new(WIREGUARD_GO_IMAGE);
    for (host, path) in [
        ("/usr/bin/wireguard-go", "/usr/bin/wireguard-go"),
        ("/usr/bin/wg", "/usr/bin/wg"),
        ("/usr/sbin/ip", "/usr/sbin/ip"),
        ("/usr/bin/dash", "/bin/sh"),
        ("/usr/bin/sleep", "/usr/bin/sleep"),
    ] {
        if !Path::new(host).is_file() {
            return Err(format!(
                "{host} is missing: the wireguard-go peer image is built from the host's \
                 wireguard-go, wireguard-tools and iproute2 (scripts/test.sh installs them)"
            ));
        }
        spec = spec.binary(host, path);
    }
    Ok(spec
        .binary(e2e_init, "/usr/local/bin/e2e-init")
        .dir("/config")
        .dir("/var/run/wireguard")
        .entrypoint(["/usr/local/bin/e2e-init"]))
}

/// One run's lab with the node image.
#[derive(Debug)]
pub struct Harness {
    /// The Docker resources of this run.
    pub lab: Lab,
    /// The node image.
    pub node_image: ImageRef,
    configs: PathBuf,
    e2e_init: PathBuf,
}

/// A node container and what the test needs to reach it.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    /// The container.
    pub container: Container,
    /// Its public key.
    pub public_key: PublicKey,
}

/// How to run one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Container name (the run id is prefixed) and DNS alias.
    pub name: String,
    /// Its private key.
    pub key: PrivateKey,
    /// Its mesh address.
    pub address: String,
    /// `[Peer]` sections, verbatim.
    pub peers: Vec<String>,
    /// `--forward` rules.
    pub forwards: Vec<String>,
    /// `--expose` rules.
    pub exposes: Vec<String>,
    /// Echo services inside the container.
    pub echoes: Vec<String>,
    /// Networks with their aliases (the first at create).
    pub networks: Vec<(String, Vec<String>)>,
    /// Lines added to `[Interface]`.
    pub interface_extra: Vec<String>,
    /// More arguments of `pnet-mesh up`.
    pub extra_args: Vec<String>,
    /// Files put beside the configuration (mounted at `/config/NAME`).
    pub files: Vec<(String, Vec<u8>)>,
}

impl NodeSpec {
    /// A node `name` at mesh address `address` on `network` (alias `name`), a fresh key.
    pub fn new(name: &str, address: &str, network: &Network) -> Self {
        NodeSpec {
            name: name.to_owned(),
            key: private_key(),
            address: address.to_owned(),
            peers: Vec::new(),
            forwards: Vec::new(),
            exposes: Vec::new(),
            echoes: Vec::new(),
            networks: vec![(network.name.clone(), vec![name.to_owned()])],
            interface_extra: Vec::new(),
            extra_args: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Adds a peer: its key, optional PSK, endpoint (host:port, a DNS alias) and allowed IPs.
    pub fn peer(
        mut self,
        key: &PublicKey,
        psk: Option<&PresharedKey>,
        endpoint: Option<&str>,
        allowed_ips: &str,
    ) -> Self {
        let mut s = format!("[Peer]\nPublicKey = {key}\nAllowedIPs = {allowed_ips}\n");
        if let Some(psk) = psk {
            s.push_str(&format!("PresharedKey = {}\n", psk.to_base64()));
        }
        if let Some(e) = endpoint {
            s.push_str(&format!("Endpoint = {e}\nPersistentKeepalive = 1\n"));
        }
        self.peers.push(s);
        self
    }

    /// Joins the mesh with `psk` (discovery on; wg-quick `MeshPresharedKey`).
    pub fn mesh_psk(mut self, psk: &PresharedKey) -> Self {
        self.interface_extra
            .push(format!("MeshPresharedKey = {}", psk.to_base64()));
        self
    }

    /// Also attaches the container to `network` with the alias `alias` (a relay between segments).
    pub fn also_on(mut self, network: &Network, alias: &str) -> Self {
        self.networks
            .push((network.name.clone(), vec![alias.to_owned()]));
        self
    }

    /// Forwards host UDP at `0.0.0.0:port` to `mesh_addr:7001` (the echo every test node exposes).
    pub fn forward_to(mut self, port: u16, mesh_addr: &str) -> Self {
        self.forwards
            .push(format!("0.0.0.0:{port}={mesh_addr}:7001"));
        self
    }

    /// Exposes mesh port 7001 to an echo inside the container.
    pub fn with_echo(mut self) -> Self {
        self.exposes.push("7001=127.0.0.1:9000".into());
        self.echoes.push("127.0.0.1:9000".into());
        self
    }

    /// The wg-quick file.
    pub fn config(&self) -> String {
        let mut s = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {WG_PORT}\nAddress = {}/32\n",
            self.key.to_base64(),
            self.address
        );
        for l in &self.interface_extra {
            s.push_str(l);
            s.push('\n');
        }
        for p in &self.peers {
            s.push('\n');
            s.push_str(p);
        }
        s
    }
}

impl Harness {
    /// Connects to Docker and makes sure the node image exists (built once per content).
    ///
    /// # Errors
    /// A message naming what is missing (Docker, the binaries) or what failed.
    pub fn new(e2e_init: &Path) -> Result<Harness, String> {
        let lab = Lab::connect().map_err(|e| e.to_string())?;
        let spec = node_image_spec(e2e_init)?;
        let node_image = lab.ensure_image(&spec).map_err(|e| e.to_string())?;
        let configs = std::env::temp_dir().join(format!("{}-configs", lab.run_id()));
        std::fs::create_dir_all(&configs).map_err(|e| format!("{}: {e}", configs.display()))?;
        Ok(Harness {
            lab,
            node_image,
            configs,
            e2e_init: e2e_init.to_path_buf(),
        })
    }

    /// Starts a stock wireguard-go peer `name` with `key` at tunnel address `address`, whose one peer
    /// is `peer` (allowed `peer_ips`), learning its endpoint from the handshake; an echo answers on
    /// UDP port 7001 of every address. Waits until the interface is up.
    ///
    /// # Errors
    /// As [`Harness::start_node`], with the peer's log.
    pub fn start_wireguard_go(
        &self,
        name: &str,
        key: &PrivateKey,
        address: &str,
        peer: &PublicKey,
        peer_ips: &str,
        network: &Network,
    ) -> Result<Container, TopologyError> {
        let spec = wireguard_go_image_spec(&self.e2e_init).map_err(|e| TopologyError::Io {
            what: "the wireguard-go peer image".into(),
            source: std::io::Error::other(e),
        })?;
        let image = self.lab.ensure_image(&spec)?;
        let dir = self.configs.join(name);
        let write = |file: &str, text: String| {
            let path = dir.join(file);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|source| TopologyError::Io {
                    what: format!("write {}", path.display()),
                    source,
                })
        };
        write("wg.key", format!("{}\n", key.to_base64()))?;
        write(
            "start.sh",
            format!(
                "set -e\n\
                 wireguard-go -f wg0 &\n\
                 i=0\n\
                 while [ ! -S /var/run/wireguard/wg0.sock ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n\
                 wg set wg0 private-key /config/wg.key listen-port {WG_PORT} peer {peer} allowed-ips {peer_ips}\n\
                 ip address add {address}/24 dev wg0\n\
                 ip link set wg0 up\n\
                 echo wireguard-go ready\n\
                 wait\n"
            ),
        )?;
        let c = ContainerSpec::new(name, &image.name)
            .cmd([
                "--echo",
                "0.0.0.0:7001",
                "--",
                "/bin/sh",
                "/config/start.sh",
            ])
            .mount_ro(&dir, "/config")
            .network(&network.name, [name])
            .cap_add("NET_ADMIN")
            .device("/dev/net/tun");
        let container = self.lab.run(&c)?;
        self.lab
            .wait_for_log(&container, "wireguard-go ready", READY_TIMEOUT)?;
        Ok(container)
    }

    /// A network of this run.
    ///
    /// # Errors
    /// As [`Lab::network`].
    pub fn network(&self, name: &str) -> Result<Network, TopologyError> {
        self.lab.network(name)
    }

    /// Starts a node container and waits for its ready line.
    ///
    /// # Errors
    /// [`TopologyError::Exited`] / [`TopologyError::NotReady`] with the node's own log.
    pub fn start_node(&self, spec: &NodeSpec) -> Result<NodeHandle, TopologyError> {
        let container = self.create_node(spec)?;
        self.lab.wait_for_log(&container, READY, READY_TIMEOUT)?;
        Ok(NodeHandle {
            container,
            public_key: spec.key.public_key(),
        })
    }

    /// Starts a node container without waiting.
    ///
    /// # Errors
    /// As [`Lab::run`].
    pub fn create_node(&self, spec: &NodeSpec) -> Result<Container, TopologyError> {
        let dir = self.configs.join(&spec.name);
        std::fs::create_dir_all(&dir).map_err(|source| TopologyError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        let path = dir.join("node.conf");
        std::fs::write(&path, spec.config()).map_err(|source| TopologyError::Io {
            what: format!("write {}", path.display()),
            source,
        })?;
        for (file, data) in &spec.files {
            let p = dir.join(file);
            std::fs::write(&p, data).map_err(|source| TopologyError::Io {
                what: format!("write {}", p.display()),
                source,
            })?;
        }
        // The node refuses a configuration others may read (it holds the private key).
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        let mut argv: Vec<String> = Vec::new();
        for e in &spec.echoes {
            argv.extend(["--echo".into(), e.clone()]);
        }
        argv.extend([
            "--".into(),
            "/usr/local/bin/pnet-mesh".into(),
            "up".into(),
            "/config/node.conf".into(),
        ]);
        for f in &spec.forwards {
            argv.extend(["--forward".into(), f.clone()]);
        }
        for e in &spec.exposes {
            argv.extend(["--expose".into(), e.clone()]);
        }
        argv.extend(spec.extra_args.iter().cloned());
        let mut c = ContainerSpec::new(&spec.name, &self.node_image.name)
            .cmd(argv)
            .mount_ro(&dir, "/config");
        for (net, aliases) in &spec.networks {
            c = c.network(net, aliases.iter().cloned());
        }
        self.lab.run(&c)
    }

    /// `pnet-mesh show --json` inside the node, parsed (the first node's status).
    ///
    /// # Errors
    /// When exec fails or the output is not the status JSON.
    pub fn show(&self, node: &Container) -> Result<serde_json::Value, String> {
        let (code, out) = self
            .lab
            .exec(node, ["/usr/local/bin/pnet-mesh", "show", "--json"])
            .map_err(|e| e.to_string())?;
        if code != 0 {
            return Err(format!(
                "pnet-mesh show in {} exited {code}: {out}",
                node.name
            ));
        }
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("show --json: {e}: {out}"))?;
        v.get(0)
            .cloned()
            .ok_or_else(|| format!("show --json printed no node: {out}"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.configs);
    }
}

/// Host firewall rules (`iptables -I DOCKER-USER … -j DROP`) that cut the path between two
/// container addresses both ways; removed on drop.
#[derive(Debug)]
pub struct Cut {
    rules: Vec<[String; 2]>,
}

impl Cut {
    /// Drops IPv4 traffic between `a` and `b` on the host's Docker bridges.
    ///
    /// # Errors
    /// When `iptables` fails (it needs root; docker.io brings it).
    pub fn between(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr) -> Result<Cut, String> {
        let mut cut = Cut { rules: Vec::new() };
        for (s, d) in [(a, b), (b, a)] {
            let rule = [s.to_string(), d.to_string()];
            iptables("-I", &rule)?;
            cut.rules.push(rule);
        }
        Ok(cut)
    }
}

fn iptables(op: &str, [s, d]: &[String; 2]) -> Result<(), String> {
    let out = std::process::Command::new("iptables")
        .args([op, "DOCKER-USER", "-s", s, "-d", d, "-j", "DROP"])
        .output()
        .map_err(|e| format!("iptables: {e} (needs root and iptables)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {op} DOCKER-USER -s {s} -d {d} -j DROP: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = iptables("-D", rule);
        }
    }
}

/// The entry of `show` (one node's status) for the peer with `key`.
pub fn peer_of<'a>(
    status: &'a serde_json::Value,
    key: &PublicKey,
) -> Option<&'a serde_json::Value> {
    let key = key.to_string();
    status["peers"]
        .as_array()?
        .iter()
        .find(|p| p["public_key"] == key.as_str())
}

/// Sends `payload` from a host socket to `to` until the same bytes come back (or `timeout`).
pub fn udp_roundtrip(to: SocketAddr, payload: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let started = Instant::now();
    let mut buf = vec![0u8; 65_536];
    while started.elapsed() < timeout {
        socket.send_to(payload, to).ok()?;
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && &buf[..n] == payload
        {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// Whether `udp_roundtrip` gets nothing back for the whole `window`.
pub fn udp_silent(to: SocketAddr, payload: &[u8], window: Duration) -> bool {
    udp_roundtrip(to, payload, window).is_none()
}
