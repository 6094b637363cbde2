//! One supervised app: a task that owns its process and its life cycle.
//! It only waits for the next event (its process's exit, seen through a
//! pidfd the moment it happens; a command from its [`AppHandle`]; a probe's
//! result from the scheduler; one of its timers), feeds it to the life
//! cycle's state machine (`lifecycle.rs`) and carries out the effects that
//! returns, until the app is stopped or let go. How processes are started
//! and signalled is the [`Spawner`]'s business (`spawner.rs`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::lifecycle::{self, Effect, Event, Machine, Probing, RunEnd, Timer, Timings};
use super::probe::ProbeTarget;
use super::runs;
use super::scheduler::{self, ProbeResult, Scheduler};
use super::spawner::{AppProcess, Ended, Shim, SpawnError, Spawner};
use crate::config::AppSettings;
use crate::confine::cgroup::Cgroups;
use crate::confine::pyenv::PythonEnv;
use crate::confine::shim;
use crate::confine::Protections;
use crate::db::hosts::Fence;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::process::launch::Variables;
use crate::process::logfile::LogFiles;
use crate::process::shape::Target;

pub use super::lifecycle::State;
pub use super::spawner::terminate;

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

/// What a process of the app runs: handed to [`start`], and again to
/// [`AppHandle::restart`] for a new version.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Its run folder.
    pub dir: PathBuf,
    /// Its Python environment.
    pub env: PythonEnv,
    /// What its health probe asks for (`/healthz` or `/`): from the stored
    /// version, never read from the app's folder, which the app can write.
    pub health_path: &'static str,
    /// The module it runs, found in the stored version's files.
    pub target: Target,
    /// The project version it runs.
    pub version: Option<i64>,
    /// Its own settings, added to its environment.
    pub settings: Variables,
}

/// Everything the task needs to run one app, whatever version it runs.
pub struct AppConfig {
    /// The project.
    pub project_id: i64,
    /// Its port.
    pub port: u16,
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

/// Why a restart did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The app is being stopped, or has stopped.
    #[error("the app is {}; run it again instead of restarting it", .0.as_str())]
    Refused(State),
    /// The app's task ended meanwhile (it was stopped, or its host taken
    /// over).
    #[error("the app is no longer supervised; run it again")]
    Ended,
}

/// What an [`AppHandle`] asks of the app's task.
enum Command {
    /// Stop; answered once no process is left.
    Stop(oneshot::Sender<()>),
    /// Stop the process and start one on this launch; answered once the new
    /// one was started (or could not be).
    Restart(Launch, oneshot::Sender<Result<(), RestartError>>),
}

/// The app's task, as its owner holds it. Dropping every handle lets the
/// task end once the app has failed; a live app is watched on.
#[derive(Debug, Clone)]
pub struct AppHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl AppHandle {
    /// Stops the app; returns once no process of it is left.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }

    /// Stops the app's process and starts a new one on `launch`, as one
    /// operation: the app stays wanted, its port and its task are kept, and
    /// its restarts count from 0 again. Returns once the new process was
    /// started (or could not be: the status then says `failed`); wait on
    /// the status for it to answer. A failed app, or one waiting to be
    /// restarted, starts at once.
    pub async fn restart(&self, launch: Launch) -> Result<(), RestartError> {
        let (done, restarted) = oneshot::channel();
        self.commands
            .send(Command::Restart(launch, done))
            .map_err(|_| RestartError::Ended)?;
        restarted.await.map_err(|_| RestartError::Ended)?
    }
}

/// Starts the app's task on `launch`; `status` tells the world.
pub fn start(
    cfg: AppConfig,
    launch: Launch,
    origin: Origin,
    status: watch::Sender<Status>,
) -> AppHandle {
    let (commands, receiver) = mpsc::unbounded_channel();
    tokio::spawn(supervise(Shim, cfg, launch, origin, receiver, status));
    AppHandle { commands }
}

