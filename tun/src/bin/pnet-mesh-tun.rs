//! `pnet-mesh-tun up CONFIG [--name IFNAME]`: a node from a wg-quick file, exposed as a TUN interface
//! with the file's `Address`es and `MTU`, until SIGINT or SIGTERM. Needs /dev/net/tun and
//! CAP_NET_ADMIN.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use pnet_mesh::wg_quick::WgQuickConfig;
use pnet_mesh_tun::{Bridge, TunSettings, open_tun};

#[derive(Debug, Parser)]
#[command(
    name = "pnet-mesh-tun",
    version,
    about = "A PNet Mesh node behind a TUN interface"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a node from a wg-quick file behind a TUN interface until SIGINT or SIGTERM.
    Up {
        /// The wg-quick style configuration file (`Address` and `MTU` configure the interface).
        config: PathBuf,
        /// The interface name (default: the file's name without `.conf`).
        #[arg(long)]
        name: Option<String>,
        /// Do not ask the kernel for TUN offloads (virtio-net header, TSO/GSO); one packet per read.
        #[arg(long)]
        no_offload: bool,
    },
}

fn up(config_path: PathBuf, name: Option<String>, no_offload: bool) -> Result<(), String> {
    let config = WgQuickConfig::load(&config_path).map_err(|e| e.to_string())?;
    let name = name
        .or_else(|| {
            config_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pmtun0".into());
    let mut settings = TunSettings::from_wg_quick(&config, &name)?;
    settings.offload = !no_offload;
    let node = config
        .node_builder()
        .listen(std::net::SocketAddr::from((
            [0, 0, 0, 0],
            config.interface.listen_port.unwrap_or(0),
        )))
        .start()
        .map_err(|e| match &e {
            pnet_mesh::NodeError::Config(c) => config
                .locate(c)
                .map_or_else(|| e.to_string(), |located| located.to_string()),
            _ => e.to_string(),
        })?;
    let device = open_tun(&settings).map_err(|e| e.to_string())?;
    let offloads = if device.offloads() { "on" } else { "off" };
    let node = Arc::new(node);
    let bridge = Bridge::start(node.clone(), Arc::new(device)).map_err(|e| e.to_string())?;
    tracing::info!(
        interface = %settings.name,
        addresses = ?settings.addresses,
        mtu = settings.mtu,
        listen = ?node.local_addrs(),
        backend = %node.backend(),
        offloads,
        "ready"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = bridge.stats();
    tracing::info!(
        to_mesh = s.to_mesh.load(Ordering::Relaxed),
        super_packets = s.super_packets.load(Ordering::Relaxed),
        from_mesh = s.from_mesh.load(Ordering::Relaxed),
        device_writes = s.device_writes.load(Ordering::Relaxed),
        to_mesh_dropped = s.to_mesh_dropped.load(Ordering::Relaxed),
        from_mesh_dropped = s.from_mesh_dropped.load(Ordering::Relaxed),
        "stopped"
    );
    drop(bridge);
    let stats = node.stats();
    tracing::info!(drops = ?stats.drops, data_shards = ?stats.data_shards, "node counters");
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Up {
            config,
            name,
            no_offload,
        } => up(config, name, no_offload),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pnet-mesh-tun: {e}");
            ExitCode::from(1)
        }
    }
}
