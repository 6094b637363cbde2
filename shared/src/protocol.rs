//! The messages exchanged between `appforge` and `appforged`.
//!
//! A connection starts with [`ClientFrame::Hello`], answered by
//! [`ServerFrame::Welcome`] or an error. Then each [`ClientFrame::Request`] is
//! answered by any number of [`ServerFrame::Progress`] frames and exactly one
//! final frame: [`ServerFrame::Reply`] or [`ServerFrame::Error`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::WireError;

/// The protocol version this build speaks; both sides must agree on it.
pub const PROTOCOL_VERSION: u32 = 7;

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of every connection.
    Hello(Hello),
    /// One request, answered by progress frames and one final frame.
    Request(Envelope),
    /// Sent right after the handshake by a signed-in client, and not
    /// answered: a valid session lifts the connection's frame limit from
    /// [`crate::codec::MAX_UNAUTHENTICATED_FRAME_LEN`] to
    /// [`crate::codec::MAX_FRAME_LEN`], so a large request (an edit's
    /// files) can follow.
    Authenticate(SessionToken),
}

/// A frame sent by the daemon.
// One frame exists at a time per connection: boxing the reply would cost
// an allocation per frame to save stack bytes nobody is short of.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The handshake succeeded.
    Welcome(Welcome),
    /// Work in progress on the current request; more frames follow.
    Progress(Progress),
    /// The request succeeded; the final frame.
    Reply(Reply),
    /// The request failed; the final frame.
    Error(WireError),
}

impl ServerFrame {
    /// Whether this frame ends the current request.
    pub fn is_final(&self) -> bool {
        !matches!(self, ServerFrame::Progress(_))
    }
}

/// The client's half of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must be the first field in every protocol version, so any daemon can read it.
    pub protocol: u32,
    /// The client's package version, for logs.
    pub client_version: String,
}

impl Hello {
    /// The hello this build sends.
    pub fn current() -> Self {
        Hello {
            protocol: PROTOCOL_VERSION,
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The daemon's half of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the daemon speaks.
    pub protocol: u32,
    /// The daemon's package version.
    pub daemon_version: String,
}

/// A request and, where it needs one, the caller's session token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The session token from `login` or `signup`, if the client has one.
    pub token: Option<SessionToken>,
    /// What the client asks for.
    pub request: Request,
}

/// Everything a client can ask the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Is the daemon there?
    Ping,
    /// The daemon's version, uptime, paths and counts.
    Status,
    /// Create an account and sign in.
    Signup(Credentials),
    /// Sign in.
    Login(Credentials),
    /// End the caller's session.
    Logout,
    /// Who the caller's session belongs to.
    Whoami,
    /// Turn a prompt into an app, and save it when asked.
    Generate(GenerateRequest),
    /// Save the files of an earlier, unsaved generation as a new project.
    SaveGeneration(SaveGenerationRequest),
    /// Change a saved project by a prompt; saves a new version.
    Improve(ImproveRequest),
    /// Repair a project from its app's last real failure; saves a new version.
    Fix(FixRequest),
    /// The caller's projects.
    ListProjects,
    /// One project's files, at its newest or a given version.
    ShowProject(ShowRequest),
    /// Save an edited file set as a new version.
    EditProject(EditRequest),
    /// Delete a project with all its versions.
    DeleteProject(ProjectRef),
    /// A project's versions.
    History(ProjectRef),
    /// A unified diff between two versions of a project.
    Diff(DiffRequest),
    /// Make a new version equal to an earlier one.
    Rollback(RollbackRequest),
    /// The project packed as an archive, with what it needs to be deployed.
    Export(ExportRequest),
    /// Start a project's app and keep it running.
    Run(RunRequest),
    /// Stop one app, or all of the caller's.
    Stop(StopRequest),
    /// Stop an app and start it again.
    Restart(ProjectRef),
    /// The caller's supervised apps.
    Ps,
    /// The last lines of an app's log, then (with `follow`) new ones.
    Logs(LogsRequest),
    /// The daemon's counters, as Prometheus text.
    Metrics,
    /// The CPU and memory of the caller's apps over the last hour.
    Usage,
    /// A one-time link that signs a browser in to the dashboard as the caller.
    DashboardLink,
    /// An app's own settings: list, set or unset them.
    Env(EnvRequest),
    /// Make a new project of a folder the client read; answered by
    /// [`Reply::Saved`].
    Import(ImportRequest),
}

