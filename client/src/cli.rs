//! The command line, as clap derives it. Completions and the man page are
//! generated from these same definitions.
//!
//! The argument structs have plain comments, not doc comments: clap makes
//! an argument struct's doc comment the help text of the command it is
//! built into, and with commands built on demand (`defer`) that would
//! replace the command's own.

use std::path::PathBuf;

use appforge_shared::protocol::ExportTarget;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// appforge: turn a prompt into a running web app, and keep it running.
#[derive(Debug, Parser)]
#[command(name = "appforge", version)]
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
///
/// Each is built out with its arguments only when it is the one given
/// (`defer`): building all of them would cost every run of the client
/// about 0.07 ms, a twentieth of a `ping`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
    /// Repair a project from its app's last failure (traceback, exit, failed check); saves a new version.
    Fix(FixArgs),
    /// List your projects.
    List,
    /// Print a project's files (highlighted on a terminal).
    Show(ShowArgs),
    /// Edit a project's files in $VISUAL or $EDITOR; saves a new version.
    Edit(EditArgs),
    /// Delete a project with all its versions.
    Delete(DeleteArgs),
    /// List a project's versions.
    History(ProjectArg),
    /// Show what changed between two versions, as a unified diff.
    Diff(DiffArgs),
    /// Make a new version equal to an earlier one; history is kept.
    Rollback(RollbackArgs),
    /// Make a new project of a folder you already have (its text files; .git, virtual environments, caches, build output and what .gitignore names are left out).
    Import(ImportArgs),
    /// Write the project as a .zip or .tar.gz, ready for Docker and CI
    /// (--target adds Kubernetes manifests or a Compose file).
    Export(ExportArgs),
    /// Run a project's app and keep it running; prints its URL once it answers.
    Run(RunArgs),
    /// Stop an app (SIGTERM, then SIGKILL), or all of yours with --all.
    Stop(StopArgs),
    /// Stop an app and start it again.
    Restart(ProjectArg),
    /// List your supervised apps: pid, port, URL, status, restarts, start time, CPU, memory.
    Ps,
    /// Print an app's log; -f keeps printing new lines.
    Logs(LogsArgs),
    /// List an app's settings, or set or unset them (--secret: never shown again); a change restarts it.
    Env(EnvArgs),
    /// Print the daemon's counters in the Prometheus text format.
    Metrics,
    /// Open the web dashboard, signed in: a one-time link (60 s, one use) in your browser, or printed.
    Dashboard(DashboardArgs),
    /// Print a shell completion script: `appforge completions bash > /etc/bash_completion.d/appforge`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), as `make man` installs it.
    #[command(hide = true)]
    Manpage,
}

// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The project, by id or name.
    pub project: String,
    /// Port on 127.0.0.1 [default: its last one when free, else a free one]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
}

// Arguments of `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The project, by id or name.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub project: Option<String>,
    /// Stop all of your apps.
    #[arg(long)]
    pub all: bool,
}

// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The project, by id or name.
    pub project: String,
    /// Keep printing new lines as they are written (Ctrl-C ends).
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines to print first.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: u32,
}

// Arguments of `env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The project, by id or name.
    pub project: String,
    /// What to change; without it, the settings are listed.
    #[command(subcommand)]
    pub change: Option<EnvCommand>,
}

// What `env` changes.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set settings: KEY=VALUE, or KEY alone to read its value from stdin.
    Set {
        /// KEY=VALUE (or KEY, value from stdin, which keeps it out of the shell's history).
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Store them as secrets: sealed, never shown again, not in exports or checks.
        #[arg(long)]
        secret: bool,
    },
    /// Remove settings.
    Unset {
        /// Their names.
        #[arg(required = true, value_name = "KEY")]
        names: Vec<String>,
    },
}

// Arguments of `dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Print the link instead of opening a browser.
    #[arg(long)]
    pub no_open: bool,
}

// A command's only argument: the project.
#[derive(Debug, Args)]
pub struct ProjectArg {
    /// The project, by id or name.
    pub project: String,
}

// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The project, by id or name.
    pub project: String,
    /// Delete without asking (needed when standard input is not a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

// Arguments of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The project, by id or name.
    pub project: String,
    /// Print only this file (control characters shown escaped; `--json` has its exact text).
    #[arg(long)]
    pub file: Option<String>,
    /// Show this version instead of the newest.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub version: Option<i64>,
}

// Arguments of `edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The project, by id or name.
    pub project: String,
    /// Edit only this file (a new path adds a file).
    #[arg(long)]
    pub file: Option<String>,
    /// Take the file's new content from standard input instead of an editor.
    #[arg(long, requires = "file")]
    pub stdin: bool,
    #[command(flatten)]
    pub checks: CheckArgs,
}

// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The project, by id or name.
    pub project: String,
    /// The older version [default: the one before B]
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub a: Option<i64>,
    /// The newer version [default: the newest]
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub b: Option<i64>,
}

// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The project, by id or name.
    pub project: String,
    /// The version to return to.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub version: i64,
    #[command(flatten)]
    pub checks: CheckArgs,
}

// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The folder that holds the app.
    pub dir: PathBuf,
    /// The project's name [default: from the folder's name]
    #[arg(long)]
    pub name: Option<String>,
    /// Save without running the checks (install, import, start, tests).
    #[arg(long)]
    pub no_check: bool,
    /// Save the import even when it fails its checks, marked as failing.
    #[arg(long)]
    pub keep_broken: bool,
    /// When it fails its checks, have the model repair it: the folder as it was becomes version 1 (marked as failing), the repair version 2.
    #[arg(long, conflicts_with = "no_check")]
    pub repair: bool,
    #[command(flatten)]
    pub ai: ProviderArgs,
}

// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The project, by id or name.
    pub project: String,
    /// The archive to write; .zip, .tar.gz or .tgz [default: ./<project>.zip]
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also add deployment files for this platform; repeat for more.
    #[arg(long = "target", value_name = "TARGET", value_enum)]
    pub targets: Vec<TargetArg>,
    /// Replace the archive if it exists.
    #[arg(long)]
    pub force: bool,
}

/// A platform `export --target` adds deployment files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// Kubernetes: deploy/k8s/ (Deployment, Service, PersistentVolumeClaim)
    /// and a CI job that applies it when the KUBECONFIG_B64 secret is set.
    #[value(alias = "kubernetes")]
    K8s,
    /// Docker Compose: compose.yaml, with a health check and a volume for the data.
    Compose,
}

impl From<TargetArg> for ExportTarget {
    fn from(target: TargetArg) -> Self {
        match target {
            TargetArg::K8s => ExportTarget::K8s,
            TargetArg::Compose => ExportTarget::Compose,
        }
    }
}

// Arguments of `generate`.
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
    /// Print every file too, not only the summary.
    #[arg(long)]
    pub files: bool,
    #[command(flatten)]
    pub ai: ProviderArgs,
    #[command(flatten)]
    pub checks: CheckArgs,
}

// Arguments of `improve`.
#[derive(Debug, Args)]
pub struct ImproveArgs {
    /// The project, by id or name.
    pub project: String,
    /// What to change.
    pub prompt: String,
    /// Print every file of the new version instead of the diff.
    #[arg(long)]
    pub files: bool,
    #[command(flatten)]
    pub ai: ProviderArgs,
    #[command(flatten)]
    pub checks: CheckArgs,
}

// Arguments of `fix`.
#[derive(Debug, Args)]
pub struct FixArgs {
    /// The project, by id or name.
    pub project: String,
    /// What else the model should know, e.g. "the list does not refresh".
    pub prompt: Option<String>,
    /// Print every file of the new version instead of the diff.
    #[arg(long)]
    pub files: bool,
    #[command(flatten)]
    pub ai: ProviderArgs,
    #[command(flatten)]
    pub checks: CheckArgs,
}

// Which model answers.
#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// AI provider: template, groq or openai [default: the daemon's]
    #[arg(long)]
    pub provider: Option<String>,
    /// Model [default: the provider's]
    #[arg(long)]
    pub model: Option<String>,
}

// How a new version is checked before it is saved.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Save without running the checks (install, import, start, tests).
    #[arg(long)]
    pub no_check: bool,
    /// Save a version that still fails its checks, marked as failing.
    #[arg(long)]
    pub keep_broken: bool,
    /// Repair rounds when the checks fail [default: the daemon's, 3]
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub repair_rounds: Option<u32>,
}

impl CheckArgs {
    /// As the protocol carries them.
    pub fn options(&self) -> appforge_shared::protocol::CheckOptions {
        appforge_shared::protocol::CheckOptions {
            check: !self.no_check,
            keep_broken: self.keep_broken,
            repair_rounds: self.repair_rounds,
        }
    }
}

// Arguments of `signup` and `login`.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The account's email address.
    pub email: String,
    /// Read the password from the first line of standard input instead of
    /// prompting for it.
    #[arg(long)]
    pub password_stdin: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_command_keeps_its_own_help_once_built() {
        let listed = Cli::command();
        let mut built = Cli::command();
        built.build();
        let about = |c: &clap::Command| c.get_about().map(ToString::to_string);
        for before in listed.get_subcommands() {
            let name = before.get_name();
            let after = built.find_subcommand(name).expect("built");
            assert!(about(before).is_some(), "`{name}` has no help");
            assert_eq!(about(after), about(before), "`{name}`");
        }
    }
}
