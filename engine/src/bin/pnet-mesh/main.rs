//! `pnet-mesh`: runs a node from a wg-quick file, prints its status, makes keys, and forwards UDP
//! between local sockets and the mesh in both directions, with no TUN device and no privilege.
//!
//! ```text
//! pnet-mesh up wg0.conf --forward 127.0.0.1:5353=10.0.0.2:53 --expose 8080=127.0.0.1:80
//! pnet-mesh show [wg0] [--json]
//! pnet-mesh genkey | tee private.key | pnet-mesh pubkey
//! ```

mod channels;
mod control;
mod events;
mod flows;
mod forward;
mod keys;
mod status;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use forward::{ExposeRule, ForwardRule};

#[derive(Debug, Parser)]
#[command(
    name = "pnet-mesh",
    version,
    about = "A WireGuard-compatible mesh node over plain UDP sockets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a node from a wg-quick file until SIGINT or SIGTERM.
    Up(UpArgs),
    /// Prints the status of running nodes as `wg show` does (all of them when no name is given).
    Show(ShowArgs),
    /// Prints a new private key in base64, as `wg genkey` does.
    Genkey,
    /// Reads a private key on standard input and prints its public key, as `wg pubkey` does.
    Pubkey,
    /// Prints a new preshared key in base64, as `wg genpsk` does.
    Genpsk,
}

/// Which I/O backend the node runs on.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    /// io_uring when the kernel and seccomp allow it, else recvmmsg/sendmmsg.
    Auto,
    /// io_uring only (fails if unavailable).
    IoUring,
    /// recvmmsg/sendmmsg.
    Mmsg,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The wg-quick style configuration file.
    config: PathBuf,
    /// Datagrams sent to the local LISTEN_ADDR:PORT go through the mesh to MESH_ADDR:PORT; replies
    /// come back to their sender. Repeatable.
    #[arg(long = "forward", value_name = "LISTEN_ADDR:PORT=MESH_ADDR:PORT")]
    forwards: Vec<ForwardRule>,
    /// Datagrams arriving at this node's mesh address on MESH_PORT go to the local TARGET_ADDR:PORT;
    /// its replies go back through the mesh. Repeatable.
    #[arg(long = "expose", value_name = "MESH_PORT=TARGET_ADDR:PORT")]
    exposes: Vec<ExposeRule>,
    /// The name `show` knows this node by (default: the configuration file's name without `.conf`).
    #[arg(long)]
    name: Option<String>,
    /// The control socket's path (default: NAME.sock in the run directory; see `show --help`).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Local senders (per --forward) or mesh senders (per --expose) tracked at once; the least
    /// recently active one is dropped to admit a new one.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_flows: usize,
    /// Seconds after which a silent flow is forgotten.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    flow_idle: u64,
    /// The I/O backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Data shards (threads that seal and open); default one per core.
    #[arg(long, value_name = "N")]
    data_shards: Option<usize>,
    /// Answers every message a peer sends on a message channel with the same message (a check of
    /// channels end to end; `show --json` lists what crossed).
    #[arg(long)]
    channel_echo: bool,
    /// Sends FILE as one message on a new channel to the peer at MESH_ADDR once the node is up,
    /// and waits for its echo (see --channel-echo); sizes and digests show in `show --json`.
    /// Repeatable.
    #[arg(long = "channel-send", value_name = "MESH_ADDR=FILE")]
    channel_sends: Vec<channels::ChannelSend>,
    /// Writes every node event (handshake initiated and completed, peer up and down, endpoint
    /// changed, rekeyed, …) to PATH as one JSON line each, with its wall-clock time in ms.
    #[arg(long, value_name = "PATH")]
    events: Option<PathBuf>,
    /// Test only: every protocol timer (REKEY_TIMEOUT, REKEY_AFTER_TIME, keepalive, …) multiplied
    /// by FACTOR, so a fault suite sees the timer schedule in seconds instead of minutes. Never for
    /// a real deployment: peers with unscaled timers disagree about rekeys.
    #[arg(long, value_name = "FACTOR", hide = true)]
    timer_scale: Option<f64>,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The control sockets live in $PNET_MESH_RUN_DIR, else /run/pnet-mesh for root, \
else $XDG_RUNTIME_DIR/pnet-mesh, else /tmp/pnet-mesh-UID; the directory is owner-only (0700)."
)]
struct ShowArgs {
    /// The node to show (its --name, or its configuration file's name without `.conf`).
    name: Option<String>,
    /// Prints JSON for scripts instead of the `wg show` layout.
    #[arg(long)]
    json: bool,
    /// Asks the node at this control socket path.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => {
            init_logging();
            up::run(args)
        }
        Command::Show(args) => status::show(args.name.as_deref(), args.control, args.json),
        Command::Genkey => keys::genkey(),
        Command::Pubkey => keys::pubkey(),
        Command::Genpsk => keys::genpsk(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pnet-mesh: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
