//! `up`: a node from a wg-quick file, its control socket, and the forwarding loop, until SIGINT or
//! SIGTERM.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::net::UnixStream;
use pnet_mesh::wg_quick::WgQuickConfig;
use pnet_mesh::{Backend, Node, NodeError};

use crate::channels::Channels;
use crate::control::{self, Server};
use crate::forward::{self, Counters, ForwardRule, Forwarder, Limits};
use crate::status::Source;
use crate::{BackendArg, UpArgs};

pub fn run(args: UpArgs) -> Result<(), String> {
    let config = WgQuickConfig::load(&args.config).map_err(|e| e.to_string())?;
    for ignored in &config.ignored {
        tracing::warn!(
            file = %config.file,
            line = ignored.line,
            key = ignored.key,
            "ignored: it only concerns a kernel interface"
        );
    }
    forward::check(&config, &args.forwards, &args.exposes)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{}: cannot name the node; give --name", config.file))?,
    };
    if name.is_empty() || name.contains('/') || name.len() > 64 {
        return Err(format!(
            "--name `{name}`: must be 1 to 64 characters without `/`"
        ));
    }
    if config.interface.mesh_preshared_key.is_some() {
        tracing::info!(
            "MeshPresharedKey is set: discovery is on; it keys pairs learned through discovery and \
             configured peers without a PresharedKey"
        );
    }

    let node = start_node(&config, &args)?;
    let (control_path, private_dir) = match &args.control {
        Some(path) => (path.clone(), false),
        None => (control::socket_path(&control::run_dir(), &name), true),
    };
    let server = Server::bind(&control_path, private_dir)?;
    let pipe_error = |e: std::io::Error| format!("cannot create the signal pipe: {e}");
    let (reader, signal_writer) = std::os::unix::net::UnixStream::pair().map_err(pipe_error)?;
    reader.set_nonblocking(true).map_err(pipe_error)?;
    signal_writer.set_nonblocking(true).map_err(pipe_error)?;
    let mut signals = UnixStream::from_std(reader);
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let writer = signal_writer.try_clone().map_err(pipe_error)?;
        signal_hook::low_level::pipe::register(signal, writer)
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    let counters = Counters::new(args.forwards.len(), args.exposes.len());
    let peer_names = config
        .peers
        .iter()
        .map(|p| p.config.public_key().short())
        .collect();
    let limits = Limits {
        max_flows: args.max_flows,
        idle: Duration::from_secs(args.flow_idle.max(1)),
    };
    let channels = Channels::new(args.channel_echo);
    let mut forwarder = Forwarder::new(
        &node,
        &counters,
        &channels,
        peer_names,
        (&args.forwards, &args.exposes),
        limits,
        &mut signals,
    )?;
    if let Some(path) = &args.events {
        forwarder.log_events_to(crate::events::EventLog::create(path)?);
    }
    let source = Source {
        interface: name.clone(),
        node: &node,
        config: &config,
        // As bound: a listen port 0 shows the port it got.
        forwards: args
            .forwards
            .iter()
            .zip(forwarder.forward_addrs())
            .map(|(rule, listen)| ForwardRule { listen, ..*rule })
            .collect(),
        exposes: args.exposes.clone(),
        counters: &counters,
        channels: &channels,
    };
    tracing::info!(
        interface = %name,
        listen = ?node.local_addrs(),
        mesh_addresses = ?node.mesh_addresses(),
        backend = %node.backend(),
        peers = config.peers.len(),
        forwards = ?forwarder.forward_addrs(),
        exposes = args.exposes.len(),
        control = %server.path().display(),
        "ready"
    );
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| server.serve(&stop, || source.status()));
        for send in &args.channel_sends {
            // Blocking sends and the wait for the echo, beside the forwarding loop.
            let (channels, node) = (&channels, &node);
            std::thread::Builder::new()
                .name("pnet-channel-send".into())
                .spawn_scoped(s, move || channels.send_file(node, send))
                .map_err(|e| format!("cannot start the channel sender: {e}"))?;
        }
        let result = forwarder.run();
        stop.store(true, Ordering::Release);
        server.wake();
        result
    });
    drop(forwarder);
    drop(server);
    node.shutdown();
    tracing::info!(interface = %name, "stopped");
    result
}

/// Starts the node on `0.0.0.0:ListenPort` and `[::]:ListenPort` (both families on one port, as
/// wg-quick listens), or on IPv4 alone where the host has no IPv6. Errors about a peer point at its
/// line in the file.
fn start_node(config: &WgQuickConfig, args: &UpArgs) -> Result<Node, String> {
    let port = config.interface.listen_port.unwrap_or(0);
    let mut builder = config
        .node_builder()
        .listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    if std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).is_ok() {
        builder = builder.listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    } else {
        tracing::warn!("no IPv6 on this host: listening on IPv4 only");
    }
    builder = builder.backend(match args.backend {
        BackendArg::Auto => Backend::Auto,
        BackendArg::IoUring => Backend::IoUring,
        BackendArg::Mmsg => Backend::Mmsg,
    });
    if let Some(n) = args.data_shards {
        builder = builder.data_shards(n);
    }
    if let Some(f) = args.timer_scale {
        if !(f > 0.0 && f <= 1.0) {
            return Err(format!("--timer-scale {f}: must be above 0 and at most 1"));
        }
        tracing::warn!(factor = f, "protocol timers scaled: for tests only");
        builder = builder.protocol_times(pnet_mesh::proto::constants::ProtocolTimes::scaled(f));
    }
    builder.start().map_err(|e| match &e {
        NodeError::Config(c) => config.locate(c).map_or_else(
            || format!("{}: {e}", config.file),
            |located| located.to_string(),
        ),
        _ => format!("{}: cannot start the node: {e}", config.file),
    })
}
