//! Copies a SQLite store into an empty PostgreSQL one, for a team that
//! started with one daemon and now shares a database: every account,
//! session, project, version, file, generation and run, with its id, so
//! nobody signs in again and every app is found again by its host's daemon.
//!
//! The copy is one PostgreSQL transaction: it lands whole or not at all.
//! The SQLite file is locked meanwhile, as a daemon locks it, so none
//! writes to it under the copy.

use super::{Conn, Db, DbError, Value};

/// The tables copied, each after those it refers to. `daemons` is not
/// copied: it names the daemons running now, which register themselves.
const TABLES: &[&str] = &[
    "users",
    "sessions",
    "projects",
    "generation_history",
    "project_versions",
    "project_files",
    "project_runs",
    "project_settings",
];

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds data; nothing was written.
    #[error(
        "the database at {at} already holds data ({what}); copy into an empty database, so \
         nothing there is overwritten or mixed with this store"
    )]
    NotEmpty {
        /// Where, without the password.
        at: String,
        /// What it holds, e.g. "3 users, 5 projects".
        what: String,
    },
    /// Either store failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How many rows of each table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied(pub Vec<(&'static str, usize)>);

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(t, n)| format!("{n} {t}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// One table's rows, as read.
struct Table {
    name: &'static str,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// Copies every row of the SQLite store `from` into the PostgreSQL store
/// `to`, which must hold none.
pub async fn sqlite_to_postgres(from: &Db, to: &Db) -> Result<Copied, CopyError> {
    if from.sqlite_path().is_none() || to.postgres().is_none() {
        return Err(
            DbError::Config("a copy goes from a SQLite store to a PostgreSQL one".into()).into(),
        );
    }
    // Read in one transaction, so the copy is of one moment.
    let tables = from
        .transaction(|c| {
            TABLES
                .iter()
                .map(|t| read(c, t))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let copied = Copied(tables.iter().map(|t| (t.name, t.rows.len())).collect());
    let at = to.describe();
    to.transaction(move |c| {
        // Locked against writers (a daemon started on it meanwhile) until
        // the copy commits, and only then found empty.
        c.execute(
            &format!("LOCK TABLE {} IN EXCLUSIVE MODE", TABLES.join(", ")),
            &[],
        )?;
        let held = counts(c)?;
        if held.iter().any(|(_, n)| *n > 0) {
            let what = held
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(t, n)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CopyError::NotEmpty { at, what });
        }
        for table in &tables {
            write(c, table)?;
        }
        // PostgreSQL numbers every `id`: on from the highest copied (from 1
        // for an empty table).
        for table in tables
            .iter()
            .filter(|t| t.columns.iter().any(|c| c == "id"))
        {
            let name = table.name;
            c.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{name}', 'id'), \
                     COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
                ),
                &[],
            )?;
        }
        Ok(())
    })
    .await?;
    Ok(copied)
}

/// Rows in each copied table.
fn counts(c: &Conn<'_>) -> Result<Vec<(&'static str, i64)>, DbError> {
    TABLES
        .iter()
        .map(|t| {
            let n = c.query_one(&format!("SELECT COUNT(*) FROM {t}"), &[], |r| r.get(0))?;
            Ok((*t, n))
        })
        .collect()
}

fn read(c: &Conn<'_>, name: &'static str) -> Result<Table, DbError> {
    let columns: Vec<String> = c.query(
        &format!("SELECT name FROM pragma_table_info('{name}') ORDER BY cid"),
        &[],
        |r| r.get(0),
    )?;
    let list = columns.join(", ");
    let rows = c.query(&format!("SELECT {list} FROM {name}"), &[], |r| {
        Ok(r.0.clone())
    })?;
    Ok(Table {
        name,
        columns,
        rows,
    })
}

fn write(c: &Conn<'_>, table: &Table) -> Result<(), DbError> {
    let slots: Vec<String> = (1..=table.columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.columns.join(", "),
        slots.join(", ")
    );
    for row in &table.rows {
        c.execute(&sql, row)?;
    }
    Ok(())
}
