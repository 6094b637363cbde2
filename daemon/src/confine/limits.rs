//! The limits an app's shim enforces itself where the kernel gives no
//! unprivileged way to: the number of the app's tasks (processes and
//! threads, as the pids controller counts them) when its cgroup has no pids
//! controller, and the disk space its folder and temporary folder take
//! together. The shim measures on a timer; past a limit it kills the app
//! and writes why into a file beside its log (out of the app's reach), which
//! the daemon and the checks read to end the app `failed` with that reason.
//!
//! A file the app removed but still holds open takes disk space that no walk
//! of its folders finds, so the disk measure also counts the files open in
//! the app's processes that have no name left.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
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
/// Most open descriptors one measure looks at, over all the app's processes
/// (and threads with a table of their own). Past it, the files behind the
/// rest cannot be measured at a bounded cost: the app counts as over its
/// disk limit, as past [`MAX_ENTRIES`]. With the defaults (1024 open files,
/// 256 processes) an app needs hundreds of processes each holding hundreds
/// of files to reach it.
pub const MAX_DESCRIPTORS: usize = 65_536;

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
                return Some(tasks_reason(max));
            }
            self.next_tasks = now
                + if count > max / 2 {
                    TASKS_EVERY_NEAR
                } else {
                    TASKS_EVERY
                };
        }
        if self.max_disk.is_some() && now >= self.next_disk {
            if let Some(why) = self.disk_over(Some(init)) {
                return Some(why);
            }
            self.next_disk = now + DISK_EVERY;
        }
        None
    }

    /// The disk measure once more, whenever it is due: the app that filled
    /// its folders and ended before the next measure still went past it.
    /// Its processes are gone, and the files they held open with them.
    pub fn last_check(&self) -> Option<String> {
        self.disk_over(None)
    }

    /// Why the folders, with the removed files the processes of the app
    /// `init` leads hold open, are over the disk limit, if they are.
    fn disk_over(&self, init: Option<i32>) -> Option<String> {
        let max = self.max_disk?;
        let usage = disk_usage(&self.folders, MAX_ENTRIES);
        let open = match (&usage, init) {
            // Past the limit already, the open files change nothing.
            (Usage::Bytes(bytes), Some(init)) if *bytes <= max => {
                match removed_open_files(init, MAX_DESCRIPTORS) {
                    Usage::Bytes(open) => open,
                    other => return disk_reason(other, 0, max),
                }
            }
            _ => 0,
        };
        disk_reason(usage, open, max)
    }
}

/// Why `usage` of the folders and `open` bytes of removed files held open
/// are past `max` bytes, if they are. Paths are written escaped (`{:?}`):
/// the app names its files, and a newline or a control character in a name
/// must not reach the log or `ps` as such.
fn disk_reason(usage: Usage, open: u64, max: u64) -> Option<String> {
    const MIB: u64 = 1024 * 1024;
    let mib = max / MIB;
    match usage {
        Usage::Bytes(bytes) if bytes.saturating_add(open) > max => {
            let held = if open > 0 {
                format!(", {} MiB of it in removed files it held open", open / MIB)
            } else {
                String::new()
            };
            Some(format!(
                "its folder and temporary folder took {} MiB{held}, more than its disk limit \
                 of {mib} MiB (--app-max-disk-mib), and it was stopped",
                bytes.saturating_add(open) / MIB
            ))
        }
        Usage::Bytes(_) => None,
        Usage::TooManyEntries => Some(format!(
            "its folder and temporary folder hold more than {MAX_ENTRIES} files and \
             folders, too many to measure against its disk limit of {mib} MiB, and it was \
             stopped"
        )),
        Usage::Unreadable(path) => Some(format!(
            "{path:?} in its folders cannot be read, so its disk use cannot be measured \
             against its limit of {mib} MiB, and it was stopped"
        )),
        Usage::TooManyDescriptors => Some(format!(
            "its processes hold more than {MAX_DESCRIPTORS} open files, too many to measure \
             against its disk limit of {mib} MiB, and it was stopped"
        )),
        Usage::UnreadableDescriptors(pid) => Some(format!(
            "the open files of its process {pid} cannot be read (a process that made \
             itself undumpable hides them), so its disk use cannot be measured against its \
             limit of {mib} MiB, and it was stopped"
        )),
    }
}

