//! wg-quick configuration files: the `[Interface]` and `[Peer]` sections an operator already writes
//! for `wg-quick`, read into a node's settings, with errors that name the file, the line and the key.
//!
//! ```text
//! [Interface]
//! PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
//! ListenPort = 51820
//! Address = 10.0.0.1/24, fd00::1/64
//! MTU = 1420
//! MeshPresharedKey = …          # PNet Mesh: the mesh-wide PSK of discovered pairs
//!
//! [Peer]
//! PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
//! PresharedKey = …
//! Endpoint = wg.example.net:51820   # an address, [v6]:port, or a host name resolved at start
//! AllowedIPs = 10.0.0.2/32, fd00::2/128
//! PersistentKeepalive = 25
//! Via = …                       # PNet Mesh: reach this peer through the peer with this public key
//! RelayFor = …, …               # PNet Mesh: static routes: relay frames for these members go here
//! ```
//!
//! As in `wg`, section and key names are case-insensitive, `#` starts a comment, list values are
//! comma-separated and `Address` / `AllowedIPs` may repeat. Keys that only concern a kernel interface
//! (`DNS`, `Table`, `PreUp`, `PostUp`, `PreDown`, `PostDown`, `SaveConfig`, `FwMark`) are accepted and
//! listed in [`WgQuickConfig::ignored`] so the caller can warn about each; any other key is an error.
//! Secrets never appear in an error: only their length does.
//!
//! # Example
//! ```
//! use pnet_mesh::wg_quick::WgQuickConfig;
//!
//! let text = "[Interface]\n\
//!             PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
//!             Address = 10.0.0.1/24\n\
//!             DNS = 10.0.0.53\n\
//!             [Peer]\n\
//!             PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
//!             AllowedIPs = 10.0.0.2/32\n";
//! let config = WgQuickConfig::parse("wg0.conf", text).unwrap();
//! assert_eq!(config.interface.addresses[0].to_string(), "10.0.0.1/24");
//! assert_eq!(config.ignored[0].key, "DNS");
//!
//! let err = WgQuickConfig::parse("wg0.conf", "[Interface]\nListenPort = 99999\n").unwrap_err();
//! assert_eq!(err.to_string(), "wg0.conf:2: ListenPort = \"99999\": not a port number (0-65535)");
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use pnet_mesh_crypto::{PresharedKey, PrivateKey, PublicKey};
use thiserror::Error;

use crate::config::{AllowedIp, ConfigError, PeerConfig, check_peer, check_via, split_prefix};
use crate::proto::constants::{MAX_MTU, MIN_MTU};

/// wg-quick keys that only configure a kernel interface or the host: accepted, warned about, ignored.
pub const IGNORED_KEYS: [&str; 8] = [
    "DNS",
    "Table",
    "PreUp",
    "PostUp",
    "PreDown",
    "PostDown",
    "SaveConfig",
    "FwMark",
];

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WgQuickError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file's path as given.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// One line is wrong. Prints as `wg0.conf:7: ListenPort = "x": not a port number (0-65535)`, or
    /// for a whole section `wg0.conf:4: [Peer]: PublicKey is missing`.
    #[error("{file}:{line}: {}{reason}", show_key_value(key, value))]
    Invalid {
        /// The file's name as given.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The key (as the file spells it) or the section (`[Peer]`).
        key: String,
        /// The value as written; secrets show only their length.
        value: String,
        /// What is wrong and what would be right.
        reason: String,
    },
}

fn show_key_value(key: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{key}: ")
    } else {
        format!("{key} = \"{value}\": ")
    }
}

impl WgQuickError {
    /// The line the error is about (0 when the file could not be read).
    pub fn line(&self) -> usize {
        match self {
            WgQuickError::Read { .. } => 0,
            WgQuickError::Invalid { line, .. } => *line,
        }
    }

    /// The key or section the error is about.
    pub fn key(&self) -> &str {
        match self {
            WgQuickError::Read { .. } => "",
            WgQuickError::Invalid { key, .. } => key,
        }
    }
}

/// One `Address` entry: the interface's own address and its prefix length (host bits kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceAddress {
    /// The address itself.
    pub addr: IpAddr,
    /// The prefix length of the subnet it sits in.
    pub prefix_len: u8,
}

impl FromStr for InterfaceAddress {
    type Err = String;

