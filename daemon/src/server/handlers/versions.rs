//! `edit`, `history`, `diff`, `rollback` and `import`: a project's versions.

use appforge_shared::protocol::{
    DiffInfo, DiffRequest, EditRequest, ImportRequest, ProjectRef, Reply, RollbackRequest,
    SessionToken,
};

use super::{maker, with_project, ProgressTx};
use crate::error::ServiceError;
use crate::projects::{diff, versions};
use crate::state::Daemon;

/// Saves an edited file set as a new version, if it changed anything and
/// passes its checks.
pub async fn edit(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: EditRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let report = progress.reporter();
    let saved = maker(daemon).edit(user.id, req, &report).await?;
    Ok(Reply::Saved(saved))
}

/// A project's versions, oldest first.
pub async fn history(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ProjectRef,
) -> Result<Reply, ServiceError> {
    let list = with_project(daemon, token, req.project, |tx, project| {
        versions::history(tx, project.id)
    })
    .await?;
    Ok(Reply::History(list))
}

/// The unified diff between two versions: by default the newest and the one
/// before it.
pub async fn diff(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: DiffRequest,
) -> Result<Reply, ServiceError> {
    let info = with_project(daemon, token, req.project, move |tx, project| {
        let to = match req.to {
            Some(v) => v,
            None => versions::latest(tx, project.id)?,
        };
        let from = req.from.unwrap_or((to - 1).max(1));
        let old = versions::files_at(tx, project, from)?;
        let new = versions::files_at(tx, project, to)?;
        Ok(DiffInfo {
            project_id: project.id,
            from,
            to,
            changed: versions::changed_paths(&old, &new),
            unified: diff::unified(&old, &new),
        })
    })
    .await?;
    Ok(Reply::Diff(info))
}

/// Makes a new version equal to an earlier one, once it passes its checks.
pub async fn rollback(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: RollbackRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let report = progress.reporter();
    let saved = maker(daemon).rollback(user.id, req, &report).await?;
    Ok(Reply::Saved(saved))
}

/// Makes a new project of a folder's files, once they pass their checks.
pub async fn import(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ImportRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let report = progress.reporter();
    let saved = maker(daemon).import(user.id, req, &report).await?;
    Ok(Reply::Saved(saved))
}
