//! The daemon's command line and the settings derived from it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

/// Command line of `appforged`.
#[derive(Debug, Parser)]
#[command(
    name = "appforged",
    version,
    about = "The appforge daemon: stores, generates and runs your apps"
)]
pub struct Cli {
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
}

impl Settings {
    /// Resolves defaults and checks values.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Self> {
        if !(cli.client_timeout.is_finite() && cli.client_timeout > 0.0) {
            bail!("--client-timeout must be a positive number of seconds");
        }
        if cli.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let socket = absolute(
            cli.socket
                .unwrap_or_else(appforge_shared::paths::default_socket_path),
        )?;
        let data_dir = absolute(
            cli.data_dir
                .unwrap_or_else(appforge_shared::paths::default_data_dir),
        )?;
        Ok(Settings {
            socket,
            socket_mode: cli.socket_mode,
            data_dir,
            client_timeout: Duration::from_secs_f64(cli.client_timeout),
            max_connections: cli.max_connections,
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
