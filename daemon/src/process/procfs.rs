//! What /proc says about a process, and pidfds to learn when one exits.
//!
//! The supervisor must find its apps again after the daemon restarts, when they
//! are no longer its children: /proc gives their start time (guarding against
//! PID reuse) and process group, and a pidfd tells when any process exits
//! without polling and without being its parent.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{sysconf, Pid, SysconfVar};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The fields of /proc/PID/stat the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id (field 1).
    pub pid: i32,
    /// State letter (field 3): R, S, D, Z, X, T, …
    pub state: char,
    /// Parent process id (field 4).
    pub ppid: i32,
    /// Process group id (field 5).
    pub pgid: i32,
    /// User-mode CPU time in clock ticks (field 14).
    pub utime_ticks: u64,
    /// Kernel-mode CPU time in clock ticks (field 15).
    pub stime_ticks: u64,
    /// Start time in clock ticks after boot (field 22).
    pub start_ticks: u64,
    /// Resident set size in bytes (field 24, converted from pages).
    pub rss_bytes: u64,
}

impl ProcStat {
    /// Whether the process has exited (zombie or dead) and only its entry remains.
    pub fn is_gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of /proc/PID/stat; `None` when it is not in that format.
pub fn parse_stat(text: &[u8], page_size: u64) -> Option<ProcStat> {
    // comm (field 2) may hold spaces, ')' and bytes that are not UTF-8, but
    // nothing after it can hold ')', so the last ')' ends it; what is left
    // is ASCII. Read without copies: `ps` parses one of these an app.
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid: i32 = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut rest = std::str::from_utf8(&text[close + 1..])
        .ok()?
        .split_ascii_whitespace();
    // Field `n` (3 is the first after comm), asked for in increasing order.
    let mut next = 3;
    let mut field = |n: usize| {
        let found = rest.nth(n - next);
        next = n + 1;
        found
    };
    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    let ppid = field(4)?.parse().ok()?;
    let pgid = field(5)?.parse().ok()?;
    let utime_ticks = field(14)?.parse().ok()?;
    let stime_ticks = field(15)?.parse().ok()?;
    let start_ticks = field(22)?.parse().ok()?;
    let rss_pages: i64 = field(24)?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgid,
        utime_ticks,
        stime_ticks,
        start_ticks,
        // rss is a signed long in the kernel; never trust it to be positive.
        rss_bytes: u64::try_from(rss_pages)
            .unwrap_or(0)
            .saturating_mul(page_size),
    })
}

/// Reads and parses /proc/PID/stat.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    StatFile::open(pid)?.read()
}

/// A process's /proc/PID/stat, held open to be read again and again.
///
/// `ps` reads every app's stat on every call: a `pread` of an open file
/// skips the path lookup, open and close that cost most of a read by name.
/// The file stays bound to the process it was opened for, so once that
/// process is gone it reads as an error, never as another process that
/// got the same pid.
#[derive(Debug)]
pub struct StatFile {
    pid: i32,
    file: fs::File,
}

impl StatFile {
    /// Opens /proc/PID/stat.
    pub fn open(pid: i32) -> io::Result<StatFile> {
        let file = open_proc(pid, "stat")?;
        Ok(StatFile { pid, file })
    }

    /// The process id it was opened for.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads and parses the process's current figures.
    pub fn read(&self) -> io::Result<ProcStat> {
        // One read from the start into a buffer large enough for any stat
        // line (comm is at most 16 bytes), rather than a growing read; the
        // kernel makes the text afresh for each read at offset 0.
        let mut buf = [0u8; 1024];
        let n = self.file.read_at(&mut buf, 0)?;
        parse_stat(&buf[..n], page_size()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected format of /proc/{}/stat", self.pid),
            )
        })
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), 100 when unknown.
pub fn clock_ticks() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n.unsigned_abs(),
        _ => 100,
    }
}

