//! Daemons sharing one database, one per host. A daemon claims its host name
//! at start-up and holds the claim while it runs: on PostgreSQL as a
//! session advisory lock on a connection of its own, which the server drops
//! with the connection when the daemon dies, however it dies. So "is host
//! B's daemon running?" is answered by the server, with no heartbeat to
//! keep or to go stale. When the server ends that connection (a restart,
//! an administrator), the daemon claims its host name again at once. On
//! SQLite, a lock on a file beside the database keeps a second daemon off
//! the same file.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

use super::postgres::Dedicated;
use super::{now, Db, DbError};
use crate::params;

/// This daemon's claim on its host name.
pub struct HostLease {
    host: String,
    /// The connection holding the advisory lock (PostgreSQL only), which
    /// the keeper replaces when the server ends it.
    lock: Option<Arc<RwLock<tokio_postgres::Client>>>,
    /// The task that claims the host name again (PostgreSQL only).
    keeper: Option<JoinHandle<()>>,
    /// The lock on the SQLite file (SQLite only): one daemon a file,
    /// whatever its socket.
    _file: Option<Flock<File>>,
}

impl Drop for HostLease {
    fn drop(&mut self) {
        if let Some(keeper) = &self.keeper {
            keeper.abort();
        }
    }
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
        let claimed = match db.postgres() {
            Some(pg) => {
                let dedicated = pg.dedicated().await?;
                let mut patience = DEAD_HOLDER_PATIENCE;
                while !try_lock(&dedicated.client, host).await? {
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
                Some(dedicated)
            }
            None => None,
        };
        let file = match db.sqlite_path() {
            Some(path) => Some(lock_file(db, path).await?),
            None => None,
        };
        let registration = Registration {
            host: host.to_string(),
            socket: socket.display().to_string(),
            started_at: now(),
        };
        registration.write(db).await?;
        let (lock, keeper) = match claimed {
            Some(dedicated) => {
                let lock = Arc::new(RwLock::new(dedicated.client));
                let keeper = tokio::spawn(keep(
                    db.clone(),
                    registration,
                    Arc::clone(&lock),
                    dedicated.ended,
                ));
                (Some(lock), Some(keeper))
            }
            None => (None, None),
        };
        Ok(HostLease {
            host: host.to_string(),
            lock,
            keeper,
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
        let Some(lock) = &self.lock else {
            return false;
        };
        let client = lock.read().await;
        // Taking the lock proves no daemon holds it; it is given back at once.
        match try_lock(&client, host).await {
            Ok(true) => {
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key(host)])
                    .await;
                false
            }
            Ok(false) => true,
            // Unknown: say alive, so nothing is started twice.
            Err(e) => {
                tracing::warn!(error = %e, host, "could not ask the database whether a host's daemon runs");
                true
            }
        }
    }
}

/// Takes the advisory lock of `host` on `client`'s session, if free.
async fn try_lock(client: &tokio_postgres::Client, host: &str) -> Result<bool, DbError> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key(host)])
        .await
        .map_err(DbError::from)?
        .get(0))
}

/// Claims `host` again each time the server ends the connection holding
/// the claim (a restart, an administrator). Without it, a second daemon
/// could take the host name meanwhile and start the same apps again.
async fn keep(
    db: Db,
    registration: Registration,
    lock: Arc<RwLock<tokio_postgres::Client>>,
    mut ended: JoinHandle<String>,
) {
    let host = registration.host.as_str();
    loop {
        let why = (&mut ended).await.unwrap_or_else(|e| e.to_string());
        tracing::error!(
            host,
            error = %why,
            "lost the database connection that holds this daemon's host claim; claiming it again"
        );
        let mut pause = Duration::from_millis(200);
        // Each trouble is logged once, not at every try.
        let (mut told_taken, mut told_failed) = (false, false);
        let dedicated = loop {
            match claim_again(&db, &registration).await {
                Ok(dedicated) => break dedicated,
                // Its own old session, which the server has not let go yet.
                Err(Again::Taken(Some(pid), _)) if pid == i64::from(std::process::id()) => {}
                Err(Again::Taken(_, holder)) if !told_taken => {
                    told_taken = true;
                    tracing::error!(
                        host,
                        holder,
                        "another appforged claimed this host name while this daemon's claim was \
                         lost, and may run the same apps: stop one of them"
                    );
                }
                Err(Again::Failed(e)) if !told_failed => {
                    told_failed = true;
                    tracing::warn!(host, error = %e, "could not claim the host name again yet; trying on");
                }
                Err(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        };
        *lock.write().await = dedicated.client;
        ended = dedicated.ended;
        tracing::info!(host, "claimed the host name again");
    }
}

/// Why a claim made again did not take.
enum Again {
    /// Another session holds it: the pid and description its row gives.
    Taken(Option<i64>, String),
    /// The database could not be asked.
    Failed(DbError),
}

/// Claims the host name again on a new connection and registers this
/// daemon again (another may have registered meanwhile).
async fn claim_again(db: &Db, registration: &Registration) -> Result<Dedicated, Again> {
    let pg = db
        .postgres()
        .ok_or_else(|| Again::Failed(DbError::Config("no PostgreSQL store".into())))?;
    let dedicated = pg.dedicated().await.map_err(Again::Failed)?;
    let host = registration.host.as_str();
    match try_lock(&dedicated.client, host).await {
        Ok(true) => {
            registration.write(db).await.map_err(Again::Failed)?;
            Ok(dedicated)
        }
        Ok(false) => {
            let (pid, holder) = holder(db, host).await.map_err(Again::Failed)?;
            Err(Again::Taken(pid, holder))
        }
        Err(e) => Err(Again::Failed(e)),
    }
}

/// This daemon as the `daemons` table shows it to others.
struct Registration {
    host: String,
    socket: String,
    started_at: String,
}

impl Registration {
    async fn write(&self, db: &Db) -> Result<(), DbError> {
        let (host, socket, started) = (
            self.host.clone(),
            self.socket.clone(),
            self.started_at.clone(),
        );
        db.call(move |c| {
            c.execute(
                "INSERT INTO daemons (host, pid, socket, started_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (host) DO UPDATE SET pid = excluded.pid, socket = excluded.socket, \
                 started_at = excluded.started_at",
                params![host, std::process::id(), socket, started],
            )
        })
        .await?;
        Ok(())
    }
}

/// Locks the SQLite store `db` as a daemon does (for a copy of it), or
/// says which daemon uses it.
pub async fn lock_sqlite(db: &Db) -> Result<Flock<File>, ClaimError> {
    let path = db
        .sqlite_path()
        .ok_or_else(|| DbError::Config("not a SQLite store".into()))?;
    lock_file(db, path).await
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
