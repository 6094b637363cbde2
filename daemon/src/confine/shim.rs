//! The app's shim: a small process per app, the program `appforge-shim`
//! installed beside `appforged`, started by the daemon as
//! `appforge-shim __app-shim` with the app's spec on its stdin.
//!
//! ```text
//! appforged ── shim (log process, host PID namespace)
//!                └── init (PID 1 of the app's namespace: forwards signals, reaps)
//!                      └── python -m flask …  (Landlock, rlimits; output into the shim's pipe)
//! ```
//!
//! Why a process of its own rather than a pipe read by the daemon: the app
//! must keep running while the daemon restarts, and its log cap must hold
//! meanwhile. The shim lives as long as the app, owns the only writer of
//! its log, and ends with the app's own exit status (or signal), so the
//! daemon watches it as it would the app. It is single-threaded, so it may
//! make namespaces and fork freely.
//!
//! Why a program of its own rather than the daemon's binary run again: a
//! shim and its init (a fork of it) live as long as their app, so what they
//! hold is paid once per app. The daemon's binary is large and
//! position-independent, and the relocations the loader writes into it are
//! private to each process; the shim's program holds only this module's
//! code and, from `make release`, is linked statically at a fixed address,
//! so it has nothing to relocate.
//!
//! When the app ends, init kills whatever the app left in its namespace;
//! without namespaces, init is a child subreaper and kills the app's
//! descendants it can find. A SIGKILL of the shim kills init (parent-death
//! signal) and with it the namespace.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, raise, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    dup2_stderr, dup2_stdin, dup2_stdout, execve, fork, getpid, getppid, pipe2, ForkResult, Pid,
};
use serde::{Deserialize, Serialize};

use super::{filesystem, limits, Protections, Sandbox};
use crate::process::logfile::{note_bytes, LogFiles, LogWriter};
use crate::process::procfs;

pub use crate::process::SHIM_ARG;
/// The second argument that makes the shim report what the kernel allows.
pub const PROBE_ARG: &str = "--probe";

/// The query the daemon's health probes carry; the access-log lines that
/// hold it are not written to the app's log (a probe every 30 s would
/// otherwise be most of an idle app's log).
pub const PROBE_MARKER: &str = "appforge-probe=1";

/// Largest spec read from stdin.
const MAX_SPEC_BYTES: u64 = 1024 * 1024;
/// Bytes read from the app's output at a time.
const CHUNK: usize = 64 * 1024;
/// How long output is still read after the app ended, if something it
/// left holds the pipe open.
const DRAIN: Duration = Duration::from_secs(2);

/// Everything the shim needs to run one app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimSpec {
    /// The program (the environment's Python).
    pub program: PathBuf,
    /// Its arguments, without the program.
    pub args: Vec<String>,
    /// The app's folder, its working directory.
    pub dir: PathBuf,
    /// The app's whole environment.
    pub env: Vec<(String, String)>,
    /// The live log file.
    pub log: PathBuf,
    /// The log's cap per file.
    pub log_max_bytes: u64,
    /// Log files kept.
    pub log_files: usize,
    /// Confinement and limits.
    pub sandbox: Sandbox,
}

/// The shim's program, in the folder of `appforged`'s own.
pub const PROGRAM: &str = "appforge-shim";

/// Why the shim's program cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The daemon cannot tell where its own binary is.
    #[error("cannot tell where appforged's own binary is, to find {PROGRAM} beside it: {0}")]
    OwnPath(#[source] std::io::Error),
    /// The shim's program is not beside the daemon's, or cannot be opened.
    #[error(
        "cannot open {}: {source}; every app runs under {PROGRAM}, which is built with \
         appforged (`make build`, `make release`, `cargo install`) and must be installed in \
         the same folder",
        path.display()
    )]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The shim's program, opened once; see [`program`].
static PROGRAM_FILE: OnceLock<(File, PathBuf)> = OnceLock::new();

