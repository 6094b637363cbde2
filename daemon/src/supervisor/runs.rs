//! The supervisor's records: one `project_runs` row per start, and the
//! project's current and wanted state.

use rusqlite::{params, Connection, OptionalExtension};

use crate::db::{DbError, NOW_MS};

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

/// Records a start.
pub fn insert(
    conn: &Connection,
    project_id: i64,
    pid: i32,
    port: u16,
    proc_start: u64,
    version: Option<i64>,
) -> Result<i64, DbError> {
    conn.execute(
        &format!(
            "INSERT INTO project_runs (project_id, pid, port, proc_start, started_at, status, version) \
             VALUES (?1, ?2, ?3, ?4, {NOW_MS}, 'running', ?5)"
        ),
        params![project_id, pid, port, proc_start as i64, version],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Records how a run ended.
pub fn finish(
    conn: &Connection,
    run_id: i64,
    status: &str,
    exit_code: Option<i32>,
    signal: Option<i32>,
) -> Result<(), DbError> {
    conn.execute(
        &format!(
            "UPDATE project_runs SET stopped_at = {NOW_MS}, status = ?2, exit_code = ?3, signal = ?4 \
             WHERE id = ?1 AND stopped_at IS NULL"
        ),
        params![run_id, status, exit_code, signal],
    )?;
    Ok(())
}

/// Sets the project's shown status and port.
pub fn set_status(
    conn: &Connection,
    project_id: i64,
    status: &str,
    port: Option<u16>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE projects SET status = ?2, port = coalesce(?3, port) WHERE id = ?1",
        params![project_id, status, port],
    )?;
    Ok(())
}

/// Stores whether the owner wants the app running.
pub fn set_wanted(conn: &Connection, project_id: i64, running: bool) -> Result<(), DbError> {
    let wanted = if running { "running" } else { "stopped" };
    conn.execute(
        "UPDATE projects SET wanted = ?2 WHERE id = ?1",
        params![project_id, wanted],
    )?;
    Ok(())
}

/// Runs with no end recorded: the apps the last daemon left behind.
pub fn open_runs(conn: &Connection) -> Result<Vec<OpenRun>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT r.id, r.project_id, p.owner_id, p.name, r.pid, r.proc_start, r.port, p.wanted, r.version \
         FROM project_runs r JOIN projects p ON p.id = r.project_id \
         WHERE r.stopped_at IS NULL AND r.pid IS NOT NULL ORDER BY r.id",
    )?;
    let runs = stmt
        .query_map([], |r| {
            Ok(OpenRun {
                run_id: r.get(0)?,
                project_id: r.get(1)?,
                owner_id: r.get(2)?,
                name: r.get(3)?,
                pid: r.get(4)?,
                proc_start: r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64,
                port: r.get::<_, Option<i64>>(6)?.unwrap_or(0) as u16,
                wanted_running: r.get::<_, String>(7)? == "running",
                version: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(runs)
}

/// Projects whose owner wants them running.
pub fn wanted_running(conn: &Connection) -> Result<Vec<Wanted>, DbError> {
    let mut stmt = conn
        .prepare("SELECT id, owner_id, name FROM projects WHERE wanted = 'running' ORDER BY id")?;
    let wanted = stmt
        .query_map([], |r| {
            Ok(Wanted {
                project_id: r.get(0)?,
                owner_id: r.get(1)?,
                name: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(wanted)
}

/// The project's last port, if it has one.
pub fn last_port(conn: &Connection, project_id: i64) -> Result<Option<u16>, DbError> {
    let port: Option<Option<i64>> = conn
        .query_row(
            "SELECT port FROM projects WHERE id = ?1",
            [project_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(port.flatten().and_then(|p| u16::try_from(p).ok()))
}
