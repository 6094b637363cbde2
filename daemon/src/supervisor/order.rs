//! What the supervisor is handed to run an app. It knows nothing of
//! projects, versions or checks: the layer above turns a saved version into
//! an [`Order`], and gives the supervisor an [`Orders`] to ask for the
//! newest one when it must start an app on its own (after a daemon
//! restart).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::process::launch::Variables;
use crate::process::shape::Target;

/// Whose app it is and what it is called, for lists and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// The project's id; the key of everything the supervisor keeps.
    pub project_id: i64,
    /// Its owner: `ps` lists an owner's apps only.
    pub owner_id: i64,
    /// Its name, for messages.
    pub name: String,
}

/// The files of one version, written into the app's run folder when it is
/// started (never while an older version runs from that folder).
pub trait Content: Send + Sync {
    /// Writes the files into `dir`, replacing the ones an earlier version
    /// left there.
    fn write_into(&self, dir: &Path) -> std::io::Result<()>;
}

/// Whether a newly saved version replaces the version an app runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaces {
    /// It does: the app is restarted on it.
    Yes,
    /// It does not (it failed its checks, or skipped them): the app keeps
    /// its version, and `ps` shows this one as newer. The text says why.
    No(&'static str),
}

/// One version of an app, ready to be run.
#[derive(Clone)]
pub struct Order {
    /// The app.
    pub app: AppRef,
    /// The version's number, shown by `ps`.
    pub version: i64,
    /// How the version fared in its checks, as `ps` shows it.
    pub check_status: Option<String>,
    /// Whether it replaces a running app's version.
    pub replaces: Replaces,
    /// The requirement lines its Python environment installs.
    pub requirements: String,
    /// The path its health probe asks for (`/healthz` or `/`), taken from
    /// the stored version, never from files the app can write.
    pub health_path: &'static str,
    /// The module it runs, found in the stored version's files.
    pub target: Target,
    /// Its files.
    pub content: Arc<dyn Content>,
    /// The app's own settings, secrets opened: its restarts, automatic
    /// ones included, keep them.
    pub settings: Variables,
    /// The settings its code reads that are set neither by `settings` nor
    /// by the launch, as `ps` shows them.
    pub missing_settings: Vec<String>,
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Order")
            .field("app", &self.app)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Why no order could be made for an app.
pub type OrderError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as [`Orders`] returns.
pub type OrderFuture<'a> = Pin<Box<dyn Future<Output = Result<Order, OrderError>> + Send + 'a>>;

/// A boxed future of an app's settings, as [`Orders`] returns them.
pub type SettingsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Variables, OrderError>> + Send + 'a>>;

/// Where the supervisor gets the newest version of an app it must start
/// on its own: a wanted app whose process is gone after a daemon restart.
pub trait Orders: Send + Sync {
    /// The app's newest saved version.
    fn newest(&self, app: AppRef) -> OrderFuture<'_>;

    /// The app's own settings now, secrets opened, for an order made
    /// above the supervisor.
    fn settings(&self, app: AppRef) -> SettingsFuture<'_>;
}
