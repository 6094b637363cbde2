//! The command line, as clap derives it. Completions and the man page are
//! generated from these same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// appforge: turn a prompt into a running web app, and keep it running.
#[derive(Debug, Parser)]
#[command(name = "appforge", version, propagate_version = true)]
pub struct Cli {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/appforge/appforged.sock]
    #[arg(long, global = true, env = "APPFORGE_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and sign in.
    Signup(PasswordArgs),
    /// Sign in.
    Login(PasswordArgs),
    /// Sign out and forget the session.
    Logout,
    /// Show who is signed in.
    Whoami,
    /// Show the daemon's version, uptime, paths and counts.
    Status,
    /// Check that the daemon answers.
    Ping,
    /// Turn a prompt into an app; --save stores it as a project.
    Generate(GenerateArgs),
    /// Change a saved project by a prompt; saves a new version.
    Improve(ImproveArgs),
}

/// Arguments of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What the app should do, e.g. "a todo app with title, due date and done flag".
    pub prompt: String,
    /// Save the app as a project (on a terminal you are asked otherwise).
    #[arg(long)]
    pub save: bool,
    /// The project's name [default: from the prompt]
    #[arg(long)]
    pub name: Option<String>,
    /// AI provider: template, groq or openai [default: the daemon's]
    #[arg(long)]
    pub provider: Option<String>,
    /// Model [default: the provider's]
    #[arg(long)]
    pub model: Option<String>,
}

/// Arguments of `improve`.
#[derive(Debug, Args)]
pub struct ImproveArgs {
    /// The project, by id or name.
    pub project: String,
    /// What to change.
    pub prompt: String,
    /// AI provider: template, groq or openai [default: the daemon's]
    #[arg(long)]
    pub provider: Option<String>,
    /// Model [default: the provider's]
    #[arg(long)]
    pub model: Option<String>,
}

/// Arguments of `signup` and `login`.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The account's email address.
    pub email: String,
    /// Read the password from the first line of standard input instead of
    /// prompting for it.
    #[arg(long)]
    pub password_stdin: bool,
}
