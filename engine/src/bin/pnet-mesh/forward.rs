//! Userspace UDP forwarding both ways between local sockets and the mesh, with no TUN device:
//! `--forward` carries local senders' datagrams into the mesh and their replies back, `--expose`
//! carries the mesh's datagrams to a local service and its replies back. Each direction keeps its
//! flows in a bounded [`FlowTable`]; one thread runs both over a `mio` poll that also watches the
//! node's readiness descriptor and the signal pipe.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::{UdpSocket, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use pnet_mesh::wg_quick::WgQuickConfig;
use pnet_mesh::{Event, Node, NodeError};

use crate::flows::FlowTable;

/// `--forward LISTEN_ADDR:PORT=MESH_ADDR:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardRule {
    /// The local address senders send to.
    pub listen: SocketAddr,
    /// Where in the mesh their datagrams go.
    pub target: SocketAddr,
}

/// `--expose MESH_PORT=TARGET_ADDR:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExposeRule {
    /// The port on our mesh address that is exposed.
    pub mesh_port: u16,
    /// The local service its datagrams go to.
    pub target: SocketAddr,
}

fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}` is not ADDR:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

impl FromStr for ForwardRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (listen, target) = s
            .split_once('=')
            .ok_or("expected LISTEN_ADDR:PORT=MESH_ADDR:PORT")?;
        let listen = resolve(listen)?;
        let target: SocketAddr = target.parse().map_err(|_| {
            format!("`{target}` is not MESH_ADDR:PORT (an IP address; IPv6 in brackets)")
        })?;
        if target.port() == 0 {
            return Err(format!("`{target}`: the mesh port must not be 0"));
        }
        Ok(ForwardRule { listen, target })
    }
}

impl FromStr for ExposeRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, target) = s
            .split_once('=')
            .ok_or("expected MESH_PORT=TARGET_ADDR:PORT")?;
        let mesh_port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{port}` is not a mesh port (1-65535)"))?;
        let target = resolve(target)?;
        if target.port() == 0 || target.ip().is_unspecified() {
            return Err(format!(
                "`{target}`: needs a specific address and a non-zero port"
            ));
        }
        Ok(ExposeRule { mesh_port, target })
    }
}

impl fmt::Display for ForwardRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.listen, self.target)
    }
}

impl fmt::Display for ExposeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.mesh_port, self.target)
    }
}

