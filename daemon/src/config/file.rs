//! The TOML configuration file, and the effective configuration as
//! `--print-config` shows it.
//!
//! Its keys are the daemon's long flags (`port-range = "8100-8999"`), plus
//! the API keys. A flag on the command line wins over its environment
//! variable, which wins over the file, which wins over the default. The file
//! is `--config`, else `$XDG_CONFIG_HOME/appforge/config.toml`, else
//! `/etc/appforge/config.toml`; an unknown key or a bad value is an error
//! that names the key and the file.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use appforge_shared::protocol::Secret;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::{Cli, Secrets, Settings};

/// Keys that hold secrets: never printed, and only read from a file no one
/// else can read.
const SECRET_KEYS: [&str; 4] = [
    "groq-api-key",
    "openai-api-key",
    "api-key",
    "database-password",
];

/// Flags that are not settings.
const NOT_SETTINGS: [&str; 5] = [
    "config",
    "print-config",
    "copy-sqlite-store",
    "help",
    "version",
];

/// The command line with the file folded in, and what the file held.
pub struct Loaded {
    /// The effective command line.
    pub cli: Cli,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Secrets from the file.
    pub keys: Secrets,
    /// Where each setting came from, for `--print-config`.
    matches: ArgMatches,
    /// The keys taken from the file.
    from_file: Vec<String>,
}

/// Parses the command line (exiting with clap's message when it is wrong),
/// then folds in the configuration file.
pub fn load(args: Vec<OsString>) -> anyhow::Result<Loaded> {
    let first = Cli::command().get_matches_from(args.clone());
    if let Some(url) = first.get_one::<String>("database_url") {
        if super::split_password(url).is_ok_and(|(_, p)| p.is_some()) {
            bail!(
                "--database-url holds a password, which every user can read in the process \
                 list; drop it from the URL and set APPFORGE_DATABASE_PASSWORD, the \
                 `database-password` key of a private config file or the `database-password` \
                 systemd credential"
            );
        }
    }
    let explicit = first.get_one::<PathBuf>("config").cloned();
    let Some(path) = explicit.clone().or_else(default_file) else {
        return finish(first, None, Secrets::default(), Vec::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // Only a file named on purpose must exist.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return finish(first, None, Secrets::default(), Vec::new())
        }
        Err(e) => bail!("cannot read the configuration file {}: {e}", path.display()),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let command = Cli::command();
    let mut extra: Vec<OsString> = Vec::new();
    let mut keys = Secrets::default();
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let in_file = || format!("key `{key}` in {}", path.display());
        if SECRET_KEYS.contains(&key.as_str()) {
            check_private(&path)?;
            let secret = match value {
                toml::Value::String(s) if !s.trim().is_empty() => Secret(s.trim().to_string()),
                _ => bail!("{}: must be a non-empty string", in_file()),
            };
            match key.as_str() {
                "groq-api-key" => keys.groq = Some(secret),
                "openai-api-key" => keys.openai = Some(secret),
                "database-password" => keys.database_password = Some(secret),
                _ => keys.any = Some(secret),
            }
            continue;
        }
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !NOT_SETTINGS.contains(&key.as_str()));
        let Some(arg) = arg else {
            bail!(
                "unknown {}; the keys are the daemon's long flags (see `appforged --help`) and {}",
                in_file(),
                SECRET_KEYS.join(", ")
            );
        };
        let id = arg.get_id().as_str();
        if key == "database-url" {
            // A password in the URL is a secret like the keys.
            if let toml::Value::String(url) = value {
                if super::split_password(url).is_ok_and(|(_, p)| p.is_some()) {
                    check_private(&path)?;
                }
            }
        }
        let flag = matches!(value, toml::Value::Boolean(_));
        let words: Vec<String> = match value {
            toml::Value::Boolean(true) => vec![format!("--{key}")],
            toml::Value::Boolean(false) => vec![],
            toml::Value::String(s) => vec![format!("--{key}"), s.clone()],
            toml::Value::Integer(n) => vec![format!("--{key}"), n.to_string()],
            toml::Value::Float(x) => vec![format!("--{key}"), x.to_string()],
            _ => bail!("{}: must be a string, a number or true/false", in_file()),
        };
        // Checked alone, so an error names the key and the file.
        let mut alone = vec![OsString::from("appforged")];
        alone.extend(words.iter().map(OsString::from));
        if let Err(e) = Cli::command().try_get_matches_from(alone) {
            let why = e.render().to_string();
            let why = why
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            bail!("bad {}: {why}", in_file());
        }
        if flag == arg.get_action().takes_values() {
            bail!(
                "bad {}: use {}",
                in_file(),
                if flag { "a value" } else { "true or false" }
            );
        }
        let given = matches!(
            first.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            extra.extend(words.into_iter().map(OsString::from));
            from_file.push(key.clone());
        }
    }
    let mut all = args;
    all.extend(extra);
    let matches = Cli::command()
        .try_get_matches_from(all)
        .with_context(|| format!("the settings from {} do not fit together", path.display()))?;
    finish(matches, Some(path), keys, from_file)
}