/// Opens the shim's program beside the daemon's binary, once, and returns
/// it with its path. Shims are started from this open file, so every shim a
/// daemon starts is the program installed with it, reading the spec it
/// writes, even after an upgrade replaced the files on disk.
pub fn program() -> Result<&'static (File, PathBuf), ProgramError> {
    if let Some(opened) = PROGRAM_FILE.get() {
        return Ok(opened);
    }
    let own = std::env::current_exe().map_err(ProgramError::OwnPath)?;
    // A replaced binary reads as "/usr/bin/appforged (deleted)": its
    // folder is still the one it was installed in.
    let path = own.parent().unwrap_or(Path::new("/")).join(PROGRAM);
    let file = File::open(&path).map_err(|source| ProgramError::Missing {
        path: path.clone(),
        source,
    })?;
    Ok(PROGRAM_FILE.get_or_init(|| (file, path)))
}

/// A command that runs the shim's program, its first argument [`SHIM_ARG`]
/// (by which the daemon finds its shims in /proc).
pub fn command() -> std::io::Result<Command> {
    let (file, path) = program().map_err(std::io::Error::other)?;
    // The child runs the open file itself: its descriptor is inherited
    // across fork and closed by the exec (close-on-exec) that reads it.
    let mut command = Command::new(format!("/proc/self/fd/{}", file.as_raw_fd()));
    command.arg0(path).arg(SHIM_ARG);
    Ok(command)
}

/// Starts a shim for `spec` in a session of its own and hands it the spec;
/// what the shim itself has to say (it fails only when the system does)
/// goes to `errors`.
pub fn start(spec: &ShimSpec, errors: Stdio) -> std::io::Result<Child> {
    let json = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
    let mut command = command()?;
    command
        .current_dir(&spec.dir)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(errors);
    // SAFETY: between fork and exec only async-signal-safe system calls run.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    // The spec is a few KiB, and an app's settings at most 32 KiB more
    // (projects::settings::MAX_TOTAL): it fits the pipe, so this does not
    // block.
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&json)?;
    }
    Ok(child)
}

/// The shim's program: `appforge-shim __app-shim` runs the app whose spec
/// is on stdin and ends as it ended; `appforge-shim __app-shim --probe`
/// prints what the kernel allows.
pub fn main() -> ! {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(SHIM_ARG)) {
        let _ = writeln!(
            std::io::stderr(),
            "{PROGRAM} runs one app for appforged, which starts it; it is not run by hand"
        );
        std::process::exit(2);
    }
    // Started from the daemon's open file (see [`command`]), it would be
    // named by the descriptor's number in `top` and `ps -e`.
    let _ = nix::sys::prctl::set_name(c"appforge-shim");
    let code = if args.next().as_deref() == Some(OsStr::new(PROBE_ARG)) {
        probe()
    } else {
        match serve() {
            Ok(never) => match never {},
            Err(e) => {
                note_to_log(&format!("the app's shim failed: {e}"));
                125
            }
        }
    };
    std::process::exit(code);
}

/// Prints what the kernel allows, as JSON.
fn probe() -> i32 {
    let namespaces = enter_namespaces()
        .map_err(|e| e.to_string())
        .and_then(|()| {
            // A PID namespace only takes effect for children: make one.
            // SAFETY: this process is single-threaded.
            match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
                ForkResult::Child => std::process::exit(0),
                ForkResult::Parent { child } => match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                    other => Err(format!("a child in the namespace did not run: {other:?}")),
                },
            }
        });
    let protections = Protections {
        landlock_abi: filesystem::kernel_abi(),
        namespaces: namespaces.is_ok(),
        namespaces_error: namespaces.err(),
        ..Protections::default()
    };
    match serde_json::to_writer(std::io::stdout(), &protections) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Moves this process into new user and PID namespaces, keeping its user
