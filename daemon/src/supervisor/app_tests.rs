//! The app's task driven end to end with a fake spawner (processes that
//! end when the test says), a fake scheduler (probes the test answers) and
//! paused time: crashes and back-offs, giving up, stops with their grace,
//! restarts and adoption, without a real process.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::policy::RestartPolicy;
use crate::db::hosts::HostLease;
use crate::params;
use crate::supervisor::scheduler::Command as Probe;
use crate::supervisor::spawner::Ended;

/// What the test holds of one fake process.
struct Control {
    pid: i32,
    /// The version it was started on (None: adopted).
    version: Option<i64>,
    exit: watch::Sender<Option<Ended>>,
    signals: Arc<Mutex<Vec<&'static str>>>,
}

impl Control {
    fn exit(&self, code: i32) {
        self.exit.send_replace(Some(ended(Some(code), None)));
    }

    fn exit_over_limit(&self, why: &str) {
        let mut past = ended(None, Some(9));
        past.over_limit = Some(why.into());
        self.exit.send_replace(Some(past));
    }

    fn signals(&self) -> Vec<&'static str> {
        self.signals.lock().unwrap().clone()
    }
}

fn ended(code: Option<i32>, signal: Option<i32>) -> Ended {
    let how = match (code, signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (_, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".into(),
    };
    Ended {
        exit: lifecycle::Exit { code, signal, how },
        over_limit: None,
    }
}

struct FakeProcess {
    pid: i32,
    child: bool,
    /// Whether it ends on SIGTERM (else only on SIGKILL).
    obeys_term: bool,
    exit: watch::Sender<Option<Ended>>,
    signals: Arc<Mutex<Vec<&'static str>>>,
}

impl FakeProcess {
    fn end(&self, how: Ended) {
        self.exit.send_if_modified(|e| {
            let first = e.is_none();
            if first {
                *e = Some(how);
            }
            first
        });
    }
}

impl AppProcess for FakeProcess {
    fn pid(&self) -> i32 {
        self.pid
    }
    fn start_ticks(&self) -> u64 {
        1
    }
    fn is_child(&self) -> bool {
        self.child
    }
    fn app_pid(&self) -> Option<i32> {
        Some(self.pid + 2)
    }
    async fn ended(&self) -> Ended {
        let mut exit = self.exit.subscribe();
        let ended = exit.wait_for(Option::is_some).await.map(|e| e.clone());
        ended
            .ok()
            .flatten()
            .expect("the sender lives in the process")
    }
    fn terminate(&self) {
        self.signals.lock().unwrap().push("TERM");
        if self.obeys_term {
            self.end(ended(None, Some(15)));
        }
    }
    fn kill(&self) {
        self.signals.lock().unwrap().push("KILL");
        self.end(ended(None, Some(9)));
    }
    fn kill_leftovers(&self) {
        self.signals.lock().unwrap().push("leftovers");
    }
}

struct Fake {
    next_pid: AtomicI32,
    obeys_term: bool,
    fail: AtomicBool,
    spawned: mpsc::UnboundedSender<Control>,
}

impl Fake {
    fn process(&self, pid: i32, child: bool, version: Option<i64>) -> FakeProcess {
        let (exit, _) = watch::channel(None);
        let signals = Arc::default();
        let _ = self.spawned.send(Control {
            pid,
            version,
            exit: exit.clone(),
            signals: Arc::clone(&signals),
        });
        FakeProcess {
            pid,
            child,
            obeys_term: self.obeys_term,
            exit,
            signals,
        }
    }
}

impl Spawner for Fake {
    type Process = FakeProcess;

    async fn spawn(&self, _cfg: &AppConfig, launch: &Launch) -> Result<FakeProcess, SpawnError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(SpawnError::Shim(std::io::Error::other("no Python here")));
        }
        let pid = self.next_pid.fetch_add(10, Ordering::SeqCst);
        Ok(self.process(pid, true, launch.version))
    }

    fn adopt(&self, _cfg: &AppConfig, pid: i32, _ticks: u64) -> Result<FakeProcess, SpawnError> {
        Ok(self.process(pid, false, None))
    }

    async fn release(&self, _cfg: &AppConfig) {}
}

/// One app's task on fakes, and what the test holds of it.
struct Harness {
    _dir: tempfile::TempDir,
    _lease: HostLease,
    db: Db,
    app: AppHandle,
    status: watch::Receiver<Status>,
    spawned: mpsc::UnboundedReceiver<Control>,
    probes: mpsc::UnboundedReceiver<Probe>,
    fail: Arc<Fake>,
}