impl Request {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Status => "status",
            Request::Signup(_) => "signup",
            Request::Login(_) => "login",
            Request::Logout => "logout",
            Request::Whoami => "whoami",
            Request::Generate(_) => "generate",
            Request::SaveGeneration(_) => "save-generation",
            Request::Improve(_) => "improve",
            Request::Fix(_) => "fix",
            Request::ListProjects => "list",
            Request::ShowProject(_) => "show",
            Request::EditProject(_) => "edit",
            Request::DeleteProject(_) => "delete",
            Request::History(_) => "history",
            Request::Diff(_) => "diff",
            Request::Rollback(_) => "rollback",
            Request::Export(_) => "export",
            Request::Run(_) => "run",
            Request::Stop(_) => "stop",
            Request::Restart(_) => "restart",
            Request::Ps => "ps",
            Request::Logs(_) => "logs",
            Request::Metrics => "metrics",
            Request::Usage => "usage",
            Request::DashboardLink => "dashboard-link",
            Request::Env(_) => "env",
            Request::Import(_) => "import",
        }
    }
}

/// How a new version is checked before it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// Run the checks (install, import, start, tests); off with `--no-check`.
    pub check: bool,
    /// Save a version that still fails its checks, marked as failed.
    pub keep_broken: bool,
    /// Repair rounds instead of the daemon's default.
    pub repair_rounds: Option<u32>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            check: true,
            keep_broken: false,
            repair_rounds: None,
        }
    }
}

/// Arguments of [`Request::Generate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// What the app should do, in the user's words.
    pub prompt: String,
    /// Save the result as a new project.
    pub save: bool,
    /// The project's name when saved; derived from the prompt if absent.
    pub name: Option<String>,
    /// Provider to use instead of the daemon's default.
    pub provider: Option<String>,
    /// Model to use instead of the provider's default.
    pub model: Option<String>,
    /// How the result is checked.
    pub checks: CheckOptions,
}

/// Arguments of [`Request::SaveGeneration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveGenerationRequest {
    /// The `generation_id` of an unsaved, successful generation.
    pub generation_id: i64,
    /// The project's name; derived from the prompt if absent.
    pub name: Option<String>,
}

/// Arguments of [`Request::Improve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImproveRequest {
    /// The project, by id or name.
    pub project: String,
    /// What to change.
    pub prompt: String,
    /// Provider to use instead of the daemon's default.
    pub provider: Option<String>,
    /// Model to use instead of the provider's default.
    pub model: Option<String>,
    /// How the result is checked.
    pub checks: CheckOptions,
}

/// Arguments of [`Request::Fix`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixRequest {
    /// The project, by id or name.
    pub project: String,
    /// What else to tell the model, if anything.
    pub prompt: Option<String>,
    /// Provider to use instead of the daemon's default.
    pub provider: Option<String>,
    /// Model to use instead of the provider's default.
    pub model: Option<String>,
    /// How the result is checked.
    pub checks: CheckOptions,
}

/// A project, named by its id or by its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRef {
    /// The project's id or name.
    pub project: String,
}

/// Arguments of [`Request::ShowProject`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowRequest {
    /// The project, by id or name.
    pub project: String,
    /// The version to show; the newest if absent.
    pub version: Option<i64>,
    /// Only this file, if given.
    pub file: Option<String>,
}

/// Arguments of [`Request::EditProject`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditRequest {
    /// The project, by id or name.
    pub project: String,
    /// The version the edit started from; the edit is refused if the project
    /// has moved on since, so no one's change is lost.
    pub base_version: i64,
    /// The whole file set after the edit.
    pub files: Vec<FileContent>,
    /// How the result is checked.
    pub checks: CheckOptions,
}

/// Arguments of [`Request::Import`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The project's name; derived from `folder` if absent.
    pub name: Option<String>,
    /// The folder's own name (not its path), for the project's name and
    /// description.
    pub folder: String,
    /// The folder's text files that belong in the project, by relative path.
    pub files: Vec<FileContent>,
    /// How the import is checked.
    pub checks: CheckOptions,
    /// Have a model repair it when it fails its checks: the folder as it
    /// was is saved as version 1, marked as failing, and the repair as
    /// version 2.
    pub repair: bool,
    /// Provider for the repair instead of the daemon's default.
    pub provider: Option<String>,
    /// Model for the repair instead of the provider's default.
    pub model: Option<String>,
}

