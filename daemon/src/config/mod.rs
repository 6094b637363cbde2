//! The daemon's command line, its configuration file, and the settings
//! derived from them.

pub mod file;
pub mod policy;
pub mod seal;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use appforge_shared::protocol::Secret;
use clap::{Parser, ValueEnum};

/// Command line of `appforged`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "appforged",
    version,
    about = "The appforge daemon: stores, generates and runs your apps"
)]
pub struct Cli {
    /// Configuration file [default: $XDG_CONFIG_HOME/appforge/config.toml, else /etc/appforge/config.toml]
    #[arg(long, env = "APPFORGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (API keys hidden) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Copy the SQLite store of --data-dir into the empty PostgreSQL
    /// database of --database-url (or APPFORGE_DATABASE_URL), with every id,
    /// and exit. No daemon may run on the data directory meanwhile.
    #[arg(long)]
    pub copy_sqlite_store: bool,
    /// Unix socket to listen on [default: $XDG_RUNTIME_DIR/appforge/appforged.sock]
    #[arg(long, env = "APPFORGE_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Folder holding appforge.db and the projects [default: $XDG_DATA_HOME/appforge]
    #[arg(long, env = "APPFORGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "APPFORGE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Permissions of the socket file, in octal: 600 for a per-user daemon,
    /// 660 to admit the socket's group (system daemon).
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    pub socket_mode: u32,
    /// Seconds a client may stay silent (before its handshake or between requests)
    /// before it is dropped.
    #[arg(long, default_value_t = 10.0)]
    pub client_timeout: f64,
    /// Most clients served at once; more are told to retry.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Most connections one client process may hold at once, so that one
    /// process cannot keep every other client out.
    #[arg(long, default_value_t = 16)]
    pub max_connections_per_client: usize,
    /// MiB of request frames all signed-in connections may hold together
    /// while they arrive; past it a frame waits a few seconds, then is refused.
    #[arg(long, default_value_t = 64)]
    pub max_frame_mib_in_flight: usize,
    /// AI provider used when a request names none: template, groq or openai
    /// [default: groq when GROQ_API_KEY is set, else template]
    #[arg(long, env = "APPFORGE_PROVIDER")]
    pub provider: Option<String>,
    /// Base URL of the OpenAI-compatible API (Groq, OpenAI, Ollama, vLLM, LM Studio).
    #[arg(long, env = "APPFORGE_BASE_URL")]
    pub base_url: Option<String>,
    /// Model used when a request names none.
    #[arg(long, env = "APPFORGE_MODEL")]
    pub model: Option<String>,
    /// Most tokens a model may write per call.
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: u32,
    /// Repair rounds when a new version fails its checks (each sends the real error back).
    #[arg(long, default_value_t = 3)]
    pub repair_rounds: u32,
    /// Retries of a provider call on 429, 5xx and time-outs.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// First back-off between retries, in milliseconds (doubling, capped at 8 s).
    #[arg(long, default_value_t = 500)]
    pub retry_base_ms: u64,
    /// Seconds to connect to a provider.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for a provider's first byte (and between streamed chunks).
    #[arg(long, default_value_t = 60.0)]
    pub first_byte_timeout: f64,
    /// Seconds a whole provider call may take.
    #[arg(long, default_value_t = 300.0)]
    pub request_timeout: f64,
    /// Client-side limit of requests per minute (0: none) [default: 30 for groq, none otherwise]
    #[arg(long)]
    pub requests_per_minute: Option<u32>,
    /// Client-side limit of tokens per minute (0: none) [default: 12000 for groq, none otherwise]
    #[arg(long)]
    pub tokens_per_minute: Option<u64>,
    /// Ask providers for one whole answer instead of a stream.
    #[arg(long)]
    pub no_stream: bool,
    /// Python interpreter used to check generated code and to make the apps' environments.
    #[arg(long, env = "APPFORGE_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// Folder of the apps' Python environments, shared by apps with the same
    /// requirements [default: <data-dir>/envs]
    #[arg(long, env = "APPFORGE_ENV_DIR")]
    pub env_dir: Option<PathBuf>,
    /// How environments are made: uv when it is on the PATH, else venv and pip.
    #[arg(long, value_enum, default_value_t = Installer::Auto)]
    pub installer: Installer,
    /// Ports apps may get, as FIRST-LAST on 127.0.0.1.
    #[arg(long, default_value = "8100-8999", value_parser = parse_port_range)]
    pub port_range: (u16, u16),
    /// Seconds an app has to answer HTTP after it starts.
    #[arg(long, default_value_t = 30.0)]
    pub start_timeout: f64,
    /// Seconds between health probes of a running app (Docker's
    /// HEALTHCHECK default: an idle laptop should stay idle).
    #[arg(long, default_value_t = 30.0)]
    pub health_interval: f64,
    /// Restarts of an app within --restart-window after which it is left
    /// failed instead of started again.
    #[arg(long, default_value_t = 5)]
    pub restart_limit: u32,
    /// Seconds in which --restart-limit restarts mean a crash loop.
    #[arg(long, default_value_t = 60.0)]
    pub restart_window: f64,
    /// Longest wait between two restarts, in seconds (the wait doubles from
    /// 100 ms after the first, immediate, restart).
    #[arg(long, default_value_t = 30.0)]
    pub restart_backoff_cap: f64,
    /// Seconds a health probe may take.
    #[arg(long, default_value_t = 2.0)]
    pub health_timeout: f64,
    /// Failed probes in a row after which a running app is restarted.
    #[arg(long, default_value_t = 3)]
    pub health_failures: u32,
    /// Seconds between SIGTERM and SIGKILL when an app is stopped.
    #[arg(long, default_value_t = 5.0)]
    pub stop_timeout: f64,
    /// Size at which an app's log file is rotated, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub log_max_bytes: u64,
    /// Log files kept per app, the live one included.
    #[arg(long, default_value_t = 3)]
    pub log_files: usize,
    /// Most open files per app (RLIMIT_NOFILE).
    #[arg(long, default_value_t = 1024)]
    pub app_max_files: u64,
    /// Most address space per app, in MiB (RLIMIT_AS; 0: no limit).
    #[arg(long, default_value_t = 4096)]
    pub app_max_memory_mib: u64,
    /// Most CPU an app may use, in percent of one core, where the daemon has
    /// a cgroup per app with the cpu controller (0: no limit).
    #[arg(long, default_value_t = 100)]
    pub app_max_cpu_percent: u32,
    /// Most processes and threads an app (or a check step) may have at
    /// once (0: no limit): the cgroup's pids.max where the app's cgroup has
    /// the pids controller, else counted by the app's shim, which stops an
    /// app past it as failed.
    #[arg(long, default_value_t = 256)]
    pub app_max_processes: u64,
    /// Most disk space an app's folder and its temporary folder may take
    /// together, in MiB, measured by its shim every few seconds; an app past
    /// it is stopped as failed (0: no limit).
    #[arg(long, default_value_t = 1024)]
    pub app_max_disk_mib: u64,
    /// TCP ports apps, check steps and installer steps may connect to, on
    /// any host (Landlock network rules, Linux 6.7 or later): no other
    /// port, so not the dashboard's, the database's or another app's. DNS
    /// over UDP is not affected.
    #[arg(long, default_value = "80,443", value_parser = parse_ports)]
    pub app_connect_ports: ::std::vec::Vec<u16>,
    /// Do not put apps in cgroups of their own, even where the daemon may.
    #[arg(long)]
    pub no_app_cgroups: bool,
    /// Do not run apps in user and PID namespaces of their own, even where
    /// the kernel allows it.
    #[arg(long)]
    pub no_app_namespaces: bool,
    /// Seconds one installer step (venv, pip, uv) may take before it is
    /// stopped with everything it started.
    #[arg(long, default_value_t = 900.0)]
    pub install_timeout: f64,
    /// Largest file an app may write, in MiB (RLIMIT_FSIZE; 0: no limit).
    #[arg(long, default_value_t = 256)]
    pub app_max_file_mib: u64,
    /// Refuse to start when the kernel lacks a confinement mechanism
    /// (Landlock, user and PID namespaces), instead of running apps with
    /// the protections that remain and saying so.
    #[arg(long)]
    pub require_confinement: bool,
    /// Stop every app when the daemon exits, instead of leaving them running
    /// for the next daemon to adopt.
    #[arg(long)]
    pub stop_apps_on_exit: bool,
    /// Serve Prometheus metrics over HTTP on this address, e.g. 127.0.0.1:9464.
    #[arg(long, env = "APPFORGE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Allow --metrics-addr on an address other than loopback.
    #[arg(long)]
    pub metrics_allow_remote: bool,
    /// Serve the web dashboard on this address (`off` serves none).
    #[arg(long, env = "APPFORGE_WEB_ADDR", default_value = "127.0.0.1:7070", value_parser = parse_web_addr)]
    pub web_addr: WebAddr,
    /// Allow --web-addr on an address other than loopback.
    #[arg(long)]
    pub web_allow_remote: bool,
    /// Keep the store in this PostgreSQL database (postgres://USER@HOST:PORT/DB,
    /// with sslmode= and sslrootcert= as libpq takes them) instead of SQLite
    /// in the data directory. The password comes from
    /// APPFORGE_DATABASE_PASSWORD, the `database-password` key of a private
    /// config file or the `database-password` systemd credential.
    #[arg(long)]
    pub database_url: Option<String>,
    /// This daemon's name among the daemons sharing one database (default:
    /// the machine's host name).
    #[arg(long, env = "APPFORGE_HOST_NAME")]
    pub host_name: Option<String>,
}

