//! What an app's task does to processes, behind a small trait: start one,
//! adopt one, signal it, wait for its end. [`Shim`] does it for real (the
//! app under its shim, watched through a pidfd); the task's tests hand a
//! fake whose processes end when the test says.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::app::{AppConfig, Launch};
use super::lifecycle::Exit;
use crate::confine::cgroup::{CgroupLimits, Cgroups};
use crate::confine::limits;
use crate::confine::shim::{self, ShimSpec};
use crate::confine::Sandbox;
use crate::process::launch;
use crate::process::procfs::{self, ExitInfo, PidFd};

/// Why no process could be started or adopted.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Its private temporary folder could not be made.
    #[error("cannot make {}: {source}", path.display())]
    Tmp {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its cgroup could not be made.
    #[error("cannot make the app's cgroup: {0}")]
    Cgroup(std::io::Error),
    /// Its log could not be opened for the shim.
    #[error("cannot open its log: {0}")]
    Log(std::io::Error),
    /// The shim did not start.
    #[error("cannot start the app's shim: {0}")]
    Shim(std::io::Error),
    /// The process could not be watched (it is gone, or another took its pid).
    #[error("cannot watch pid {pid}: {source}")]
    Watch {
        /// The process.
        pid: i32,
        /// Why.
        source: std::io::Error,
    },
    /// The process's start time could not be read.
    #[error("cannot read pid {pid}: {source}")]
    Read {
        /// The process.
        pid: i32,
        /// Why.
        source: std::io::Error,
    },
    /// The run could not be recorded; the process was killed.
    #[error("cannot record the run: {0}")]
    Record(#[from] crate::db::DbError),
}

/// How a process ended, as its task sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its exit.
    pub exit: Exit,
    /// Why its shim stopped it, when it went past a limit.
    pub over_limit: Option<String>,
}

/// Starts and adopts an app's processes.
pub trait Spawner: Send + Sync + 'static {
    /// A process it starts or adopts.
    type Process: AppProcess;

    /// Starts the app as `launch` says.
    fn spawn(
        &self,
        cfg: &AppConfig,
        launch: &Launch,
    ) -> impl Future<Output = Result<Self::Process, SpawnError>> + Send;

    /// Watches a process a previous daemon started, if it is still that one.
    fn adopt(
        &self,
        cfg: &AppConfig,
        pid: i32,
        start_ticks: u64,
    ) -> Result<Self::Process, SpawnError>;

    /// Frees what the app held besides its processes (its cgroup), once it
    /// has none.
    fn release(&self, cfg: &AppConfig) -> impl Future<Output = ()> + Send;
}

/// One process of an app.
pub trait AppProcess: Send + Sync + 'static {
    /// Its pid (the shim's).
    fn pid(&self) -> i32;
    /// Its start time in clock ticks after boot, against PID reuse.
    fn start_ticks(&self) -> u64;
    /// Whether this daemon started it (and so reaps it).
    fn is_child(&self) -> bool;
    /// The app's own process below the shim, once it runs.
    fn app_pid(&self) -> Option<i32>;
    /// Resolves once it has ended, reaped when it is a child; cancel-safe.
    fn ended(&self) -> impl Future<Output = Ended> + Send;
    /// SIGTERM to the shim alone, which hands it on to the app once.
    fn terminate(&self);
    /// SIGKILL to its whole tree; only while it has not been reaped.
    fn kill(&self);
    /// SIGKILL to whatever it left in its group and cgroup, once it ended.
    fn kill_leftovers(&self);
}

/// The real spawner: the app under its shim (see `confine::shim`).
pub struct Shim;

/// An app's shim, watched through a pidfd.
pub struct ShimProcess {
    pidfd: PidFd,
    start_ticks: u64,
    child: bool,
    /// Where its shim records why it stopped the app.
    log: Option<PathBuf>,
    cgroup: Option<(Arc<Cgroups>, i64)>,
}

impl Spawner for Shim {
    type Process = ShimProcess;