/// Checks the rules against the configuration before anything starts: a forward's destination must
/// route to a peer (unless discovery is on: a member learned later may hold it) and have a mesh
/// address of its family to come from; exposed ports are distinct and need a mesh address to arrive
/// at.
pub fn check(
    config: &WgQuickConfig,
    forwards: &[ForwardRule],
    exposes: &[ExposeRule],
) -> Result<(), String> {
    let mesh = config.mesh_addresses();
    for rule in forwards {
        let to = rule.target.ip();
        if !mesh.iter().any(|a| a.is_ipv4() == to.is_ipv4()) {
            return Err(format!(
                "--forward {rule}: [Interface] Address has no {} address to send from",
                family(to)
            ));
        }
        if config.interface.mesh_preshared_key.is_none()
            && !config
                .peers
                .iter()
                .any(|p| p.config.allowed_ips().iter().any(|n| n.contains(to)))
        {
            return Err(format!(
                "--forward {rule}: no peer's AllowedIPs contain {to}"
            ));
        }
    }
    for (i, rule) in exposes.iter().enumerate() {
        if mesh.is_empty() {
            return Err(format!("--expose {rule}: [Interface] Address is missing"));
        }
        if exposes[..i].iter().any(|r| r.mesh_port == rule.mesh_port) {
            return Err(format!(
                "--expose {rule}: mesh port {} is exposed twice",
                rule.mesh_port
            ));
        }
    }
    Ok(())
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// What one rule did, read by `show` from another thread.
#[derive(Debug, Default)]
pub struct RuleCounters {
    /// Flows held now.
    pub flows: AtomicUsize,
    /// Datagrams that went into the mesh.
    pub to_mesh: AtomicU64,
    /// Datagrams that came out of the mesh to a local socket.
    pub from_mesh: AtomicU64,
    /// Datagrams dropped (no route, too large, no free port, refused by the local side, a reply
    /// from an unexpected source).
    pub dropped: AtomicU64,
    /// Flows dropped to make room for new ones.
    pub evicted: AtomicU64,
}

/// The counters of every rule, and of mesh datagrams no rule wanted.
#[derive(Debug, Default)]
pub struct Counters {
    /// One per `--forward`, in order.
    pub forwards: Vec<RuleCounters>,
    /// One per `--expose`, in order.
    pub exposes: Vec<RuleCounters>,
    /// Datagrams from the mesh to a port nothing listens on.
    pub unrouted: AtomicU64,
}

impl Counters {
    pub fn new(forwards: usize, exposes: usize) -> Self {
        Counters {
            forwards: (0..forwards).map(|_| RuleCounters::default()).collect(),
            exposes: (0..exposes).map(|_| RuleCounters::default()).collect(),
            unrouted: AtomicU64::new(0),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Mesh-side source ports for forwarded flows, from the dynamic range; ports the node or an
/// `--expose` uses are never handed out.
struct PortPool {
    used: Vec<bool>,
    next: u16,
}

const DYNAMIC_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

impl PortPool {
    fn new(reserved: impl Iterator<Item = u16>) -> Self {
        let mut used = vec![false; 65536];
        for p in reserved {
            if let Some(u) = used.get_mut(usize::from(p)) {
                *u = true;
            }
        }
        PortPool {
            used,
            next: *DYNAMIC_PORTS.start(),
        }
    }

    fn take(&mut self) -> Option<u16> {
        let (lo, hi) = (*DYNAMIC_PORTS.start(), *DYNAMIC_PORTS.end());
        for _ in DYNAMIC_PORTS {
            let port = self.next;
            self.next = if port == hi { lo } else { port + 1 };
            if let Some(used) = self.used.get_mut(usize::from(port))
                && !*used
            {
                *used = true;
                return Some(port);
            }
        }
        None
    }

    fn give(&mut self, port: u16) {
        if let Some(used) = self.used.get_mut(usize::from(port)) {
            *used = false;
        }
    }
}

struct Forward {
    rule: ForwardRule,
    socket: UdpSocket,
    /// Local sender → the mesh-side port its datagrams leave from.
    flows: FlowTable<SocketAddr, u16>,
}

struct Expose {
    rule: ExposeRule,
    /// Mesh sender → the local socket (connected to the target) that carries its flow.
    flows: FlowTable<SocketAddr, (UdpSocket, Token)>,
}

const NODE: Token = Token(0);
const SIGNAL: Token = Token(1);
const FIRST_FORWARD: usize = 2;
/// Tokens of per-flow `--expose` sockets start here (far above any forward's).
const FIRST_EXPOSE_FLOW: usize = 1 << 20;
/// Datagrams one source may move before the others get a turn.
const BUDGET: usize = 256;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Flow limits shared by every rule.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Flows per rule.
    pub max_flows: usize,
    /// Idle time after which a flow is forgotten.
    pub idle: Duration,
}

/// The event loop: the node's deliveries and events, every forward's listening socket and every
/// exposed flow's local socket.
pub struct Forwarder<'a> {
    node: &'a Node,
    counters: &'a Counters,
    channels: &'a crate::channels::Channels,
    peer_names: Vec<String>,
    poll: Poll,
    forwards: Vec<Forward>,
    exposes: Vec<Expose>,
    /// Mesh-side port of a forwarded flow → (forward, local sender).
    mesh_ports: HashMap<u16, (usize, SocketAddr)>,
    /// Token of an exposed flow's socket → (expose, mesh sender).
    expose_flows: HashMap<Token, (usize, SocketAddr)>,
    ports: PortPool,
    next_token: usize,
    buf: Vec<u8>,
    events: Option<crate::events::EventLog>,
}

impl<'a> Forwarder<'a> {
    /// Also writes every event to `log` (`--events`).
    pub fn log_events_to(&mut self, log: crate::events::EventLog) {
        self.events = Some(log);
    }

    /// Binds every `--forward` socket and registers the node's readiness descriptor and `signals`.
    pub fn new(
        node: &'a Node,
        counters: &'a Counters,
        channels: &'a crate::channels::Channels,
        peer_names: Vec<String>,
        rules: (&[ForwardRule], &[ExposeRule]),
        limits: Limits,
        signals: &mut UnixStream,
    ) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create the event poll: {e}"))?;
        let registry = poll.registry();
        let node_fd = node.readiness().as_raw_fd();
        registry
            .register(&mut SourceFd(&node_fd), NODE, Interest::READABLE)
            .map_err(|e| format!("cannot watch the node: {e}"))?;
        registry
            .register(signals, SIGNAL, Interest::READABLE)
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        let (forward_rules, expose_rules) = rules;
        let mut forwards = Vec::with_capacity(forward_rules.len());
        for (i, rule) in forward_rules.iter().enumerate() {
            let mut socket = UdpSocket::bind(rule.listen)
                .map_err(|e| format!("--forward {rule}: cannot bind {}: {e}", rule.listen))?;
            registry
                .register(&mut socket, Token(FIRST_FORWARD + i), Interest::READABLE)
                .map_err(|e| format!("--forward {rule}: {e}"))?;
            forwards.push(Forward {
                rule: *rule,
                socket,
                flows: FlowTable::new(limits.max_flows, limits.idle),
            });
        }
        let exposes = expose_rules
            .iter()
            .map(|rule| Expose {
                rule: *rule,
                flows: FlowTable::new(limits.max_flows, limits.idle),
            })
            .collect();
        let reserved = expose_rules
            .iter()
            .map(|r| r.mesh_port)
            .chain([node.datagram_port()]);
        Ok(Forwarder {
            node,
            counters,
            channels,
            peer_names,
            poll,
            forwards,
            exposes,
            mesh_ports: HashMap::new(),
            expose_flows: HashMap::new(),
            ports: PortPool::new(reserved),
            next_token: FIRST_EXPOSE_FLOW,
            buf: vec![0; 65536],
            events: None,
        })
    }

    /// The local addresses the `--forward` sockets are bound to, in order.
    pub fn forward_addrs(&self) -> Vec<SocketAddr> {
        self.forwards
            .iter()
            .map(|f| f.socket.local_addr().unwrap_or(f.rule.listen))
            .collect()
    }

    /// Runs until a byte arrives on the signal pipe.
    pub fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(256);
        // Sources that still had data when their budget ran out, served again before sleeping.
        let mut ready: Vec<Token> = vec![NODE];
        let mut again: Vec<Token> = Vec::new();
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let timeout = if ready.is_empty() {
                next_sweep.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("event poll failed: {e}")),
            }
            for event in events.iter() {
                if event.token() == SIGNAL {
                    return Ok(());
                }
                if !ready.contains(&event.token()) {
                    ready.push(event.token());
                }
            }
            again.clear();
            for token in ready.drain(..) {
                if !self.serve(token) {
                    again.push(token);
                }
            }
            std::mem::swap(&mut ready, &mut again);
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_EVERY;
            }
        }
    }

    /// Moves up to [`BUDGET`] datagrams from one source; true when it ran dry.
    fn serve(&mut self, token: Token) -> bool {
        match token {
            NODE => self.pump_node(),
            Token(i) if (FIRST_FORWARD..FIRST_FORWARD + self.forwards.len()).contains(&i) => {
                self.pump_forward(i - FIRST_FORWARD)
            }
            token => self.pump_exposed_flow(token),
        }
    }

    fn pump_node(&mut self) -> bool {
        // Cleared before draining, so whatever arrives meanwhile makes the descriptor readable again.
        self.node.clear_readiness();
        while let Some(e) = self.node.poll_event() {
            if let Event::ChannelOpened { channel } = e.event {
                self.channels.opened(self.node, channel);
            }
            if let Some(log) = &mut self.events {
                let names = &self.peer_names;
                log.write(e.at, &e.event, |p| {
                    names
                        .get(p.0 as usize)
                        .cloned()
                        .unwrap_or_else(|| p.to_string())
                });
            }
            self.log_event(e.event);
        }
        self.channels.pump(self.node);
        let mut buf = std::mem::take(&mut self.buf);
        let mut drained = false;
        for _ in 0..BUDGET {
            match self.node.try_recv_udp(&mut buf) {
                Ok(r) => {
                    let payload = buf.get(..r.len).unwrap_or_default();
                    self.deliver_from_mesh(r.from, r.to_port, payload);
                }
                Err(NodeError::WouldBlock) => {
                    drained = true;
                    break;
                }
                // Larger than any UDP payload: cannot happen with a 64 KiB buffer; count it anyway.
                Err(_) => bump(&self.counters.unrouted),
            }
        }
        self.buf = buf;
        drained
    }

    fn deliver_from_mesh(&mut self, from: SocketAddr, to_port: u16, payload: &[u8]) {
        if let Some(i) = self
            .exposes
            .iter()
            .position(|e| e.rule.mesh_port == to_port)
        {
            self.expose_in(i, from, payload);
        } else if let Some(&(i, sender)) = self.mesh_ports.get(&to_port) {
            let Some(f) = self.forwards.get_mut(i) else {
                return;
            };
            let Some(c) = self.counters.forwards.get(i) else {
                return;
            };
            // Like a NAT with address-dependent filtering: only the destination may answer.
            if from != f.rule.target {
                bump(&c.dropped);
                return;
            }
            f.flows.touch(&sender, Instant::now());
            match f.socket.send_to(payload, sender) {
                Ok(_) => bump(&c.from_mesh),
                Err(_) => bump(&c.dropped),
            }
        } else {
            bump(&self.counters.unrouted);
        }
    }

    /// A datagram for an exposed port: to the local service through the mesh sender's own socket.
    fn expose_in(&mut self, i: usize, from: SocketAddr, payload: &[u8]) {
        let now = Instant::now();
        let (Some(e), Some(c)) = (self.exposes.get_mut(i), self.counters.exposes.get(i)) else {
            return;
        };
        if e.flows.touch(&from, now).is_none() {
            let target = e.rule.target;
            let token = Token(self.next_token);
            let socket = open_flow_socket(target).and_then(|mut s| {
                self.poll
                    .registry()
                    .register(&mut s, token, Interest::READABLE)
                    .map(|()| s)
            });
            let socket = match socket {
                Ok(s) => s,
                Err(err) => {
                    tracing::warn!(rule = %e.rule, %target, %err, "cannot open a socket for a new flow");
                    bump(&c.dropped);
                    return;
                }
            };
            self.next_token += 1;
            if let Some((_, (mut old, old_token))) = e.flows.insert(from, (socket, token), now) {
                let _ = self.poll.registry().deregister(&mut old);
                self.expose_flows.remove(&old_token);
                bump(&c.evicted);
            }
            self.expose_flows.insert(token, (i, from));
            c.flows.store(e.flows.len(), Ordering::Relaxed);
        }
        let sent = e.flows.get(&from).map(|(s, _)| s.send(payload));
        match sent {
            Some(Ok(_)) => bump(&c.from_mesh),
            _ => bump(&c.dropped),
        }
    }

    /// Replies of the local service to one exposed flow, back through the mesh.
    fn pump_exposed_flow(&mut self, token: Token) -> bool {
        let Some(&(i, mesh_sender)) = self.expose_flows.get(&token) else {
            return true;
        };
        let (Some(e), Some(c)) = (self.exposes.get_mut(i), self.counters.exposes.get(i)) else {
            return true;
        };
        let mut buf = std::mem::take(&mut self.buf);
        let mut drained = false;
        for _ in 0..BUDGET {
            let Some((socket, _)) = e.flows.touch(&mesh_sender, Instant::now()) else {
                drained = true;
                break;
            };
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let payload = buf.get(..n).unwrap_or_default();
                    count_send(
                        c,
                        self.node.send_udp(e.rule.mesh_port, mesh_sender, payload),
                    );
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                // An ICMP error for an earlier datagram (the service is not listening): that one
                // was lost; keep reading.
                Err(_) => bump(&c.dropped),
            }
        }
        self.buf = buf;
        drained
    }

    /// Datagrams from local senders into the mesh, each sender with its own mesh-side port.
    fn pump_forward(&mut self, i: usize) -> bool {
        let (Some(f), Some(c)) = (self.forwards.get_mut(i), self.counters.forwards.get(i)) else {
            return true;
        };
        let mut buf = std::mem::take(&mut self.buf);
        let mut drained = false;
        for _ in 0..BUDGET {
            let (n, sender) = match f.socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(_) => {
                    bump(&c.dropped);
                    continue;
                }
            };
            let now = Instant::now();
            let port = match f.flows.touch(&sender, now) {
                Some(port) => *port,
                None => {
                    let Some(port) = self.ports.take() else {
                        bump(&c.dropped);
                        continue;
                    };
                    if let Some((_, old)) = f.flows.insert(sender, port, now) {
                        self.ports.give(old);
                        self.mesh_ports.remove(&old);
                        bump(&c.evicted);
                    }
                    self.mesh_ports.insert(port, (i, sender));
                    c.flows.store(f.flows.len(), Ordering::Relaxed);
                    port
                }
            };
            let payload = buf.get(..n).unwrap_or_default();
            count_send(c, self.node.send_udp(port, f.rule.target, payload));
        }
        self.buf = buf;
        drained
    }

    /// Forgets idle flows and releases what they held.
    fn sweep(&mut self, now: Instant) {
        let Forwarder {
            forwards,
            exposes,
            mesh_ports,
            expose_flows,
            ports,
            poll,
            counters,
            ..
        } = self;
        for (f, c) in forwards.iter_mut().zip(&counters.forwards) {
            f.flows.expire(now, |_, port| {
                ports.give(port);
                mesh_ports.remove(&port);
            });
            c.flows.store(f.flows.len(), Ordering::Relaxed);
        }
        for (e, c) in exposes.iter_mut().zip(&counters.exposes) {
            e.flows.expire(now, |_, (mut socket, token)| {
                let _ = poll.registry().deregister(&mut socket);
                expose_flows.remove(&token);
            });
            c.flows.store(e.flows.len(), Ordering::Relaxed);
        }
    }

    fn log_event(&self, event: Event) {
        let name = |p: pnet_mesh::PeerId| {
            self.peer_names
                .get(p.0 as usize)
                .cloned()
                .unwrap_or_else(|| p.to_string())
        };
        match event {
            Event::PeerUp { peer } => tracing::info!(peer = %name(peer), "peer up"),
            Event::PeerDown { peer } => tracing::info!(peer = %name(peer), "peer down"),
            Event::HandshakeFailed { peer } => {
                tracing::info!(peer = %name(peer), "handshake gave up; packets for the peer dropped")
            }
            Event::HandshakeCompleted { peer, role } => {
                tracing::debug!(peer = %name(peer), ?role, "handshake completed")
            }
            Event::KeypairRotated { peer } => tracing::debug!(peer = %name(peer), "rekeyed"),
            Event::EndpointChanged { peer, old, new } => {
                tracing::debug!(peer = %name(peer), ?old, %new, "endpoint changed")
            }
            other => tracing::debug!(?other, "event"),
        }
    }
}