/// and group ids; its next child is PID 1 of the new namespace.
fn enter_namespaces() -> Result<(), NamespaceError> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID)
        .map_err(|e| NamespaceError::Refused(format!("unshare: {e}")))?;
    // Past this point the process is in the new namespaces: a failure
    // cannot fall back to running without them.
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| NamespaceError::HalfMade(format!("{file}: {e}")))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1"))?;
    write("gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// Why namespaces could not be had.
#[derive(Debug)]
enum NamespaceError {
    /// The kernel refused them: the app may run without.
    Refused(String),
    /// They were made but could not be set up: nothing may run here.
    HalfMade(String),
}

impl std::fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NamespaceError::Refused(e) | NamespaceError::HalfMade(e) => f.write_str(e),
        }
    }
}

/// How the app ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Code(i32),
    Signal(i32),
}

/// What init tells the shim once the app has ended: how, and whether the
/// processes it left behind were more than its task limit. One byte of kind
/// (upper case when over the limit), four of value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    outcome: Outcome,
    over_tasks: bool,
}

impl Report {
    fn encode(&self) -> [u8; 5] {
        let (kind, value) = match self.outcome {
            Outcome::Code(c) => (b'c', c),
            Outcome::Signal(s) => (b's', s),
        };
        let kind = if self.over_tasks {
            kind.to_ascii_uppercase()
        } else {
            kind
        };
        let mut out = [kind, 0, 0, 0, 0];
        out[1..].copy_from_slice(&value.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Report> {
        let value = i32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
        let kind = *bytes.first()?;
        let outcome = match kind.to_ascii_lowercase() {
            b'c' => Outcome::Code(value),
            b's' => Outcome::Signal(value),
            _ => return None,
        };
        Some(Report {
            outcome,
            over_tasks: kind.is_ascii_uppercase(),
        })
    }
}

/// Signals the shim and init handle themselves.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGCHLD,
    ] {
        set.add(sig);
    }
    set
}

fn serve() -> Result<std::convert::Infallible, String> {
    // The shim mirrors the app's crash by dying of the same signal: without
    // a core file.
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_SPEC_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read the spec: {e}"))?;
    let spec: ShimSpec =
        serde_json::from_slice(&raw).map_err(|e| format!("bad spec on stdin: {e}"))?;
    if let Some(cgroup) = &spec.sandbox.cgroup {
        // Before anything forks: every process of the app is then in it.
        std::fs::write(cgroup.join("cgroup.procs"), "0")
            .map_err(|e| format!("cannot join the cgroup {}: {e}", cgroup.display()))?;
    }
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    dup2_stdin(&null).map_err(|e| format!("dup2: {e}"))?;

    let mut log = LogFiles::new(spec.log.clone(), spec.log_max_bytes, spec.log_files)
        .writer()
        .map_err(|e| format!("cannot open the log {}: {e}", spec.log.display()))?;
    let (out_read, out_write) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (status_read, status_write) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;

    let mut namespaces = spec.sandbox.namespaces;
    if namespaces {
        match enter_namespaces() {
            Ok(()) => {}
            Err(NamespaceError::Refused(e)) => {
                let _ = log.note(&format!("no namespaces for this app: {e}"));
                namespaces = false;
            }
            Err(e @ NamespaceError::HalfMade(_)) => {
                return Err(format!("the app's namespaces could not be set up: {e}"))
            }
        }
    }
    let signals = handled_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let shim = getpid();
    // SAFETY: the shim is single-threaded.
    let init = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(out_read);
            drop(status_read);
            // Init never writes the log: the shim is its one writer.
            drop(log);
            run_init(&spec, shim, namespaces, out_write, status_write)
        }
        ForkResult::Parent { child } => child,
    };
    drop(out_write);
    drop(status_write);
    let mut guard = LimitGuard {
        watch: limits::Watch::new(
            spec.sandbox.max_tasks,
            spec.sandbox.max_disk,
            spec.sandbox.read_write.clone(),
        ),
        log: spec.log.clone(),
        namespaces,
        tripped: false,
    };
    let init_status = pump(init, &signals, &out_read, &mut log, &mut guard)?;
    let mut told = Vec::new();
    let _ = std::fs::File::from(status_read).read_to_end(&mut told);
    let report = Report::decode(&told);
    if let (
        Some(max),
        Some(Report {
            over_tasks: true, ..
        }),
    ) = (spec.sandbox.max_tasks, report)
    {
        guard.trip(&limits::tasks_reason(max), &mut log);
    }
    guard.last_check(&mut log);
    mirror(report.map_or(
        match init_status {
            WaitStatus::Exited(_, code) => Outcome::Code(code),
            WaitStatus::Signaled(_, sig, _) => Outcome::Signal(sig as i32),
            _ => Outcome::Code(125),
        },
        |r| r.outcome,
    ))
}

