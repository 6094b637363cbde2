//! The embedded SQLite store: one connection, taken in turn, queried on
//! tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

use super::value::{Row, Value};
use super::{migrations, DbError};

/// An open SQLite database.
pub struct Sqlite {
    /// One connection, taken in turn: waiting is async, so a burst of
    /// requests queues here instead of each holding a blocking thread.
    conn: Arc<tokio::sync::Mutex<Connection>>,
}

impl Sqlite {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, DbError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrations::apply_sqlite(&mut conn)?;
        Ok(Sqlite {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool, in a transaction
    /// when `transaction` is set (committed only when `f` succeeds).
    pub async fn run<T, E, F>(&self, transaction: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&super::Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        let mut guard = Arc::clone(&self.conn).lock_owned().await;
        tokio::task::spawn_blocking(move || {
            if !transaction {
                return f(&super::Conn::Sqlite(&guard));
            }
            let tx = guard.transaction().map_err(DbError::from)?;
            let result = f(&super::Conn::Sqlite(&tx));
            if result.is_ok() {
                tx.commit().map_err(DbError::from)?;
            }
            result
        })
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

/// Runs one statement, returning the rows it yields.
pub fn query(conn: &Connection, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
    let mut stmt = conn.prepare_cached(&placeholders(sql))?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns)
            .map(|i| value_of(row.get_ref(i)?, i))
            .collect::<Result<_, DbError>>()?;
        out.push(Row(values));
    }
    Ok(out)
}

/// Runs one statement, returning the rows it changed.
pub fn execute(conn: &Connection, sql: &str, params: &[Value]) -> Result<u64, DbError> {
    let mut stmt = conn.prepare_cached(&placeholders(sql))?;
    Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
}

fn value_of(value: ValueRef<'_>, index: usize) -> Result<Value, DbError> {
    match value {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => Ok(Value::Text(String::from_utf8_lossy(t).into_owned())),
        other => Err(DbError::Decode(format!(
            "column {index} holds a {:?}, which the store never writes",
            other.data_type()
        ))),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

/// The store's SQL numbers its parameters `$1`, as PostgreSQL does. SQLite
/// would read `$1` as a *named* parameter and number names by first
/// appearance, so they become `?1` here (outside quoted text).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_sqlites_and_quoted_text_stays() {
        assert_eq!(
            placeholders("UPDATE t SET a = $2 WHERE id = $1 AND b = '$1'"),
            "UPDATE t SET a = ?2 WHERE id = ?1 AND b = '$1'"
        );
        assert_eq!(placeholders("SELECT '$' || $10"), "SELECT '$' || ?10");
    }

    #[test]
    fn parameters_bind_by_number_not_by_order_of_appearance() {
        let conn = Connection::open_in_memory().unwrap();
        let rows = query(
            &conn,
            "SELECT $2, $1",
            &[Value::Int(1), Value::Text("two".into())],
        )
        .unwrap();
        assert_eq!(rows[0].get::<String>(0).unwrap(), "two");
        assert_eq!(rows[0].get::<i64>(1).unwrap(), 1);
    }
}
