//! The end-to-end test harness: starts the real `appforged` on a temporary
//! socket and data directory, drives the real `appforge`, and waits on
//! conditions (never on fixed sleeps).

pub mod apps;
pub mod mock_provider;
pub mod postgres;
pub mod web;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use appforge_shared::codec;
use appforge_shared::protocol::{ClientFrame, Hello, ServerFrame};
use tempfile::TempDir;

/// Generous, because CI machines are small and shared.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Path of a binary built from this workspace (`cargo build --bins` first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `make test`) first",
        path.display()
    );
    path
}

/// The Python that runs generated apps and their tests: `APPFORGE_TEST_PYTHON`
/// (set by `make test` to a virtualenv with Flask and pytest), else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("APPFORGE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Seconds since the epoch of a stored time (`2026-11-26T13:45:40.123Z`).
pub fn epoch_seconds(stored: &str) -> f64 {
    let bad = || -> ! { panic!("not a stored time: {stored}") };
    let (date, time) = stored
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or_else(|| bad());
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().unwrap_or_else(|_| bad()))
        .collect();
    let t: Vec<f64> = time
        .split(':')
        .map(|p| p.parse().unwrap_or_else(|_| bad()))
        .collect();
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    // Days from the civil date (Howard Hinnant's algorithm).
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `appforged` on a folder of its own (socket, data, configuration), with no
/// dashboard and no store chosen by the environment of whoever runs the
/// tests: a daemon a test runs by hand, to see it refuse or print its
/// configuration.
pub fn appforged_in(dir: &Path) -> Command {
    let mut cmd = Command::new(bin("appforged"));
    cmd.arg("--socket")
        .arg(dir.join("s.sock"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--web-addr", "off"])
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("APPFORGE_DATABASE_URL")
        .env_remove("APPFORGE_DATABASE_PASSWORD")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, which must exit by itself (a daemon that must refuse to
/// start), and returns what it printed. One still running after `PATIENCE`
/// is killed and fails the test, rather than hanging it.
pub fn output_of_exiting(mut cmd: Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "it did not exit (it started?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Polls `cond` until it holds or `PATIENCE` runs out.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `appforged` in its own temporary folder.
pub struct Daemon {
    /// Holds the socket, data directory, users' config folders and the log.
    pub dir: TempDir,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The daemon's data directory.
    pub data_dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// This daemon's own port range, so parallel tests never race for a port.
    pub ports: String,
    /// Its PostgreSQL database, when the store under test is PostgreSQL.
    pub database: Option<String>,
}

/// Whether the suites run against PostgreSQL (`APPFORGE_TEST_STORE=postgres`)
/// rather than the default SQLite.
pub fn on_postgres() -> bool {
    std::env::var("APPFORGE_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// A row of text cells; `None` is NULL.
pub type SqlRow = Vec<Option<String>>;

impl Daemon {
    /// Starts a daemon with default settings and waits until it answers.
    pub fn start() -> Daemon {
        Daemon::start_with(&[], &[])
    }

    /// Starts a daemon with extra arguments and environment variables.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        Daemon::start_on(args, envs, on_postgres())
    }

    /// Starts a daemon on a SQLite store, whatever store the suites test.
    pub fn start_on_sqlite() -> Daemon {
        Daemon::start_on(&[], &[], false)
    }

    fn start_on(args: &[&str], envs: &[(&str, &str)], postgres: bool) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("afe2e")
            .tempdir()
            .expect("temporary folder");
        let socket = dir.path().join("run").join("appforged.sock");
        let data_dir = dir.path().join("data");
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let chosen = args.iter().any(|a| a == "--database-url");
        let database = (postgres && !chosen).then(|| {
            let server = postgres::server();
            let name = server.new_database();
            args.extend(["--database-url".into(), server.url(&name)]);
            envs.push(("APPFORGE_DATABASE_PASSWORD".into(), server.password.clone()));
            name
        });
        let mut daemon = Daemon {
            dir,
            socket,
            data_dir,
            ports: port_range(),
            child: None,
            args,
            envs,
            database,
        };
        daemon.restart();
        daemon
    }

    /// Starts a daemon whose store is `database` on the test PostgreSQL
    /// server, with extra arguments: several may share one database.
    pub fn start_on_postgres(database: &str, args: &[&str]) -> Daemon {
        let server = postgres::server();
        let url = server.url(database);
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        let mut daemon = Daemon::start_with(
            &all,
            &[("APPFORGE_DATABASE_PASSWORD", server.password.as_str())],
        );
        daemon.database = Some(database.to_string());
        daemon
    }

    /// Starts this stopped daemon again on `database` on the test PostgreSQL
    /// server, with the same socket and data folder (its apps' folders).
    pub fn restart_on_postgres(&mut self, database: &str) {
        let server = postgres::server();
        self.args
            .extend(["--database-url".into(), server.url(database)]);
        self.envs
            .push(("APPFORGE_DATABASE_PASSWORD".into(), server.password.clone()));
        self.database = Some(database.to_string());
        self.restart();
    }

    /// Starts the daemon again on the same socket and data (after a stop or kill).
    pub fn restart(&mut self) {
        let child = self.spawn(&[]);
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_for("the daemon to answer", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("appforged exited early ({status}):\n{}", self.log());
            }
            handshake(&socket).is_ok()
        });
    }

    fn spawn(&self, extra: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("daemon log file");
        self.command(extra)
            .stderr(log)
            .spawn()
            .expect("spawn appforged")
    }

    /// Runs another `appforged` on this daemon's socket and data, with
    /// `extra` arguments, until it exits (it is expected to refuse to start;
    /// one that starts fails the test instead of hanging it).
    pub fn run_another(&self, extra: &[&str]) -> std::process::Output {
        output_of_exiting(self.command(extra))
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(bin("appforged"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .arg("--data-dir")
            .arg(&self.data_dir)
            // The shared environments, unless a test gives its own.
            .args(
                (!self
                    .args
                    .iter()
                    .map(String::as_str)
                    .chain(extra.iter().copied())
                    .any(|a| a == "--env-dir"))
                .then(|| ["--env-dir".into(), test_env_dir().into_os_string()])
                .into_iter()
                .flatten(),
            )
            .arg("--port-range")
            .arg(&self.ports)
            // Daemons under test serve no dashboard unless a test asks for
            // one: they would all want the default port.
            .args(
                (!self
                    .args
                    .iter()
                    .map(String::as_str)
                    .chain(extra.iter().copied())
                    .any(|a| a.starts_with("--web-addr")))
                .then_some(["--web-addr", "off"])
                .into_iter()
                .flatten(),
            )
            .args(&self.args)
            .args(extra)
            .env_remove("APPFORGE_SOCKET")
            .env_remove("APPFORGE_DATA_DIR")
            .env_remove("APPFORGE_WEB_ADDR")
            .env("APPFORGE_LOG", "debug")
            // No configuration file of the person running the tests applies.
            .env("XDG_CONFIG_HOME", self.dir.path().join("daemon-config"))
            .env("APPFORGE_PYTHON", python())
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Runs `sql` on the daemon's store, SQLite or PostgreSQL, and returns
    /// the rows as text. Write it in the SQL both understand.
    pub fn sql(&self, sql: &str) -> Vec<SqlRow> {
        if let Some(database) = &self.database {
            return postgres::server().psql(database, sql);
        }
        let conn = rusqlite::Connection::open(self.data_dir.join("appforge.db"))
            .expect("open the database");
        conn.busy_timeout(PATIENCE).expect("busy timeout");
        let mut stmt = conn.prepare(sql).expect("prepare");
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).expect("query");
        let mut out = Vec::new();
        while let Some(row) = rows.next().expect("row") {
            use rusqlite::types::ValueRef;
            out.push(
                (0..columns)
                    .map(|i| match row.get_ref(i).expect("cell") {
                        ValueRef::Null => None,
                        ValueRef::Integer(n) => Some(n.to_string()),
                        ValueRef::Real(x) => Some(x.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                    .collect(),
            );
        }
        out
    }

    /// Every byte the store holds, to search for what must not be there:
    /// SQLite's files, or a dump of the PostgreSQL database.
    pub fn store_bytes(&self) -> Vec<u8> {
        if let Some(database) = &self.database {
            return postgres::server().dump(database);
        }
        ["appforge.db", "appforge.db-wal", "appforge.db-journal"]
            .iter()
            .flat_map(|f| std::fs::read(self.data_dir.join(f)).unwrap_or_default())
            .collect()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("appforged.log")
    }

    /// Sends a signal and waits for the daemon to exit.
    pub fn signal_and_wait(&mut self, signal: nix::sys::signal::Signal) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal the daemon");
        let mut status = None;
        wait_for("the daemon to exit", || {
            status = child.try_wait().expect("wait for the daemon");
            status.is_some()
        });
        status.expect("exit status")
    }

    /// A new user with their own config folder (and so their own session).
    pub fn user(&self, name: &str) -> User {
        let config_home = self.dir.path().join("users").join(name);
        std::fs::create_dir_all(&config_home).expect("user config folder");
        User {
            socket: self.socket.clone(),
            config_home,
            email: format!("{name}@example.com"),
            password: format!("{name}-password-123"),
        }
    }
}

impl Daemon {
    /// Pids of the apps running from this daemon's project folders, found in
    /// /proc by their working directory (they outlive the daemon on purpose):
    /// the top process of each app (its shim), as `ps` shows it.
    pub fn app_pids(&self) -> Vec<i32> {
        let all = self.app_processes();
        let mut tops: Vec<i32> = all
            .iter()
            .copied()
            .filter(|pid| parent_of(*pid).is_none_or(|parent| !all.contains(&parent)))
            .collect();
        tops.sort_unstable();
        tops
    }

    /// Every live process whose working directory is in a project folder:
    /// each app's shim, its init and the app with its children.
    pub fn app_processes(&self) -> Vec<i32> {
        let projects = self.data_dir.join("projects");
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<i32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(&projects))
            })
            .filter(|pid| !is_zombie(*pid))
            .collect();
        pids.sort_unstable();
        pids
    }
}

/// The parent of a process, from /proc/PID/stat.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a process is a zombie (or gone).
pub fn is_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Apps outlive their daemon by design; a test's apps must not.
        for pid in self.app_processes() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Python environments shared by every test daemon, so Flask is installed
/// once per machine rather than once per test.
pub fn test_env_dir() -> PathBuf {
    bin("appforged")
        .parent()
        .expect("target folder")
        .join("test-envs")
}

/// A port range of its own for each daemon of this test process.
fn port_range() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Other programs on the machine (a benchmark's apps, another test
    // binary) may hold ports: a block whose first ports are taken is skipped.
    let free = |port: u32| std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok();
    loop {
        let block = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
        let first = 21000 + block * 40;
        if (first..first + 4).all(free) {
            return format!("{first}-{}", first + 39);
        }
    }
}

/// Someone using `appforge`: a config folder, an email and a password.
#[derive(Debug, Clone)]
pub struct User {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// `XDG_CONFIG_HOME` for this user's client.
    pub config_home: PathBuf,
    /// The user's email.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// What one `appforge` run did.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Parses stdout as the one JSON document `--json` promises.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "appforge failed: {self:?}");
        self
    }

    /// Asserts the exit status and returns self.
    #[track_caller]
    pub fn fails_with(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit status: {self:?}");
        self
    }
}

impl User {
    /// A `Command` for `appforge` as this user.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("appforge"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("APPFORGE_SOCKET")
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs `appforge ARGS` with `stdin` as standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn appforge");
        // A command that fails early may exit without reading its input.
        match child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
        {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
            _ => {}
        }
        let out = child.wait_with_output().expect("appforge output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `appforge ARGS` with empty standard input.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    /// Signs up with this user's email and password.
    pub fn signup(&self) -> Run {
        self.run_with_stdin(
            &["--json", "signup", &self.email, "--password-stdin"],
            &format!("{}\n", self.password),
        )
    }

    /// Signs in with this user's email and password.
    pub fn login(&self) -> Run {
        self.run_with_stdin(
            &["--json", "login", &self.email, "--password-stdin"],
            &format!("{}\n", self.password),
        )
    }
}

/// Connects and completes a handshake over a raw socket.
pub fn handshake(socket: &Path) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    send_frame(&mut stream, &ClientFrame::Hello(Hello::current()))?;
    match read_frame(&mut stream)? {
        Some(ServerFrame::Welcome(_)) => Ok(stream),
        other => Err(std::io::Error::other(format!("no welcome: {other:?}"))),
    }
}

/// Writes one frame to a raw socket.
pub fn send_frame(stream: &mut UnixStream, frame: &ClientFrame) -> std::io::Result<()> {
    let bytes = codec::encode(frame).map_err(std::io::Error::other)?;
    stream.write_all(&bytes)
}

/// Reads one frame from a raw socket; `None` when the daemon closed it.
pub fn read_frame(stream: &mut UnixStream) -> std::io::Result<Option<ServerFrame>> {
    let mut prefix = [0u8; codec::PREFIX_LEN];
    match stream.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = codec::payload_len(prefix).map_err(std::io::Error::other)?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    codec::decode_payload(&payload)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_times_convert_to_epoch_seconds() {
        assert_eq!(super::epoch_seconds("1970-01-01T00:00:00Z"), 0.0);
        assert_eq!(super::epoch_seconds("2000-03-01T00:00:00Z"), 951_868_800.0);
        assert_eq!(
            super::epoch_seconds("2026-11-26T13:45:40.5Z"),
            1_795_700_740.5
        );
    }
}
