//! The `testnode-smoke` macro scenario: a short exchange between two node containers, **manual and
//! non-deterministic** (Docker's bridge, the host's load and container start-up all move it; it proves
//! the containers carry traffic and gives an order of magnitude, nothing to compare runs by).
//!
//! Two containers run the `pnet-mesh` command of this build (image `FROM scratch`, built through
//! `pnet-mesh-topology`): A forwards host UDP to B's mesh port, B exposes that port to a UDP echo on
//! the host (the bridge's gateway address). The bench sends datagrams one at a time through
//! A → B → host echo → B → A and times each round trip.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pnet_mesh::crypto::PrivateKey;
use pnet_mesh::crypto::rng::OsRng;
use pnet_mesh_topology::{ContainerSpec, ImageSpec, Lab};
use serde::Serialize;

use crate::environment::Environment;
use crate::histogram::{Histogram, Latency};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestnodeSmokeOptions {
    /// Application bytes per datagram.
    pub payload: usize,
    /// Untimed exchange first.
    pub warmup: Duration,
    /// Measured exchange.
    pub duration: Duration,
}

/// The JSON object the scenario prints.
#[derive(Debug, Clone, Serialize)]
pub struct TestnodeSmokeReport {
    /// `"testnode-smoke"`.
    pub scenario: &'static str,
    /// Always true: this scenario is manual and non-deterministic.
    pub non_deterministic: bool,
    /// Application bytes per datagram.
    pub payload_size: usize,
    /// Round trips completed in the measured window.
    pub round_trips: u64,
    /// Datagrams that did not come back within a second.
    pub lost: u64,
    /// Round trips per second (one in flight at a time).
    pub round_trips_per_sec: f64,
    /// Application bytes per second, both ways.
    pub payload_bytes_per_sec: f64,
    /// Round-trip latency.
    pub latency: Option<Latency>,
    /// The node image.
    pub image: String,
    /// The backend node A reported.
    pub backend: String,
    /// Seconds from creating the containers to both being ready.
    pub startup_secs: f64,
    /// Measured window, seconds.
    pub measured_secs: f64,
    /// Machine and build.
    #[serde(flatten)]
    pub environment: Environment,
}

fn node_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let node = exe
        .parent()
        .map(|d| d.join("pnet-mesh"))
        .ok_or("the bench binary has no directory")?;
    if node.is_file() {
        Ok(node)
    } else {
        Err(format!(
            "the pnet-mesh binary is missing at {}: build it beside this bench (cargo build \
             --release -p pnet-mesh --features cli)",
            node.display()
        ))
    }
}

