//! The limits an app's shim enforces itself where the kernel gives no
//! unprivileged way to: the number of the app's tasks (processes and
//! threads, as the pids controller counts them) when its cgroup has no pids
//! controller, and the disk space its folder and temporary folder take
//! together. The shim measures on a timer; past a limit it kills the app
//! and writes why into a file beside its log (out of the app's reach), which
//! the daemon and the checks read to end the app `failed` with that reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time between two counts of the app's tasks while it is well below its
/// limit: a count of an idle app is a few reads of /proc.
const TASKS_EVERY: Duration = Duration::from_secs(1);
/// Time between counts once the app holds more than half its limit.
const TASKS_EVERY_NEAR: Duration = Duration::from_millis(100);
/// Time between two measures of the app's folders.
const DISK_EVERY: Duration = Duration::from_secs(3);
/// Most files and folders one measure walks. An app past it holds more
/// entries than any app needs, and the bytes beyond it cannot be measured
/// at a bounded cost: it counts as over its disk limit.
pub const MAX_ENTRIES: usize = 100_000;

/// What the shim watches, and when it next looks.
#[derive(Debug)]
pub struct Watch {
    max_tasks: Option<u64>,
    max_disk: Option<u64>,
    folders: Vec<PathBuf>,
    next_tasks: Instant,
    next_disk: Instant,
}

impl Watch {
    /// Watches `max_tasks` under the app's init and `max_disk` bytes in
    /// `folders`; either may be off.
    pub fn new(max_tasks: Option<u64>, max_disk: Option<u64>, folders: Vec<PathBuf>) -> Watch {
        let now = Instant::now();
        Watch {
            max_tasks,
            max_disk,
            folders,
            next_tasks: now,
            next_disk: now,
        }
    }

