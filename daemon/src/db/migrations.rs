//! Numbered schema migrations, applied in order at start-up. The schema
//! version lives in `PRAGMA user_version`; each migration runs in its own
//! transaction, so a crash leaves the database at a whole version.

use rusqlite::Connection;

use super::DbError;

/// The migrations, in order; migration N is `MIGRATIONS[N - 1]`. Never edit a
/// published one: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the seed's four tables, plus sessions.
    r#"
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE TABLE sessions (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash  TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        expires_at  TEXT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE projects (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        description   TEXT NOT NULL DEFAULT '',
        prompt        TEXT NOT NULL DEFAULT '',
        backend_code  TEXT NOT NULL DEFAULT '',
        frontend_code TEXT NOT NULL DEFAULT '',
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        last_modified TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        status        TEXT NOT NULL DEFAULT 'stopped',
        port          INTEGER,
        framework     TEXT NOT NULL DEFAULT 'flask',
        owner_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        UNIQUE (owner_id, name)
    );
    CREATE TABLE project_runs (
        id          INTEGER PRIMARY KEY,
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        pid         INTEGER,
        port        INTEGER,
        started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        stopped_at  TEXT,
        status      TEXT NOT NULL
    );
    CREATE INDEX project_runs_project ON project_runs(project_id);
    CREATE TABLE generation_history (
        id          INTEGER PRIMARY KEY,
        project_id  INTEGER REFERENCES projects(id) ON DELETE SET NULL,
        prompt      TEXT NOT NULL,
        response    TEXT NOT NULL DEFAULT '',
        tokens_used INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE INDEX generation_history_project ON generation_history(project_id);
    "#,
    // 2: who asked, how it went, and versions of a project's whole file set.
    r#"
    ALTER TABLE generation_history ADD COLUMN owner_id INTEGER REFERENCES users(id) ON DELETE CASCADE;
    ALTER TABLE generation_history ADD COLUMN kind TEXT NOT NULL DEFAULT 'generate';
    ALTER TABLE generation_history ADD COLUMN provider TEXT NOT NULL DEFAULT '';
    ALTER TABLE generation_history ADD COLUMN model TEXT NOT NULL DEFAULT '';
    ALTER TABLE generation_history ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
    ALTER TABLE generation_history ADD COLUMN error TEXT;
    ALTER TABLE generation_history ADD COLUMN request_id TEXT;
    ALTER TABLE generation_history ADD COLUMN files TEXT;
    CREATE INDEX generation_history_owner ON generation_history(owner_id);
    CREATE TABLE project_versions (
        id            INTEGER PRIMARY KEY,
        project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        version       INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        prompt        TEXT NOT NULL DEFAULT '',
        generation_id INTEGER REFERENCES generation_history(id) ON DELETE SET NULL,
        tokens_used   INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        UNIQUE (project_id, version)
    );
    CREATE TABLE project_files (
        version_id INTEGER NOT NULL REFERENCES project_versions(id) ON DELETE CASCADE,
        path       TEXT NOT NULL,
        content    TEXT NOT NULL,
        PRIMARY KEY (version_id, path)
    );
    "#,
    // 3: the supervisor: what the owner wants, and how each run ended.
    r#"
    ALTER TABLE projects ADD COLUMN wanted TEXT NOT NULL DEFAULT 'stopped';
    ALTER TABLE project_runs ADD COLUMN proc_start INTEGER;
    ALTER TABLE project_runs ADD COLUMN exit_code INTEGER;
    ALTER TABLE project_runs ADD COLUMN signal INTEGER;
    CREATE INDEX project_runs_open ON project_runs(project_id) WHERE stopped_at IS NULL;
    "#,
    // 4: the checks: a history row per round with what was mended and
    // checked, and how each version fared (NULL: saved before checks).
    r#"
    ALTER TABLE generation_history ADD COLUMN round INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN checks TEXT;
    ALTER TABLE project_versions ADD COLUMN checks TEXT
        CHECK (checks IN ('passed', 'skipped', 'failed'));
    ALTER TABLE project_runs ADD COLUMN version INTEGER;
    "#,
];

/// Brings the database up to the newest schema.
pub fn apply(conn: &mut Connection) -> Result<(), DbError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version as i64))
            .map_err(|source| DbError::Migration { version, source })?;
        tx.commit()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_create_every_seed_column() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        let columns = |table: &str| -> Vec<String> {
            let mut stmt = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let expect = [
            ("users", &["id", "email", "password_hash", "created_at"][..]),
            (
                "projects",
                &[
                    "id",
                    "name",
                    "description",
                    "prompt",
                    "backend_code",
                    "frontend_code",
                    "created_at",
                    "last_modified",
                    "status",
                    "port",
                    "framework",
                    "owner_id",
                ][..],
            ),
            (
                "project_runs",
                &[
                    "id",
                    "project_id",
                    "pid",
                    "port",
                    "started_at",
                    "stopped_at",
                    "status",
                ][..],
            ),
            (
                "generation_history",
                &[
                    "id",
                    "project_id",
                    "prompt",
                    "response",
                    "tokens_used",
                    "created_at",
                ][..],
            ),
            (
                "sessions",
                &["id", "user_id", "token_hash", "expires_at"][..],
            ),
        ];
        for (table, wanted) in expect {
            let have = columns(table);
            for column in wanted {
                assert!(have.iter().any(|c| c == column), "{table}.{column} missing");
            }
        }
    }

    #[test]
    fn applying_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }
}
