//! The fixed topology: one dual-stack Docker network, two tunnel containers on it, the tunnel's own
//! addresses inside, every resource labeled with the lab name so only ours are ever touched.

use serde::Serialize;

/// The lab name: the value of the run label on every resource, and the prefix of every name.
pub const LAB: &str = "pnet-tun-bench";
/// The underlay network (created as `pnet-tun-bench-underlay`).
pub const NETWORK: &str = "underlay";
/// The underlay's IPv4 subnet (outside the pool other labs draw from).
pub const UNDERLAY_V4: &str = "10.219.0.0/24";
/// The underlay's IPv6 subnet (a ULA; not fd00::/64, which the host uses).
pub const UNDERLAY_V6: &str = "fd19:7e:0:219::/64";
/// The tunnel interface's MTU on both sides.
pub const MTU: u16 = 1420;
/// The UDP port each tunnel listens on.
pub const PORT: u16 = 51820;
/// iperf3 UDP bitrate.
pub const UDP_BITRATE: &str = "500M";
/// iperf3 UDP datagram (payload) length: 1372 + 8 + 20 = 1400 bytes, inside the 1420 MTU.
pub const UDP_LENGTH: usize = 1372;
/// Seconds between pings.
pub const PING_INTERVAL_S: f64 = 0.2;
/// The image of the pnet-mesh-tun side.
pub const PNET_IMAGE: &str = "localhost/pnet-mesh-tun:dev";
/// The image of the wireguard-go side.
pub const WIREGUARD_IMAGE: &str = "localhost/pnet-mesh-tun-wireguard-go:dev";
/// Capabilities each tunnel container gets (everything else is dropped).
pub const CAPABILITIES: [&str; 2] = ["NET_ADMIN", "NET_RAW"];
/// Devices each tunnel container gets.
pub const DEVICES: [&str; 1] = ["/dev/net/tun"];

/// Which tunnel runs in the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Implementation {
    /// Two `pnet-mesh-tun up` bridges.
    PnetMeshTun,
    /// Two stock wireguard-go interfaces configured with `wg` and `ip`.
    WireguardGo,
}

impl Implementation {
    /// The name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::PnetMeshTun => "pnet-mesh-tun",
            Implementation::WireguardGo => "wireguard-go",
        }
    }

    /// Parses a command-line name.
    ///
    /// # Errors
    /// The name, and the ones accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "pnet-mesh-tun" => Ok(Implementation::PnetMeshTun),
            "wireguard-go" => Ok(Implementation::WireguardGo),
            _ => Err(format!(
                "`{s}`: unknown implementation (pnet-mesh-tun, wireguard-go)"
            )),
        }
    }

    /// Its image.
    pub fn image(self) -> &'static str {
        match self {
            Implementation::PnetMeshTun => PNET_IMAGE,
            Implementation::WireguardGo => WIREGUARD_IMAGE,
        }
    }

    /// The tunnel interface's name inside the containers.
    pub fn interface(self) -> &'static str {
        match self {
            Implementation::PnetMeshTun => "pmtun0",
            Implementation::WireguardGo => "wg0",
        }
    }
}

/// One tunnel container of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// `a` (the iperf3 client and pinger) or `b` (the server).
    pub role: &'static str,
    /// Its container name.
    pub container: String,
    /// Its underlay IPv4 address.
    pub underlay_ipv4: &'static str,
    /// Its underlay IPv6 address.
    pub underlay_ipv6: &'static str,
    /// Its tunnel IPv4 address with the prefix length.
    pub tunnel_ipv4: &'static str,
    /// Its tunnel IPv6 address with the prefix length.
    pub tunnel_ipv6: &'static str,
}

impl Node {
    /// The tunnel IPv4 address without the prefix length.
    pub fn tunnel_v4_addr(&self) -> &'static str {
        self.tunnel_ipv4
            .split('/')
            .next()
            .unwrap_or(self.tunnel_ipv4)
    }

    /// The tunnel IPv6 address without the prefix length.
    pub fn tunnel_v6_addr(&self) -> &'static str {
        self.tunnel_ipv6
            .split('/')
            .next()
            .unwrap_or(self.tunnel_ipv6)
    }
}

