//! Docker labs for PNet Mesh tests, through bollard: images built without any registry (`FROM scratch`
//! with the binaries and the shared libraries `ldd` names), labeled networks (segments) and labeled
//! containers with DNS aliases, readiness by log line, logs, `exec`, and teardown of only what this
//! run made.
//!
//! Every resource carries the label `pnet-mesh.run=<run id>` (the run id holds the process id, so a
//! later run can tell a dead run's leftovers from a live run's resources and sweep only those) and a
//! name that starts with the run id. Dropping the [`Lab`] removes its containers and networks; a run
//! that was killed is swept by the next [`Lab::connect`].
//!
//! The API is blocking (a current-thread tokio runtime inside), so tests stay plain `#[test]`s.
//!
//! ```no_run
//! use pnet_mesh_topology::{ContainerSpec, ImageSpec, Lab};
//!
//! let lab = Lab::connect()?;
//! let image = lab.ensure_image(&ImageSpec::new("localhost/demo").binary("/usr/bin/true", "/true")
//!     .entrypoint(["/true"]))?;
//! let net = lab.network("seg-a")?;
//! let c = lab.run(&ContainerSpec::new("one", &image.name).network(&net.name, ["one"]))?;
//! println!("{}", lab.logs(&c)?);
//! # Ok::<(), pnet_mesh_topology::TopologyError>(())
//! ```

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RestartContainerOptionsBuilder,
};
use futures_util::StreamExt;
use thiserror::Error;

/// The label every resource of a lab carries; its value is the run id.
pub const RUN_LABEL: &str = "pnet-mesh.run";
/// The Docker socket this crate talks to.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// What went wrong, with what was being done.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// No Docker daemon answers.
    #[error(
        "no Docker daemon answers at {DOCKER_SOCKET} ({source}); these tests need Docker: install \
         docker.io and start dockerd (scripts/test.sh does both)"
    )]
    DockerUnavailable {
        /// Why.
        source: bollard::errors::Error,
    },
    /// A Docker API call failed.
    #[error("docker: {what}: {source}")]
    Docker {
        /// The call.
        what: String,
        /// Its error.
        source: bollard::errors::Error,
    },
    /// A local step failed (reading a binary, running `ldd`).
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// Its error.
        source: std::io::Error,
    },
    /// An image build failed.
    #[error("building image {image}: {message}")]
    Build {
        /// The image.
        image: String,
        /// What the builder said.
        message: String,
    },
    /// A container did not become ready in time.
    #[error(
        "container {container} was not ready within {waited:?} (no log line {needle:?}); its log:\n{logs}"
    )]
    NotReady {
        /// The container.
        container: String,
        /// The line waited for.
        needle: String,
        /// How long.
        waited: Duration,
        /// Its log.
        logs: String,
    },
    /// A container exited before it was ready.
    #[error(
        "container {container} exited with status {status} before it was ready; its log:\n{logs}"
    )]
    Exited {
        /// The container.
        container: String,
        /// Its exit status.
        status: i64,
        /// Its log.
        logs: String,
    },
}

type Result<T> = std::result::Result<T, TopologyError>;

fn docker_err(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> TopologyError {
    let what = what.into();
    move |source| TopologyError::Docker { what, source }
}

/// An image to build `FROM scratch`: files copied from the host, empty directories, an entrypoint.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    repository: String,
    files: Vec<(PathBuf, String)>,
    dirs: Vec<String>,
    entrypoint: Vec<String>,
}

impl ImageSpec {
    /// An empty image named `repository` (the tag is the content hash).
    pub fn new(repository: impl Into<String>) -> Self {
        ImageSpec {
            repository: repository.into(),
            files: Vec::new(),
            dirs: vec!["/tmp".into(), "/run".into()],
            entrypoint: Vec::new(),
        }
    }

    /// Adds the host file `host` at `path` in the image.
    pub fn file(mut self, host: impl Into<PathBuf>, path: impl Into<String>) -> Self {
        self.files.push((host.into(), path.into()));
        self
    }

    /// Adds a dynamically linked binary at `path` with every shared library `ldd` lists for it,
    /// at the same paths as on the host.
    pub fn binary(mut self, host: impl Into<PathBuf>, path: impl Into<String>) -> Self {
        let host = host.into();
        self.files.push((host.clone(), path.into()));
        self.dirs.push(format!("!ldd:{}", host.display()));
        self
    }