fn finish(
    matches: ArgMatches,
    file: Option<PathBuf>,
    keys: Secrets,
    from_file: Vec<String>,
) -> anyhow::Result<Loaded> {
    let cli = Cli::from_arg_matches(&matches).context("bad command line")?;
    Ok(Loaded {
        cli,
        file,
        keys,
        matches,
        from_file,
    })
}

/// The first configuration file that exists in the usual places.
fn default_file() -> Option<PathBuf> {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|dir| dir.join("appforge/config.toml"));
    [user, Some(PathBuf::from("/etc/appforge/config.toml"))]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
}

/// A file holding a key must be ours and private, as ssh demands of its keys.
fn check_private(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{} holds a secret but others may read it (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        );
    }
    if meta.uid() != nix::unistd::getuid().as_raw() {
        bail!(
            "{} holds a secret but belongs to another user",
            path.display()
        );
    }
    Ok(())
}

impl Loaded {
    /// The effective configuration as TOML, each setting with where it came
    /// from; API keys are shown only as set or not.
    pub fn render(&self, keys: &Secrets, settings: &Settings) -> String {
        let endpoint = settings.ai.endpoint(&settings.ai.default_provider);
        let resolved = |long: &str| -> Option<String> {
            Some(match long {
                "socket" => settings.socket.display().to_string(),
                "data-dir" => settings.data_dir.display().to_string(),
                "env-dir" => settings.apps.env_dir.display().to_string(),
                "provider" => settings.ai.default_provider.clone(),
                "base-url" if settings.ai.default_provider != "template" => {
                    endpoint.base_url.clone()
                }
                "model" if settings.ai.default_provider != "template" => {
                    endpoint.default_model.clone()
                }
                "database-url" => settings.database.as_ref()?.url.clone(),
                _ => return None,
            })
        };
        let mut out = String::from("# appforged: effective configuration\n");
        if let Some(file) = &self.file {
            let _ = writeln!(out, "# file: {}", file.display());
        }
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if NOT_SETTINGS.contains(&long) {
                continue;
            }
            let id = arg.get_id().as_str();
            let source = match self.matches.value_source(id) {
                _ if self.from_file.iter().any(|k| k == long) => "file",
                // Read with the secrets, outside clap: it may hold a password.
                Some(ValueSource::DefaultValue) | None
                    if long == "database-url" && keys.database_url.is_some() =>
                {
                    "environment"
                }
                Some(ValueSource::CommandLine) => "command line",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) => "default",
                _ => "default",
            };
            let is_flag = !arg.get_action().takes_values();
            let value = if is_flag {
                self.matches.get_flag(id).to_string()
            } else if long == "database-url" {
                // Shown without its password, wherever it came from.
                match resolved(long) {
                    Some(v) => toml_value(&v),
                    None => {
                        let _ = writeln!(out, "# {long} = (not set)");
                        continue;
                    }
                }
            } else {
                match self.matches.get_raw(id).and_then(|mut v| v.next()) {
                    Some(raw) => toml_value(&raw.to_string_lossy()),
                    None => match resolved(long) {
                        Some(v) => toml_value(&v),
                        None => {
                            let _ = writeln!(out, "# {long} = (not set)");
                            continue;
                        }
                    },
                }
            };
            let _ = writeln!(out, "{long} = {value}  # {source}");
        }
        for (key, secret) in [
            ("groq-api-key", &keys.groq),
            ("openai-api-key", &keys.openai),
            ("api-key", &keys.any),
            (
                "database-password",
                &settings.database.as_ref().and_then(|d| d.password.clone()),
            ),
        ] {
            let shown = if secret.is_some() {
                "set (hidden)"
            } else {
                "not set"
            };
            let _ = writeln!(out, "# {key}: {shown}");
        }
        out
    }
}

/// A number stays a number; anything else is a quoted string.
fn toml_value(raw: &str) -> String {
    if raw.parse::<i64>().is_ok() || (raw.parse::<f64>().is_ok() && raw.contains('.')) {
        raw.to_string()
    } else {
        toml::Value::String(raw.to_string()).to_string()
    }
}
