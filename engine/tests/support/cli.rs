//! Runs the `pnet-mesh` command as an operator does: a wg-quick file in a temporary directory, `up`
//! as a child process with a run directory of its own, its ready line awaited in its log, `show`
//! read back, and SIGTERM to stop it.

use std::fs::{self, File};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The command under test, built by cargo for this test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pnet-mesh");
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh directory `/tmp/pnet-cli-<tag>-<pid>` (short: it holds Unix socket paths).
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/pnet-cli-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Runs `pnet-mesh ARGS` to completion, with `stdin` as its standard input.
pub fn run(args: &[&str], stdin: &str, run_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = run_dir {
        cmd.env("PNET_MESH_RUN_DIR", dir);
    }
    let mut child = cmd.spawn().expect("spawn pnet-mesh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for pnet-mesh")
}

/// Standard output of a successful run, trimmed.
pub fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "pnet-mesh failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One `pnet-mesh up` process.
#[derive(Debug)]
pub struct CliNode {
    child: Child,
    /// The node's name (its file is `<dir>/<name>.conf`).
    pub name: String,
    /// The run directory holding its control socket.
    pub run_dir: PathBuf,
    log: PathBuf,
    /// How long the ready line took after spawning.
    pub ready_after: Duration,
}

impl CliNode {
    /// Writes `config` to `<dir>/<name>.conf`, starts `pnet-mesh up` on it with `args`, and waits for
    /// its ready line (panicking with its log if it exits or does not get ready).
    pub fn start(dir: &Path, name: &str, config: &str, args: &[String]) -> CliNode {
        let conf = dir.join(format!("{name}.conf"));
        fs::write(&conf, config).expect("write the configuration");
        let log = dir.join(format!("{name}.log"));
        let run_dir = dir.join("run");
        let started = Instant::now();
        let child = Command::new(BIN)
            .arg("up")
            .arg(&conf)
            .args(args)
            .env("PNET_MESH_RUN_DIR", &run_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the log"))
            .spawn()
            .expect("spawn pnet-mesh up");
        let mut node = CliNode {
            child,
            name: name.to_owned(),
            run_dir,
            log,
            ready_after: Duration::ZERO,
        };
        loop {
            if node.log().lines().any(|l| l.contains(" ready ")) {
                node.ready_after = started.elapsed();
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!(
                    "pnet-mesh up {name} exited ({status}) before ready:\n{}",
                    node.log()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "pnet-mesh up {name} not ready after {READY_TIMEOUT:?}:\n{}",
                    node.log()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `pnet-mesh show NAME --json`: its status.
    pub fn show_json(&self) -> serde_json::Value {
        let out = run(&["show", &self.name, "--json"], "", Some(&self.run_dir));
        let text = stdout_of(&out);
        let mut all: Vec<serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("show --json: {e}: {text}"));
        assert_eq!(all.len(), 1, "one node asked for, one shown");
        all.remove(0)
    }

    /// `pnet-mesh show NAME`: the `wg show` layout.
    pub fn show_text(&self) -> String {
        stdout_of(&run(&["show", &self.name], "", Some(&self.run_dir)))
    }

    /// The control socket's path.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir.join(format!("{}.sock", self.name))
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "pnet-mesh up {} ignored SIGTERM:\n{}",
                    self.name,
                    self.log()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CliNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A UDP service on loopback that answers `echo:` + what it got, until dropped.
pub struct Echo {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Echo {
    pub fn start() -> Echo {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Echo { addr, stop }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends `payload` from a new local socket bound like `via` to `via`; returns the reply and where
/// it came from.
pub fn ask(via: SocketAddr, payload: &[u8]) -> (Vec<u8>, SocketAddr) {
    let local: SocketAddr = if via.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    }
    .parse()
    .unwrap();
    let socket = UdpSocket::bind(local).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 2048];
    // The first datagram waits for the handshake; resend in case one is lost on a busy machine.
    while Instant::now() < deadline {
        socket.send_to(payload, via).unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            return (buf[..n].to_vec(), from);
        }
    }
    panic!("no reply through {via}");
}

/// The local address the `i`-th `--forward` is bound to, from `show --json`.
pub fn forward_listen(status: &serde_json::Value, i: usize) -> SocketAddr {
    let rule = status["forwards"][i]["rule"].as_str().unwrap();
    rule.split_once('=').unwrap().0.parse().unwrap()
}
