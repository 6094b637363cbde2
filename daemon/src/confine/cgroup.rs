//! A cgroup (v2) per app, where the daemon may manage a subtree of its own
//! (systemd's `Delegate=yes`, or a daemon that owns its cgroup): `stop`
//! ends every process of the app with `cgroup.kill`, and memory, CPU and
//! process counts come from the cgroup when those controllers are there.
//!
//! Layout, under the service's cgroup `<own>`:
//! ```text
//! <own>/daemon/              the daemon itself, put there by systemd (DelegateSubgroup=daemon)
//! <own>/apps/project_<id>/   one app: its shim, init, Python and whatever they start
//! ```
//! A daemon in the hierarchy's root cgroup (in a container, say) uses
//! `<root>/appforge-<tag>/apps/` instead, the tag naming its data directory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Controllers an app's cgroup is limited by, when the kernel offers them.
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Limits written into an app's cgroup.
#[derive(Debug, Clone, Copy)]
pub struct CgroupLimits {
    /// `memory.max` in bytes.
    pub memory: Option<u64>,
    /// `cpu.max` as a percentage of one core.
    pub cpu_percent: Option<u32>,
    /// `pids.max`.
    pub pids: Option<u64>,
}

/// The daemon's cgroup subtree for apps.
#[derive(Debug, Clone)]
pub struct Cgroups {
    apps: PathBuf,
    /// The folder above `apps` when the daemon made it (in the root
    /// cgroup), to be removed with it.
    made_base: Option<PathBuf>,
    /// `apps` as /proc/PID/cgroup names it, with a trailing slash.
    relative: String,
    controllers: Vec<String>,
}

/// Why apps get no cgroups here; `status` shows it.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup v2 hierarchy is mounted.
    #[error("no cgroup v2 hierarchy is mounted")]
    NoHierarchy,
    /// The daemon is in no cgroup v2.
    #[error("this process is in no cgroup v2")]
    NotInOne,
    /// The folder above the apps' could not be made.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The daemon may not make cgroups below its own.
    #[error("the daemon's cgroup {path} is not delegated to it ({source}); with systemd, set Delegate=yes")]
    NotDelegated {
        /// Its cgroup.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The kernel is too old.
    #[error("the kernel has no cgroup.kill (Linux 5.14 or later)")]
    NoKill,
    /// The apps' cgroup is not below the mount.
    #[error("the apps' cgroup is outside the hierarchy")]
    Outside,
}

impl Cgroups {
    /// Sets up the subtree, or says why it cannot be had here.
    pub fn set_up(tag: &str) -> Result<Cgroups, CgroupError> {
        let mount = cgroup2_mount().ok_or(CgroupError::NoHierarchy)?;
        let own = own_cgroup().ok_or(CgroupError::NotInOne)?;
        let own_dir = mount.join(own.trim_start_matches('/'));
        // Controllers may be turned on for children only in a cgroup that
        // holds no process itself: the root, or the service's cgroup when
        // systemd started the daemon in a leaf of it (DelegateSubgroup=daemon).
        // Elsewhere apps still get cgroup.kill, without limits; turning
        // controllers on under the daemon would stop systemd from starting
        // it again in its own cgroup.
        let (base, limits, made_base) = if own == "/" {
            let base = mount.join(format!("appforge-{tag}"));
            make_dir(&base).map_err(|source| CgroupError::Create {
                path: base.clone(),
                source,
            })?;
            (base.clone(), true, Some(base))
        } else if own_dir.file_name().is_some_and(|n| n == "daemon") {
            (
                own_dir.parent().map_or(own_dir.clone(), Path::to_path_buf),
                true,
                None,
            )
        } else {
            (own_dir.clone(), false, None)
        };
        let controllers = if limits {
            enable_controllers(&base)
        } else {
            tracing::info!(
                cgroup = %own_dir.display(),
                "apps get cgroups without memory or CPU limits; with systemd 254 or later, \
                 DelegateSubgroup=daemon gives them limits"
            );
            Vec::new()
        };
        let apps = base.join("apps");
        make_dir(&apps).map_err(|source| CgroupError::NotDelegated {
            path: base.clone(),
            source,
        })?;
        let controllers: Vec<String> = controllers
            .into_iter()
            .filter(|c| {
                std::fs::write(apps.join("cgroup.subtree_control"), format!("+{c}")).is_ok()
            })
            .collect();
        if !apps.join("cgroup.kill").exists() {
            return Err(CgroupError::NoKill);
        }
        let relative = apps
            .strip_prefix(&mount)
            .map(|r| format!("/{}/", r.display()))
            .map_err(|_| CgroupError::Outside)?;
        Ok(Cgroups {
            apps,
            made_base,
            relative,
            controllers,
        })
    }

    /// Removes, on the daemon's exit, every cgroup of the subtree that no
    /// process holds: each app's that has ended, then `apps/` and the
    /// folder the daemon made above it once they are empty. Those of apps
    /// left running for the next daemon stay, and so does what holds them
    /// (a populated cgroup cannot be removed). Returns how many it removed.
    pub fn remove_unused(&self) -> usize {
        remove_empty_tree(&self.apps, self.made_base.as_deref())
    }

    /// The controllers apps are limited by.
    pub fn controllers(&self) -> &[String] {
        &self.controllers
    }

