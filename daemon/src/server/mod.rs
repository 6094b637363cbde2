//! The socket: binding it safely, accepting clients under a limit, and
//! shutting down gracefully.

mod connection;
pub(crate) mod handlers;
pub mod peers;

pub use handlers::metrics_text;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use appforge_shared::codec::FrameBudget;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{tokio::Listener, GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Settings;
use crate::state::Daemon;

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long a frame waits for room in the budget of frames in flight
/// before it is refused (and at most half the client time-out, so the
/// refusal says why rather than the silence).
const FRAME_BUDGET_WAIT: Duration = Duration::from_secs(5);

/// A listening socket and the lock that makes this daemon its only owner.
pub struct BoundSocket {
    listener: Listener,
    path: PathBuf,
    _lock: Flock<File>,
}

/// Binds the socket, refusing to when a live daemon owns it and replacing a
/// stale socket file left by a dead one.
pub fn bind(settings: &Settings) -> anyhow::Result<BoundSocket> {
    let path = &settings.socket;
    let parent = path
        .parent()
        .context("the socket path has no parent folder")?;
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("could not create the socket folder {}", parent.display()))?;
    }
    let lock = take_lock(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "another daemon already answers on {}; stop it first or choose another --socket",
                    path.display()
                );
            }
            info!(socket = %path.display(), "replacing a stale socket file");
            std::fs::remove_file(path)
                .with_context(|| format!("could not remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("could not inspect {}", path.display())),
    }
    let name = path
        .as_path()
        .to_fs_name::<GenericFilePath>()
        .with_context(|| format!("{} is not a usable socket path", path.display()))?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(settings.socket_mode as nix::libc::mode_t)
        .reclaim_name(false)
        .create_tokio()
        .with_context(|| format!("could not listen on {}", path.display()))?;
    Ok(BoundSocket {
        listener,
        path: path.clone(),
        _lock: lock,
    })
}

/// Takes an exclusive lock beside the socket, held for the daemon's life, so
/// two daemons starting at once cannot both decide the socket is stale.
fn take_lock(socket: &Path) -> anyhow::Result<Flock<File>> {
    let lock_path = socket.with_extension("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("could not open the lock file {}", lock_path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            write!(lock, "{}", std::process::id())?;
            Ok(lock)
        }
        Err((file, _)) => {
            let holder = std::io::read_to_string(&file).unwrap_or_default();
            bail!(
                "another appforged (pid {}) is already running on {}; stop it first or choose another --socket",
                holder.trim(),
                socket.display()
            )
        }
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("could not watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("could not watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
    })
}

/// Serves clients until `shutdown` resolves, then lets in-flight requests
/// finish and removes the socket file.
pub async fn run(
    socket: BoundSocket,
    daemon: Arc<Daemon>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let budget = FrameBudget::new(
        daemon.settings.max_frame_bytes_in_flight,
        FRAME_BUDGET_WAIT.min(daemon.settings.client_timeout / 2),
    );
    let peers = Arc::new(peers::PeerSlots::new(
        daemon.settings.max_connections,
        daemon.settings.max_connections_per_client,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = socket.listener.accept() => match accepted {
                Ok(stream) => {
                    connections.spawn(connection::serve(
                        stream,
                        Arc::clone(&daemon),
                        stop_rx.clone(),
                        budget.clone(),
                        Arc::clone(&peers),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    warn!(error = %e, "accepting a client failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // New clients now fail at once; the ones connected finish their request.
    drop(socket.listener);
    if let Err(e) = std::fs::remove_file(&socket.path) {
        warn!(error = %e, "could not remove the socket file");
    }
    let _ = stop_tx.send(true);
    if !connections.is_empty() {
        info!(
            clients = connections.len(),
            "waiting for in-flight requests"
        );
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            clients = connections.len(),
            "requests still running after the grace period; dropping them"
        );
        connections.abort_all();
    }
}
