//! The daemon's command line and the settings derived from it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use appforge_shared::protocol::Secret;
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
    /// Automatic repair rounds when a reply fails the checks.
    #[arg(long, default_value_t = 1)]
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
    /// Python interpreter used to check generated code.
    #[arg(long, env = "APPFORGE_PYTHON", default_value = "python3")]
    pub python: PathBuf,
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
    /// Providers and generation.
    pub ai: AiSettings,
}

/// API keys read from the environment at start-up.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    /// `GROQ_API_KEY`.
    pub groq: Option<Secret>,
    /// `OPENAI_API_KEY`.
    pub openai: Option<Secret>,
    /// `APPFORGE_API_KEY`, for whichever provider lacks its own.
    pub any: Option<Secret>,
}

impl ApiKeys {
    /// Reads the keys and removes them from this process's environment, so
    /// no child process can inherit them. Call before any thread starts.
    pub fn take_from_env() -> ApiKeys {
        let take = |name: &str| {
            let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
            std::env::remove_var(name);
            value.map(|v| Secret(v.trim().to_string()))
        };
        ApiKeys {
            groq: take("GROQ_API_KEY"),
            openai: take("OPENAI_API_KEY"),
            any: take("APPFORGE_API_KEY"),
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

    fn from_cli(cli: &Cli, keys: ApiKeys) -> anyhow::Result<AiSettings> {
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
    pub fn from_cli(cli: Cli, keys: ApiKeys) -> anyhow::Result<Self> {
        if !(cli.client_timeout.is_finite() && cli.client_timeout > 0.0) {
            bail!("--client-timeout must be a positive number of seconds");
        }
        if cli.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let ai = AiSettings::from_cli(&cli, keys)?;
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