/// Memory page size in bytes (`sysconf(_SC_PAGE_SIZE)`), 4096 when unknown.
pub fn page_size() -> u64 {
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n.unsigned_abs(),
        _ => 4096,
    }
}

/// Time since boot in clock ticks, from /proc/uptime, comparable with `start_ticks`.
pub fn uptime_ticks() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/uptime")?;
    parse_uptime(&text, clock_ticks()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected format of /proc/uptime",
        )
    })
}

/// Converts the first field of /proc/uptime ("12345.67") to ticks without float rounding.
fn parse_uptime(text: &str, ticks_per_sec: u64) -> Option<u64> {
    let first = text.split_ascii_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut frac_ticks = 0u64;
    let mut scale = 1u64;
    for c in frac.chars().take(9) {
        let digit = u64::from(c.to_digit(10)?);
        frac_ticks = frac_ticks * 10 + digit;
        scale *= 10;
    }
    Some(
        secs.saturating_mul(ticks_per_sec)
            .saturating_add(frac_ticks.saturating_mul(ticks_per_sec) / scale),
    )
}

/// `pid` and every process below it, parents first, found through
/// `/proc/PID/task/TID/children` rather than by scanning /proc; at most
/// 4096, so an app that forks wildly cannot make this slow.
pub fn tree_pids(pid: i32) -> Vec<i32> {
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() && found.len() < 4096 {
        let parent = found[next];
        next += 1;
        let Ok(tasks) = fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children
                .split_ascii_whitespace()
                .filter_map(|c| c.parse().ok())
            {
                if found.len() < 4096 && !found.contains(&child) {
                    found.push(child);
                }
            }
        }
    }
    found
}

/// Whether `pid` is an app's shim (or its init, a fork of it): its first
/// argument is [`super::SHIM_ARG`], whichever program runs it
/// (`appforge-shim`, or `appforged` of earlier versions).
pub fn is_app_shim(pid: i32) -> bool {
    let shim = super::SHIM_ARG.as_bytes();
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).nth(1) == Some(shim))
}

/// The app shims working in a folder under `projects_dir`: one scan of
/// /proc, made once at start-up.
pub fn app_shims_in(projects_dir: &std::path::Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| is_app_shim(*pid))
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(projects_dir))
        })
        // A shim's init is a shim too: only the top of each app counts.
        .filter(|pid| read_stat(*pid).is_ok_and(|s| !is_app_shim(s.ppid)))
        .collect()
}

/// Whether `pid` is a live process that started at `start_ticks` (guards re-adoption against PID reuse).
pub fn is_same_process(pid: i32, start_ticks: u64) -> bool {
    match read_stat(pid) {
        Ok(stat) => !stat.is_gone() && stat.start_ticks == start_ticks,
        Err(_) => false,
    }
}

/// Average CPU use over a process's life in percent of one CPU: `busy` CPU
/// time since `start_ticks`, both against `uptime_ticks` (ticks after boot,
/// `ticks_per_sec` a second); 0 when its age is 0.
pub fn cpu_percent(busy: Duration, start_ticks: u64, uptime_ticks: u64, ticks_per_sec: u64) -> f64 {
    let age = uptime_ticks.saturating_sub(start_ticks);
    if age == 0 {
        return 0.0;
    }
    busy.as_secs_f64() * ticks_per_sec as f64 / age as f64 * 100.0
}

/// The CPU time the process `pid` has used so far, all its threads: one
/// system call on its CPU clock, where /proc/PID/stat would have the kernel
/// write out fifty-two fields. `None` once it has exited.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    if pid <= 0 {
        return None;
    }
    let clock = nix::time::clock_getcpuclockid(Pid::from_raw(pid)).ok()?;
    let spent = nix::time::clock_gettime(clock).ok()?;
    Some(Duration::from(spent))
}

/// Opens /proc/PID/`name`, refusing the pids that name no one process.
fn open_proc(pid: i32, name: &str) -> io::Result<fs::File> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a process id: {pid}"),
        ));
    }
    fs::File::open(format!("/proc/{pid}/{name}"))
}

