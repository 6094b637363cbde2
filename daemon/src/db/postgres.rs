//! The shared PostgreSQL store: a pool of connections (deadpool-postgres
//! over tokio-postgres). The store's operations are synchronous closures, as
//! for SQLite, run on the blocking pool; each query inside is awaited there
//! on the runtime's handle. So one operation's SQL reads the same on both
//! stores and a transaction is simply the closure.

use std::error::Error as StdError;
use std::str::FromStr;

use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod};
use postgres_types::{to_sql_checked, IsNull, ToSql, Type};
use tokio::runtime::Handle;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::value::{Row, Value};
use super::{migrations, DbError};
use appforge_shared::protocol::Secret;

/// Connections held at most; each operation takes one for its length.
const POOL_SIZE: usize = 8;

/// An open PostgreSQL database.
pub struct Postgres {
    pool: Pool,
    /// For connections outside the pool.
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// Where it is, without the password: for messages and `status`.
    shown: String,
}

/// A connection outside the pool, and the task that drives it.
pub struct Dedicated {
    /// Its client.
    pub client: tokio_postgres::Client,
    /// Ends when the connection does, with why.
    pub ended: tokio::task::JoinHandle<String>,
}

impl Postgres {
    /// Connects to `url`, with `password` when the URL carries none, and
    /// migrates the database.
    pub async fn open(url: &str, password: Option<&Secret>) -> Result<Postgres, DbError> {
        let (url, root_cert) = take_root_cert(url);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            DbError::Config(format!(
                "the database URL is not a PostgreSQL URL ({e}); write it as \
                 postgres://USER@HOST:PORT/DATABASE"
            ))
        })?;
        let tls = tls(root_cert.as_deref())?;
        if config.get_password().is_none() {
            if let Some(password) = password {
                config.password(password.0.as_bytes());
            }
        }
        if config.get_application_name().is_none() {
            config.application_name("appforged");
        }
        let shown = shown(&config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        let store = Postgres {
            pool,
            config,
            tls,
            shown,
        };
        let mut client = store.client().await?;
        migrations::apply_postgres(&mut client).await?;
        Ok(store)
    }

    /// Where the database is, without the password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Client, DbError> {
        self.pool.get().await.map_err(|e| DbError::Unreachable {
            at: self.shown.clone(),
            why: match e {
                deadpool_postgres::PoolError::Backend(e) => server_said(&e),
                other => other.to_string(),
            },
        })
    }

    /// A connection of its own, outside the pool, for a session that must
    /// last (the host claim's advisory lock).
    pub async fn dedicated(&self) -> Result<Dedicated, DbError> {
        let (client, connection) =
            self.config
                .connect(self.tls.clone())
                .await
                .map_err(|e| DbError::Unreachable {
                    at: self.shown.clone(),
                    why: server_said(&e),
                })?;
        let ended = tokio::spawn(async move {
            match connection.await {
                Ok(()) => "the server closed it".to_string(),
                Err(e) => e.to_string(),
            }
        });
        Ok(Dedicated { client, ended })
    }

    /// Runs `f` with a pooled connection on the blocking pool, in a
    /// transaction when `transaction` is set (committed only when `f`
    /// succeeds; otherwise, or if `f` panics, rolled back).
    pub async fn run<T, E, F>(&self, transaction: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&super::Conn<'_>) -> Result<T, E> + Send + 'static,
    {
        let mut client = self.client().await?;
        let rt = Handle::current();
        tokio::task::spawn_blocking(move || {
            if !transaction {
                let on = On::Client(&client);
                return f(&super::Conn::Postgres(PgConn { rt: &rt, on }));
            }
            let tx = rt.block_on(client.transaction()).map_err(DbError::from)?;
            let result = f(&super::Conn::Postgres(PgConn {
                rt: &rt,
                on: On::Tx(&tx),
            }));
            match result.is_ok() {
                true => rt.block_on(tx.commit()).map_err(DbError::from)?,
                false => rt.block_on(tx.rollback()).map_err(DbError::from)?,
            }
            result
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }
}

/// What the server said, rather than tokio-postgres's bare "db error",
/// and what to do about it.
fn server_said(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "{}; check the user and the password (APPFORGE_DATABASE_PASSWORD or the \
             database-password credential)",
            db.message()
        );
    }
    let text = match StdError::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    };
    if text.contains("TLS") || text.contains("certificate") {
        format!(
            "{text}; name the certificate authority that signed the server's certificate \
             with sslrootcert=FILE in the URL (PEM), or add sslmode=disable on a network you \
             trust"
        )
    } else {
        format!("{text}; check that PostgreSQL runs there and takes connections")
    }
}