/// Copies the app's output into its log and forwards stop signals to init
/// until init has ended and the output is drained. Returns init's status.
fn pump(
    init: Pid,
    signals: &SigSet,
    output: &OwnedFd,
    log: &mut LogWriter,
    guard: &mut LimitGuard,
) -> Result<WaitStatus, String> {
    let sfd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    // Not zeroed: only the bytes a read fills are ever touched, so a quiet
    // app's shim holds a page of it, not all of it.
    let mut buf = Vec::with_capacity(CHUNK);
    let mut probes = ProbeLines::default();
    let mut ended: Option<(WaitStatus, Instant)> = None;
    let mut output_open = true;
    loop {
        if let Some((status, at)) = ended {
            if !output_open || at.elapsed() > DRAIN {
                // The app's last words, even without a newline.
                let _ = log.write(&std::mem::take(&mut probes.partial));
                return Ok(status);
            }
        }
        let timeout = match ended {
            Some(_) => PollTimeout::from(100u16),
            None => guard.timeout(),
        };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if output_open {
            fds.push(PollFd::new(output.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let output_ready = fds
            .get(1)
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty());
        drop(fds);
        if output_ready {
            match read_into(output, &mut buf) {
                Ok(0) => output_open = false,
                Ok(_) => {
                    // A full disk must not stop the app: its output is dropped.
                    let _ = log.write(&probes.filter(&buf));
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => output_open = false,
            }
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = Signal::try_from(info.ssi_signo as i32).ok();
            match sig {
                Some(Signal::SIGCHLD) => {
                    if let Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) =
                        waitpid(init, Some(WaitPidFlag::WNOHANG))
                    {
                        ended = Some((status, Instant::now()));
                    }
                }
                Some(sig) => {
                    let _ = kill(init, sig);
                }
                None => {}
            }
        }
        if ended.is_none() {
            guard.enforce(init, log);
        }
    }
}

/// Reads from `fd` into `buf`, which it empties first, at most its
/// capacity; the bytes read.
fn read_into(fd: &OwnedFd, buf: &mut Vec<u8>) -> Result<usize, Errno> {
    buf.clear();
    // SAFETY: read writes at most `capacity` bytes into the vector's own
    // spare capacity, and the length then covers only the bytes it wrote.
    unsafe {
        let n = nix::libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.capacity());
        let n = usize::try_from(Errno::result(n)?).unwrap_or(0);
        buf.set_len(n);
        Ok(n)
    }
}

/// The limits the shim holds the app to itself ([`limits`]), and how it
/// stops an app past one.
struct LimitGuard {
    watch: limits::Watch,
    /// The app's log, beside which the reason is recorded.
    log: PathBuf,
    namespaces: bool,
    /// Whether the app was stopped for a limit already.
    tripped: bool,
}

impl LimitGuard {
    /// How long `poll` may wait before the next measure is due.
    fn timeout(&self) -> PollTimeout {
        match self.watch.due_in().filter(|_| !self.tripped) {
            // Rounded up: rounded down, poll returns just before the
            // measure is due and the loop spins on zero timeouts until it is.
            Some(left) => PollTimeout::from(
                u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX),
            ),
            None => PollTimeout::NONE,
        }
    }

    /// Once the app has ended: the disk measure once more.
    fn last_check(&mut self, log: &mut LogWriter) {
        if self.tripped {
            return;
        }
        if let Some(reason) = self.watch.last_check() {
            self.trip(&reason, log);
        }
    }

    /// Records why the app went past a limit, once, and says so in the log:
    /// whoever sees the app end finds the reason.
    fn trip(&mut self, reason: &str, log: &mut LogWriter) {
        if self.tripped {
            return;
        }
        self.tripped = true;
        let _ = limits::record_reason(&self.log, reason);
        let _ = log.note(&format!("the app went past a limit: {reason}"));
    }

    /// Measures what is due; past a limit, records why, says so in the log
    /// and kills the app with every process it started.
    fn enforce(&mut self, init: Pid, log: &mut LogWriter) {
        if self.tripped || self.watch.due_in().is_none_or(|d| !d.is_zero()) {
            return;
        }
        let Some(reason) = self.watch.check(init.as_raw()) else {
            return;
        };
        // The record first: whoever sees the app end finds the reason.
        self.trip(&reason, log);
        if self.namespaces {
            // Init is PID 1 of the app's namespace: the kernel kills every
            // other process of the namespace with it.
            let _ = kill(init, Signal::SIGKILL);
            return;
        }
        // Without a namespace: the tree below init is stopped first, pass
        // after pass until no new process shows (a stopped one cannot
        // fork), then killed.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let fresh: Vec<i32> = procfs::tree_pids(init.as_raw())
                .into_iter()
                .skip(1)
                .filter(|pid| seen.insert(*pid))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for pid in fresh {
                let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            }
        }
        for pid in seen {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = kill(init, Signal::SIGKILL);
    }
}