/// A process's /proc/PID/statm, held open for its resident set; like
/// [`StatFile`] it reads as an error once that process is gone.
#[derive(Debug)]
pub struct StatmFile {
    file: fs::File,
}

impl StatmFile {
    /// Opens /proc/PID/statm.
    pub fn open(pid: i32) -> io::Result<StatmFile> {
        let file = open_proc(pid, "statm")?;
        Ok(StatmFile { file })
    }

    /// The process's resident set in bytes now.
    pub fn resident_bytes(&self) -> io::Result<u64> {
        // Seven numbers of pages: size resident shared text lib data dt.
        let mut buf = [0u8; 256];
        let n = self.file.read_at(&mut buf, 0)?;
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|text| text.split_ascii_whitespace().nth(1))
            .and_then(|pages| pages.parse::<u64>().ok())
            .map(|pages| pages.saturating_mul(page_size()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected format of statm"))
    }
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// It exited with this status code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

/// Reaps `pid` if it is our child and has exited; `None` if it runs or is not our child.
pub fn reap(pid: i32) -> Option<ExitInfo> {
    if pid <= 0 {
        // waitpid would take these as "any child" or a group: never reap those by accident.
        return None;
    }
    let status = loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    match status {
        Ok(WaitStatus::Exited(_, code)) => Some(ExitInfo::Code(code)),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(ExitInfo::Signal(signal as i32)),
        // StillAlive, stop/continue reports, ECHILD (not our child or already reaped).
        Ok(_) | Err(_) => None,
    }
}

/// A pidfd: a handle on one process that becomes readable when it exits.
///
/// Unlike a PID it cannot be reused, and it works for processes that are not
/// our children (apps re-adopted after a daemon restart).
#[derive(Debug)]
pub struct PidFd {
    fd: AsyncFd<OwnedFd>,
    pid: i32,
}

impl PidFd {
    /// Opens a pidfd for `pid`; must be called within a tokio runtime.
    ///
    /// The PID may already have been reused when this is called: to re-adopt a
    /// process, open first and then check [`is_same_process`], or use
    /// [`PidFd::open_checked`], so the pidfd and the check refer to the same process.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        if pid <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a process id: {pid}"),
            ));
        }
        // AsyncFd::new panics outside a runtime; report it as an error instead.
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
        // it touches no memory of ours.
        let ret =
            unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = libc::c_int::try_from(ret)
            .map_err(|_| io::Error::other("pidfd_open returned a bad fd"))?;
        // SAFETY: the syscall just returned this fd (O_CLOEXEC is always set
        // by pidfd_open) and nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open
        // and unchanged until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(PidFd { fd, pid })
    }

    /// Opens a pidfd for `pid` only if it is still the process that started at `start_ticks`.
    pub fn open_checked(pid: i32, start_ticks: u64) -> io::Result<PidFd> {
        let pidfd = PidFd::open(pid)?;
        // Checked after opening: if the pid is the right process now, the
        // pidfd holds on to that process and cannot be fooled by later reuse.
        if is_same_process(pid, start_ticks) {
            Ok(pidfd)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("process {pid} is gone or its pid was reused"),
            ))
        }
    }

    /// The process id this pidfd was opened for.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Resolves once the process has exited (it may still need reaping if it is our child).
    pub async fn exited(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            // Readiness from the reactor may be stale; ask the kernel directly.
            if poll_readable(self.fd.get_ref().as_raw_fd())? {
                return Ok(());
            }
            guard.clear_ready();
        }
    }

    /// Whether the process has exited, without waiting.
    #[cfg(test)]
    pub fn has_exited(&self) -> io::Result<bool> {
        poll_readable(self.fd.get_ref().as_raw_fd())
    }
}

