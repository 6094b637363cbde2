//! One handler per request, behind one `match`.

mod apps;
pub mod dashboard;
mod env;
mod generate;
mod projects;
mod status;
mod versions;

pub use status::metrics_text;

use appforge_shared::protocol::{
    EnvChange, EnvRequest, Envelope, Progress, Reply, Request, SessionToken, Welcome,
    PROTOCOL_VERSION,
};
use tokio::sync::mpsc;

use crate::db::Conn;
use crate::error::ServiceError;
use crate::projects::{Project, ProjectError};
use crate::services::versions::Maker;
use crate::state::Daemon;

/// Progress frames waiting for a slow client, at most.
pub const PROGRESS_BACKLOG: usize = 256;

/// Where a handler sends progress frames for the client: a bounded queue,
/// so a client that stops reading cannot make the daemon hold its output.
#[derive(Debug, Clone)]
pub struct ProgressTx(mpsc::Sender<Progress>);

/// The client has gone.
#[derive(Debug)]
pub struct ClientGone;

impl ProgressTx {
    /// A queue and its receiving end.
    pub fn channel() -> (ProgressTx, mpsc::Receiver<Progress>) {
        let (tx, rx) = mpsc::channel(PROGRESS_BACKLOG);
        (ProgressTx(tx), rx)
    }

    /// Sends a step or a piece of streamed text without waiting: when the
    /// client is this far behind, the frame is dropped (the final reply
    /// carries the result all the same).
    pub fn send(&self, progress: Progress) -> Result<(), ClientGone> {
        match self.0.try_send(progress) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ClientGone),
        }
    }

    /// `send` as a workflow reports progress; a client that has gone is
    /// noticed by the connection, which cancels the request.
    pub fn reporter(&self) -> impl Fn(Progress) + Send + Sync + '_ {
        move |progress| {
            let _ = self.send(progress);
        }
    }

    /// Sends a frame that must arrive (log text), waiting for room.
    pub async fn send_all(&self, progress: Progress) -> Result<(), ClientGone> {
        self.0.send(progress).await.map_err(|_| ClientGone)
    }
}

/// Runs the handler for one request.
pub async fn dispatch(
    daemon: &Daemon,
    envelope: Envelope,
    progress: ProgressTx,
) -> Result<Reply, ServiceError> {
    let kind = envelope.request.kind();
    let changes_projects = matches!(
        envelope.request,
        Request::Generate(_)
            | Request::SaveGeneration(_)
            | Request::Improve(_)
            | Request::Fix(_)
            | Request::EditProject(_)
            | Request::Rollback(_)
            | Request::DeleteProject(_)
            | Request::Import(_)
            | Request::Env(EnvRequest {
                change: EnvChange::Set { .. } | EnvChange::Unset { .. },
                ..
            })
    );
    let token = changes_projects.then(|| envelope.token.clone()).flatten();
    let result = handle(daemon, envelope, progress).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    };
    daemon.metrics.request(kind, outcome);
    if changes_projects && result.is_ok() {
        tell_project_news(daemon, token.as_ref()).await;
    }
    result
}

/// Tells the owner's open dashboard pages that their projects changed,
/// whichever door the change came through.
async fn tell_project_news(daemon: &Daemon, token: Option<&SessionToken>) {
    match daemon.accounts.authenticate(token).await {
        Ok(user) => daemon.project_news.changed(user.id),
        // The request just succeeded with this session; it may have ended
        // since (an expiry): its pages hear it from their own check.
        Err(e) => tracing::debug!(error = %e, "no project news: the session ended"),
    }
}

async fn handle(
    daemon: &Daemon,
    envelope: Envelope,
    progress: ProgressTx,
) -> Result<Reply, ServiceError> {
    let token = envelope.token.as_ref();
    let accounts = &daemon.accounts;
    match envelope.request {
        Request::Ping => Ok(Reply::Pong(Welcome {
            protocol: PROTOCOL_VERSION,
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
        })),
        Request::Status => status::status(daemon).await,
        Request::Signup(creds) => Ok(Reply::Session(accounts.signup(creds).await?)),
        Request::Login(creds) => Ok(Reply::Session(accounts.login(creds).await?)),
        Request::Logout => {
            accounts.logout(token).await?;
            Ok(Reply::LoggedOut)
        }
        Request::Whoami => Ok(Reply::User(accounts.whoami(token).await?)),
        Request::Generate(req) => generate::generate(daemon, token, req, &progress).await,
        Request::SaveGeneration(req) => generate::save(daemon, token, req).await,
        Request::Improve(req) => generate::improve(daemon, token, req, &progress).await,
        Request::Fix(req) => generate::fix(daemon, token, req, &progress).await,
        Request::ListProjects => projects::list(daemon, token).await,
        Request::ShowProject(req) => projects::show(daemon, token, req).await,
        Request::DeleteProject(req) => projects::delete(daemon, token, req).await,
        Request::Export(req) => projects::export(daemon, token, req).await,
        Request::EditProject(req) => versions::edit(daemon, token, req, &progress).await,
        Request::History(req) => versions::history(daemon, token, req).await,
        Request::Diff(req) => versions::diff(daemon, token, req).await,
        Request::Rollback(req) => versions::rollback(daemon, token, req, &progress).await,
        Request::Run(req) => apps::run(daemon, token, req, &progress).await,
        Request::Stop(req) => apps::stop(daemon, token, req).await,
        Request::Restart(req) => apps::restart(daemon, token, req, &progress).await,
        Request::Ps => apps::ps(daemon, token).await,
        Request::Logs(req) => apps::logs(daemon, token, req, &progress).await,
        Request::Metrics => Ok(Reply::Metrics(status::metrics_text(daemon))),
        Request::Usage => apps::usage(daemon, token).await,
        Request::DashboardLink => dashboard::link(daemon, token).await,
        Request::Env(req) => env::env(daemon, token, req, &progress).await,
        Request::Import(req) => versions::import(daemon, token, req, &progress).await,
    }
}

/// The version-making workflow, on the daemon's store, models, checks and
/// apps.
fn maker(daemon: &Daemon) -> Maker<'_> {
    Maker {
        db: &daemon.db,
        providers: &daemon.providers,
        checker: &daemon.checker,
        apps: &daemon.supervisor,
        metrics: &daemon.metrics,
        python: &daemon.settings.ai.python,
        repair_rounds: daemon.settings.ai.repair_rounds,
    }
}

/// Runs `f` in one transaction on the caller's project, named by id or name.
/// Another user's project is not found, exactly like a missing one. The
/// transaction commits only when `f` succeeds.
async fn with_project<T, F>(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    reference: String,
    f: F,
) -> Result<T, ServiceError>
where
    T: Send + 'static,
    F: FnOnce(&Conn<'_>, &Project) -> Result<T, ProjectError> + Send + 'static,
{
    let user = daemon.accounts.authenticate(token).await?;
    let result = daemon
        .db
        .transaction(move |tx| {
            let project = crate::projects::resolve(tx, user.id, &reference)?;
            f(tx, &project)
        })
        .await?;
    Ok(result)
}
