//! The life cycle of one app as a state machine: states, events and
//! effects are types, and [`next`] is one pure function from (machine,
//! event, now) to (next machine, effects). The app's task (`app.rs`) feeds
//! it the events it sees and carries out the effects it returns; nothing
//! here touches a process, a clock or a file, so every transition and every
//! refused one is tested below without any.
//!
//! | from | event | to | effects |
//! | --- | --- | --- | --- |
//! | starting | answered | running | probe slowly |
//! | starting | probe failed | starting | |
//! | starting | start deadline | unhealthy | stop probing, kill |
//! | starting | start failed | failed | stop probing, finish |
//! | running | answered | running | |
//! | running | probe failed | running, or unhealthy at the limit | (stop probing, kill) |
//! | starting, running, unhealthy | exited | backoff, or failed in a crash loop | stop probing, restart in / finish |
//! | starting, running, unhealthy | over limit | failed | stop probing, finish |
//! | stopping | over limit | stopped | finish |
//! | starting, running, unhealthy | stop | stopping | stop probing, terminate |
//! | stopping | exited | stopped | finish |
//! | backoff | backoff over | starting | spawn, probe quickly |
//! | backoff | stop | stopped | finish |
//!
//! A probe or deadline that arrives after the state moved on (it was under
//! way) is allowed and changes nothing; anything else is refused, and the
//! caller logs it as an error.

use std::time::{Duration, Instant};

use crate::config::policy::{Decision, RestartPolicy, RestartTracker};

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
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
            State::Unhealthy => "unhealthy",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    /// Whether the app is meant to be up (its task still watches it).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            State::Starting | State::Running | State::Unhealthy | State::Backoff
        )
    }

    /// Whether a process of the app exists in this state.
    fn has_process(self) -> bool {
        matches!(
            self,
            State::Starting | State::Running | State::Unhealthy | State::Stopping
        )
    }
}

/// What happened to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// No process could be started; why.
    StartFailed(String),
    /// A probe got an HTTP answer.
    Answered,
    /// A probe got none.
    ProbeFailed,
    /// The time to answer after a start has passed.
    StartDeadline,
    /// The process ended; how, in words.
    Exited(String),
    /// Its owner asked it to stop.
    Stop,
    /// The wait before a restart is over.
    BackoffOver,
    /// The process ended because it went past a limit (processes, disk);
    /// why, in words. Starting it again would only do the same.
    OverLimit(String),
}

/// How often the scheduler probes an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probing {
    /// Every few milliseconds, until it first answers.
    Quickly,
    /// Every health interval.
    Slowly,
}

/// What the app's task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a process.
    Spawn,
    /// Have the scheduler probe the app.
    Probe(Probing),
    /// Have the scheduler stop probing it.
    StopProbing,
    /// Kill the app's whole tree at once.
    Kill,
    /// SIGTERM, then SIGKILL after the grace.
    Terminate,
    /// Wait this long, then feed [`Event::BackoffOver`].
    RestartIn(Duration),
    /// The task ends.
    Finish,
}

/// Health settings the machine decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Time to answer after a start.
    pub start_timeout: Duration,
    /// Failed probes in a row that make a running app unhealthy.
    pub failures: u32,
}

