//! Start-up: an address in use, backend choice and its fallback, configuration errors.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;
use pnet_mesh_shard::{Backend, Runtime, RuntimeConfig, StartError};

fn addr_in_use(backend: Backend) {
    let (first, _) = echo_runtime(&["127.0.0.1:0".parse().unwrap()], backend, 1, true, true);
    let taken = first.local_addrs()[0];
    let config = RuntimeConfig::new([taken])
        .backend(backend)
        .data_shards(1)
        .pin_threads(false);
    let err = Runtime::start(config, |shard| Echo {
        shard,
        gro_batches: Default::default(),
    })
    .expect_err("a second runtime on the same port must not join the first one's group");
    assert!(
        matches!(err, StartError::AddrInUse { addr } if addr == taken),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&taken.to_string()),
        "the error names the address: {err}"
    );
    // A plain socket holding the port is refused the same way.
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    let held: SocketAddr = plain.local_addr().unwrap();
    let config = RuntimeConfig::new([held])
        .backend(backend)
        .data_shards(1)
        .pin_threads(false);
    let err = Runtime::start(config, |shard| Echo {
        shard,
        gro_batches: Default::default(),
    })
    .expect_err("address held by a plain socket");
    assert!(
        matches!(err, StartError::AddrInUse { addr } if addr == held),
        "{err:?}"
    );
    first.shutdown();
}

#[test]
fn second_runtime_on_the_same_port_fails_naming_the_address_mmsg() {
    addr_in_use(Backend::Mmsg);
}

#[test]
fn second_runtime_on_the_same_port_fails_naming_the_address_io_uring() {
    addr_in_use(Backend::IoUring);
}

#[test]
fn bad_configuration_names_the_field_and_value() {
    let cases = [
        (RuntimeConfig::new([]), "listen"),
        (
            RuntimeConfig::new(["127.0.0.1:0".parse().unwrap()]).batch(0),
            "batch",
        ),
        (
            RuntimeConfig::new(["127.0.0.1:0".parse().unwrap()]).data_shards(0),
            "data_shards",
        ),
        (
            RuntimeConfig::new(["127.0.0.1:0".parse().unwrap()]).ring_entries(100),
            "ring_entries",
        ),
        (
            RuntimeConfig::new(["127.0.0.1:0".parse().unwrap()]).buffers_per_shard(10),
            "buffers_per_shard",
        ),
    ];
    for (config, field) in cases {
        let err = Runtime::start(config, |shard| Echo {
            shard,
            gro_batches: Default::default(),
        })
        .expect_err(field);
        match &err {
            StartError::Config { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

const PROBE: &str = env!("CARGO_BIN_EXE_pnet-mesh-shard-probe");

/// Runs the probe command as an unprivileged user with no lockable memory: io_uring cannot get its
/// rings, so the automatic choice falls back to mmsg with the reason, and requiring io_uring fails.
#[test]
fn io_uring_failure_falls_back_to_mmsg_with_reason_and_forced_io_uring_fails() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (to run the probe as uid 65534 with RLIMIT_MEMLOCK = 0)");
    }
    let run = |args: &[&str]| {
        let mut cmd = Command::new(PROBE);
        cmd.args(args)
            .uid(65534)
            .gid(65534)
            .env_remove("PNET_MESH_IO_URING");
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                let zero = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::setrlimit(libc::RLIMIT_MEMLOCK, &zero) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().expect("run the probe")
    };
    let auto = run(&[]);
    let stdout = String::from_utf8_lossy(&auto.stdout);
    assert!(
        auto.status.success(),
        "auto choice starts: {stdout} {}",
        String::from_utf8_lossy(&auto.stderr)
    );
    assert!(
        stdout.contains("backend: mmsg"),
        "fell back to mmsg:\n{stdout}"
    );
    assert!(
        stdout.contains("io_uring: unavailable: "),
        "the reason is reported:\n{stdout}"
    );
    assert!(
        stdout.contains("ENOMEM") || stdout.contains("memory"),
        "the reason names the memlock failure:\n{stdout}"
    );

    let forced = run(&["--require-io-uring"]);
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(
        !forced.status.success(),
        "a forced io_uring backend fails to start"
    );
    assert!(
        stderr.contains("io_uring backend required but unavailable"),
        "{stderr}"
    );

    // The environment override says so too, without any privilege games.
    let out = Command::new(PROBE)
        .env("PNET_MESH_IO_URING", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("backend: mmsg") && stdout.contains("PNET_MESH_IO_URING"),
        "{stdout}"
    );
}

#[test]
fn automatic_choice_here_is_io_uring() {
    let out = Command::new(PROBE)
        .env_remove("PNET_MESH_IO_URING")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("backend: io_uring"),
        "this machine allows io_uring as root:\n{stdout}"
    );
}
