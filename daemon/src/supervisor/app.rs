//! One supervised app: a task that starts (or adopts) its process, waits
//! for it to answer HTTP, probes it, notices its exit through a pidfd the
//! moment it happens, and restarts it by the policy until it is stopped or
//! gives up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};

use super::logfile::LogFiles;
use super::policy::{Decision, RestartPolicy, RestartTracker};
use super::procfs::{self, ExitInfo, PidFd};
use super::pyenv::PythonEnv;
use super::runs;
use crate::config::AppSettings;
use crate::confine::cgroup::{CgroupLimits, Cgroups};
use crate::confine::shim::{self, ShimSpec};
use crate::confine::{Protections, Sandbox};
use crate::db::Db;
use crate::metrics::Metrics;

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its process runs but does not answer HTTP yet.
    Starting,
    /// It answers HTTP.
    Running,
    /// It ended unexpectedly and waits to be restarted.
    Backoff,
    /// It was stopped.
    Stopped,
    /// It crashed too often, or could not be started; it stays down.
    Failed,
}

impl State {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    /// Whether the app is meant to be up (the task still watches it).
    pub fn is_live(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Backoff)
    }
}

/// What `ps` and the handlers see of an app.
#[derive(Debug, Clone)]
pub struct Status {
    /// Where it is.
    pub state: State,
    /// Its process, while it has one.
    pub pid: Option<i32>,
    /// Its port.
    pub port: u16,
    /// Restarts since it was started by hand.
    pub restarts: u32,
    /// How the last process ended.
    pub last_exit: Option<String>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// Asks the app's task to stop its process; answered once no process is left.
pub struct StopCommand(pub oneshot::Sender<()>);

/// Everything the task needs to run one app.
pub struct AppConfig {
    /// The project.
    pub project_id: i64,
    /// Its run folder.
    pub dir: PathBuf,
    /// Its Python environment.
    pub env: PythonEnv,
    /// Its port.
    pub port: u16,
    /// Its log files.
    pub log: LogFiles,
    /// Timings and limits.
    pub settings: Arc<AppSettings>,
    /// The database.
    pub db: Db,
    /// The HTTP client for probes.
    pub http: reqwest::Client,
    /// Counters of starts and restarts.
    pub metrics: Arc<Metrics>,
    /// What the kernel lets the shim do to confine the app.
    pub protections: Arc<Protections>,
    /// The apps' cgroups, when the daemon has them.
    pub cgroups: Option<Arc<Cgroups>>,
}

/// How the task begins.
pub enum Origin {
    /// Start a new process.
    Spawn,
    /// Watch a process a previous daemon started.
    Adopt {
        /// Its pid.
        pid: i32,
        /// Its start time, against PID reuse.
        start_ticks: u64,
        /// Its `project_runs` row.
        run_id: i64,
    },
}

/// A live process of the app.
struct Proc {
    pidfd: PidFd,
    run_id: i64,
    /// Whether this daemon started it (and so must reap it).
    ours: bool,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.pidfd.pid()
    }
}

/// How a process's run ended.
enum Ended {
    /// It exited by itself.
    Exited(Option<ExitInfo>),
    /// It stopped answering (or never answered) and was killed.
    Unhealthy(String),
    /// It was stopped on request.
    Stopped(oneshot::Sender<()>),
}

