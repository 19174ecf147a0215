//! The control socket: how `host ps` reaches a running host. Only the
//! user who runs the host can open it.
//!
//! Each `host run` listens on a Unix socket named after its pid, in
//! a directory only its user can enter: `$XDG_RUNTIME_DIR/hive`, or
//! `/tmp/hive-<uid>`. The directory is created with mode 0700, and it is
//! refused if it is not the user's own or others can enter it. The socket
//! itself is mode 0600. Every connection's peer credentials are checked
//! too (`SO_PEERCRED`: the same uid, or root). The protocol is one request
//! line (`ps`) and one JSON answer. The file is removed when the host
//! ends; one left by a killed host is removed by the next `host ps` that
//! finds nobody listening on it.

use crate::runtime::Runtime;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// The directory of this user's control sockets.
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("hive"),
        _ => PathBuf::from(format!("/tmp/hive-{}", uid())),
    }
}

fn uid() -> u32 {
    crate::runtime::unix::euid()
}

/// Creates (or checks) the socket directory: ours, mode 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid() || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "`{}` is not a directory only this user can enter (mode 0700, owned by uid {})",
                dir.display(),
                uid()
            ),
        ));
    }
    Ok(())
}

/// A host's control socket, removed when dropped.
pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts serving `host ps` for `rt`. A host that cannot (no private
/// directory) runs without it, with a warning.
pub fn serve(rt: Runtime) -> Option<ControlSocket> {
    let dir = socket_dir();
    let started = private_dir(&dir).and_then(|()| {
        let path = dir.join(format!("{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok((path, listener))
    });
    let (path, listener) = match started {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!("no control socket (`host ps` will not see this host): {e}");
            return None;
        }
    };
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let rt = rt.clone();
            tokio::spawn(async move {
                let _ = answer(rt, stream).await;
            });
        }
    });
    Some(ControlSocket { path, task })
}

/// The longest request line.
const MAX_REQUEST: usize = 256;

async fn answer(rt: Runtime, stream: tokio::net::UnixStream) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    if peer.uid() != uid() && peer.uid() != 0 {
        return Ok(());
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = tokio::io::BufReader::new(read.take(MAX_REQUEST as u64));
    read.read_line(&mut line).await?;
    let reply = match line.trim() {
        "ps" => ps(&rt),
        other => serde_json::json!({ "error": format!("unknown request `{other}`: try `ps`") }),
    };
    write.write_all(reply.to_string().as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await
}

/// Every live process and listener of the host.
fn ps(rt: &Runtime) -> serde_json::Value {
    let mut procs = rt.processes().select(|_| true);
    procs.sort_by_key(|p| p.pid);
    let processes: Vec<serde_json::Value> = procs
        .iter()
        .map(|p| {
            serde_json::json!({
                "pid": p.pid,
                "ppid": p.parent_pid(),
                "kind": if p.is_os() { "os" } else { "wasm" },
                "name": p.name,
                "state": if p.status().is_some() { "exited" } else { "running" },
                "memory": p.memory_bytes(),
                "cpu_ms": p.cpu_us().map(|us| us / 1000),
                "children": p.child_count(),
                "restarts": p.restarts,
            })
        })
        .collect();
    let listeners: Vec<serde_json::Value> = rt
        .listeners()
        .all_stats()
        .into_iter()
        .map(|(cluster, l)| {
            serde_json::json!({
                "cluster": cluster,
                "address": l.local.to_string(),
                "policy": l.policy.name(),
                "workers": l.workers.iter().map(|w| serde_json::json!({
                    "worker": w.worker,
                    "open": w.open,
                    "connections": w.connections,
                    "requests": w.requests,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "host": std::process::id(),
        "processes": processes,
        "listeners": listeners,
    })
}

/// Asks the host listening on `socket` for its processes.
pub fn request(socket: &Path) -> std::io::Result<serde_json::Value> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    stream.write_all(b"ps\n")?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}