/// The host identity: the name given, else the machine's host name.
fn host_name(given: Option<&str>) -> anyhow::Result<String> {
    let name = match given {
        Some(name) => name.trim().to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|n| n.trim().to_string())
            .unwrap_or_default(),
    };
    let fits = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !fits {
        bail!(
            "`{}` is not a usable host name; give --host-name letters, digits, `-`, `.` or `_` \
             (at most 253)",
            name.escape_debug()
        );
    }
    Ok(name)
}

/// Where the dashboard listens: an address, or nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebAddr(pub Option<std::net::SocketAddr>);

fn parse_web_addr(s: &str) -> Result<WebAddr, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(WebAddr(None));
    }
    s.trim()
        .parse()
        .map(|addr| WebAddr(Some(addr)))
        .map_err(|_| format!("`{s}` is neither `off` nor an address like 127.0.0.1:7070"))
}

/// How apps' Python environments are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Installer {
    /// uv when it is on the PATH, else venv and pip.
    Auto,
    /// Always uv.
    Uv,
    /// Always `python -m venv` and pip.
    Pip,
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port range: write FIRST-LAST, e.g. 8100-8999");
    let (first, last) = s.split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok((first, last))
}

/// A comma-separated list of TCP ports, as one value (so that a file, the
/// environment and `--print-config` see it whole); empty: none.
fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(format!(
                "`{p}` is not a TCP port: write ports from 1 to 65535 separated by commas, \
                 e.g. 80,443"
            )),
        })
        .collect()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(mode @ (0o600 | 0o660)) => Ok(mode),
        _ => Err(format!(
            "`{s}` is not a supported socket mode: use 600 or 660"
        )),
    }
}

