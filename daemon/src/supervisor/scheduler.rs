//! One daemon-wide scheduler for the apps' health probes: it sleeps until
//! the earliest probe is due, runs a few probes at a time, each in a task
//! of its own, and hands each result to the app's task. No app has a timer
//! of its own, so an idle daemon with many apps wakes only when a probe is
//! due, and a probe under way never delays an app's task from seeing its
//! exit or a stop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::lifecycle::Probing;
use super::probe::{self, ProbeTarget};

/// Probes under way at once, across all apps.
const PROBES_AT_ONCE: usize = 8;
/// First probe of a starting app, and the pause after each that failed.
const QUICK_FIRST: Duration = Duration::from_millis(5);
const QUICK_EVERY: Duration = Duration::from_millis(20);

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

enum Command {
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
    /// Starts the scheduler's task.
    pub fn start(timings: ProbeTimings) -> Scheduler {
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
}

async fn run(mut commands: mpsc::UnboundedReceiver<Command>, timings: ProbeTimings) {
    let mut watched: HashMap<u64, Watched> = HashMap::new();
    let mut queue: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let limit = Arc::new(Semaphore::new(PROBES_AT_ONCE));
    let (done_tx, mut done) = mpsc::unbounded_channel::<ProbeResult>();
    loop {
        let earliest = queue.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Watch { key, target, probing, results }) => {
                    let due = Instant::now()
                        + match probing {
                            Probing::Quickly => QUICK_FIRST,
                            Probing::Slowly => jittered(timings.interval),
                        };
                    let in_flight = watched.get(&key).is_some_and(|w| w.in_flight);
                    watched.insert(key, Watched { target, probing, results, due, in_flight });
                    queue.push(Reverse((due, key)));
                }
                Some(Command::Unwatch { key }) => {
                    watched.remove(&key);
                }
            },
            Some(result) = done.recv() => {
                if let Some(w) = watched.get_mut(&result.key) {
                    w.in_flight = false;
                    let _ = w.results.send(result);
                    w.due = Instant::now()
                        + match w.probing {
                            Probing::Quickly => QUICK_EVERY,
                            Probing::Slowly => jittered(timings.interval),
                        };
                    queue.push(Reverse((w.due, result.key)));
                }
            }
            () = sleep_until(earliest), if earliest.is_some() => {
                let now = Instant::now();
                while let Some(Reverse((at, key))) = queue.peek().copied() {
                    if at > now {
                        break;
                    }
                    queue.pop();
                    let Some(w) = watched.get_mut(&key) else { continue };
                    if w.due != at || w.in_flight {
                        continue;
                    }
                    w.in_flight = true;
                    let (target, done, limit) = (w.target.clone(), done_tx.clone(), Arc::clone(&limit));
                    let timeout = timings.timeout;
                    tokio::spawn(async move {
                        let _permit = limit.acquire_owned().await;
                        let answered = probe::answers(&target, timeout).await;
                        let _ = done.send(ProbeResult { key, answered });
                    });
                }
            }
        }
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

    #[tokio::test(start_paused = true)]
    async fn probes_come_quickly_then_slowly_and_stop_when_unwatched() {
        // A port nothing listens on: every probe fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let scheduler = Scheduler::start(ProbeTimings {
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
