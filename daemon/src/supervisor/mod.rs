//! The supervisor: runs each project's app as a child process and keeps it
//! alive, like pm2 or supervisord, across crashes, hangs and daemon restarts.
//!
//! Each app has one task ([`app::supervise`]) that owns its process and
//! drives its life cycle ([`lifecycle`]); one daemon-wide [`scheduler`] probes
//! them all. This module starts, stops and lists those tasks, each project
//! under a lock of its own, and on start-up re-adopts the apps a previous
//! daemon left running.

pub mod app;
mod gauges;
pub mod lifecycle;
mod lineage;
mod ports;
pub mod probe;
mod runs;
pub mod scheduler;
mod spawner;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appforge_shared::protocol::{FileContent, ProcessInfo};
use futures_util::StreamExt;
use tokio::sync::watch;

use self::app::{AppConfig, AppHandle, Launch, Origin, State, Status};
use self::gauges::Gauges;
use self::lifecycle::RunEnd;
use self::scheduler::{ProbeTimings, Scheduler};
use crate::config::AppSettings;
use crate::confine::cgroup::Cgroups;
use crate::confine::pyenv::{self, EnvError, PythonEnv};
use crate::confine::Protections;
use crate::db::hosts::{ClaimState, Fence, HostLease};
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::process::logfile::LogFiles;
use crate::process::procfs;
use crate::projects::versions::Release;
use crate::projects::{self, export};

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
    /// The files `ps` reads its process's figures from.
    gauges: Arc<Gauges>,
}

/// What `ps` shows of an app besides its status.
struct Shown {
    name: String,
    version: Option<i64>,
    check_status: Option<String>,
    newer: Option<i64>,
}

impl Shown {
    fn of(handle: &Handle) -> Shown {
        Shown {
            name: handle.name.clone(),
            version: handle.version,
            check_status: handle.check_status.clone(),
            newer: handle.newer,
        }
    }
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
}

/// What `lock_project` holds: recovery is over, and the project is ours.
struct ProjectGuard<'a> {
    _project: tokio::sync::OwnedMutexGuard<()>,
    _recovered: tokio::sync::RwLockReadGuard<'a, ()>,
}

/// A port picked for an app, kept from others until its task shows it.
struct PortReservation {
    port: u16,
    reserved: Arc<Mutex<HashSet<u16>>>,
}

impl Drop for PortReservation {
    fn drop(&mut self) {
        self.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.port);
    }
}

/// A project's requirements; Flask alone when it has none.
/// A small file the app may have written itself, read as the app could
/// read it: no symbolic link followed (it could point at any file the
/// daemon may read), a regular file, 64 KiB at most.
fn read_app_file(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The system's uptime and clock rate, read once per `ps`.
struct Clock {
    uptime: Option<u64>,
    ticks: u64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            uptime: procfs::uptime_ticks().ok(),
            ticks: procfs::clock_ticks().max(1),
        }
    }
}

