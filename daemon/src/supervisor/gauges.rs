//! What `ps` reads of an app's process, kept ready between calls.
//!
//! `ps` reads every app's figures on every call, so each is had the cheap
//! way: the start time once per process (from /proc/PID/stat, which costs
//! the kernel most), the CPU time from the process's CPU clock, the
//! resident set from /proc/PID/statm and the cgroup's `memory.current`,
//! both held open and read again from the start. Opening a file by path
//! (and closing it) would cost most of such a read. All are taken up again
//! when the app's process changes.

use std::fs::File;
use std::sync::Mutex;
use std::time::Duration;

use crate::confine::cgroup::{self, Cgroups};
use crate::process::procfs::{self, StatmFile};

/// One app's figures at hand; empty while it has no process.
#[derive(Debug, Default)]
pub struct Gauges(Mutex<Option<Open>>);

#[derive(Debug)]
struct Open {
    pid: i32,
    start_ticks: u64,
    /// Bound to the process: it reads as an error once the process is
    /// gone, so no figure is read of another one that got its pid.
    statm: StatmFile,
    /// `None` when the cgroup has no memory controller (or no cgroup).
    memory: Option<File>,
}

/// What the gauges said of a process; all `None` when it is gone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// When it started, in clock ticks after boot.
    pub start_ticks: Option<u64>,
    /// The CPU time it has used, all its threads.
    pub cpu: Option<Duration>,
    /// Its app's cgroup's `memory.current` when there is one, else its
    /// resident set, in bytes.
    pub memory: Option<u64>,
}

impl Gauges {
    /// Reads the figures of process `pid`, the app of `project_id`, whose
    /// cgroup is under `cgroups`; `None` releases the files (the app has
    /// no process now).
    pub fn read(&self, pid: Option<i32>, project_id: i64, cgroups: Option<&Cgroups>) -> Reading {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pid) = pid else {
            *open = None;
            return Reading::default();
        };
        if open.as_ref().is_none_or(|o| o.pid != pid) {
            // A new process: its own files, and the cgroup opened again in
            // case it was made afresh for it.
            *open = Open::new(pid, project_id, cgroups);
        }
        let Some(files) = open.as_ref() else {
            return Reading::default();
        };
        let Ok(resident) = files.statm.resident_bytes() else {
            // Gone: opened again next time rather than read in vain.
            *open = None;
            return Reading::default();
        };
        let cgroup_memory = files.memory.as_ref().and_then(cgroup::read_counter);
        let reading = Reading {
            start_ticks: Some(files.start_ticks),
            cpu: procfs::cpu_time(pid),
            memory: cgroup_memory.or(Some(resident)),
        };
        if files.memory.is_some() && cgroup_memory.is_none() {
            // The cgroup has gone: looked for again next time.
            *open = None;
        }
        reading
    }
}

impl Open {
    fn new(pid: i32, project_id: i64, cgroups: Option<&Cgroups>) -> Option<Open> {
        let statm = StatmFile::open(pid).ok()?;
        // Read once: a process's start never changes.
        let start_ticks = procfs::read_stat(pid).ok()?.start_ticks;
        Some(Open {
            pid,
            start_ticks,
            statm,
            memory: cgroups.and_then(|c| c.open_memory_current(project_id)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn gauges_follow_the_process_they_are_asked_about() {
        let gauges = Gauges::default();
        let me = i32::try_from(std::process::id()).expect("pid fits i32");
        let own_start = procfs::read_stat(me).unwrap().start_ticks;
        let mine = gauges.read(Some(me), 1, None);
        assert_eq!(mine.start_ticks, Some(own_start));
        assert!(mine.cpu.is_some_and(|c| c > Duration::ZERO));
        assert!(
            mine.memory.is_some_and(|m| m > 0),
            "no cgroup: the resident set"
        );
        // Asked about another process: its figures, not the first one's.
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        let childs_start = procfs::read_stat(pid).unwrap().start_ticks;
        assert_eq!(
            gauges.read(Some(pid), 1, None).start_ticks,
            Some(childs_start)
        );
        child.kill().expect("kill");
        child.wait().expect("reap");
        // Gone: no figures, and the files are let go.
        let gone = gauges.read(Some(pid), 1, None);
        assert!(gone.start_ticks.is_none() && gone.cpu.is_none() && gone.memory.is_none());
        assert!(gauges.0.lock().unwrap().is_none());
        assert!(gauges.read(Some(me), 1, None).start_ticks.is_some());
        assert!(gauges.read(None, 1, None).memory.is_none());
        assert!(
            gauges.0.lock().unwrap().is_none(),
            "no process, no open file"
        );
    }
}