/// The tasks (threads of every process) in the tree below and including
/// `root`, found through `/proc/<pid>/task/<tid>/children` rather than a
/// scan of all of /proc; the walk stops once it has counted past `max`, so
/// its cost is bounded by the limit.
pub fn count_tasks(root: i32, max: u64) -> u64 {
    let mut count = 0u64;
    walk_tasks(root, |_, _| {
        count += 1;
        if count > max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    count
}

/// Why an app that went past `max` tasks was stopped.
pub fn tasks_reason(max: u64) -> String {
    format!(
        "it ran more than {max} processes and threads (--app-max-processes {max}) and was stopped"
    )
}

/// Calls `visit(pid, tid)` for every task of every process in the tree
/// below and including `root`, until it breaks.
fn walk_tasks(root: i32, mut visit: impl FnMut(i32, i32) -> ControlFlow<()>) {
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            // Gone meanwhile.
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if visit(pid, tid).is_break() {
                return;
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
}

/// The disk space taken by the regular files that the processes in the
/// tree below and including `root` hold open and that have no name left
/// (removed, or made with `O_TMPFILE`): each file once, however many
/// descriptors or processes hold it. The walk of the folders never counts
/// them (it finds names), so nothing is counted twice. At most
/// `max_descriptors` descriptors are looked at.
///
/// The files are read through `/proc/<pid>/task/<tid>/fd`, which the shim
/// may read: the app runs with its user id, in a user namespace the shim
/// made (where the shim holds every capability), or the shim runs as root.
/// An app process that made itself undumpable hides its descriptors from a
/// shim that is not root: it is then counted as unmeasurable (over).
pub fn removed_open_files(root: i32, max_descriptors: usize) -> Usage {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut looked = 0usize;
    let mut bytes = 0u64;
    let mut outcome = None;
    walk_tasks(root, |pid, tid| {
        // Threads share their process's table of descriptors, unless one
        // unshared it (CLONE_FILES): then its own is read too.
        if tid != pid && shares_descriptors(pid, tid) {
            return ControlFlow::Continue(());
        }
        let fds = match std::fs::read_dir(format!("/proc/{pid}/task/{tid}/fd")) {
            Ok(fds) => fds,
            Err(e) if is_denied(&e) => {
                outcome = Some(Usage::UnreadableDescriptors(pid));
                return ControlFlow::Break(());
            }
            // Gone meanwhile.
            Err(_) => return ControlFlow::Continue(()),
        };
        for fd in fds.flatten() {
            looked += 1;
            if looked > max_descriptors {
                outcome = Some(Usage::TooManyDescriptors);
                return ControlFlow::Break(());
            }
            // stat through the /proc link reaches the open file itself,
            // named or not; a closed descriptor is simply gone.
            let meta = match std::fs::metadata(fd.path()) {
                Ok(meta) => meta,
                Err(e) if is_denied(&e) => {
                    outcome = Some(Usage::UnreadableDescriptors(pid));
                    return ControlFlow::Break(());
                }
                Err(_) => continue,
            };
            if meta.nlink() == 0 && meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                bytes = bytes.saturating_add(meta.blocks().saturating_mul(512));
            }
        }
        ControlFlow::Continue(())
    });
    outcome.unwrap_or(Usage::Bytes(bytes))
}

fn is_denied(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::PermissionDenied)
        || e.raw_os_error() == Some(nix::libc::EPERM)
}

/// Whether thread `tid` of process `pid` shares its table of descriptors,
/// as `kcmp` says; where it cannot (no kcmp in the kernel, or a seccomp
/// filter), the thread's table is read as if its own.
fn shares_descriptors(pid: i32, tid: i32) -> bool {
    /// `KCMP_FILES` of linux/kcmp.h: the tables of descriptors.
    const KCMP_FILES: nix::libc::c_long = 2;
    // SAFETY: kcmp with integer arguments touches no memory of ours.
    let same = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_kcmp,
            nix::libc::c_long::from(pid),
            nix::libc::c_long::from(tid),
            KCMP_FILES,
            0 as nix::libc::c_long,
            0 as nix::libc::c_long,
        )
    };
    same == 0
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
    /// More open descriptors than the cap.
    TooManyDescriptors,
    /// A process whose descriptors could not be read.
    UnreadableDescriptors(i32),
}