/// Arguments of [`Request::Diff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRequest {
    /// The project, by id or name.
    pub project: String,
    /// The older version; the one before `to` if absent.
    pub from: Option<i64>,
    /// The newer version; the newest if absent.
    pub to: Option<i64>,
}

/// Arguments of [`Request::Rollback`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The project, by id or name.
    pub project: String,
    /// The version to return to.
    pub version: i64,
    /// How the result is checked.
    pub checks: CheckOptions,
}

/// The kinds of archive `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveFormat {
    /// A `.zip` file.
    Zip,
    /// A gzip-compressed tar file (`.tar.gz` or `.tgz`).
    TarGz,
}

impl ArchiveFormat {
    /// The format a file name asks for, by its ending.
    pub fn from_file_name(name: &str) -> Option<ArchiveFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".zip") {
            Some(ArchiveFormat::Zip)
        } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            Some(ArchiveFormat::TarGz)
        } else {
            None
        }
    }

    /// The usual file-name ending.
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Zip => "zip",
            ArchiveFormat::TarGz => "tar.gz",
        }
    }
}

/// Platforms an export can also carry deployment files for, besides the
/// Dockerfile, README, smoke test and CI workflow every export has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExportTarget {
    /// Kubernetes manifests in `deploy/k8s/` (a Deployment with readiness and
    /// liveness probes, resource requests and limits and a non-root,
    /// read-only container; a Service; a PersistentVolumeClaim for the app's
    /// data), and a CI job that applies them when the repository has a
    /// `KUBECONFIG_B64` secret.
    K8s,
    /// A `compose.yaml` for Docker Compose, with a health check and a named
    /// volume for the app's data.
    Compose,
}

/// Arguments of [`Request::Export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The project, by id or name.
    pub project: String,
    /// The kind of archive.
    pub format: ArchiveFormat,
    /// Deployment files to add for these platforms; order and repeats do not
    /// matter. Empty (also when absent from JSON, as the dashboard sends it)
    /// for the plain export.
    #[serde(default)]
    pub targets: Vec<ExportTarget>,
}

/// Arguments of [`Request::Run`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The project, by id or name.
    pub project: String,
    /// The port to use; by default the project's last one when free, else a
    /// free one in the daemon's range.
    pub port: Option<u16>,
}

/// Arguments of [`Request::Stop`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// The project, by id or name; `None` with `all` stops every app of the caller.
    pub project: Option<String>,
    /// Stop all of the caller's apps.
    pub all: bool,
}

/// Arguments of [`Request::Logs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// The project, by id or name.
    pub project: String,
    /// How many of the last lines to send first.
    pub lines: u32,
    /// Keep sending new lines as they are written, until the client leaves.
    pub follow: bool,
}

/// An email and password, as given to `signup` and `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The account's email address.
    pub email: String,
    /// The password, never printed.
    pub password: Secret,
}

/// A string that must never reach a log: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A session token; its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionToken(pub String);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

/// Work in progress, streamed before the final frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Progress {
    /// A step the daemon has started, for a spinner or a log line.
    Step(String),
    /// Text streamed from the model as it arrives.
    Text(String),
    /// The model's answer so far was dropped (a retry or a repair round
    /// starts); text shown for it is stale.
    Restart(String),
    /// Lines of an app's log, each ending in a newline. No longer sent:
    /// [`Progress::LogLines`] tells whose each line is.
    Log(String),
    /// Lines of an app's log, each with who wrote it.
    LogLines(Vec<LogLine>),
}

/// Who wrote a line of an app's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The app (or an installer step): its stdout and stderr, untrusted.
    App,
    /// appforge itself: the supervisor's and the shim's notes. An app
    /// cannot write one.
    Appforge,
}

/// A line of an app's log, or a piece of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Who wrote it.
    pub source: LogSource,
    /// Its text, without the newline and, for appforge's lines, without
    /// the `[appforge]` tag; exactly as written otherwise, control
    /// characters included (the reader escapes them for display).
    pub text: String,
    /// False when the line goes on in the next piece: a line longer than a
    /// frame comes in pieces, and so does one still being written.
    pub ends: bool,
}