    /// `10.0.0.1/24`, `fd00::1/64`, or a bare address (a /32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len, max) = split_prefix(s)?;
        let prefix_len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("prefix length `{l}` is not between 0 and {max}"))?,
            None => max,
        };
        if addr.is_unspecified() || addr.is_multicast() {
            return Err(format!("`{addr}` is not a unicast address"));
        }
        Ok(InterfaceAddress { addr, prefix_len })
    }
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The `[Interface]` section.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InterfaceSection {
    /// `PrivateKey` (required).
    pub private_key: PrivateKey,
    /// `ListenPort`; `None` (or 0) lets the system pick one.
    pub listen_port: Option<u16>,
    /// `Address`, every entry in order; the first of each family is the node's mesh address.
    pub addresses: Vec<InterfaceAddress>,
    /// `MTU`, if given.
    pub mtu: Option<u16>,
    /// `MeshPresharedKey`: the PSK every mesh member holds (used by discovered pairs).
    pub mesh_preshared_key: Option<PresharedKey>,
    /// Line of the `[Interface]` header.
    pub line: usize,
}

/// One `[Peer]` section.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerSection {
    /// The peer as the library takes it (a host-name endpoint is resolved when the node starts).
    pub config: PeerConfig,
    /// `RelayFor`: members whose relay frames go to this peer (static routes, ahead of learned
    /// ones; [`NodeBuilder::relay_route`](crate::NodeBuilder::relay_route)).
    pub relay_for: Vec<PublicKey>,
    /// Whether `PresharedKey` was given (`show` prints "(hidden)" for it).
    pub has_preshared_key: bool,
    /// Line of the `[Peer]` header.
    pub line: usize,
    /// Where each key was written, to point errors found later at their line.
    key_lines: Vec<(Field, usize)>,
    /// The line of each `AllowedIPs` entry, in order.
    allowed_ip_lines: Vec<usize>,
}

impl PeerSection {
    fn line_of(&self, key: Field) -> usize {
        self.key_lines
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(self.line, |(_, line)| *line)
    }
}

/// A key that was accepted and ignored, for the caller to warn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredKey {
    /// Its line.
    pub line: usize,
    /// Its canonical spelling (`DNS`, `PostUp`, …).
    pub key: &'static str,
}

/// A parsed and checked wg-quick file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WgQuickConfig {
    /// The name errors and logs use for the file.
    pub file: String,
    /// The `[Interface]` section.
    pub interface: InterfaceSection,
    /// The `[Peer]` sections, in order: the n-th is [`PeerId`](crate::PeerId)`(n)`.
    pub peers: Vec<PeerSection>,
    /// Kernel-interface keys that were accepted and ignored.
    pub ignored: Vec<IgnoredKey>,
}

/// Every key this parser knows, canonical spelling first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    PrivateKey,
    ListenPort,
    Address,
    Mtu,
    MeshPresharedKey,
    PublicKey,
    PresharedKey,
    Endpoint,
    AllowedIps,
    PersistentKeepalive,
    Via,
    RelayFor,
}

impl Field {
    const INTERFACE: [Field; 5] = [
        Field::PrivateKey,
        Field::ListenPort,
        Field::Address,
        Field::Mtu,
        Field::MeshPresharedKey,
    ];
    const PEER: [Field; 7] = [
        Field::PublicKey,
        Field::PresharedKey,
        Field::Endpoint,
        Field::AllowedIps,
        Field::PersistentKeepalive,
        Field::Via,
        Field::RelayFor,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::PrivateKey => "PrivateKey",
            Field::ListenPort => "ListenPort",
            Field::Address => "Address",
            Field::Mtu => "MTU",
            Field::MeshPresharedKey => "MeshPresharedKey",
            Field::PublicKey => "PublicKey",
            Field::PresharedKey => "PresharedKey",
            Field::Endpoint => "Endpoint",
            Field::AllowedIps => "AllowedIPs",
            Field::PersistentKeepalive => "PersistentKeepalive",
            Field::Via => "Via",
            Field::RelayFor => "RelayFor",
        }
    }

    fn is_secret(self) -> bool {
        matches!(
            self,
            Field::PrivateKey | Field::PresharedKey | Field::MeshPresharedKey
        )
    }

    /// Keys that may be given more than once (their lists add up).
    fn repeats(self) -> bool {
        matches!(self, Field::Address | Field::AllowedIps | Field::RelayFor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Interface,
    Peer,
}

/// The parser's working state: the sections read so far, before the final checks.
struct Reader<'a> {
    file: &'a str,
    interface: Option<PartialInterface>,
    peers: Vec<PartialPeer>,
    section: Option<Section>,
    ignored: Vec<IgnoredKey>,
}

