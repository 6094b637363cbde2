//! Whether a process descends from the daemon or a supervised app, by its
//! chain of parents in /proc, asked for every client that connects.
//!
//! A client's chain is mostly the same shells and terminals every time, so
//! the processes found to descend from neither are kept, each by an open
//! `/proc/PID/stat`: such a process can never come to descend from one (a
//! process whose parent dies moves to a subreaper among its ancestors, or to
//! init), and its open file stops reading once it has exited, however soon
//! its pid is used again. A client then costs two reads, not one a level.
//! The one way a running process becomes a root is a restarted daemon
//! adopting an app again, and the supervisor then has all of it forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::process::procfs::StatFile;

/// Processes kept at most; past it the cache starts again empty.
const MAX_KEPT: usize = 512;
/// Deeper than any real chain; a bound on what a malicious one can cost.
const MAX_DEPTH: usize = 128;

/// Processes known to descend from neither the daemon nor an app.
#[derive(Debug, Default)]
pub struct Lineage {
    outside: Mutex<HashMap<i32, StatFile>>,
}

impl Lineage {
    /// Whether `pid`, or one of its ancestors, is a process `is_root`
    /// names. A process whose chain cannot be read counts as descending:
    /// it is not ours to trust.
    pub fn descends(&self, pid: i32, is_root: impl Fn(i32) -> bool) -> bool {
        let mut read = Vec::new();
        let mut at = pid;
        for _ in 0..MAX_DEPTH {
            if is_root(at) {
                return true;
            }
            if self.is_outside(at) {
                self.keep(read);
                return false;
            }
            let stat = match StatFile::open(at) {
                Ok(file) => file.read().map(|stat| (file, stat)),
                Err(e) => Err(e),
            };
            match stat {
                Ok((file, stat)) => {
                    read.push(file);
                    if stat.ppid <= 1 {
                        self.keep(read);
                        return false;
                    }
                    at = stat.ppid;
                }
                // Gone already, or hidden.
                Err(_) => return true,
            }
        }
        true
    }

    /// Whether `pid` is a process kept as outside, still alive.
    fn is_outside(&self, pid: i32) -> bool {
        let mut outside = self.outside.lock().unwrap_or_else(|p| p.into_inner());
        match outside.get(&pid).map(StatFile::read) {
            Some(Ok(_)) => true,
            Some(Err(_)) => {
                // It has exited: its pid may now be anyone's.
                outside.remove(&pid);
                false
            }
            None => false,
        }
    }

    /// Keeps the processes of a chain found to reach init, but the first:
    /// the client itself, which is about to exit.
    fn keep(&self, read: Vec<StatFile>) {
        let mut outside = self.outside.lock().unwrap_or_else(|p| p.into_inner());
        for file in read.into_iter().skip(1) {
            if outside.len() >= MAX_KEPT {
                outside.clear();
            }
            outside.insert(file.pid(), file);
        }
    }

    /// Forgets every process kept: one of them may now be below a root
    /// (an app adopted again).
    pub fn forget(&self) {
        self.outside
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// How many processes are kept.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.outside.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    /// A shell that starts a child and waits: (shell, child).
    fn parent_and_child() -> (std::process::Child, i32) {
        let mut shell = Command::new("sh")
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(shell.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        (shell, line.trim().parse().unwrap())
    }

    fn end(mut child: std::process::Child, grandchild: i32) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_descendant_of_a_root_is_found_and_nothing_outside_is_kept_for_it() {
        let (shell, child) = parent_and_child();
        let lineage = Lineage::default();
        let root = shell.id() as i32;
        assert!(lineage.descends(child, |p| p == root));
        assert!(lineage.descends(root, |p| p == root));
        assert_eq!(lineage.kept(), 0);
        end(shell, child);
    }

    #[test]
    fn a_chain_outside_is_kept_but_its_first_process_and_still_judged_each_time() {
        let (shell, child) = parent_and_child();
        let lineage = Lineage::default();
        // Nothing is a root: the chain reaches init.
        assert!(!lineage.descends(child, |_| false));
        let kept = lineage.kept();
        assert!(kept >= 1, "the shell and its ancestors are kept");
        assert!(!lineage.outside.lock().unwrap().contains_key(&child));
        // Kept processes are still checked against the roots first.
        let shell_pid = shell.id() as i32;
        assert!(lineage.descends(child, |p| p == shell_pid));
        // A process adopted as a root after it was kept: forgotten, then
        // found below the root.
        lineage.forget();
        assert_eq!(lineage.kept(), 0);
        assert!(!lineage.descends(child, |_| false));
        // A kept process that exits is dropped, not trusted.
        end(shell, child);
        assert!(!lineage.is_outside(shell_pid));
        assert_eq!(lineage.kept(), kept - 1);
    }

    #[test]
    fn a_process_that_cannot_be_read_counts_as_descending() {
        let lineage = Lineage::default();
        // Far above any pid_max.
        assert!(lineage.descends(i32::MAX, |_| false));
    }
}
