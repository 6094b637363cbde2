//! The one door from the workflows and the handlers to the supervisor, so
//! that its API can change in one place. Making a version needs two things
//! of it, behind [`Apps`] so the workflow's tests run without apps: moving
//! a running app onto a new version, and the app's last failure.

use appforge_shared::protocol::FileContent;
use futures_util::future::BoxFuture;

use crate::projects::versions::{CheckStatus, Release};
use crate::projects::Project;
use crate::supervisor::{RunError, Supervisor};

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
            let release = Release {
                version: release.version,
                check_status: Some(release.check_status.as_str().to_string()),
                files: release.files.to_vec(),
            };
            Supervisor::follow(self, project, &release, step).await
        })
    }

    fn last_failure(&self, project_id: i64) -> BoxFuture<'_, Option<String>> {
        Box::pin(Supervisor::last_failure(self, project_id))
    }
}
