//! `--tun-topology preflight`: what the workflow needs from this machine, each need reported as
//! pass, skip or fail with the reason.

use std::path::Path;

use serde::Serialize;

use super::plan::{Implementation, LAB};
use super::topology;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present.
    Pass,
    /// Absent, and only part of the workflow is affected.
    Skip,
    /// Absent: the benchmarks cannot run.
    Fail,
}

/// One need.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is needed.
    pub name: &'static str,
    /// Whether it is there.
    pub status: Status,
    /// Why, in words.
    pub reason: String,
}

/// Every check, and whether the benchmarks can run.
#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    /// Schema name.
    pub schema: &'static str,
    /// The checks.
    pub checks: Vec<Check>,
    /// No check failed.
    pub ready: bool,
}

fn check(name: &'static str, result: Result<String, (Status, String)>) -> Check {
    match result {
        Ok(reason) => Check {
            name,
            status: Status::Pass,
            reason,
        },
        Err((status, reason)) => Check {
            name,
            status,
            reason,
        },
    }
}

/// Runs every check.
pub fn run() -> Preflight {
    let fail = |r: String| (Status::Fail, r);
    let mut checks = Vec::new();
    let lab = pnet_mesh_topology::Lab::connect_named(LAB);
    checks.push(check(
        "engine",
        match &lab {
            Ok(_) => Ok("a Docker daemon answers".into()),
            Err(e) => Err(fail(e.to_string())),
        },
    ));
    checks.push(check(
        "tun_device",
        if Path::new("/dev/net/tun").exists() {
            Ok("/dev/net/tun exists (passed to both containers)".into())
        } else {
            Err(fail(
                "/dev/net/tun is missing: the tunnels cannot be created".into(),
            ))
        },
    ));
    for (name, implementation) in [
        ("image_pnet_mesh_tun", Implementation::PnetMeshTun),
        ("image_wireguard_go", Implementation::WireguardGo),
    ] {
        let present = lab
            .as_ref()
            .is_ok_and(|l| l.has_image(implementation.image()));
        checks.push(check(
            name,
            match topology::image_spec(implementation) {
                Ok(_) if present => Ok(format!(
                    "{} exists; rebuilt if its files changed",
                    implementation.image()
                )),
                Ok(_) => Ok(format!(
                    "{} will be built from this machine's binaries",
                    implementation.image()
                )),
                Err(e) => Err(fail(e)),
            },
        ));
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        });
    checks.push(check(
        "capabilities",
        if uid.as_deref() == Some("0") {
            Ok(
                "root: the daemon grants the containers NET_ADMIN and NET_RAW, and the tunnel \
                processes' /proc entries can be sampled"
                    .into(),
            )
        } else {
            Err((
                Status::Skip,
                "not root: the tunnel processes' CPU and memory may not be readable".into(),
            ))
        },
    ));
    let ipv6_off = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .map(|v| v.trim() == "1")
        .unwrap_or(true);
    checks.push(check(
        "ipv6",
        if ipv6_off {
            Err((
                Status::Skip,
                "IPv6 is disabled on this host: the IPv6 ping step will fail".into(),
            ))
        } else {
            Ok("IPv6 is enabled: the underlay is dual-stack and the tunnel carries both".into())
        },
    ));
    checks.push(check(
        "no_leftover_topology",
        match &lab {
            Ok(l) if l.resources_left() > 0 => Err(fail(format!(
                "{} labeled resources of {LAB} exist: `bench --tun-topology teardown` removes them",
                l.resources_left()
            ))),
            Ok(_) => Ok(format!("no {LAB} resources exist")),
            Err(_) => Err((Status::Skip, "no Docker daemon to ask".into())),
        },
    ));
    let ready = checks.iter().all(|c| c.status != Status::Fail);
    Preflight {
        schema: "pnet-mesh.tun-preflight.v1",
        checks,
        ready,
    }
}
