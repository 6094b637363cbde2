//! What `ps` shows of the supervised apps: their status, and their
//! process's figures read from /proc or their cgroup.

use std::sync::Arc;

use appforge_shared::protocol::ProcessInfo;

use super::app::{State, Status};
use super::gauges::Gauges;
use super::order::AppRef;
use super::{Handle, Supervisor};
use crate::db::hosts::ClaimState;
use crate::process::procfs;

/// What `ps` shows of an app besides its status.
pub(super) struct Shown {
    name: String,
    version: Option<i64>,
    check_status: Option<String>,
    newer: Option<i64>,
    missing_settings: Vec<String>,
    target: Option<String>,
}

impl Shown {
    pub(super) fn of(handle: &Handle) -> Shown {
        Shown {
            name: handle.name.clone(),
            version: handle.version,
            check_status: handle.check_status.clone(),
            newer: handle.newer,
            missing_settings: handle.missing_settings.clone(),
            target: handle.target.clone(),
        }
    }
}

/// The system's uptime and clock rate, read once per `ps`.
pub(super) struct Clock {
    uptime: Option<u64>,
    ticks: u64,
}

impl Clock {
    pub(super) fn now() -> Clock {
        Clock {
            uptime: procfs::uptime_ticks().ok(),
            ticks: procfs::clock_ticks().max(1),
        }
    }
}

impl Supervisor {
    /// How many supervised apps are in each state.
    pub fn apps_by_state(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts = std::collections::BTreeMap::new();
        for handle in apps.values() {
            *counts
                .entry(handle.status.borrow().state.as_str())
                .or_insert(0) += 1;
        }
        counts
    }

    /// The ids of the owner's supervised apps.
    pub fn owned(&self, owner_id: i64) -> Vec<i64> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<i64> = apps
            .iter()
            .filter(|(_, h)| h.owner_id == owner_id)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The owner's supervised apps, as `ps` shows them.
    pub fn ps(&self, owner_id: i64) -> Vec<ProcessInfo> {
        self.listed(|owner| owner == owner_id)
            .into_iter()
            .map(|(_, info)| info)
            .collect()
    }

    /// Every supervised app, with its owner's id, as `ps` shows them.
    pub fn ps_all(&self) -> Vec<(i64, ProcessInfo)> {
        self.listed(|_| true)
    }

    /// The apps whose owner is `wanted`, with the owner, by project id.
    pub(super) fn listed(&self, wanted: impl Fn(i64) -> bool) -> Vec<(i64, ProcessInfo)> {
        let apps: Vec<(i64, i64, Shown, Status, Arc<Gauges>)> = {
            let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.iter()
                .filter(|(_, h)| wanted(h.owner_id))
                .map(|(id, h)| {
                    let status = h.status.borrow().clone();
                    (*id, h.owner_id, Shown::of(h), status, Arc::clone(&h.gauges))
                })
                .collect()
        };
        // One reading of the clock for all of them.
        let clock = Clock::now();
        let mut list: Vec<(i64, ProcessInfo)> = apps
            .iter()
            .map(|(id, owner, shown, status, gauges)| {
                (*owner, self.info_at(*id, shown, status, gauges, &clock))
            })
            .collect();
        list.sort_by_key(|(_, p)| p.project_id);
        list
    }

    /// What `ps` says of one app, with its process's figures from /proc.
    pub(super) fn info(&self, project_id: i64, shown: &Shown, status: &Status) -> ProcessInfo {
        // Files opened for this one reading: worth keeping open only for
        // `ps`, which reads them again and again.
        let gauges = Gauges::default();
        self.info_at(project_id, shown, status, &gauges, &Clock::now())
    }

    /// What `ps` shows of a project's app besides its status.
    pub(super) fn shown(&self, app: &AppRef) -> Shown {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(&app.project_id).map_or_else(
            || Shown {
                name: app.name.clone(),
                version: None,
                check_status: None,
                newer: None,
                missing_settings: Vec::new(),
                target: None,
            },
            Shown::of,
        )
    }

    pub(super) fn info_at(
        &self,
        project_id: i64,
        shown: &Shown,
        status: &Status,
        gauges: &Gauges,
        clock: &Clock,
    ) -> ProcessInfo {
        // The app's own process, not its shim.
        let reading = gauges.read(
            status.app_pid.or(status.pid),
            project_id,
            self.cgroups.as_deref(),
        );
        let (uptime, ticks) = (clock.uptime, clock.ticks);
        let (uptime_s, cpu_percent) = match (reading.start_ticks, reading.cpu, uptime) {
            (Some(start), Some(busy), Some(now)) => (
                Some(now.saturating_sub(start) / ticks),
                Some(procfs::cpu_percent(busy, start, now, ticks)),
            ),
            _ => (None, None),
        };
        let hint = match self.fence.state() {
            ClaimState::Held => (status.state == State::Failed).then(|| {
                format!(
                    "`appforge fix {}` asks the model to repair it from its last error",
                    shown.name
                )
            }),
            fenced => Some(fenced.describe(self.hosts.host())),
        };
        ProcessInfo {
            project_id,
            name: shown.name.clone(),
            version: shown.version,
            newer_version: shown.newer,
            check_status: shown.check_status.clone(),
            hint,
            status: status.state.as_str().to_string(),
            pid: status.pid.map(|p| p as u32),
            port: Some(status.port),
            url: Some(format!("http://127.0.0.1:{}/", status.port)),
            restarts: status.restarts,
            uptime_s,
            cpu_percent,
            rss_bytes: reading.memory,
            last_exit: status.last_exit.clone().or(status.failure.clone()),
            host: self.settings.host.clone(),
            missing_settings: shown.missing_settings.clone(),
            target: shown.target.clone(),
        }
    }
}
