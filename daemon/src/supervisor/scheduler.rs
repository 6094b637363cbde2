//! One daemon-wide scheduler for the apps' health probes: it sleeps until
//! the earliest probe is due, runs a few probes at a time on its own thread,
//! and hands the results that matter to the app's task. No app's probes
//! have a timer of their own (an app's task arms timers only for its own
//! rare deadlines: a start, a back-off, a stop's grace, none while it runs
//! healthy), slow probes fall due together on a coarse grid, and a healthy
//! app's task hears nothing, so an idle daemon with many apps wakes rarely.
//! A probe under way never delays an app's task from seeing its exit or a
//! stop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::lifecycle::Probing;
use super::probe::{self, ProbeTarget};

/// Probes under way at once, across all apps.
const PROBES_AT_ONCE: usize = 8;
/// First probe of a starting app, and the pause after each that failed.
const QUICK_FIRST: Duration = Duration::from_millis(5);
const QUICK_EVERY: Duration = Duration::from_millis(5);

/// One probe's outcome, for the process whose probes carry `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whose probe it was.
    pub key: u64,
    /// Whether the app answered HTTP at all.
    pub answered: bool,
}

/// Timings of the probes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTimings {
    /// Between two probes of a running app (give or take a tenth, so that
    /// apps started together are not probed together for ever).
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
}

/// What a [`Scheduler`] handle asks of the scheduler.
pub(super) enum Command {
    Watch {
        key: u64,
        target: ProbeTarget,
        probing: Probing,
        results: mpsc::UnboundedSender<ProbeResult>,
    },
    Unwatch {
        key: u64,
    },
}

/// A handle on the scheduler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Scheduler {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Watch { key, probing, .. } => write!(f, "Watch({key}, {probing:?})"),
            Command::Unwatch { key } => write!(f, "Unwatch({key})"),
        }
    }
}

/// A new key for one process's probes: results meant for an earlier
/// process are told apart from the current one's.
pub fn new_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Scheduler {
    /// A scheduler that probes nothing: what it is asked goes to the
    /// receiver, whose holder (a test) answers for the apps.
    #[cfg(test)]
    pub(super) fn fake() -> (Scheduler, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        (Scheduler { commands }, receiver)
    }

    /// Starts the scheduler on a thread of its own, with a runtime of its
    /// own: a probe's connect, request and answer then wake that thread
    /// alone, where on the daemon's runtime each would also wake a second
    /// worker (a probe cost twice the CPU). It ends with the last handle.
    /// Without a thread to be had, it runs as a task of the current runtime.
    pub fn start(timings: ProbeTimings) -> Scheduler {
        let (commands, receiver) = mpsc::unbounded_channel();
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("appforged-probes".into())
                    .spawn(move || runtime.block_on(run(receiver, timings)))
            });
        match started {
            Ok(_) => Scheduler { commands },
            Err(e) => {
                tracing::warn!(error = %e, "health probes run on the daemon's runtime");
                Scheduler::start_in_task(timings)
            }
        }
    }

    /// Starts the scheduler as a task of the current runtime (whose clock
    /// a test may pause).
    pub fn start_in_task(timings: ProbeTimings) -> Scheduler {
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(receiver, timings));
        Scheduler { commands }
    }

    /// Probes `target` as `probing` says, sending each result to `results`,
    /// until `unwatch(key)`; a second call for the same key changes how.
    pub fn watch(
        &self,
        key: u64,
        target: ProbeTarget,
        probing: Probing,
        results: mpsc::UnboundedSender<ProbeResult>,
    ) {
        let _ = self.commands.send(Command::Watch {
            key,
            target,
            probing,
            results,
        });
    }

    /// Stops probing for `key`; a probe under way is not reported.
    pub fn unwatch(&self, key: u64) {
        let _ = self.commands.send(Command::Unwatch { key });
    }
}

struct Watched {
    target: ProbeTarget,
    probing: Probing,
    results: mpsc::UnboundedSender<ProbeResult>,
    /// When its next probe is due; a heap entry for another time is stale.
    due: Instant,
    in_flight: bool,
    /// Whether its last slow probe failed.
    failing: bool,
}

impl Watched {
    /// Whether the app's task needs to hear of `answered`: every result
    /// while it starts, and afterwards only failures and the first answer
    /// after one. A healthy app's task then sleeps through its probes.
    fn worth_telling(&mut self, answered: bool) -> bool {
        match self.probing {
            Probing::Quickly => true,
            Probing::Slowly => {
                let changed = self.failing || !answered;
                self.failing = !answered;
                changed
            }
        }
    }
}

type ProbeFuture = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;

