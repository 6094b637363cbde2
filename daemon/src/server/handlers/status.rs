//! `status`: what the daemon is and holds.

use std::sync::atomic::Ordering;

use appforge_shared::protocol::{HostClaim, Protection, Reply, StatusInfo};

use crate::error::ServiceError;
use crate::services::apps;
use crate::state::Daemon;

/// The daemon's counters as Prometheus text.
pub fn metrics_text(daemon: &Daemon) -> String {
    daemon.metrics.render(
        &apps::by_state(&daemon.supervisor),
        daemon.started.elapsed(),
    )
}

/// Reports the daemon's version, uptime, paths and counts.
pub async fn status(daemon: &Daemon) -> Result<Reply, ServiceError> {
    let counts = daemon
        .db
        .call(|c| {
            c.query_one(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM projects)",
                &[],
                |r| Ok((r.get::<i64>(0)? as u64, r.get::<i64>(1)? as u64)),
            )
        })
        .await;
    // A daemon cut off from its database still says what it is, and
    // whether it holds its host claim.
    let ((users, projects), database) = match counts {
        Ok(counts) => (counts, daemon.db.describe()),
        Err(e) => (
            (0, 0),
            format!("{} (unreachable: {e})", daemon.db.describe()),
        ),
    };
    let settings = &daemon.settings;
    let (name, held, detail) = apps::host_claim(&daemon.supervisor);
    Ok(Reply::Status(StatusInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: daemon.started.elapsed().as_secs(),
        socket: settings.socket.display().to_string(),
        data_dir: settings.data_dir.display().to_string(),
        database,
        users,
        projects,
        connections: daemon.connections.load(Ordering::Relaxed),
        web_url: daemon.web_url.get().cloned(),
        protections: apps::protections(&daemon.supervisor)
            .list(&settings.apps)
            .into_iter()
            .map(|(name, on)| Protection { name, on })
            .collect(),
        host: Some(HostClaim { name, held, detail }),
        web_off: daemon.web_off.get().cloned(),
    }))
}
