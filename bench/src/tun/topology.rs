//! Creating and removing the plan's resources: the images (built `FROM scratch` from this build's
//! `pnet-mesh-tun` or the host's wireguard-go, with `ip`, `ping`, `nc` and `iperf3`), the dual-stack
//! network, the two tunnel containers and their configuration. Everything carries the lab's label;
//! [`teardown`] removes exactly that.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh_topology::{Container, ContainerSpec, ImageSpec, Lab};

use super::plan::{self, CAPABILITIES, DEVICES, Implementation, LAB, MTU, PORT};

/// The tools every tunnel image carries, by name (found on the host's PATH).
pub const TOOLS: [&str; 4] = ["ip", "ping", "nc", "iperf3"];

/// A created topology.
#[derive(Debug)]
pub struct Topology {
    /// The lab (named: it outlives this process until [`teardown`]).
    pub lab: Lab,
    /// What runs in the containers.
    pub implementation: Implementation,
    /// The client side.
    pub a: Container,
    /// The server side.
    pub b: Container,
    /// Whether the pnet-mesh-tun bridges got the kernel's offloads (`on`/`off`, from their ready
    /// line); `None` for wireguard-go.
    pub offloads: Option<String>,
}

/// Where a tool is on this machine.
///
/// # Errors
/// The tool and the package that has it.
pub fn host_tool(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let package = match name {
                "ip" => "iproute2",
                "ping" => "iputils-ping",
                "nc" => "netcat-openbsd",
                "wg" => "wireguard-tools",
                other => other,
            };
            format!("`{name}` is not on this machine: install {package} (scripts/test.sh does)")
        })
}

/// The `pnet-mesh-tun` binary of this build: beside this `bench` (or `PNET_MESH_TUN_BIN`).
///
/// # Errors
/// Where it was looked for and how to build it.
pub fn pnet_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PNET_MESH_TUN_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let path = exe
        .parent()
        .map(|d| d.join("pnet-mesh-tun"))
        .unwrap_or_default();
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the pnet-mesh-tun binary is missing at {}: build it beside this bench (cargo build \
             --release -p pnet-mesh-tun), or name it with PNET_MESH_TUN_BIN",
            path.display()
        ))
    }
}

/// The image of one side: its tunnel binary, the tools, and their libraries.
///
/// # Errors
/// A binary that is missing on this machine.
pub fn image_spec(implementation: Implementation) -> Result<ImageSpec, String> {
    let repository = implementation
        .image()
        .rsplit_once(':')
        .map_or(implementation.image(), |(r, _)| r);
    let mut spec = ImageSpec::new(repository);
    spec = match implementation {
        Implementation::PnetMeshTun => spec
            .binary(pnet_binary()?, "/usr/local/bin/pnet-mesh-tun")
            .entrypoint(["/usr/local/bin/pnet-mesh-tun"]),
        Implementation::WireguardGo => spec
            .binary(host_tool("wireguard-go")?, "/usr/bin/wireguard-go")
            .binary(host_tool("wg")?, "/usr/bin/wg")
            .dir("/var/run/wireguard")
            .entrypoint(["/usr/bin/wireguard-go"]),
    };
    for tool in TOOLS {
        spec = spec.binary(host_tool(tool)?, format!("/usr/bin/{tool}"));
    }
    Ok(spec)
}

/// Builds the side's image unless it exists, and tags it with its fixed name.
///
/// # Errors
/// A missing binary or a failed build.
pub fn ensure_image(lab: &Lab, implementation: Implementation) -> Result<String, String> {
    let image = lab
        .ensure_image(&image_spec(implementation)?)
        .map_err(|e| e.to_string())?;
    lab.tag_image(&image, implementation.image())
        .map_err(|e| e.to_string())?;
    Ok(implementation.image().to_owned())
}

/// The host directory mounted read-only at `/config` in both containers.
pub fn config_dir() -> PathBuf {
    std::env::temp_dir().join(LAB)
}

/// Writes both sides' configuration (fresh keys) for `implementation`.
fn write_configs(dir: &Path, implementation: Implementation) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let p = plan::plan();
    let keys = [
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    ];
    for (i, node) in p.nodes.iter().enumerate() {
        let other = &p.nodes[1 - i];
        let mut text = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {PORT}\n",
            keys[i].to_base64()
        );
        if implementation == Implementation::PnetMeshTun {
            text.push_str(&format!(
                "Address = {}, {}\nMTU = {MTU}\n",
                node.tunnel_ipv4, node.tunnel_ipv6
            ));
        }
        text.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nEndpoint = {}:{PORT}\nAllowedIPs = {}/32, {}/128\n",
            keys[1 - i].public_key(),
            other.underlay_ipv4,
            other.tunnel_v4_addr(),
            other.tunnel_v6_addr()
        ));
        let path = dir.join(format!("{}.conf", node.role));
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Creates the whole topology for `implementation` and waits until both tunnels are configured.
/// On failure what was created is removed again.
///
/// # Errors
/// Which step failed, with the container's log where there is one.
pub fn create(
    implementation: Implementation,
    progress: &mut dyn FnMut(&str),
) -> Result<Topology, String> {
    let lab = Lab::connect_named(LAB).map_err(|e| e.to_string())?;
    if lab.resources_left() > 0 {
        return Err(format!(
            "a {LAB} topology already exists ({} labeled resources): remove it with \
             `bench --tun-topology teardown`",
            lab.resources_left()
        ));
    }
    let result = build(&lab, implementation, progress);
    match result {
        Ok((a, b, offloads)) => Ok(Topology {
            lab,
            implementation,
            a,
            b,
            offloads,
        }),
        Err(e) => {
            remove(&lab);
            Err(e)
        }
    }
}

