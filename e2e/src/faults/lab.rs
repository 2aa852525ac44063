//! Namespaces, links and addresses of one fault run, removed on drop; the machine-wide lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The lock every fault run holds, so namespace labs and router rules of two runs never overlap.
pub const LOCK_PATH: &str = "/tmp/pnet-mesh-faults.lock";

/// One of the lab's namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Node A.
    A,
    /// The router.
    R,
    /// Node B.
    B,
    /// The attacker.
    X,
}

impl Side {
    fn letter(self) -> char {
        match self {
            Side::A => 'a',
            Side::R => 'r',
            Side::B => 'b',
            Side::X => 'x',
        }
    }
}

/// The underlay addresses of the plan.
pub const A_ADDR: &str = "10.31.1.2";
/// A's second address (an endpoint change, F9).
pub const A_ADDR_2: &str = "10.31.1.3";
/// B's underlay address.
pub const B_ADDR: &str = "10.31.2.2";
/// The attacker's main address; it also holds the 256 addresses of 10.31.10.0/24.
pub const X_ADDR: &str = "10.31.9.2";
/// The router's interface towards B (where impairments towards B go).
pub const TOWARDS_B: &str = "rb";
/// The router's interface towards A.
pub const TOWARDS_A: &str = "ra";

/// Runs `argv`; its output, or what failed.
///
/// # Errors
/// A command that could not start or exited with an error, with its output.
pub fn run(argv: &[&str]) -> Result<Output, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("`{}` cannot run: {e}", argv[0]))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{}` failed ({}): {}{}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The lab: four namespaces joined through the router, and the lock. Dropping it kills what runs
/// in the namespaces and deletes them.
#[derive(Debug)]
pub struct FaultLab {
    id: String,
    dir: PathBuf,
    children: Vec<Child>,
    _lock: File,
}

/// What the suite needs from the machine; the message names what is missing.
///
/// # Errors
/// Not root, or a missing tool.
pub fn require() -> Result<(), String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Err(
            "the fault suite needs root (network namespaces, iptables on the router)".into(),
        );
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("nft", "nftables"),
        ("tc", "iproute2"),
    ] {
        if Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(format!(
                "the fault suite needs `{tool}` ({package}; scripts/test.sh installs it)"
            ));
        }
    }
    Ok(())
}

impl FaultLab {
    /// Takes the machine-wide lock (waiting up to 10 minutes), then builds the topology.
    ///
    /// # Errors
    /// What is missing ([`require`]), or the step that failed.
    pub fn new() -> Result<FaultLab, String> {
        require()?;
        let lock = File::create(LOCK_PATH).map_err(|e| format!("open {LOCK_PATH}: {e}"))?;
        let started = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() > Duration::from_secs(600) {
                        return Err(format!("{LOCK_PATH} stayed locked for 10 minutes"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("lock {LOCK_PATH}: {e}"));
                }
            }
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let id = format!("f{}{:02x}", std::process::id() % 100_000, nonce % 256);
        let dir = std::env::temp_dir().join(format!("pnet-faults-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let lab = FaultLab {
            id,
            dir,
            children: Vec::new(),
            _lock: lock,
        };
        lab.build()?;
        Ok(lab)
    }

    /// The namespace name of `side`.
    pub fn ns(&self, side: Side) -> String {
        format!("{}{}", self.id, side.letter())
    }

    /// A directory for this run's files (configurations, logs, reports).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn build(&self) -> Result<(), String> {
        for side in [Side::A, Side::R, Side::B, Side::X] {
            let ns = self.ns(side);
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        let r = self.ns(Side::R);
        // (peer namespace, its interface, its address, the router's interface, the router's address)
        let links = [
            (Side::A, "a0", "10.31.1.2/24", TOWARDS_A, "10.31.1.1/24"),
            (Side::B, "b0", "10.31.2.2/24", TOWARDS_B, "10.31.2.1/24"),
            (Side::X, "x0", "10.31.9.2/24", "rx", "10.31.9.1/24"),
        ];
        for (side, dev, addr, rdev, raddr) in links {
            let ns = self.ns(side);
            // Created in the root namespace under unique names, then moved and renamed.
            let (tmp_a, tmp_r) = (
                format!("{}{}", self.id, dev),
                format!("{}{}", self.id, rdev),
            );
            run(&[
                "ip", "link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_r,
            ])?;
            run(&["ip", "link", "set", &tmp_a, "netns", &ns, "name", dev])?;
            run(&["ip", "link", "set", &tmp_r, "netns", &r, "name", rdev])?;
            run(&["ip", "-n", &ns, "addr", "add", addr, "dev", dev])?;
            run(&["ip", "-n", &ns, "link", "set", dev, "up"])?;
            run(&["ip", "-n", &r, "addr", "add", raddr, "dev", rdev])?;
            run(&["ip", "-n", &r, "link", "set", rdev, "up"])?;
            let gw = raddr.split('/').next().unwrap_or(raddr);
            run(&["ip", "-n", &ns, "route", "add", "default", "via", gw])?;
        }
        run(&[
            "ip",
            "netns",
            "exec",
            &r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        let x = self.ns(Side::X);
        // The attacker's 256 extra sources: 10.31.10.0/24, routed to it by the router.
        let script = self.dir.join("x-addresses");
        let lines: String = (0..256u32)
            .map(|i| format!("address add 10.31.10.{}/32 dev x0\n", i))
            .collect();
        std::fs::write(&script, lines).map_err(|e| format!("write {}: {e}", script.display()))?;
        run(&["ip", "-n", &x, "-batch", &script.display().to_string()])?;
        run(&[
            "ip",
            "-n",
            &r,
            "route",
            "add",
            "10.31.10.0/24",
            "via",
            "10.31.9.2",
        ])?;
        Ok(())
    }

    /// Runs `argv` inside `side`'s namespace and waits for it.
    ///
    /// # Errors
    /// As [`run`].
    pub fn exec(&self, side: Side, argv: &[&str]) -> Result<Output, String> {
        let ns = self.ns(side);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(argv);
        run(&full)
    }

    /// The namespace's UDP `RcvbufErrors` (`/proc/net/snmp`): datagrams a full socket buffer
    /// dropped, the losses that are neither the proxy's nor a node's.
    pub fn udp_receive_buffer_errors(&self, side: Side) -> Option<u64> {
        let out = self.exec(side, &["cat", "/proc/net/snmp"]).ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
        let (names, values) = (udp.next()?, udp.next()?);
        let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
        values.split_whitespace().nth(at)?.parse().ok()
    }

    /// Starts `argv` inside `side`'s namespace with stdout and stderr to `log`; it is killed when the
    /// lab drops (or by the caller).
    ///
    /// # Errors
    /// It could not start.
    pub fn spawn(&mut self, side: Side, argv: &[&str], log: &Path) -> Result<u32, String> {
        let child = self.spawn_child(side, argv, log)?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// As [`spawn`](Self::spawn), handing the child to the caller.
    ///
    /// # Errors
    /// It could not start.
    pub fn spawn_child(&self, side: Side, argv: &[&str], log: &Path) -> Result<Child, String> {
        let file = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("clone {}: {e}", log.display()))?;
        Command::new("ip")
            .args(["netns", "exec", &self.ns(side)])
            .args(argv)
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start `{}` in {:?}: {e}", argv.join(" "), side))
    }

    /// Runs an iptables command in the router's namespace (`-A FORWARD …`, `-D FORWARD …`).
    ///
    /// # Errors
    /// As [`run`].
    pub fn router_iptables(&self, args: &[&str]) -> Result<(), String> {
        let mut argv = vec!["iptables", "-w"];
        argv.extend_from_slice(args);
        self.exec(Side::R, &argv).map(|_| ())
    }

    /// Runs an nft command in the router's namespace.
    ///
    /// # Errors
    /// As [`run`].
    pub fn router_nft(&self, args: &[&str]) -> Result<String, String> {
        let mut argv = vec!["nft"];
        argv.extend_from_slice(args);
        self.exec(Side::R, &argv)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for FaultLab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for side in [Side::A, Side::R, Side::B, Side::X] {
            let ns = self.ns(side);
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        if std::env::var_os("PNET_FAULTS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
