//! The supervisor's records: one `project_runs` row per start, and the
//! project's current and wanted state. Each run and each wanted app names
//! the host whose daemon started it, so daemons sharing one database each
//! keep to their own apps. Rows from before hosts were recorded (NULL) are
//! every host's: only a single daemon can have written them.

use super::lifecycle::{RunEnd, State};
use crate::db::{now_ms, Conn, DbError};
use crate::params;

/// The name a run's end is stored under.
fn run_end_name(end: RunEnd) -> &'static str {
    match end {
        RunEnd::Exited => "exited",
        RunEnd::Unhealthy => "unhealthy",
        RunEnd::Stopped => "stopped",
        RunEnd::Lost => "lost",
    }
}

/// A run that had not ended when the last daemon stopped.
#[derive(Debug, Clone)]
pub struct OpenRun {
    /// The row's id.
    pub run_id: i64,
    /// The project.
    pub project_id: i64,
    /// Its owner.
    pub owner_id: i64,
    /// The project's name.
    pub name: String,
    /// The process.
    pub pid: i32,
    /// The process's start time in clock ticks after boot, against PID reuse.
    pub proc_start: u64,
    /// Its port.
    pub port: u16,
    /// Whether the owner wants the app running.
    pub wanted_running: bool,
    /// The project version it runs, when recorded.
    pub version: Option<i64>,
}

/// A project whose owner wants it running.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The project.
    pub project_id: i64,
    /// Its owner.
    pub owner_id: i64,
    /// Its name.
    pub name: String,
}

/// What a run on `host` records at its start.
pub struct Start<'a> {
    /// The project.
    pub project_id: i64,
    /// The process.
    pub pid: i32,
    /// Its port.
    pub port: u16,
    /// The process's start time in clock ticks after boot.
    pub proc_start: u64,
    /// The project version it runs.
    pub version: Option<i64>,
    /// The host whose daemon started it.
    pub host: &'a str,
}

/// An app another host's daemon keeps running, as its rows say.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The project.
    pub project_id: i64,
    /// Its name.
    pub name: String,
    /// The host it is wanted on.
    pub host: String,
    /// Its shown status there.
    pub status: String,
    /// Its port there.
    pub port: Option<u16>,
    /// The pid of its open run there, if any.
    pub pid: Option<i64>,
}

/// The owner's apps wanted running on other hosts than `host`.
pub fn elsewhere(conn: &Conn<'_>, owner_id: i64, host: &str) -> Result<Vec<Remote>, DbError> {
    conn.query(
        "SELECT p.id, p.name, p.wanted_host, p.status, p.port, \
                (SELECT r.pid FROM project_runs r WHERE r.project_id = p.id \
                 AND r.stopped_at IS NULL ORDER BY r.id DESC LIMIT 1) \
         FROM projects p WHERE p.owner_id = $1 AND p.wanted = 'running' \
         AND p.wanted_host IS NOT NULL AND p.wanted_host <> $2 ORDER BY p.id",
        params![owner_id, host],
        |r| {
            Ok(Remote {
                project_id: r.get(0)?,
                name: r.get(1)?,
                host: r.get(2)?,
                status: r.get(3)?,
                port: r.get::<Option<i64>>(4)?.and_then(|p| u16::try_from(p).ok()),
                pid: r.get(5)?,
            })
        },
    )
}

/// Records a start.
pub fn insert(conn: &Conn<'_>, start: &Start<'_>) -> Result<i64, DbError> {
    conn.query_one(
        "INSERT INTO project_runs (project_id, pid, port, proc_start, started_at, status, version, host) \
         VALUES ($1, $2, $3, $4, $5, 'running', $6, $7) RETURNING id",
        params![
            start.project_id,
            start.pid,
            start.port,
            start.proc_start,
            now_ms(),
            start.version,
            start.host
        ],
        |r| r.get(0),
    )
}

/// Records how a run ended.
pub fn finish(
    conn: &Conn<'_>,
    run_id: i64,
    end: RunEnd,
    exit_code: Option<i32>,
    signal: Option<i32>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE project_runs SET stopped_at = $5, status = $2, exit_code = $3, signal = $4 \
         WHERE id = $1 AND stopped_at IS NULL",
        params![run_id, run_end_name(end), exit_code, signal, now_ms()],
    )?;
    Ok(())
}