/// The daemon's effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Socket path.
    pub socket: PathBuf,
    /// Socket file permissions.
    pub socket_mode: u32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// How long a silent client is kept.
    pub client_timeout: Duration,
    /// Connection limit.
    pub max_connections: usize,
    /// Connection limit per client process.
    pub max_connections_per_client: usize,
    /// Bytes of request frames in flight across all connections.
    pub max_frame_bytes_in_flight: usize,
    /// Providers and generation.
    pub ai: AiSettings,
    /// Running apps.
    pub apps: AppSettings,
    /// Where to serve metrics over HTTP, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Where to serve the web dashboard, if anywhere.
    pub web_addr: Option<std::net::SocketAddr>,
    /// The PostgreSQL store, if one is used instead of SQLite.
    pub database: Option<Database>,
    /// Where the key that seals the apps' secrets is.
    pub secrets_key: seal::KeySource,
}

/// Where the PostgreSQL store is, and its password kept apart.
#[derive(Debug, Clone)]
pub struct Database {
    /// The URL without a password: safe to log and show.
    pub url: String,
    /// The password, from the URL or a secret.
    pub password: Option<Secret>,
}

impl Database {
    /// From a URL that may carry a password; `password` is used when it
    /// carries none.
    pub fn from_url(url: &str, password: Option<Secret>) -> anyhow::Result<Database> {
        let (url, in_url) = split_password(url)?;
        Ok(Database {
            url,
            password: in_url.or(password),
        })
    }
}