/// Drops the access-log lines of the daemon's health probes from the app's
/// output, holding back a line cut between two reads until its end comes.
#[derive(Default)]
struct ProbeLines {
    partial: Vec<u8>,
}

impl ProbeLines {
    fn filter(&mut self, bytes: &[u8]) -> Vec<u8> {
        let marker = PROBE_MARKER.as_bytes();
        self.partial.extend_from_slice(bytes);
        let complete = self
            .partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        // A line longer than a read is passed on as it is.
        let complete = if complete == 0 && self.partial.len() >= CHUNK {
            self.partial.len()
        } else {
            complete
        };
        let mut out = Vec::with_capacity(complete);
        for line in self.partial[..complete].split_inclusive(|&b| b == b'\n') {
            if !line.windows(marker.len()).any(|w| w == marker) {
                out.extend_from_slice(line);
            }
        }
        self.partial.drain(..complete);
        out
    }
}

/// Ends the shim the way the app ended, so the daemon sees the app's own
/// exit code or signal.
fn mirror(outcome: Outcome) -> ! {
    match outcome {
        Outcome::Code(code) => std::process::exit(code),
        Outcome::Signal(sig) => {
            if let Ok(sig) = Signal::try_from(sig) {
                // SAFETY: restoring the default action installs no handler.
                let _ = unsafe { signal(sig, SigHandler::SigDfl) };
                let mut only = SigSet::empty();
                only.add(sig);
                let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
                let _ = raise(sig);
            }
            std::process::exit(128 + sig)
        }
    }
}