/// Ends the project's open runs on `host` before their process does, so
/// that a daemon that dies meanwhile adopts none of them.
pub fn finish_open(
    conn: &Conn<'_>,
    project_id: i64,
    host: &str,
    end: RunEnd,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE project_runs SET stopped_at = $4, status = $3 \
         WHERE project_id = $1 AND stopped_at IS NULL AND (host = $2 OR host IS NULL)",
        params![project_id, host, run_end_name(end), now_ms()],
    )?;
    Ok(())
}

/// Sets the project's shown status and port.
pub fn set_status(
    conn: &Conn<'_>,
    project_id: i64,
    state: State,
    port: Option<u16>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE projects SET status = $2, port = coalesce($3, port) WHERE id = $1",
        params![project_id, state.as_str(), port],
    )?;
    Ok(())
}

/// Stores that the owner wants the app running on `host`, or (`None`)
/// stopped.
pub fn set_wanted(conn: &Conn<'_>, project_id: i64, host: Option<&str>) -> Result<(), DbError> {
    let wanted = if host.is_some() { "running" } else { "stopped" };
    conn.execute(
        "UPDATE projects SET wanted = $2, wanted_host = $3 WHERE id = $1",
        params![project_id, wanted, host],
    )?;
    Ok(())
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The app is now wanted running here; it was already when `was_wanted`.
    Here {
        /// Whether it was wanted running here before.
        was_wanted: bool,
    },
    /// Another host's daemon keeps it running: this one.
    Elsewhere(String),
}