type Built = (Container, Container, Option<String>);

fn build(
    lab: &Lab,
    implementation: Implementation,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, String> {
    progress(&format!("image {}", implementation.image()));
    let image = ensure_image(lab, implementation)?;
    let p = plan::plan();
    let net = lab
        .dual_stack_network(plan::NETWORK, plan::UNDERLAY_V4, plan::UNDERLAY_V6)
        .map_err(|e| e.to_string())?;
    let dir = config_dir();
    write_configs(&dir, implementation)?;
    let mut containers = Vec::new();
    for node in &p.nodes {
        let mut spec = ContainerSpec::new(node.role, &image)
            .network(&net.name, [node.role])
            .addresses(
                &net.name,
                Some(node.underlay_ipv4),
                Some(node.underlay_ipv6),
            )
            .mount_ro(&dir, "/config")
            .env("RUST_LOG", "info")
            // Docker turns IPv6 off for interfaces a container creates; the tunnel carries both.
            .sysctl("net.ipv6.conf.all.disable_ipv6", "0")
            .sysctl("net.ipv6.conf.default.disable_ipv6", "0");
        for cap in CAPABILITIES {
            spec = spec.cap_add(cap);
        }
        for dev in DEVICES {
            spec = spec.device(dev);
        }
        let conf = format!("/config/{}.conf", node.role);
        spec = match implementation {
            Implementation::PnetMeshTun => spec.cmd(["up", conf.as_str(), "--name", "pmtun0"]),
            Implementation::WireguardGo => spec.cmd(["-f", "wg0"]),
        };
        progress(&format!("container {}", node.container));
        containers.push(lab.run(&spec).map_err(|e| e.to_string())?);
    }
    let mut offloads = None;
    for (node, c) in p.nodes.iter().zip(&containers) {
        match implementation {
            Implementation::PnetMeshTun => {
                lab.wait_for_log(c, "ready", Duration::from_secs(20))
                    .map_err(|e| e.to_string())?;
                let log = lab.logs(c).map_err(|e| e.to_string())?;
                offloads = log
                    .lines()
                    .find(|l| l.contains(" ready "))
                    .and_then(|l| l.split("offloads=").nth(1))
                    .map(|v| {
                        v.trim_matches('"')
                            .split('"')
                            .next()
                            .unwrap_or("")
                            .to_owned()
                    });
            }
            Implementation::WireguardGo => configure_wireguard(lab, c, node)?,
        }
    }
    let [a, b]: [Container; 2] = containers
        .try_into()
        .map_err(|_| "two containers expected".to_owned())?;
    Ok((a, b, offloads))
}

/// `wg setconf` and `ip` inside a wireguard-go container once its UAPI socket answers.
fn configure_wireguard(lab: &Lab, c: &Container, node: &plan::Node) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let (code, out) = lab
            .exec(c, ["/usr/bin/wg", "show", "wg0"])
            .map_err(|e| e.to_string())?;
        if code == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let log = lab.logs(c).unwrap_or_default();
            return Err(format!(
                "wireguard-go in {} never answered `wg show wg0`: {out}\n{log}",
                c.name
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let conf = format!("/config/{}.conf", node.role);
    let mtu = MTU.to_string();
    let steps: [Vec<&str>; 4] = [
        vec!["/usr/bin/wg", "setconf", "wg0", &conf],
        vec![
            "/usr/bin/ip",
            "address",
            "add",
            node.tunnel_ipv4,
            "dev",
            "wg0",
        ],
        vec![
            "/usr/bin/ip",
            "-6",
            "address",
            "add",
            node.tunnel_ipv6,
            "dev",
            "wg0",
            "nodad",
        ],
        vec!["/usr/bin/ip", "link", "set", "wg0", "mtu", &mtu, "up"],
    ];
    for argv in steps {
        let (code, out) = lab.exec(c, argv.clone()).map_err(|e| e.to_string())?;
        if code != 0 {
            return Err(format!("`{}` in {} failed: {out}", argv.join(" "), c.name));
        }
    }
    Ok(())
}

fn remove(lab: &Lab) {
    lab.teardown();
    let _ = std::fs::remove_dir_all(config_dir());
}

/// Removes every resource with the lab's label and the configuration directory; returns how many
/// Docker resources there were.
///
/// # Errors
/// No Docker daemon, or resources that would not go.
pub fn teardown() -> Result<usize, String> {
    let lab = Lab::connect_named(LAB).map_err(|e| e.to_string())?;
    let before = lab.resources_left();
    remove(&lab);
    match lab.resources_left() {
        0 => Ok(before),
        left => Err(format!("{left} labeled resources of {LAB} would not go")),
    }
}

impl Topology {
    /// Removes the topology (what [`teardown`] does, for this one).
    pub fn remove(&self) {
        remove(&self.lab);
    }
}