/// Init of the app's namespace (or, without one, the app's subreaper):
/// starts the app, forwards stop signals to it, reaps every process, and
/// when the app ends, kills what it left and reports how the app ended.
fn run_init(spec: &ShimSpec, shim: Pid, namespaces: bool, output: OwnedFd, status: OwnedFd) -> ! {
    // SAFETY: prctl with integer arguments touches no memory of ours.
    unsafe {
        nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL, 0, 0, 0);
        if !namespaces {
            nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    }
    // The shim may have died before the parent-death signal was set: then
    // nobody reads the status pipe (getppid says nothing across namespaces).
    if !namespaces && getppid() != shim || reader_is_gone(&status) {
        std::process::exit(1);
    }
    let init = getpid();
    // SAFETY: init is single-threaded.
    let app = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(status);
            exec_app(spec, namespaces, init, output)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            note_to_log(&format!("fork: {e}"));
            std::process::exit(125);
        }
    };
    drop(output);
    let signals = handled_signals();
    let outcome = loop {
        let Ok(sig) = signals.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(app, sig);
            continue;
        }
        let mut app_outcome = None;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == app => {
                    app_outcome = Some(Outcome::Code(code));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == app => {
                    app_outcome = Some(Outcome::Signal(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(outcome) = app_outcome {
            break outcome;
        }
    };
    // The shim counts the app's tasks on a timer, so a flood that the app
    // made and then ended between two counts would go unseen: what it left
    // behind is counted here, before it is killed.
    let over_tasks = spec
        .sandbox
        .max_tasks
        .is_some_and(|max| limits::count_tasks(own_pid(), max) > max);
    kill_the_rest(namespaces);
    let report = Report {
        outcome,
        over_tasks,
    };
    let _ = write_to(&status, &report.encode());
    std::process::exit(0);
}

/// This process's id as /proc names it: in its own PID namespace, init is
/// 1 to itself but has another number in the procfs it reads.
fn own_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str()?.parse().ok())
        .unwrap_or_else(|| getpid().as_raw())
}