/// Runs recovered at once at start-up.
const RECOVERY_PARALLELISM: usize = 4;

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
    ) -> Result<Supervisor, reqwest::Error> {
        Ok(Supervisor {
            db,
            fence: hosts.fence(),
            hosts,
            settings: Arc::new(settings.clone()),
            scheduler: std::sync::OnceLock::new(),
            apps: Mutex::new(HashMap::new()),
            projects: Mutex::new(HashMap::new()),
            reserved_ports: Arc::default(),
            recovery: tokio::sync::RwLock::new(()),
            metrics,
            protections: Arc::new(protections),
            cgroups,
            lineage: lineage::Lineage::default(),
        })
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
        project: &projects::Project,
        release: &Release,
        port: Option<u16>,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<ProcessInfo, RunError> {
        let guard = self.lock_project(project.id).await;
        let running = self.status_of(project.id).filter(|s| s.state.is_live());
        let mut status = match running {
            Some(now) if port.is_some_and(|p| p != now.port) => {
                return Err(RunError::RunsElsewhere(now.port))
            }
            Some(_) => self.watch(project.id).expect("a live app has a handle"),
            None => {
                self.check_claim()?;
                let (id, host) = (project.id, self.settings.host.clone());
                let claimed = self
                    .db
                    .transaction(move |c| runs::claim(c, id, &host))
                    .await?;
                let was_wanted = match claimed {
                    Ok(was_wanted) => was_wanted,
                    Err(other) => return Err(self.elsewhere_error(project, other).await),
                };
                match self
                    .launch(project, release, port, Origin::Spawn, step)
                    .await
                {
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
        step("waiting for it to answer HTTP".into());
        let limit = self.settings.start_timeout + Duration::from_secs(5);
        let outcome = tokio::time::timeout(
            limit,
            status.wait_for(|s| {
                !matches!(s.state, State::Starting | State::Unhealthy | State::Backoff)
            }),
        )
        .await
        .map(|r| r.is_ok());
        let now = status.borrow().clone();
        match (outcome, now.state) {
            (Ok(true), State::Running) => Ok(self.info(project.id, &self.shown(project), &now)),
            (Ok(_), _) => Err(self.not_up(project, &now)),
            (Err(_), _) => Err(RunError::NotUp {
                why: format!(
                    "it did not answer within {} s; it is still being retried (`appforge ps`)",
                    limit.as_secs()
                ),
                log: self.tail(project.id),
                name: project.name.clone(),
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
        project: &projects::Project,
        release: &Release,
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
                let id = project.id;
                let last = self.db.call(move |c| runs::last_port(c, id)).await?;
                self.pick_port(last)?
            }
        };
        let port = reservation.port;
        let dir = self.folder(project.id);
        let log = self.log_files(project.id);
        let files = &release.files;
        let requirements = match origin {
            Origin::Spawn => {
                step("writing the project's files".into());
                self.write_folder(&dir, &log, files).await?;
                crate::process::requirements::of(files)
            }
            // A running app keeps the files it was started with; its
            // restarts use them too, so the environment must match them.
            // One started from another data folder (by a daemon that had
            // this host name before) gets them here, for its restarts.
            Origin::Adopt { .. } => {
                if !dir.exists() {
                    self.write_folder(&dir, &log, files).await?;
                }
                read_app_file(&dir.join("requirements.txt"))
                    .unwrap_or_else(|| crate::process::requirements::of(files))
            }
        };
        let env = self.environment(requirements, &log, step).await?;
        let launch = Launch {
            dir,
            env,
            version: Some(release.version),
        };
        let cfg = AppConfig {
            project_id: project.id,
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
            step(format!("starting on port {port}"));
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
            owner_id: project.owner_id,
            name: project.name.clone(),
            app,
            status: status.clone(),
            version: Some(release.version),
            check_status: release.check_status.clone(),
            newer: None,
            gauges: Arc::default(),
        };
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project.id, handle);
        Ok(status)
    }

    /// Writes the project's files and its Dockerfile into its run folder.
    async fn write_folder(
        &self,
        dir: &std::path::Path,
        log: &LogFiles,
        files: &[FileContent],
    ) -> Result<(), RunError> {
        let mut on_disk = files.to_vec();
        if !on_disk.iter().any(|f| f.path == "Dockerfile") {
            on_disk.push(FileContent::new("Dockerfile", export::dockerfile(files)));
        }
        let dir = dir.to_path_buf();
        let log_path = log.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = log_path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            projects::folder::write(&dir, &on_disk)
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

    /// Reserves the port asked for, if it is in the range and free.
    fn check_port(&self, port: u16) -> Result<PortReservation, RunError> {
        let (first, last) = self.settings.ports;
        if !(first..=last).contains(&port) {
            return Err(RunError::PortOutOfRange { port, first, last });
        }
        // The one global step, and a brief one: no await while it is held.
        let mut reserved = self
            .reserved_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.live_ports().contains(&port) || reserved.contains(&port) || !ports::is_free(port) {
            return Err(RunError::PortTaken(port));
        }
        reserved.insert(port);
        Ok(self.reservation(port))
    }

    /// Picks and reserves a free port, the project's last one when it can.
    fn pick_port(&self, last: Option<u16>) -> Result<PortReservation, RunError> {
        let (first, end) = self.settings.ports;
        let mut reserved = self
            .reserved_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut taken = self.live_ports();
        taken.extend(reserved.iter().copied());
        let port =
            ports::pick(self.settings.ports, last, &taken).ok_or(RunError::NoPort(first, end))?;
        reserved.insert(port);
        Ok(self.reservation(port))
    }

    /// Reserves a port already known to be the app's (an adopted one).
    fn reserve(&self, port: u16) -> PortReservation {
        self.reserved_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port);
        self.reservation(port)
    }

    fn reservation(&self, port: u16) -> PortReservation {
        PortReservation {
            port,
            reserved: Arc::clone(&self.reserved_ports),
        }
    }

    /// The ports of the apps that are up or coming up.
    fn live_ports(&self) -> HashSet<u16> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.values()
            .map(|h| h.status.borrow().clone())
            .filter(|s| s.state.is_live())
            .map(|s| s.port)
            .collect()
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
        let handle = self
            .apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&project_id);
        let Some(mut handle) = handle else {
            return Ok(None);
        };
        let before = handle.status.borrow().clone();
        if before.state.is_live() {
            handle.app.stop().await;
            let _ = handle.status.wait_for(|s| !s.state.is_live()).await;
        }
        let mut after = handle.status.borrow().clone();
        after.state = State::Stopped;
        after.pid = None;
        tracing::info!(project_id, "stopped app");
        Ok(Some(self.info(project_id, &Shown::of(&handle), &after)))
    }

    /// Moves a project's app to a newly saved version, if the app is wanted
    /// running: it is restarted on the new files, on its port. Only a
    /// version that passed its checks replaces the app's: one that failed
    /// them (`--keep-broken`) or skipped them (`--no-check`) is saved, and
    /// `ps` shows it as newer instead. Returns whether the app was restarted.
    pub async fn follow(
        &self,
        project: &projects::Project,
        release: &Release,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<bool, RunError> {
        // A fenced daemon moves no app; the version is saved all the same.
        if !self.fence.is_held() {
            return Ok(false);
        }
        let port = {
            let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            let Some(handle) = apps.get_mut(&project.id) else {
                return Ok(false);
            };
            // A live app follows, and so does one that gave up: its owner
            // still wants it running, and the new version may be its fix.
            let (wanted, port) = {
                let status = handle.status.borrow();
                (
                    status.state.is_live() || status.state == State::Failed,
                    status.port,
                )
            };
            if !wanted {
                return Ok(false);
            }
            if release.check_status.as_deref() != Some("passed") {
                handle.newer = Some(release.version);
                let why = match release.check_status.as_deref() {
                    Some("failed") => "failed its checks",
                    _ => "was saved without its checks",
                };
                step(format!(
                    "the app keeps running its version: version {} {why}, so it does not \
                     replace it; `appforge restart {}` runs it",
                    release.version, project.name
                ));
                return Ok(false);
            }
            port
        };
        step(format!("restarting the app on version {}", release.version));
        self.stop(project.id).await?;
        // Its own port, unless something took it meanwhile.
        let port = ports::is_free(port).then_some(port);
        self.run(project, release, port, step).await?;
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
            });
        }
        Ok(list)
    }

    /// The host whose daemon keeps the project's app running, when it is
    /// another than this one.
    pub async fn host_elsewhere(
        &self,
        project: &projects::Project,
    ) -> Result<Option<String>, RunError> {
        let (id, host) = (project.id, self.settings.host.clone());
        Ok(self
            .db
            .call(move |c| runs::wanted_elsewhere(c, id, &host))
            .await?)
    }

    /// Refuses to start or stop here an app another host's daemon keeps
    /// running; one whose daemon is gone may be released by `stop`.
    pub async fn check_here(
        &self,
        project: &projects::Project,
        stopping: bool,
    ) -> Result<(), RunError> {
        let Some(other) = self.host_elsewhere(project).await? else {
            return Ok(());
        };
        let id = project.id;
        if stopping && !self.hosts.is_alive(&other).await {
            tracing::info!(project_id = id, host = %other, "released an app whose host's daemon is gone");
            return Ok(());
        }
        Err(self.elsewhere_error(project, other).await)
    }

    /// The error for an app that `other`'s daemon keeps running.
    async fn elsewhere_error(&self, project: &projects::Project, other: String) -> RunError {
        let alive = self.hosts.is_alive(&other).await;
        RunError::OnAnotherHost {
            name: project.name.clone(),
            host: other,
            gone: if alive {
                ""
            } else {
                " (whose daemon is not running)"
            },
            hint: match alive {
                true => String::new(),
                false => format!(
                    ", or release it with `appforge stop {}` and run it here",
                    project.name
                ),
            },
        }
    }

    /// Every supervised app, with its owner's id, as `ps` shows them.
    pub fn ps_all(&self) -> Vec<(i64, ProcessInfo)> {
        self.listed(|_| true)
    }

    /// The apps whose owner is `wanted`, with the owner, by project id.
    fn listed(&self, wanted: impl Fn(i64) -> bool) -> Vec<(i64, ProcessInfo)> {
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

    fn not_up(&self, project: &projects::Project, status: &Status) -> RunError {
        let why = status
            .failure
            .clone()
            .or_else(|| status.last_exit.clone())
            .unwrap_or_else(|| format!("it is {}", status.state.as_str()));
        RunError::NotUp {
            why,
            log: self.tail(project.id),
            name: project.name.clone(),
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

    /// What `ps` says of one app, with its process's figures from /proc.
    fn info(&self, project_id: i64, shown: &Shown, status: &Status) -> ProcessInfo {
        // Files opened for this one reading: worth keeping open only for
        // `ps`, which reads them again and again.
        let gauges = Gauges::default();
        self.info_at(project_id, shown, status, &gauges, &Clock::now())
    }

    /// What `ps` shows of a project's app besides its status.
    fn shown(&self, project: &projects::Project) -> Shown {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(&project.id).map_or_else(
            || Shown {
                name: project.name.clone(),
                version: None,
                check_status: None,
                newer: None,
            },
            Shown::of,
        )
    }

    fn info_at(
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
        }
    }

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
            .filter_map(|run| {
                run.map_err(|e| tracing::error!(error = %e, "could not read a run; skipped it"))
                    .ok()
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
    async fn recover_run(&self, run: runs::OpenRun) -> Result<(), RunError> {
        self.check_claim()?;
        let same = procfs::is_same_process(run.pid, run.proc_start);
        let known = self.status_of(run.project_id).is_some();
        // A process started before apps had shims runs unconfined: it is
        // stopped and started again, confined.
        let confined = same && procfs::is_app_shim(run.pid);
        if same && confined && run.wanted_running && !known {
            let project = projects::Project {
                id: run.project_id,
                name: run.name.clone(),
                prompt: String::new(),
                owner_id: run.owner_id,
            };
            let origin = Origin::Adopt {
                pid: run.pid,
                start_ticks: run.proc_start,
                run_id: run.run_id,
            };
            let adopted = match self.newest_release(&project).await {
                Ok(release) => {
                    let launched = self
                        .launch(&project, &release, Some(run.port), origin, &|_| {})
                        .await;
                    // It runs the version it was started on, whatever is newer.
                    if let Some(version) = run.version.filter(|v| *v != release.version) {
                        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(handle) = apps.get_mut(&project.id) {
                            handle.version = Some(version);
                            handle.check_status = None;
                            handle.newer = Some(release.version);
                        }
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
    async fn restart_wanted(&self, w: runs::Wanted) -> Result<(), RunError> {
        self.check_claim()?;
        if self.status_of(w.project_id).is_some() {
            return Ok(());
        }
        let project = projects::Project {
            id: w.project_id,
            name: w.name.clone(),
            prompt: String::new(),
            owner_id: w.owner_id,
        };
        let release = self.newest_release(&project).await?;
        self.launch(&project, &release, None, Origin::Spawn, &|_| {})
            .await?;
        tracing::info!(project_id = w.project_id, "restarted app that was gone");
        Ok(())
    }

    /// Stops every app shim in this daemon's project folders that neither
    /// this daemon started nor a run row names: one a killed daemon started
    /// but never recorded.
    async fn stop_unrecorded_shims(&self, recorded: &HashSet<i32>) {
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

    async fn newest_release(&self, project: &projects::Project) -> Result<Release, RunError> {
        let project = project.clone();
        let release = self
            .db
            .call(move |c| Ok(projects::versions::newest_release(c, &project)))
            .await?;
        release.map_err(|e| RunError::Db(DbError::Task(e.to_string())))
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
            let handle = self
                .apps
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(mut handle) = handle {
                handle.app.stop().await;
                let _ = handle.status.wait_for(|s| !s.state.is_live()).await;
            }
        }
    }
}
