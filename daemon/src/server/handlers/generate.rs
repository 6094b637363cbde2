//! `generate`, `save` of an unsaved generation, `improve` and `fix`: a
//! model makes a version.

use appforge_shared::protocol::{
    FixRequest, GenerateRequest, ImproveRequest, Reply, SaveGenerationRequest, SessionToken,
};

use super::{maker, ProgressTx};
use crate::error::ServiceError;
use crate::state::Daemon;

/// Generates an app from a prompt, saving it as a project when asked.
pub async fn generate(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: GenerateRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let report = progress.reporter();
    let generated = maker(daemon).generate(user.id, req, &report).await?;
    Ok(Reply::Generated(generated))
}

/// Saves the files of an earlier generation as a new project.
pub async fn save(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: SaveGenerationRequest,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let generated = maker(daemon).save_generation(user.id, req).await?;
    Ok(Reply::Generated(generated))
}

/// Changes a project by a prompt and saves the result as a new version.
pub async fn improve(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ImproveRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let report = progress.reporter();
    let generated = maker(daemon).improve(user.id, req, &report).await?;
    Ok(Reply::Generated(generated))
}

/// Repairs a project from its app's last real failure and saves the result
/// as a new version.
pub async fn fix(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: FixRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    let report = progress.reporter();
    let generated = maker(daemon).fix(user.id, req, &report).await?;
    Ok(Reply::Generated(generated))
}