    /// Adds an empty directory.
    pub fn dir(mut self, path: impl Into<String>) -> Self {
        self.dirs.push(path.into());
        self
    }

    /// The command the image runs.
    pub fn entrypoint<S: Into<String>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Every file with the libraries expanded, deduplicated by image path, and the directories.
    fn resolved(&self) -> Result<Resolved> {
        let mut files = self.files.clone();
        let mut dirs = Vec::new();
        for d in &self.dirs {
            match d.strip_prefix("!ldd:") {
                Some(bin) => {
                    for lib in ldd_closure(Path::new(bin))? {
                        let path = lib.display().to_string();
                        files.push((lib, path));
                    }
                }
                None => dirs.push(d.clone()),
            }
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|(_, p)| seen.insert(p.clone()));
        Ok((files, dirs))
    }
}

/// `(host file, image path)` pairs and image directories.
type Resolved = (Vec<(PathBuf, String)>, Vec<String>);

/// The shared libraries `ldd` lists for `binary` (and the loader).
///
/// # Errors
/// [`TopologyError::Io`] if `ldd` cannot run or fails.
pub fn ldd_closure(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| TopologyError::Io {
            what: format!("run ldd {}", binary.display()),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("statically linked") {
        return Err(TopologyError::Io {
            what: format!("ldd {}", binary.display()),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        });
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `repository:tag`, the tag being the content hash.
    pub name: String,
    /// Whether this call built it (false: an image with this content existed already).
    pub built: bool,
}

/// A network of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name (run id first).
    pub name: String,
    /// Its IPv4 subnet.
    pub subnet: String,
    /// Its IPv6 subnet, on a dual-stack network.
    pub subnet_v6: Option<String>,
}

/// A container to run: hardened by default (every capability dropped, no new privileges, Docker's
/// default seccomp, no devices, not privileged).
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    name: String,
    image: String,
    networks: Vec<(String, Vec<String>)>,
    addresses: HashMap<String, (Option<String>, Option<String>)>,
    cmd: Vec<String>,
    binds: Vec<String>,
    env: Vec<String>,
    cap_add: Vec<String>,
    devices: Vec<String>,
    sysctls: HashMap<String, String>,
}