/// Runs the app until it is stopped or let go.
///
/// One loop: it waits for the next event, feeds it to the life cycle's
/// [`lifecycle::next`], and carries out the effects (some of which, a
/// spawn, give the next event at once). While the daemon does not hold its
/// host claim, no event is taken: the app is left as it is until the claim
/// is back, or, once another daemon took the host over, left to that one.
async fn supervise<S: Spawner>(
    spawner: S,
    cfg: AppConfig,
    launch: Launch,
    origin: Origin,
    mut commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<Status>,
) {
    let settings = &cfg.settings;
    let mut machine = Machine::new(
        settings.restart,
        Timings {
            start_timeout: settings.start_timeout,
            failures: settings.health_failures,
            stop_grace: settings.stop_timeout,
        },
    );
    let (probe_tx, mut probes) = mpsc::unbounded_channel();
    let mut fence = cfg.fence.clone();
    let (first, adopt) = match origin {
        Origin::Spawn => (Event::Start, None),
        Origin::Adopt {
            pid,
            start_ticks,
            run_id,
        } => (Event::Adopt, Some((pid, start_ticks, run_id))),
    };
    let mut task = Task {
        cfg: &cfg,
        spawner: &spawner,
        launch,
        next_launch: None,
        adopt,
        proc: None,
        ended: None,
        target: None,
        app_pid: None,
        probe_tx,
        timers: Timers::default(),
        stopped: Vec::new(),
        restarted: Vec::new(),
        restarts_done: false,
    };
    let mut events = VecDeque::from([first]);
    let mut handles_left = true;
    loop {
        let mut finished = false;
        while let Some(event) = events.pop_front() {
            for effect in task.feed(&mut machine, event) {
                match task.carry_out(&machine, effect).await {
                    Outcome::Done => {}
                    Outcome::Then(event) => events.push_back(event),
                    Outcome::Finished => finished = true,
                }
            }
        }
        publish(&cfg, &status, &machine, &task).await;
        if std::mem::take(&mut task.restarts_done) {
            for done in task.restarted.drain(..) {
                let _ = done.send(Ok(()));
            }
        }
        if finished {
            for done in task.stopped.drain(..) {
                let _ = done.send(());
            }
            return;
        }
        if !fence.is_held() && !sit_out(&mut fence, &mut probes).await {
            task.abandon(&machine).await;
            for done in task.stopped.drain(..) {
                let _ = done.send(());
            }
            return;
        }
        let event = tokio::select! {
            biased;
            // First: an exit seen as the claim goes is left for later.
            () = fence.lost() => continue,
            ended = wait_exit(task.proc.as_ref()) => {
                task.ended = task.proc.take();
                match ended.over_limit {
                    Some(why) => Event::OverLimit(ended.exit, why),
                    None => Event::Exited(ended.exit),
                }
            }
            command = commands.recv(), if handles_left => match command {
                Some(Command::Stop(done)) => {
                    task.stopped.push(done);
                    Event::Stop
                }
                Some(Command::Restart(launch, done)) => {
                    task.next_launch = Some(launch);
                    task.restarted.push(done);
                    Event::Restart
                }
                None => {
                    handles_left = false;
                    Event::Released
                }
            },
            Some(result) = probes.recv() => match result.answered {
                true => Event::Answered(result.key),
                false => Event::ProbeFailed(result.key),
            },
            timer = task.timers.next_due() => {
                task.timers.disarm(timer);
                timer.event()
            }
        };
        events.push_back(event);
    }
}

/// What carrying out one effect led to.
enum Outcome {
    Done,
    /// An event to feed next (how a spawn went).
    Then(Event),
    /// The task is to end.
    Finished,
}

/// A live process of the app and its run's row.
struct Running<P> {
    proc: P,
    run_id: i64,
}

/// The task's timers, one slot each; none is armed while an app runs
/// healthy.
#[derive(Default)]
struct Timers([Option<tokio::time::Instant>; Timer::ALL.len()]);

impl Timers {
    fn slot(timer: Timer) -> usize {
        Timer::ALL.iter().position(|t| *t == timer).unwrap_or(0)
    }

    fn arm(&mut self, timer: Timer, after: std::time::Duration) {
        self.0[Self::slot(timer)] = Some(tokio::time::Instant::now() + after);
    }

    fn disarm(&mut self, timer: Timer) {
        self.0[Self::slot(timer)] = None;
    }

    /// Resolves when the earliest armed timer is due, with which; never
    /// when none is armed.
    async fn next_due(&self) -> Timer {
        let earliest = Timer::ALL
            .into_iter()
            .filter_map(|t| self.0[Self::slot(t)].map(|at| (at, t)))
            .min_by_key(|(at, _)| *at);
        match earliest {
            Some((at, timer)) => {
                tokio::time::sleep_until(at).await;
                timer
            }
            None => std::future::pending().await,
        }
    }
}

