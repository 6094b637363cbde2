//! `run`, `stop`, `restart`, `ps` and `logs`: the supervised apps.

use std::time::Duration;

use appforge_shared::protocol::{
    LogLine, LogsRequest, Progress, ProjectRef, Reply, RunRequest, SessionToken, StopRequest,
};

use super::{with_project, ProgressTx};
use crate::error::ServiceError;
use crate::process::logfile::LogParser;
use crate::projects::{versions, Project};
use crate::services::apps::{self, Logs};
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
    let info = apps::run(&daemon.supervisor, &project, &release, req.port, &step).await?;
    Ok(Reply::Running(info))
}

/// Stops one of the caller's apps, or all of them.
pub async fn stop(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: StopRequest,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let stopped = match (req.project, req.all) {
        (Some(reference), _) => {
            let project = find(daemon, token, reference).await?;
            apps::stop(&daemon.supervisor, &project)
                .await?
                .into_iter()
                .collect()
        }
        (None, true) => apps::stop_all(&daemon.supervisor, user.id).await?,
        (None, false) => {
            return Err(ServiceError::InvalidInput(
                "name the project to stop, or pass --all".into(),
            ))
        }
    };
    Ok(Reply::Stopped(stopped))
}

/// Stops an app and starts it again on its newest version, as one
/// operation: it stays wanted throughout.
pub async fn restart(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ProjectRef,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let (project, release) = with_project(daemon, token, req.project, |tx, p| {
        Ok((p.clone(), versions::newest_release(tx, p)?))
    })
    .await?;
    let step = |s: String| {
        let _ = progress.send(Progress::Step(s));
    };
    let info = apps::restart(&daemon.supervisor, &project, &release, &step).await?;
    Ok(Reply::Running(info))
}

/// The caller's supervised apps.
pub async fn ps(daemon: &Daemon, token: Option<&SessionToken>) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    Ok(Reply::Processes(
        apps::ps(&daemon.supervisor, user.id).await?,
    ))
}

/// The caller's apps' CPU and memory over the last hour.
pub async fn usage(daemon: &Daemon, token: Option<&SessionToken>) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let running = apps::running(&daemon.supervisor, user.id);
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
    let files = match apps::logs(&daemon.supervisor, &project).await? {
        Logs::Here(files) => files,
        Logs::Elsewhere { host } => {
            return Err(ServiceError::InvalidInput(format!(
                "`{}` runs on host `{host}`, which keeps its log; ask that host's daemon \
                 (appforge --socket PATH logs {})",
                project.name, project.name
            )))
        }
    };
    let lines = req.lines as usize;
    let (tail, follower) = tokio::task::spawn_blocking(move || {
        let tail = files.tail_lines(lines)?;
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
        send_log(progress, tail).await;
    }
    let Some(mut follower) = follower else {
        return Ok(Reply::LogsEnd);
    };
    let mut parser = LogParser::default();
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
        let mut lines = Vec::new();
        parser.feed(&new, &mut lines);
        if !lines.is_empty() && !send_log(progress, lines).await {
            // The client left.
            return Ok(Reply::LogsEnd);
        }
    }
}

/// Largest piece of log in one frame: any number of lines, however long,
/// crosses in frames well under the frame limit, and a client that stops
/// reading leaves at most the progress backlog of these queued.
const LOG_CHUNK: usize = 64 * 1024;

/// Sends log lines in frames of at most about [`LOG_CHUNK`] bytes of text,
/// a longer line in pieces; false once the client has left.
async fn send_log(progress: &ProgressTx, lines: Vec<LogLine>) -> bool {
    for frame in frames(lines, LOG_CHUNK) {
        if progress.send_all(Progress::LogLines(frame)).await.is_err() {
            return false;
        }
    }
    true
}

/// `lines` in groups of at most about `max` bytes (text, and a few bytes a
/// line for its frame), a line longer than that cut into pieces at
/// character boundaries.
fn frames(lines: Vec<LogLine>, max: usize) -> Vec<Vec<LogLine>> {
    const PER_LINE: usize = 8;
    let mut frames = Vec::new();
    let mut frame = Vec::new();
    let mut size = 0;
    for line in lines {
        let mut rest = line.text.as_str();
        loop {
            let room = max.saturating_sub(size + PER_LINE);
            let full = size + PER_LINE > max;
            if !frame.is_empty() && (full || (rest.len() > room && room < max / 2)) {
                // Little room left: the line starts the next frame instead.
                frames.push(std::mem::take(&mut frame));
                size = 0;
                continue;
            }
            let mut cut = rest.len().min(room);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 && !rest.is_empty() {
                cut = rest.chars().next().map_or(0, char::len_utf8);
            }
            let (piece, after) = rest.split_at(cut);
            size += piece.len() + PER_LINE;
            frame.push(LogLine {
                source: line.source,
                text: piece.to_string(),
                ends: after.is_empty() && line.ends,
            });
            if after.is_empty() {
                break;
            }
            rest = after;
            frames.push(std::mem::take(&mut frame));
            size = 0;
        }
    }
    if !frame.is_empty() {
        frames.push(frame);
    }
    frames
}

async fn find(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    reference: String,
) -> Result<Project, ServiceError> {
    with_project(daemon, token, reference, |_, p| Ok(p.clone())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use appforge_shared::protocol::LogSource;

    fn line(text: &str) -> LogLine {
        LogLine {
            source: LogSource::App,
            text: text.into(),
            ends: true,
        }
    }

    #[test]
    fn frames_stay_small_and_long_lines_come_in_pieces() {
        let long = "é".repeat(100);
        let lines = vec![line("a"), line(&long), line(""), line("b")];
        let frames = frames(lines, 64);
        for frame in &frames {
            let size: usize = frame.iter().map(|l| l.text.len() + 8).sum();
            assert!(size <= 64, "{frame:?}");
        }
        let pieces: Vec<&LogLine> = frames.iter().flatten().collect();
        // Joined again, the pieces are the lines.
        let mut joined = Vec::new();
        let mut open = String::new();
        for piece in pieces {
            open.push_str(&piece.text);
            if piece.ends {
                joined.push(std::mem::take(&mut open));
            }
        }
        assert_eq!(
            joined,
            vec!["a".to_string(), long, String::new(), "b".into()]
        );
        assert!(frames.len() > 3, "{frames:?}");
    }

    #[test]
    fn many_empty_lines_still_make_bounded_frames() {
        let frames = frames(vec![line(""); 100_000], 64 * 1024);
        assert!(frames.len() >= 100_000 * 8 / (64 * 1024));
        assert!(frames.iter().all(|f| f.len() * 8 <= 64 * 1024));
    }
}
