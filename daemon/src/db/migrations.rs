//! Numbered schema migrations, applied in order at start-up, numbered the
//! same for both stores: migration N of SQLite and of PostgreSQL make the
//! same tables in each one's own dialect. Each runs in its own transaction,
//! so a crash leaves the database at a whole version. SQLite keeps the
//! version in `PRAGMA user_version`, PostgreSQL in `schema_version`.

use rusqlite::Connection;

use super::DbError;

/// SQLite's migrations, in order; migration N is `SQLITE[N - 1]`. Never edit
/// a published one: add a new one, here and in [`POSTGRES`].
const SQLITE: &[&str] = &[
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
    // 5: several daemons on one database: each run carries the host whose
    // daemon started it, a project the host it is wanted running on, and
    // each host's daemon is registered while it runs.
    r#"
    ALTER TABLE project_runs ADD COLUMN host TEXT;
    ALTER TABLE projects ADD COLUMN wanted_host TEXT;
    CREATE INDEX project_runs_host_open ON project_runs(host) WHERE stopped_at IS NULL;
    CREATE TABLE daemons (
        host       TEXT PRIMARY KEY,
        pid        INTEGER NOT NULL,
        socket     TEXT NOT NULL,
        started_at TEXT NOT NULL
    );
    "#,
    // 6: the host claim's holder and lease: a random id of the daemon that
    // holds it, the machine it runs on (boot and PID namespace), and until
    // when its claim holds unless renewed.
    r#"
    ALTER TABLE daemons ADD COLUMN instance TEXT;
    ALTER TABLE daemons ADD COLUMN machine TEXT;
    ALTER TABLE daemons ADD COLUMN lease_until TEXT;
    "#,
    // 7: each app's own settings (`appforge env`). A secret's value is
    // sealed, and `key_id` names the key that sealed it; a plain setting
    // has none.
    r#"
    CREATE TABLE project_settings (
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        value      TEXT NOT NULL,
        key_id     TEXT,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        PRIMARY KEY (project_id, name)
    );
    "#,
];

