//! What the TUN interface is given, read from a wg-quick file.

use std::net::IpAddr;

use pnet_mesh::wg_quick::WgQuickConfig;

/// What the TUN interface is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunSettings {
    /// The interface name.
    pub name: String,
    /// Addresses with their prefix lengths (wg-quick `Address`).
    pub addresses: Vec<(IpAddr, u8)>,
    /// The MTU (wg-quick `MTU`, default 1420).
    pub mtu: u16,
    /// Whether to ask the kernel for TUN offloads (virtio-net header, TSO/GSO); on by default,
    /// `--no-offload` turns it off.
    pub offload: bool,
}

impl TunSettings {
    /// The interface settings a wg-quick file asks for, offloads on.
    ///
    /// # Errors
    /// A name that is empty or longer than 15 bytes, or a file without an `Address`.
    pub fn from_wg_quick(config: &WgQuickConfig, name: &str) -> Result<TunSettings, String> {
        if name.is_empty() || name.len() > 15 || name.contains('/') {
            return Err(format!(
                "--name `{name}`: an interface name is 1 to 15 bytes without `/`"
            ));
        }
        let addresses: Vec<(IpAddr, u8)> = config
            .interface
            .addresses
            .iter()
            .map(|a| (a.addr, a.prefix_len))
            .collect();
        if addresses.is_empty() {
            return Err(format!(
                "{}: [Interface] has no Address for the TUN interface",
                config.file
            ));
        }
        Ok(TunSettings {
            name: name.to_owned(),
            addresses,
            mtu: config.interface.mtu.unwrap_or(1420),
            offload: true,
        })
    }
}
