//! The life cycle of one app as a state machine: states, events and
//! effects are types, and [`next`] is one pure function from (machine,
//! event, now) to (next machine, effects). The app's task (`app.rs`) only
//! waits for events, feeds them here and carries out the effects returned;
//! nothing here touches a process, a clock or a file, so every transition
//! and every refused one is tested below without any.
//!
//! | from | event | to | effects |
//! | --- | --- | --- | --- |
//! | new | start / adopt | starting | spawn / adopt |
//! | starting | spawned | starting | probe quickly, arm the start deadline |
//! | starting | start failed | failed | give up |
//! | starting | answered | running | disarm the deadline, probe slowly |
//! | starting | start deadline | unhealthy | stop probing, kill |
//! | running | probe failed | running, or unhealthy at the limit | (stop probing, kill) |
//! | starting, running, unhealthy | exited | backoff, or failed in a crash loop | stop probing, end the run, arm the back-off / give up |
//! | starting, running, unhealthy | over limit | failed | stop probing, end the run, give up |
//! | starting, running, unhealthy | stop / restart | stopping / restarting | stop probing, terminate, arm the grace |
//! | stopping, restarting | grace over | the same | kill |
//! | stopping | exited, over limit | stopped | end the run, finish |
//! | restarting | exited, over limit | starting | end the run, spawn |
//! | restarting | stop | stopping | |
//! | backoff | backoff over | starting | spawn |
//! | backoff | stop | stopped | finish |
//! | backoff, failed | restart | starting | spawn |
//! | failed | stop, released | failed | finish |
//!
//! A probe result for an earlier process, a timer or probe that fires after
//! the state moved on, a second stop and a second restart are taken and
//! change nothing (see `the_table_covers_every_state_and_event`); anything
//! else is refused, and the caller logs it as an error.

use std::time::{Duration, Instant};

use crate::config::policy::{Decision, RestartPolicy, RestartTracker};

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its task has neither started nor adopted a process yet.
    New,
    /// Its process runs but does not answer HTTP yet.
    Starting,
    /// It answers HTTP.
    Running,
    /// It was killed for not answering; its exit is awaited.
    Unhealthy,
    /// It ended unexpectedly and waits to be started again.
    Backoff,
    /// It was asked to stop; its exit is awaited.
    Stopping,
    /// It was asked to restart: its exit is awaited, then it starts again.
    Restarting,
    /// It was stopped.
    Stopped,
    /// It crashed too often, or could not be started; it stays down until
    /// it is restarted or stopped.
    Failed,
}

impl State {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Starting => "starting",
            State::Running => "running",
            State::Unhealthy => "unhealthy",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Restarting => "restarting",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    /// Whether the app is meant to be up (its task brings it up again).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            State::New
                | State::Starting
                | State::Running
                | State::Unhealthy
                | State::Backoff
                | State::Restarting
        )
    }

    /// Whether the app has a process (or is about to be handed one) in this
    /// state.
    fn has_process(self) -> bool {
        matches!(
            self,
            State::Starting
                | State::Running
                | State::Unhealthy
                | State::Stopping
                | State::Restarting
        )
    }
}

/// How one process of the app ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code, when it exited (and was this daemon's child).
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// How it ended, in words.
    pub how: String,
}

/// How a run (one process of the app) ended, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// It ended by itself (a crash, or past a limit).
    Exited,
    /// It was killed for not answering.
    Unhealthy,
    /// It was stopped (or restarted) as asked.
    Stopped,
    /// It was gone when a new daemon looked for it.
    Lost,
}

/// What happened to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Its task begins with a new process.
    Start,
    /// Its task begins by watching a process a previous daemon started.
    Adopt,
    /// A process runs (started or adopted); its probes carry this key.
    Spawned(u64),
    /// No process could be started or adopted; why.
    StartFailed(String),
    /// A probe of the process with this key got an HTTP answer.
    Answered(u64),
    /// A probe of the process with this key got none.
    ProbeFailed(u64),
    /// The time to answer after a start has passed.
    StartDeadline,
    /// The process ended.
    Exited(Exit),
    /// The process ended because it went past a limit (processes, disk);
    /// why, in words. Starting it again would only do the same.
    OverLimit(Exit, String),
    /// Its owner asked it to stop.
    Stop,
    /// Its owner asked it to start again (on a launch handed with the
    /// command), without it ever being unwanted meanwhile.
    Restart,
    /// The wait before a restart is over.
    BackoffOver,
    /// The grace after a SIGTERM is over.
    GraceOver,
    /// Nobody holds the app any more (its handle was dropped).
    Released,
}

