//! The files `ps` reads an app's figures from, held open between calls.
//!
//! `ps` reads every app's /proc/PID/stat and its cgroup's `memory.current`
//! on every call. Opening a file by path (and closing it) costs most of
//! such a read, so each app keeps both open and reads them again from the
//! start, reopening them when its process changes.

use std::fs::File;
use std::sync::Mutex;

use super::procfs::{ProcStat, StatFile};
use crate::confine::cgroup::{self, Cgroups};

/// One app's open files; empty while it has no process.
#[derive(Debug, Default)]
pub struct Gauges(Mutex<Option<Open>>);

#[derive(Debug)]
struct Open {
    stat: StatFile,
    /// `None` when the cgroup has no memory controller (or no cgroup).
    memory: Option<File>,
}

/// What the gauges said of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Its /proc/PID/stat, when the process is there.
    pub stat: Option<ProcStat>,
    /// Its app's cgroup's `memory.current`, when that is there.
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
        if open.as_ref().is_none_or(|o| o.stat.pid() != pid) {
            // A new process: its own stat, and the cgroup opened again in
            // case it was made afresh for it.
            *open = StatFile::open(pid).ok().map(|stat| Open {
                stat,
                memory: cgroups.and_then(|c| c.open_memory_current(project_id)),
            });
        }
        let Some(files) = open.as_ref() else {
            return Reading::default();
        };
        let reading = Reading {
            stat: files.stat.read().ok(),
            memory: files.memory.as_ref().and_then(cgroup::read_counter),
        };
        // The process has gone, or its cgroup: both are opened again next
        // time rather than read in vain from now on.
        if reading.stat.is_none() || (files.memory.is_some() && reading.memory.is_none()) {
            *open = None;
        }
        reading
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
        let mine = gauges.read(Some(me), 1, None);
        assert_eq!(mine.stat.map(|s| s.pid), Some(me));
        assert_eq!(mine.memory, None, "no cgroups, no memory figure");
        // Asked about another process: its figures, not the first one's.
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        assert_eq!(
            gauges.read(Some(pid), 1, None).stat.map(|s| s.pid),
            Some(pid)
        );
        child.kill().expect("kill");
        child.wait().expect("reap");
        // Gone: no figures, and the file is let go.
        assert!(gauges.read(Some(pid), 1, None).stat.is_none());
        assert!(gauges.0.lock().unwrap().is_none());
        assert!(gauges.read(Some(me), 1, None).stat.is_some());
        assert!(gauges.read(None, 1, None).stat.is_none());
        assert!(
            gauges.0.lock().unwrap().is_none(),
            "no process, no open file"
        );
    }
}
