//! Turns a saved version into what the supervisor runs ([`Order`]), and
//! gives the supervisor the newest version of an app it must start on its
//! own.

use std::path::Path;
use std::sync::Arc;

use appforge_shared::protocol::FileContent;

use crate::db::Db;
use crate::process::{launch, requirements};
use crate::projects::versions::{self, Release};
use crate::projects::{export, folder, Project};
use crate::supervisor::order::{AppRef, Content, Order, OrderFuture, Orders, Replaces};

/// A version's files as the run folder holds them: with a Dockerfile
/// when the version has none, so the folder can be built as it is.
struct Files(Vec<FileContent>);

impl Content for Files {
    fn write_into(&self, dir: &Path) -> std::io::Result<()> {
        folder::write(dir, &self.0)
    }
}

/// What the supervisor runs for `release` of `project`.
pub fn order_of(project: &Project, release: &Release) -> Order {
    let files = &release.files;
    let mut on_disk = files.clone();
    if !on_disk.iter().any(|f| f.path == "Dockerfile") {
        on_disk.push(FileContent::new("Dockerfile", export::dockerfile(files)));
    }
    Order {
        app: app_of(project),
        version: release.version,
        check_status: release.check_status.clone(),
        replaces: match release.check_status.as_deref() {
            Some("passed") => Replaces::Yes,
            Some("failed") => Replaces::No("failed its checks"),
            _ => Replaces::No("was saved without its checks"),
        },
        requirements: requirements::of(files),
        health_path: launch::health_path(files),
        content: Arc::new(Files(on_disk)),
    }
}

/// How the supervisor names a project's app.
pub fn app_of(project: &Project) -> AppRef {
    AppRef {
        project_id: project.id,
        owner_id: project.owner_id,
        name: project.name.clone(),
    }
}

/// The store's newest versions, for the supervisor.
pub struct StoredOrders {
    db: Db,
}

impl StoredOrders {
    /// Orders read from `db`.
    pub fn new(db: Db) -> StoredOrders {
        StoredOrders { db }
    }
}

impl Orders for StoredOrders {
    fn newest(&self, app: AppRef) -> OrderFuture<'_> {
        Box::pin(async move {
            let project = Project {
                id: app.project_id,
                name: app.name,
                prompt: String::new(),
                owner_id: app.owner_id,
            };
            let read = project.clone();
            let release = self
                .db
                .call(move |c| Ok(versions::newest_release(c, &read)))
                .await??;
            Ok(order_of(&project, &release))
        })
    }
}