/// How often the scheduler probes an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probing {
    /// Every few milliseconds, until it first answers.
    Quickly,
    /// Every health interval.
    Slowly,
}

/// The app task's own timers: each is armed by an effect and, when it
/// fires, fed back as its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The time to answer after a start ([`Event::StartDeadline`]).
    StartDeadline,
    /// The wait before a restart ([`Event::BackoffOver`]).
    Backoff,
    /// The grace after a SIGTERM ([`Event::GraceOver`]).
    Grace,
}

impl Timer {
    /// Every timer, one slot each in the task.
    pub const ALL: [Timer; 3] = [Timer::StartDeadline, Timer::Backoff, Timer::Grace];

    /// The event fed when it fires.
    pub fn event(self) -> Event {
        match self {
            Timer::StartDeadline => Event::StartDeadline,
            Timer::Backoff => Event::BackoffOver,
            Timer::Grace => Event::GraceOver,
        }
    }
}

/// What the app's task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a process on the current launch; feed [`Event::Spawned`] or
    /// [`Event::StartFailed`].
    Spawn,
    /// Watch the process the task was handed; feed [`Event::Spawned`] or
    /// [`Event::StartFailed`].
    Adopt,
    /// Have the scheduler probe the process with this key.
    Probe(u64, Probing),
    /// Have the scheduler stop probing the process with this key.
    StopProbing(u64),
    /// SIGTERM to the app's shim, which hands it on to the app once.
    Terminate,
    /// SIGKILL to the app's whole tree at once.
    Kill,
    /// Feed the timer's event after this long (it replaces one armed).
    Arm(Timer, Duration),
    /// Forget the timer.
    Disarm(Timer),
    /// The process ended: whatever it left goes, and its run is recorded.
    EndRun(RunEnd, Exit),
    /// A crash is restarted after this long (counted and logged).
    RestartIn(Duration),
    /// The app gave up: say why, free what it held.
    GiveUp,
    /// The task ends.
    Finish,
}

/// The timings and limits the machine decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Time to answer after a start.
    pub start_timeout: Duration,
    /// Failed probes in a row that make a running app unhealthy.
    pub failures: u32,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub stop_grace: Duration,
}

/// One app's life: its state and what the next decisions depend on.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    policy: RestartPolicy,
    tracker: RestartTracker,
    timings: Timings,
    /// The probe key of the current process, while it is probed.
    key: Option<u64>,
    /// Probes failed in a row while running.
    failed_probes: u32,
    /// Why it was killed, for when its exit is seen.
    killed_because: Option<String>,
    /// How its last process ended.
    last_exit: Option<String>,
    /// Why it failed, when it did.
    failure: Option<String>,
}

/// An event the machine does not take in its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the app's life cycle refused {event:?} in state {}", state.as_str())]
pub struct Illegal {
    /// The state it was in.
    pub state: State,
    /// The event refused.
    pub event: Event,
}

impl Machine {
    /// A machine whose task has not begun: feed it [`Event::Start`] or
    /// [`Event::Adopt`].
    pub fn new(policy: RestartPolicy, timings: Timings) -> Machine {
        Machine {
            state: State::New,
            policy,
            tracker: RestartTracker::new(policy),
            timings,
            key: None,
            failed_probes: 0,
            killed_because: None,
            last_exit: None,
            failure: None,
        }
    }

    /// Its state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The probe key of the current process, while it is probed.
    pub fn key(&self) -> Option<u64> {
        self.key
    }

    /// Restarts since it was started by hand.
    pub fn restarts(&self) -> u32 {
        self.tracker.restarts()
    }

    /// How its last process ended.
    pub fn last_exit(&self) -> Option<&str> {
        self.last_exit.as_deref()
    }

    /// Why it failed, when it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Stops probing the current process, if it is probed.
    fn stop_probing(&mut self, effects: &mut Vec<Effect>) {
        if let Some(key) = self.key.take() {
            effects.push(Effect::StopProbing(key));
        }
    }

