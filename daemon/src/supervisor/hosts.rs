//! Apps that other hosts' daemons keep running, on a shared
//! (PostgreSQL) store: listed, and refused here.

use std::collections::HashMap;

use appforge_shared::protocol::ProcessInfo;

use super::order::AppRef;
use super::{runs, RunError, Supervisor};

impl Supervisor {
    /// The owner's apps that other hosts' daemons keep running, as `ps`
    /// shows them; those whose host's daemon is gone show `host-gone`. Only
    /// a shared (PostgreSQL) store has any.
    pub async fn elsewhere(&self, owner_id: i64) -> Result<Vec<ProcessInfo>, RunError> {
        if self.db.postgres().is_none() {
            return Ok(Vec::new());
        }
        let host = self.settings.host.clone();
        let remote = self
            .db
            .call(move |c| runs::elsewhere(c, owner_id, &host))
            .await?;
        let mut list = Vec::with_capacity(remote.len());
        // Each host asked once, however many of its apps are listed.
        let mut hosts: HashMap<String, bool> = HashMap::new();
        for app in remote {
            let alive = match hosts.get(&app.host) {
                Some(alive) => *alive,
                None => {
                    let alive = self.hosts.is_alive(&app.host).await;
                    hosts.insert(app.host.clone(), alive);
                    alive
                }
            };
            list.push(ProcessInfo {
                project_id: app.project_id,
                name: app.name,
                status: if alive {
                    app.status
                } else {
                    "host-gone".into()
                },
                pid: app.pid.and_then(|p| u32::try_from(p).ok()),
                port: app.port,
                // It answers on that host's loopback only.
                url: None,
                hint: (!alive).then(|| {
                    format!(
                        "host `{}`'s daemon is not running; start it there, or `appforge stop` \
                         releases the app",
                        app.host
                    )
                }),
                host: app.host,
                restarts: 0,
                uptime_s: None,
                cpu_percent: None,
                rss_bytes: None,
                last_exit: None,
                version: None,
                newer_version: None,
                check_status: None,
                missing_settings: Vec::new(),
                target: None,
            });
        }
        Ok(list)
    }

    /// The host whose daemon keeps the project's app running, when it is
    /// another than this one.
    pub async fn host_elsewhere(&self, project_id: i64) -> Result<Option<String>, RunError> {
        let (id, host) = (project_id, self.settings.host.clone());
        Ok(self
            .db
            .call(move |c| runs::wanted_elsewhere(c, id, &host))
            .await?)
    }

    /// Refuses to start or stop here an app another host's daemon keeps
    /// running; one whose daemon is gone may be released by `stop`.
    pub async fn check_here(&self, app: &AppRef, stopping: bool) -> Result<(), RunError> {
        let Some(other) = self.host_elsewhere(app.project_id).await? else {
            return Ok(());
        };
        let id = app.project_id;
        if stopping && !self.hosts.is_alive(&other).await {
            tracing::info!(project_id = id, host = %other, "released an app whose host's daemon is gone");
            return Ok(());
        }
        Err(self.elsewhere_error(&app.name, other).await)
    }

    /// The error for an app that `other`'s daemon keeps running.
    pub(super) async fn elsewhere_error(&self, name: &str, other: String) -> RunError {
        let alive = self.hosts.is_alive(&other).await;
        RunError::OnAnotherHost {
            name: name.to_string(),
            host: other,
            gone: if alive {
                ""
            } else {
                " (whose daemon is not running)"
            },
            hint: match alive {
                true => String::new(),
                false => format!(", or release it with `appforge stop {name}` and run it here"),
            },
        }
    }
}