/// Splits the password out of a `postgres://user:password@host/db` URL.
pub fn split_password(url: &str) -> anyhow::Result<(String, Option<Secret>)> {
    let url = url.trim();
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        bail!("the database URL must start with postgres:// (postgres://USER@HOST:PORT/DATABASE)");
    };
    let scheme = &url[..url.len() - rest.len()];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, hosts)) = authority.rsplit_once('@') else {
        return Ok((url.to_string(), None));
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return Ok((url.to_string(), None));
    };
    let password = percent_encoding::percent_decode_str(password)
        .decode_utf8()
        .context("the database password in the URL is not valid UTF-8 once decoded")?
        .into_owned();
    let password = (!password.is_empty()).then_some(Secret(password));
    Ok((format!("{scheme}{user}@{hosts}{tail}"), password))
}

/// How apps are run and watched.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Python used to make environments.
    pub python: PathBuf,
    /// Where environments live.
    pub env_dir: PathBuf,
    /// Where each project's run folder and logs live.
    pub projects_dir: PathBuf,
    /// How environments are made.
    pub installer: Installer,
    /// Ports apps may get.
    pub ports: (u16, u16),
    /// Time to answer HTTP after a start.
    pub start_timeout: Duration,
    /// Time between health probes.
    pub health_interval: Duration,
    /// Time a probe may take.
    pub health_timeout: Duration,
    /// Failed probes in a row that restart an app.
    pub health_failures: u32,
    /// When to restart an app that ends, and when to give up.
    pub restart: crate::config::policy::RestartPolicy,
    /// Time between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// Log rotation size.
    pub log_max_bytes: u64,
    /// Log files kept.
    pub log_files: usize,
    /// RLIMIT_NOFILE of apps.
    pub max_files: u64,
    /// RLIMIT_AS of apps in bytes, if any.
    pub max_memory: Option<u64>,
    /// RLIMIT_FSIZE of apps in bytes, if any.
    pub max_file_bytes: Option<u64>,
    /// Time one installer step may take.
    pub install_timeout: Duration,
    /// cpu.max of apps' cgroups in percent of a core, if any.
    pub max_cpu_percent: Option<u32>,
    /// Most tasks of an app: pids.max of its cgroup, or its shim's count.
    pub max_processes: Option<u64>,
    /// Most bytes an app's folder and temporary folder may take together.
    pub max_disk_bytes: Option<u64>,
    /// TCP ports apps and installers may connect to.
    pub connect_ports: Vec<u16>,
    /// Whether apps may get cgroups of their own.
    pub cgroups: bool,
    /// Whether apps may get namespaces of their own.
    pub namespaces: bool,
    /// Folders no app or installer may be given access to, even by a rule
    /// for a folder that holds them: the data directory, the socket's.
    pub guarded: Vec<PathBuf>,
    /// Whether missing confinement stops the daemon.
    pub require_confinement: bool,
    /// Stop apps when the daemon exits.
    pub stop_on_exit: bool,
    /// This daemon's host identity: its runs carry it, and it supervises
    /// only its own host's apps in a shared database.
    pub host: String,
}

/// The secrets: API keys and the database's password, read from the
/// environment, systemd credentials or a private config file at start-up.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// `GROQ_API_KEY`.
    pub groq: Option<Secret>,
    /// `OPENAI_API_KEY`.
    pub openai: Option<Secret>,
    /// `APPFORGE_API_KEY`, for whichever provider lacks its own.
    pub any: Option<Secret>,
    /// `APPFORGE_DATABASE_PASSWORD`.
    pub database_password: Option<Secret>,
    /// `APPFORGE_DATABASE_URL`, which may carry a password: it is taken out
    /// of the environment with the keys.
    pub database_url: Option<Secret>,
    /// The systemd credential that holds the key sealing the apps'
    /// secrets, when there is one.
    pub app_secrets_key: Option<PathBuf>,
}