/// Runs the app until it is stopped or gives up; `status` tells the world.
pub async fn supervise(
    cfg: AppConfig,
    origin: Origin,
    mut commands: mpsc::UnboundedReceiver<StopCommand>,
    status: watch::Sender<Status>,
) {
    let mut tracker = RestartTracker::new(RestartPolicy::default());
    let mut origin = Some(origin);
    loop {
        let started = match origin.take().unwrap_or(Origin::Spawn) {
            Origin::Spawn => spawn(&cfg).await,
            Origin::Adopt {
                pid,
                start_ticks,
                run_id,
            } => adopt(pid, start_ticks, run_id),
        };
        let proc = match started {
            Ok(proc) => proc,
            Err(why) => {
                let _ = cfg
                    .log
                    .note(&format!("[appforge] could not start the app: {why}"));
                set(&cfg, &status, |s| {
                    s.state = State::Failed;
                    s.pid = None;
                    s.failure = Some(format!("could not start the app: {why}"));
                })
                .await;
                return;
            }
        };
        set(&cfg, &status, |s| {
            s.state = State::Starting;
            s.pid = Some(proc.pid());
        })
        .await;
        let ended = watch_process(&cfg, &proc, &mut commands, &status, &mut tracker).await;
        let (run_status, exit_code, signal, described) = match &ended {
            Ended::Exited(info) => {
                let described = describe(info.as_ref());
                let (code, sig) = match info {
                    Some(ExitInfo::Code(c)) => (Some(*c), None),
                    Some(ExitInfo::Signal(s)) => (None, Some(*s)),
                    None => (None, None),
                };
                ("exited", code, sig, described)
            }
            Ended::Unhealthy(why) => ("unhealthy", None, Some(Signal::SIGKILL as i32), why.clone()),
            Ended::Stopped(_) => ("stopped", None, None, "stopped".to_string()),
        };
        // Whatever the app left in its group or cgroup goes with it.
        let _ = killpg(Pid::from_raw(proc.pid()), Signal::SIGKILL);
        if let Some(cgroups) = &cfg.cgroups {
            cgroups.kill(cfg.project_id);
        }
        let run_id = proc.run_id;
        let _ = cfg
            .db
            .call(move |c| runs::finish(c, run_id, run_status, exit_code, signal))
            .await;
        let _ = cfg
            .log
            .note(&format!("[appforge] pid {} {described}", proc.pid()));
        if let Ended::Stopped(done) = ended {
            release_cgroup(&cfg).await;
            set(&cfg, &status, |s| {
                s.state = State::Stopped;
                s.pid = None;
            })
            .await;
            let _ = done.send(());
            return;
        }
        match tracker.failed(Instant::now()) {
            Decision::GiveUp => {
                let why = format!(
                    "it ended {} times within a minute; the last time: {described}",
                    tracker.restarts() + 1
                );
                let _ = cfg.log.note(&format!("[appforge] giving up: {why}"));
                release_cgroup(&cfg).await;
                set(&cfg, &status, |s| {
                    s.state = State::Failed;
                    s.pid = None;
                    s.last_exit = Some(described.clone());
                    s.failure = Some(why.clone());
                })
                .await;
                tracing::warn!(project_id = cfg.project_id, %why, "app failed");
                return;
            }
            Decision::Restart { after } => {
                cfg.metrics.app_restarted();
                tracing::info!(
                    project_id = cfg.project_id,
                    ended = %described,
                    after_ms = after.as_millis() as u64,
                    "restarting app"
                );
                set(&cfg, &status, |s| {
                    s.state = State::Backoff;
                    s.pid = None;
                    s.restarts = tracker.restarts();
                    s.last_exit = Some(described.clone());
                })
                .await;
                tokio::select! {
                    () = tokio::time::sleep(after) => {}
                    Some(StopCommand(done)) = commands.recv() => {
                        set(&cfg, &status, |s| s.state = State::Stopped).await;
                        let _ = done.send(());
                        return;
                    }
                }
            }
        }
    }
}

