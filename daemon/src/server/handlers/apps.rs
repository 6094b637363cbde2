//! `run`, `stop`, `restart`, `ps` and `logs`: the supervised apps.

use std::time::Duration;

use appforge_shared::protocol::{
    LogsRequest, Progress, ProjectRef, Reply, RunRequest, SessionToken, StopRequest,
};

use super::{with_project, ProgressTx};
use crate::error::ServiceError;
use crate::projects::{versions, Project};
use crate::state::Daemon;

/// How often a followed log is checked for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Starts a project's app and answers once it serves HTTP.
pub async fn run(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: RunRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let (project, release) = with_project(daemon, token, req.project, |tx, p| {
        Ok((p.clone(), versions::newest_release(tx, p)?))
    })
    .await?;
    let step = |s: String| {
        let _ = progress.send(Progress::Step(s));
    };
    let info = daemon
        .supervisor
        .run(&project, &release, req.port, &step)
        .await?;
    Ok(Reply::Running(info))
}

/// Stops one of the caller's apps, or all of them.
pub async fn stop(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: StopRequest,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let ids = match (req.project, req.all) {
        (Some(reference), _) => {
            let project = find(daemon, token, reference).await?;
            daemon.supervisor.check_here(&project, true).await?;
            vec![project.id]
        }
        (None, true) => daemon.supervisor.owned(user.id),
        (None, false) => {
            return Err(ServiceError::InvalidInput(
                "name the project to stop, or pass --all".into(),
            ))
        }
    };
    let mut stopped = Vec::new();
    for id in ids {
        if let Some(info) = daemon.supervisor.stop(id).await? {
            stopped.push(info);
        }
    }
    Ok(Reply::Stopped(stopped))
}

/// Stops an app and starts it again.
pub async fn restart(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ProjectRef,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let project = find(daemon, token, req.project.clone()).await?;
    daemon.supervisor.check_here(&project, false).await?;
    let _ = progress.send(Progress::Step("stopping".into()));
    daemon.supervisor.stop(project.id).await?;
    let again = RunRequest {
        project: project.id.to_string(),
        port: None,
    };
    run(daemon, token, again, progress).await
}

/// The caller's supervised apps.
pub async fn ps(daemon: &Daemon, token: Option<&SessionToken>) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let mut apps = daemon.supervisor.ps(user.id);
    apps.extend(daemon.supervisor.elsewhere(user.id).await?);
    Ok(Reply::Processes(apps))
}

/// The caller's apps' CPU and memory over the last hour.
pub async fn usage(daemon: &Daemon, token: Option<&SessionToken>) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let running = daemon.supervisor.ps(user.id);
    Ok(Reply::Usage(daemon.usage.of(
        user.id,
        &running,
        crate::usage::unix_now(),
    )))
}

/// The last lines of an app's log and, with `follow`, new lines as they
/// come, across rotations, until the client leaves.
pub async fn logs(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: LogsRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let project = find(daemon, token, req.project).await?;
    let files = daemon.supervisor.log_files(project.id);
    if !files.path().exists() {
        // An app another host runs keeps its log on that host.
        if let Some(host) = daemon.supervisor.host_elsewhere(&project).await? {
            return Err(ServiceError::InvalidInput(format!(
                "`{}` runs on host `{host}`, which keeps its log; ask that host's daemon \
                 (appforge --socket PATH logs {})",
                project.name, project.name
            )));
        }
    }
    let lines = req.lines as usize;
    let (tail, follower) = tokio::task::spawn_blocking(move || {
        let tail = files.tail(lines)?;
        let follower = match req.follow {
            true => Some(files.follow()?),
            false => None,
        };
        Ok::<_, std::io::Error>((tail, follower))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
    .map_err(|e| ServiceError::Internal(format!("could not read the app's log: {e}")))?;
    if !tail.is_empty() {
        let text: String = tail.iter().map(|l| format!("{l}\n")).collect();
        send_log(progress, &text).await;
    }
    let Some(mut follower) = follower else {
        return Ok(Reply::LogsEnd);
    };
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let (back, new) = tokio::task::spawn_blocking(move || {
            let new = follower.read_new();
            (follower, new)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        follower = back;
        let new =
            new.map_err(|e| ServiceError::Internal(format!("could not read the app's log: {e}")))?;
        if !new.is_empty() && !send_log(progress, &String::from_utf8_lossy(&new)).await {
            // The client left.
            return Ok(Reply::LogsEnd);
        }
    }
}

/// Largest piece of log in one frame: any number of lines, however long,
/// crosses in frames well under the frame limit, and a client that stops
/// reading leaves at most the progress backlog of these queued.
const LOG_CHUNK: usize = 64 * 1024;

/// Sends log text in pieces of at most [`LOG_CHUNK`] bytes, cut at a line's
/// end where one is near; false once the client has left.
async fn send_log(progress: &ProgressTx, text: &str) -> bool {
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(LOG_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut < rest.len() {
            if let Some(newline) = rest[..cut].rfind('\n') {
                cut = newline + 1;
            }
        }
        let (piece, after) = rest.split_at(cut);
        if progress
            .send_all(Progress::Log(piece.to_string()))
            .await
            .is_err()
        {
            return false;
        }
        rest = after;
    }
    true
}

async fn find(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    reference: String,
) -> Result<Project, ServiceError> {
    with_project(daemon, token, reference, |_, p| Ok(p.clone())).await
}