/// Removes `name` from the environment and overwrites its bytes where they
/// lie. `remove_var` only unlinks the entry: the string stays in the block
/// the kernel copied at exec, which `/proc/<pid>/environ` shows for the
/// life of the process. Call before any thread starts.
fn wipe_env_var(name: &str) {
    extern "C" {
        static mut environ: *const *mut std::ffi::c_char;
    }
    let prefix = format!("{name}=");
    let mut entries = Vec::new();
    // SAFETY: single-threaded start-up, so no one changes the environment
    // meanwhile; `environ` is a NULL-terminated array of NUL-terminated
    // strings, each writable (the exec block on the stack, or setenv's
    // heap copies, which glibc never frees).
    unsafe {
        let mut at = environ;
        while !at.is_null() && !(*at).is_null() {
            let entry = *at;
            if std::ffi::CStr::from_ptr(entry)
                .to_bytes()
                .starts_with(prefix.as_bytes())
            {
                entries.push(entry);
            }
            at = at.add(1);
        }
    }
    std::env::remove_var(name);
    for entry in entries {
        // SAFETY: each entry is still a live NUL-terminated string (see
        // above); it is no longer in `environ`, so no one reads it, and
        // only its bytes before the NUL are written.
        unsafe {
            let len = std::ffi::CStr::from_ptr(entry).to_bytes().len();
            for k in 0..len {
                // Volatile: the compiler may not drop writes no one reads.
                std::ptr::write_volatile(entry.add(k), 0);
            }
        }
    }
}

impl Secrets {
    /// Reads the keys and removes them from this process's environment, so
    /// no child process can inherit them. Call before any thread starts.
    pub fn take_from_env() -> Secrets {
        let take = |name: &str| {
            let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
            wipe_env_var(name);
            value.map(|v| Secret(v.trim().to_string()))
        };
        let keys = Secrets {
            groq: take("GROQ_API_KEY"),
            openai: take("OPENAI_API_KEY"),
            any: take("APPFORGE_API_KEY"),
            database_password: take("APPFORGE_DATABASE_PASSWORD"),
            database_url: take("APPFORGE_DATABASE_URL"),
            app_secrets_key: None,
        };
        // systemd's LoadCredential= puts files in $CREDENTIALS_DIRECTORY,
        // readable only by this service; the environment wins over them.
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        std::env::remove_var("CREDENTIALS_DIRECTORY");
        match dir {
            Some(dir) => keys.or_credentials(&dir),
            None => keys,
        }
    }

    /// Each key from here, else from `other`.
    pub fn or(self, other: Secrets) -> Secrets {
        Secrets {
            groq: self.groq.or(other.groq),
            openai: self.openai.or(other.openai),
            any: self.any.or(other.any),
            database_password: self.database_password.or(other.database_password),
            database_url: self.database_url.or(other.database_url),
            app_secrets_key: self.app_secrets_key.or(other.app_secrets_key),
        }
    }

    /// Fills the keys still missing from systemd credential files named
    /// `groq-api-key`, `openai-api-key`, `api-key` and `database-password`,
    /// and finds the key of the apps' secrets (`app-secrets-key`), read
    /// when first needed.
    fn or_credentials(self, dir: &std::path::Path) -> Secrets {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(Secret)
        };
        Secrets {
            groq: self.groq.or_else(|| read("groq-api-key")),
            openai: self.openai.or_else(|| read("openai-api-key")),
            any: self.any.or_else(|| read("api-key")),
            database_password: self.database_password.or_else(|| read("database-password")),
            database_url: self.database_url,
            app_secrets_key: self
                .app_secrets_key
                .or_else(|| Some(dir.join(seal::CREDENTIAL)).filter(|p| p.exists())),
        }
    }
}

/// Where and how to reach one OpenAI-compatible provider.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, up to `/v1`.
    pub base_url: String,
    /// API key, if any.
    pub key: Option<Secret>,
    /// Model used when a request names none.
    pub default_model: String,
    /// Whether the provider refuses requests without a key.
    pub needs_key: bool,
    /// The variable that holds its key, for error messages.
    pub key_variable: &'static str,
    /// Client-side request limit per minute (0: none).
    pub requests_per_minute: u32,
    /// Client-side token limit per minute (0: none).
    pub tokens_per_minute: u64,
}

