//! One supervised app: a task that starts (or adopts) its process under
//! its shim, and then feeds what happens (its exit, seen through a pidfd the
//! moment it happens; a stop; the scheduler's probe results; its deadlines)
//! to the life cycle's state machine (`lifecycle.rs`), carrying out what
//! that decides, until the app is stopped or gives up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};

use super::lifecycle::{self, Effect, Event, HealthPolicy, Machine, Probing};
use super::probe::ProbeTarget;
use super::runs;
use super::scheduler::{self, ProbeResult, Scheduler};
use crate::config::AppSettings;
use crate::confine::cgroup::{CgroupLimits, Cgroups};
use crate::confine::limits;
use crate::confine::pyenv::PythonEnv;
use crate::confine::shim::{self, ShimSpec};
use crate::confine::{Protections, Sandbox};
use crate::db::hosts::Fence;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::process::launch;
use crate::process::logfile::LogFiles;
use crate::process::procfs::{self, ExitInfo, PidFd};

pub use super::lifecycle::State;

/// What `ps` and the handlers see of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where it is.
    pub state: State,
    /// Its process (the shim), while it has one.
    pub pid: Option<i32>,
    /// The app's own process below the shim, once it answers: what `ps`
    /// reads CPU and memory from.
    pub app_pid: Option<i32>,
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
    /// What its health probe asks for (`/healthz` or `/`): from the stored
    /// version, never read from the app's folder, which the app can write.
    pub health_path: &'static str,
    /// The project version it runs.
    pub version: Option<i64>,
    /// Its log files.
    pub log: LogFiles,
    /// Timings and limits.
    pub settings: Arc<AppSettings>,
    /// The database.
    pub db: Db,
    /// The daemon's scheduler of health probes.
    pub scheduler: Scheduler,
    /// Whether the daemon holds its host claim: without it, the task
    /// leaves the app as it is (fencing).
    pub fence: Fence,
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

/// Runs the app until it is stopped or gives up; `status` tells the world.
///
/// One loop: it waits for the next event (the process's exit through its
/// pidfd, a stop, a probe's result from the scheduler, a deadline), feeds it
/// to the life cycle's [`lifecycle::next`], and carries out the effects.
/// While the daemon does not hold its host claim, no event is taken: the
/// app is left as it is until the claim is back, or, once another daemon
/// took the host over, left to that one.
pub async fn supervise(
    cfg: AppConfig,
    origin: Origin,
    mut commands: mpsc::UnboundedReceiver<StopCommand>,
    status: watch::Sender<Status>,
) {
    let settings = &cfg.settings;
    let mut machine = Machine::starting(
        settings.restart,
        HealthPolicy {
            start_timeout: settings.start_timeout,
            failures: settings.health_failures,
        },
    );
    let (probe_tx, mut probes) = mpsc::unbounded_channel();
    let mut fence = cfg.fence.clone();
    let mut task = Task {
        cfg: &cfg,
        proc: None,
        key: 0,
        target: None,
        app_pid: None,
        probe_tx,
        start_deadline: None,
        restart_at: None,
        kill_at: None,
        stopped: Vec::new(),
    };
    // The first process: adopted or started, then probed quickly.
    let first = match origin {
        Origin::Spawn => spawn(&cfg).await,
        Origin::Adopt {
            pid,
            start_ticks,
            run_id,
        } => adopt(pid, start_ticks, run_id),
    };
    let mut effects = match first {
        Ok(proc) => {
            task.started(proc);
            vec![Effect::Probe(Probing::Quickly)]
        }
        Err(why) => task.feed(&mut machine, Event::StartFailed(why)),
    };
    loop {
        let finished = task.carry_out(&mut machine, effects).await;
        publish(&cfg, &status, &machine, task.proc.as_ref(), task.app_pid).await;
        if finished {
            for done in task.stopped.drain(..) {
                let _ = done.send(());
            }
            return;
        }
        if !fence.is_held() && !sit_out(&mut fence, &mut probes).await {
            task.abandon().await;
            for done in task.stopped.drain(..) {
                let _ = done.send(());
            }
            return;
        }
        let event = tokio::select! {
            biased;
            // First: an exit seen as the claim goes is left for later.
            () = fence.lost() => {
                effects = Vec::new();
                continue;
            }
            exit = wait_exit(task.proc.as_ref()) => {
                let state = machine.state();
                let proc = task.proc.take().expect("an exit needs a process");
                task.ended(&proc, state, exit).await
            }
            Some(StopCommand(done)) = commands.recv() => {
                task.stopped.push(done);
                if machine.state() == State::Stopping {
                    effects = Vec::new();
                    continue;
                }
                Event::Stop
            }
            Some(result) = probes.recv() => {
                if result.key != task.key {
                    effects = Vec::new();
                    continue;
                }
                if result.answered { Event::Answered } else { Event::ProbeFailed }
            }
            () = sleep_until(task.start_deadline), if task.start_deadline.is_some() => {
                task.start_deadline = None;
                Event::StartDeadline
            }
            () = sleep_until(task.restart_at), if task.restart_at.is_some() => {
                task.restart_at = None;
                Event::BackoffOver
            }
            () = sleep_until(task.kill_at), if task.kill_at.is_some() => {
                // The grace after SIGTERM is over.
                task.kill_at = None;
                if let Some(proc) = &task.proc {
                    kill_tree(proc.pid());
                }
                effects = Vec::new();
                continue;
            }
        };
        effects = task.feed(&mut machine, event);
    }
}

