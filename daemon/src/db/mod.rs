//! The SQLite database: opening it, migrating it, and running queries off the
//! async worker threads.

mod migrations;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A numbered migration failed; the database is left at the version before it.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration's number.
        version: usize,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database is newer than this daemon.
    #[error(
        "the database is at schema version {found}, newer than this appforged knows ({known}); \
         upgrade appforged"
    )]
    TooNew {
        /// Version found in the file.
        found: usize,
        /// Newest version this build knows.
        known: usize,
    },
    /// The blocking task running the query died.
    #[error("database task failed: {0}")]
    Task(String),
}

/// A handle to the database, cheap to clone. Queries run on tokio's blocking
/// pool so they never stall the async workers.
#[derive(Clone)]
pub struct Db {
    /// One connection, taken in turn: waiting is async, so a burst of
    /// requests queues here instead of each holding a blocking thread.
    conn: Arc<tokio::sync::Mutex<Connection>>,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrations::apply(&mut conn)?;
        Ok(Db {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let mut guard = Arc::clone(&self.conn).lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut guard))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }
}

fn configure(conn: &Connection) -> Result<(), DbError> {
    // WAL keeps the file consistent across a kill -9 at any point; NORMAL
    // synchronous may lose the last commits on power loss but never corrupts.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// The current time as stored in the database: RFC 3339 UTC to the second.
pub const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ','now')";

/// The current time, RFC 3339 UTC to the millisecond, where two events in
/// one second must still differ.
pub const NOW_MS: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_twice_keeps_the_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let db = Db::open(&path).unwrap();
        db.call(|c| {
            c.execute(
                "INSERT INTO users (email, password_hash) VALUES ('a@b.co', 'x')",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        let n: i64 = db
            .call(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let err = db
            .call(|c| {
                c.execute(
                    "INSERT INTO projects (name, owner_id) VALUES ('p', 999)",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 999)
            .unwrap();
        assert!(matches!(
            Db::open(&path),
            Err(DbError::TooNew { found: 999, .. })
        ));
    }
}