/// What one app's task holds besides its life cycle.
struct Task<'a, S: Spawner> {
    cfg: &'a AppConfig,
    spawner: &'a S,
    /// What its processes run.
    launch: Launch,
    /// The launch a restart asked for, until the life cycle takes the
    /// restart.
    next_launch: Option<Launch>,
    /// The process to adopt: pid, start time, run row.
    adopt: Option<(i32, u64, i64)>,
    /// Its process, while it has one.
    proc: Option<Running<S::Process>>,
    /// The process whose end is being recorded.
    ended: Option<Running<S::Process>>,
    /// Where the current process is probed.
    target: Option<ProbeTarget>,
    /// The app's own process below the shim, once known.
    app_pid: Option<i32>,
    probe_tx: mpsc::UnboundedSender<ProbeResult>,
    timers: Timers,
    /// Who waits for the app to stop.
    stopped: Vec<oneshot::Sender<()>>,
    /// Who waits for a restart to have started the new process.
    restarted: Vec<oneshot::Sender<Result<(), RestartError>>>,
    /// Whether the restart's new process was started (or could not be).
    restarts_done: bool,
}

impl<S: Spawner> Task<'_, S> {
    /// Feeds an event to the life cycle; a refused one is logged, never
    /// applied (a refused restart is answered so).
    fn feed(&mut self, machine: &mut Machine, event: Event) -> Vec<Effect> {
        let restart = event == Event::Restart;
        match lifecycle::next(machine, event, Instant::now()) {
            Ok((next, effects)) => {
                *machine = next;
                if let Some(launch) = self.next_launch.take().filter(|_| restart) {
                    self.launch = launch;
                }
                effects
            }
            Err(illegal) => {
                if restart {
                    self.next_launch = None;
                    for done in self.restarted.drain(..) {
                        let _ = done.send(Err(RestartError::Refused(illegal.state)));
                    }
                    tracing::warn!(project_id = self.cfg.project_id, %illegal, "refused a restart");
                } else {
                    tracing::error!(project_id = self.cfg.project_id, %illegal, "ignored an event");
                }
                Vec::new()
            }
        }
    }

    /// Carries out one effect.
    async fn carry_out(&mut self, machine: &Machine, effect: Effect) -> Outcome {
        let cfg = self.cfg;
        match effect {
            Effect::Spawn => {
                // Only with the claim; taken over, the task ends here.
                let mut fence = cfg.fence.clone();
                if !fence.is_held() && !fence.settled().await {
                    return Outcome::Finished;
                }
                // A restart asked for is answered once this shows.
                self.restarts_done = !self.restarted.is_empty();
                Outcome::Then(match self.spawn().await {
                    Ok(key) => Event::Spawned(key),
                    Err(e) => Event::StartFailed(e.to_string()),
                })
            }
            Effect::Adopt => {
                let Some((pid, start_ticks, run_id)) = self.adopt.take() else {
                    return Outcome::Then(Event::StartFailed("nothing to adopt".into()));
                };
                Outcome::Then(match self.spawner.adopt(cfg, pid, start_ticks) {
                    Ok(proc) => Event::Spawned(self.started(proc, run_id)),
                    Err(e) => Event::StartFailed(e.to_string()),
                })
            }
            Effect::Probe(key, probing) => {
                if probing == Probing::Slowly {
                    if let Some(running) = &self.proc {
                        self.app_pid = running.proc.app_pid();
                        let _ = cfg.log.note(&format!(
                            "pid {} answers on http://127.0.0.1:{}/",
                            running.proc.pid(),
                            cfg.port
                        ));
                    }
                }
                if let Some(target) = &self.target {
                    cfg.scheduler
                        .watch(key, target.clone(), probing, self.probe_tx.clone());
                }
                Outcome::Done
            }
            Effect::StopProbing(key) => {
                cfg.scheduler.unwatch(key);
                Outcome::Done
            }
            Effect::Terminate => {
                if let Some(running) = &self.proc {
                    running.proc.terminate();
                }
                Outcome::Done
            }
            Effect::Kill => {
                if let Some(running) = &self.proc {
                    running.proc.kill();
                }
                Outcome::Done
            }
            Effect::Arm(timer, after) => {
                self.timers.arm(timer, after);
                Outcome::Done
            }
            Effect::Disarm(timer) => {
                self.timers.disarm(timer);
                Outcome::Done
            }
            Effect::EndRun(end, exit) => {
                if let Some(ended) = self.ended.take() {
                    self.end_run(ended, end, exit).await;
                }
                Outcome::Done
            }
            Effect::RestartIn(after) => {
                cfg.metrics.app_restarted();
                tracing::info!(
                    project_id = cfg.project_id,
                    ended = machine.last_exit().unwrap_or("exited"),
                    after_ms = after.as_millis() as u64,
                    "restarting app"
                );
                Outcome::Done
            }
            Effect::GiveUp => {
                if let Some(why) = machine.failure() {
                    let _ = cfg.log.note(&format!("giving up: {why}"));
                    tracing::warn!(project_id = cfg.project_id, %why, "app failed");
                }
                self.spawner.release(cfg).await;
                Outcome::Done
            }
            Effect::Finish => {
                self.spawner.release(cfg).await;
                Outcome::Finished
            }
        }
    }

    /// Starts a process on the current launch and records its run; returns
    /// its probe key.
    async fn spawn(&mut self) -> Result<u64, SpawnError> {
        let cfg = self.cfg;
        let proc = self.spawner.spawn(cfg, &self.launch).await?;
        let (project_id, port, version) = (cfg.project_id, cfg.port, self.launch.version);
        let (pid, proc_start) = (proc.pid(), proc.start_ticks());
        let host = cfg.settings.host.clone();
        let recorded = cfg
            .db
            .call(move |c| {
                let start = runs::Start {
                    project_id,
                    pid,
                    port,
                    proc_start,
                    version,
                    host: &host,
                };
                let id = runs::insert(c, &start)?;
                runs::set_status(c, project_id, State::Starting, Some(port))?;
                Ok(id)
            })
            .await;
        let run_id = match recorded {
            Ok(id) => id,
            Err(e) => {
                // Not left running unseen.
                proc.kill();
                proc.ended().await;
                return Err(e.into());
            }
        };
        let _ = cfg.log.note(&format!("started pid {pid} on port {port}"));
        cfg.metrics.app_started();
        tracing::info!(project_id, pid, port, "started app");
        Ok(self.started(proc, run_id))
    }

    /// A process runs: its probes get a key of their own and a target in
    /// its launch's folder.
    fn started(&mut self, proc: S::Process, run_id: i64) -> u64 {
        self.proc = Some(Running { proc, run_id });
        self.app_pid = None;
        self.target = Some(probe_target(&self.launch, self.cfg.port));
        scheduler::new_key()
    }

    /// Records how a process ended, and ends whatever it left.
    async fn end_run(&mut self, ended: Running<S::Process>, end: RunEnd, exit: lifecycle::Exit) {
        let cfg = self.cfg;
        ended.proc.kill_leftovers();
        self.app_pid = None;
        let run_id = ended.run_id;
        let (code, signal) = (exit.code, exit.signal);
        let _ = cfg
            .db
            .call(move |c| runs::finish(c, run_id, end, code, signal))
            .await;
        let _ = cfg
            .log
            .note(&format!("pid {} {}", ended.proc.pid(), exit.how));
    }

    /// Another daemon took the host over, and the app is its now: nothing is
    /// written or signalled. Only this daemon's own child is waited for and
    /// reaped, so that it leaves no zombie.
    async fn abandon(&mut self, machine: &Machine) {
        if let Some(key) = machine.key() {
            self.cfg.scheduler.unwatch(key);
        }
        let Some(running) = self.proc.take() else {
            return;
        };
        if !running.proc.is_child() {
            return;
        }
        running.proc.ended().await;
        tracing::info!(
            project_id = self.cfg.project_id,
            pid = running.proc.pid(),
            "an app's process ended while another daemon holds this host; left the app to it"
        );
    }
}

/// Resolves when the process ends; never without one.
async fn wait_exit<P: AppProcess>(running: Option<&Running<P>>) -> Ended {
    match running {
        Some(running) => running.proc.ended().await,
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

/// Shows the machine's state to the world: the watch, and the project's
/// row when the state changed. Nothing is sent when nothing changed (a
/// probe that answered, say), so an idle app wakes nobody.
async fn publish<S: Spawner>(
    cfg: &AppConfig,
    status: &watch::Sender<Status>,
    machine: &Machine,
    task: &Task<'_, S>,
) {
    let next = Status {
        state: machine.state(),
        pid: task.proc.as_ref().map(|r| r.proc.pid()),
        app_pid: task.app_pid,
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
            .call(move |c| runs::set_status(c, project_id, state, Some(port)))
            .await;
    }
    status.send_replace(next);
}

/// Where the app is probed, marked so that its shim keeps the request out
/// of the app's log.
fn probe_target(launch: &Launch, port: u16) -> ProbeTarget {
    ProbeTarget {
        port,
        path: format!("{}?{}", launch.health_path, shim::PROBE_MARKER),
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