/// A non-blocking poll(2) for POLLIN on `fd`.
fn poll_readable(fd: libc::c_int) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, timeout 0: returns at once.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n >= 0 {
            return Ok(n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{kill, killpg, Signal};
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Kills the process (group) on drop so a failing test leaves nothing behind.
    struct Cleanup {
        pid: i32,
        group: bool,
        armed: bool,
    }

    impl Cleanup {
        fn new(pid: i32, group: bool) -> Self {
            Cleanup {
                pid,
                group,
                armed: true,
            }
        }

        /// Once the process is known dead its pid may be reused: never signal it again.
        fn disarm(&mut self) {
            self.armed = false;
        }
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            if !self.armed {
                return;
            }
            let pid = Pid::from_raw(self.pid);
            if self.group {
                let _ = killpg(pid, Signal::SIGKILL);
            } else {
                let _ = kill(pid, Signal::SIGKILL);
            }
            // Reap if it is ours; blocking is fine after SIGKILL.
            let _ = waitpid(pid, None);
        }
    }

    /// Polls `cond` until it holds or `timeout` passes.
    fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Spawns `cmd` and returns its pid.
    // The tests reap their children with waitpid (via `reap` or `Cleanup`),
    // which is what they test, rather than with `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn spawn_pid(cmd: &mut Command) -> i32 {
        let child = cmd.spawn().expect("spawn");
        i32::try_from(child.id()).expect("pid fits i32")
    }

    fn spawn_sleep() -> (i32, Cleanup) {
        let pid = spawn_pid(Command::new("sleep").arg("30"));
        (pid, Cleanup::new(pid, false))
    }

    #[test]
    fn parse_stat_handles_tricky_comm() {
        let line = "4242 ((a) b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    7 3 0 0 20 0 1 0 123456 1000000 250 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let expected = ProcStat {
            pid: 4242,
            state: 'S',
            ppid: 1,
            pgid: 4242,
            utime_ticks: 7,
            stime_ticks: 3,
            start_ticks: 123456,
            rss_bytes: 250 * 4096,
        };
        assert_eq!(parse_stat(line.as_bytes(), 4096), Some(expected));
        // A name that is not UTF-8 is skipped like any other.
        let mut odd = b"4242 (\xff\xfe) ".to_vec();
        odd.extend_from_slice(line.split_once(")) ").expect("fields").1.as_bytes());
        assert_eq!(parse_stat(&odd, 4096), Some(expected));
    }

    #[test]
    fn parse_stat_rejects_garbage() {
        assert_eq!(parse_stat(b"", 4096), None);
        assert_eq!(parse_stat(b"12 (x) S 1 2", 4096), None);
        assert_eq!(parse_stat(b") 12 (x S 1", 4096), None);
        assert_eq!(parse_stat(b"abc (x) S 1 1 1", 4096), None);
        assert_eq!(parse_stat(b"12 (x) SS 1 1 1", 4096), None);
    }

    #[test]
    fn parse_uptime_is_exact() {
        assert_eq!(parse_uptime("350735.47 234388.90\n", 100), Some(35_073_547));
        assert_eq!(parse_uptime("10 5\n", 100), Some(1000));
        assert_eq!(parse_uptime("1.5 0", 1000), Some(1500));
        assert_eq!(parse_uptime("x", 100), None);
    }

    #[test]
    fn read_stat_of_self() {
        let me = i32::try_from(std::process::id()).expect("pid fits i32");
        let s = read_stat(me).expect("own stat");
        assert_eq!(s.pid, me);
        // The stat of a process shows its main thread, which may be waiting for this one.
        assert!(!s.is_gone());
        assert_eq!(s.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(s.pgid, nix::unistd::getpgrp().as_raw());
        assert!(s.rss_bytes > 0);
        let up = uptime_ticks().expect("uptime");
        assert!(up >= s.start_ticks);
        let busy = cpu_time(me).expect("own CPU time");
        let cpu = cpu_percent(busy, s.start_ticks, up, clock_ticks());
        assert!(cpu >= 0.0 && cpu.is_finite());
        assert!(read_stat(-1).is_err());
        assert!(read_stat(0).is_err());
    }

    #[test]
    fn a_stat_file_reads_fresh_figures_each_time() {
        let me = i32::try_from(std::process::id()).expect("pid fits i32");
        let file = StatFile::open(me).expect("own stat");
        assert_eq!(file.pid(), me);
        let busy = |s: &ProcStat| s.utime_ticks + s.stime_ticks;
        let before = file.read().expect("first read");
        // Spin until the kernel has counted more CPU time: the same open
        // file must show it, not the text of the first read.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = file.read().expect("second read");
        while busy(&after) == busy(&before) && Instant::now() < deadline {
            std::hint::black_box((0..100_000u64).sum::<u64>());
            after = file.read().expect("later read");
        }
        assert!(busy(&after) > busy(&before), "{before:?} then {after:?}");
        assert_eq!(after.start_ticks, before.start_ticks);
        assert!(StatFile::open(0).is_err());
    }

    #[test]
    fn a_stat_file_of_a_reaped_process_is_an_error() {
        let (pid, mut cleanup) = spawn_sleep();
        let file = StatFile::open(pid).expect("stat of sleep");
        assert!(file.read().is_ok());
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
        waitpid(Pid::from_raw(pid), None).expect("reap");
        cleanup.disarm();
        // Whatever process gets the pid next, this file names the old one.
        assert!(file.read().is_err());
    }

    #[test]
    fn cpu_percent_math() {
        let half_s = Duration::from_millis(500);
        assert_eq!(cpu_percent(half_s, 1000, 1000, 100), 0.0);
        assert_eq!(cpu_percent(half_s, 1000, 900, 100), 0.0);
        // Half a second in two: 25 %.
        assert!((cpu_percent(half_s, 1000, 1200, 100) - 25.0).abs() < 1e-9);
    }

    #[test]
    fn cpu_time_and_resident_set_are_the_processs_own_and_end_with_it() {
        let me = i32::try_from(std::process::id()).expect("pid fits i32");
        let before = cpu_time(me).expect("own CPU time");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cpu_time(me).unwrap() == before && Instant::now() < deadline {
            std::hint::black_box((0..100_000u64).sum::<u64>());
        }
        assert!(cpu_time(me).unwrap() > before);
        let mine = StatmFile::open(me).expect("own statm");
        let stat = read_stat(me).unwrap();
        let resident = mine.resident_bytes().unwrap();
        // The same figure as stat's, give or take what moved between reads.
        assert!(resident > 0 && resident.abs_diff(stat.rss_bytes) < 64 << 20);

        let (pid, mut cleanup) = spawn_sleep();
        let statm = StatmFile::open(pid).expect("statm of sleep");
        assert!(statm.resident_bytes().is_ok());
        assert!(cpu_time(pid).is_some());
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
        waitpid(Pid::from_raw(pid), None).expect("reap");
        cleanup.disarm();
        assert!(statm.resident_bytes().is_err());
        assert!(cpu_time(pid).is_none());
        assert!(cpu_time(0).is_none() && StatmFile::open(-1).is_err());
    }

    #[test]
    fn sysconf_values_are_sane() {
        assert!(clock_ticks() > 0);
        assert!(page_size() >= 4096);
    }

    #[test]
    fn is_same_process_checks_start_time() {
        let (pid, cleanup) = spawn_sleep();
        let start = read_stat(pid).expect("stat of sleep").start_ticks;
        assert!(is_same_process(pid, start));
        assert!(!is_same_process(pid, start + 1));
        drop(cleanup);
        // Killed and reaped: gone.
        assert!(!is_same_process(pid, start));
    }

    #[tokio::test]
    async fn pidfd_fires_for_a_killed_child_and_reap_collects_it() {
        let (pid, mut cleanup) = spawn_sleep();
        let pidfd = PidFd::open(pid).expect("pidfd_open");
        assert_eq!(pidfd.pid(), pid);
        assert!(!pidfd.has_exited().expect("poll"));
        assert_eq!(reap(pid), None, "still running");

        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
        cleanup.disarm();
        tokio::time::timeout(Duration::from_secs(10), pidfd.exited())
            .await
            .expect("pidfd fired in time")
            .expect("exited");
        assert!(pidfd.has_exited().expect("poll"));
        // Exited and not yet reaped: it is a zombie, which no longer counts as itself.
        let start = read_stat(pid).map(|s| s.start_ticks).unwrap_or(0);
        assert!(!is_same_process(pid, start));

        assert_eq!(reap(pid), Some(ExitInfo::Signal(9)));
        match read_stat(pid) {
            Err(_) => {}
            Ok(s) => assert_ne!(s.state, 'Z', "still a zombie after reaping"),
        }
        // Reaping twice is harmless.
        assert_eq!(reap(pid), None);
    }

    #[tokio::test]
    async fn reap_reports_exit_codes() {
        let pid = spawn_pid(Command::new("sh").args(["-c", "exit 3"]));
        let pidfd = PidFd::open(pid).expect("pidfd_open");
        tokio::time::timeout(Duration::from_secs(10), pidfd.exited())
            .await
            .expect("pidfd fired in time")
            .expect("exited");
        assert_eq!(reap(pid), Some(ExitInfo::Code(3)));
    }

    #[test]
    fn reap_ignores_what_is_not_ours() {
        assert_eq!(reap(1), None);
        assert_eq!(reap(0), None);
        assert_eq!(reap(-1), None);
    }

    #[test]
    fn pidfd_open_fails_cleanly() {
        // Outside a runtime: an error, not a panic.
        let me = i32::try_from(std::process::id()).expect("pid fits i32");
        assert!(PidFd::open(me).is_err());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            assert!(PidFd::open(0).is_err());
            assert!(PidFd::open(i32::MAX).is_err(), "no such process");
            let (pid, _cleanup) = spawn_sleep();
            let start = read_stat(pid).expect("stat").start_ticks;
            assert!(PidFd::open_checked(pid, start).is_ok());
            assert!(PidFd::open_checked(pid, start + 1).is_err());
        });
    }

    #[test]
    fn tree_pids_lists_a_process_and_its_descendants() {
        let sh = spawn_pid(
            Command::new("sh")
                .args(["-c", "sleep 30 & sh -c 'sleep 30 & wait' & wait"])
                .process_group(0),
        );
        let cleanup = Cleanup::new(sh, true);
        let mut tree = Vec::new();
        assert!(
            wait_until(Duration::from_secs(10), || {
                tree = tree_pids(sh);
                tree.len() == 4
            }),
            "expected sh, a sleep, an inner sh and its sleep, got {tree:?}"
        );
        assert_eq!(tree[0], sh, "the root comes first");
        drop(cleanup);
        assert!(
            wait_until(Duration::from_secs(10), || tree_pids(sh).len() <= 1),
            "tree still has {:?}",
            tree_pids(sh)
        );
    }

    #[tokio::test]
    async fn pidfd_fires_for_a_process_that_is_not_our_child() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read grandchild pid");
        let grandchild: i32 = line.trim().parse().expect("a pid");
        let mut cleanup = Cleanup::new(grandchild, false);
        child.wait().expect("reap sh");

        let start = read_stat(grandchild).expect("stat").start_ticks;
        let pidfd = PidFd::open_checked(grandchild, start).expect("pidfd_open");
        assert_eq!(reap(grandchild), None, "not our child");
        kill(Pid::from_raw(grandchild), Signal::SIGKILL).expect("kill");
        cleanup.disarm();
        tokio::time::timeout(Duration::from_secs(10), pidfd.exited())
            .await
            .expect("pidfd fired in time")
            .expect("exited");
        assert!(!is_same_process(grandchild, start));
        assert_eq!(reap(grandchild), None, "still not our child");
    }
}