fn count_send(c: &RuleCounters, result: Result<(), NodeError>) {
    match result {
        Ok(()) => bump(&c.to_mesh),
        Err(_) => bump(&c.dropped),
    }
}

/// A non-blocking UDP socket of `target`'s family on an ephemeral port, connected to `target` so
/// that only its replies arrive.
fn open_flow_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
    socket.connect(target)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_back() {
        let f: ForwardRule = "127.0.0.1:7000=10.0.0.2:53".parse().unwrap();
        assert_eq!(f.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(f.target, "10.0.0.2:53".parse().unwrap());
        assert_eq!(f.to_string(), "127.0.0.1:7000=10.0.0.2:53");
        let f: ForwardRule = "[::1]:7000=[fd00::2]:53".parse().unwrap();
        assert_eq!(f.to_string(), "[::1]:7000=[fd00::2]:53");
        let e: ExposeRule = "8080=127.0.0.1:80".parse().unwrap();
        assert_eq!(
            (e.mesh_port, e.target),
            (8080, "127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(e.to_string(), "8080=127.0.0.1:80");
        let e: ExposeRule = "53=localhost:5353".parse().unwrap();
        assert!(e.target.ip().is_loopback());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let bad_forward = [
            ("127.0.0.1:7000", "expected LISTEN_ADDR:PORT=MESH_ADDR:PORT"),
            ("127.0.0.1:7000=peer.example:53", "is not MESH_ADDR:PORT"),
            ("127.0.0.1:7000=10.0.0.2:0", "the mesh port must not be 0"),
            ("nonsense=10.0.0.2:53", "`nonsense` is not ADDR:PORT"),
        ];
        for (text, want) in bad_forward {
            let err = text.parse::<ForwardRule>().unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let bad_expose = [
            ("8080", "expected MESH_PORT=TARGET_ADDR:PORT"),
            ("0=127.0.0.1:80", "`0` is not a mesh port"),
            ("http=127.0.0.1:80", "`http` is not a mesh port"),
            ("80=0.0.0.0:80", "needs a specific address"),
        ];
        for (text, want) in bad_expose {
            let err = text.parse::<ExposeRule>().unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn rules_are_checked_against_the_configuration() {
        let config = WgQuickConfig::parse(
            "t.conf",
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             Address = 10.0.0.1/24\n\
             [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.0.0.2/32\n",
        )
        .unwrap();
        let fwd = |s: &str| s.parse::<ForwardRule>().unwrap();
        let exp = |s: &str| s.parse::<ExposeRule>().unwrap();
        assert!(
            check(
                &config,
                &[fwd("127.0.0.1:1=10.0.0.2:53")],
                &[exp("53=127.0.0.1:53")]
            )
            .is_ok()
        );
        let err = check(&config, &[fwd("127.0.0.1:1=10.0.0.3:53")], &[]).unwrap_err();
        assert_eq!(
            err,
            "--forward 127.0.0.1:1=10.0.0.3:53: no peer's AllowedIPs contain 10.0.0.3"
        );
        let meshed = WgQuickConfig::parse(
            "t.conf",
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             Address = 10.0.0.1/24\nMeshPresharedKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n",
        )
        .unwrap();
        assert!(
            check(&meshed, &[fwd("127.0.0.1:1=10.0.0.3:53")], &[]).is_ok(),
            "with discovery a member learned later may hold the destination"
        );
        let err = check(&config, &[fwd("127.0.0.1:1=[fd00::2]:53")], &[]).unwrap_err();
        assert!(err.contains("has no IPv6 address to send from"), "{err}");
        let err = check(
            &config,
            &[],
            &[exp("53=127.0.0.1:53"), exp("53=127.0.0.1:54")],
        )
        .unwrap_err();
        assert!(err.contains("mesh port 53 is exposed twice"), "{err}");
    }

    #[test]
    fn port_pool_skips_reserved_ports_and_reuses_returned_ones() {
        let mut pool = PortPool::new([49152, 49154].into_iter());
        assert_eq!(pool.take(), Some(49153));
        assert_eq!(pool.take(), Some(49155));
        pool.give(49153);
        // Next-fit: freed ports come back only after the cursor wraps.
        let mut taken = 2;
        while let Some(p) = pool.take() {
            taken += 1;
            if p == 49153 {
                break;
            }
        }
        assert_eq!(
            taken,
            16384 - 2 + 1,
            "every dynamic port but the reserved two, then the freed one"
        );
        assert_eq!(pool.take(), None);
    }
}