/// A successful answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to [`Request::Ping`].
    Pong(Welcome),
    /// Answer to [`Request::Status`].
    Status(StatusInfo),
    /// Answer to [`Request::Signup`] and [`Request::Login`].
    Session(SessionInfo),
    /// Answer to [`Request::Logout`].
    LoggedOut,
    /// Answer to [`Request::Whoami`].
    User(UserInfo),
    /// Answer to [`Request::Generate`], [`Request::SaveGeneration`] and [`Request::Improve`].
    Generated(Generated),
    /// Answer to [`Request::ListProjects`].
    Projects(Vec<ProjectSummary>),
    /// Answer to [`Request::ShowProject`].
    Project(ProjectDetail),
    /// Answer to [`Request::EditProject`], [`Request::Rollback`] and
    /// [`Request::Import`].
    Saved(SavedVersion),
    /// Answer to [`Request::DeleteProject`].
    Deleted(ProjectSummary),
    /// Answer to [`Request::History`]: oldest version first.
    History(Vec<VersionInfo>),
    /// Answer to [`Request::Diff`].
    Diff(DiffInfo),
    /// Answer to [`Request::Export`].
    Export(ExportInfo),
    /// Answer to [`Request::Run`] and [`Request::Restart`]: the app answers HTTP.
    Running(ProcessInfo),
    /// Answer to [`Request::Stop`]: the apps stopped, with no process left.
    Stopped(Vec<ProcessInfo>),
    /// Answer to [`Request::Ps`].
    Processes(Vec<ProcessInfo>),
    /// Answer to [`Request::Logs`] once the lines are sent (never, with `follow`).
    LogsEnd,
    /// Answer to [`Request::Metrics`]: Prometheus text.
    Metrics(String),
    /// Answer to [`Request::Usage`]: one series per app.
    Usage(Vec<UsageSeries>),
    /// Answer to [`Request::DashboardLink`].
    DashboardLink(DashboardLink),
    /// Answer to [`Request::Env`]: the settings after the change.
    Env(EnvInfo),
}

/// A one-time sign-in link to the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardLink {
    /// The dashboard's URL with the link's token; opening it signs in.
    pub url: String,
    /// Seconds the link stays valid; it works once.
    pub expires_in_s: u64,
}

/// An app's CPU and memory, sampled once a minute while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSeries {
    /// The project's id.
    pub project_id: i64,
    /// The project's name.
    pub name: String,
    /// Oldest first, at most an hour's worth.
    pub samples: Vec<UsageSample>,
}

/// One sample of an app's use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageSample {
    /// When, in seconds since the Unix epoch.
    pub at_unix_s: u64,
    /// CPU used since the previous sample, in percent of one core.
    pub cpu_percent: f64,
    /// Memory, as `ps` counts it.
    pub rss_bytes: u64,
}

/// A supervised app, as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The project's id.
    pub project_id: i64,
    /// The project's name.
    pub name: String,
    /// `starting`, `running`, `backoff`, `stopped` or `failed`.
    pub status: String,
    /// The app's process id, while it has one.
    pub pid: Option<u32>,
    /// The port it listens on.
    pub port: Option<u16>,
    /// Where it answers, e.g. `http://127.0.0.1:8100/`.
    pub url: Option<String>,
    /// Restarts since it was last started by hand.
    pub restarts: u32,
    /// Seconds since the current process started.
    pub uptime_s: Option<u64>,
    /// Average CPU use of the current process over its life, in percent.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the current process, in bytes.
    pub rss_bytes: Option<u64>,
    /// How the last process ended, e.g. `exit code 1` or `signal 9 (SIGKILL)`.
    pub last_exit: Option<String>,
    /// The project version the app runs.
    pub version: Option<i64>,
    /// The project's newest version, when it is newer than the one running.
    pub newer_version: Option<i64>,
    /// How the running version fared in its checks: `passed`, `skipped`,
    /// `failed`, or none (saved before checks existed).
    pub check_status: Option<String>,
    /// What to do next, when the app has failed (`appforge fix P`).
    pub hint: Option<String>,
    /// The host whose daemon runs it (daemons may share one database).
    pub host: String,
    /// Settings its code reads without a default that were not set when it
    /// was started (neither its own settings nor the launch's), by name.
    #[serde(default)]
    pub missing_settings: Vec<String>,
    /// What it runs and how that was found, e.g. `flaskr:create_app()
    /// (named in pyproject.toml)`; none when not known here.
    #[serde(default)]
    pub target: Option<String>,
}