/// Takes libpq's `sslrootcert=FILE` out of the URL's query (tokio-postgres
/// does not know it): the CA the server's certificate must chain to.
fn take_root_cert(url: &str) -> (String, Option<std::path::PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
                root = Some(std::path::PathBuf::from(path.into_owned()));
                false
            }
            None => true,
        })
        .collect();
    match kept.is_empty() {
        true => (base.to_string(), root),
        false => (format!("{base}?{}", kept.join("&")), root),
    }
}

/// The TLS connector: certificates must chain to the system's roots or to
/// `root_cert`. Used as `sslmode` says: `prefer` (the default) encrypts when
/// the server can, `require` refuses to go on without, `disable` never does.
fn tls(root_cert: Option<&std::path::Path>) -> Result<MakeRustlsConnect, DbError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = root_cert {
        let bad = |why: String| {
            DbError::Config(format!(
                "sslrootcert {} cannot be used: {why}; give a PEM file of the certificate \
                 authority that signed the server's certificate",
                path.display()
            ))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("it holds no certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(format!("TLS cannot be set up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `user@host:port/database`, never the password.
fn shown(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// A connection or transaction of the pool, as the store's operations use it.
pub struct PgConn<'a> {
    rt: &'a Handle,
    on: On<'a>,
}

enum On<'a> {
    Client(&'a ClientWrapper),
    Tx(&'a deadpool_postgres::Transaction<'a>),
}

impl PgConn<'_> {
    /// Runs one statement, returning its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.rt.block_on(async {
            match &self.on {
                On::Client(c) => {
                    let stmt = c.prepare_cached(sql).await?;
                    c.query(&stmt, &params).await
                }
                On::Tx(t) => {
                    let stmt = t.prepare_cached(sql).await?;
                    t.query(&stmt, &params).await
                }
            }
        })?;
        rows.iter().map(row_of).collect()
    }

    /// Runs one statement, returning the rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.rt.block_on(async {
            match &self.on {
                On::Client(c) => {
                    let stmt = c.prepare_cached(sql).await?;
                    c.execute(&stmt, &params).await
                }
                On::Tx(t) => {
                    let stmt = t.prepare_cached(sql).await?;
                    t.execute(&stmt, &params).await
                }
            }
        })?)
    }
}

fn row_of(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            ref other => {
                return Err(DbError::Decode(format!(
                    "column {} has type {other}, which the store never reads",
                    column.name()
                )))
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    // Every kind is offered; the server's inferred type decides the encoding
    // above, and a mismatch is the server's error.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url_and_the_rest_kept() {
        let (url, root) =
            take_root_cert("postgres://a@h/d?sslmode=require&sslrootcert=/etc/a%20b.pem");
        assert_eq!(url, "postgres://a@h/d?sslmode=require");
        assert_eq!(root.unwrap(), std::path::Path::new("/etc/a b.pem"));
        let (url, root) = take_root_cert("postgres://a@h/d?sslrootcert=/ca.pem");
        assert_eq!((url.as_str(), root.is_some()), ("postgres://a@h/d", true));
        let (url, root) = take_root_cert("postgres://a@h/d");
        assert_eq!((url.as_str(), root), ("postgres://a@h/d", None));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = tls(Some(&dir.path().join("none.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("none.pem cannot be used"), "{missing}");
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let empty = tls(Some(&dir.path().join("empty.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(empty.contains("holds no certificate"), "{empty}");
        assert!(tls(None).is_ok());
    }
}