/// Runs the scenario; `progress` gets one line per phase.
///
/// # Errors
/// No Docker, a missing binary, a node that would not start, or no round trip at all.
pub fn run(
    opts: &TestnodeSmokeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<TestnodeSmokeReport, String> {
    if !(1..=1400).contains(&opts.payload) {
        return Err(format!(
            "--payload {}: testnode-smoke sends 1 to 1400 bytes per datagram",
            opts.payload
        ));
    }
    let environment = Environment::detect();
    let lab = Lab::connect().map_err(|e| e.to_string())?;
    let image = lab
        .ensure_image(
            &ImageSpec::new("localhost/pnet-mesh-smoke")
                .binary(node_binary()?, "/usr/local/bin/pnet-mesh")
                .dir("/config")
                .entrypoint(["/usr/local/bin/pnet-mesh"]),
        )
        .map_err(|e| e.to_string())?;
    progress(&format!("testnode-smoke: image {}", image.name));
    let net = lab.network("smoke").map_err(|e| e.to_string())?;
    let base: Ipv4Addr = net
        .subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("subnet {}", net.subnet))?;
    let gateway = Ipv4Addr::from(u32::from(base) + 1);
    let echo = UdpSocket::bind((gateway, 0)).map_err(|e| format!("echo on {gateway}: {e}"))?;
    let echo_addr = echo.local_addr().map_err(|e| e.to_string())?;
    let echo_thread = std::thread::spawn(move || {
        let _ = echo.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 2048];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(600) {
            match echo.recv_from(&mut buf) {
                Ok((n, from)) if &buf[..n] == b"stop" => {
                    let _ = echo.send_to(b"stop", from);
                    break;
                }
                Ok((n, from)) => {
                    let _ = echo.send_to(&buf[..n], from);
                }
                Err(_) => {}
            }
        }
    });
    let (a_key, b_key) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let dir = std::env::temp_dir().join(format!("{}-smoke", lab.run_id()));
    let conf = |key: &PrivateKey, me: &str, peer: &PrivateKey, other: &str, endpoint: &str| {
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = {me}/32\n\n[Peer]\n\
             PublicKey = {}\nAllowedIPs = {other}/32\n{endpoint}",
            key.to_base64(),
            peer.public_key()
        )
    };
    let write = |name: &str, text: String| -> Result<PathBuf, String> {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        std::fs::write(d.join("node.conf"), text).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        let _ =
            std::fs::set_permissions(d.join("node.conf"), std::fs::Permissions::from_mode(0o600));
        Ok(d)
    };
    let b_dir = write("b", conf(&b_key, "10.79.0.2", &a_key, "10.79.0.1", ""))?;
    let a_dir = write(
        "a",
        conf(
            &a_key,
            "10.79.0.1",
            &b_key,
            "10.79.0.2",
            "Endpoint = b:51820\nPersistentKeepalive = 1\n",
        ),
    )?;
    let started = Instant::now();
    let b = lab
        .run(
            &ContainerSpec::new("b", &image.name)
                .cmd([
                    "up".to_owned(),
                    "/config/node.conf".to_owned(),
                    "--expose".to_owned(),
                    format!("7001={echo_addr}"),
                ])
                .mount_ro(&b_dir, "/config")
                .network(&net.name, ["b"]),
        )
        .map_err(|e| e.to_string())?;
    lab.wait_for_log(&b, "ready", Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    let a = lab
        .run(
            &ContainerSpec::new("a", &image.name)
                .cmd([
                    "up",
                    "/config/node.conf",
                    "--forward",
                    "0.0.0.0:7000=10.79.0.2:7001",
                ])
                .mount_ro(&a_dir, "/config")
                .network(&net.name, ["a"]),
        )
        .map_err(|e| e.to_string())?;
    lab.wait_for_log(&a, "ready", Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    let startup_secs = started.elapsed().as_secs_f64();
    let logs = lab.logs(&a).map_err(|e| e.to_string())?;
    let backend = logs
        .split("backend=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("unknown")
        .to_owned();
    let to = SocketAddr::from((lab.ipv4(&a, &net).map_err(|e| e.to_string())?, 7000));
    let client = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let mut payload = vec![0u8; opts.payload];
    let mut buf = [0u8; 2048];
    let mut exchange = |seq: u64, payload: &mut Vec<u8>| -> Option<Duration> {
        for (i, b) in seq.to_le_bytes().iter().enumerate() {
            if let Some(p) = payload.get_mut(i) {
                *p = *b;
            }
        }
        let sent = Instant::now();
        client.send_to(payload, to).ok()?;
        loop {
            let (n, _) = client.recv_from(&mut buf).ok()?;
            if buf.get(..n) == Some(payload.as_slice()) {
                return Some(sent.elapsed());
            }
        }
    };
    progress("testnode-smoke: warm-up (the first datagram waits for the handshake)");
    let warm = Instant::now();
    let mut seq = 0u64;
    let mut first = false;
    while warm.elapsed() < opts.warmup.max(Duration::from_secs(10)) && !first
        || warm.elapsed() < opts.warmup
    {
        seq += 1;
        first |= exchange(seq, &mut payload).is_some();
    }
    if !first {
        return Err("no datagram came back through the two containers during the warm-up".into());
    }
    progress("testnode-smoke: measuring");
    let mut histogram = Histogram::new();
    let (mut round_trips, mut lost) = (0u64, 0u64);
    let measure = Instant::now();
    while measure.elapsed() < opts.duration {
        seq += 1;
        match exchange(seq, &mut payload) {
            Some(rtt) => {
                round_trips += 1;
                histogram.record(rtt.as_nanos() as u64);
            }
            None => lost += 1,
        }
    }
    let secs = measure.elapsed().as_secs_f64();
    let _ = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"stop", echo_addr));
    let _ = echo_thread.join();
    lab.teardown();
    let _ = std::fs::remove_dir_all(&dir);
    let rate = round_trips as f64 / secs.max(f64::EPSILON);
    progress(&format!(
        "testnode-smoke: {round_trips} round trips ({rate:.0}/s), {lost} lost"
    ));
    Ok(TestnodeSmokeReport {
        scenario: "testnode-smoke",
        non_deterministic: true,
        payload_size: opts.payload,
        round_trips,
        lost,
        round_trips_per_sec: rate,
        payload_bytes_per_sec: rate * 2.0 * opts.payload as f64,
        latency: (!histogram.is_empty()).then(|| Latency::from(&histogram, "round trip")),
        image: image.name,
        backend,
        startup_secs,
        measured_secs: secs,
        environment,
    })
}