/// A project as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    /// Its id.
    pub id: i64,
    /// Its name, unique among its owner's projects.
    pub name: String,
    /// `stopped`, `starting`, `running`, `backoff` or `failed`.
    pub status: String,
    /// The port it last ran on.
    pub port: Option<u16>,
    /// Its newest version.
    pub version: i64,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// When its newest version was saved, RFC 3339 UTC.
    pub last_modified: String,
    /// How its newest version fared in its checks: `passed`, `skipped`,
    /// `failed`, or none (saved before checks existed).
    pub check_status: Option<String>,
}

/// A project with the files of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDetail {
    /// The project's row.
    pub summary: ProjectSummary,
    /// The prompt that created it.
    pub prompt: String,
    /// The version shown.
    pub version: i64,
    /// The files of that version (only the one asked for, with `--file`), by path.
    pub files: Vec<FileContent>,
}

/// The outcome of an edit or a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedVersion {
    /// The project's id.
    pub project_id: i64,
    /// The project's name.
    pub name: String,
    /// The new version, or the unchanged newest one when nothing changed.
    pub version: i64,
    /// Whether a version was saved; false when the files did not change.
    pub saved: bool,
    /// Paths added, changed or removed, sorted.
    pub changed: Vec<String>,
    /// `passed`, `skipped`, or `failed` (saved with `--keep-broken`).
    pub check_status: String,
    /// The check steps that ran.
    pub checks: Vec<CheckStep>,
    /// Whether a running app was restarted on the new version.
    pub restarted: bool,
    /// Only documentation changed: the checks did not run the app, and a
    /// running app was left as it was.
    #[serde(default)]
    pub docs_only: bool,
}

/// One version in a project's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Its number, from 1.
    pub version: i64,
    /// `generate`, `improve`, `fix`, `edit`, `rollback` or `import`.
    pub kind: String,
    /// The prompt behind it, or what was done.
    pub prompt: String,
    /// Tokens its generation used.
    pub tokens_used: u64,
    /// The generation that made it, if any.
    pub generation_id: Option<i64>,
    /// How many files it has.
    pub files: u64,
    /// When it was saved, RFC 3339 UTC.
    pub created_at: String,
    /// How it fared in its checks: `passed`, `skipped`, `failed`, or none.
    pub check_status: Option<String>,
}

/// A unified diff between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffInfo {
    /// The project's id.
    pub project_id: i64,
    /// The older version.
    pub from: i64,
    /// The newer version.
    pub to: i64,
    /// Paths added, changed or removed, sorted.
    pub changed: Vec<String>,
    /// The diff, in the unified format `patch -p1` reads; empty when equal.
    pub unified: String,
}

/// An exported project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportInfo {
    /// The project's id.
    pub project_id: i64,
    /// The folder every entry sits in, also a safe file-name stem.
    pub root: String,
    /// The kind of archive.
    pub format: ArchiveFormat,
    /// The archive's paths, under `root`, sorted.
    pub files: Vec<String>,
    /// The archive itself.
    pub archive: Vec<u8>,
}

/// The result of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The `generation_history` row of this call.
    pub generation_id: i64,
    /// The project, when the files were saved.
    pub project: Option<SavedAs>,
    /// The generated files.
    pub files: Vec<FileContent>,
    /// Tokens used, all rounds included.
    pub tokens_used: u64,
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// Wall time of the whole generation, in milliseconds.
    pub duration_ms: u64,
    /// What was mended without a model round, for every round.
    pub mends: Vec<String>,
    /// The check steps of the saved (or last) round.
    pub checks: Vec<CheckStep>,
    /// Repair rounds used.
    pub repair_rounds: u32,
    /// `passed`, `skipped`, or `failed` (saved with `--keep-broken`).
    pub check_status: String,
    /// Whether a running app was restarted on the new version.
    pub restarted: bool,
    /// Files of the project that the change deleted (improve, fix): only
    /// an explicit deletion in the model's reply removes one.
    pub deleted: Vec<String>,
    /// Nothing was saved or restarted: the result equals the project's
    /// newest version, which `project` names.
    #[serde(default)]
    pub unchanged: bool,
    /// What the offline scaffolder understood the request as, said before
    /// it wrote anything; `None` for a model.
    #[serde(default)]
    pub understood: Option<String>,
    /// Only documentation changed: the checks did not run the app, and a
    /// running app was left as it was.
    #[serde(default)]
    pub docs_only: bool,
}

