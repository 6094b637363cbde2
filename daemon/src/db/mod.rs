//! The store: SQLite by default, PostgreSQL for teams. Both are used through
//! one small SQL surface ([`Conn`]): numbered `$1` parameters, integers and
//! text, `RETURNING` for new ids, and timestamps computed here rather than
//! by either server, so each operation is written once.

pub mod copy;
pub mod hosts;
mod migrations;
pub mod postgres;
mod sqlite;
mod value;

use std::path::Path;

use appforge_shared::protocol::Secret;

pub use value::{Row, Value};

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// PostgreSQL could not be reached.
    #[error("cannot reach the database at {at}: {why}")]
    Unreachable {
        /// Where, without the password.
        at: String,
        /// What the connection attempt said.
        why: String,
    },
    /// The database settings cannot be used.
    #[error("{0}")]
    Config(String),
    /// A numbered migration failed; the database is left at the version before it.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration's number.
        version: usize,
        /// What the database said.
        source: Box<DbError>,
    },
    /// The database is newer than this daemon.
    #[error(
        "the database is at schema version {found}, newer than this appforged knows ({known}); \
         upgrade appforged"
    )]
    TooNew {
        /// Version found in the database.
        found: usize,
        /// Newest version this build knows.
        known: usize,
    },
    /// A query that must return a row returned none.
    #[error("the database returned no row where one was expected")]
    NoRow,
    /// A stored value is not what the store wrote.
    #[error("unexpected value in the database: {0}")]
    Decode(String),
    /// The blocking task running the query died.
    #[error("database task failed: {0}")]
    Task(String),
}

/// tokio-postgres shows only "db error" for server errors; the server's own
/// message is the useful part.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}

/// A handle to the store, cheap to clone.
#[derive(Clone)]
pub struct Db(std::sync::Arc<Store>);

enum Store {
    Sqlite {
        db: sqlite::Sqlite,
        path: std::path::PathBuf,
    },
    Postgres(Box<postgres::Postgres>),
}

impl Db {
    /// Opens (creating if needed) and migrates the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Ok(Db(std::sync::Arc::new(Store::Sqlite {
            db: sqlite::Sqlite::open(path)?,
            path: path.to_path_buf(),
        })))
    }

    /// Connects to and migrates the PostgreSQL database at `url`.
    pub async fn connect(url: &str, password: Option<&Secret>) -> Result<Db, DbError> {
        Ok(Db(std::sync::Arc::new(Store::Postgres(Box::new(
            postgres::Postgres::open(url, password).await?,
        )))))
    }

    /// Where the store is: the SQLite file, or the PostgreSQL URL without
    /// its password.
    pub fn describe(&self) -> String {
        match &*self.0 {
            Store::Sqlite { path, .. } => path.display().to_string(),
            Store::Postgres(pg) => pg.shown().to_string(),
        }
    }

    /// The SQLite file, when that is the store in use.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &*self.0 {
            Store::Sqlite { path, .. } => Some(path),
            Store::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when that is the one in use.
    pub fn postgres(&self) -> Option<&postgres::Postgres> {
        match &*self.0 {
            Store::Postgres(pg) => Some(pg),
            Store::Sqlite { .. } => None,
        }
    }

    /// Runs `f` off the async workers, each statement on its own.
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, DbError> + Send + 'static,
    {
        self.run(false, f).await
    }

    /// Runs `f` in one transaction, committed only when `f` succeeds.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        self.run(true, f).await
    }

    async fn run<T, E, F>(&self, transaction: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        match &*self.0 {
            Store::Sqlite { db, .. } => db.run(transaction, f).await,
            Store::Postgres(pg) => pg.run(transaction, f).await,
        }
    }
}

/// A connection or transaction of either store.
pub enum Conn<'a> {
    /// SQLite.
    Sqlite(&'a rusqlite::Connection),
    /// PostgreSQL.
    Postgres(postgres::PgConn<'a>),
}

impl Conn<'_> {
    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Conn::Sqlite(c) => sqlite::execute(c, sql, params),
            Conn::Postgres(c) => c.execute(sql, params),
        }
    }

    /// Serialises the writers of one project until the transaction ends:
    /// on PostgreSQL, daemons on other hosts wait on the project's row lock;
    /// SQLite has one writer already. Call inside a transaction.
    pub fn lock_project(&self, project_id: i64) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(_) => Ok(()),
            Conn::Postgres(c) => c
                .query(
                    "SELECT id FROM projects WHERE id = $1 FOR UPDATE",
                    &[Value::Int(project_id)],
                )
                .map(drop),
        }
    }

    /// Runs one query and maps each row.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[Value],
        map: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        self.rows(sql, params)?.iter().map(map).collect()
    }

    /// Runs one query and maps its first row, if any.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value],
        map: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        self.rows(sql, params)?.first().map(map).transpose()
    }

    fn rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Conn::Sqlite(c) => sqlite::query(c, sql, params),
            Conn::Postgres(c) => c.query(sql, params),
        }
    }

    /// Runs one query that must yield a row and maps it.
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[Value],
        map: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, params, map)?.ok_or(DbError::NoRow)
    }
}

/// The current time as stored: RFC 3339 UTC to the second.
pub fn now() -> String {
    at(time::OffsetDateTime::now_utc(), false)
}

/// The current time to the millisecond, where two events in one second
/// must still differ.
pub fn now_ms() -> String {
    at(time::OffsetDateTime::now_utc(), true)
}

/// `when` as stored, `days` from now.
pub fn days_from_now(days: u32) -> String {
    at(
        time::OffsetDateTime::now_utc() + time::Duration::days(days.into()),
        false,
    )
}

fn at(when: time::OffsetDateTime, millis: bool) -> String {
    use time::macros::format_description;
    let text = match millis {
        true => when.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        )),
        false => when.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        )),
    };
    text.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;

    #[tokio::test]
    async fn opening_twice_keeps_the_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let db = Db::open(&path).unwrap();
        db.call(|c| {
            c.execute(
                "INSERT INTO users (email, password_hash) VALUES ($1, 'x')",
                params!["a@b.co"],
            )
        })
        .await
        .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        let n: i64 = db
            .call(|c| c.query_one("SELECT count(*) FROM users", &[], |r| r.get(0)))
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
                    &[],
                )
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let result: Result<(), DbError> = db
            .transaction(|c| {
                c.execute(
                    "INSERT INTO users (email, password_hash) VALUES ('a@b.co', 'x')",
                    &[],
                )?;
                Err(DbError::NoRow)
            })
            .await;
        assert!(result.is_err());
        let n: i64 = db
            .call(|c| c.query_one("SELECT count(*) FROM users", &[], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 999)
            .unwrap();
        assert!(matches!(
            Db::open(&path),
            Err(DbError::TooNew { found: 999, .. })
        ));
    }

    #[test]
    fn timestamps_sort_as_text() {
        let (a, b) = (now(), days_from_now(1));
        assert_eq!(a.len(), "2026-01-01T00:00:00Z".len());
        assert!(a < b);
        assert_eq!(now_ms().len(), "2026-01-01T00:00:00.000Z".len());
    }
}
