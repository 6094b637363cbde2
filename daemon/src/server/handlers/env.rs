//! `env`: an app's own settings.

use appforge_shared::protocol::{EnvRequest, Progress, Reply, SessionToken};

use super::{with_project, ProgressTx};
use crate::error::ServiceError;
use crate::services::settings::Settings;
use crate::state::Daemon;

/// Lists, sets or unsets a project's settings and answers with them.
pub async fn env(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: EnvRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let project = with_project(daemon, token, req.project, |_, p| Ok(p.clone())).await?;
    let step = |s: String| {
        let _ = progress.send(Progress::Step(s));
    };
    let settings = Settings {
        db: &daemon.db,
        keys: &daemon.keys,
        supervisor: &daemon.supervisor,
    };
    Ok(Reply::Env(
        settings.change(&project, req.change, &step).await?,
    ))
}