/// One step of the checks and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStep {
    /// `install`, `import`, `start` or `tests`.
    pub step: String,
    /// Whether it passed.
    pub passed: bool,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// Where generated files were saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAs {
    /// The project's id.
    pub project_id: i64,
    /// The project's name.
    pub name: String,
    /// The version the files became.
    pub version: i64,
}

/// One file of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    /// Relative path inside the project.
    pub path: String,
    /// The file's text.
    pub content: String,
}

impl FileContent {
    /// A file at `path` holding `content`.
    pub fn new(path: impl Into<String>, content: impl Into<String>) -> Self {
        FileContent {
            path: path.into(),
            content: content.into(),
        }
    }
}

/// The daemon's state, as `appforge status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The daemon's package version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// The socket the daemon listens on.
    pub socket: String,
    /// The daemon's data directory.
    pub data_dir: String,
    /// The SQLite database file.
    pub database: String,
    /// Number of accounts.
    pub users: u64,
    /// Number of projects.
    pub projects: u64,
    /// Number of clients connected right now, this one included.
    pub connections: u64,
    /// How apps are confined, and what the kernel did not allow.
    pub protections: Vec<Protection>,
    /// The web dashboard's address, when it is served.
    pub web_url: Option<String>,
    /// The host name this daemon runs as, and whether it holds its claim.
    pub host: Option<HostClaim>,
    /// Why the dashboard is not served, and what to do, when it is not.
    #[serde(default)]
    pub web_off: Option<String>,
}

/// A daemon's claim on its host name: while it holds it, it supervises
/// the host's apps; without it, it is fenced and leaves them alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClaim {
    /// The host name.
    pub name: String,
    /// Whether the daemon holds the claim now.
    pub held: bool,
    /// What that means, in words.
    pub detail: String,
}

/// One protection of the apps, and whether this daemon has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// What it is, in words.
    pub name: String,
    /// Whether it is on.
    pub on: bool,
}

/// A new session, returned by `signup` and `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The token to send with later requests.
    pub token: SessionToken,
    /// The signed-in user's id.
    pub user_id: i64,
    /// The signed-in user's email, in its stored (lower-case) form.
    pub email: String,
    /// When the session ends, as RFC 3339 UTC.
    pub expires_at: String,
}

/// The user a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's id.
    pub user_id: i64,
    /// The user's email.
    pub email: String,
    /// When the account was created, as RFC 3339 UTC.
    pub created_at: String,
}

/// Arguments of [`Request::Env`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRequest {
    /// The project, by id or name.
    pub project: String,
    /// What to do.
    pub change: EnvChange,
}

/// What [`Request::Env`] does to an app's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvChange {
    /// Nothing: list them.
    List,
    /// Set each name to its value (values are redacted in `Debug`); as
    /// secrets, never shown again, when `secret`.
    Set {
        /// Names and values.
        settings: Vec<(String, Secret)>,
        /// Whether they are secrets.
        secret: bool,
    },
    /// Remove these.
    Unset {
        /// Their names.
        names: Vec<String>,
    },
}

/// One of an app's settings, as `env` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSetting {
    /// Its name.
    pub name: String,
    /// Its value; a secret's is masked.
    pub value: String,
    /// Whether it is a secret.
    pub secret: bool,
}

/// An app's settings, as [`Request::Env`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvInfo {
    /// The project's id.
    pub project_id: i64,
    /// The project's name.
    pub project: String,
    /// Its settings, by name.
    pub settings: Vec<EnvSetting>,
    /// Whether its running app was restarted to take the change.
    pub restarted: bool,
    /// Settings the code of its newest version reads without a default
    /// that are not set (neither here nor by the launch), by name.
    #[serde(default)]
    pub missing_settings: Vec<String>,
}