/// Watches one process: until it answers, then its health, its exit and
/// its log size, until it ends or is stopped.
async fn watch_process(
    cfg: &AppConfig,
    proc: &Proc,
    commands: &mut mpsc::UnboundedReceiver<StopCommand>,
    status: &watch::Sender<Status>,
    tracker: &mut RestartTracker,
) -> Ended {
    let url = probe_url(cfg);
    let settings = &cfg.settings;
    // Until it answers: probe often (a refused connection costs next to
    // nothing), so `run` returns as soon as the app serves.
    let deadline = tokio::time::sleep(settings.start_timeout);
    tokio::pin!(deadline);
    let mut pause = Duration::from_millis(5);
    loop {
        tokio::select! {
            biased;
            exit = proc.pidfd.exited() => return Ended::Exited(reap(proc, exit)),
            Some(StopCommand(done)) = commands.recv() => {
                stop_process(proc, settings.stop_timeout).await;
                return Ended::Stopped(done);
            }
            () = &mut deadline => {
                kill_group(proc).await;
                return Ended::Unhealthy(format!(
                    "did not answer HTTP within {} s and was killed",
                    settings.start_timeout.as_secs_f64()
                ));
            }
            answered = probe(&cfg.http, &url, settings.health_timeout) => {
                if answered {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
    tracker.healthy(Instant::now());
    let _ = cfg.log.note(&format!(
        "[appforge] pid {} answers on http://127.0.0.1:{}/",
        proc.pid(),
        cfg.port
    ));
    set(cfg, status, |s| s.state = State::Running).await;
    let mut health = tokio::time::interval(settings.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    health.reset();
    let mut failures = 0;
    loop {
        tokio::select! {
            biased;
            exit = proc.pidfd.exited() => return Ended::Exited(reap(proc, exit)),
            Some(StopCommand(done)) = commands.recv() => {
                stop_process(proc, settings.stop_timeout).await;
                return Ended::Stopped(done);
            }
            _ = health.tick() => {
                if probe(&cfg.http, &url, settings.health_timeout).await {
                    failures = 0;
                    continue;
                }
                failures += 1;
                tracing::info!(project_id = cfg.project_id, failures, "app did not answer a health probe");
                if failures >= settings.health_failures {
                    kill_group(proc).await;
                    return Ended::Unhealthy(format!(
                        "stopped answering HTTP ({failures} probes failed) and was killed"
                    ));
                }
            }
        }
    }
}

/// Starts the app under its shim (see `confine::shim`): its own session,
/// its folder, a clean environment, its confinement and limits, and its
/// output through the shim into its capped log.
async fn spawn(cfg: &AppConfig) -> Result<Proc, String> {
    let tmp = cfg
        .settings
        .projects_dir
        .join("tmp")
        .join(format!("project_{}", cfg.project_id));
    fresh_private_dir(&tmp).map_err(|e| format!("cannot make {}: {e}", tmp.display()))?;
    let settings = &cfg.settings;
    let cgroup = match &cfg.cgroups {
        Some(cgroups) => Some(
            cgroups
                .create(
                    cfg.project_id,
                    CgroupLimits {
                        memory: settings.max_memory,
                        cpu_percent: settings.max_cpu_percent,
                        pids: settings.max_processes,
                    },
                )
                .map_err(|e| format!("cannot make the app's cgroup: {e}"))?,
        ),
        None => None,
    };
    let spec = ShimSpec {
        program: cfg.env.python(),
        args: run_args(cfg.port),
        dir: cfg.dir.clone(),
        env: child_env(cfg, &tmp),
        log: cfg.log.path().to_path_buf(),
        log_max_bytes: cfg.log.max_bytes(),
        log_files: cfg.log.files(),
        sandbox: Sandbox::for_app(
            &cfg.protections,
            settings,
            &cfg.dir,
            &tmp,
            &cfg.env.root,
            cgroup,
            cfg.port,
        ),
    };
    tracing::debug!(project_id = cfg.project_id, sandbox = ?spec.sandbox, "starting app");
    // What the shim itself says goes to the app's log too.
    let shim_errors = cfg
        .log
        .open_for_child()
        .map_err(|e| format!("cannot open its log: {e}"))?;
    let child = shim::start(&spec, shim_errors.into())
        .map_err(|e| format!("cannot start the app's shim: {e}"))?;
    let pid = child.id() as i32;
    // The pidfd, not the std handle, watches the child; dropping the handle
    // neither waits nor kills.
    drop(child);
    // Until it is recorded, a failure must not leave the app running unseen.
    let abandon = |why: String| {
        kill_tree(pid);
        procfs::reap(pid);
        why
    };
    let pidfd = PidFd::open(pid).map_err(|e| abandon(format!("cannot watch pid {pid}: {e}")))?;
    let start = procfs::read_stat(pid)
        .map(|s| s.start_ticks)
        .map_err(|e| abandon(format!("cannot read pid {pid}: {e}")))?;
    let (project_id, port) = (cfg.project_id, cfg.port);
    let run_id = cfg
        .db
        .call(move |c| {
            let id = runs::insert(c, project_id, pid, port, start)?;
            runs::set_status(c, project_id, "starting", Some(port))?;
            Ok(id)
        })
        .await
        .map_err(|e| abandon(e.to_string()))?;
    let _ = cfg
        .log
        .note(&format!("[appforge] started pid {pid} on port {port}"));
    cfg.metrics.app_started();
    tracing::info!(project_id, pid, port, "started app");
    Ok(Proc {
        pidfd,
        run_id,
        ours: true,
    })
}

fn adopt(pid: i32, start_ticks: u64, run_id: i64) -> Result<Proc, String> {
    // Open first, then check the start time: no gap for the pid to be reused.
    let pidfd = PidFd::open_checked(pid, start_ticks)
        .map_err(|e| format!("cannot watch pid {pid}: {e}"))?;
    Ok(Proc {
        pidfd,
        run_id,
        ours: false,
    })
}

/// The command line that runs an app in its folder.
fn run_args(port: u16) -> Vec<String> {
    [
        "-m",
        "flask",
        "--app",
        "app",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
    ]
    .into_iter()
    .map(String::from)
    .chain([port.to_string()])
    .collect()
}

/// Empties (or makes) a folder only its owner may use.
fn fresh_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The app's whole environment: nothing of the daemon's leaks in. Home and
/// temporary files are its private temporary folder, the one place outside
/// its own folder where it may write.
fn child_env(cfg: &AppConfig, tmp: &std::path::Path) -> Vec<(String, String)> {
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", cfg.env.bin().display());
    let tmp = tmp.display().to_string();
    vec![
        ("PATH".into(), path),
        ("HOME".into(), tmp.clone()),
        ("TMPDIR".into(), tmp),
        ("LANG".into(), "C.UTF-8".into()),
        ("PORT".into(), cfg.port.to_string()),
        ("HOST".into(), "127.0.0.1".into()),
        ("VIRTUAL_ENV".into(), cfg.env.root.display().to_string()),
        ("PYTHONUNBUFFERED".into(), "1".into()),
    ]
}

/// Where the app is probed: `/healthz` when its code has such a route, else
/// `/`; marked so that its shim keeps the request out of the app's log.
fn probe_url(cfg: &AppConfig) -> String {
    let has_healthz = std::fs::read_dir(&cfg.dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.path().extension().is_some_and(|x| x == "py")
                && std::fs::read_to_string(e.path()).is_ok_and(|code| code.contains("\"/healthz\""))
        })
    });
    let path = if has_healthz { "healthz" } else { "" };
    format!(
        "http://127.0.0.1:{}/{path}?{}",
        cfg.port,
        shim::PROBE_MARKER
    )
}

/// Whether the app answers HTTP at all: any status counts, as a 500 still
/// proves the server is alive and serving.
async fn probe(http: &reqwest::Client, url: &str, timeout: Duration) -> bool {
    http.get(url).timeout(timeout).send().await.is_ok()
}

/// Reaps our own child right after its pidfd fired, so no zombie stays.
fn reap(proc: &Proc, _exited: std::io::Result<()>) -> Option<ExitInfo> {
    if !proc.ours {
        return None;
    }
    // The pidfd fires as the process becomes a zombie; its status is ready.
    procfs::reap(proc.pid())
}

/// SIGTERM to the shim, SIGKILL to its tree after `grace`, then SIGKILL to anything
/// left in the group; returns once the process is gone and reaped.
async fn stop_process(proc: &Proc, grace: Duration) {
    let group = Pid::from_raw(proc.pid());
    // To the shim alone, which hands it to the app's init and so to the
    // app: once, as a signal-handling app expects.
    let _ = nix::sys::signal::kill(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, proc.pidfd.exited())
        .await
        .is_err()
    {
        kill_tree(proc.pid());
        let _ = proc.pidfd.exited().await;
    }
    // Anything left in the group goes too (no scan of /proc: a signal to
    // an empty group costs nothing).
    let _ = killpg(group, Signal::SIGKILL);
    reap(proc, Ok(()));
}

/// Stops a process group this daemon does not supervise (one left running
/// by a previous daemon that nobody wants any more).
pub async fn terminate(pid: i32, grace: Duration) {
    if let Ok(pidfd) = PidFd::open(pid) {
        let proc = Proc {
            pidfd,
            run_id: 0,
            ours: false,
        };
        stop_process(&proc, grace).await;
    }
}

/// SIGKILL to the whole group, for a process that stopped answering.
async fn kill_group(proc: &Proc) {
    kill_tree(proc.pid());
    let _ = proc.pidfd.exited().await;
    reap(proc, Ok(()));
}

/// SIGKILL to the app's shim, its group and every process below it. The
/// pids are taken before any dies: a child that left the app's session
/// would otherwise be reparented away before it is found. (In its own PID
/// namespace or cgroup it would end anyway; this is for kernels without.)
fn kill_tree(shim: i32) {
    let below = procfs::tree_pids(shim);
    let _ = killpg(Pid::from_raw(shim), Signal::SIGKILL);
    for pid in below {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Kills what is left in the app's cgroup and removes it once empty.
async fn release_cgroup(cfg: &AppConfig) {
    let Some(cgroups) = &cfg.cgroups else {
        return;
    };
    cgroups.kill(cfg.project_id);
    for _ in 0..100 {
        if !cgroups.is_populated(cfg.project_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cgroups.remove(cfg.project_id);
}

/// How a process ended, in words.
pub fn describe(info: Option<&ExitInfo>) -> String {
    match info {
        Some(ExitInfo::Code(code)) => format!("exited with code {code}"),
        Some(ExitInfo::Signal(sig)) => match Signal::try_from(*sig) {
            Ok(s) => format!("was killed by signal {sig} ({})", s.as_str()),
            Err(_) => format!("was killed by signal {sig}"),
        },
        None => "exited".to_string(),
    }
}

/// Changes the status, and mirrors its state into the project's row.
/// The database is written first, so whoever sees the new state (a `run`
/// waiting for `running`) finds the project's row already saying so.
async fn set(cfg: &AppConfig, status: &watch::Sender<Status>, change: impl FnOnce(&mut Status)) {
    let mut next = status.borrow().clone();
    let before = next.state;
    change(&mut next);
    if before != next.state {
        let (project_id, port, state) = (cfg.project_id, cfg.port, next.state);
        let _ = cfg
            .db
            .call(move |c| runs::set_status(c, project_id, state.as_str(), Some(port)))
            .await;
    }
    status.send_replace(next);
}
