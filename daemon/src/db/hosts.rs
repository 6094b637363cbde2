//! Daemons sharing one database, one per host. A daemon claims its host name
//! at start-up and holds the claim while it runs, and it supervises apps
//! only while it holds it (fencing: see [`Fence`]).
//!
//! On PostgreSQL the claim is two things. A session advisory lock on a
//! connection of its own, which the server drops with the connection when
//! the daemon dies, however it dies. And a lease in the host's `daemons`
//! row: the holder's random instance id and a time, on the server's clock,
//! until which its claim holds; the holder renews it every few seconds on
//! the lock's connection. The lease covers the moments the lock cannot:
//! after a PostgreSQL restart the lock is free until the holder reconnects,
//! and a newcomer then finds the row still naming a live holder and
//! refuses. The holder takes the lock back only while the row names it; a
//! holder cut off for longer than its lease counts itself fenced before
//! the lease ends, so by the time a rival may take the name over, the old
//! holder has already stopped acting on apps. On SQLite, a lock on a file
//! beside the database keeps a second daemon off the same file.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, RwLock};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::postgres::Dedicated;
use super::{now, Db, DbError};
use crate::params;

/// How long a claim holds after its last renewal. A rival may take a host
/// name this long after its holder was last heard of, and no sooner.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often the holder renews its lease: one small UPDATE.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// How long the holder trusts its own lease after sending a renewal: less
/// than the lease, so that it is fenced before a rival may take over.
const TRUSTED_FOR: Duration = Duration::from_secs(12);

/// The longest pause between two tries to claim the name again.
const RETRY_AT_MOST: Duration = Duration::from_secs(3);

/// Whether this daemon holds its host claim, and so may act on its apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// It holds the claim: it supervises its apps.
    Held,
    /// It was cut off from the database for longer than it trusts its
    /// lease: it leaves its apps as they are until it holds the claim again.
    Lost(String),
    /// Another daemon took the host name over: it leaves the apps to that
    /// one, for good.
    Displaced(String),
}

impl ClaimState {
    /// What the state means, in words, for `status`, `ps` and errors.
    pub fn describe(&self, host: &str) -> String {
        match self {
            ClaimState::Held => format!("holds host `{host}`"),
            ClaimState::Lost(why) => format!(
                "FENCED: this daemon lost its claim on host `{host}` ({why}); it starts, \
                 restarts, adopts and stops no app until it holds the claim again. Check \
                 that the database is reachable"
            ),
            ClaimState::Displaced(holder) => format!(
                "FENCED: another appforged took host `{host}` over ({holder}) while this one \
                 was cut off from the database; this one leaves the apps to it. Stop this \
                 daemon"
            ),
        }
    }
}

/// A daemon's view of its own host claim, for whatever acts on apps: each
/// act waits for, or is refused without, the claim.
#[derive(Clone)]
pub struct Fence {
    /// Kept so the channel never closes while a fence is in use.
    state: Arc<watch::Sender<ClaimState>>,
    seen: watch::Receiver<ClaimState>,
}

impl Fence {
    fn of(state: &Arc<watch::Sender<ClaimState>>) -> Fence {
        Fence {
            state: Arc::clone(state),
            seen: state.subscribe(),
        }
    }

    /// The claim's state now.
    pub fn state(&self) -> ClaimState {
        self.state.borrow().clone()
    }

    /// Whether the claim is held now.
    pub fn is_held(&self) -> bool {
        *self.state.borrow() == ClaimState::Held
    }

    /// Resolves once the claim is not held (at once if it is not now).
    pub async fn lost(&mut self) {
        // The sender lives in `self.state`: the channel cannot close.
        let _ = self.seen.wait_for(|s| *s != ClaimState::Held).await;
    }

    /// Waits out a lost claim: true once it is held again, false if
    /// another daemon took the host over.
    pub async fn settled(&mut self) -> bool {
        self.seen
            .wait_for(|s| !matches!(s, ClaimState::Lost(_)))
            .await
            .map(|s| *s == ClaimState::Held)
            .unwrap_or(false)
    }
}