    /// Asks the process to end (`to` is stopping or restarting): SIGTERM,
    /// and SIGKILL once the grace is over.
    fn terminate(&mut self, to: State) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.stop_probing(&mut effects);
        self.state = to;
        effects.extend([
            Effect::Disarm(Timer::StartDeadline),
            Effect::Terminate,
            Effect::Arm(Timer::Grace, self.timings.stop_grace),
        ]);
        effects
    }

    /// A start by hand: the counts and reasons of the earlier processes
    /// are not this one's.
    fn start_afresh(&mut self) {
        self.state = State::Starting;
        self.tracker = RestartTracker::new(self.policy);
        self.failed_probes = 0;
        self.killed_because = None;
        self.last_exit = None;
        self.failure = None;
    }

    /// How a run that ended in the current state is recorded.
    fn run_end(&self) -> RunEnd {
        match self.state {
            State::Stopping | State::Restarting => RunEnd::Stopped,
            State::Unhealthy => RunEnd::Unhealthy,
            _ => RunEnd::Exited,
        }
    }
}

/// The one transition function: what `machine` becomes on `event` at
/// `now`, and what must be done.
pub fn next(
    machine: &Machine,
    event: Event,
    now: Instant,
) -> Result<(Machine, Vec<Effect>), Illegal> {
    use Event as E;
    use State as S;
    let mut m = machine.clone();
    let mut effects = Vec::new();
    let current = |key: &u64| machine.key == Some(*key);
    match (machine.state, &event) {
        (S::New, E::Start) => {
            m.state = S::Starting;
            effects.push(Effect::Spawn);
        }
        (S::New, E::Adopt) => {
            m.state = S::Starting;
            effects.push(Effect::Adopt);
        }
        (S::Starting, E::Spawned(key)) if machine.key.is_none() => {
            m.key = Some(*key);
            m.failed_probes = 0;
            effects.extend([
                Effect::Probe(*key, Probing::Quickly),
                Effect::Arm(Timer::StartDeadline, m.timings.start_timeout),
            ]);
        }
        (S::Starting, E::StartFailed(why)) if machine.key.is_none() => {
            m.state = S::Failed;
            m.failure = Some(format!("could not start the app: {why}"));
            effects.push(Effect::GiveUp);
        }
        (S::Starting, E::Answered(key)) if current(key) => {
            m.state = S::Running;
            m.failed_probes = 0;
            m.tracker.healthy(now);
            effects.extend([
                Effect::Disarm(Timer::StartDeadline),
                Effect::Probe(*key, Probing::Slowly),
            ]);
        }
        (S::Starting, E::StartDeadline) => {
            m.state = S::Unhealthy;
            m.killed_because = Some(format!(
                "did not answer HTTP within {} s and was killed",
                m.timings.start_timeout.as_secs_f64()
            ));
            m.stop_probing(&mut effects);
            effects.push(Effect::Kill);
        }
        (S::Running, E::Answered(key)) if current(key) => m.failed_probes = 0,
        (S::Running, E::ProbeFailed(key)) if current(key) => {
            m.failed_probes += 1;
            if m.failed_probes >= m.timings.failures {
                m.state = S::Unhealthy;
                m.killed_because = Some(format!(
                    "stopped answering HTTP ({} probes failed) and was killed",
                    m.failed_probes
                ));
                m.stop_probing(&mut effects);
                effects.push(Effect::Kill);
            }
        }
        (S::Starting | S::Running | S::Unhealthy, E::Exited(exit)) => {
            m.stop_probing(&mut effects);
            effects.extend([
                Effect::Disarm(Timer::StartDeadline),
                Effect::EndRun(machine.run_end(), exit.clone()),
            ]);
            let how = m.killed_because.take().unwrap_or_else(|| exit.how.clone());
            m.last_exit = Some(how.clone());
            match m.tracker.failed(now) {
                Decision::Restart { after } => {
                    m.state = S::Backoff;
                    effects.extend([Effect::RestartIn(after), Effect::Arm(Timer::Backoff, after)]);
                }
                Decision::GiveUp => {
                    m.state = S::Failed;
                    m.failure = Some(format!(
                        "it ended {} times within {} s; the last time: {how}",
                        m.tracker.restarts() + 1,
                        m.policy.window.as_secs_f64()
                    ));
                    effects.push(Effect::GiveUp);
                }
            }
        }
        (S::Starting | S::Running | S::Unhealthy, E::OverLimit(exit, why)) => {
            m.stop_probing(&mut effects);
            effects.extend([
                Effect::Disarm(Timer::StartDeadline),
                Effect::EndRun(machine.run_end(), exit.clone()),
                Effect::GiveUp,
            ]);
            m.state = S::Failed;
            m.killed_because = None;
            m.last_exit = Some(why.clone());
            m.failure = Some(format!("it went past a limit: {why}"));
        }
        (S::Starting | S::Running | S::Unhealthy, E::Stop) => effects = m.terminate(S::Stopping),
        (S::Starting | S::Running | S::Unhealthy, E::Restart) => {
            effects = m.terminate(S::Restarting)
        }
        (S::Stopping | S::Restarting, E::GraceOver) => effects.push(Effect::Kill),
        (S::Stopping, E::Exited(exit) | E::OverLimit(exit, _)) => {
            m.state = S::Stopped;
            effects.extend([
                Effect::Disarm(Timer::Grace),
                Effect::EndRun(RunEnd::Stopped, exit.clone()),
                Effect::Finish,
            ]);
        }
        (S::Restarting, E::Exited(exit) | E::OverLimit(exit, _)) => {
            m.start_afresh();
            effects.extend([
                Effect::Disarm(Timer::Grace),
                Effect::EndRun(RunEnd::Stopped, exit.clone()),
                Effect::Spawn,
            ]);
        }
        // The restart becomes a stop; the grace already runs.
        (S::Restarting, E::Stop) => m.state = S::Stopping,
        (S::Backoff, E::BackoffOver) => {
            m.state = S::Starting;
            effects.push(Effect::Spawn);
        }
        (S::Backoff, E::Stop) => {
            m.state = S::Stopped;
            effects.extend([Effect::Disarm(Timer::Backoff), Effect::Finish]);
        }
        (S::Backoff | S::Failed, E::Restart) => {
            m.start_afresh();
            effects.extend([Effect::Disarm(Timer::Backoff), Effect::Spawn]);
        }
        // A failed app waits to be restarted; stopped or let go, it ends
        // as it is.
        (S::Failed, E::Stop | E::Released) => effects.push(Effect::Finish),
        // Taken, and nothing changes: a probe of an earlier process or one
        // under way when the state moved on, a timer that fired as it was
        // disarmed, a second stop or restart (the later launch is the one
        // started), a handle let go while the app is still to be watched.
        (
            S::Starting | S::Running | S::Unhealthy | S::Backoff | S::Stopping | S::Restarting,
            E::Answered(_) | E::ProbeFailed(_) | E::Released,
        )
        | (S::Failed, E::Answered(_) | E::ProbeFailed(_))
        | (S::Running | S::Unhealthy, E::StartDeadline)
        | (S::Backoff | S::Stopping | S::Restarting | S::Failed, E::StartDeadline)
        | (S::Starting | S::Running | S::Unhealthy | S::Stopping | S::Restarting, E::BackoffOver)
        | (S::Failed, E::BackoffOver)
        | (S::Starting | S::Running | S::Unhealthy | S::Backoff | S::Failed, E::GraceOver)
        | (S::Stopping, E::Stop)
        | (S::Restarting, E::Restart) => {}
        _ => {
            return Err(Illegal {
                state: machine.state,
                event,
            })
        }
    }
    debug_assert!(
        machine.state.has_process() || !effects.contains(&Effect::Kill),
        "kill without a process"
    );
    Ok((m, effects))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: u64 = 7;

    fn timings() -> Timings {
        Timings {
            start_timeout: Duration::from_secs(2),
            failures: 3,
            stop_grace: Duration::from_secs(5),
        }
    }

    fn exit(how: &str) -> Exit {
        Exit {
            code: Some(1),
            signal: None,
            how: how.into(),
        }
    }

    /// A machine whose process (probed with `KEY`) has just been started.
    fn machine() -> Machine {
        let m = Machine::new(RestartPolicy::default(), timings());
        let (m, _) = next(&m, Event::Start, Instant::now()).unwrap();
        next(&m, Event::Spawned(KEY), Instant::now()).unwrap().0
    }

    /// Feeds events one after the other, at `now`.
    fn run(events: Vec<Event>, now: Instant) -> (Machine, Vec<Vec<Effect>>) {
        let mut m = machine();
        let mut all = Vec::new();
        for e in events {
            let (next_m, effects) = next(&m, e, now).expect("allowed");
            m = next_m;
            all.push(effects);
        }
        (m, all)
    }

    /// A machine in `state`, with a probed process where it has one.
    fn in_state(state: State) -> Machine {
        let mut m = machine();
        m.state = state;
        m.key = matches!(state, State::Starting | State::Running).then_some(KEY);
        m
    }

    #[test]
    fn a_start_spawns_then_probes_quickly_under_a_deadline() {
        let m = Machine::new(RestartPolicy::default(), timings());
        let (m, effects) = next(&m, Event::Start, Instant::now()).unwrap();
        assert_eq!((m.state(), effects), (State::Starting, vec![Effect::Spawn]));
        let (m, effects) = next(&m, Event::Spawned(KEY), Instant::now()).unwrap();
        assert_eq!(m.state(), State::Starting);
        assert_eq!(
            effects,
            vec![
                Effect::Probe(KEY, Probing::Quickly),
                Effect::Arm(Timer::StartDeadline, Duration::from_secs(2))
            ]
        );
        let m = Machine::new(RestartPolicy::default(), timings());
        let (m, effects) = next(&m, Event::Adopt, Instant::now()).unwrap();
        assert_eq!((m.state(), effects), (State::Starting, vec![Effect::Adopt]));
    }

    #[test]
    fn a_start_that_answers_runs_and_is_probed_slowly() {
        let (m, effects) = run(
            vec![Event::ProbeFailed(KEY), Event::Answered(KEY)],
            Instant::now(),
        );
        assert_eq!(m.state(), State::Running);
        assert_eq!(
            effects,
            vec![
                vec![],
                vec![
                    Effect::Disarm(Timer::StartDeadline),
                    Effect::Probe(KEY, Probing::Slowly)
                ]
            ]
        );
    }

    #[test]
    fn probes_of_an_earlier_process_change_nothing() {
        let (m, effects) = run(
            vec![Event::Answered(KEY + 1), Event::ProbeFailed(KEY + 1)],
            Instant::now(),
        );
        assert_eq!(m.state(), State::Starting);
        assert!(effects.iter().all(Vec::is_empty), "{effects:?}");
        let (m, _) = run(vec![Event::Answered(KEY)], Instant::now());
        let mut m = m;
        for _ in 0..10 {
            m = next(&m, Event::ProbeFailed(KEY + 1), Instant::now())
                .unwrap()
                .0;
        }
        assert_eq!(m.state(), State::Running);
    }

    #[test]
    fn a_start_that_never_answers_is_killed_and_restarted_with_the_reason() {
        let now = Instant::now();
        let (m, effects) = run(vec![Event::StartDeadline], now);
        assert_eq!(m.state(), State::Unhealthy);
        assert_eq!(effects[0], vec![Effect::StopProbing(KEY), Effect::Kill]);
        let killed = Exit {
            code: None,
            signal: Some(9),
            how: "was killed by signal 9".into(),
        };
        let (m, effects) = next(&m, Event::Exited(killed.clone()), now).unwrap();
        assert_eq!(m.state(), State::Backoff);
        assert_eq!(
            effects,
            vec![
                Effect::Disarm(Timer::StartDeadline),
                Effect::EndRun(RunEnd::Unhealthy, killed),
                Effect::RestartIn(Duration::ZERO),
                Effect::Arm(Timer::Backoff, Duration::ZERO)
            ]
        );
        assert_eq!(
            m.last_exit(),
            Some("did not answer HTTP within 2 s and was killed")
        );
    }

    #[test]
    fn probes_fail_up_to_the_limit_then_the_app_is_killed() {
        let now = Instant::now();
        let (m, effects) = run(
            vec![
                Event::Answered(KEY),
                Event::ProbeFailed(KEY),
                Event::ProbeFailed(KEY),
            ],
            now,
        );
        assert_eq!(m.state(), State::Running);
        assert!(effects[1].is_empty() && effects[2].is_empty());
        // An answer in between starts the count again.
        let (m, _) = next(&m, Event::Answered(KEY), now).unwrap();
        let (m, _) = next(&m, Event::ProbeFailed(KEY), now).unwrap();
        let (m, _) = next(&m, Event::ProbeFailed(KEY), now).unwrap();
        assert_eq!(m.state(), State::Running);
        let (m, effects) = next(&m, Event::ProbeFailed(KEY), now).unwrap();
        assert_eq!(m.state(), State::Unhealthy);
        assert_eq!(effects, vec![Effect::StopProbing(KEY), Effect::Kill]);
        let (m, _) = next(&m, Event::Exited(exit("was killed by signal 9")), now).unwrap();
        assert_eq!(
            m.last_exit(),
            Some("stopped answering HTTP (3 probes failed) and was killed")
        );
    }

    #[test]
    fn a_crash_waits_then_starts_again() {
        let now = Instant::now();
        let (m, effects) = run(
            vec![
                Event::Answered(KEY),
                Event::Exited(exit("exited with code 1")),
            ],
            now,
        );
        assert_eq!(m.state(), State::Backoff);
        assert_eq!(
            effects[1],
            vec![
                Effect::StopProbing(KEY),
                Effect::Disarm(Timer::StartDeadline),
                Effect::EndRun(RunEnd::Exited, exit("exited with code 1")),
                Effect::RestartIn(Duration::ZERO),
                Effect::Arm(Timer::Backoff, Duration::ZERO)
            ]
        );
        assert_eq!(m.restarts(), 1);
        assert_eq!(m.last_exit(), Some("exited with code 1"));
        let (m, effects) = next(&m, Event::BackoffOver, now).unwrap();
        assert_eq!((m.state(), effects), (State::Starting, vec![Effect::Spawn]));
        // The new process has a new key; results of the old one are stale.
        let (m, _) = next(&m, Event::Spawned(KEY + 1), now).unwrap();
        let (m, _) = next(&m, Event::Answered(KEY), now).unwrap();
        assert_eq!(m.state(), State::Starting);
        let (m, _) = next(&m, Event::Answered(KEY + 1), now).unwrap();
        assert_eq!(m.state(), State::Running);
    }

    #[test]
    fn a_crash_loop_ends_failed_with_the_last_exit_and_the_window() {
        let now = Instant::now();
        let policy = RestartPolicy {
            window: Duration::from_secs(90),
            ..RestartPolicy::default()
        };
        let m = Machine::new(policy, timings());
        let (mut m, _) = next(&m, Event::Start, now).unwrap();
        for key in 0..5 {
            m = next(&m, Event::Spawned(key), now).unwrap().0;
            let (after_exit, effects) =
                next(&m, Event::Exited(exit("exited with code 3")), now).unwrap();
            assert!(effects.contains(&Effect::Arm(Timer::Backoff, delay(key))));
            m = next(&after_exit, Event::BackoffOver, now).unwrap().0;
        }
        m = next(&m, Event::Spawned(5), now).unwrap().0;
        let (m, effects) = next(&m, Event::Exited(exit("exited with code 3")), now).unwrap();
        assert_eq!(m.state(), State::Failed);
        assert_eq!(effects.last(), Some(&Effect::GiveUp));
        assert_eq!(
            m.failure(),
            Some("it ended 6 times within 90 s; the last time: exited with code 3")
        );
    }

    fn delay(n: u64) -> Duration {
        crate::config::policy::delay_for(&RestartPolicy::default(), n as u32)
    }

    #[test]
    fn a_start_that_fails_ends_failed() {
        let m = Machine::new(RestartPolicy::default(), timings());
        let (m, _) = next(&m, Event::Start, Instant::now()).unwrap();
        let (m, effects) = next(
            &m,
            Event::StartFailed("cannot run Python".into()),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(m.state(), State::Failed);
        assert_eq!(effects, vec![Effect::GiveUp]);
        assert_eq!(
            m.failure(),
            Some("could not start the app: cannot run Python")
        );
    }

    #[test]
    fn stop_terminates_kills_after_the_grace_and_ends_on_the_exit() {
        for from in [State::Starting, State::Running, State::Unhealthy] {
            let (m, effects) = next(&in_state(from), Event::Stop, Instant::now()).unwrap();
            assert_eq!(m.state(), State::Stopping, "from {from:?}");
            assert_eq!(
                effects.last(),
                Some(&Effect::Arm(Timer::Grace, timings().stop_grace))
            );
            assert!(effects.contains(&Effect::Terminate));
            // A second stop changes nothing; the grace ends in a kill.
            let (m, effects) = next(&m, Event::Stop, Instant::now()).unwrap();
            assert!(effects.is_empty());
            let (m, effects) = next(&m, Event::GraceOver, Instant::now()).unwrap();
            assert_eq!((m.state(), effects), (State::Stopping, vec![Effect::Kill]));
            let (m, effects) = next(&m, Event::Exited(exit("x")), Instant::now()).unwrap();
            assert_eq!(m.state(), State::Stopped);
            assert_eq!(
                effects,
                vec![
                    Effect::Disarm(Timer::Grace),
                    Effect::EndRun(RunEnd::Stopped, exit("x")),
                    Effect::Finish
                ]
            );
        }
        // Waiting to restart, there is no process to stop.
        let (m, effects) = next(&in_state(State::Backoff), Event::Stop, Instant::now()).unwrap();
        assert_eq!(m.state(), State::Stopped);
        assert_eq!(
            effects,
            vec![Effect::Disarm(Timer::Backoff), Effect::Finish]
        );
    }

    #[test]
    fn restart_stops_the_process_and_starts_afresh() {
        let now = Instant::now();
        let (m, _) = run(
            vec![
                Event::Exited(exit("exited with code 1")),
                Event::BackoffOver,
                Event::Spawned(KEY + 1),
                Event::Answered(KEY + 1),
            ],
            now,
        );
        assert_eq!((m.state(), m.restarts()), (State::Running, 1));
        let (m, effects) = next(&m, Event::Restart, now).unwrap();
        assert_eq!(m.state(), State::Restarting);
        assert!(effects.contains(&Effect::Terminate));
        assert!(m.state().is_live(), "a restarting app is still wanted");
        let (m, effects) = next(&m, Event::Exited(exit("x")), now).unwrap();
        assert_eq!(m.state(), State::Starting);
        assert_eq!(
            effects,
            vec![
                Effect::Disarm(Timer::Grace),
                Effect::EndRun(RunEnd::Stopped, exit("x")),
                Effect::Spawn
            ]
        );
        // A restart by hand is not counted, and the old reasons are gone.
        assert_eq!((m.restarts(), m.last_exit()), (0, None));
        // A failed app, or one waiting to restart, starts at once.
        for from in [State::Failed, State::Backoff] {
            let (m, effects) = next(&in_state(from), Event::Restart, now).unwrap();
            assert_eq!(m.state(), State::Starting);
            assert_eq!(effects, vec![Effect::Disarm(Timer::Backoff), Effect::Spawn]);
        }
    }

    #[test]
    fn an_app_past_a_limit_fails_with_the_reason_and_is_not_restarted() {
        let now = Instant::now();
        let why = "it ran more than 64 processes and threads and was stopped";
        for events in [vec![], vec![Event::Answered(KEY)]] {
            let (m, _) = run(events, now);
            let (m, effects) = next(&m, Event::OverLimit(exit("x"), why.into()), now).unwrap();
            assert_eq!(m.state(), State::Failed);
            assert_eq!(effects.last(), Some(&Effect::GiveUp));
            assert!(effects.contains(&Effect::EndRun(RunEnd::Exited, exit("x"))));
            assert_eq!(m.last_exit(), Some(why));
            assert!(m.failure().unwrap().contains(why), "{:?}", m.failure());
            assert_eq!(m.restarts(), 0);
        }
        // Asked to stop meanwhile: it is stopped, as asked.
        let (m, _) = run(vec![Event::Answered(KEY), Event::Stop], now);
        let (m, effects) = next(&m, Event::OverLimit(exit("x"), why.into()), now).unwrap();
        assert_eq!(m.state(), State::Stopped);
        assert_eq!(effects.last(), Some(&Effect::Finish));
    }

    #[test]
    fn a_failed_app_waits_until_it_is_stopped_or_let_go() {
        for event in [Event::Stop, Event::Released] {
            let (m, effects) = next(&in_state(State::Failed), event, Instant::now()).unwrap();
            assert_eq!((m.state(), effects), (State::Failed, vec![Effect::Finish]));
        }
    }

    /// Every state.
    const ALL_STATES: [State; 9] = [
        State::New,
        State::Starting,
        State::Running,
        State::Unhealthy,
        State::Backoff,
        State::Stopping,
        State::Restarting,
        State::Stopped,
        State::Failed,
    ];

    /// One event of each kind, in the table's column order, with its column
    /// name. The match makes a new kind of event fail to compile here
    /// until it has a column.
    fn all_events() -> Vec<(&'static str, Event)> {
        let events = vec![
            Event::Start,
            Event::Adopt,
            Event::Spawned(KEY + 1),
            Event::StartFailed("x".into()),
            Event::Answered(KEY),
            Event::ProbeFailed(KEY),
            Event::StartDeadline,
            Event::Exited(exit("exited with code 1")),
            Event::OverLimit(exit("x"), "too many processes".into()),
            Event::Stop,
            Event::Restart,
            Event::BackoffOver,
            Event::GraceOver,
            Event::Released,
        ];
        events
            .into_iter()
            .map(|e| {
                let name = match e {
                    Event::Start => "start",
                    Event::Adopt => "adopt",
                    Event::Spawned(_) => "spawned",
                    Event::StartFailed(_) => "startfail",
                    Event::Answered(_) => "answered",
                    Event::ProbeFailed(_) => "probefail",
                    Event::StartDeadline => "deadline",
                    Event::Exited(_) => "exited",
                    Event::OverLimit(..) => "overlimit",
                    Event::Stop => "stop",
                    Event::Restart => "restart",
                    Event::BackoffOver => "backoff",
                    Event::GraceOver => "grace",
                    Event::Released => "released",
                };
                (name, e)
            })
            .collect()
    }

    /// The state each (state, event) pair leads to: `-` refused, `=` taken
    /// and unchanged. Starting and running have a process probed with
    /// `KEY`; `spawned` hands a new key; the probes are of `KEY`; an exit
    /// is the first crash.
    const TABLE: &str = "
        state      start    adopt    spawned  startfail answered probefail deadline  exited  overlimit stop     restart    backoff  grace    released
        new        starting starting -        -        -        -         -         -        -        -        -          -        -        -
        starting   -        -        -        -        running  =         unhealthy backoff  failed   stopping restarting =        =        =
        running    -        -        -        -        =        =         =         backoff  failed   stopping restarting =        =        =
        unhealthy  -        -        -        -        =        =         =         backoff  failed   stopping restarting =        =        =
        backoff    -        -        -        -        =        =         =         -        -        stopped  starting   starting =        =
        stopping   -        -        -        -        =        =         =         stopped  stopped  =        -          =        =        =
        restarting -        -        -        -        =        =         =         starting starting stopping =          =        =        =
        stopped    -        -        -        -        -        -         -         -        -        -        -          -        -        -
        failed     -        -        -        -        =        =         =         -        -        =        starting   =        =        =
    ";

    #[test]
    fn the_table_covers_every_state_and_event() {
        let mut rows = TABLE.lines().map(str::trim).filter(|l| !l.is_empty());
        let header: Vec<&str> = rows.next().unwrap().split_whitespace().skip(1).collect();
        let events = all_events();
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(header, names, "one column per kind of event, in order");
        let rows: Vec<Vec<&str>> = rows.map(|r| r.split_whitespace().collect()).collect();
        let listed: Vec<&str> = rows.iter().map(|r| r[0]).collect();
        let states: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
        assert_eq!(listed, states, "one row per state, in order");
        // Every state is in ALL_STATES: a new one fails to compile here.
        for state in ALL_STATES {
            match state {
                State::New
                | State::Starting
                | State::Running
                | State::Unhealthy
                | State::Backoff
                | State::Stopping
                | State::Restarting
                | State::Stopped
                | State::Failed => {}
            }
        }
        let mut checked = 0;
        for (state, row) in ALL_STATES.into_iter().zip(&rows) {
            assert_eq!(row.len(), events.len() + 1, "row {}", state.as_str());
            for ((name, event), expected) in events.iter().zip(&row[1..]) {
                let m = in_state(state);
                match (next(&m, event.clone(), Instant::now()), *expected) {
                    (Err(e), "-") => {
                        assert_eq!(
                            e,
                            Illegal {
                                state,
                                event: event.clone()
                            }
                        );
                        assert!(e.to_string().contains(state.as_str()), "{e}");
                    }
                    (Ok((after, effects)), "=") => {
                        assert_eq!(after.state(), state, "{} on {name}", state.as_str());
                        let harmless = effects
                            .iter()
                            .all(|e| matches!(e, Effect::Kill | Effect::Finish));
                        assert!(harmless, "{} on {name}: {effects:?}", state.as_str());
                    }
                    (Ok((after, _)), to) => {
                        assert_eq!(after.state().as_str(), to, "{} on {name}", state.as_str())
                    }
                    (Err(e), to) => panic!("{} on {name}: refused ({e}), not {to}", state.as_str()),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, ALL_STATES.len() * events.len());
    }
}