const STOP_GRACE: Duration = Duration::from_secs(3);
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn launch(dir: &std::path::Path, version: i64) -> Launch {
    Launch {
        dir: dir.join(format!("v{version}")),
        env: PythonEnv {
            root: dir.join("env"),
        },
        health_path: "/",
        target: crate::process::shape::Target::convention(),
        version: Some(version),
        settings: Default::default(),
    }
}

impl Harness {
    async fn start(origin: Origin, obeys_term: bool, fail: bool) -> Harness {
        Harness::with_runs(origin, obeys_term, fail, |_| Ok(())).await
    }

    /// A task for project 1, wanted running on host `test`, after `before`
    /// wrote to its store.
    async fn with_runs(
        origin: Origin,
        obeys_term: bool,
        fail: bool,
        before: impl FnOnce(&crate::db::Conn<'_>) -> Result<(), crate::db::DbError> + Send + 'static,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.call(|c| {
            c.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (1, 'a@b.co', 'x')",
                &[],
            )?;
            c.execute(
                "INSERT INTO projects (id, name, owner_id) VALUES (1, 'todo', 1)",
                &[],
            )?;
            runs::set_wanted(c, 1, Some("test"))?;
            before(c)
        })
        .await
        .unwrap();
        let lease = HostLease::claim(&db, "test", &dir.path().join("sock"))
            .await
            .unwrap();
        let cli = <crate::config::Cli as clap::Parser>::parse_from(["appforged"]);
        let mut settings =
            crate::config::Settings::from_cli(cli, crate::config::Secrets::default())
                .expect("default settings")
                .apps;
        settings.projects_dir = dir.path().join("projects");
        settings.start_timeout = START_TIMEOUT;
        settings.stop_timeout = STOP_GRACE;
        settings.health_failures = 3;
        settings.restart = RestartPolicy::default();
        settings.host = "test".into();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let (scheduler, probes) = Scheduler::fake();
        let cfg = AppConfig {
            project_id: 1,
            port: 20001,
            log: LogFiles::new(dir.path().join("logs/project_1.log"), 1 << 20, 2),
            settings: Arc::new(settings),
            db: db.clone(),
            scheduler,
            fence: lease.fence(),
            metrics: Arc::default(),
            protections: Arc::default(),
            cgroups: None,
        };
        let (spawned_tx, spawned) = mpsc::unbounded_channel();
        let fake = Arc::new(Fake {
            next_pid: AtomicI32::new(1000),
            obeys_term,
            fail: AtomicBool::new(fail),
            spawned: spawned_tx,
        });
        let (status_tx, status) = watch::channel(Status {
            state: State::New,
            pid: None,
            app_pid: None,
            port: 20001,
            restarts: 0,
            last_exit: None,
            failure: None,
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let first = launch(dir.path(), 1);
        tokio::spawn(supervise(
            SharedFake(Arc::clone(&fake)),
            cfg,
            first,
            origin,
            receiver,
            status_tx,
        ));
        Harness {
            _dir: dir,
            _lease: lease,
            db,
            app: AppHandle { commands },
            status,
            spawned,
            probes,
            fail: fake,
        }
    }

    async fn next_process(&mut self) -> Control {
        tokio::time::timeout(Duration::from_secs(600), self.spawned.recv())
            .await
            .expect("a process within 10 minutes")
            .expect("the task runs")
    }

    async fn wait_for(&mut self, state: State) -> Status {
        self.wait_until(state, |_| true).await
    }

    /// Waits for `state` with `also` true of the status: a state can be
    /// shown before the figures that go with it (Starting before its pid).
    async fn wait_until(&mut self, state: State, also: impl Fn(&Status) -> bool) -> Status {
        let reached = tokio::time::timeout(
            Duration::from_secs(600),
            self.status.wait_for(|s| s.state == state && also(s)),
        )
        .await
        .map(|r| r.map(|_| ()));
        let now = self.status.borrow().clone();
        assert!(
            matches!(reached, Ok(Ok(_))),
            "never {}: {now:?}",
            state.as_str()
        );
        now
    }

    /// Answers the quick probes of the app's newest process: it runs.
    async fn answer(&mut self) {
        let mut watched = std::collections::BTreeMap::new();
        loop {
            while let Ok(asked) = self.probes.try_recv() {
                match asked {
                    Probe::Watch {
                        key,
                        probing: Probing::Quickly,
                        results,
                        ..
                    } => {
                        watched.insert(key, results);
                    }
                    Probe::Watch { key, .. } | Probe::Unwatch { key } => {
                        watched.remove(&key);
                    }
                }
            }
            if let Some((key, results)) = watched.pop_last() {
                let _ = results.send(ProbeResult {
                    key,
                    answered: true,
                });
                break;
            }
            let asked = tokio::time::timeout(Duration::from_secs(600), self.probes.recv())
                .await
                .expect("a probe")
                .expect("the scheduler handle lives");
            if let Probe::Watch {
                key,
                probing: Probing::Quickly,
                results,
                ..
            } = asked
            {
                watched.insert(key, results);
            }
        }
        self.wait_for(State::Running).await;
    }

    /// Each run's pid, status, exit code, signal and version.
    async fn runs(&self) -> Vec<(i32, String, Option<i32>, Option<i32>, Option<i64>)> {
        self.db
            .call(|c| {
                c.query(
                    "SELECT pid, status, exit_code, signal, version FROM project_runs ORDER BY id",
                    params![],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
            })
            .await
            .unwrap()
    }

    /// The project's shown status and wanted state.
    async fn project(&self) -> (String, String) {
        self.db
            .call(|c| {
                c.query_one(
                    "SELECT status, wanted FROM projects WHERE id = 1",
                    params![],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
            .unwrap()
    }
}

/// The fake, shared with the test (which may make its spawns fail).
struct SharedFake(Arc<Fake>);

impl Spawner for SharedFake {
    type Process = FakeProcess;

    async fn spawn(&self, cfg: &AppConfig, launch: &Launch) -> Result<FakeProcess, SpawnError> {
        self.0.spawn(cfg, launch).await
    }

    fn adopt(&self, cfg: &AppConfig, pid: i32, ticks: u64) -> Result<FakeProcess, SpawnError> {
        self.0.adopt(cfg, pid, ticks)
    }

    async fn release(&self, cfg: &AppConfig) {
        self.0.release(cfg).await
    }
}

#[tokio::test(start_paused = true)]
async fn stop_waits_its_grace_then_kills_and_a_second_stop_waits_too() {
    let mut h = Harness::start(Origin::Spawn, false, false).await;
    let process = h.next_process().await;
    h.answer().await;
    let asked = Instant::now();
    let (first, second) = (h.app.clone(), h.app.clone());
    let stops = tokio::spawn(async move { tokio::join!(first.stop(), second.stop()) });
    h.wait_for(State::Stopping).await;
    assert_eq!(process.signals(), ["TERM"]);
    tokio::time::timeout(Duration::from_secs(600), stops)
        .await
        .expect("both stops return")
        .unwrap();
    let waited = Instant::now().duration_since(asked);
    assert!(waited >= STOP_GRACE, "killed after {waited:?}");
    assert_eq!(process.signals(), ["TERM", "KILL", "leftovers"]);
    assert_eq!(h.status.borrow().state, State::Stopped);
    let runs = h.runs().await;
    assert_eq!(
        (runs[0].1.as_str(), runs[0].3),
        ("stopped", Some(9)),
        "{runs:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_app_that_ends_on_sigterm_is_not_killed() {
    let mut h = Harness::start(Origin::Spawn, true, false).await;
    let process = h.next_process().await;
    h.answer().await;
    h.app.stop().await;
    assert_eq!(process.signals(), ["TERM", "leftovers"]);
    assert_eq!(h.status.borrow().state, State::Stopped);
    assert_eq!(h.project().await.0, "stopped");
}

#[tokio::test(start_paused = true)]
async fn restart_runs_the_new_launch_and_keeps_the_app_wanted() {
    let mut h = Harness::start(Origin::Spawn, true, false).await;
    let old = h.next_process().await;
    assert_eq!(old.version, Some(1));
    h.answer().await;
    // A crash first: the restart by hand counts from 0 again.
    old.exit(1);
    let old = h.next_process().await;
    h.answer().await;
    assert_eq!(h.status.borrow().restarts, 1);
    let dir = h._dir.path().to_path_buf();
    h.app.restart(launch(&dir, 2)).await.expect("restarted");
    let new = h.next_process().await;
    assert_eq!(new.version, Some(2));
    assert_eq!(old.signals(), ["TERM", "leftovers"]);
    let now = h.status.borrow().clone();
    assert_eq!(
        (now.state, now.pid, now.restarts),
        (State::Starting, Some(new.pid), 0)
    );
    assert_eq!(h.project().await, ("starting".into(), "running".into()));
    h.answer().await;
    let runs = h.runs().await;
    let shown: Vec<(&str, Option<i64>)> = runs.iter().map(|r| (r.1.as_str(), r.4)).collect();
    assert_eq!(
        shown,
        [
            ("exited", Some(1)),
            ("stopped", Some(1)),
            ("running", Some(2))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_app_restarts_on_a_new_launch_and_a_stopping_one_refuses() {
    let mut h = Harness::start(Origin::Spawn, false, true).await;
    let now = h.wait_for(State::Failed).await;
    assert!(
        now.failure.unwrap().contains("no Python here"),
        "the spawn's error is the failure"
    );
    h.fail.fail.store(false, Ordering::SeqCst);
    let dir = h._dir.path().to_path_buf();
    h.app.restart(launch(&dir, 2)).await.expect("restarted");
    let process = h.next_process().await;
    assert_eq!(process.version, Some(2));
    h.answer().await;
    // Being stopped, it is not restarted.
    let stopping = h.app.clone();
    let stop = tokio::spawn(async move { stopping.stop().await });
    h.wait_for(State::Stopping).await;
    let refused = h.app.restart(launch(&dir, 3)).await;
    assert!(
        matches!(refused, Err(RestartError::Refused(State::Stopping))),
        "{refused:?}"
    );
    stop.await.unwrap();
    let gone = h.app.restart(launch(&dir, 3)).await;
    assert!(matches!(gone, Err(RestartError::Ended)), "{gone:?}");
}

#[tokio::test(start_paused = true)]
async fn an_adopted_app_is_watched_and_started_again_when_it_dies() {
    let origin = Origin::Adopt {
        pid: 4242,
        start_ticks: 1,
        run_id: 1,
    };
    let mut h = Harness::with_runs(origin, true, false, |c| {
        let start = runs::Start {
            project_id: 1,
            pid: 4242,
            port: 20001,
            proc_start: 1,
            version: Some(1),
            host: "test",
        };
        runs::insert(c, &start).map(|_| ())
    })
    .await;
    let adopted = h.next_process().await;
    assert_eq!((adopted.pid, adopted.version), (4242, None));
    h.answer().await;
    assert_eq!(h.status.borrow().app_pid, Some(4244));
    adopted.exit(0);
    let started = h.next_process().await;
    assert_eq!(started.version, Some(1));
    h.answer().await;
    let runs = h.runs().await;
    let shown: Vec<(i32, &str)> = runs.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(shown, [(4242, "exited"), (started.pid, "running")]);
    assert_eq!(h.status.borrow().restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn an_app_that_never_answers_is_killed_at_its_deadline() {
    let mut h = Harness::start(Origin::Spawn, true, false).await;
    let process = h.next_process().await;
    let started = Instant::now();
    h.wait_for(State::Backoff).await;
    assert!(Instant::now().duration_since(started) >= START_TIMEOUT);
    assert_eq!(process.signals(), ["KILL", "leftovers"]);
    let now = h.status.borrow().clone();
    assert_eq!(
        now.last_exit.as_deref(),
        Some("did not answer HTTP within 20 s and was killed")
    );
    assert_eq!(h.runs().await[0].1, "unhealthy");
    h.next_process().await;
    h.answer().await;
}

#[tokio::test(start_paused = true)]
async fn an_app_past_a_limit_fails_at_once_and_ends_when_let_go() {
    let mut h = Harness::start(Origin::Spawn, true, false).await;
    let process = h.next_process().await;
    h.answer().await;
    process.exit_over_limit("it ran more than 64 processes and was stopped");
    let now = h.wait_for(State::Failed).await;
    assert_eq!(now.restarts, 0);
    assert_eq!(
        now.failure.as_deref(),
        Some("it went past a limit: it ran more than 64 processes and was stopped")
    );
    assert_eq!(h.runs().await[0].1, "exited");
    let more = tokio::time::timeout(Duration::from_secs(3600), h.spawned.recv()).await;
    assert!(more.is_err(), "started again past a limit");
    // Its handle dropped (the app run anew, say), the task ends.
    let Harness {
        app, mut status, ..
    } = h;
    drop(app);
    let ended = tokio::time::timeout(Duration::from_secs(600), status.changed()).await;
    assert!(
        matches!(ended, Ok(Err(_))),
        "the task still runs: {ended:?}"
    );
}