impl ContainerSpec {
    /// A container called `name` (the lab prefixes its run id) from `image`.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            networks: Vec::new(),
            addresses: HashMap::new(),
            cmd: Vec::new(),
            binds: Vec::new(),
            env: Vec::new(),
            cap_add: Vec::new(),
            devices: Vec::new(),
            sysctls: HashMap::new(),
        }
    }

    /// Attaches it to `network` with DNS `aliases` (the first network at create, the others after).
    pub fn network<S: Into<String>>(
        mut self,
        network: &str,
        aliases: impl IntoIterator<Item = S>,
    ) -> Self {
        self.networks.push((
            network.to_owned(),
            aliases.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Fixes its addresses on `network` (one it is attached to): IPv4, and IPv6 on a dual-stack
    /// network.
    pub fn addresses(mut self, network: &str, ipv4: Option<&str>, ipv6: Option<&str>) -> Self {
        self.addresses.insert(
            network.to_owned(),
            (ipv4.map(str::to_owned), ipv6.map(str::to_owned)),
        );
        self
    }

    /// Arguments after the image's entrypoint.
    pub fn cmd<S: Into<String>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.cmd = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Mounts the host directory `host` read-only at `path`.
    pub fn mount_ro(mut self, host: &Path, path: &str) -> Self {
        self.binds.push(format!("{}:{path}:ro", host.display()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Grants a capability (for a peer that needs one, such as wireguard-go's NET_ADMIN).
    pub fn cap_add(mut self, cap: &str) -> Self {
        self.cap_add.push(cap.to_owned());
        self
    }

    /// Sets a namespaced sysctl in the container (`net.ipv6.conf.all.disable_ipv6` = `0`, so
    /// interfaces it creates get IPv6).
    pub fn sysctl(mut self, key: &str, value: &str) -> Self {
        self.sysctls.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Passes a host device through (`/dev/net/tun` for wireguard-go).
    pub fn device(mut self, path: &str) -> Self {
        self.devices.push(path.to_owned());
        self
    }
}

/// A running (or exited) container of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Docker's id.
    pub id: String,
    /// Its name (run id first).
    pub name: String,
}

/// One run's Docker resources.
#[derive(Debug)]
pub struct Lab {
    docker: Docker,
    rt: tokio::runtime::Runtime,
    run_id: String,
    /// A named lab outlives its process: not removed on drop, never swept as a dead run's.
    named: bool,
}

impl Lab {
    /// Connects to the daemon, sweeps what dead runs left behind, and starts a new run.
    ///
    /// # Errors
    /// [`TopologyError::DockerUnavailable`] when no daemon answers.
    pub fn connect() -> Result<Lab> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let run_id = format!("pm{}-{:05x}", std::process::id(), nonce & 0xfffff);
        let lab = Lab::open(run_id, false)?;
        lab.sweep_dead_runs();
        Ok(lab)
    }

    /// Connects to the daemon for the lab called `name` (the run id of every resource), which one
    /// process may create and a later one use or tear down: dropping it removes nothing, and the
    /// sweep of dead runs leaves it alone. Use [`teardown`](Self::teardown) to remove it.
    ///
    /// # Errors
    /// [`TopologyError::DockerUnavailable`] when no daemon answers.
    pub fn connect_named(name: &str) -> Result<Lab> {
        Lab::open(name.to_owned(), true)
    }

    fn open(run_id: String, named: bool) -> Result<Lab> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| TopologyError::Io {
                what: "start the tokio runtime".into(),
                source,
            })?;
        let docker = Docker::connect_with_local_defaults()
            .map_err(|source| TopologyError::DockerUnavailable { source })?;
        let docker = rt
            .block_on(docker.negotiate_version())
            .map_err(|source| TopologyError::DockerUnavailable { source })?;
        rt.block_on(docker.version())
            .map_err(|source| TopologyError::DockerUnavailable { source })?;
        Ok(Lab {
            docker,
            rt,
            run_id,
            named,
        })
    }

    /// This run's id (the prefix of every name, the value of [`RUN_LABEL`]).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(RUN_LABEL.to_owned(), self.run_id.clone())])
    }

    /// Builds `spec` unless an image with the same content exists; the tag is a hash of every file,
    /// path and the entrypoint, so two harnesses with the same binaries share one image.
    ///
    /// # Errors
    /// [`TopologyError`] for an unreadable file or a failed build.
    pub fn ensure_image(&self, spec: &ImageSpec) -> Result<ImageRef> {
        let (files, dirs) = spec.resolved()?;
        let mut contents = Vec::with_capacity(files.len());
        let mut hasher = blake2::Blake2s256::default();
        use blake2::Digest;
        for (host, path) in &files {
            let data = std::fs::read(host).map_err(|source| TopologyError::Io {
                what: format!("read {}", host.display()),
                source,
            })?;
            hasher.update(path.as_bytes());
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(&data);
            contents.push((path.clone(), data));
        }
        for d in &dirs {
            hasher.update(b"dir:");
            hasher.update(d.as_bytes());
        }
        for a in &spec.entrypoint {
            hasher.update(b"arg:");
            hasher.update(a.as_bytes());
        }
        let digest = hasher.finalize();
        let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let name = format!("{}:{tag}", spec.repository);
        if self.rt.block_on(self.docker.inspect_image(&name)).is_ok() {
            return Ok(ImageRef { name, built: false });
        }
        let entrypoint = spec
            .entrypoint
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let dockerfile = format!(
            "FROM scratch\nCOPY rootfs/ /\nLABEL pnet-mesh.image=\"{}\"\nENTRYPOINT [{entrypoint}]\n",
            spec.repository
        );
        let context =
            build_context(&dockerfile, &contents, &dirs).map_err(|source| TopologyError::Io {
                what: "write the build context".into(),
                source,
            })?;
        let options = BuildImageOptionsBuilder::new().t(&name).rm(true).build();
        let mut stream = self.docker.build_image(
            options,
            None,
            Some(bollard::body_full(bytes::Bytes::from(context))),
        );
        let mut log = String::new();
        let failure = self.rt.block_on(async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(s) = info.stream {
                            log.push_str(&s);
                        }
                        if let Some(detail) = info.error_detail {
                            return Some(detail.message.unwrap_or_default());
                        }
                    }
                    Err(e) => return Some(e.to_string()),
                }
            }
            None
        });
        if let Some(message) = failure {
            return Err(TopologyError::Build {
                image: name,
                message: format!("{message}\n{log}"),
            });
        }
        Ok(ImageRef { name, built: true })
    }

    /// Creates a labeled bridge network `<run id>-<name>` with an IPv4 /24 from a pool (another
    /// subnet when Docker reports an overlap).
    ///
    /// # Errors
    /// [`TopologyError::Docker`] when no subnet is free or the call fails.
    pub fn network(&self, name: &str) -> Result<Network> {
        let full = format!("{}-{name}", self.run_id);
        let start = (std::process::id() as usize * 7 + name.len() * 13) % 200;
        let mut last = None;
        for k in 0..40 {
            let n = (start + k * 17) % 200;
            let subnet = format!("10.{}.{}.0/24", 230 + n / 100 * 10 + (n / 10) % 10, n % 250);
            let request = NetworkCreateRequest {
                name: full.clone(),
                driver: Some("bridge".into()),
                labels: Some(self.labels()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.clone()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match self.rt.block_on(self.docker.create_network(request)) {
                Ok(_) => {
                    return Ok(Network {
                        name: full,
                        subnet,
                        subnet_v6: None,
                    });
                }
                Err(e) if e.to_string().contains("overlap") => last = Some(e),
                Err(e) => return Err(docker_err(format!("create network {full}"))(e)),
            }
        }
        Err(docker_err(format!(
            "create network {full} (no free subnet)"
        ))(last.unwrap_or(
            bollard::errors::Error::DockerResponseServerError {
                status_code: 0,
                message: "no subnet tried".into(),
            },
        )))
    }

    /// Creates a labeled dual-stack bridge network `<run id>-<name>` with the given IPv4 and IPv6
    /// subnets (a fixed topology; an overlap with an existing network is an error).
    ///
    /// # Errors
    /// [`TopologyError::Docker`] naming the network and subnets.
    pub fn dual_stack_network(&self, name: &str, subnet: &str, subnet_v6: &str) -> Result<Network> {
        let full = format!("{}-{name}", self.run_id);
        let ipam = [subnet, subnet_v6]
            .into_iter()
            .map(|s| IpamConfig {
                subnet: Some(s.to_owned()),
                ..Default::default()
            })
            .collect();
        let request = NetworkCreateRequest {
            name: full.clone(),
            driver: Some("bridge".into()),
            enable_ipv6: Some(true),
            labels: Some(self.labels()),
            ipam: Some(Ipam {
                config: Some(ipam),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.rt
            .block_on(self.docker.create_network(request))
            .map_err(docker_err(format!(
                "create network {full} ({subnet}, {subnet_v6})"
            )))?;
        Ok(Network {
            name: full,
            subnet: subnet.to_owned(),
            subnet_v6: Some(subnet_v6.to_owned()),
        })
    }

    /// Adds the tag `tag` (`repository:tag`) to `image`, so it can be run by a fixed name.
    ///
    /// # Errors
    /// [`TopologyError::Docker`].
    pub fn tag_image(&self, image: &ImageRef, tag: &str) -> Result<()> {
        let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repo)
            .tag(version)
            .build();
        self.rt
            .block_on(self.docker.tag_image(&image.name, Some(options)))
            .map_err(docker_err(format!("tag {} as {tag}", image.name)))
    }

    /// The lab's container called `name` (without the run id), if it exists.
    pub fn container(&self, name: &str) -> Option<Container> {
        let full = format!("{}-{name}", self.run_id);
        let inspect = self
            .rt
            .block_on(self.docker.inspect_container(&full, None))
            .ok()?;
        Some(Container {
            id: inspect.id?,
            name: full,
        })
    }

    /// Whether an image by that name exists.
    pub fn has_image(&self, name: &str) -> bool {
        self.rt.block_on(self.docker.inspect_image(name)).is_ok()
    }

    /// The host process id of the container's first process (0 when it is not running).
    ///
    /// # Errors
    /// [`TopologyError::Docker`].
    pub fn host_pid(&self, c: &Container) -> Result<u32> {
        Ok(self
            .inspect(c)?
            .state
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0))
    }

    /// Creates `spec` on its first network, connects the others, then starts it.
    ///
    /// # Errors
    /// [`TopologyError::Docker`] naming the step.
    pub fn run(&self, spec: &ContainerSpec) -> Result<Container> {
        let name = format!("{}-{}", self.run_id, spec.name);
        let container = self.create(spec, &name)?;
        self.rt
            .block_on(self.docker.start_container(&container.id, None))
            .map_err(docker_err(format!("start {name}")))?;
        Ok(container)
    }

    fn create(&self, spec: &ContainerSpec, name: &str) -> Result<Container> {
        let endpoint = |net: &String, aliases: &Vec<String>| EndpointSettings {
            aliases: Some(aliases.clone()),
            ipam_config: spec.addresses.get(net).map(|(v4, v6)| {
                bollard::models::EndpointIpamConfig {
                    ipv4_address: v4.clone(),
                    ipv6_address: v6.clone(),
                    ..Default::default()
                }
            }),
            ..Default::default()
        };
        let networking = spec
            .networks
            .first()
            .map(|(net, aliases)| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(net.clone(), endpoint(net, aliases))])),
            });
        let devices = spec
            .devices
            .iter()
            .map(|d| bollard::models::DeviceMapping {
                path_on_host: Some(d.clone()),
                path_in_container: Some(d.clone()),
                cgroup_permissions: Some("rwm".into()),
            })
            .collect::<Vec<_>>();
        let host_config = HostConfig {
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            devices: (!devices.is_empty()).then_some(devices),
            network_mode: spec.networks.first().map(|(n, _)| n.clone()),
            sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: Some(self.labels()),
            host_config: Some(host_config),
            networking_config: networking,
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .rt
            .block_on(self.docker.create_container(Some(options), body))
            .map_err(docker_err(format!("create {name}")))?;
        for (net, aliases) in spec.networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(endpoint(net, aliases)),
            };
            self.rt
                .block_on(self.docker.connect_network(net, request))
                .map_err(docker_err(format!("connect {name} to {net}")))?;
        }
        Ok(Container {
            id: created.id,
            name: name.to_owned(),
        })
    }

    /// Waits until the container's log has a line containing `needle`.
    ///
    /// # Errors
    /// [`TopologyError::Exited`] if it exits first, [`TopologyError::NotReady`] after `timeout`;
    /// both carry its log.
    pub fn wait_for_log(&self, c: &Container, needle: &str, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let logs = self.logs(c)?;
            if logs.lines().any(|l| l.contains(needle)) {
                return Ok(());
            }
            let state = self.inspect(c)?.state;
            let exited = state.filter(|s| {
                s.running == Some(false)
                    && s.exit_code.is_some()
                    && s.status.is_some()
                    && s.status != Some(bollard::models::ContainerStateStatusEnum::CREATED)
            });
            if let Some(s) = exited {
                return Err(TopologyError::Exited {
                    container: c.name.clone(),
                    status: s.exit_code.unwrap_or(-1),
                    logs: self.logs(c)?,
                });
            }
            if started.elapsed() > timeout {
                return Err(TopologyError::NotReady {
                    container: c.name.clone(),
                    needle: needle.to_owned(),
                    waited: timeout,
                    logs,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The container's whole log, stdout and stderr interleaved.
    ///
    /// # Errors
    /// [`TopologyError::Docker`].
    pub fn logs(&self, c: &Container) -> Result<String> {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut stream = self.docker.logs(&c.id, Some(options));
        self.rt.block_on(async {
            let mut out = String::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => out.push_str(&chunk.to_string()),
                    Err(e) => return Err(docker_err(format!("logs of {}", c.name))(e)),
                }
            }
            Ok(out)
        })
    }

    /// The container as Docker reports it.
    ///
    /// # Errors
    /// [`TopologyError::Docker`].
    pub fn inspect(&self, c: &Container) -> Result<ContainerInspectResponse> {
        self.rt
            .block_on(self.docker.inspect_container(&c.id, None))
            .map_err(docker_err(format!("inspect {}", c.name)))
    }

    /// The container's IPv4 address on `network`.
    ///
    /// # Errors
    /// [`TopologyError::Docker`] if it has none there.
    pub fn ipv4(&self, c: &Container, network: &Network) -> Result<Ipv4Addr> {
        let inspect = self.inspect(c)?;
        inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|n| n.get(&network.name).cloned())
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| {
                docker_err(format!("address of {} on {}", c.name, network.name))(
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 0,
                        message: "no IPv4 address on that network".into(),
                    },
                )
            })
    }

    /// Runs `argv` in the container; returns its exit status and output.
    ///
    /// # Errors
    /// [`TopologyError::Docker`].
    pub fn exec<S: Into<String>>(
        &self,
        c: &Container,
        argv: impl IntoIterator<Item = S>,
    ) -> Result<(i64, String)> {
        let config = bollard::models::ExecConfig {
            cmd: Some(argv.into_iter().map(Into::into).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        self.rt.block_on(async {
            let created = self
                .docker
                .create_exec(&c.id, config)
                .await
                .map_err(docker_err(format!("exec in {}", c.name)))?;
            let started = self
                .docker
                .start_exec(&created.id, None)
                .await
                .map_err(docker_err(format!("start exec in {}", c.name)))?;
            let mut out = String::new();
            if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
                while let Some(Ok(chunk)) = output.next().await {
                    out.push_str(&chunk.to_string());
                }
            }
            let inspect = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(docker_err(format!("inspect exec in {}", c.name)))?;
            Ok((inspect.exit_code.unwrap_or(-1), out))
        })
    }

    /// Restarts the container (stop with a one-second grace, then start).
    ///
    /// # Errors
    /// [`TopologyError::Docker`].
    pub fn restart(&self, c: &Container) -> Result<()> {
        let options = RestartContainerOptionsBuilder::new().t(1).build();
        self.rt
            .block_on(self.docker.restart_container(&c.id, Some(options)))
            .map_err(docker_err(format!("restart {}", c.name)))
    }

    /// Removes this run's containers and networks (also done on drop).
    pub fn teardown(&self) {
        self.remove_labeled(&format!("{RUN_LABEL}={}", self.run_id));
    }

    /// Removes the resources of runs whose process is gone.
    fn sweep_dead_runs(&self) {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&HashMap::from([("label", vec![RUN_LABEL])]))
            .build();
        let mut runs: Vec<String> = self
            .rt
            .block_on(self.docker.list_containers(Some(options)))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.labels.and_then(|l| l.get(RUN_LABEL).cloned()))
            .collect();
        let options = ListNetworksOptionsBuilder::new()
            .filters(&HashMap::from([("label", vec![RUN_LABEL])]))
            .build();
        runs.extend(
            self.rt
                .block_on(self.docker.list_networks(Some(options)))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|n| n.labels.and_then(|l| l.get(RUN_LABEL).cloned())),
        );
        runs.sort();
        runs.dedup();
        for run in runs {
            // Only process-bound runs (`pm<pid>-…`) are swept; a named lab is its owner's to remove.
            let Some(pid) = run
                .strip_prefix("pm")
                .and_then(|r| r.split_once('-'))
                .and_then(|(p, _)| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                self.remove_labeled(&format!("{RUN_LABEL}={run}"));
            }
        }
    }

    /// Ids of the containers and networks that carry `label` (`key=value`).
    fn labeled(&self, label: &str) -> (Vec<String>, Vec<String>) {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .rt
            .block_on(self.docker.list_containers(Some(options)))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self
            .rt
            .block_on(self.docker.list_networks(Some(options)))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.id)
            .collect();
        (containers, networks)
    }

    fn remove_labeled(&self, label: &str) {
        let (containers, networks) = self.labeled(label);
        for id in containers {
            let options = RemoveContainerOptionsBuilder::new().force(true).build();
            let _ = self
                .rt
                .block_on(self.docker.remove_container(&id, Some(options)));
        }
        for id in networks {
            let _ = self.rt.block_on(self.docker.remove_network(&id));
        }
    }

    /// Containers and networks of this run still present (0 after a teardown).
    pub fn resources_left(&self) -> usize {
        let (containers, networks) = self.labeled(&format!("{RUN_LABEL}={}", self.run_id));
        containers.len() + networks.len()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.named {
            self.teardown();
        }
    }
}

/// A tar of the Dockerfile and `rootfs/` with the files and directories.
fn build_context(
    dockerfile: &str,
    files: &[(String, Vec<u8>)],
    dirs: &[String],
) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, data)
    };
    add("Dockerfile", dockerfile.as_bytes(), 0o644)?;
    for (path, data) in files {
        add(
            &format!("rootfs/{}", path.trim_start_matches('/')),
            data,
            0o755,
        )?;
    }
    let mut tar_dirs = tar;
    for d in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_cksum();
        tar_dirs.append_data(
            &mut header,
            format!("rootfs/{}/", d.trim_start_matches('/')),
            std::io::empty(),
        )?;
    }
    tar_dirs.into_inner()
}