    /// Starts the app under its shim: its own session, its folder, a clean
    /// environment, its confinement and limits, and its output through the
    /// shim into its capped log.
    async fn spawn(&self, cfg: &AppConfig, launch: &Launch) -> Result<ShimProcess, SpawnError> {
        let tmp = cfg
            .settings
            .projects_dir
            .join("tmp")
            .join(format!("project_{}", cfg.project_id));
        fresh_private_dir(&tmp).map_err(|source| SpawnError::Tmp {
            path: tmp.clone(),
            source,
        })?;
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
                    .map_err(SpawnError::Cgroup)?,
            ),
            None => None,
        };
        let spec = ShimSpec {
            program: launch.env.python(),
            args: launch::python_args(&launch.target, cfg.port),
            dir: launch.dir.clone(),
            env: launch::environment(&launch.env.root, cfg.port, &tmp, &launch.settings),
            log: cfg.log.path().to_path_buf(),
            log_max_bytes: cfg.log.max_bytes(),
            log_files: cfg.log.files(),
            sandbox: Sandbox::for_app(
                &cfg.protections,
                settings,
                &launch.dir,
                &tmp,
                &launch.env.root,
                cgroup,
                cfg.port,
            ),
        };
        tracing::debug!(project_id = cfg.project_id, sandbox = ?spec.sandbox, "starting app");
        // A reason left by an earlier run is not this run's.
        limits::clear_reason(cfg.log.path());
        // What the shim itself says goes to the app's log too.
        let shim_errors = cfg.log.open_for_child().map_err(SpawnError::Log)?;
        let child = shim::start(&spec, shim_errors.into()).map_err(SpawnError::Shim)?;
        let pid = child.id() as i32;
        // The pidfd, not the std handle, watches the child; dropping the
        // handle neither waits nor kills.
        drop(child);
        // Until it is watched, a failure must not leave the app running unseen.
        let abandon = |e: SpawnError| {
            kill_tree(pid);
            procfs::reap(pid);
            e
        };
        let pidfd =
            PidFd::open(pid).map_err(|source| abandon(SpawnError::Watch { pid, source }))?;
        let start_ticks = procfs::read_stat(pid)
            .map(|s| s.start_ticks)
            .map_err(|source| abandon(SpawnError::Read { pid, source }))?;
        Ok(ShimProcess {
            pidfd,
            start_ticks,
            child: true,
            log: Some(cfg.log.path().to_path_buf()),
            cgroup: cfg.cgroups.clone().map(|c| (c, cfg.project_id)),
        })
    }

    fn adopt(
        &self,
        cfg: &AppConfig,
        pid: i32,
        start_ticks: u64,
    ) -> Result<ShimProcess, SpawnError> {
        // Open first, then check the start time: no gap for the pid to be reused.
        let pidfd = PidFd::open_checked(pid, start_ticks)
            .map_err(|source| SpawnError::Watch { pid, source })?;
        Ok(ShimProcess {
            pidfd,
            start_ticks,
            child: false,
            log: Some(cfg.log.path().to_path_buf()),
            cgroup: cfg.cgroups.clone().map(|c| (c, cfg.project_id)),
        })
    }

    /// Kills what is left in the app's cgroup and removes it once empty.
    async fn release(&self, cfg: &AppConfig) {
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
}

impl AppProcess for ShimProcess {
    fn pid(&self) -> i32 {
        self.pidfd.pid()
    }

    fn start_ticks(&self) -> u64 {
        self.start_ticks
    }

    fn is_child(&self) -> bool {
        self.child
    }

    fn app_pid(&self) -> Option<i32> {
        // The shim, its init, then the app itself.
        procfs::tree_pids(self.pid()).get(2).copied()
    }

    async fn ended(&self) -> Ended {
        let _ = self.pidfd.exited().await;
        // The pidfd fires as the process becomes a zombie; its status is
        // ready. Another daemon's process is reaped by its parent.
        let info = if self.child {
            procfs::reap(self.pid())
        } else {
            None
        };
        let (code, signal) = match info {
            Some(ExitInfo::Code(c)) => (Some(c), None),
            Some(ExitInfo::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        Ended {
            exit: Exit {
                code,
                signal,
                how: describe(info.as_ref()),
            },
            // Read also for an adopted app: its shim wrote it whoever watched.
            over_limit: self.log.as_deref().and_then(limits::take_reason),
        }
    }

    fn terminate(&self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
    }

    fn kill(&self) {
        kill_tree(self.pid());
    }

    fn kill_leftovers(&self) {
        // No scan of /proc (the pid may be another's by now): a signal to
        // an empty group costs nothing.
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        if let Some((cgroups, project_id)) = &self.cgroup {
            cgroups.kill(*project_id);
        }
    }
}

/// Stops a process group this daemon does not supervise (one left running
/// by a previous daemon that nobody wants any more), with the steps a
/// supervised app's stop takes: SIGTERM to the shim, SIGKILL to its tree
/// after `grace`, then to whatever is left in its group.
pub async fn terminate(pid: i32, grace: Duration) {
    let Ok(pidfd) = PidFd::open(pid) else {
        return;
    };
    let proc = ShimProcess {
        pidfd,
        start_ticks: 0,
        child: false,
        log: None,
        cgroup: None,
    };
    proc.terminate();
    if tokio::time::timeout(grace, proc.ended()).await.is_err() {
        proc.kill();
        proc.ended().await;
    }
    proc.kill_leftovers();
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

/// Empties (or makes) a folder only its owner may use.
fn fresh_private_dir(dir: &Path) -> std::io::Result<()> {
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