/// The whole topology, as `--tun-topology plan` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Schema name of this document.
    pub schema: &'static str,
    /// The label every resource carries (`key=value`).
    pub label: String,
    /// The network.
    pub network: NetworkPlan,
    /// The two tunnel containers.
    pub nodes: [Node; 2],
    /// Capabilities granted to each container (all others dropped; no privileged mode).
    pub capabilities: [&'static str; 2],
    /// Devices passed to each container.
    pub devices: [&'static str; 1],
    /// The tunnel: MTU, port, and which underlay family carries it.
    pub tunnel: TunnelPlan,
    /// Images by implementation.
    pub images: Images,
}

/// The network of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPlan {
    /// Its name.
    pub name: String,
    /// Docker driver.
    pub driver: &'static str,
    /// IPv4 subnet.
    pub ipv4_subnet: &'static str,
    /// IPv6 subnet.
    pub ipv6_subnet: &'static str,
}

/// The tunnel settings of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelPlan {
    /// Interface MTU.
    pub mtu: u16,
    /// Listen port.
    pub port: u16,
    /// The underlay family the tunnel's UDP travels over.
    pub underlay_family: &'static str,
}

/// The images of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Images {
    /// The pnet-mesh-tun side.
    #[serde(rename = "pnet-mesh-tun")]
    pub pnet_mesh_tun: &'static str,
    /// The wireguard-go side.
    #[serde(rename = "wireguard-go")]
    pub wireguard_go: &'static str,
}

/// The fixed plan.
pub fn plan() -> Plan {
    Plan {
        schema: "pnet-mesh.tun-topology.v1",
        label: format!("{}={LAB}", pnet_mesh_topology::RUN_LABEL),
        network: NetworkPlan {
            name: format!("{LAB}-{NETWORK}"),
            driver: "bridge",
            ipv4_subnet: UNDERLAY_V4,
            ipv6_subnet: UNDERLAY_V6,
        },
        nodes: [
            Node {
                role: "a",
                container: format!("{LAB}-a"),
                underlay_ipv4: "10.219.0.11",
                underlay_ipv6: "fd19:7e:0:219::11",
                tunnel_ipv4: "10.220.0.1/24",
                tunnel_ipv6: "fd19:7e:0:220::1/64",
            },
            Node {
                role: "b",
                container: format!("{LAB}-b"),
                underlay_ipv4: "10.219.0.12",
                underlay_ipv6: "fd19:7e:0:219::12",
                tunnel_ipv4: "10.220.0.2/24",
                tunnel_ipv6: "fd19:7e:0:220::2/64",
            },
        ],
        capabilities: CAPABILITIES,
        devices: DEVICES,
        tunnel: TunnelPlan {
            mtu: MTU,
            port: PORT,
            underlay_family: "ipv4",
        },
        images: Images {
            pnet_mesh_tun: PNET_IMAGE,
            wireguard_go: WIREGUARD_IMAGE,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_dual_stack_labeled_and_its_addresses_sit_in_their_subnets() {
        let p = plan();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["label"], "pnet-mesh.run=pnet-tun-bench");
        assert_eq!(json["network"]["ipv6_subnet"], UNDERLAY_V6);
        for n in &p.nodes {
            assert!(n.container.starts_with(LAB));
            assert!(n.underlay_ipv4.starts_with("10.219.0."));
            assert!(n.underlay_ipv6.starts_with("fd19:7e:0:219::"));
            assert!(n.tunnel_ipv4.ends_with("/24") && n.tunnel_ipv6.ends_with("/64"));
        }
        assert_ne!(p.nodes[0].tunnel_v4_addr(), p.nodes[1].tunnel_v4_addr());
        assert_eq!(p.nodes[1].tunnel_v6_addr(), "fd19:7e:0:220::2");
        assert_eq!(
            Implementation::parse("wireguard-go"),
            Ok(Implementation::WireguardGo)
        );
        assert!(
            Implementation::parse("boringtun")
                .unwrap_err()
                .contains("boringtun")
        );
    }
}
