//! Whether io_uring is usable here, and why not: the start-up probe the runtime runs before it
//! chooses a backend, and the ring set-up (with its retry on ENOMEM) the backend shares.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::time::Duration;

use io_uring::{IoUring, Probe, opcode};

use super::MIN_ENTRIES;

/// Environment variable that turns io_uring off (`off`, `0`, `false` or `no`) for operators and tests,
/// as monoio's `uring_detect` honours one.
pub(crate) const ENV_SWITCH: &str = "PNET_MESH_IO_URING";

/// Memory of a ring closed a moment ago is returned to the locked-memory budget a little later
/// (ENVIRONMENT.md): pause this long and try once more.
const ENOMEM_PAUSE: Duration = Duration::from_millis(50);

/// Why io_uring is not usable here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeFailure {
    /// The errno of the failing call, if a call failed.
    pub(crate) errno: Option<i32>,
    /// What failed, for the log and for `StartError::IoUringUnavailable`.
    pub(crate) reason: String,
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Checks that this process can run the io_uring backend: the environment switch is not off, a ring of
/// `entries` can be set up (retrying once after a short pause on ENOMEM), it supports timed waits, and
/// the kernel has every opcode the backend uses.
///
/// The ring is set up and closed on a short-lived thread of its own, never on the caller's: the kernel
/// registers the thread that sets up a ring with it, and when the ring is closed its exit work
/// interrupts every registered thread (task work sent like a signal) to unregister it, some
/// milliseconds later. A blocking call with a timeout on the caller's thread (a `recv_from` under
/// `SO_RCVTIMEO`, say) would then fail with EINTR. A thread that exits takes its registration along.
///
/// # Errors
/// A [`ProbeFailure`] naming what failed, e.g. `io_uring_setup: Operation not permitted (EPERM; …)`.
pub(crate) fn probe(entries: u32) -> Result<(), ProbeFailure> {
    if let Some(failure) = env_override(std::env::var_os(ENV_SWITCH).as_deref()) {
        return Err(failure);
    }
    let prober = std::thread::Builder::new()
        .name("pnet-mesh-uring-probe".into())
        .spawn(move || probe_on_this_thread(entries))
        .map_err(|e| failure("spawning the io_uring probe thread", &e))?;
    prober.join().unwrap_or_else(|_| {
        Err(ProbeFailure {
            errno: None,
            reason: "the io_uring probe thread panicked".into(),
        })
    })
}

fn probe_on_this_thread(entries: u32) -> Result<(), ProbeFailure> {
    let ring = create_ring(entries.max(MIN_ENTRIES)).map_err(|e| failure("io_uring_setup", &e))?;
    check_ring(&ring)
}

/// The failure the environment switch asks for, if it is set to turn io_uring off.
fn env_override(value: Option<&OsStr>) -> Option<ProbeFailure> {
    let value = value?.to_str()?.trim();
    let off = ["off", "0", "false", "no"]
        .iter()
        .any(|v| value.eq_ignore_ascii_case(v));
    off.then(|| ProbeFailure {
        errno: None,
        reason: format!("disabled by {ENV_SWITCH}={value}"),
    })
}

/// Sets up a ring, retrying once after [`ENOMEM_PAUSE`] on ENOMEM.
pub(super) fn create_ring(entries: u32) -> io::Result<IoUring> {
    match IoUring::new(entries) {
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
            std::thread::sleep(ENOMEM_PAUSE);
            IoUring::new(entries)
        }
        other => other,
    }
}

/// What a failed `call` means here, for operators.
fn failure(call: &str, e: &io::Error) -> ProbeFailure {
    let errno = e.raw_os_error();
    let text = e.to_string();
    // "Operation not permitted (os error 1)" → "Operation not permitted": the hint names the errno.
    let text = text.split(" (os error").next().unwrap_or_default();
    let hint = match errno {
        Some(libc::EPERM) => {
            " (EPERM; seccomp, e.g. Docker 25+, or sysctl kernel.io_uring_disabled?)"
        }
        Some(libc::ENOMEM) => {
            " (ENOMEM; locked-memory limit, 8 MiB per uid here? use smaller rings)"
        }
        Some(libc::ENOSYS) => " (ENOSYS; kernel without io_uring)",
        Some(libc::EACCES) => " (EACCES; io_uring restricted to a group by kernel.io_uring_group?)",
        Some(libc::EINVAL) => " (EINVAL; kernel too old for these ring parameters?)",
        _ => "",
    };
    ProbeFailure {
        errno,
        reason: format!("{call}: {text}{hint}"),
    }
}