/// PostgreSQL's migrations, numbered as [`SQLITE`]'s. Integers are BIGINT, so
/// both stores hand back 64-bit integers; names, paths, emails and times
/// compare byte-wise (`COLLATE "C"`), as in SQLite, whatever the database's
/// locale.
const POSTGRES: &[&str] = &[
    // 1: the seed's four tables, plus sessions.
    r#"
    CREATE FUNCTION appforge_now() RETURNS TEXT LANGUAGE sql STABLE
        AS $$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;
    CREATE TABLE users (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        email         TEXT COLLATE "C" NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL DEFAULT appforge_now()
    );
    CREATE TABLE sessions (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash  TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL DEFAULT appforge_now(),
        expires_at  TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE projects (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name          TEXT COLLATE "C" NOT NULL,
        description   TEXT NOT NULL DEFAULT '',
        prompt        TEXT NOT NULL DEFAULT '',
        backend_code  TEXT NOT NULL DEFAULT '',
        frontend_code TEXT NOT NULL DEFAULT '',
        created_at    TEXT NOT NULL DEFAULT appforge_now(),
        last_modified TEXT NOT NULL DEFAULT appforge_now(),
        status        TEXT NOT NULL DEFAULT 'stopped',
        port          BIGINT,
        framework     TEXT NOT NULL DEFAULT 'flask',
        owner_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        UNIQUE (owner_id, name)
    );
    CREATE TABLE project_runs (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        project_id  BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        pid         BIGINT,
        port        BIGINT,
        started_at  TEXT NOT NULL DEFAULT appforge_now(),
        stopped_at  TEXT,
        status      TEXT NOT NULL
    );
    CREATE INDEX project_runs_project ON project_runs(project_id);
    CREATE TABLE generation_history (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        project_id  BIGINT REFERENCES projects(id) ON DELETE SET NULL,
        prompt      TEXT NOT NULL,
        response    TEXT NOT NULL DEFAULT '',
        tokens_used BIGINT NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL DEFAULT appforge_now()
    );
    CREATE INDEX generation_history_project ON generation_history(project_id);
    "#,
    // 2: who asked, how it went, and versions of a project's whole file set.
    r#"
    ALTER TABLE generation_history ADD COLUMN owner_id BIGINT REFERENCES users(id) ON DELETE CASCADE;
    ALTER TABLE generation_history ADD COLUMN kind TEXT NOT NULL DEFAULT 'generate';
    ALTER TABLE generation_history ADD COLUMN provider TEXT NOT NULL DEFAULT '';
    ALTER TABLE generation_history ADD COLUMN model TEXT NOT NULL DEFAULT '';
    ALTER TABLE generation_history ADD COLUMN prompt_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN completion_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN duration_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
    ALTER TABLE generation_history ADD COLUMN error TEXT;
    ALTER TABLE generation_history ADD COLUMN request_id TEXT;
    ALTER TABLE generation_history ADD COLUMN files TEXT;
    CREATE INDEX generation_history_owner ON generation_history(owner_id);
    CREATE TABLE project_versions (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        project_id    BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        version       BIGINT NOT NULL,
        kind          TEXT NOT NULL,
        prompt        TEXT NOT NULL DEFAULT '',
        generation_id BIGINT REFERENCES generation_history(id) ON DELETE SET NULL,
        tokens_used   BIGINT NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL DEFAULT appforge_now(),
        UNIQUE (project_id, version)
    );
    CREATE TABLE project_files (
        version_id BIGINT NOT NULL REFERENCES project_versions(id) ON DELETE CASCADE,
        path       TEXT COLLATE "C" NOT NULL,
        content    TEXT NOT NULL,
        PRIMARY KEY (version_id, path)
    );
    "#,
    // 3: the supervisor: what the owner wants, and how each run ended.
    r#"
    ALTER TABLE projects ADD COLUMN wanted TEXT NOT NULL DEFAULT 'stopped';
    ALTER TABLE project_runs ADD COLUMN proc_start BIGINT;
    ALTER TABLE project_runs ADD COLUMN exit_code BIGINT;
    ALTER TABLE project_runs ADD COLUMN signal BIGINT;
    CREATE INDEX project_runs_open ON project_runs(project_id) WHERE stopped_at IS NULL;
    "#,
    // 4: the checks.
    r#"
    ALTER TABLE generation_history ADD COLUMN round BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE generation_history ADD COLUMN checks TEXT;
    ALTER TABLE project_versions ADD COLUMN checks TEXT
        CHECK (checks IN ('passed', 'skipped', 'failed'));
    ALTER TABLE project_runs ADD COLUMN version BIGINT;
    "#,
    // 5: several daemons on one database.
    r#"
    ALTER TABLE project_runs ADD COLUMN host TEXT COLLATE "C";
    ALTER TABLE projects ADD COLUMN wanted_host TEXT COLLATE "C";
    CREATE INDEX project_runs_host_open ON project_runs(host) WHERE stopped_at IS NULL;
    CREATE TABLE daemons (
        host       TEXT COLLATE "C" PRIMARY KEY,
        pid        BIGINT NOT NULL,
        socket     TEXT NOT NULL,
        started_at TEXT NOT NULL
    );
    "#,
    // 6: the host claim's holder and lease, on the server's clock.
    r#"
    ALTER TABLE daemons ADD COLUMN instance TEXT;
    ALTER TABLE daemons ADD COLUMN machine TEXT;
    ALTER TABLE daemons ADD COLUMN lease_until TIMESTAMPTZ;
    "#,
    // 7: each app's own settings, secrets sealed.
    r#"
    CREATE TABLE project_settings (
        project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name       TEXT COLLATE "C" NOT NULL,
        value      TEXT NOT NULL,
        key_id     TEXT,
        updated_at TEXT NOT NULL DEFAULT appforge_now(),
        PRIMARY KEY (project_id, name)
    );
    "#,
];

/// Brings a SQLite database up to the newest schema.
pub fn apply_sqlite(conn: &mut Connection) -> Result<(), DbError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > SQLITE.len() {
        return Err(DbError::TooNew {
            found: current,
            known: SQLITE.len(),
        });
    }
    for (index, sql) in SQLITE.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version as i64))
            .map_err(|source| DbError::Migration {
                version,
                source: Box::new(source.into()),
            })?;
        tx.commit()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

/// An arbitrary key for the advisory lock that serialises migrations when
/// several daemons start on one database at once.
const MIGRATION_LOCK: i64 = 0x61_70_70_66_6f_72_67_65;

/// Brings a PostgreSQL database up to the newest schema.
pub async fn apply_postgres(client: &mut deadpool_postgres::Client) -> Result<(), DbError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let current: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .await?
            .map_or(0, |r| r.get(0));
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        if current > POSTGRES.len() {
            return Err(DbError::TooNew {
                found: current,
                known: POSTGRES.len(),
            });
        }
        let Some(sql) = POSTGRES.get(current) else {
            return Ok(());
        };
        let version = current + 1;
        let applied = async {
            tx.batch_execute(sql).await?;
            tx.execute("DELETE FROM schema_version", &[]).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(version as i64)],
            )
            .await?;
            tx.commit().await
        };
        applied.await.map_err(|source| DbError::Migration {
            version,
            source: Box::new(source.into()),
        })?;
        tracing::info!(version, "applied database migration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_create_every_seed_column() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply_sqlite(&mut conn).unwrap();
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
    fn both_stores_have_every_migration() {
        assert_eq!(SQLITE.len(), POSTGRES.len());
    }

    #[test]
    fn applying_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply_sqlite(&mut conn).unwrap();
        apply_sqlite(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, SQLITE.len());
    }
}
