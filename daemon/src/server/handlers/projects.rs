//! `list`, `show`, `delete` and `export`: reading a saved project.

use appforge_shared::codec::MAX_FRAME_LEN;
use appforge_shared::protocol::{
    ExportInfo, ExportRequest, ProjectDetail, ProjectRef, Reply, SessionToken, ShowRequest,
};

use super::with_project;
use crate::error::ServiceError;
use crate::projects::{self, export, settings, versions, ProjectError};
use crate::services::apps;
use crate::state::Daemon;

/// The caller's projects.
pub async fn list(daemon: &Daemon, token: Option<&SessionToken>) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let found = daemon
        .db
        .transaction(move |c| projects::list(c, user.id))
        .await
        .map_err(ServiceError::from)?;
    Ok(Reply::Projects(found))
}

/// One version of a project, or one file of it.
pub async fn show(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ShowRequest,
) -> Result<Reply, ServiceError> {
    let detail = with_project(daemon, token, req.project, move |tx, project| {
        let version = match req.version {
            Some(v) => v,
            None => versions::latest(tx, project.id)?,
        };
        let mut files = versions::files_at(tx, project, version)?;
        if let Some(path) = req.file {
            let listing = files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>();
            let listing = listing.join(", ");
            files.retain(|f| f.path == path);
            if files.is_empty() {
                return Err(ProjectError::NoSuchFile {
                    name: project.name.clone(),
                    version,
                    path: path.chars().filter(|c| !c.is_control()).take(255).collect(),
                    files: listing,
                });
            }
        }
        Ok(ProjectDetail {
            summary: projects::summary(tx, project)?,
            prompt: project.prompt.clone(),
            version,
            files,
        })
    })
    .await?;
    Ok(Reply::Project(detail))
}

/// Deletes a project with all its versions.
pub async fn delete(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ProjectRef,
) -> Result<Reply, ServiceError> {
    let project = with_project(daemon, token, req.project, |_, p| Ok(p.clone())).await?;
    // The app goes first, so no process outlives its project.
    apps::stop_before_delete(&daemon.supervisor, project.id).await?;
    let deleted = with_project(daemon, token, project.id.to_string(), |tx, project| {
        let summary = projects::summary(tx, project)?;
        projects::delete(tx, project)?;
        Ok(summary)
    })
    .await?;
    apps::remove_files(&daemon.supervisor, project.id)
        .await
        .map_err(|e| ServiceError::Internal(format!("could not remove the app's logs: {e}")))?;
    tracing::info!(project_id = deleted.id, "deleted a project");
    Ok(Reply::Deleted(deleted))
}

/// The newest version packed as an archive, with its Dockerfile, README,
/// smoke test and CI workflow, and the deployment files of the targets asked for.
pub async fn export(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ExportRequest,
) -> Result<Reply, ServiceError> {
    let (project, files, expected) = with_project(daemon, token, req.project, |tx, project| {
        let stored = settings::list(tx, project.id)?;
        Ok((
            project.clone(),
            versions::current_files(tx, project)?,
            settings::expected(&stored),
        ))
    })
    .await?;
    let format = req.format;
    let targets = req.targets;
    // Compressing is CPU work: keep it off the async workers and the database.
    let info = tokio::task::spawn_blocking(move || {
        let files =
            export::export_files(&project.name, &project.prompt, &files, &targets, &expected);
        let root = export::archive_root(&project.name);
        let archive = export::build_archive(format, &root, &files)?;
        Ok::<_, export::ExportError>(ExportInfo {
            project_id: project.id,
            files: files.iter().map(|f| format!("{root}/{}", f.path)).collect(),
            root,
            format,
            archive,
        })
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("export task failed: {e}")))?
    .map_err(|e| ServiceError::Internal(format!("could not build the archive: {e}")))?;
    // Leave room in the frame for everything around the archive.
    if info.archive.len() > MAX_FRAME_LEN - 1024 * 1024 {
        return Err(ServiceError::InvalidInput(format!(
            "the archive would be {} bytes, more than one reply can carry",
            info.archive.len()
        )));
    }
    Ok(Reply::Export(info))
}
