//! Every new version is checked by running it before it is saved: install
//! its requirements, import it, start it and ask for `/`, and run its own
//! tests. The checks run model code nobody has read yet, so each step runs
//! in a scratch folder, confined exactly like a running app, with a time
//! limit. Known model mistakes are mended first (`mends`); a failing check
//! goes back to the model with the real error (`repair`).

pub mod mends;
pub mod repair;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use appforge_shared::protocol::FileContent;
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::AppSettings;
use crate::confine::limits;
use crate::confine::pyenv::{self, PythonEnv};
use crate::confine::shim::{self, ShimSpec};
use crate::confine::{self, Protections, Sandbox};
use crate::process::excerpt::relevant_lines;
use crate::process::launch::{self, Variables};
use crate::process::logfile::LogFiles;
use crate::process::requirements;
use crate::process::shape::{self, Target};
use crate::projects::folder;

/// Time limit of the import step.
const IMPORT_LIMIT: Duration = Duration::from_secs(60);
/// Time limit of the app's own tests.
const TESTS_LIMIT: Duration = Duration::from_secs(180);
/// How every check's scratch folder is named, a random part following.
const SCRATCH_PREFIX: &str = "check-";
/// What the checks install for themselves: the tests' runner.
const CHECK_TOOLS: &str = "pytest\n";
/// Cap of each step's log in the scratch folder.
const STEP_LOG_BYTES: u64 = 1 << 20;

/// One step of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Install the requirements into the app's (shared, cached) environment.
    Install,
    /// Import the module the app runs (`app.py`, say).
    Import,
    /// Start it and ask for `/`.
    Start,
    /// Run its own tests with pytest.
    Tests,
}

impl Step {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Install => "install",
            Step::Import => "import",
            Step::Start => "start",
            Step::Tests => "tests",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Step::Install => "installing the requirements",
            Step::Import => "importing the app",
            Step::Start => "starting the app and asking for /",
            Step::Tests => "running the app's tests",
        }
    }
}

/// How one step went, as the generation's record keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    /// Which step.
    pub step: Step,
    /// Whether it passed.
    pub passed: bool,
    /// How long it took.
    pub millis: u64,
}

/// A failed check: the step and the real error, cut to what matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// What went wrong: a traceback, a log's end, the tests' summary.
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} check failed: {}", self.step.as_str(), self.error)
    }
}

/// Why checking did not pass.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The app failed a step; a model can be asked to fix it.
    #[error("{failure}")]
    Failed {
        /// The steps that ran, the failed one last.
        steps: Vec<StepOutcome>,
        /// What failed.
        failure: Failure,
    },
    /// The checks themselves could not run (a full disk, say).
    #[error("could not run the checks: {0}")]
    Broken(String),
}

/// Checks files by running them: the daemon's [`Checker`], or a stand-in
/// where no app can run (the workflows' unit tests).
pub trait RunCheck: Send + Sync {
    /// Checks `files` step by step, with the app's `settings` in its
    /// environment (secrets as placeholders), telling `report` of each;
    /// returns the steps that ran.
    fn run_checks<'a>(
        &'a self,
        files: &'a [FileContent],
        settings: &'a Variables,
        report: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<Vec<StepOutcome>, CheckError>>;
}

impl RunCheck for Checker {
    fn run_checks<'a>(
        &'a self,
        files: &'a [FileContent],
        settings: &'a Variables,
        report: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<Vec<StepOutcome>, CheckError>> {
        Box::pin(self.check(files, settings, report))
    }
}

/// What made a step fail, in words for the model and the user: a
/// traceback, a log's end, how the process ended.
#[derive(Debug)]
struct Fault(String);

impl Fault {
    /// A step that could not go on because of `e`.
    fn of(e: impl std::fmt::Display) -> Fault {
        Fault(e.to_string())
    }
}

/// Runs the checks; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    settings: Arc<AppSettings>,
    protections: Arc<Protections>,
    /// Where scratch folders are made, one per check.
    scratch: PathBuf,
}

impl Checker {
    /// A checker with the apps' settings and confinement, making its
    /// scratch folders under `scratch`.
    pub fn new(
        settings: Arc<AppSettings>,
        protections: Arc<Protections>,
        scratch: PathBuf,
    ) -> Self {
        Checker {
            settings,
            protections,
            scratch,
        }
    }

