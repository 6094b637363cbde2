//! `dashboard`: a one-time link that signs a browser in to the dashboard.
//! The socket is the only door that hands one out, so the dashboard gives
//! no one more than the socket does.

use appforge_shared::protocol::{DashboardLink, Reply, SessionToken};

use crate::error::ServiceError;
use crate::state::Daemon;

/// The dashboard's path that takes a link's token (`/login?token=…`).
pub const LOGIN_PATH: &str = "/login";

/// A link for the caller's account, valid for a minute and one use.
pub async fn link(daemon: &Daemon, token: Option<&SessionToken>) -> Result<Reply, ServiceError> {
    let Some(base) = daemon.web_url.get() else {
        // Checked after the session so that no one learns more signed out.
        daemon.accounts.authenticate(token).await?;
        let why = daemon.web_off.get().map_or(
            "start appforged with --web-addr 127.0.0.1:PORT (or free the port named in its log)",
            String::as_str,
        );
        return Err(ServiceError::InvalidInput(format!(
            "this daemon serves no dashboard: {why}"
        )));
    };
    let (link, ttl) = daemon.accounts.dashboard_link(token).await?;
    Ok(Reply::DashboardLink(DashboardLink {
        url: format!("{}{}?token={link}", base.trim_end_matches('/'), LOGIN_PATH),
        expires_in_s: ttl.as_secs(),
    }))
}