/// One app's life: its state and what the next decisions depend on.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    tracker: RestartTracker,
    health: HealthPolicy,
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
    /// A machine whose process has just been started (or adopted).
    pub fn starting(policy: RestartPolicy, health: HealthPolicy) -> Machine {
        Machine {
            state: State::Starting,
            tracker: RestartTracker::new(policy),
            health,
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
}

/// Whether `event` is taken in `state`: the table of allowed transitions.
pub fn allowed(state: State, event: &Event) -> bool {
    use Event as E;
    use State as S;
    match (state, event) {
        (S::Starting, E::Answered | E::ProbeFailed | E::StartDeadline | E::StartFailed(_)) => true,
        (S::Running, E::Answered | E::ProbeFailed) => true,
        (S::Starting | S::Running | S::Unhealthy | S::Stopping, E::Exited(_)) => true,
        (S::Starting | S::Running | S::Unhealthy | S::Stopping, E::OverLimit(_)) => true,
        (S::Starting | S::Running | S::Unhealthy, E::Stop) => true,
        (S::Backoff, E::BackoffOver | E::Stop) => true,
        // Under way when the state moved on: taken, and nothing changes.
        (S::Running | S::Unhealthy | S::Stopping | S::Backoff, E::StartDeadline) => true,
        (S::Unhealthy | S::Stopping | S::Backoff, E::Answered | E::ProbeFailed) => true,
        _ => false,
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
    if !allowed(machine.state, &event) {
        return Err(Illegal {
            state: machine.state,
            event,
        });
    }
    let mut m = machine.clone();
    let effects = match (machine.state, event) {
        (S::Starting, E::Answered) => {
            m.state = S::Running;
            m.failed_probes = 0;
            m.tracker.healthy(now);
            vec![Effect::Probe(Probing::Slowly)]
        }
        (S::Starting, E::ProbeFailed) => vec![],
        (S::Starting, E::StartDeadline) => {
            m.state = S::Unhealthy;
            m.killed_because = Some(format!(
                "did not answer HTTP within {} s and was killed",
                m.health.start_timeout.as_secs_f64()
            ));
            vec![Effect::StopProbing, Effect::Kill]
        }
        (S::Starting, E::StartFailed(why)) => {
            m.state = S::Failed;
            m.failure = Some(format!("could not start the app: {why}"));
            vec![Effect::StopProbing, Effect::Finish]
        }
        (S::Running, E::Answered) => {
            m.failed_probes = 0;
            vec![]
        }
        (S::Running, E::ProbeFailed) => {
            m.failed_probes += 1;
            if m.failed_probes < m.health.failures {
                vec![]
            } else {
                m.state = S::Unhealthy;
                m.killed_because = Some(format!(
                    "stopped answering HTTP ({} probes failed) and was killed",
                    m.failed_probes
                ));
                vec![Effect::StopProbing, Effect::Kill]
            }
        }
        (S::Starting | S::Running | S::Unhealthy, E::Exited(how)) => {
            let how = m.killed_because.take().unwrap_or(how);
            m.last_exit = Some(how.clone());
            match m.tracker.failed(now) {
                Decision::Restart { after } => {
                    m.state = S::Backoff;
                    vec![Effect::StopProbing, Effect::RestartIn(after)]
                }
                Decision::GiveUp => {
                    m.state = S::Failed;
                    m.failure = Some(format!(
                        "it ended {} times within a minute; the last time: {how}",
                        m.tracker.restarts() + 1
                    ));
                    vec![Effect::StopProbing, Effect::Finish]
                }
            }
        }
        (S::Starting | S::Running | S::Unhealthy, E::Stop) => {
            m.state = S::Stopping;
            vec![Effect::StopProbing, Effect::Terminate]
        }
        (S::Starting | S::Running | S::Unhealthy, E::OverLimit(why)) => {
            m.state = S::Failed;
            m.killed_because = None;
            m.last_exit = Some(why.clone());
            m.failure = Some(format!("it went past a limit: {why}"));
            vec![Effect::StopProbing, Effect::Finish]
        }
        (S::Stopping, E::Exited(_) | E::OverLimit(_)) => {
            m.state = S::Stopped;
            vec![Effect::Finish]
        }
        (S::Backoff, E::BackoffOver) => {
            m.state = S::Starting;
            m.failed_probes = 0;
            vec![Effect::Spawn, Effect::Probe(Probing::Quickly)]
        }
        (S::Backoff, E::Stop) => {
            m.state = S::Stopped;
            vec![Effect::Finish]
        }
        // The allowed no-ops: a probe or deadline the state outran.
        _ => vec![],
    };
    debug_assert!(
        machine.state.has_process() || !effects.contains(&Effect::Kill),
        "kill without a process"
    );
    Ok((m, effects))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> HealthPolicy {
        HealthPolicy {
            start_timeout: Duration::from_secs(2),
            failures: 3,
        }
    }

    fn machine() -> Machine {
        Machine::starting(RestartPolicy::default(), health())
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

    const ALL_STATES: [State; 7] = [
        State::Starting,
        State::Running,
        State::Unhealthy,
        State::Backoff,
        State::Stopping,
        State::Stopped,
        State::Failed,
    ];

    fn all_events() -> Vec<Event> {
        vec![
            Event::StartFailed("x".into()),
            Event::Answered,
            Event::ProbeFailed,
            Event::StartDeadline,
            Event::Exited("exited with code 1".into()),
            Event::Stop,
            Event::BackoffOver,
            Event::OverLimit("too many processes".into()),
        ]
    }

    fn in_state(state: State) -> Machine {
        let mut m = machine();
        m.state = state;
        m
    }

    #[test]
    fn a_start_that_answers_runs_and_is_probed_slowly() {
        let (m, effects) = run(vec![Event::ProbeFailed, Event::Answered], Instant::now());
        assert_eq!(m.state(), State::Running);
        assert_eq!(effects, vec![vec![], vec![Effect::Probe(Probing::Slowly)]]);
    }

    #[test]
    fn a_start_that_never_answers_is_killed_and_restarted_with_the_reason() {
        let now = Instant::now();
        let (m, effects) = run(vec![Event::StartDeadline], now);
        assert_eq!(m.state(), State::Unhealthy);
        assert_eq!(effects[0], vec![Effect::StopProbing, Effect::Kill]);
        let (m, effects) = next(&m, Event::Exited("was killed by signal 9".into()), now).unwrap();
        assert_eq!(m.state(), State::Backoff);
        assert_eq!(
            effects,
            vec![Effect::StopProbing, Effect::RestartIn(Duration::ZERO)]
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
            vec![Event::Answered, Event::ProbeFailed, Event::ProbeFailed],
            now,
        );
        assert_eq!(m.state(), State::Running);
        assert!(effects[1].is_empty() && effects[2].is_empty());
        // An answer in between starts the count again.
        let (m, _) = next(&m, Event::Answered, now).unwrap();
        let (m, _) = next(&m, Event::ProbeFailed, now).unwrap();
        let (m, _) = next(&m, Event::ProbeFailed, now).unwrap();
        assert_eq!(m.state(), State::Running);
        let (m, effects) = next(&m, Event::ProbeFailed, now).unwrap();
        assert_eq!(m.state(), State::Unhealthy);
        assert_eq!(effects, vec![Effect::StopProbing, Effect::Kill]);
        let (m, _) = next(&m, Event::Exited("was killed by signal 9".into()), now).unwrap();
        assert_eq!(
            m.last_exit(),
            Some("stopped answering HTTP (3 probes failed) and was killed")
        );
    }

    #[test]
    fn a_crash_waits_then_starts_again_and_probes_quickly() {
        let now = Instant::now();
        let (m, _) = run(
            vec![Event::Answered, Event::Exited("exited with code 1".into())],
            now,
        );
        assert_eq!(m.state(), State::Backoff);
        assert_eq!(m.restarts(), 1);
        assert_eq!(m.last_exit(), Some("exited with code 1"));
        let (m, effects) = next(&m, Event::BackoffOver, now).unwrap();
        assert_eq!(m.state(), State::Starting);
        assert_eq!(
            effects,
            vec![Effect::Spawn, Effect::Probe(Probing::Quickly)]
        );
    }

    #[test]
    fn a_crash_loop_ends_failed_with_the_last_exit() {
        let now = Instant::now();
        let mut m = machine();
        for _ in 0..5 {
            let (after_exit, effects) =
                next(&m, Event::Exited("exited with code 3".into()), now).unwrap();
            assert!(matches!(effects[1], Effect::RestartIn(_)), "{effects:?}");
            m = next(&after_exit, Event::BackoffOver, now).unwrap().0;
        }
        let (m, effects) = next(&m, Event::Exited("exited with code 3".into()), now).unwrap();
        assert_eq!(m.state(), State::Failed);
        assert_eq!(effects, vec![Effect::StopProbing, Effect::Finish]);
        assert_eq!(
            m.failure(),
            Some("it ended 6 times within a minute; the last time: exited with code 3")
        );
    }

    #[test]
    fn a_start_that_fails_ends_failed() {
        let (m, effects) = run(
            vec![Event::StartFailed("cannot run Python".into())],
            Instant::now(),
        );
        assert_eq!(m.state(), State::Failed);
        assert_eq!(effects[0], vec![Effect::StopProbing, Effect::Finish]);
        assert_eq!(
            m.failure(),
            Some("could not start the app: cannot run Python")
        );
    }

    #[test]
    fn stop_terminates_a_process_and_ends_on_its_exit() {
        for from in [State::Starting, State::Running, State::Unhealthy] {
            let (m, effects) = next(&in_state(from), Event::Stop, Instant::now()).unwrap();
            assert_eq!(m.state(), State::Stopping, "from {from:?}");
            assert_eq!(effects, vec![Effect::StopProbing, Effect::Terminate]);
            let (m, effects) = next(&m, Event::Exited("x".into()), Instant::now()).unwrap();
            assert_eq!(m.state(), State::Stopped);
            assert_eq!(effects, vec![Effect::Finish]);
        }
        // Waiting to restart, there is no process to stop.
        let (m, effects) = next(&in_state(State::Backoff), Event::Stop, Instant::now()).unwrap();
        assert_eq!(m.state(), State::Stopped);
        assert_eq!(effects, vec![Effect::Finish]);
    }

    #[test]
    fn late_probes_and_deadlines_change_nothing() {
        for state in [State::Unhealthy, State::Stopping, State::Backoff] {
            for event in [Event::Answered, Event::ProbeFailed, Event::StartDeadline] {
                let m = in_state(state);
                let (after, effects) = next(&m, event.clone(), Instant::now()).unwrap();
                assert_eq!(after.state(), state, "{event:?}");
                assert!(effects.is_empty(), "{state:?} {event:?}: {effects:?}");
            }
        }
        let (after, effects) = next(
            &in_state(State::Running),
            Event::StartDeadline,
            Instant::now(),
        )
        .unwrap();
        assert_eq!(after.state(), State::Running);
        assert!(effects.is_empty());
    }

    #[test]
    fn an_app_past_a_limit_fails_with_the_reason_and_is_not_restarted() {
        let now = Instant::now();
        let why = "it ran more than 64 processes and threads and was stopped";
        for events in [vec![], vec![Event::Answered]] {
            let (m, _) = run(events, now);
            let (m, effects) = next(&m, Event::OverLimit(why.into()), now).unwrap();
            assert_eq!(m.state(), State::Failed);
            assert_eq!(effects, vec![Effect::StopProbing, Effect::Finish]);
            assert_eq!(m.last_exit(), Some(why));
            assert!(m.failure().unwrap().contains(why), "{:?}", m.failure());
            assert_eq!(m.restarts(), 0);
        }
        // Asked to stop meanwhile: it is stopped, as asked.
        let (m, _) = run(vec![Event::Answered, Event::Stop], now);
        let (m, effects) = next(&m, Event::OverLimit(why.into()), now).unwrap();
        assert_eq!(m.state(), State::Stopped);
        assert_eq!(effects, vec![Effect::Finish]);
    }

    #[test]
    fn the_table_refuses_everything_else_and_changes_nothing() {
        let allowed_pairs = [
            (State::Starting, "StartFailed"),
            (State::Starting, "Answered"),
            (State::Starting, "ProbeFailed"),
            (State::Starting, "StartDeadline"),
            (State::Starting, "Exited"),
            (State::Starting, "Stop"),
            (State::Running, "Answered"),
            (State::Running, "ProbeFailed"),
            (State::Running, "StartDeadline"),
            (State::Running, "Exited"),
            (State::Running, "Stop"),
            (State::Unhealthy, "Answered"),
            (State::Unhealthy, "ProbeFailed"),
            (State::Unhealthy, "StartDeadline"),
            (State::Unhealthy, "Exited"),
            (State::Unhealthy, "Stop"),
            (State::Backoff, "Answered"),
            (State::Backoff, "ProbeFailed"),
            (State::Backoff, "StartDeadline"),
            (State::Backoff, "Stop"),
            (State::Backoff, "BackoffOver"),
            (State::Stopping, "Answered"),
            (State::Stopping, "ProbeFailed"),
            (State::Stopping, "StartDeadline"),
            (State::Stopping, "Exited"),
            (State::Starting, "OverLimit"),
            (State::Running, "OverLimit"),
            (State::Unhealthy, "OverLimit"),
            (State::Stopping, "OverLimit"),
        ];
        let mut refused = 0;
        for state in ALL_STATES {
            for event in all_events() {
                let name = format!("{event:?}");
                let name = name.split(['(', ' ']).next().unwrap().to_string();
                let expected = allowed_pairs.contains(&(state, name.as_str()));
                let m = in_state(state);
                match next(&m, event.clone(), Instant::now()) {
                    Ok(_) => assert!(expected, "{state:?} took {event:?}"),
                    Err(e) => {
                        assert!(!expected, "{state:?} refused {event:?}");
                        assert_eq!(
                            e,
                            Illegal {
                                state,
                                event: event.clone()
                            }
                        );
                        assert!(e.to_string().contains(state.as_str()), "{e}");
                        refused += 1;
                    }
                }
            }
        }
        assert_eq!(refused, 7 * 8 - allowed_pairs.len());
    }
}
