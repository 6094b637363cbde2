//! `edit`, `history`, `diff` and `rollback`: a project's versions.

use std::collections::BTreeSet;

use appforge_shared::protocol::{
    DiffInfo, DiffRequest, EditRequest, FileContent, ProjectRef, Reply, RollbackRequest,
    SessionToken,
};

use super::with_project;
use crate::ai::parse::{self, MAX_FILES, MAX_FILE_BYTES};
use crate::ai::validate::{self, CheckError};
use crate::error::ServiceError;
use crate::projects::{diff, versions, NewVersion};
use crate::state::Daemon;

/// Saves an edited file set as a new version, if it changed anything and
/// still makes a runnable app.
pub async fn edit(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: EditRequest,
) -> Result<Reply, ServiceError> {
    // Find the project first, so someone else's project is "not found" no
    // matter what the files hold.
    let project = with_project(daemon, token, req.project, |_, p| Ok(p.clone())).await?;
    let mut files = checked_paths(req.files)?;
    validate::check(&mut files, &daemon.settings.ai.python)
        .await
        .map_err(|e| match e {
            CheckError::Invalid(why) => {
                ServiceError::InvalidInput(format!("the edit was not saved: {why}"))
            }
            CheckError::Checker(_) => ServiceError::Internal(e.to_string()),
        })?;
    let base = req.base_version;
    let saved = with_project(daemon, token, project.id.to_string(), move |tx, project| {
        let version = NewVersion {
            kind: "edit",
            prompt: "",
            generation_id: None,
            tokens_used: 0,
            files: &files,
        };
        versions::save_if_changed(tx, project, Some(base), version)
    })
    .await?;
    if saved.saved {
        tracing::info!(
            project_id = saved.project_id,
            version = saved.version,
            "saved an edit"
        );
    }
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

/// Makes a new version equal to an earlier one.
pub async fn rollback(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: RollbackRequest,
) -> Result<Reply, ServiceError> {
    let saved = with_project(daemon, token, req.project, move |tx, project| {
        let files = versions::files_at(tx, project, req.version)?;
        let prompt = format!("rollback to version {}", req.version);
        let version = NewVersion {
            kind: "rollback",
            prompt: &prompt,
            generation_id: None,
            tokens_used: 0,
            files: &files,
        };
        versions::save_if_changed(tx, project, None, version)
    })
    .await?;
    if saved.saved {
        tracing::info!(
            project_id = saved.project_id,
            version = saved.version,
            "rolled a project back"
        );
    }
    Ok(Reply::Saved(saved))
}

/// Checks the paths and sizes of an edited file set, as strictly as a model's.
fn checked_paths(files: Vec<FileContent>) -> Result<Vec<FileContent>, ServiceError> {
    let refuse = |why: String| {
        Err(ServiceError::InvalidInput(format!(
            "the edit was not saved: {why}"
        )))
    };
    if files.len() > MAX_FILES {
        return refuse(format!(
            "it has {} files; at most {MAX_FILES} are allowed",
            files.len()
        ));
    }
    let mut seen = BTreeSet::new();
    let mut checked = Vec::with_capacity(files.len());
    for f in files {
        let path = match parse::check_path(&f.path) {
            Ok(path) => path,
            Err(_) => {
                let shown: String = f
                    .path
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(255)
                    .collect();
                return refuse(format!(
                    "`{shown}` is not a safe relative path inside the project"
                ));
            }
        };
        if f.content.len() > MAX_FILE_BYTES {
            return refuse(format!(
                "`{path}` is {} bytes; a file may hold at most {MAX_FILE_BYTES}",
                f.content.len()
            ));
        }
        if f.content.contains('\0') {
            return refuse(format!(
                "`{path}` holds a NUL byte; only text files are kept"
            ));
        }
        if !seen.insert(path.clone()) {
            return refuse(format!("`{path}` is given twice"));
        }
        checked.push(FileContent {
            path,
            content: f.content,
        });
    }
    checked.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(checked)
}