/// The disk space the files under `folders` take (allocated blocks, as `du`
/// counts: a sparse file takes what it holds), walking at most
/// `max_entries` entries and never following a link.
pub fn disk_usage(folders: &[PathBuf], max_entries: usize) -> Usage {
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

    /// The tests that hold removed files open in this process, one at a
    /// time: each measures what it adds.
    static HOLDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn removed_files_held_open_are_counted_once_and_named_ones_not() {
        use std::io::Write;
        let _one = HOLDING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let Usage::Bytes(before) = removed_open_files(me, MAX_DESCRIPTORS) else {
            panic!("unexpected usage");
        };
        // Named and open: the walk of the folders counts it, this does not.
        let mut named = std::fs::File::create(dir.path().join("named")).unwrap();
        named.write_all(&vec![1u8; 1024 * 1024]).unwrap();
        let path = dir.path().join("removed");
        let mut removed = std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        removed.write_all(&vec![2u8; 2 * 1024 * 1024]).unwrap();
        removed.sync_all().unwrap();
        // A second descriptor of the same file counts nothing more.
        let again = removed.try_clone().unwrap();
        let Usage::Bytes(after) = removed_open_files(me, MAX_DESCRIPTORS) else {
            panic!("unexpected usage");
        };
        // Other tests of this process may hold such files meanwhile.
        let grew = after.saturating_sub(before);
        assert!(grew >= 2 * 1024 * 1024, "{before} -> {after}");
        assert!(grew < 3 * 1024 * 1024, "{before} -> {after}");
        assert_eq!(removed_open_files(me, 1), Usage::TooManyDescriptors);
        drop((named, removed, again));
    }

    #[test]
    fn a_thread_with_a_table_of_its_own_is_read_too() {
        use std::io::Write;
        let _one = HOLDING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("removed");
        let me = std::process::id() as i32;
        let Usage::Bytes(before) = removed_open_files(me, MAX_DESCRIPTORS) else {
            panic!("unexpected usage");
        };
        let (held, hold) = std::sync::mpsc::channel();
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).unwrap();
            let mut file = std::fs::File::create(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            file.write_all(&vec![3u8; 2 * 1024 * 1024]).unwrap();
            file.sync_all().unwrap();
            held.send(()).unwrap();
            let _ = finish.recv();
        });
        hold.recv().unwrap();
        let Usage::Bytes(after) = removed_open_files(me, MAX_DESCRIPTORS) else {
            panic!("unexpected usage");
        };
        done.send(()).unwrap();
        thread.join().unwrap();
        assert!(
            after.saturating_sub(before) >= 2 * 1024 * 1024,
            "{before} -> {after}"
        );
    }

    #[test]
    fn a_path_in_a_reason_is_escaped() {
        let path = PathBuf::from("/app/x\n[appforge] the daemon stopped\u{1e}");
        let why = disk_reason(Usage::Unreadable(path), 0, 64 * 1024 * 1024).unwrap();
        assert!(!why.contains('\n') && !why.contains('\u{1e}'), "{why}");
        assert!(why.contains("x\\n[appforge]"), "{why}");
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