async fn run(mut commands: mpsc::UnboundedReceiver<Command>, timings: ProbeTimings) {
    let mut watched: HashMap<u64, Watched> = HashMap::new();
    let mut queue: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    // Probed in this task, not a task each: one wake-up serves every probe
    // that is ready.
    let mut in_flight: FuturesUnordered<ProbeFuture> = FuturesUnordered::new();
    let grid = Grid::new(timings.interval);
    loop {
        let earliest = queue.peek().map(|Reverse((at, _))| *at);
        let room = in_flight.len() < PROBES_AT_ONCE;
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Watch { key, target, probing, results }) => {
                    let due = match probing {
                        Probing::Quickly => Instant::now() + QUICK_FIRST,
                        Probing::Slowly => grid.after(jittered(timings.interval)),
                    };
                    let in_flight = watched.get(&key).is_some_and(|w| w.in_flight);
                    let w = Watched { target, probing, results, due, in_flight, failing: false };
                    watched.insert(key, w);
                    queue.push(Reverse((due, key)));
                }
                Some(Command::Unwatch { key }) => {
                    watched.remove(&key);
                }
            },
            Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(w) = watched.get_mut(&result.key) {
                    w.in_flight = false;
                    if w.worth_telling(result.answered) {
                        let _ = w.results.send(result);
                    }
                    w.due = match w.probing {
                        Probing::Quickly => Instant::now() + QUICK_EVERY,
                        Probing::Slowly => grid.after(jittered(timings.interval)),
                    };
                    queue.push(Reverse((w.due, result.key)));
                }
            }
            () = sleep_until(earliest), if earliest.is_some() && room => {
                let now = Instant::now();
                while let Some(Reverse((at, key))) = queue.peek().copied() {
                    if at > now || in_flight.len() >= PROBES_AT_ONCE {
                        break;
                    }
                    queue.pop();
                    let Some(w) = watched.get_mut(&key) else { continue };
                    if w.due != at || w.in_flight {
                        continue;
                    }
                    w.in_flight = true;
                    let (target, timeout) = (w.target.clone(), timings.timeout);
                    in_flight.push(Box::pin(async move {
                        let answered = probe::answers(&target, timeout).await;
                        ProbeResult { key, answered }
                    }));
                }
            }
        }
    }
}

/// Slow probes fall due on the ticks of a grid (a thirtieth of the
/// interval, a second at most), so that the probes of many apps share
/// their wake-ups instead of each waking the daemon on its own.
struct Grid {
    origin: Instant,
    step: Duration,
}

impl Grid {
    fn new(interval: Duration) -> Grid {
        let step = (interval / 30).clamp(Duration::from_millis(1), Duration::from_secs(1));
        Grid {
            origin: Instant::now(),
            step,
        }
    }

    /// The first tick at least `delay` from now.
    fn after(&self, delay: Duration) -> Instant {
        let since = (Instant::now() + delay).duration_since(self.origin);
        let step = self.step.as_nanos();
        let ticks = since.as_nanos().div_ceil(step);
        self.origin + Duration::from_nanos((ticks * step) as u64)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `interval` give or take a tenth.
fn jittered(interval: Duration) -> Duration {
    let tenth = interval / 10;
    let offset = rand::rng().random_range(0..=tenth.as_millis().max(1) as u64 * 2);
    interval.saturating_sub(tenth) + Duration::from_millis(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth() {
        let interval = Duration::from_secs(30);
        for _ in 0..1000 {
            let d = jittered(interval);
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_healthy_app_hears_only_of_failures_and_the_first_answer_after() {
        let (results, _rx) = mpsc::unbounded_channel();
        let mut w = Watched {
            target: ProbeTarget {
                port: 1,
                path: "/".into(),
            },
            probing: Probing::Quickly,
            results,
            due: Instant::now(),
            in_flight: false,
            failing: false,
        };
        assert!(w.worth_telling(false) && w.worth_telling(true));
        w.probing = Probing::Slowly;
        let told: Vec<bool> = [true, true, false, false, true, true]
            .into_iter()
            .map(|answered| w.worth_telling(answered))
            .collect();
        assert_eq!(told, [false, false, true, true, true, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_probes_fall_due_on_the_grid() {
        let grid = Grid::new(Duration::from_secs(30));
        assert_eq!(grid.step, Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(1234)).await;
        let due = grid.after(Duration::from_millis(27_100));
        assert_eq!(due.duration_since(grid.origin), Duration::from_secs(29));
        let fine = Grid::new(Duration::from_millis(300));
        assert_eq!(fine.step, Duration::from_millis(10));
    }

    #[tokio::test]
    async fn the_scheduler_on_its_own_thread_reports_to_the_apps_runtime() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // An app that answers every request with a status line.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 1024];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 200 OK\r\n\r\n");
            }
        });
        let scheduler = Scheduler::start(ProbeTimings {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = new_key();
        let target = ProbeTarget {
            port,
            path: "/".into(),
        };
        scheduler.watch(key, target, Probing::Quickly, tx);
        let first = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        assert_eq!(
            first.ok().flatten(),
            Some(ProbeResult {
                key,
                answered: true
            })
        );
        scheduler.unwatch(key);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_come_quickly_then_slowly_and_stop_when_unwatched() {
        // A port nothing listens on: every probe fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let scheduler = Scheduler::start_in_task(ProbeTimings {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = new_key();
        let target = ProbeTarget {
            port,
            path: "/".into(),
        };
        scheduler.watch(key, target.clone(), Probing::Quickly, tx.clone());
        for _ in 0..3 {
            let r = rx.recv().await.unwrap();
            assert_eq!(
                r,
                ProbeResult {
                    key,
                    answered: false
                }
            );
        }
        scheduler.watch(key, target, Probing::Slowly, tx);
        // Drain what was under way, then nothing comes before ~27 s.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {}
        let quiet = tokio::time::timeout(Duration::from_secs(26), rx.recv()).await;
        assert!(quiet.is_err(), "a slow probe came early: {quiet:?}");
        let slow = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert!(matches!(slow, Ok(Some(_))), "{slow:?}");
        scheduler.unwatch(key);
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {}
        // Nothing more: the channel is closed (its sender dropped) or silent.
        let after = tokio::time::timeout(Duration::from_secs(120), rx.recv()).await;
        assert!(
            !matches!(after, Ok(Some(_))),
            "probed after unwatch: {after:?}"
        );
    }
}
