//! The supervisor's records: one `project_runs` row per start, and the
//! project's current and wanted state. Each run and each wanted app names
//! the host whose daemon started it, so daemons sharing one database each
//! keep to their own apps. Rows from before hosts were recorded (NULL) are
//! every host's: only a single daemon can have written them.

use crate::db::{now_ms, Conn, DbError};
use crate::params;

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
    status: &str,
    exit_code: Option<i32>,
    signal: Option<i32>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE project_runs SET stopped_at = $5, status = $2, exit_code = $3, signal = $4 \
         WHERE id = $1 AND stopped_at IS NULL",
        params![run_id, status, exit_code, signal, now_ms()],
    )?;
    Ok(())
}

/// Sets the project's shown status and port.
pub fn set_status(
    conn: &Conn<'_>,
    project_id: i64,
    status: &str,
    port: Option<u16>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE projects SET status = $2, port = coalesce($3, port) WHERE id = $1",
        params![project_id, status, port],
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

/// Claims the project for `host`'s daemon: wanted running there, unless
/// another host keeps it running. Returns `Ok(was_wanted_here)`, or the
/// other host. Call inside a transaction: the check and the claim are one
/// step, so two hosts never both start it.
pub fn claim(
    conn: &Conn<'_>,
    project_id: i64,
    host: &str,
) -> Result<Result<bool, String>, DbError> {
    conn.lock_project(project_id)?;
    let (wanted, wanted_host): (String, Option<String>) = conn.query_one(
        "SELECT wanted, wanted_host FROM projects WHERE id = $1",
        params![project_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let running = wanted == "running";
    if let Some(other) = wanted_host.filter(|h| running && h != host) {
        return Ok(Err(other));
    }
    set_wanted(conn, project_id, Some(host))?;
    Ok(Ok(running))
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

/// Runs on `host` with no end recorded: the apps its last daemon left
/// behind. A row that cannot be read is reported on its own, so one bad row
/// does not hide the others.
pub fn open_runs(conn: &Conn<'_>, host: &str) -> Result<Vec<Result<OpenRun, String>>, DbError> {
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
            Ok(run().map_err(|e| {
                let id = r.get::<i64>(0).unwrap_or_default();
                format!("run {id}: {e}")
            }))
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