/// This daemon's claim on its host name.
pub struct HostLease {
    host: String,
    /// Who this daemon is in the `daemons` row.
    registration: Arc<Registration>,
    /// The connection holding the advisory lock (PostgreSQL only), which
    /// the keeper replaces when the server ends it.
    lock: Option<Arc<RwLock<tokio_postgres::Client>>>,
    /// The task that renews the lease and claims the host name again
    /// (PostgreSQL only).
    keeper: Option<JoinHandle<()>>,
    /// Whether the claim is held.
    state: Arc<watch::Sender<ClaimState>>,
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
        let registration = Arc::new(Registration {
            host: host.to_string(),
            socket: socket.display().to_string(),
            started_at: now(),
            instance: hex::encode(rand::random::<[u8; 16]>()),
            machine: machine(),
        });
        let claimed = match db.postgres() {
            Some(pg) => {
                let dedicated = pg.dedicated().await?;
                take(&dedicated.client, &registration).await?;
                Some((dedicated, Instant::now()))
            }
            None => None,
        };
        let file = match db.sqlite_path() {
            Some(path) => {
                let file = lock_file(db, path).await?;
                registration.write(db).await?;
                Some(file)
            }
            None => None,
        };
        let state = Arc::new(watch::Sender::new(ClaimState::Held));
        let (lock, keeper) = match claimed {
            Some((dedicated, sent)) => {
                let lock = Arc::new(RwLock::new(dedicated.client));
                let keeper = Keeper {
                    db: db.clone(),
                    registration: Arc::clone(&registration),
                    lock: Arc::clone(&lock),
                    state: Arc::clone(&state),
                };
                let keeper = tokio::spawn(keeper.keep(dedicated.ended, sent + TRUSTED_FOR));
                (Some(lock), Some(keeper))
            }
            None => (None, None),
        };
        Ok(HostLease {
            host: host.to_string(),
            registration,
            lock,
            keeper,
            state,
            _file: file,
        })
    }

    /// The host name this daemon holds.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether this daemon holds its claim, and what that means, for
    /// `status`.
    pub fn shown(&self) -> (bool, String) {
        let state = self.state.borrow().clone();
        let said = match (&state, &self.lock) {
            (ClaimState::Held, Some(_)) => format!(
                "claim held; renewed every {} s, it lapses {} s after the last renewal",
                RENEW_EVERY.as_secs(),
                LEASE.as_secs()
            ),
            (ClaimState::Held, None) => "the only daemon on this store".to_string(),
            (fenced, _) => fenced.describe(&self.host),
        };
        (state == ClaimState::Held, said)
    }

    /// This daemon's view of its claim, for what acts on apps.
    pub fn fence(&self) -> Fence {
        Fence::of(&self.state)
    }

    /// Gives the claim up on a clean exit: the lease ends now, so the next
    /// daemon for this host need not wait for it. Only this daemon's own
    /// lease is touched.
    pub async fn release(&self) {
        if let Some(keeper) = &self.keeper {
            keeper.abort();
        }
        let Some(lock) = &self.lock else {
            return;
        };
        let client = lock.read().await;
        let released = tokio::time::timeout(
            RENEW_EVERY,
            client.execute(
                "UPDATE daemons SET lease_until = NULL WHERE host = $1 AND instance = $2",
                &[&self.host, &self.registration.instance],
            ),
        )
        .await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::debug!(host = %self.host, "could not end the host claim's lease; it lapses by itself");
        }
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
        // Taking the lock proves no daemon holds it; it is given back at
        // once. A free lock with a fresh lease is a daemon that reconnects.
        let alive = async {
            if !try_lock(&client, host).await? {
                return Ok(true);
            }
            unlock(&client, host).await;
            Ok::<bool, DbError>(read_holder(&client, host).await?.is_some_and(|h| h.fresh))
        };
        match alive.await {
            Ok(alive) => alive,
            // Unknown: say alive, so nothing is started twice.
            Err(e) => {
                tracing::warn!(error = %e, host, "could not ask the database whether a host's daemon runs");
                true
            }
        }
    }
}