#[derive(Default)]
struct PartialInterface {
    line: usize,
    private_key: Option<PrivateKey>,
    listen_port: Option<u16>,
    addresses: Vec<InterfaceAddress>,
    mtu: Option<u16>,
    mesh_preshared_key: Option<PresharedKey>,
    seen: Vec<(Field, usize)>,
}

#[derive(Default)]
struct PartialPeer {
    line: usize,
    public_key: Option<PublicKey>,
    preshared_key: Option<PresharedKey>,
    endpoint: Option<Endpoint>,
    allowed_ips: Vec<AllowedIp>,
    allowed_ip_lines: Vec<usize>,
    persistent_keepalive: Option<u16>,
    via: Option<PublicKey>,
    relay_for: Vec<PublicKey>,
    seen: Vec<(Field, usize)>,
}

#[derive(Debug, Clone)]
enum Endpoint {
    Addr(SocketAddr),
    Name(String),
}

impl WgQuickConfig {
    /// Reads and parses the file at `path`; errors name it as given.
    ///
    /// # Errors
    /// [`WgQuickError::Read`] if it cannot be read, else as [`parse`](Self::parse).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, WgQuickError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WgQuickError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Parses `text`, naming it `file` in errors, and checks the peers as a node would at start
    /// (own key, duplicate keys, overlapping allowed IPs, low-order keys).
    ///
    /// # Errors
    /// [`WgQuickError::Invalid`] for the first bad line: an unknown section or key, a line that is not
    /// `key = value`, a value that does not parse, a key given twice, a missing `PrivateKey` or
    /// `PublicKey`, or a peer the node would refuse.
    pub fn parse(file: &str, text: &str) -> Result<Self, WgQuickError> {
        let mut reader = Reader {
            file,
            interface: None,
            peers: Vec::new(),
            section: None,
            ignored: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            reader.line(i + 1, raw)?;
        }
        reader.finish()
    }

    /// The node's mesh addresses: the first `Address` of each family.
    pub fn mesh_addresses(&self) -> Vec<IpAddr> {
        let first = |v4: bool| {
            self.interface
                .addresses
                .iter()
                .find(|a| a.addr.is_ipv4() == v4)
                .map(|a| a.addr)
        };
        first(true).into_iter().chain(first(false)).collect()
    }

    /// A node builder with this file's key, mesh addresses, MTU and peers; the caller adds where to
    /// listen (`[::]:ListenPort` is what `wg-quick` does) and any runtime settings.
    #[cfg(feature = "runtime")]
    pub fn node_builder(&self) -> crate::NodeBuilder {
        let mut builder = crate::Node::builder(self.interface.private_key.clone());
        for addr in self.mesh_addresses() {
            builder = builder.mesh_address(addr);
        }
        if let Some(mtu) = self.interface.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(psk) = &self.interface.mesh_preshared_key {
            builder = builder.mesh_psk(psk.clone());
        }
        for peer in &self.peers {
            builder = builder.peer(peer.config.clone());
            for member in &peer.relay_for {
                builder = builder.relay_route(*member, *peer.config.public_key());
            }
        }
        builder
    }

    /// Points a [`ConfigError`] about `peers[i].…` (as a node reports it, e.g. when a host name does
    /// not resolve) at the line of this file it came from.
    pub fn locate(&self, error: &ConfigError) -> Option<WgQuickError> {
        let field = error.field();
        let rest = field.strip_prefix("peers[")?;
        let (index, rest) = rest.split_once(']')?;
        let peer = self.peers.get(index.parse::<usize>().ok()?)?;
        let rest = rest.strip_prefix('.')?;
        let (key, line) = if let Some(k) = rest.strip_prefix("allowed_ips[") {
            let k: usize = k.trim_end_matches(']').parse().ok()?;
            let line = peer.allowed_ip_lines.get(k).copied().unwrap_or(peer.line);
            (Field::AllowedIps, line)
        } else {
            let key = match rest {
                "public_key" => Field::PublicKey,
                "endpoint" => Field::Endpoint,
                "preshared_key" => Field::PresharedKey,
                "persistent_keepalive" => Field::PersistentKeepalive,
                "via" => Field::Via,
                _ => return None,
            };
            (key, peer.line_of(key))
        };
        let ConfigError::Invalid { value, reason, .. } = error;
        Some(WgQuickError::Invalid {
            file: self.file.clone(),
            line,
            key: key.name().to_owned(),
            value: value.clone(),
            reason: reason.clone(),
        })
    }
}

