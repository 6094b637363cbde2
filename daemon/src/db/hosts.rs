//! Daemons sharing one database, one per host. A daemon claims its host name
//! at start-up and holds the claim while it runs: on PostgreSQL as a
//! session advisory lock on a connection of its own, which the server drops
//! with the connection when the daemon dies, however it dies. So "is host
//! B's daemon running?" is answered by the server, with no heartbeat to
//! keep or to go stale. On SQLite, a lock on a file beside the database
//! keeps a second daemon off the same file.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use super::{now, Db, DbError};
use crate::params;

/// This daemon's claim on its host name.
pub struct HostLease {
    host: String,
    /// The connection holding the advisory lock (PostgreSQL only).
    lock: Option<tokio_postgres::Client>,
    /// The lock on the SQLite file (SQLite only): one daemon a file,
    /// whatever its socket.
    _file: Option<Flock<File>>,
}

/// Why a host name could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another daemon holds it.
    #[error(
        "another appforged already runs as host `{host}` on this database ({holder}); stop \
         it first, or give this one its own --host-name"
    )]
    Taken {
        /// The host name.
        host: String,
        /// Who holds it: pid, socket and start time, as registered.
        holder: String,
    },
    /// Another daemon uses the same SQLite file.
    #[error(
        "another appforged already uses the database {database} ({holder}); stop it first, \
         or give this one its own --data-dir"
    )]
    FileTaken {
        /// The SQLite file.
        database: String,
        /// Who holds it, as registered.
        holder: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl HostLease {
    /// Claims `host` for this daemon, registering its pid and socket.
    pub async fn claim(db: &Db, host: &str, socket: &Path) -> Result<HostLease, ClaimError> {
        let lock = match db.postgres() {
            Some(pg) => {
                let client = pg.dedicated().await?;
                let mut patience = DEAD_HOLDER_PATIENCE;
                loop {
                    let got: bool = client
                        .query_one("SELECT pg_try_advisory_lock($1)", &[&key(host)])
                        .await
                        .map_err(DbError::from)?
                        .get(0);
                    if got {
                        break;
                    }
                    // A holder of this host name that died (kill -9) may
                    // still hold the lock until the server sees its
                    // connection close: give the server that moment.
                    let (pid, holder) = holder(db, host).await?;
                    let dead = pid.is_some_and(|pid| !process_exists(pid));
                    if !dead || patience.is_zero() {
                        return Err(ClaimError::Taken {
                            host: host.to_string(),
                            holder,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    patience = patience.saturating_sub(Duration::from_millis(100));
                }
                Some(client)
            }
            None => None,
        };
        let file = match db.sqlite_path() {
            Some(path) => Some(lock_file(db, path).await?),
            None => None,
        };
        let (name, socket) = (host.to_string(), socket.display().to_string());
        db.call(move |c| {
            c.execute(
                "INSERT INTO daemons (host, pid, socket, started_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (host) DO UPDATE SET pid = excluded.pid, socket = excluded.socket, \
                 started_at = excluded.started_at",
                params![name, std::process::id(), socket, now()],
            )
        })
        .await?;
        Ok(HostLease {
            host: host.to_string(),
            lock,
            _file: file,
        })
    }

    /// The host name this daemon holds.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether `host`'s daemon runs now. With SQLite there is only this one.
    pub async fn is_alive(&self, host: &str) -> bool {
        if host == self.host {
            return true;
        }
        let Some(client) = &self.lock else {
            return false;
        };
        // Taking the lock proves no daemon holds it; it is given back at once.
        match client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key(host)])
            .await
        {
            Ok(row) if row.get::<_, bool>(0) => {
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key(host)])
                    .await;
                false
            }
            Ok(_) => true,
            // Unknown: say alive, so nothing is started twice.
            Err(e) => {
                tracing::warn!(error = %e, host, "could not ask the database whether a host's daemon runs");
                true
            }
        }
    }
}

/// Locks `<database>.lock` beside the SQLite file for the daemon's life:
/// two daemons on one file (with two sockets) would each supervise its apps.
async fn lock_file(db: &Db, database: &Path) -> Result<Flock<File>, ClaimError> {
    let path = database.with_extension("db.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DbError::Config(format!("cannot open {}: {e}", path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => Err(ClaimError::FileTaken {
            database: database.display().to_string(),
            holder: newest_holder(db).await?,
        }),
        Err((_, errno)) => {
            Err(DbError::Config(format!("cannot lock {}: {errno}", path.display())).into())
        }
    }
}

/// How long a claim waits for the server to drop a dead holder's lock.
const DEAD_HOLDER_PATIENCE: Duration = Duration::from_secs(10);

/// Whether a process of this machine exists (the holder of the same host
/// name runs on this machine).
fn process_exists(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Who holds `host`, as its row says: its pid, and a description.
async fn holder(db: &Db, host: &str) -> Result<(Option<i64>, String), DbError> {
    let host = host.to_string();
    let row: Option<(i64, String, String)> = db
        .call(move |c| {
            c.query_opt(
                "SELECT pid, socket, started_at FROM daemons WHERE host = $1",
                params![host],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .await?;
    Ok(match row {
        Some((pid, socket, started)) => (
            Some(pid),
            format!("pid {pid}, socket {socket}, started {started}"),
        ),
        None => (None, "it has not registered yet".into()),
    })
}

/// The daemon registered last, whatever its host name.
async fn newest_holder(db: &Db) -> Result<String, DbError> {
    let row: Option<(i64, String, String)> = db
        .call(|c| {
            c.query_opt(
                "SELECT pid, socket, started_at FROM daemons ORDER BY started_at DESC LIMIT 1",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .await?;
    Ok(match row {
        Some((pid, socket, started)) => format!("pid {pid}, socket {socket}, started {started}"),
        None => "it has not registered yet".into(),
    })
}

/// The advisory lock key of a host name: stable across daemons and builds.
fn key(host: &str) -> i64 {
    let digest = Sha256::digest(format!("appforge host {host}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_differ_by_host() {
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
    }

    #[tokio::test]
    async fn with_sqlite_only_this_host_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let lease = HostLease::claim(&db, "here", Path::new("/s"))
            .await
            .unwrap();
        assert!(lease.is_alive("here").await);
        assert!(!lease.is_alive("elsewhere").await);
        let pid: i64 = db
            .call(|c| {
                c.query_one("SELECT pid FROM daemons WHERE host = 'here'", &[], |r| {
                    r.get(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(pid, std::process::id() as i64);
    }
}
