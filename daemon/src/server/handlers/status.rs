//! `status`: what the daemon is and holds.

use std::sync::atomic::Ordering;

use appforge_shared::protocol::{Protection, Reply, StatusInfo};

use crate::error::ServiceError;
use crate::state::Daemon;

/// The daemon's counters as Prometheus text.
pub fn metrics_text(daemon: &Daemon) -> String {
    daemon
        .metrics
        .render(&daemon.supervisor.apps_by_state(), daemon.started.elapsed())
}

/// Reports the daemon's version, uptime, paths and counts.
pub async fn status(daemon: &Daemon) -> Result<Reply, ServiceError> {
    let (users, projects) = daemon
        .db
        .call(|c| {
            c.query_one(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM projects)",
                &[],
                |r| Ok((r.get::<i64>(0)? as u64, r.get::<i64>(1)? as u64)),
            )
        })
        .await?;
    let settings = &daemon.settings;
    Ok(Reply::Status(StatusInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: daemon.started.elapsed().as_secs(),
        socket: settings.socket.display().to_string(),
        data_dir: settings.data_dir.display().to_string(),
        database: daemon.db.describe(),
        users,
        projects,
        connections: daemon.connections.load(Ordering::Relaxed),
        web_url: daemon.web_url.get().cloned(),
        protections: daemon
            .supervisor
            .protections()
            .list(&settings.apps)
            .into_iter()
            .map(|(name, on)| Protection { name, on })
            .collect(),
    }))
}
