//! The control socket through which `show` asks a running node for its status: a Unix stream socket
//! readable and writable by its owner only, in an owner-only run directory. One request per
//! connection: the line `show`, answered with one JSON object and the connection closed.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::status::Status;

/// Longest path a Unix socket address holds (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// A status is a few KiB per peer; this bounds what `show` reads from a socket.
const MAX_REPLY: u64 = 16 << 20;

fn own_uid() -> Option<u32> {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Where control sockets live: `$PNET_MESH_RUN_DIR`, else `/run/pnet-mesh` for root, else
/// `$XDG_RUNTIME_DIR/pnet-mesh`, else `/tmp/pnet-mesh-UID`.
pub fn run_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PNET_MESH_RUN_DIR") {
        return dir.into();
    }
    let uid = own_uid();
    if uid == Some(0) {
        return "/run/pnet-mesh".into();
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return Path::new(&dir).join("pnet-mesh");
    }
    format!("/tmp/pnet-mesh-{}", uid.unwrap_or(u32::MAX)).into()
}

/// The socket of the node called `name`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// Every control socket in `dir`, sorted.
pub fn running_sockets(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| {
        format!(
            "no running pnet-mesh node found (cannot read {}: {e})",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!(
            "no running pnet-mesh node found (no control socket in {})",
            dir.display()
        ));
    }
    Ok(paths)
}

/// Asks the node at `path` for its status.
pub fn query(path: &Path) -> Result<Status, String> {
    let mut stream = UnixStream::connect(path)
        .map_err(|e| format!("no node answers at {}: {e}", path.display()))?;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.write_all(b"show\n").map_err(io)?;
    let mut reply = String::new();
    stream
        .take(MAX_REPLY)
        .read_to_string(&mut reply)
        .map_err(io)?;
    serde_json::from_str(&reply)
        .map_err(|e| format!("{}: not a status ({e}): {}", path.display(), reply.trim()))
}

/// The listening side, owned by `up`. The socket file is removed when it drops.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds `path` with mode 0600. When `private_dir` is set, its directory is created 0700 if
    /// missing and refused if it belongs to someone else or others may enter it.
    pub fn bind(path: &Path, private_dir: bool) -> Result<Server, String> {
        let shown = path.display();
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "control socket path {shown} is longer than {MAX_SOCKET_PATH} bytes"
            ));
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if private_dir {
            prepare_private_dir(dir)?;
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(format!(
                    "control socket path {shown} exists and is not a socket"
                ));
            }
            Ok(_) => {
                if UnixStream::connect(path).is_ok() {
                    return Err(format!(
                        "another node already answers at {shown}; give this one another --name"
                    ));
                }
                // A stale socket of a node that did not exit cleanly.
                fs::remove_file(path).map_err(|e| format!("cannot remove stale {shown}: {e}"))?;
            }
            Err(_) => {}
        }
        // Bound under a temporary name and renamed once owner-only, so that nobody else can
        // connect in between.
        let temporary = path.with_extension(format!("sock.{}", std::process::id()));
        let _ = fs::remove_file(&temporary);
        let listener = UnixListener::bind(&temporary)
            .map_err(|e| format!("cannot bind control socket {}: {e}", temporary.display()))?;
        let ready = fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))
            .and_then(|()| fs::rename(&temporary, path));
        if let Err(e) = ready {
            let _ = fs::remove_file(&temporary);
            return Err(format!("cannot set up control socket {shown}: {e}"));
        }
        Ok(Server {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers requests until `stop` is set (and [`wake`](Self::wake) called).
    pub fn serve(&self, stop: &AtomicBool, status: impl Fn() -> Status) {
        for stream in self.listener.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let Ok(stream) = stream else { continue };
            if let Err(e) = answer(stream, &status) {
                tracing::debug!(error = %e, "control request failed");
            }
        }
    }

    /// Unblocks [`serve`](Self::serve) so that it sees `stop`.
    pub fn wake(&self) {
        let _ = UnixStream::connect(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn answer(stream: UnixStream, status: &impl Fn() -> Status) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = String::new();
    BufReader::new(&stream).take(64).read_line(&mut request)?;
    let reply = match request.trim() {
        "show" => serde_json::to_string(&status()).map_err(std::io::Error::other)?,
        other => serde_json::json!({ "error": format!("unknown request `{other}`") }).to_string(),
    };
    (&stream).write_all(reply.as_bytes())?;
    (&stream).write_all(b"\n")
}

fn prepare_private_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create control directory {shown}: {e}"))?;
    let meta = fs::metadata(dir).map_err(|e| format!("{shown}: {e}"))?;
    if own_uid().is_some_and(|uid| uid != meta.uid()) {
        return Err(format!(
            "control directory {shown} belongs to uid {}, not to us; set PNET_MESH_RUN_DIR or --control",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "control directory {shown} has mode {:o}; others could reach the socket (want 0700)",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pnet-mesh-control-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn socket_is_owner_only_answers_and_is_removed_on_drop() {
        let dir = temp_dir("serve").join("run");
        let path = socket_path(&dir, "wg0");
        let server = Server::bind(&path, true).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::symlink_metadata(&path).unwrap().mode() & 0o777, 0o600);
        // A second node cannot take the same name while the first answers.
        let err = Server::bind(&path, true).unwrap_err();
        assert!(err.contains("another node already answers"), "{err}");
        assert_eq!(running_sockets(&dir).unwrap(), std::slice::from_ref(&path));

        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| server.serve(&stop, || crate::status::tests_support::status("wg0")));
            let status = query(&path).unwrap();
            assert_eq!(status.interface, "wg0");
            stop.store(true, Ordering::Release);
            server.wake();
        });
        drop(server);
        assert!(!path.exists());
        assert!(
            running_sockets(&dir)
                .unwrap_err()
                .contains("no control socket")
        );
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn stale_sockets_are_replaced_and_open_directories_refused() {
        let dir = temp_dir("stale");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap();
        let path = socket_path(&dir, "old");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a stale socket file is left behind");
        let server = Server::bind(&path, true).unwrap();
        drop(server);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Server::bind(&path, true).unwrap_err();
        assert!(err.contains("has mode 755"), "{err}");
        // An explicit --control path does not require a private directory.
        drop(Server::bind(&path, false).unwrap());

        fs::write(dir.join("file.sock"), b"").unwrap();
        let err = Server::bind(&dir.join("file.sock"), false).unwrap_err();
        assert!(err.contains("is not a socket"), "{err}");
        assert!(
            query(&dir.join("missing.sock"))
                .unwrap_err()
                .contains("no node answers")
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