/// Takes the host claim on `client`'s session for `me`: the advisory lock,
/// then the lease, unless another daemon holds either. A holder killed
/// outright is waited for a moment, as the server notices its end.
async fn take(client: &tokio_postgres::Client, me: &Registration) -> Result<(), ClaimError> {
    let host = me.host.as_str();
    let mut patience = DEAD_HOLDER_PATIENCE;
    loop {
        let locked = try_lock(client, host).await?;
        let holder = read_holder(client, host).await?;
        if locked {
            match holder.filter(|h| h.keeps_out(me)) {
                // The lock is free, yet the lease says its holder lives: it
                // is reconnecting (after a PostgreSQL restart, say).
                Some(holder) => {
                    unlock(client, host).await;
                    return Err(ClaimError::Taken {
                        host: host.to_string(),
                        holder: holder.describe(),
                    });
                }
                None => {
                    me.write_lease(client).await?;
                    return Ok(());
                }
            }
        }
        // A holder of this host name that died (kill -9) may still hold
        // the lock until the server sees its connection close: give the
        // server that moment.
        let dead = holder.as_ref().is_some_and(|h| h.is_gone(me));
        if !dead || patience.is_zero() {
            return Err(ClaimError::Taken {
                host: host.to_string(),
                holder: holder.map_or_else(|| "it has not registered yet".into(), |h| h.describe()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        patience = patience.saturating_sub(Duration::from_millis(100));
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

/// Gives back the advisory lock of `host` taken on `client`'s session.
async fn unlock(client: &tokio_postgres::Client, host: &str) {
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&key(host)])
        .await;
}

/// Renews the lease and claims the host name again each time the server
/// ends the connection holding the claim (a restart, an administrator),
/// and tells the daemon, through its [`ClaimState`], whether it holds it.
struct Keeper {
    db: Db,
    registration: Arc<Registration>,
    lock: Arc<RwLock<tokio_postgres::Client>>,
    state: Arc<watch::Sender<ClaimState>>,
}

impl Keeper {
    /// Holds the claim until the daemon ends. `trusted_until` is when the
    /// claim just taken stops being trusted without a renewal.
    async fn keep(self, mut ended: JoinHandle<String>, mut trusted_until: Instant) {
        let host = self.registration.host.clone();
        let host = host.as_str();
        loop {
            // Held: the lease is renewed until the connection ends.
            let mut told = false;
            let why = loop {
                tokio::select! {
                    why = &mut ended => break why.unwrap_or_else(|e| e.to_string()),
                    () = tokio::time::sleep(RENEW_EVERY) => {
                        let sent = Instant::now();
                        let renewed = {
                            let client = self.lock.read().await;
                            tokio::time::timeout(
                                RENEW_EVERY,
                                self.registration.renew(&client),
                            )
                            .await
                        };
                        match renewed {
                            Ok(Ok(true)) => {
                                trusted_until = sent + TRUSTED_FOR;
                                told = false;
                                self.set(ClaimState::Held);
                            }
                            Ok(Ok(false)) => {
                                let holder = {
                                    let client = self.lock.read().await;
                                    read_holder(&client, host).await.ok().flatten()
                                };
                                return self.displaced(holder.map(|h| h.describe()));
                            }
                            Ok(Err(e)) if !told => {
                                told = true;
                                tracing::warn!(host, error = %e, "could not renew the host claim; trying on");
                            }
                            Err(_) if !told => {
                                told = true;
                                tracing::warn!(host, "renewing the host claim timed out; trying on");
                            }
                            _ => {}
                        }
                    }
                    () = tokio::time::sleep_until(trusted_until), if self.held() => {
                        self.set(ClaimState::Lost(
                            "it could not renew its claim in time".into(),
                        ));
                    }
                }
            };
            tracing::error!(
                host,
                error = %why,
                "lost the database connection that holds this daemon's host claim; claiming it again"
            );
            // Cut off: claimed again, with back-off, while the row names it.
            let mut pause = Duration::from_millis(100);
            let mut told = false;
            loop {
                let sent = Instant::now();
                match claim_again(&self.db, &self.registration).await {
                    Ok(dedicated) => {
                        *self.lock.write().await = dedicated.client;
                        ended = dedicated.ended;
                        trusted_until = sent + TRUSTED_FOR;
                        tracing::info!(host, "claimed the host name again");
                        self.set(ClaimState::Held);
                        break;
                    }
                    Err(Again::Displaced(holder)) => return self.displaced(Some(holder)),
                    // Its own old session, which the server has not let go
                    // yet, or a newcomer that looked and is leaving.
                    Err(Again::Busy) => {}
                    Err(Again::Failed(e)) if !told => {
                        told = true;
                        tracing::warn!(host, error = %e, "could not claim the host name again yet; trying on");
                    }
                    Err(Again::Failed(_)) => {}
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = tokio::time::sleep_until(trusted_until), if self.held() => {
                        self.set(ClaimState::Lost(
                            "it has been cut off from the database for longer than its lease".into(),
                        ));
                    }
                }
                pause = (pause * 2).min(RETRY_AT_MOST);
            }
        }
    }

    fn held(&self) -> bool {
        *self.state.borrow() == ClaimState::Held
    }

    /// Moves to `next`, logging each change once.
    fn set(&self, next: ClaimState) {
        let host = self.registration.host.as_str();
        self.state.send_if_modified(|now| {
            if *now == next {
                return false;
            }
            match (&*now, &next) {
                (_, ClaimState::Held) => tracing::info!(
                    host,
                    "holds its host claim again: supervising its apps again"
                ),
                (_, lost) => tracing::error!(host, "{}", lost.describe(host)),
            }
            *now = next;
            true
        });
    }

    /// Another daemon holds the host name now: this one stays fenced.
    fn displaced(&self, holder: Option<String>) {
        self.set(ClaimState::Displaced(
            holder.unwrap_or_else(|| "it is not known which".into()),
        ));
    }
}

/// Why a claim made again did not take.
enum Again {
    /// Another session holds the lock, and the row still names this daemon.
    Busy,
    /// The row names another daemon, described: it took the host name over.
    Displaced(String),
    /// The database could not be asked.
    Failed(DbError),
}

/// Claims the host name again on a new connection, if the row still names
/// this daemon (or no one).
async fn claim_again(db: &Db, me: &Registration) -> Result<Dedicated, Again> {
    let pg = db
        .postgres()
        .ok_or_else(|| Again::Failed(DbError::Config("no PostgreSQL store".into())))?;
    let dedicated = pg.dedicated().await.map_err(Again::Failed)?;
    let client = &dedicated.client;
    let host = me.host.as_str();
    let locked = try_lock(client, host).await.map_err(Again::Failed)?;
    let holder = read_holder(client, host).await.map_err(Again::Failed)?;
    if let Some(other) = holder.filter(|h| h.instance.is_some() && !h.is(me)) {
        // Dropping the connection gives the lock back, if it was taken.
        return Err(Again::Displaced(other.describe()));
    }
    if !locked {
        return Err(Again::Busy);
    }
    me.write_lease(client).await.map_err(Again::Failed)?;
    Ok(dedicated)
}

/// The daemon named in a host's `daemons` row (PostgreSQL).
struct Holder {
    instance: Option<String>,
    pid: i64,
    socket: String,
    started_at: String,
    machine: Option<String>,
    /// Whether its lease holds now, on the server's clock.
    fresh: bool,
    /// Seconds its lease holds yet.
    left_s: f64,
}

impl Holder {
    /// Whether the row names `me`.
    fn is(&self, me: &Registration) -> bool {
        self.instance.as_deref() == Some(me.instance.as_str())
    }

    /// Whether its process is provably gone: it ran on this machine, in
    /// this PID namespace, and its pid is gone. Elsewhere a pid proves
    /// nothing.
    fn is_gone(&self, me: &Registration) -> bool {
        let here = !me.machine.is_empty() && self.machine.as_deref() == Some(me.machine.as_str());
        here && self.pid != i64::from(std::process::id()) && !process_exists(self.pid)
    }

    /// Whether it keeps `me` out though the advisory lock is free: its
    /// lease holds and it may be alive.
    fn keeps_out(&self, me: &Registration) -> bool {
        !self.is(me) && self.fresh && !self.is_gone(me)
    }

    fn describe(&self) -> String {
        let mut said = format!(
            "pid {}, socket {}, started {}",
            self.pid, self.socket, self.started_at
        );
        if self.fresh {
            said.push_str(&format!(
                "; its claim holds for {:.0} s more unless it renews it: if that daemon is \
                 gone, the name is free after that",
                self.left_s.max(0.0).ceil()
            ));
        }
        said
    }
}

/// The host's `daemons` row, if any, with its lease read on the server's
/// clock.
async fn read_holder(
    client: &tokio_postgres::Client,
    host: &str,
) -> Result<Option<Holder>, DbError> {
    let row = client
        .query_opt(
            "SELECT instance, pid, socket, started_at, machine, \
                    coalesce(lease_until > clock_timestamp(), false), \
                    coalesce(extract(epoch FROM lease_until - clock_timestamp())::float8, 0) \
             FROM daemons WHERE host = $1",
            &[&host],
        )
        .await
        .map_err(DbError::from)?;
    Ok(row.map(|r| Holder {
        instance: r.get(0),
        pid: r.get(1),
        socket: r.get(2),
        started_at: r.get(3),
        machine: r.get(4),
        fresh: r.get(5),
        left_s: r.get(6),
    }))
}

/// This daemon as the `daemons` table shows it to others.
struct Registration {
    host: String,
    socket: String,
    started_at: String,
    /// A random id of this daemon's, so that a row naming it is told from
    /// one naming another daemon with the same pid (another machine, or a
    /// PID namespace).
    instance: String,
    /// This machine and PID namespace (see [`machine`]).
    machine: String,
}

/// A lease's length as PostgreSQL takes it.
fn lease_secs() -> f64 {
    LEASE.as_secs_f64()
}

impl Registration {
    /// Registers this daemon (SQLite: no lease, the file lock is the claim).
    async fn write(&self, db: &Db) -> Result<(), DbError> {
        let (host, socket, started, instance, machine) = (
            self.host.clone(),
            self.socket.clone(),
            self.started_at.clone(),
            self.instance.clone(),
            self.machine.clone(),
        );
        db.call(move |c| {
            c.execute(
                "INSERT INTO daemons (host, pid, socket, started_at, instance, machine) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (host) DO UPDATE SET pid = excluded.pid, socket = excluded.socket, \
                 started_at = excluded.started_at, instance = excluded.instance, \
                 machine = excluded.machine, lease_until = NULL",
                params![host, std::process::id(), socket, started, instance, machine],
            )
        })
        .await?;
        Ok(())
    }

    /// Registers this daemon as the holder, with a fresh lease. Called
    /// with the advisory lock held, so no other daemon writes the row.
    async fn write_lease(&self, client: &tokio_postgres::Client) -> Result<(), DbError> {
        self.upsert(client, false).await.map(|_| ())
    }

    /// Renews this daemon's lease; false when the row names another daemon.
    async fn renew(&self, client: &tokio_postgres::Client) -> Result<bool, DbError> {
        self.upsert(client, true).await
    }

    /// Writes the row (or, `only_lease`, the lease of a row naming this
    /// daemon); returns whether a row was written.
    async fn upsert(
        &self,
        client: &tokio_postgres::Client,
        only_lease: bool,
    ) -> Result<bool, DbError> {
        let on_conflict = if only_lease {
            "lease_until = excluded.lease_until WHERE daemons.instance = excluded.instance"
        } else {
            "pid = excluded.pid, socket = excluded.socket, started_at = excluded.started_at, \
             instance = excluded.instance, machine = excluded.machine, \
             lease_until = excluded.lease_until"
        };
        let sql = format!(
            "INSERT INTO daemons (host, pid, socket, started_at, instance, machine, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp() + $7::float8 * interval '1 second') \
             ON CONFLICT (host) DO UPDATE SET {on_conflict}"
        );
        let written = client
            .execute(
                &sql,
                &[
                    &self.host,
                    &i64::from(std::process::id()),
                    &self.socket,
                    &self.started_at,
                    &self.instance,
                    &self.machine,
                    &lease_secs(),
                ],
            )
            .await
            .map_err(DbError::from)?;
        Ok(written == 1)
    }
}

/// This machine's boot and this process's PID namespace: where a pid
/// means the same process. Empty when unknown.
fn machine() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    match (boot.trim(), pid_ns.to_string_lossy()) {
        ("", _) => String::new(),
        (_, ns) if ns.is_empty() => String::new(),
        (boot, ns) => format!("{boot} {ns}"),
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
/// name runs on this machine). A zombie does not: a daemon killed with -9
/// is one until its parent reaps it, and holds nothing meanwhile.
fn process_exists(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends with the last ')'.
        let state = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].trim_start().chars().next());
        if matches!(state, Some('Z' | 'X')) {
            return false;
        }
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
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
    fn a_zombie_holder_does_not_exist_and_a_live_one_does() {
        assert!(process_exists(i64::from(std::process::id())));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = i64::from(child.id());
        // Not reaped yet: a zombie once it has ended.
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while process_exists(pid) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!process_exists(pid), "a zombie counts as gone");
        child.wait().expect("reap");
        assert!(!process_exists(pid));
    }

    #[test]
    fn keys_are_stable_and_differ_by_host() {
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
    }

    #[tokio::test]
    async fn a_fence_waits_out_a_lost_claim_and_gives_up_once_displaced() {
        let state = Arc::new(watch::Sender::new(ClaimState::Held));
        let mut fence = Fence::of(&state);
        assert!(fence.is_held());
        state.send_replace(ClaimState::Lost("cut off".into()));
        // Resolves at once: the claim is not held now.
        fence.lost().await;
        assert!(!fence.is_held());
        let mut waiting = fence.clone();
        let back = tokio::spawn(async move { waiting.settled().await });
        state.send_replace(ClaimState::Held);
        assert!(back.await.unwrap(), "held again");
        state.send_replace(ClaimState::Displaced("pid 1".into()));
        assert!(!fence.settled().await, "taken over for good");
        assert!(fence.state().describe("alpha").contains("Stop this daemon"));
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
        assert_eq!(
            lease.shown(),
            (true, "the only daemon on this store".to_string())
        );
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