/// Claims the project for `host`'s daemon: wanted running there, unless
/// another host keeps it running. Call inside a transaction: the check and
/// the claim are one step, so two hosts never both start it.
pub fn claim(conn: &Conn<'_>, project_id: i64, host: &str) -> Result<Claim, DbError> {
    conn.lock_project(project_id)?;
    let (wanted, wanted_host): (String, Option<String>) = conn.query_one(
        "SELECT wanted, wanted_host FROM projects WHERE id = $1",
        params![project_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let running = wanted == "running";
    if let Some(other) = wanted_host.filter(|h| running && h != host) {
        return Ok(Claim::Elsewhere(other));
    }
    set_wanted(conn, project_id, Some(host))?;
    Ok(Claim::Here {
        was_wanted: running,
    })
}

/// The host another daemon keeps the project running on, if it is wanted
/// running anywhere but `host`.
pub fn wanted_elsewhere(
    conn: &Conn<'_>,
    project_id: i64,
    host: &str,
) -> Result<Option<String>, DbError> {
    conn.query_opt(
        "SELECT wanted_host FROM projects WHERE id = $1 AND wanted = 'running' \
         AND wanted_host IS NOT NULL AND wanted_host <> $2",
        params![project_id, host],
        |r| r.get(0),
    )
}

/// One row of [`open_runs`].
#[derive(Debug)]
pub enum OpenRow {
    /// A run that can be recovered.
    Run(OpenRun),
    /// A row that could not be read, and why.
    Unreadable {
        /// The run's id.
        run_id: i64,
        /// What was wrong with it.
        error: DbError,
    },
}

/// Runs on `host` with no end recorded: the apps its last daemon left
/// behind. A row that cannot be read is reported on its own, so one bad row
/// does not hide the others.
pub fn open_runs(conn: &Conn<'_>, host: &str) -> Result<Vec<OpenRow>, DbError> {
    conn.query(
        "SELECT r.id, r.project_id, p.owner_id, p.name, r.pid, r.proc_start, r.port, p.wanted, \
                r.version, p.wanted_host \
         FROM project_runs r JOIN projects p ON p.id = r.project_id \
         WHERE r.stopped_at IS NULL AND r.pid IS NOT NULL AND (r.host = $1 OR r.host IS NULL) \
         ORDER BY r.id",
        params![host],
        |r| {
            let run = || -> Result<OpenRun, DbError> {
                let wanted_host: Option<String> = r.get(9)?;
                Ok(OpenRun {
                    run_id: r.get(0)?,
                    project_id: r.get(1)?,
                    owner_id: r.get(2)?,
                    name: r.get(3)?,
                    pid: r.get(4)?,
                    proc_start: r.get::<Option<i64>>(5)?.unwrap_or(0) as u64,
                    port: r.get::<Option<i64>>(6)?.unwrap_or(0) as u16,
                    wanted_running: r.get::<String>(7)? == "running"
                        && wanted_host.is_none_or(|h| h == host),
                    version: r.get(8)?,
                })
            };
            Ok(match run() {
                Ok(run) => OpenRow::Run(run),
                Err(error) => OpenRow::Unreadable {
                    run_id: r.get::<i64>(0).unwrap_or_default(),
                    error,
                },
            })
        },
    )
}

/// Projects whose owner wants them running on `host`.
pub fn wanted_running(conn: &Conn<'_>, host: &str) -> Result<Vec<Wanted>, DbError> {
    conn.query(
        "SELECT id, owner_id, name FROM projects WHERE wanted = 'running' \
         AND (wanted_host = $1 OR wanted_host IS NULL) ORDER BY id",
        params![host],
        |r| {
            Ok(Wanted {
                project_id: r.get(0)?,
                owner_id: r.get(1)?,
                name: r.get(2)?,
            })
        },
    )
}

/// The project's last port, if it has one.
pub fn last_port(conn: &Conn<'_>, project_id: i64) -> Result<Option<u16>, DbError> {
    let port: Option<Option<i64>> = conn.query_opt(
        "SELECT port FROM projects WHERE id = $1",
        params![project_id],
        |r| r.get(0),
    )?;
    Ok(port.flatten().and_then(|p| u16::try_from(p).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    /// A store with one user and one project (id 1).
    async fn store() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.call(|c| {
            c.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (1, 'a@b.co', 'x')",
                &[],
            )?;
            c.execute(
                "INSERT INTO projects (id, name, owner_id) VALUES (1, 'todo', 1)",
                &[],
            )
        })
        .await
        .unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn a_project_is_claimed_by_one_host_until_it_is_stopped() {
        let (_dir, db) = store().await;
        let claim = |host: &'static str| db.transaction(move |c| claim(c, 1, host));
        assert_eq!(
            claim("alpha").await.unwrap(),
            Claim::Here { was_wanted: false }
        );
        assert_eq!(
            claim("alpha").await.unwrap(),
            Claim::Here { was_wanted: true },
            "claimed again by its host"
        );
        assert_eq!(
            claim("beta").await.unwrap(),
            Claim::Elsewhere("alpha".to_string())
        );
        let seen = db.call(|c| elsewhere(c, 1, "beta")).await.unwrap();
        assert_eq!((seen.len(), seen[0].host.as_str()), (1, "alpha"));
        assert!(db
            .call(|c| elsewhere(c, 1, "alpha"))
            .await
            .unwrap()
            .is_empty());
        db.call(|c| set_wanted(c, 1, None)).await.unwrap();
        assert_eq!(
            claim("beta").await.unwrap(),
            Claim::Here { was_wanted: false }
        );
    }

    #[tokio::test]
    async fn recovery_sees_only_its_own_hosts_runs_and_older_ones() {
        let (_dir, db) = store().await;
        db.call(|c| {
            for (pid, host) in [(11, Some("alpha")), (12, Some("beta")), (13, None)] {
                let start = Start {
                    project_id: 1,
                    pid,
                    port: 8100,
                    proc_start: 1,
                    version: Some(1),
                    host: host.unwrap_or(""),
                };
                let id = insert(c, &start)?;
                if host.is_none() {
                    c.execute(
                        "UPDATE project_runs SET host = NULL WHERE id = $1",
                        params![id],
                    )?;
                }
            }
            set_wanted(c, 1, Some("beta"))
        })
        .await
        .unwrap();
        let open: Vec<OpenRun> = db
            .call(|c| open_runs(c, "alpha"))
            .await
            .unwrap()
            .into_iter()
            .map(|row| match row {
                OpenRow::Run(run) => run,
                OpenRow::Unreadable { run_id, error } => panic!("run {run_id}: {error}"),
            })
            .collect();
        let pids: Vec<i32> = open.iter().map(|r| r.pid).collect();
        assert_eq!(pids, [11, 13]);
        // Wanted on beta: alpha stops its left-overs instead of adopting them.
        assert!(open.iter().all(|r| !r.wanted_running));
        assert!(db
            .call(|c| wanted_running(c, "alpha"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            db.call(|c| wanted_running(c, "beta")).await.unwrap().len(),
            1
        );
    }
}