/// Provider and generation settings.
#[derive(Debug, Clone)]
pub struct AiSettings {
    /// Provider used when a request names none.
    pub default_provider: String,
    /// Groq.
    pub groq: Endpoint,
    /// Any other OpenAI-compatible server.
    pub openai: Endpoint,
    /// Completion budget per call.
    pub max_tokens: u32,
    /// Repair rounds after failed checks.
    pub repair_rounds: u32,
    /// Retries of transient failures.
    pub max_retries: u32,
    /// First back-off.
    pub retry_base: Duration,
    /// Connect time-out.
    pub connect_timeout: Duration,
    /// First-byte (and stall) time-out.
    pub first_byte_timeout: Duration,
    /// Whole-call time-out.
    pub request_timeout: Duration,
    /// Stream replies.
    pub stream: bool,
    /// Interpreter for syntax checks.
    pub python: PathBuf,
}

impl AiSettings {
    /// The endpoint of `kind` (`groq` or `openai`).
    pub fn endpoint(&self, kind: &str) -> Endpoint {
        match kind {
            "groq" => self.groq.clone(),
            _ => self.openai.clone(),
        }
    }

    fn from_cli(cli: &Cli, keys: Secrets) -> anyhow::Result<AiSettings> {
        let seconds = |name: &str, v: f64| -> anyhow::Result<Duration> {
            if v.is_finite() && v > 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                bail!("{name} must be a positive number of seconds")
            }
        };
        let default_provider = match &cli.provider {
            Some(p) if ["template", "groq", "openai"].contains(&p.as_str()) => p.clone(),
            Some(p) => bail!("unknown provider `{p}` in --provider/APPFORGE_PROVIDER; choose template, groq or openai"),
            None if keys.groq.is_some() => "groq".into(),
            None => "template".into(),
        };
        if let Some(url) = &cli.base_url {
            let parsed = reqwest::Url::parse(url)
                .with_context(|| format!("--base-url/APPFORGE_BASE_URL `{url}` is not a URL"))?;
            if !["http", "https"].contains(&parsed.scheme()) {
                bail!("--base-url/APPFORGE_BASE_URL must be an http or https URL, not `{url}`");
            }
        }
        let model_for =
            |provider: &str, fallback: &str| match (&cli.model, default_provider == provider) {
                (Some(m), true) => m.clone(),
                _ => fallback.to_string(),
            };
        let openai_base = cli
            .base_url
            .clone()
            .unwrap_or_else(|| "https://api.openai.com/v1".into());
        let openai_is_local = reqwest::Url::parse(&openai_base)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| matches!(h, "localhost" | "127.0.0.1" | "[::1]" | "::1"))
            })
            .unwrap_or(false);
        Ok(AiSettings {
            groq: Endpoint {
                base_url: cli
                    .base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.groq.com/openai/v1".into()),
                key: keys.groq.or(keys.any.clone()),
                default_model: model_for("groq", "llama-3.3-70b-versatile"),
                needs_key: true,
                key_variable: "GROQ_API_KEY",
                requests_per_minute: cli.requests_per_minute.unwrap_or(30),
                tokens_per_minute: cli.tokens_per_minute.unwrap_or(12_000),
            },
            openai: Endpoint {
                base_url: openai_base,
                key: keys.openai.or(keys.any),
                default_model: model_for("openai", "gpt-4o-mini"),
                needs_key: !openai_is_local,
                key_variable: "OPENAI_API_KEY",
                requests_per_minute: cli.requests_per_minute.unwrap_or(0),
                tokens_per_minute: cli.tokens_per_minute.unwrap_or(0),
            },
            default_provider,
            max_tokens: cli.max_tokens.max(256),
            repair_rounds: cli.repair_rounds,
            max_retries: cli.max_retries,
            retry_base: Duration::from_millis(cli.retry_base_ms),
            connect_timeout: seconds("--connect-timeout", cli.connect_timeout)?,
            first_byte_timeout: seconds("--first-byte-timeout", cli.first_byte_timeout)?,
            request_timeout: seconds("--request-timeout", cli.request_timeout)?,
            stream: !cli.no_stream,
            python: cli.python.clone(),
        })
    }
}