/// What one app's task holds besides its life cycle.
struct Task<'a> {
    cfg: &'a AppConfig,
    /// Its process, while it has one.
    proc: Option<Proc>,
    /// The key of the current process's probes.
    key: u64,
    /// Where the current process is probed.
    target: Option<ProbeTarget>,
    /// The app's own process below the shim, once known.
    app_pid: Option<i32>,
    probe_tx: mpsc::UnboundedSender<ProbeResult>,
    start_deadline: Option<tokio::time::Instant>,
    restart_at: Option<tokio::time::Instant>,
    /// When a process asked to stop is killed.
    kill_at: Option<tokio::time::Instant>,
    /// Who waits for the app to stop.
    stopped: Vec<oneshot::Sender<()>>,
}

impl Task<'_> {
    /// Feeds an event to the life cycle; a refused one is logged, never applied.
    fn feed(&self, machine: &mut Machine, event: Event) -> Vec<Effect> {
        match lifecycle::next(machine, event, Instant::now()) {
            Ok((next, effects)) => {
                *machine = next;
                effects
            }
            Err(illegal) => {
                tracing::error!(project_id = self.cfg.project_id, %illegal, "ignored an event");
                Vec::new()
            }
        }
    }

    /// A process runs: its probes get a key of their own and its start a deadline.
    fn started(&mut self, proc: Proc) {
        self.proc = Some(proc);
        self.app_pid = None;
        self.key = scheduler::new_key();
        self.target = Some(probe_target(self.cfg));
        self.start_deadline = Some(tokio::time::Instant::now() + self.cfg.settings.start_timeout);
    }

    /// Carries out the effects; true when the task is to end.
    async fn carry_out(&mut self, machine: &mut Machine, effects: Vec<Effect>) -> bool {
        let cfg = self.cfg;
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        let mut finished = false;
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Spawn => {
                    // Only with the claim; taken over, the task ends here.
                    let mut fence = cfg.fence.clone();
                    if !fence.is_held() && !fence.settled().await {
                        return true;
                    }
                    match spawn(cfg).await {
                        Ok(proc) => self.started(proc),
                        Err(why) => queue.extend(self.feed(machine, Event::StartFailed(why))),
                    }
                }
                Effect::Probe(probing) => {
                    if probing == Probing::Slowly {
                        self.start_deadline = None;
                        if let Some(proc) = &self.proc {
                            // shim, its init, then the app itself.
                            self.app_pid = procfs::tree_pids(proc.pid()).get(2).copied();
                            let _ = cfg.log.note(&format!(
                                "pid {} answers on http://127.0.0.1:{}/",
                                proc.pid(),
                                cfg.port
                            ));
                        }
                    }
                    if let Some(target) = &self.target {
                        cfg.scheduler.watch(
                            self.key,
                            target.clone(),
                            probing,
                            self.probe_tx.clone(),
                        );
                    }
                }
                Effect::StopProbing => {
                    cfg.scheduler.unwatch(self.key);
                    self.start_deadline = None;
                }
                Effect::Kill => {
                    if let Some(proc) = &self.proc {
                        kill_tree(proc.pid());
                    }
                }
                Effect::Terminate => {
                    if let Some(proc) = &self.proc {
                        // To the shim alone, which hands it on to the app once.
                        let _ = nix::sys::signal::kill(Pid::from_raw(proc.pid()), Signal::SIGTERM);
                        self.kill_at =
                            Some(tokio::time::Instant::now() + cfg.settings.stop_timeout);
                    }
                }
                Effect::RestartIn(after) => {
                    cfg.metrics.app_restarted();
                    tracing::info!(
                        project_id = cfg.project_id,
                        ended = machine.last_exit().unwrap_or("exited"),
                        after_ms = after.as_millis() as u64,
                        "restarting app"
                    );
                    self.restart_at = Some(tokio::time::Instant::now() + after);
                }
                Effect::Finish => {
                    if let Some(why) = machine.failure() {
                        let _ = cfg.log.note(&format!("giving up: {why}"));
                        tracing::warn!(project_id = cfg.project_id, %why, "app failed");
                    }
                    release_cgroup(cfg).await;
                    finished = true;
                }
            }
        }
        finished
    }

    /// Another daemon took the host over, and the app is its now: nothing is
    /// written or signalled. Only this daemon's own child is waited for and
    /// reaped, so that it leaves no zombie.
    async fn abandon(&mut self) {
        self.cfg.scheduler.unwatch(self.key);
        let Some(proc) = self.proc.take() else {
            return;
        };
        if !proc.ours {
            return;
        }
        let _ = proc.pidfd.exited().await;
        reap(&proc, Ok(()));
        tracing::info!(
            project_id = self.cfg.project_id,
            pid = proc.pid(),
            "an app's process ended while another daemon holds this host; left the app to it"
        );
    }

    /// Records how a process ended, reaps it and whatever it left, and
    /// says how it ended: past a limit its shim holds, or how, in words.
    async fn ended(&mut self, proc: &Proc, state: State, exit: std::io::Result<()>) -> Event {
        let cfg = self.cfg;
        let info = reap(proc, exit);
        let described = describe(info.as_ref());
        let (code, signal) = match info {
            Some(ExitInfo::Code(c)) => (Some(c), None),
            Some(ExitInfo::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        let run_status = match state {
            State::Stopping => "stopped",
            State::Unhealthy => "unhealthy",
            _ => "exited",
        };
        // Whatever the app left in its group or cgroup goes with it.
        let _ = killpg(Pid::from_raw(proc.pid()), Signal::SIGKILL);
        if let Some(cgroups) = &cfg.cgroups {
            cgroups.kill(cfg.project_id);
        }
        self.kill_at = None;
        self.app_pid = None;
        let run_id = proc.run_id;
        let _ = cfg
            .db
            .call(move |c| runs::finish(c, run_id, run_status, code, signal))
            .await;
        let _ = cfg.log.note(&format!("pid {} {described}", proc.pid()));
        // Read also for an adopted app: its shim wrote it whoever watched.
        match limits::take_reason(cfg.log.path()) {
            Some(why) => Event::OverLimit(why),
            None => Event::Exited(described),
        }
    }
}

/// Resolves when the process ends; never without one.
async fn wait_exit(proc: Option<&Proc>) -> std::io::Result<()> {
    match proc {
        Some(proc) => proc.pidfd.exited().await,
        None => std::future::pending().await,
    }
}

/// Waits out a lost claim, dropping probe results meanwhile (they change
/// nothing): true once the claim is held again, false once another daemon
/// took the host over.
async fn sit_out(fence: &mut Fence, probes: &mut mpsc::UnboundedReceiver<ProbeResult>) -> bool {
    loop {
        tokio::select! {
            biased;
            held = fence.settled() => return held,
            Some(_) = probes.recv() => {}
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Shows the machine's state to the world: the watch, and the project's
/// row when the state changed. Nothing is sent when nothing changed (a
/// probe that answered, say), so an idle app wakes nobody.
async fn publish(
    cfg: &AppConfig,
    status: &watch::Sender<Status>,
    machine: &Machine,
    proc: Option<&Proc>,
    app_pid: Option<i32>,
) {
    let next = Status {
        state: machine.state(),
        pid: proc.map(Proc::pid),
        app_pid,
        port: cfg.port,
        restarts: machine.restarts(),
        last_exit: machine.last_exit().map(str::to_string),
        failure: machine.failure().map(str::to_string),
    };
    let (unchanged, state_changed) = {
        let now = status.borrow();
        (*now == next, now.state != next.state)
    };
    if unchanged {
        return;
    }
    // The row first, so whoever sees the new state (a `run` waiting for
    // `running`) finds the project's row already saying so.
    // Fenced, the project's row is not this daemon's to write.
    if state_changed && cfg.fence.is_held() {
        let (project_id, port, state) = (cfg.project_id, cfg.port, next.state);
        let _ = cfg
            .db
            .call(move |c| runs::set_status(c, project_id, state.as_str(), Some(port)))
            .await;
    }
    status.send_replace(next);
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
        args: launch::python_args(cfg.port),
        dir: cfg.dir.clone(),
        env: launch::environment(&cfg.env.root, cfg.port, &tmp),
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
    // A reason left by an earlier run is not this run's.
    limits::clear_reason(cfg.log.path());
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
    let (project_id, port, version) = (cfg.project_id, cfg.port, cfg.version);
    let host = cfg.settings.host.clone();
    let run_id = cfg
        .db
        .call(move |c| {
            let start = runs::Start {
                project_id,
                pid,
                port,
                proc_start: start,
                version,
                host: &host,
            };
            let id = runs::insert(c, &start)?;
            runs::set_status(c, project_id, "starting", Some(port))?;
            Ok(id)
        })
        .await
        .map_err(|e| abandon(e.to_string()))?;
    let _ = cfg.log.note(&format!("started pid {pid} on port {port}"));
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

/// Where the app is probed, marked so that its shim keeps the request out
/// of the app's log.
fn probe_target(cfg: &AppConfig) -> ProbeTarget {
    ProbeTarget {
        port: cfg.port,
        path: format!("{}?{}", cfg.health_path, shim::PROBE_MARKER),
    }
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