impl Reader<'_> {
    fn error(
        &self,
        line: usize,
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> WgQuickError {
        WgQuickError::Invalid {
            file: self.file.to_owned(),
            line,
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    fn line(&mut self, n: usize, raw: &str) -> Result<(), WgQuickError> {
        let text = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if text.is_empty() {
            return Ok(());
        }
        if let Some(name) = text.strip_prefix('[') {
            return self.section_header(n, text, name);
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(self.error(n, text, "", "not a `Key = value` line"));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(section) = self.section else {
            return Err(self.error(n, key, value, "comes before any [Interface] or [Peer]"));
        };
        if let Some(ignored) = IGNORED_KEYS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key) && section == Section::Interface)
        {
            self.ignored.push(IgnoredKey {
                line: n,
                key: ignored,
            });
            return Ok(());
        }
        let known: &[Field] = match section {
            Section::Interface => &Field::INTERFACE,
            Section::Peer => &Field::PEER,
        };
        let Some(&k) = known.iter().find(|k| k.name().eq_ignore_ascii_case(key)) else {
            let section_name = match section {
                Section::Interface => "[Interface]",
                Section::Peer => "[Peer]",
            };
            return Err(self.error(n, key, value, format!("unknown key in {section_name}")));
        };
        let shown = if k.is_secret() {
            format!("<{} characters>", value.len())
        } else {
            value.to_owned()
        };
        let seen = match section {
            Section::Interface => self.interface.as_mut().map(|s| &mut s.seen),
            Section::Peer => self.peers.last_mut().map(|p| &mut p.seen),
        };
        if let Some(seen) = seen {
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == k)
                && !k.repeats()
            {
                let first = *first;
                return Err(self.error(
                    n,
                    key,
                    shown,
                    format!("given twice (first on line {first})"),
                ));
            }
            seen.push((k, n));
        }
        self.value(n, k, value)
            .map_err(|reason| self.error(n, key, shown, reason))
    }

    fn section_header(&mut self, n: usize, text: &str, name: &str) -> Result<(), WgQuickError> {
        let name = name
            .strip_suffix(']')
            .ok_or_else(|| self.error(n, text, "", "section header without `]`"))?
            .trim();
        if name.eq_ignore_ascii_case("Interface") {
            if let Some(first) = &self.interface {
                let first = first.line;
                return Err(self.error(
                    n,
                    "[Interface]",
                    "",
                    format!("given twice (first on line {first})"),
                ));
            }
            self.interface = Some(PartialInterface {
                line: n,
                ..PartialInterface::default()
            });
            self.section = Some(Section::Interface);
        } else if name.eq_ignore_ascii_case("Peer") {
            self.peers.push(PartialPeer {
                line: n,
                ..PartialPeer::default()
            });
            self.section = Some(Section::Peer);
        } else {
            return Err(self.error(
                n,
                format!("[{name}]"),
                "",
                "unknown section (expected [Interface] or [Peer])",
            ));
        }
        Ok(())
    }

    /// Stores one value; the error is the reason only (the caller adds file, line and key).
    fn value(&mut self, n: usize, key: Field, value: &str) -> Result<(), String> {
        let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty());
        if let Some(iface) = self
            .interface
            .as_mut()
            .filter(|_| Field::INTERFACE.contains(&key))
        {
            match key {
                Field::PrivateKey => {
                    iface.private_key = Some(
                        PrivateKey::from_base64(value)
                            .map_err(|_| "not a base64 key of 32 bytes (as `wg genkey` prints)")?,
                    );
                }
                Field::ListenPort => iface.listen_port = Some(parse_port(value)?),
                Field::Address => {
                    for entry in list() {
                        iface.addresses.push(entry.parse()?);
                    }
                }
                Field::Mtu => {
                    iface.mtu = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|m| (MIN_MTU..=MAX_MTU).contains(m))
                            .ok_or(format!("not an MTU between {MIN_MTU} and {MAX_MTU}"))?,
                    );
                }
                Field::MeshPresharedKey => {
                    iface.mesh_preshared_key = Some(parse_psk(value)?);
                }
                _ => {}
            }
            return Ok(());
        }
        let Some(peer) = self.peers.last_mut() else {
            return Ok(());
        };
        match key {
            Field::PublicKey => {
                let key = PublicKey::from_base64(value)
                    .map_err(|_| "not a base64 key of 32 bytes (as `wg pubkey` prints)")?;
                if key.is_low_order() {
                    return Err("is a low-order point; no session could be secure".into());
                }
                peer.public_key = Some(key);
            }
            Field::PresharedKey => peer.preshared_key = Some(parse_psk(value)?),
            Field::Via => {
                peer.via = Some(
                    PublicKey::from_base64(value)
                        .map_err(|_| "not a base64 key of 32 bytes (the relay peer's PublicKey)")?,
                );
            }
            Field::RelayFor => {
                for entry in list() {
                    peer.relay_for
                        .push(PublicKey::from_base64(entry).map_err(|_| {
                            format!(
                                "{entry:?} is not a base64 key of 32 bytes (a member's PublicKey)"
                            )
                        })?);
                }
            }
            Field::Endpoint => peer.endpoint = Some(parse_endpoint(value)?),
            Field::AllowedIps => {
                for entry in list() {
                    peer.allowed_ips.push(entry.parse()?);
                    peer.allowed_ip_lines.push(n);
                }
            }
            Field::PersistentKeepalive => {
                peer.persistent_keepalive = Some(if value.eq_ignore_ascii_case("off") {
                    0
                } else {
                    value
                        .parse()
                        .map_err(|_| "not a number of seconds (0-65535) or `off`")?
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<WgQuickConfig, WgQuickError> {
        let Some(iface) = &self.interface else {
            return Err(self.error(1, "[Interface]", "", "is missing"));
        };
        let private_key = iface
            .private_key
            .clone()
            .ok_or_else(|| self.error(iface.line, "[Interface]", "", "PrivateKey is missing"))?;
        let interface = InterfaceSection {
            private_key,
            listen_port: iface.listen_port,
            addresses: iface.addresses.clone(),
            mtu: iface.mtu,
            mesh_preshared_key: iface.mesh_preshared_key.clone(),
            line: iface.line,
        };
        let mut peers = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            let public_key = p
                .public_key
                .ok_or_else(|| self.error(p.line, "[Peer]", "", "PublicKey is missing"))?;
            let mut config = PeerConfig::new(public_key);
            if let Some(psk) = &p.preshared_key {
                config = config.preshared_key(psk.clone());
            }
            match &p.endpoint {
                Some(Endpoint::Addr(a)) => config = config.endpoint(*a),
                Some(Endpoint::Name(n)) => config = config.endpoint_name(n.clone()),
                None => {}
            }
            for net in &p.allowed_ips {
                config = config.allowed_ip(*net);
            }
            if let Some(k) = p.persistent_keepalive {
                config = config.persistent_keepalive(k);
            }
            if let Some(relay) = p.via {
                config = config.via(relay);
            }
            peers.push(PeerSection {
                config,
                relay_for: p.relay_for.clone(),
                has_preshared_key: p.preshared_key.is_some(),
                line: p.line,
                key_lines: p.seen.clone(),
                allowed_ip_lines: p.allowed_ip_lines.clone(),
            });
        }
        let config = WgQuickConfig {
            file: self.file.to_owned(),
            interface,
            peers,
            ignored: self.ignored,
        };
        let own = config.interface.private_key.public_key();
        for (i, peer) in config.peers.iter().enumerate() {
            let earlier = config.peers[..i].iter().map(|p| &p.config).enumerate();
            let others = config
                .peers
                .iter()
                .map(|p| &p.config)
                .enumerate()
                .filter(|(j, _)| *j != i);
            if let Err(e) = check_peer(i, &peer.config, &own, earlier)
                .and_then(|()| check_via(i, &peer.config, others))
            {
                return Err(config.locate(&e).unwrap_or_else(|| WgQuickError::Invalid {
                    file: config.file.clone(),
                    line: peer.line,
                    key: "[Peer]".into(),
                    value: String::new(),
                    reason: e.to_string(),
                }));
            }
        }
        Ok(config)
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .parse()
        .map_err(|_| "not a port number (0-65535)".to_owned())
}

fn parse_psk(value: &str) -> Result<PresharedKey, String> {
    PresharedKey::from_base64(value)
        .map_err(|_| "not a base64 key of 32 bytes (as `wg genpsk` prints)".to_owned())
}

/// `1.2.3.4:51820`, `[fd00::1]:51820`, or `host.name:51820` (resolved when the node starts).
fn parse_endpoint(value: &str) -> Result<Endpoint, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err("needs a specific address and a non-zero port".into());
        }
        return Ok(Endpoint::Addr(addr));
    }
    let (host, port) = value
        .rsplit_once(':')
        .ok_or("needs host:port (an IPv6 address in brackets)")?;
    let port = parse_port(port)?;
    if port == 0 {
        return Err("needs a non-zero port".into());
    }
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid_name {
        return Err(format!(
            "`{host}` is neither an IP address nor a host name (IPv6 goes in brackets)"
        ));
    }
    Ok(Endpoint::Name(value.to_owned()))
}

#[cfg(test)]
mod tests;
