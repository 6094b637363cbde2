//! The one door from the workflows and the handlers to the supervisor, so
//! that its API can change in one place. Making a version needs two things
//! of it, behind [`Apps`] so the workflow's tests run without apps: moving
//! a running app onto a new version, and the app's last failure. The rest
//! are the requests about apps: run, stop, restart, ps, logs, and what
//! `status` and `metrics` show.

use std::collections::BTreeMap;

use appforge_shared::protocol::{FileContent, ProcessInfo};
use futures_util::future::BoxFuture;

use crate::confine::Protections;
use crate::process::logfile::LogFiles;
use crate::projects::versions::{CheckStatus, Release};
use crate::projects::Project;
use crate::supervisor::{RunError, Supervisor};

pub use crate::supervisor::OwnerWatch;

use super::orders;

/// A version just saved, as the running app is moved onto it.
pub struct NewRelease<'a> {
    /// Its number.
    pub version: i64,
    /// How it fared in its checks.
    pub check_status: CheckStatus,
    /// Its files.
    pub files: &'a [FileContent],
}

/// What making a version asks of the supervised apps.
pub trait Apps: Send + Sync {
    /// Restarts the project's app on `release` if it is supervised (and
    /// the release did not fail its checks); returns whether it was.
    fn follow<'a>(
        &'a self,
        project: &'a Project,
        release: NewRelease<'a>,
        step: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<bool, RunError>>;

    /// The app's last real failure (its traceback and how it ended), if
    /// it has one.
    fn last_failure(&self, project_id: i64) -> BoxFuture<'_, Option<String>>;
}

impl Apps for Supervisor {
    fn follow<'a>(
        &'a self,
        project: &'a Project,
        release: NewRelease<'a>,
        step: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<bool, RunError>> {
        Box::pin(async move {
            let settings = self.settings(&orders::app_of(project)).await?;
            let order = orders::order_of_files(
                project,
                release.version,
                Some(release.check_status),
                release.files,
                settings,
            )?;
            Supervisor::follow(self, &order, step).await
        })
    }

    fn last_failure(&self, project_id: i64) -> BoxFuture<'_, Option<String>> {
        Box::pin(Supervisor::last_failure(self, project_id))
    }
}

/// Starts a project's app on `release` (or finds it running) and returns
/// once it answers HTTP; `step` hears each stage.
pub async fn run(
    supervisor: &Supervisor,
    project: &Project,
    release: &Release,
    port: Option<u16>,
    step: &(dyn Fn(String) + Sync),
) -> Result<ProcessInfo, RunError> {
    let settings = supervisor.settings(&orders::app_of(project)).await?;
    supervisor
        .run(&orders::order_of(project, release, settings)?, port, step)
        .await
}

/// Stops a project's app, unless another host's daemon keeps it running;
/// returns what was stopped.
pub async fn stop(
    supervisor: &Supervisor,
    project: &Project,
) -> Result<Option<ProcessInfo>, RunError> {
    supervisor
        .check_here(&orders::app_of(project), true)
        .await?;
    supervisor.stop(project.id).await
}

/// Stops every app of `owner_id`'s this daemon runs; returns what was
/// stopped.
pub async fn stop_all(
    supervisor: &Supervisor,
    owner_id: i64,
) -> Result<Vec<ProcessInfo>, RunError> {
    let mut stopped = Vec::new();
    for id in supervisor.owned(owner_id) {
        if let Some(info) = supervisor.stop(id).await? {
            stopped.push(info);
        }
    }
    Ok(stopped)
}

/// The version this daemon's app of `project` runs, if it runs here and
/// is wanted running (a failed app included: its owner still wants it).
pub fn version_running_here(supervisor: &Supervisor, project: &Project) -> Option<i64> {
    supervisor
        .ps(project.owner_id)
        .into_iter()
        .find(|p| p.project_id == project.id && p.status != "stopped")
        .and_then(|p| p.version)
}

/// Stops a project's app and starts it on `release`, as one operation
/// that keeps it wanted, unless another host's daemon keeps it running.
pub async fn restart(
    supervisor: &Supervisor,
    project: &Project,
    release: &Release,
    step: &(dyn Fn(String) + Sync),
) -> Result<ProcessInfo, RunError> {
    let settings = supervisor.settings(&orders::app_of(project)).await?;
    let order = orders::order_of(project, release, settings)?;
    supervisor.check_here(&order.app, false).await?;
    supervisor.restart(&order, step).await
}

/// Stops a project's app and removes its folder and logs, for a project
/// being deleted. The app goes first, so no process outlives its project.
pub async fn stop_before_delete(supervisor: &Supervisor, project_id: i64) -> Result<(), RunError> {
    supervisor.stop(project_id).await?;
    Ok(())
}

/// Removes a deleted project's folder and logs.
pub async fn remove_files(supervisor: &Supervisor, project_id: i64) -> std::io::Result<()> {
    let folder = supervisor.folder(project_id);
    let logs = supervisor.log_files(project_id);
    tokio::task::spawn_blocking(move || {
        // A project never run has no folder.
        let _ = std::fs::remove_dir_all(folder);
        logs.remove()
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The caller's apps: those this daemon runs, then those other hosts'
/// daemons keep running.
pub async fn ps(supervisor: &Supervisor, owner_id: i64) -> Result<Vec<ProcessInfo>, RunError> {
    let mut apps = supervisor.ps(owner_id);
    apps.extend(supervisor.elsewhere(owner_id).await?);
    Ok(apps)
}

/// A watch on `owner_id`'s apps, for pages that show them live: its
/// `changed` returns when one of them changes state, starts or stops.
pub fn watch(supervisor: &Supervisor, owner_id: i64) -> OwnerWatch {
    supervisor.watch_owner(owner_id)
}

/// The caller's apps this daemon runs.
pub fn running(supervisor: &Supervisor, owner_id: i64) -> Vec<ProcessInfo> {
    supervisor.ps(owner_id)
}

/// Where a project's app log is.
pub enum Logs {
    /// On this host, in these files.
    Here(LogFiles),
    /// On another host, whose daemon runs the app.
    Elsewhere {
        /// That host.
        host: String,
    },
}

/// Where a project's app log is: an app another host runs keeps its log
/// on that host.
pub async fn logs(supervisor: &Supervisor, project: &Project) -> Result<Logs, RunError> {
    let files = supervisor.log_files(project.id);
    if !files.path().exists() {
        if let Some(host) = supervisor.host_elsewhere(project.id).await? {
            return Ok(Logs::Elsewhere { host });
        }
    }
    Ok(Logs::Here(files))
}

/// How many apps are in each state, for the metrics.
pub fn by_state(supervisor: &Supervisor) -> BTreeMap<&'static str, u64> {
    supervisor.apps_by_state()
}

/// This daemon's claim on its host: the name, whether it holds it, and
/// what to know about it.
pub fn host_claim(supervisor: &Supervisor) -> (String, bool, String) {
    supervisor.host_claim()
}

/// The confinement apps run under.
pub fn protections(supervisor: &Supervisor) -> &Protections {
    supervisor.protections()
}
