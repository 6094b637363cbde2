//! The supervisor: runs each project's app as a child process and keeps it
//! alive, like pm2 or supervisord, across crashes, hangs and daemon restarts.
//!
//! Each app has one task ([`app::supervise`]) that owns its process and
//! drives its life cycle ([`lifecycle`]); one daemon-wide [`scheduler`] probes
//! them all. This module starts, stops and lists those tasks, each project
//! under a lock of its own, and on start-up re-adopts the apps a previous
//! daemon left running.

pub mod app;
mod changes;
mod gauges;
mod hosts;
pub mod lifecycle;
mod lineage;
pub mod order;
mod ports;
pub mod probe;
mod recovery;
mod reserve;
mod runs;
pub mod scheduler;
mod spawner;
mod views;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appforge_shared::protocol::ProcessInfo;
use tokio::sync::watch;

use self::app::{AppConfig, AppHandle, Launch, Origin, State, Status};
pub use self::changes::OwnerWatch;
use self::changes::Roster;
use self::gauges::Gauges;
use self::lifecycle::RunEnd;
use self::order::{AppRef, Content, Order, Orders, Replaces};
use self::scheduler::{ProbeTimings, Scheduler};
use self::views::Shown;
use crate::config::AppSettings;
use crate::confine::cgroup::Cgroups;
use crate::confine::pyenv::{self, EnvError, PythonEnv};
use crate::confine::Protections;
use crate::db::hosts::{ClaimState, Fence, HostLease};
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::process::logfile::LogFiles;