    /// Removes the scratch folders of checks a daemon killed on its feet
    /// (kill -9) left behind; call at start, once this daemon holds its
    /// lock, before any check runs. Returns how many it removed.
    pub fn remove_stale(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.scratch) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX))
            .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
            .count()
    }

    /// Checks `files` step by step, with `settings` in the app's
    /// environment, telling `report` of each; returns the steps that ran.
    pub async fn check(
        &self,
        files: &[FileContent],
        settings: &Variables,
        report: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Vec<StepOutcome>, CheckError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let checker = self.clone();
        let files = files.to_vec();
        let settings = settings.clone();
        let mut work =
            tokio::task::spawn_blocking(move || checker.check_blocking(&files, settings, &tx));
        loop {
            tokio::select! {
                Some(line) = rx.recv() => report(line),
                joined = &mut work => {
                    while let Ok(line) = rx.try_recv() {
                        report(line);
                    }
                    return joined.map_err(|e| CheckError::Broken(e.to_string()))?;
                }
            }
        }
    }

    fn check_blocking(
        &self,
        files: &[FileContent],
        settings: Variables,
        report: &tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Vec<StepOutcome>, CheckError> {
        let scratch = Scratch::make(&self.scratch, files, settings)?;
        let mut steps = Vec::new();
        let mut step = |which: Step, run: &mut dyn FnMut() -> Result<(), Fault>| {
            let _ = report.send(format!("check: {}", which.doing()));
            let started = Instant::now();
            let result = run();
            steps.push(StepOutcome {
                step: which,
                passed: result.is_ok(),
                millis: started.elapsed().as_millis() as u64,
            });
            result.map_err(|error| Failure {
                step: which,
                error: scratch.without_paths(&error.0),
            })
        };
        let outcome = (|| {
            step(Step::Install, &mut || self.install(&scratch, files))?;
            let env = env_of(&self.settings, files);
            let mut target = None;
            step(Step::Import, &mut || {
                let found = shape::target(files).map_err(Fault::of)?;
                let _ = report.send(format!("check: the app is {}", found.describe()));
                self.import(&scratch, &env, &found)?;
                target = Some(found);
                Ok(())
            })?;
            let target = target.unwrap_or_else(Target::convention);
            step(Step::Start, &mut || self.start(&scratch, &env, &target))?;
            if files.iter().any(|f| mends::is_test_file(&f.path)) {
                step(Step::Tests, &mut || self.tests(&scratch, &env))?;
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => Ok(steps),
            Err(failure) => Err(CheckError::Failed { steps, failure }),
        }
    }

    fn install(&self, scratch: &Scratch, files: &[FileContent]) -> Result<(), Fault> {
        let log = scratch.log(Step::Install);
        let how = pyenv::Installing {
            protections: &self.protections,
            settings: &self.settings,
            log: &log,
        };
        let requirements = requirements::of(files).map_err(Fault::of)?;
        match pyenv::prepare(
            &self.settings.env_dir,
            &self.settings.python,
            self.settings.installer,
            &requirements,
            &how,
        ) {
            Ok(_) => Ok(()),
            Err(e) => Err(Fault(format!("{e}\n{}", relevant(&log)))),
        }
    }

    fn import(&self, scratch: &Scratch, env: &PythonEnv, target: &Target) -> Result<(), Fault> {
        let args = vec!["-c".to_string(), target.import_statement()];
        let log = scratch.log(Step::Import);
        self.run_to_end(scratch, env, None, args, &log, IMPORT_LIMIT)
    }

    /// Runs the app's tests with pytest. pytest is a tool of the checks,
    /// not of the app: unless the app's own requirements bring it, it comes
    /// from an environment of the checks' own (shared, made once), put on
    /// the tests' `PYTHONPATH` and nowhere else.
    fn tests(&self, scratch: &Scratch, env: &PythonEnv) -> Result<(), Fault> {
        let args = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
            .map(String::from)
            .to_vec();
        let log = scratch.log(Step::Tests);
        let tools = match env.has_package("pytest") {
            true => None,
            false => Some(self.tools(&log)?),
        };
        self.run_to_end(scratch, env, tools.as_ref(), args, &log, TESTS_LIMIT)
    }

    /// The checks' own environment, with pytest, made once and shared.
    fn tools(&self, log: &LogFiles) -> Result<PythonEnv, Fault> {
        let how = pyenv::Installing {
            protections: &self.protections,
            settings: &self.settings,
            log,
        };
        pyenv::prepare(
            &self.settings.env_dir,
            &self.settings.python,
            self.settings.installer,
            CHECK_TOOLS,
            &how,
        )
        .map_err(|e| {
            Fault(format!(
                "could not install pytest for the checks: {e}\n{}",
                relevant(log)
            ))
        })
    }

    /// Runs the app's Python with `args` in the scratch folder, confined,
    /// until it ends or `limit` passes; `tools` adds an environment's
    /// packages after the app's own.
    fn run_to_end(
        &self,
        scratch: &Scratch,
        env: &PythonEnv,
        tools: Option<&PythonEnv>,
        args: Vec<String>,
        log: &LogFiles,
        limit: Duration,
    ) -> Result<(), Fault> {
        let mut spec = self.spec(scratch, env, args, log, free_port().map_err(Fault::of)?);
        if let Some(tools) = tools {
            spec.sandbox.read_only.push(tools.root.clone());
            if let Some(site) = tools.site_packages() {
                spec.env
                    .push(("PYTHONPATH".into(), site.display().to_string()));
            }
        }
        let ran = confine::run_confined(&spec, log, limit);
        if let Some(why) = limits::take_reason(log.path()) {
            return Err(Fault(format!(
                "it went past a limit: {why}\n{}",
                relevant(log)
            )));
        }
        match ran {
            Ok(Some(status)) if status.success() => Ok(()),
            Ok(Some(status)) => Err(Fault(format!("it ended with {status}\n{}", relevant(log)))),
            Ok(None) => Err(Fault(format!(
                "it took longer than {} s and was stopped\n{}",
                limit.as_secs(),
                relevant(log)
            ))),
            Err(e) => Err(Fault(format!("could not start it: {e}"))),
        }
    }

    /// Starts the app as `run` would, waits until it answers, and asks for
    /// `/`: any answer below 500 passes.
    fn start(&self, scratch: &Scratch, env: &PythonEnv, target: &Target) -> Result<(), Fault> {
        let port = free_port().map_err(Fault::of)?;
        let log = scratch.log(Step::Start);
        let spec = self.spec(scratch, env, launch::python_args(target, port), &log, port);
        let errors = log.open_for_child().map_err(Fault::of)?;
        let mut child = shim::start(&spec, errors.into()).map_err(Fault::of)?;
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let limit = self.settings.start_timeout;
        let deadline = Instant::now() + limit;
        let result = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(Fault(format!(
                    "the app ended with {status} before it answered HTTP\n{}",
                    relevant(&log)
                )));
            }
            // An app that accepts but never answers must not hold the step
            // past its limit.
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(code) = get_status(port, "/", left.max(Duration::from_millis(100))) {
                break match code {
                    500.. => {
                        // The traceback is written before the answer, but
                        // the shim copies it to the log on its own time.
                        let written = Instant::now() + Duration::from_secs(2);
                        while Instant::now() < written && !relevant(&log).contains("Traceback") {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(Fault(format!("GET / answered {code}\n{}", relevant(&log))))
                    }
                    _ => Ok(()),
                };
            }
            if Instant::now() > deadline {
                break Err(Fault(format!(
                    "the app did not answer HTTP within {} s\n{}",
                    limit.as_secs(),
                    relevant(&log)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The shim leads its group; its init and the app die with it.
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        // A limit the app went past explains the rest.
        match limits::take_reason(log.path()) {
            Some(why) => Err(Fault(format!(
                "it went past a limit: {why}\n{}",
                relevant(&log)
            ))),
            None => result,
        }
    }

    fn spec(
        &self,
        scratch: &Scratch,
        env: &PythonEnv,
        args: Vec<String>,
        log: &LogFiles,
        port: u16,
    ) -> ShimSpec {
        ShimSpec {
            program: env.python(),
            args,
            dir: scratch.app.clone(),
            env: launch::environment(&env.root, port, &scratch.tmp, &scratch.settings),
            log: log.path().to_path_buf(),
            log_max_bytes: log.max_bytes(),
            log_files: log.files(),
            sandbox: Sandbox::for_app(
                &self.protections,
                &self.settings,
                &scratch.app,
                &scratch.tmp,
                &env.root,
                None,
                port,
            ),
        }
    }
}

/// The environment `run` uses for these files (ready once installed,
/// which also read their requirements).
fn env_of(settings: &AppSettings, files: &[FileContent]) -> PythonEnv {
    let requirements = requirements::of(files).unwrap_or_default();
    let (root, _) = pyenv::locate(&settings.env_dir, &requirements);
    PythonEnv { root }
}

/// One check's folder: the app's files, a private temporary folder, and
/// the steps' logs; removed when the check ends.
struct Scratch {
    root: PathBuf,
    app: PathBuf,
    tmp: PathBuf,
    /// The app's settings, as its environment has them.
    settings: Variables,
}

impl Scratch {
    fn make(
        parent: &Path,
        files: &[FileContent],
        settings: Variables,
    ) -> Result<Scratch, CheckError> {
        use std::os::unix::fs::DirBuilderExt;
        let broken = |e: std::io::Error| CheckError::Broken(e.to_string());
        let name = format!("{SCRATCH_PREFIX}{}", hex::encode(rand::random::<[u8; 8]>()));
        let root = parent.join(name);
        let (app, tmp) = (root.join("app"), root.join("tmp"));
        for dir in [&app, &tmp] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(broken)?;
        }
        let scratch = Scratch {
            root,
            app,
            tmp,
            settings,
        };
        folder::write(&scratch.app, files).map_err(broken)?;
        Ok(scratch)
    }

    fn log(&self, step: Step) -> LogFiles {
        LogFiles::new(
            self.root.join(format!("{}.log", step.as_str())),
            STEP_LOG_BYTES,
            1,
        )
    }

    /// `text` with the scratch folder's paths made relative: the model and
    /// the user see `app.py`, and the same error reads the same each round.
    fn without_paths(&self, text: &str) -> String {
        let app = format!("{}/", self.app.display());
        let root = format!("{}/", self.root.display());
        text.replace(&app, "").replace(&root, "")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A port nobody listens on now (the kernel's pick).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The status code of `GET path` on the app, if it answers HTTP within
/// `timeout`.
fn get_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    let text = std::str::from_utf8(&head).ok()?;
    text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// The part of a step's output that explains a failure: from the last
/// traceback on when there is one, else the last lines; at most
/// `MAX_ERROR_BYTES`, keeping the end, where the error is.
fn relevant(log: &LogFiles) -> String {
    relevant_lines(&log.tail(200).unwrap_or_default())
}