impl Settings {
    /// Resolves defaults and checks values.
    pub fn from_cli(cli: Cli, keys: Secrets) -> anyhow::Result<Self> {
        if !(cli.client_timeout.is_finite() && cli.client_timeout > 0.0) {
            bail!("--client-timeout must be a positive number of seconds");
        }
        if cli.max_connections == 0 || cli.max_connections_per_client == 0 {
            bail!("--max-connections and --max-connections-per-client must be at least 1");
        }
        if !(1..=65_536).contains(&cli.max_frame_mib_in_flight) {
            bail!("--max-frame-mib-in-flight must be 1 to 65536 (MiB)");
        }
        let ai = AiSettings::from_cli(&cli, keys.clone())?;
        let seconds = |value: f64, flag: &str| -> anyhow::Result<Duration> {
            if value.is_finite() && value > 0.0 && value < 1e9 {
                Ok(Duration::from_secs_f64(value))
            } else {
                bail!("--{flag} must be a positive number of seconds")
            }
        };
        if cli.health_failures == 0 || cli.log_files == 0 || cli.log_max_bytes < 1024 {
            bail!("--health-failures and --log-files must be at least 1, --log-max-bytes at least 1024");
        }
        let socket = absolute(
            cli.socket
                .unwrap_or_else(appforge_shared::paths::default_socket_path),
        )?;
        let data_dir = absolute(
            cli.data_dir
                .unwrap_or_else(appforge_shared::paths::default_data_dir),
        )?;
        let apps = AppSettings {
            python: cli.python.clone(),
            env_dir: match cli.env_dir.clone() {
                Some(dir) => absolute(dir)?,
                None => data_dir.join("envs"),
            },
            projects_dir: data_dir.join("projects"),
            installer: cli.installer,
            ports: cli.port_range,
            start_timeout: seconds(cli.start_timeout, "start-timeout")?,
            health_interval: seconds(cli.health_interval, "health-interval")?,
            health_timeout: seconds(cli.health_timeout, "health-timeout")?,
            health_failures: cli.health_failures,
            stop_timeout: seconds(cli.stop_timeout, "stop-timeout")?,
            restart: crate::config::policy::RestartPolicy {
                max_restarts: cli.restart_limit,
                window: seconds(cli.restart_window, "restart-window")?,
                cap: seconds(cli.restart_backoff_cap, "restart-backoff-cap")?,
                ..crate::config::policy::RestartPolicy::default()
            },
            log_max_bytes: cli.log_max_bytes,
            log_files: cli.log_files,
            max_files: cli.app_max_files,
            max_memory: (cli.app_max_memory_mib > 0).then(|| cli.app_max_memory_mib * 1024 * 1024),
            max_file_bytes: (cli.app_max_file_mib > 0).then(|| cli.app_max_file_mib * 1024 * 1024),
            install_timeout: seconds(cli.install_timeout, "install-timeout")?,
            max_cpu_percent: (cli.app_max_cpu_percent > 0).then_some(cli.app_max_cpu_percent),
            max_processes: (cli.app_max_processes > 0).then_some(cli.app_max_processes),
            max_disk_bytes: (cli.app_max_disk_mib > 0).then(|| cli.app_max_disk_mib * 1024 * 1024),
            connect_ports: cli.app_connect_ports.clone(),
            cgroups: !cli.no_app_cgroups,
            namespaces: !cli.no_app_namespaces,
            guarded: [Some(data_dir.clone()), socket.parent().map(PathBuf::from)]
                .into_iter()
                .flatten()
                .collect(),
            require_confinement: cli.require_confinement,
            stop_on_exit: cli.stop_apps_on_exit,
            host: host_name(cli.host_name.as_deref())?,
        };
        let metrics_addr = match cli.metrics_addr {
            Some(addr) => Some(check_metrics_addr(addr, cli.metrics_allow_remote)?),
            None => None,
        };
        let web_addr = match cli.web_addr.0 {
            Some(addr) if !addr.ip().is_loopback() && !cli.web_allow_remote => {
                anyhow::bail!(
                    "--web-addr {addr} is not a loopback address; the dashboard would be \
                     reachable from the network. Use 127.0.0.1:PORT, or add --web-allow-remote \
                     if you mean it"
                )
            }
            addr => addr,
        };
        let database = match cli.database_url.as_deref() {
            Some(url) => Some(Database::from_url(url, keys.database_password.clone())?),
            None => match &keys.database_url {
                Some(url) => Some(Database::from_url(&url.0, keys.database_password.clone())?),
                None => None,
            },
        };
        let secrets_key = match keys.app_secrets_key {
            Some(credential) => seal::KeySource::Credential(credential),
            None => seal::KeySource::File(data_dir.join(seal::KEY_FILE)),
        };
        Ok(Settings {
            secrets_key,
            database,
            metrics_addr,
            web_addr,
            apps,
            socket,
            socket_mode: cli.socket_mode,
            data_dir,
            client_timeout: Duration::from_secs_f64(cli.client_timeout),
            max_connections: cli.max_connections,
            max_connections_per_client: cli.max_connections_per_client,
            max_frame_bytes_in_flight: cli.max_frame_mib_in_flight * 1024 * 1024,
            ai,
        })
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("appforge.db")
    }
}

fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&path).with_context(|| format!("bad path {}", path.display()))
}

/// Checks `--metrics-addr`: loopback only, unless the user insists.
fn check_metrics_addr(
    addr: std::net::SocketAddr,
    allow_remote: bool,
) -> anyhow::Result<std::net::SocketAddr> {
    if !addr.ip().is_loopback() && !allow_remote {
        anyhow::bail!(
            "--metrics-addr {addr} is not a loopback address; metrics would be visible to the \
             network. Use 127.0.0.1:PORT, or add --metrics-allow-remote if you mean it"
        );
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_database_url_is_split_out_and_decoded() {
        let (url, password) =
            split_password("postgres://app:p%40ss:w@db.internal:5432/appforge?sslmode=disable")
                .unwrap();
        assert_eq!(
            url,
            "postgres://app@db.internal:5432/appforge?sslmode=disable"
        );
        assert_eq!(password.unwrap().0, "p@ss:w");
        let (url, password) = split_password("postgresql://app@h/db").unwrap();
        assert_eq!(
            (url.as_str(), password.is_none()),
            ("postgresql://app@h/db", true)
        );
        assert!(split_password("mysql://app:pw@h/db").is_err());
        assert!(split_password("host=h password=pw").is_err());
    }

    #[test]
    fn the_password_in_the_url_wins_over_the_secret() {
        let db =
            Database::from_url("postgres://a:in-url@h/d", Some(Secret("other".into()))).unwrap();
        assert_eq!(db.password.unwrap().0, "in-url");
        let db = Database::from_url("postgres://a@h/d", Some(Secret("other".into()))).unwrap();
        assert_eq!(
            (db.url.as_str(), db.password.unwrap().0.as_str()),
            ("postgres://a@h/d", "other")
        );
    }

    #[test]
    fn the_secrets_key_is_the_credential_when_there_is_one_else_a_file_beside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let none = Secrets::default().or_credentials(dir.path());
        assert_eq!(none.app_secrets_key, None);
        std::fs::write(dir.path().join(seal::CREDENTIAL), "ab".repeat(32)).unwrap();
        let found = Secrets::default().or_credentials(dir.path());
        assert_eq!(
            found.app_secrets_key,
            Some(dir.path().join(seal::CREDENTIAL))
        );
    }

    #[test]
    fn host_names_are_checked() {
        assert_eq!(host_name(Some("build-1.lan")).unwrap(), "build-1.lan");
        assert!(host_name(Some("")).is_err());
        assert!(host_name(Some("a b")).is_err());
        assert!(host_name(Some("x/../y")).is_err());
        assert!(!host_name(None).unwrap().is_empty());
    }
    #[test]
    fn only_loopback_is_accepted_unless_allowed() {
        assert!(check_metrics_addr("127.0.0.1:9100".parse().unwrap(), false).is_ok());
        assert!(check_metrics_addr("[::1]:9100".parse().unwrap(), false).is_ok());
        assert!(check_metrics_addr("0.0.0.0:9100".parse().unwrap(), false).is_err());
        assert!(check_metrics_addr("0.0.0.0:9100".parse().unwrap(), true).is_ok());
    }
}