/// Kills every process the app left behind and reaps them all.
fn kill_the_rest(namespaces: bool) {
    if namespaces {
        // From PID 1, -1 means every other process of the namespace.
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    } else {
        // Orphans were reparented to init (a subreaper): all are below it.
        for _ in 0..100 {
            let left = procfs::tree_pids(getpid().as_raw());
            if left.len() <= 1 {
                break;
            }
            for pid in left.into_iter().skip(1) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            reap_ready();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Bounded: a process that will not die must not keep init (and so the
    // app's exit) waiting for ever; what is left is the daemon's to kill.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Reaps every child that has ended.
fn reap_ready() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Whether nobody holds the read end of `pipe` any more.
fn reader_is_gone(pipe: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// The app's process: output into the pipe, limits, Landlock, then Python.
fn exec_app(spec: &ShimSpec, namespaces: bool, init: Pid, output: OwnedFd) -> ! {
    // Why the app did not start is appforge's to say: it goes to the log
    // itself (stderr, inherited from the shim), marked, through a copy that
    // exec closes, not into the pipe, where it would read as the app's.
    let log = nix::fcntl::fcntl(std::io::stderr(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .ok()
        // SAFETY: fcntl just returned this new descriptor; it is owned here alone.
        .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let fail = |what: String| -> ! {
        let line = note_bytes(&what);
        let _ = match &log {
            Some(log) => write_to(log, &line),
            None => std::io::stderr().write_all(&line),
        };
        // SAFETY: _exit ends the process without running anything else.
        unsafe { nix::libc::_exit(126) }
    };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // The Rust runtime ignores SIGPIPE; programs expect its default.
    // SAFETY: restoring the default action installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let sandbox = &spec.sandbox;
    if !namespaces {
        // Without a namespace to collapse, the app ends with its init.
        // SAFETY: prctl with integer arguments touches no memory of ours.
        unsafe {
            nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL, 0, 0, 0);
        }
        if getppid() != init {
            fail("the app's init ended before it started".into());
        }
    }
    let limits = [
        (Resource::RLIMIT_NOFILE, Some(sandbox.open_files)),
        (Resource::RLIMIT_CORE, Some(0)),
        (Resource::RLIMIT_AS, sandbox.address_space),
        (Resource::RLIMIT_FSIZE, sandbox.file_size),
    ];
    // In the app's own user namespace the kernel counts its processes apart
    // from the rest of its user's, so RLIMIT_NPROC is a hard stop between
    // two counts of the shim (never for root, which it exempts). It is set
    // just past the shim's limit, the shim and init included, so that the
    // shim still sees the app go past it and ends it failed.
    let nproc = sandbox
        .max_tasks
        .filter(|_| namespaces && !nix::unistd::getuid().is_root())
        .map(|max| max + 3);
    let limits = limits.into_iter().chain([(Resource::RLIMIT_NPROC, nproc)]);
    for (resource, limit) in limits {
        if let Some(limit) = limit {
            if let Err(e) = setrlimit(resource, limit, limit) {
                fail(format!("cannot set the limit {resource:?}: {e}"));
            }
        }
    }
    if let Err(e) = std::env::set_current_dir(&spec.dir) {
        fail(format!("cannot enter {}: {e}", spec.dir.display()));
    }
    if sandbox.landlock {
        match filesystem::restrict(
            &sandbox.read_write,
            &sandbox.read_only,
            sandbox.bind_port,
            &sandbox.connect_ports,
        ) {
            Ok(filesystem::Enforced::Not) => {
                fail("Landlock is not enforced by this kernel; the app was not started".into())
            }
            Ok(_) => {}
            Err(e) => fail(e),
        }
    }
    let cstring = |s: &[u8]| {
        CString::new(s)
            .unwrap_or_else(|_| fail("a command-line or environment entry holds a NUL byte".into()))
    };
    let program = cstring(spec.program.as_os_str().as_encoded_bytes());
    let mut argv = vec![program.clone()];
    argv.extend(spec.args.iter().map(|a| cstring(a.as_bytes())));
    let envp: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect();
    if dup2_stdout(&output).is_err() || dup2_stderr(&output).is_err() {
        fail("cannot connect the app's output".into());
    }
    // No descriptor of the shim's but the output reaches the app; the log's
    // copy is kept for a failed exec, which closes it when it succeeds.
    let kept = log.as_ref().map(|l| l.as_raw_fd() as u32);
    // SAFETY: closes descriptors from 3 up but the log's copy; none is used after this.
    unsafe {
        let close = |from: u32, to: u32| {
            if from <= to {
                nix::libc::syscall(nix::libc::SYS_close_range, from, to, 0u32);
            }
        };
        match kept {
            Some(kept) => {
                close(3, kept.saturating_sub(1));
                close(kept + 1, u32::MAX);
            }
            None => close(3, u32::MAX),
        }
    }
    let err = execve(&program, &argv, &envp).unwrap_err();
    fail(format!("cannot run {}: {err}", spec.program.display()))
}

/// Writes one of appforge's own lines into the log through stderr, which
/// the daemon opened on the log file (see [`start`]); marked, so it reads
/// as appforge's. The app's output never comes this way: only through the
/// pipe, where marks are escaped.
fn note_to_log(what: &str) {
    let _ = std::io::stderr().write_all(&note_bytes(what));
}

/// Writes all of `bytes` to a raw descriptor.
fn write_to(fd: &OwnedFd, bytes: &[u8]) -> std::io::Result<()> {
    let file = std::fs::File::from(fd.try_clone()?);
    (&file).write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_how_the_app_ended_and_whether_it_left_too_many_tasks() {
        for outcome in [Outcome::Code(0), Outcome::Code(-7), Outcome::Signal(9)] {
            for over_tasks in [false, true] {
                let report = Report {
                    outcome,
                    over_tasks,
                };
                assert_eq!(Report::decode(&report.encode()), Some(report));
            }
        }
        assert_eq!(Report::decode(b"x\0\0\0\0"), None);
        assert_eq!(Report::decode(b"c\0"), None);
    }

    #[test]
    fn probe_lines_are_dropped_and_others_kept_across_reads() {
        let mut probes = ProbeLines::default();
        let probe = format!("127.0.0.1 - - \"GET /healthz?{PROBE_MARKER} HTTP/1.1\" 200 -\n");
        let mut out = probes.filter(b"app says hi\n127.0.0.1 - - \"GET /healthz?appforge-");
        out.extend(probes.filter(b"probe=1 HTTP/1.1\" 200 -\npartial"));
        out.extend(probes.filter(b" line\n"));
        out.extend(probes.filter(probe.as_bytes()));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "app says hi\npartial line\n"
        );
        assert!(probes.partial.is_empty());
    }
}
