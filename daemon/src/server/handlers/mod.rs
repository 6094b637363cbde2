//! One handler per request, behind one `match`.

mod generate;
mod status;

use appforge_shared::protocol::{Envelope, Progress, Reply, Request, Welcome, PROTOCOL_VERSION};
use tokio::sync::mpsc;

use crate::error::ServiceError;
use crate::state::Daemon;

/// Where a handler sends progress frames for the client.
pub type ProgressTx = mpsc::UnboundedSender<Progress>;

/// Runs the handler for one request.
pub async fn dispatch(
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
    }
}
