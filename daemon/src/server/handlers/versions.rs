//! `edit`, `history`, `diff` and `rollback`: a project's versions.

use std::collections::BTreeSet;

use appforge_shared::protocol::{
    CheckOptions, CheckStep, DiffInfo, DiffRequest, EditRequest, FileContent, Progress, ProjectRef,
    Reply, RollbackRequest, SavedVersion, SessionToken,
};

use super::generate::check_steps;
use super::{follow, with_project, ProgressTx};
use crate::ai::parse::{MAX_FILES, MAX_FILE_BYTES};
use crate::ai::validate::{self, CheckError as StaticError};
use crate::checks::CheckError;
use crate::error::ServiceError;
use crate::projects::path::SafePath;
use crate::projects::versions::Release;
use crate::projects::{diff, versions, NewVersion, Project};
use crate::state::Daemon;

/// Saves an edited file set as a new version, if it changed anything and
/// passes its checks.
pub async fn edit(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: EditRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    // Find the project first, so someone else's project is "not found" no
    // matter what the files hold.
    let project = with_project(daemon, token, req.project, |_, p| Ok(p.clone())).await?;
    let mut files = checked_paths(req.files)?;
    let (status, steps) = check(daemon, &mut files, req.checks, "edit", progress).await?;
    let base = req.base_version;
    let to_save = files.clone();
    let saved = with_project(daemon, token, project.id.to_string(), move |tx, project| {
        let version = NewVersion {
            kind: "edit",
            prompt: "",
            generation_id: None,
            tokens_used: 0,
            files: &to_save,
            checks: status,
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
    Ok(Reply::Saved(
        finish(daemon, &project, saved, files, steps, progress).await,
    ))
}

/// Checks a file set that no model wrote (an edit, a rollback): the
/// static checks, then (unless turned off) the checks by running. Returns
/// how they went; refuses a failure unless `--keep-broken` says to save it.
async fn check(
    daemon: &Daemon,
    files: &mut Vec<FileContent>,
    options: CheckOptions,
    what: &str,
    progress: &ProgressTx,
) -> Result<(&'static str, Vec<CheckStep>), ServiceError> {
    validate::check(files, &daemon.settings.ai.python)
        .await
        .map_err(|e| match e {
            StaticError::Invalid(why) => {
                ServiceError::InvalidInput(format!("the {what} was not saved: {why}"))
            }
            StaticError::Checker(_) => ServiceError::Internal(e.to_string()),
        })?;
    if !options.check {
        return Ok(("skipped", Vec::new()));
    }
    let say = |line: String| {
        let _ = progress.send(Progress::Step(line));
    };
    match daemon.checker.clone().check(files, &say).await {
        Ok(steps) => Ok(("passed", check_steps(&steps))),
        Err(CheckError::Failed { steps, failure }) if options.keep_broken => {
            say(format!(
                "saving although it failed its checks (--keep-broken): {failure}"
            ));
            Ok(("failed", check_steps(&steps)))
        }
        Err(CheckError::Failed { failure, .. }) => Err(ServiceError::App(format!(
            "the {what} was not saved: {failure}\n(--keep-broken saves it anyway, marked as failing; \
             --no-check skips the checks)"
        ))),
        Err(e @ CheckError::Broken(_)) => Err(ServiceError::Internal(e.to_string())),
    }
}

/// After a version is saved: the checks it passed, and the app following it.
async fn finish(
    daemon: &Daemon,
    project: &Project,
    mut saved: SavedVersion,
    files: Vec<FileContent>,
    steps: Vec<CheckStep>,
    progress: &ProgressTx,
) -> SavedVersion {
    saved.checks = steps;
    if saved.saved {
        let release = Release {
            version: saved.version,
            check_status: Some(saved.check_status.clone()),
            files,
        };
        saved.restarted = follow(daemon, project, &release, progress).await;
    }
    saved
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
    let wanted = req.version;
    let (project, base, mut files) = with_project(daemon, token, req.project, move |tx, p| {
        let base = versions::latest(tx, p.id)?;
        Ok((p.clone(), base, versions::files_at(tx, p, wanted)?))
    })
    .await?;
    let (status, steps) = check(daemon, &mut files, req.checks, "rollback", progress).await?;
    let to_save = files.clone();
    let saved = with_project(daemon, token, project.id.to_string(), move |tx, project| {
        let prompt = format!("rollback to version {wanted}");
        let version = NewVersion {
            kind: "rollback",
            prompt: &prompt,
            generation_id: None,
            tokens_used: 0,
            files: &to_save,
            checks: status,
        };
        versions::save_if_changed(tx, project, Some(base), version)
    })
    .await?;
    if saved.saved {
        tracing::info!(
            project_id = saved.project_id,
            version = saved.version,
            "rolled a project back"
        );
    }
    Ok(Reply::Saved(
        finish(daemon, &project, saved, files, steps, progress).await,
    ))
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
        let path = match SafePath::new(&f.path) {
            Ok(path) => path.to_string(),
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