    /// How long the shim may sleep before [`Watch::check`] is due; `None`
    /// when nothing is watched.
    pub fn due_in(&self) -> Option<Duration> {
        let now = Instant::now();
        let tasks = self
            .max_tasks
            .map(|_| self.next_tasks.saturating_duration_since(now));
        let disk = self
            .max_disk
            .map(|_| self.next_disk.saturating_duration_since(now));
        match (tasks, disk) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Measures what is due; the reason when the app `init` leads is past a
    /// limit.
    pub fn check(&mut self, init: i32) -> Option<String> {
        let now = Instant::now();
        if let Some(max) = self.max_tasks.filter(|_| now >= self.next_tasks) {
            let count = count_tasks(init, max);
            if count > max {
                return Some(format!(
                    "it ran more than {max} processes and threads (--app-max-processes {max}) \
                     and was stopped"
                ));
            }
            self.next_tasks = now
                + if count > max / 2 {
                    TASKS_EVERY_NEAR
                } else {
                    TASKS_EVERY
                };
        }
        if self.max_disk.is_some() && now >= self.next_disk {
            if let Some(why) = self.disk_over() {
                return Some(why);
            }
            self.next_disk = now + DISK_EVERY;
        }
        None
    }

    /// The disk measure once more, whenever it is due: the app that filled
    /// its folders and ended before the next measure still went past it.
    pub fn last_check(&self) -> Option<String> {
        self.disk_over()
    }

    /// Why the folders are over the disk limit, if they are.
    fn disk_over(&self) -> Option<String> {
        let max = self.max_disk?;
        let mib = max / (1024 * 1024);
        match disk_usage(&self.folders, MAX_ENTRIES) {
            Usage::Bytes(bytes) if bytes > max => Some(format!(
                "its folder and temporary folder took {} MiB, more than its disk limit of \
                 {mib} MiB (--app-max-disk-mib), and it was stopped",
                bytes / (1024 * 1024)
            )),
            Usage::Bytes(_) => None,
            Usage::TooManyEntries => Some(format!(
                "its folder and temporary folder hold more than {MAX_ENTRIES} files and \
                 folders, too many to measure against its disk limit of {mib} MiB, and it was \
                 stopped"
            )),
            Usage::Unreadable(path) => Some(format!(
                "{} in its folders cannot be read, so its disk use cannot be measured against \
                 its limit of {mib} MiB, and it was stopped",
                path.display()
            )),
        }
    }
}

/// The tasks (threads of every process) in the tree below and including
/// `root`, found through `/proc/<pid>/task/<tid>/children` rather than a
/// scan of all of /proc; the walk stops once it has counted past `max`, so
/// its cost is bounded by the limit.
pub fn count_tasks(root: i32, max: u64) -> u64 {
    let mut count = 0u64;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            // Gone meanwhile.
            continue;
        };
        for task in tasks.flatten() {
            count += 1;
            if count > max {
                return count;
            }
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    count
}

/// What a measure of folders found.
#[derive(Debug, PartialEq, Eq)]
pub enum Usage {
    /// The bytes the files take on disk.
    Bytes(u64),
    /// More entries than the cap.
    TooManyEntries,
    /// A folder that could not be read.
    Unreadable(PathBuf),
}

/// The disk space the files under `folders` take (allocated blocks, as `du`
/// counts: a sparse file takes what it holds), walking at most
/// `max_entries` entries and never following a link.
pub fn disk_usage(folders: &[PathBuf], max_entries: usize) -> Usage {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0u64;
    let mut entries = 0usize;
    let mut stack: Vec<PathBuf> = folders.to_vec();
    while let Some(dir) = stack.pop() {
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) if dir_is_gone(&dir) => continue,
            Err(_) => return Usage::Unreadable(dir),
        };
        for entry in listing.flatten() {
            entries += 1;
            if entries > max_entries {
                return Usage::TooManyEntries;
            }
            // lstat: a link counts as itself, never as what it names.
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            bytes = bytes.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Usage::Bytes(bytes)
}

fn dir_is_gone(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_err()
}

/// The file beside a log that says why the shim stopped its app.
pub fn reason_file(log: &Path) -> PathBuf {
    log.with_extension("limit")
}

/// Records why the app was stopped, for whoever watches the shim.
pub fn record_reason(log: &Path, reason: &str) -> std::io::Result<()> {
    std::fs::write(reason_file(log), reason)
}

/// Why the shim of the app logging to `log` stopped it, if it did; the
/// record is removed, so it is read once.
pub fn take_reason(log: &Path) -> Option<String> {
    let file = reason_file(log);
    let reason = std::fs::read_to_string(&file).ok()?;
    let _ = std::fs::remove_file(&file);
    // The shim writes a sentence; a few KiB bounds a damaged file.
    Some(reason.chars().take(2000).collect())
}

/// Removes a record left by an earlier run (one the daemon never read).
pub fn clear_reason(log: &Path) {
    let _ = std::fs::remove_file(reason_file(log));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_counts_blocks_skips_links_and_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/data"), vec![7u8; 256 * 1024]).unwrap();
        // A link to a big folder outside is not followed.
        std::os::unix::fs::symlink("/usr", root.join("usr")).unwrap();
        let Usage::Bytes(bytes) = disk_usage(std::slice::from_ref(&root), 1000) else {
            panic!("unexpected usage");
        };
        assert!(bytes >= 256 * 1024, "{bytes}");
        assert!(bytes < 1024 * 1024, "{bytes}");
        for i in 0..20 {
            std::fs::write(root.join(format!("f{i}")), b"x").unwrap();
        }
        assert_eq!(
            disk_usage(std::slice::from_ref(&root), 10),
            Usage::TooManyEntries
        );
        assert!(matches!(
            disk_usage(&[root.join("missing")], 10),
            Usage::Bytes(0)
        ));
    }

    #[test]
    fn tasks_are_counted_below_a_process_and_the_walk_stops_past_the_limit() {
        let mut children: Vec<std::process::Child> = (0..3)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let me = std::process::id() as i32;
        // This test's threads, plus the three children.
        let count = count_tasks(me, 10_000);
        assert!(count >= 4, "{count}");
        assert_eq!(count_tasks(me, 2), 3);
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    #[test]
    fn a_reason_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("project_1.log");
        assert_eq!(take_reason(&log), None);
        record_reason(&log, "too big").unwrap();
        assert_eq!(reason_file(&log), dir.path().join("project_1.limit"));
        assert_eq!(take_reason(&log).as_deref(), Some("too big"));
        assert_eq!(take_reason(&log), None);
    }
}
