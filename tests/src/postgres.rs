//! A real PostgreSQL server for the tests: started once per test binary from
//! the system's `initdb` and `pg_ctl` on a temporary folder and a free port,
//! with password authentication, and stopped when the test binary exits.
//! Each daemon under test gets a database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The superuser the daemons connect as.
pub const USER: &str = "appforge";

/// A running server.
pub struct PgServer {
    /// Its folder: the cluster and its socket.
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The superuser's password.
    pub password: String,
    bin: PathBuf,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(|| {
        let server = PgServer::start();
        // The test harness ends with exit(), which runs this.
        extern "C" fn stop_at_exit() {
            if let Some(server) = SERVER.get() {
                server.stop();
            }
        }
        // SAFETY: registers a plain function, once.
        unsafe { nix::libc::atexit(stop_at_exit) };
        server
    })
}

/// The folder of the PostgreSQL programs: where `initdb` is on the PATH, else
/// Debian's /usr/lib/postgresql/N/bin.
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("initdb"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(dir) = on_path {
        return dir;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|d| d.join("initdb").exists())
        .expect("PostgreSQL's initdb is missing: run `make postgres` (Debian's postgresql)")
}

/// A command run as the `postgres` user when we are root: PostgreSQL
/// refuses to run as root.
fn as_server_user(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgServer {
    fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("afpg")
            .tempdir()
            .expect("a folder for PostgreSQL")
            .keep();
        let password: String = format!("pw-{:016x}", rand_u64());
        std::fs::write(dir.join("pwfile"), &password).unwrap();
        // TLS, as a server across a network would have: a certificate for
        // 127.0.0.1 signed by a CA of the test's own, which the daemons are
        // told to trust (the URL's sslrootcert).
        make_certificates(&dir);
        if nix::unistd::geteuid().is_root() {
            check(
                "chown the cluster folder",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir)
                    .output(),
            );
        }
        check(
            "initdb",
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-U", USER, "--auth=scram-sha-256", "--no-sync"])
                .args(["--locale=C.UTF-8", "--encoding=UTF8"])
                .arg(format!("--pwfile={}", dir.join("pwfile").display()))
                .output(),
        );
        let mut port = 0;
        for _ in 0..20 {
            port = crate::free_port();
            let options = format!(
                "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=300 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
                dir = dir.display()
            );
            let started = as_server_user(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(dir.join("data"))
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
                .stdout(Stdio::null())
                .status()
                .expect("pg_ctl start");
            if started.success() {
                break;
            }
            port = 0;
        }
        assert!(
            port != 0,
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        PgServer {
            dir,
            port,
            password,
            bin,
        }
    }

    fn stop(&self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A new empty database; returns its name.
    pub fn new_database(&self) -> String {
        let name = format!(
            "af_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// The URL of `database`, without the password, trusting the server's
    /// certificate.
    pub fn url(&self, database: &str) -> String {
        format!(
            "{}?sslrootcert={}",
            self.shown_url(database),
            self.certificate().display()
        )
    }

    /// The URL of `database` as the daemon shows it: no password, no options.
    pub fn shown_url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The certificate of the authority that signed the server's.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Runs `sql` in `database` with psql; returns its rows, fields split
    /// and NULL as `None`.
    pub fn psql(&self, database: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        const NULL: &str = "\u{1}NULL\u{1}";
        let out = check(
            "psql",
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-F", "\u{1f}", "-R", "\u{1e}", "-P"])
                .arg(format!("null={NULL}"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", database, "-c", sql])
                .env("PGPASSWORD", &self.password)
                .output(),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.split('\u{1e}')
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.split('\u{1f}')
                    .map(|f| (f != NULL).then(|| f.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Ends every connection the daemons have to `database`, as a restart of
    /// the server does, and waits until the server has let them go, and
    /// with them every advisory lock they held (the host claims).
    pub fn end_connections(&self, database: &str) {
        let ended = self.psql(
            database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'appforged' AND datname = current_database()",
        );
        assert!(!ended.is_empty(), "no daemon was connected to {database}");
        crate::wait_for(
            "the server to drop the daemons' connections and locks",
            || {
                let left = self.psql(
                    database,
                    "SELECT (SELECT count(*) FROM pg_stat_activity \
                         WHERE application_name = 'appforged' AND datname = current_database()) \
                      + (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                         AND database = (SELECT oid FROM pg_database \
                                         WHERE datname = current_database()))",
                );
                left[0][0].as_deref() == Some("0")
            },
        );
    }

    /// Everything `database` holds, as pg_dump writes it.
    pub fn dump(&self, database: &str) -> Vec<u8> {
        check(
            "pg_dump",
            Command::new(self.bin.join("pg_dump"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["--data-only", database])
                .env("PGPASSWORD", &self.password)
                .output(),
        )
        .stdout
    }
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 that it signed
/// (`server.crt`, `server.key`), in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |what: &str, args: &[&str]| {
        check(
            what,
            Command::new("openssl").args(args).current_dir(dir).output(),
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=appforge test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl("openssl: the CA", &ca);
    let mut request = vec!["req", "-subj", "/CN=127.0.0.1"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl("openssl: the server's request", &request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "openssl: signing the server's certificate",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("random bytes");
    u64::from_ne_bytes(bytes)
}