/// Checks the features and opcodes the backend relies on.
fn check_ring(ring: &IoUring) -> Result<(), ProbeFailure> {
    if !ring.params().is_feature_ext_arg() {
        return Err(ProbeFailure {
            errno: None,
            reason: "kernel lacks IORING_FEAT_EXT_ARG (timed waits need Linux 5.11 or later)"
                .into(),
        });
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| failure("io_uring_register(IORING_REGISTER_PROBE)", &e))?;
    let needed = [
        (opcode::RecvMsg::CODE, "RECVMSG"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::Read::CODE, "READ"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(ProbeFailure {
                errno: None,
                reason: format!("kernel lacks io_uring opcode IORING_OP_{name}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_succeeds_here_io_uring() {
        if let Err(f) = probe(256) {
            panic!(
                "io_uring probe failed (this test needs io_uring, e.g. as root on the host): {f}"
            );
        }
    }

    /// Closing a ring interrupts the threads registered with it (EINTR in a blocking call with a
    /// timeout); the probe must keep that away from its caller's thread.
    #[test]
    fn probe_leaves_the_callers_blocking_calls_alone_io_uring() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        probe(256).expect("io_uring probe (needs io_uring here)");
        let mut buf = [0u8; 16];
        let e = socket.recv_from(&mut buf).expect_err("nothing was sent");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "the caller's recv_from ended with {e} instead of its timeout"
        );
    }

    #[test]
    fn env_switch_turns_io_uring_off() {
        let off = env_override(Some(OsStr::new("off"))).expect("off disables");
        assert_eq!(off.reason, "disabled by PNET_MESH_IO_URING=off");
        assert_eq!(off.errno, None);
        assert!(env_override(Some(OsStr::new("OFF"))).is_some());
        assert!(env_override(Some(OsStr::new("0"))).is_some());
        assert!(env_override(Some(OsStr::new("on"))).is_none());
        assert!(env_override(None).is_none());
    }

    /// Runs `probe_in_child` in a child process (this test binary again), prepared by `setup`, and
    /// returns what it printed: changing this process's environment or limits would race with other
    /// tests.
    fn probe_in_a_child(setup: impl FnOnce(&mut std::process::Command)) -> String {
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--exact",
            "backend::uring::probe::tests::probe_in_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PNET_MESH_PROBE_CHILD", "1");
        setup(&mut cmd);
        let out = cmd.output().expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "child failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The child half of the tests above; does nothing in a normal run.
    #[test]
    fn probe_in_child() {
        if std::env::var_os("PNET_MESH_PROBE_CHILD").is_none() {
            return;
        }
        match probe(256) {
            Ok(()) => println!("probe: ok"),
            Err(f) => println!("probe: {f} [errno {:?}]", f.errno),
        }
    }

    #[test]
    fn env_switch_makes_probe_fail_io_uring() {
        let said = probe_in_a_child(|cmd| {
            cmd.env(ENV_SWITCH, "off");
        });
        assert!(
            said.contains("probe: disabled by PNET_MESH_IO_URING=off [errno None]"),
            "child said: {said}"
        );
    }

    /// A process charged for locked memory (not root, or root without CAP_IPC_LOCK) with no
    /// allowance cannot set up a ring: the probe retries once and names the limit.
    #[test]
    fn tiny_memlock_limit_makes_probe_fail_with_enomem_io_uring() {
        use std::os::unix::process::CommandExt;
        let said = probe_in_a_child(|cmd| {
            // SAFETY: runs in the forked child before exec, where only async-signal-safe calls are
            // allowed; setrlimit, geteuid and setuid are system calls that allocate nothing.
            unsafe {
                cmd.pre_exec(|| {
                    let none = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::setrlimit(libc::RLIMIT_MEMLOCK, &none) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // Root is exempt from the limit (CAP_IPC_LOCK): become nobody.
                    if libc::geteuid() == 0 && libc::setuid(65534) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        });
        assert!(
            said.contains(
                "probe: io_uring_setup: Cannot allocate memory (ENOMEM; locked-memory limit"
            ),
            "child said: {said}"
        );
        assert!(said.contains("[errno Some(12)]"), "child said: {said}");
    }

    #[test]
    fn probe_failures_name_the_cause() {
        let reason = |errno| failure("io_uring_setup", &io::Error::from_raw_os_error(errno)).reason;
        assert!(
            reason(libc::EPERM)
                .starts_with("io_uring_setup: Operation not permitted (EPERM; seccomp")
        );
        assert!(reason(libc::ENOMEM).contains("(ENOMEM; locked-memory limit"));
        assert!(reason(libc::ENOSYS).contains("(ENOSYS; kernel without io_uring)"));
        assert_eq!(
            failure("x", &io::Error::from_raw_os_error(libc::ENOSYS)).errno,
            Some(libc::ENOSYS)
        );
    }
}