/// Why an app could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The port asked for is in use.
    #[error("port {0} is in use; choose another with --port, or leave it out")]
    PortTaken(u16),
    /// The port asked for is outside the daemon's range.
    #[error("port {port} is outside the range apps may use ({first}-{last})")]
    PortOutOfRange {
        /// The port asked for.
        port: u16,
        /// First usable port.
        first: u16,
        /// Last usable port.
        last: u16,
    },
    /// The app runs already, on another port than the one asked for.
    #[error("the app already runs on port {0}; use `appforge restart`, or stop it first")]
    RunsElsewhere(u16),
    /// Another host's daemon keeps the app running.
    #[error(
        "`{name}` is kept running by host `{host}`{gone}; it runs in one place at a time. \
         Stop it there first{hint}"
    )]
    OnAnotherHost {
        /// The project's name.
        name: String,
        /// The host it is wanted on.
        host: String,
        /// " (whose daemon is not running)" when that host's daemon is gone.
        gone: &'static str,
        /// How to release it from here when its daemon is gone.
        hint: String,
    },
    /// Every port of the range is in use.
    #[error("no free port in {0}-{1}; stop an app or widen --port-range")]
    NoPort(u16, u16),
    /// The Python environment could not be made.
    #[error("{0}")]
    Env(#[from] EnvError),
    /// The run folder could not be written.
    #[error("could not write the project's files: {0}")]
    Files(std::io::Error),
    /// No version of the app could be found to start it.
    #[error("could not find the version to run: {0}")]
    NoVersion(order::OrderError),
    /// The app's settings could not be read or its secrets opened.
    #[error("{0}")]
    Settings(order::OrderError),
    /// The app did not come up.
    #[error("the app did not start: {why}\n--- last lines of its log ---\n{log}\n---\n`appforge fix {name}` asks the model to repair it from this error")]
    NotUp {
        /// What happened.
        why: String,
        /// The end of its log.
        log: String,
        /// The project's name, for the hint.
        name: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// This daemon does not hold its host claim, so it acts on no app.
    #[error("{0}")]
    Fenced(String),
    /// The version's files do not tell what to run or install.
    #[error("{0}")]
    Shape(#[from] crate::process::shape::ShapeError),
}

/// One supervised app, as the supervisor holds it.
struct Handle {
    owner_id: i64,
    name: String,
    app: AppHandle,
    status: watch::Receiver<Status>,
    /// The project version it runs, and how that fared in its checks.
    version: Option<i64>,
    check_status: Option<String>,
    /// A newer version that it does not follow (one that failed its checks).
    newer: Option<i64>,
    /// What it runs, and how that was found.
    target: Option<String>,
    /// The files `ps` reads its process's figures from.
    gauges: Arc<Gauges>,
    /// The settings its code reads that were not set when it started.
    missing_settings: Vec<String>,
}

/// The daemon's supervisor.
pub struct Supervisor {
    db: Db,
    /// This daemon's host name, and whether other hosts' daemons run.
    hosts: Arc<HostLease>,
    /// Whether this daemon holds its host claim: it starts, restarts,
    /// adopts and stops apps only while it does.
    fence: Fence,
    settings: Arc<AppSettings>,
    /// The scheduler of health probes, started with the first app.
    scheduler: std::sync::OnceLock<Scheduler>,
    apps: Mutex<HashMap<i64, Handle>>,
    /// Bumped when `apps` gains or loses an app, or what `ps` shows of one
    /// besides its status changes, for [`OwnerWatch`].
    roster: Roster,
    /// One lock a project: its starts and stops are serialised, so it never
    /// runs twice, while another project's slow install goes on beside.
    projects: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Ports picked for apps whose task does not show them yet.
    reserved_ports: Arc<Mutex<HashSet<u16>>>,
    /// Held by recovery at start-up; every `run` and `stop` waits for it.
    recovery: tokio::sync::RwLock<()>,
    metrics: Arc<Metrics>,
    protections: Arc<Protections>,
    cgroups: Option<Arc<Cgroups>>,
    /// What is known of the chains of clients' parents.
    lineage: lineage::Lineage,
    /// Where the newest version of an app is found, to start it unasked.
    orders: Arc<dyn Orders>,
}

/// What `lock_project` holds: recovery is over, and the project is ours.
struct ProjectGuard<'a> {
    _project: tokio::sync::OwnedMutexGuard<()>,
    _recovered: tokio::sync::RwLockReadGuard<'a, ()>,
}

/// A small file the app may have written itself, read as the app could
/// read it: no symbolic link followed (it could point at any file the
/// daemon may read), a regular file (a FIFO would block the open, hence
/// `O_NONBLOCK`; a device could be endless), 64 KiB at most.
fn read_app_file(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Lines of the log shown when an app does not come up.
const TAIL_ON_FAILURE: usize = 20;

impl Supervisor {
    /// A supervisor with no apps yet.
    pub fn new(
        db: Db,
        hosts: Arc<HostLease>,
        settings: &AppSettings,
        metrics: Arc<Metrics>,
        protections: Protections,
        cgroups: Option<Arc<Cgroups>>,
        orders: Arc<dyn Orders>,
    ) -> Supervisor {
        Supervisor {
            db,
            fence: hosts.fence(),
            hosts,
            settings: Arc::new(settings.clone()),
            scheduler: std::sync::OnceLock::new(),
            apps: Mutex::new(HashMap::new()),
            roster: Roster::default(),
            projects: Mutex::new(HashMap::new()),
            reserved_ports: Arc::default(),
            recovery: tokio::sync::RwLock::new(()),
            metrics,
            protections: Arc::new(protections),
            cgroups,
            lineage: lineage::Lineage::default(),
            orders,
        }
    }

    /// The project's run folder.
    pub fn folder(&self, project_id: i64) -> PathBuf {
        self.settings
            .projects_dir
            .join(format!("project_{project_id}"))
    }

    /// The scheduler of health probes, started on first use.
    fn scheduler(&self) -> Scheduler {
        let timings = ProbeTimings {
            interval: self.settings.health_interval,
            timeout: self.settings.health_timeout,
        };
        self.scheduler
            .get_or_init(|| Scheduler::start(timings))
            .clone()
    }

    /// Refuses to act on apps without the host claim.
    fn check_claim(&self) -> Result<(), RunError> {
        match self.fence.state() {
            ClaimState::Held => Ok(()),
            fenced => Err(RunError::Fenced(fenced.describe(self.hosts.host()))),
        }
    }

    /// This daemon's host name, whether it holds its claim, and what that
    /// means, for `status`.
    pub fn host_claim(&self) -> (String, bool, String) {
        let (held, said) = self.hosts.shown();
        (self.hosts.host().to_string(), held, said)
    }

    /// What apps are confined with.
    pub fn protections(&self) -> &Protections {
        &self.protections
    }

    /// The project's log files.
    pub fn log_files(&self, project_id: i64) -> LogFiles {
        LogFiles::new(
            self.settings
                .projects_dir
                .join("logs")
                .join(format!("project_{project_id}.log")),
            self.settings.log_max_bytes,
            self.settings.log_files,
        )
    }

    /// Starts a project's app (or finds it running) and returns once it
    /// answers HTTP. `step` hears each stage.
    pub async fn run(
        &self,
        order: &Order,
        port: Option<u16>,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<ProcessInfo, RunError> {
        let app = &order.app;
        let guard = self.lock_project(app.project_id).await;
        let running = self.status_of(app.project_id).filter(|s| s.state.is_live());
        let status = match running {
            Some(now) if port.is_some_and(|p| p != now.port) => {
                return Err(RunError::RunsElsewhere(now.port))
            }
            Some(_) => self.watch(app.project_id).expect("a live app has a handle"),
            None => {
                let id = app.project_id;
                let was_wanted = self.claim(app).await?;
                match self.launch(order, port, Origin::Spawn, step).await {
                    Ok(status) => status,
                    Err(e) => {
                        if !was_wanted {
                            self.db.call(move |c| runs::set_wanted(c, id, None)).await?;
                        }
                        return Err(e);
                    }
                }
            }
        };
        drop(guard);
        self.wait_up(app, status, step).await
    }

    /// Records that the app is wanted running here; returns whether it was
    /// already. Refused when another host's daemon keeps it running.
    async fn claim(&self, app: &AppRef) -> Result<bool, RunError> {
        self.check_claim()?;
        let (id, host) = (app.project_id, self.settings.host.clone());
        let claimed = self
            .db
            .transaction(move |c| runs::claim(c, id, &host))
            .await?;
        match claimed {
            runs::Claim::Here { was_wanted } => Ok(was_wanted),
            runs::Claim::Elsewhere(other) => Err(self.elsewhere_error(&app.name, other).await),
        }
    }

    /// Waits until the app answers HTTP, gives up, or takes too long.
    async fn wait_up(
        &self,
        app: &AppRef,
        mut status: watch::Receiver<Status>,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<ProcessInfo, RunError> {
        step("waiting for it to answer HTTP".into());
        let limit = self.settings.start_timeout + Duration::from_secs(5);
        let outcome = tokio::time::timeout(
            limit,
            status.wait_for(|s| {
                !matches!(
                    s.state,
                    State::Starting | State::Unhealthy | State::Backoff | State::Restarting
                )
            }),
        )
        .await
        .map(|r| r.is_ok());
        let now = status.borrow().clone();
        match (outcome, now.state) {
            (Ok(true), State::Running) => Ok(self.info(app.project_id, &self.shown(app), &now)),
            (Ok(_), _) => Err(self.not_up(app, &now)),
            (Err(_), _) => Err(RunError::NotUp {
                why: format!(
                    "it did not answer within {} s; it is still being retried (`appforge ps`)",
                    limit.as_secs()
                ),
                log: self.tail(app.project_id),
                name: app.name.clone(),
            }),
        }
    }

    /// Waits for recovery and then for the project's own lock.
    async fn lock_project(&self, project_id: i64) -> ProjectGuard<'_> {
        let recovered = self.recovery.read().await;
        let lock = Arc::clone(
            self.projects
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(project_id)
                .or_default(),
        );
        ProjectGuard {
            _project: lock.lock_owned().await,
            _recovered: recovered,
        }
    }

    /// Writes the files, prepares the environment, picks the port and starts
    /// the app's task. Called with the project's lock held.
    async fn launch(
        &self,
        order: &Order,
        port: Option<u16>,
        origin: Origin,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<watch::Receiver<Status>, RunError> {
        // The port first: a refused one changes nothing on disk. It stays
        // reserved until the app's task shows it.
        let reservation = match (port, &origin) {
            (_, Origin::Adopt { .. }) => self.reserve(port.unwrap_or_default()),
            (Some(port), _) => self.check_port(port)?,
            (None, _) => {
                let id = order.app.project_id;
                let last = self.db.call(move |c| runs::last_port(c, id)).await?;
                self.pick_port(last)?
            }
        };
        let port = reservation.port;
        let project_id = order.app.project_id;
        let dir = self.folder(project_id);
        let log = self.log_files(project_id);
        let requirements = match origin {
            Origin::Spawn => {
                step("writing the project's files".into());
                self.write_folder(&dir, &log, &order.content).await?;
                order.requirements.clone()
            }
            // A running app keeps the files it was started with; its
            // restarts use them too, so the environment must match them.
            // One started from another data folder (by a daemon that had
            // this host name before) gets them here, for its restarts.
            Origin::Adopt { .. } => {
                if !dir.exists() {
                    self.write_folder(&dir, &log, &order.content).await?;
                }
                read_app_file(&dir.join("requirements.txt"))
                    .unwrap_or_else(|| order.requirements.clone())
            }
        };
        let env = self.environment(requirements, &log, step).await?;
        let launch = Launch {
            dir,
            env,
            health_path: order.health_path,
            target: order.target.clone(),
            version: Some(order.version),
            settings: order.settings.clone(),
        };
        let cfg = AppConfig {
            project_id,
            port,
            log,
            settings: Arc::clone(&self.settings),
            db: self.db.clone(),
            scheduler: self.scheduler(),
            fence: self.fence.clone(),
            metrics: Arc::clone(&self.metrics),
            protections: Arc::clone(&self.protections),
            cgroups: self.cgroups.clone(),
        };
        if matches!(origin, Origin::Spawn) {
            step(format!(
                "starting {} on port {port}",
                order.target.describe()
            ));
        }
        let (status_tx, status) = watch::channel(Status {
            state: State::Starting,
            pid: None,
            app_pid: None,
            port,
            restarts: 0,
            last_exit: None,
            failure: None,
        });
        let app = app::start(cfg, launch, origin, status_tx);
        let handle = Handle {
            owner_id: order.app.owner_id,
            name: order.app.name.clone(),
            app,
            status: status.clone(),
            version: Some(order.version),
            check_status: order.check_status.clone(),
            newer: None,
            target: Some(order.target.describe()),
            gauges: Arc::default(),
            missing_settings: order.missing_settings.clone(),
        };
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project_id, handle);
        self.roster.bump(order.app.owner_id);
        Ok(status)
    }

    /// Writes the version's files into the app's run folder.
    async fn write_folder(
        &self,
        dir: &std::path::Path,
        log: &LogFiles,
        content: &Arc<dyn Content>,
    ) -> Result<(), RunError> {
        let dir = dir.to_path_buf();
        let log_path = log.path().to_path_buf();
        let content = Arc::clone(content);
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = log_path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            content.write_into(&dir)
        })
        .await
        .map_err(|e| RunError::Files(std::io::Error::other(e)))?
        .map_err(RunError::Files)
    }

    async fn environment(
        &self,
        requirements: String,
        log: &LogFiles,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<PythonEnv, RunError> {
        let (_, ready) = pyenv::locate(&self.settings.env_dir, &requirements);
        step(match ready {
            true => "reusing the Python environment".into(),
            false => "installing requirements".into(),
        });
        let settings = Arc::clone(&self.settings);
        let protections = Arc::clone(&self.protections);
        let log = log.clone();
        let env = tokio::task::spawn_blocking(move || {
            let how = pyenv::Installing {
                protections: &protections,
                settings: &settings,
                log: &log,
            };
            pyenv::prepare(
                &settings.env_dir,
                &settings.python,
                settings.installer,
                &requirements,
                &how,
            )
        })
        .await
        .map_err(|e| RunError::Files(std::io::Error::other(e)))??;
        Ok(env)
    }

    /// Stops a project's app; returns what it was, if it was supervised.
    pub async fn stop(&self, project_id: i64) -> Result<Option<ProcessInfo>, RunError> {
        let _guard = self.lock_project(project_id).await;
        self.check_claim()?;
        self.db
            .call(move |c| {
                runs::set_wanted(c, project_id, None)?;
                runs::set_status(c, project_id, State::Stopped, None)
            })
            .await?;
        let stopped = self.end_task(project_id).await;
        if stopped.is_some() {
            tracing::info!(project_id, "stopped app");
        }
        Ok(stopped)
    }

    /// Ends the app's task and, with it, its process: the one way an app
    /// is stopped. Returns what it was, if it was supervised. Leaves what
    /// the store says of it to the caller.
    async fn end_task(&self, project_id: i64) -> Option<ProcessInfo> {
        let mut handle = self
            .apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&project_id)?;
        self.roster.bump(handle.owner_id);
        let before = handle.status.borrow().clone();
        if before.state.is_live() {
            handle.app.stop().await;
            let _ = handle.status.wait_for(|s| !s.state.is_live()).await;
        }
        let mut after = handle.status.borrow().clone();
        after.state = State::Stopped;
        after.pid = None;
        Some(self.info(project_id, &Shown::of(&handle), &after))
    }

    /// Stops the app and starts it on `order`, as one operation under the
    /// project's lock. The app stays wanted throughout, and its run is
    /// ended before its process is: a daemon that dies between the stop and
    /// the start adopts nothing and starts the app again, on the newest
    /// version. The environment is made first, while the old version still
    /// serves.
    pub async fn restart(
        &self,
        order: &Order,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<ProcessInfo, RunError> {
        let app = &order.app;
        let id = app.project_id;
        let guard = self.lock_project(id).await;
        self.claim(app).await?;
        self.environment(order.requirements.clone(), &self.log_files(id), step)
            .await?;
        let host = self.settings.host.clone();
        self.db
            .call(move |c| runs::finish_open(c, id, &host, RunEnd::Stopped))
            .await?;
        step("stopping".into());
        let old_port = self.end_task(id).await.and_then(|info| info.port);
        // Its own port, unless something took it meanwhile.
        let port = old_port.filter(|p| ports::is_free(*p));
        let status = self.launch(order, port, Origin::Spawn, step).await?;
        drop(guard);
        self.wait_up(app, status, step).await
    }

    /// Moves a project's app to a newly saved version, if the app is wanted
    /// running: it is restarted on the new files, on its port. Only a
    /// version that replaces the app's does so: one that failed its checks
    /// (`--keep-broken`) or skipped them (`--no-check`) is saved, and `ps`
    /// shows it as newer instead. Returns whether the app was restarted.
    pub async fn follow(
        &self,
        order: &Order,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<bool, RunError> {
        // A fenced daemon moves no app; the version is saved all the same.
        if !self.fence.is_held() {
            return Ok(false);
        }
        {
            let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            let Some(handle) = apps.get_mut(&order.app.project_id) else {
                return Ok(false);
            };
            // A live app follows, and so does one that gave up: its owner
            // still wants it running, and the new version may be its fix.
            let state = handle.status.borrow().state;
            if !(state.is_live() || state == State::Failed) {
                return Ok(false);
            }
            if let Replaces::No(why) = order.replaces {
                handle.newer = Some(order.version);
                self.roster.bump(handle.owner_id);
                step(format!(
                    "the app keeps running its version: version {} {why}, so it does not \
                     replace it; `appforge restart {}` runs it",
                    order.version, order.app.name
                ));
                return Ok(false);
            }
        }
        step(format!("restarting the app on version {}", order.version));
        self.restart(order, step).await?;
        Ok(true)
    }

    /// The app's last real failure, for `fix`: how its last process ended,
    /// and the last traceback in its log (a crash, or a request that
    /// failed with a 500). None when it has neither.
    pub async fn last_failure(&self, project_id: i64) -> Option<String> {
        let ended = self
            .status_of(project_id)
            .and_then(|s| s.failure.or(s.last_exit));
        let log = self.log_files(project_id);
        let lines = tokio::task::spawn_blocking(move || log.tail(300))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let traceback = lines
            .iter()
            .any(|l| l.starts_with("Traceback (most recent call last)"))
            .then(|| crate::process::excerpt::relevant_lines(&lines));
        match (ended, traceback) {
            (None, None) => None,
            (Some(ended), None) => Some(format!("The app's last process ended: {ended}")),
            (None, Some(traceback)) => Some(traceback),
            (Some(ended), Some(traceback)) => Some(format!(
                "The app's last process ended: {ended}\nIts log:\n{traceback}"
            )),
        }
    }

    /// Whether `pid` is a supervised app or a process started by one (or by
    /// this daemon): its chain of parents reaches an app or the daemon.
    /// Orphans of an app are reparented to its PID namespace's init or to
    /// the app's subreaper, both inside the chain, so they are found too.
    pub fn is_app_process(&self, pid: i32) -> bool {
        let roots: HashSet<i32> = {
            let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.values()
                .filter_map(|h| h.status.borrow().pid)
                .collect()
        };
        if self.cgroups.as_ref().is_some_and(|c| c.holds(pid)) {
            return true;
        }
        let daemon = std::process::id() as i32;
        self.lineage
            .descends(pid, |at| at == daemon || roots.contains(&at))
    }

    /// The last `n` lines of a project's log.
    pub fn tail_lines(&self, project_id: i64, n: usize) -> std::io::Result<Vec<String>> {
        self.log_files(project_id).tail(n)
    }

    /// The end of the app's log for an error message: its last lines, and
    /// of those its last 8 KiB (one line can be as long as the log).
    fn tail(&self, project_id: i64) -> String {
        const MAX: usize = 8 * 1024;
        let text = self
            .tail_lines(project_id, TAIL_ON_FAILURE)
            .map(|lines| lines.join("\n"))
            .unwrap_or_default();
        let mut start = text.len().saturating_sub(MAX);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    fn not_up(&self, app: &AppRef, status: &Status) -> RunError {
        let why = status
            .failure
            .clone()
            .or_else(|| status.last_exit.clone())
            .unwrap_or_else(|| format!("it is {}", status.state.as_str()));
        RunError::NotUp {
            why,
            log: self.tail(app.project_id),
            name: app.name.clone(),
        }
    }

    fn status_of(&self, project_id: i64) -> Option<Status> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(&project_id).map(|h| h.status.borrow().clone())
    }

    fn watch(&self, project_id: i64) -> Option<watch::Receiver<Status>> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(&project_id).map(|h| h.status.clone())
    }

    /// On daemon exit: stop every app when configured to; otherwise leave
    /// them running for the next daemon to adopt. Either way, the cgroups
    /// no app holds any more are removed, and the host claim is given up,
    /// so the next daemon need not wait for its lease.
    pub async fn shutdown(&self) {
        self.stop_all_on_exit().await;
        if let Some(cgroups) = &self.cgroups {
            let removed = cgroups.remove_unused();
            tracing::debug!(removed, "removed the cgroups no app holds");
        }
        self.hosts.release().await;
    }

    async fn stop_all_on_exit(&self) {
        if !self.settings.stop_on_exit {
            return;
        }
        // A fenced daemon stops nothing: its apps are another's, or will be
        // its own again.
        if let Err(fenced) = self.check_claim() {
            tracing::warn!(%fenced, "left the apps running");
            return;
        }
        let ids: Vec<i64> = {
            let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.keys().copied().collect()
        };
        for id in ids {
            // The owner still wants it: the next daemon starts it again.
            self.end_task(id).await;
        }
    }
}