    /// The cgroup of one project's app.
    pub fn path(&self, project_id: i64) -> PathBuf {
        self.apps.join(format!("project_{project_id}"))
    }

    /// Makes (or reuses) the app's cgroup and writes its limits.
    pub fn create(&self, project_id: i64, limits: CgroupLimits) -> io::Result<PathBuf> {
        let dir = self.path(project_id);
        make_dir(&dir)?;
        let has = |c: &str| self.controllers.iter().any(|x| x == c);
        if let (true, Some(bytes)) = (has("memory"), limits.memory) {
            std::fs::write(dir.join("memory.max"), bytes.to_string())?;
            // No swap: a limit that pages out is no limit.
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        }
        if let (true, Some(percent)) = (has("cpu"), limits.cpu_percent) {
            let period = 100_000u64;
            let quota = period * u64::from(percent.max(1)) / 100;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {period}"))?;
        }
        if let (true, Some(pids)) = (has("pids"), limits.pids) {
            std::fs::write(dir.join("pids.max"), pids.to_string())?;
        }
        Ok(dir)
    }

    /// Kills every process in the app's cgroup; nothing when it has none.
    pub fn kill(&self, project_id: i64) {
        let kill = self.path(project_id).join("cgroup.kill");
        if kill.exists() {
            let _ = std::fs::write(kill, "1");
        }
    }

    /// Whether the app's cgroup still holds a process.
    pub fn is_populated(&self, project_id: i64) -> bool {
        std::fs::read_to_string(self.path(project_id).join("cgroup.events"))
            .is_ok_and(|events| events.lines().any(|l| l == "populated 1"))
    }

    /// Removes the app's (empty) cgroup.
    pub fn remove(&self, project_id: i64) {
        let _ = std::fs::remove_dir(self.path(project_id));
    }

    /// The app's `memory.current`, opened to be read again and again with
    /// [`read_counter`]; `None` when the memory controller is off for it.
    pub fn open_memory_current(&self, project_id: i64) -> Option<File> {
        File::open(self.path(project_id).join("memory.current")).ok()
    }

    /// Whether `pid` runs in an app's cgroup.
    pub fn holds(&self, pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("0::"))
                .any(|path| path.starts_with(&self.relative))
        })
    }
}

/// The number a cgroup file of one number (`memory.current`, say) holds
/// now, read from its start so one open file serves every reading.
pub fn read_counter(file: &File) -> Option<u64> {
    // A u64 in decimal and a newline.
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Removes the empty folders (cgroups) directly in `apps`, then `apps`,
/// then `base` if given; cgroup files cannot be deleted and go with their
/// folder. Stops at the first that is still in use.
fn remove_empty_tree(apps: &Path, base: Option<&Path>) -> usize {
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(apps) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && std::fs::remove_dir(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if std::fs::remove_dir(apps).is_err() {
        return removed;
    }
    removed += 1;
    if let Some(base) = base {
        if std::fs::remove_dir(base).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Turns on for the children of `base` every controller of [`CONTROLLERS`]
/// it has; returns those that took.
fn enable_controllers(base: &Path) -> Vec<String> {
    let offered = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
    CONTROLLERS
        .iter()
        .filter(|c| offered.split_whitespace().any(|o| o == **c))
        .filter(|c| std::fs::write(base.join("cgroup.subtree_control"), format!("+{c}")).is_ok())
        .map(|c| c.to_string())
        .collect()
}

/// Where the cgroup v2 hierarchy is mounted.
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// This process's cgroup v2 path, e.g. `/system.slice/appforged.service`.
fn own_cgroup() -> Option<String> {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_cgroups_are_removed_and_those_in_use_kept() {
        // Plain folders stand in for cgroups: removable once empty.
        let root = tempfile::tempdir().expect("temporary folder");
        let base = root.path().join("appforge-tag");
        let apps = base.join("apps");
        for app in ["project_1", "project_2"] {
            std::fs::create_dir_all(apps.join(app)).expect("mkdir");
        }
        // An app left running: its cgroup cannot go, nor what holds it.
        std::fs::write(apps.join("project_2/cgroup.procs"), "42").expect("write");
        assert_eq!(remove_empty_tree(&apps, Some(&base)), 1);
        assert!(!apps.join("project_1").exists());
        assert!(apps.join("project_2").exists());
        std::fs::remove_file(apps.join("project_2/cgroup.procs")).expect("rm");
        assert_eq!(remove_empty_tree(&apps, Some(&base)), 3);
        assert!(!base.exists());
    }

    #[test]
    fn a_counter_file_is_read_afresh_from_its_start() {
        let mut file = tempfile::tempfile().expect("temporary file");
        std::io::Write::write_all(&mut file, b"123456\n").expect("write");
        assert_eq!(read_counter(&file), Some(123456));
        // Read again: the same figure, whatever the file's position.
        assert_eq!(read_counter(&file), Some(123456));
        file.set_len(0).expect("truncate");
        file.write_all_at(b"42\n", 0).expect("rewrite");
        assert_eq!(read_counter(&file), Some(42));
        file.write_all_at(b"max\n", 0).expect("rewrite");
        assert_eq!(read_counter(&file), None);
    }
}
