//! Turns a saved version into what the supervisor runs ([`Order`]), and
//! gives the supervisor the newest version of an app it must start on its
//! own.

use std::path::Path;
use std::sync::Arc;

use appforge_shared::protocol::FileContent;

use crate::config::seal::Keyring;
use crate::db::Db;
use crate::process::launch::{self, Variables};
use crate::process::shape::{self, ShapeError};
use crate::process::{reads, requirements};
use crate::projects::versions::{self, CheckStatus, Release};
use crate::projects::{export, folder, settings, Project};
use crate::supervisor::order::{
    AppRef, Content, Order, OrderError, OrderFuture, Orders, Replaces, SettingsFuture,
};

/// A version's files as the run folder holds them: with a Dockerfile
/// when the version has none, so the folder can be built as it is.
struct Files(Vec<FileContent>);

impl Content for Files {
    fn write_into(&self, dir: &Path) -> std::io::Result<()> {
        folder::write(dir, &self.0)
    }
}

/// What the supervisor runs for `release` of `project`, with its
/// `settings`, or why its files do not tell what to run.
pub fn order_of(
    project: &Project,
    release: &Release,
    settings: Variables,
) -> Result<Order, ShapeError> {
    let checks = release.check_status.as_deref().and_then(CheckStatus::parse);
    order_of_files(project, release.version, checks, &release.files, settings)
}

/// What the supervisor runs for version `version` of `project`, with
/// `files`, which fared so in its checks, and its `settings`, or why its
/// files do not tell what to run.
pub fn order_of_files(
    project: &Project,
    version: i64,
    checks: Option<CheckStatus>,
    files: &[FileContent],
    settings: Variables,
) -> Result<Order, ShapeError> {
    let mut on_disk = files.to_vec();
    if !on_disk.iter().any(|f| f.path == "Dockerfile") {
        on_disk.push(FileContent::new("Dockerfile", export::dockerfile(files)));
    }
    Ok(Order {
        app: app_of(project),
        version,
        check_status: checks.map(|c| c.as_str().to_string()),
        replaces: match checks {
            Some(CheckStatus::Passed) => Replaces::Yes,
            Some(CheckStatus::Failed) => Replaces::No("failed its checks"),
            Some(CheckStatus::Skipped) | None => Replaces::No("was saved without its checks"),
        },
        requirements: requirements::of(files)?,
        health_path: launch::health_path(files),
        target: shape::target(files)?,
        content: Arc::new(Files(on_disk)),
        missing_settings: reads::missing(files, &settings),
        settings,
    })
}

/// How the supervisor names a project's app.
pub fn app_of(project: &Project) -> AppRef {
    AppRef {
        project_id: project.id,
        owner_id: project.owner_id,
        name: project.name.clone(),
    }
}

/// The store's newest versions and the apps' settings, for the supervisor.
pub struct StoredOrders {
    db: Db,
    keys: Arc<Keyring>,
}

impl StoredOrders {
    /// Orders read from `db`, secrets opened with `keys`.
    pub fn new(db: Db, keys: Arc<Keyring>) -> StoredOrders {
        StoredOrders { db, keys }
    }
}

/// The project an [`AppRef`] names, as far as orders need it.
fn project_of(app: AppRef) -> Project {
    Project {
        id: app.project_id,
        name: app.name,
        prompt: String::new(),
        owner_id: app.owner_id,
    }
}

impl Orders for StoredOrders {
    fn newest(&self, app: AppRef) -> OrderFuture<'_> {
        Box::pin(async move {
            let project = project_of(app);
            let read = project.clone();
            let (release, stored) = self
                .db
                .call(move |c| {
                    Ok(versions::newest_release(c, &read)
                        .map_err(OrderError::from)
                        .and_then(|r| Ok((r, settings::list(c, read.id)?))))
                })
                .await??;
            let opened = settings::opened(&project, &stored, || self.keys.opening())?;
            Ok(order_of(&project, &release, opened)?)
        })
    }

    fn settings(&self, app: AppRef) -> SettingsFuture<'_> {
        Box::pin(async move {
            let project = project_of(app);
            let id = project.id;
            let stored = self.db.call(move |c| settings::list(c, id)).await?;
            Ok(settings::opened(&project, &stored, || self.keys.opening())?)
        })
    }
}
