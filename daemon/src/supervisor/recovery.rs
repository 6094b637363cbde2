//! Start-up: the apps a previous daemon left are adopted, stopped or
//! started again.

use std::collections::HashSet;

use futures_util::StreamExt;

use super::app::{self, Origin};
use super::lifecycle::RunEnd;
use super::order::{AppRef, Order};
use super::{runs, RunError, Supervisor};
use crate::process::launch::Variables;
use crate::process::procfs;

/// Runs recovered at once at start-up.
pub(super) const RECOVERY_PARALLELISM: usize = 4;

impl Supervisor {
    /// Finds the apps a previous daemon left: re-adopts each one still
    /// running as the same process, stops those no longer wanted, starts
    /// again every wanted app whose process is gone, and stops any app's
    /// shim that no run row names (a daemon killed between starting an app
    /// and recording it). Each run is handled on its own, a few at a time:
    /// one that cannot be is logged and skipped.
    pub async fn recover(&self) -> Result<(), RunError> {
        let _recovering = self.recovery.write().await;
        if let Err(fenced) = self.check_claim() {
            tracing::warn!(%fenced, "left the apps of the previous daemon alone");
            return Ok(());
        }
        let host = self.settings.host.clone();
        let open = self.db.call(move |c| runs::open_runs(c, &host)).await?;
        let open: Vec<runs::OpenRun> = open
            .into_iter()
            .filter_map(|row| match row {
                runs::OpenRow::Run(run) => Some(run),
                runs::OpenRow::Unreadable { run_id, error } => {
                    tracing::error!(run_id, %error, "could not read a run; skipped it");
                    None
                }
            })
            .collect();
        let recorded: HashSet<i32> = open.iter().map(|r| r.pid).collect();
        futures_util::stream::iter(open)
            .for_each_concurrent(RECOVERY_PARALLELISM, |run| async move {
                let (project_id, run_id) = (run.project_id, run.run_id);
                if let Err(e) = self.recover_run(run).await {
                    tracing::error!(project_id, run_id, error = %e, "could not recover a run; skipped it");
                }
            })
            .await;
        let host = self.settings.host.clone();
        let wanted = self
            .db
            .call(move |c| runs::wanted_running(c, &host))
            .await?;
        futures_util::stream::iter(wanted)
            .for_each_concurrent(RECOVERY_PARALLELISM, |w| async move {
                let project_id = w.project_id;
                if let Err(e) = self.restart_wanted(w).await {
                    tracing::error!(project_id, error = %e, "could not start an app that should run; skipped it");
                }
            })
            .await;
        self.stop_unrecorded_shims(&recorded).await;
        Ok(())
    }

    /// Re-adopts, stops or closes one run a previous daemon left open.
    pub(super) async fn recover_run(&self, run: runs::OpenRun) -> Result<(), RunError> {
        self.check_claim()?;
        let same = procfs::is_same_process(run.pid, run.proc_start);
        let known = self.status_of(run.project_id).is_some();
        // A process started before apps had shims runs unconfined: it is
        // stopped and started again, confined.
        let confined = same && procfs::is_app_shim(run.pid);
        if same && confined && run.wanted_running && !known {
            let app = AppRef {
                project_id: run.project_id,
                name: run.name.clone(),
                owner_id: run.owner_id,
            };
            let origin = Origin::Adopt {
                pid: run.pid,
                start_ticks: run.proc_start,
                run_id: run.run_id,
            };
            let adopted = match self.newest(app).await {
                Ok(order) => {
                    let launched = self.launch(&order, Some(run.port), origin, &|_| {}).await;
                    // It runs the version it was started on, whatever is newer.
                    if let Some(version) = run.version.filter(|v| *v != order.version) {
                        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(handle) = apps.get_mut(&run.project_id) {
                            handle.version = Some(version);
                            handle.check_status = None;
                            handle.target = None;
                            handle.newer = Some(order.version);
                        }
                        drop(apps);
                        self.roster.bump(run.owner_id);
                    }
                    launched
                }
                Err(e) => Err(e),
            };
            match adopted {
                Ok(_) => {
                    // Its processes ran before it was known as an app.
                    self.lineage.forget();
                    tracing::info!(project_id = run.project_id, pid = run.pid, "re-adopted app");
                    return Ok(());
                }
                // Not left running unseen: it is stopped, and started again
                // as a wanted app.
                Err(e) => {
                    tracing::warn!(project_id = run.project_id, error = %e, "could not re-adopt app; starting it again")
                }
            }
        }
        if same {
            // Running but not wanted (or twice): no app runs unseen.
            app::terminate(run.pid, self.settings.stop_timeout).await;
        }
        let (run_id, end) = (
            run.run_id,
            if same { RunEnd::Stopped } else { RunEnd::Lost },
        );
        self.db
            .call(move |c| runs::finish(c, run_id, end, None, None))
            .await?;
        Ok(())
    }

    /// Starts again an app that should run but has no process.
    pub(super) async fn restart_wanted(&self, w: runs::Wanted) -> Result<(), RunError> {
        self.check_claim()?;
        if self.status_of(w.project_id).is_some() {
            return Ok(());
        }
        let app = AppRef {
            project_id: w.project_id,
            name: w.name.clone(),
            owner_id: w.owner_id,
        };
        let order = self.newest(app).await?;
        self.launch(&order, None, Origin::Spawn, &|_| {}).await?;
        tracing::info!(project_id = w.project_id, "restarted app that was gone");
        Ok(())
    }

    /// Stops every app shim in this daemon's project folders that neither
    /// this daemon started nor a run row names: one a killed daemon started
    /// but never recorded.
    pub(super) async fn stop_unrecorded_shims(&self, recorded: &HashSet<i32>) {
        let projects_dir = self.settings.projects_dir.clone();
        let found = tokio::task::spawn_blocking(move || procfs::app_shims_in(&projects_dir))
            .await
            .unwrap_or_default();
        let ours = std::process::id() as i32;
        let unrecorded = found.into_iter().filter(|pid| {
            !recorded.contains(pid) && procfs::read_stat(*pid).is_ok_and(|s| s.ppid != ours)
        });
        for pid in unrecorded {
            if self.check_claim().is_err() {
                return;
            }
            tracing::warn!(pid, "stopping an app that no run records");
            app::terminate(pid, self.settings.stop_timeout).await;
        }
    }

    /// The app's newest version, to start it unasked.
    pub(super) async fn newest(&self, app: AppRef) -> Result<Order, RunError> {
        self.orders.newest(app).await.map_err(RunError::NoVersion)
    }

    /// The app's own settings, secrets opened, for an order to run it.
    pub async fn settings(&self, app: &AppRef) -> Result<Variables, RunError> {
        self.orders
            .settings(app.clone())
            .await
            .map_err(RunError::Settings)
    }
}
