//! Per-app log files: size rotation, tail and follow.
//!
//! The app's stdout and stderr are one file opened with O_APPEND and handed to
//! the child directly, so the app keeps logging while the daemon restarts. The
//! daemon therefore cannot rename the live file away (the child would keep
//! writing to the renamed one); it rotates by copy-then-truncate, and O_APPEND
//! makes the child's next write land at the new end of the file.
//!
//! Bytes the child writes between the end of the copy and the truncation are
//! lost; that window is a few syscalls wide (the same trade-off as logrotate's
//! `copytruncate`).
//!
//! Rotation, `tail` and `Follower::read_new` take a per-path lock inside this
//! process and count rotations, so a follower knows exactly how many rotations
//! it missed and a tail never sees a half-done rotation. That assumes one
//! process (the daemon) rotates and reads a given log.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

/// Block size for reading files backwards in `tail`.
const TAIL_BLOCK: u64 = 64 * 1024;

/// Rotation counter shared by every `LogFiles` and `Follower` of one path in this process.
type Rotations = Arc<Mutex<u64>>;

/// One counter per log path, kept only while someone holds it.
static REGISTRY: LazyLock<Mutex<HashMap<PathBuf, Weak<Mutex<u64>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The rotation counter for `path`, shared with other handles on the same path.
fn rotations_for(path: &Path) -> Rotations {
    // Spell the path one way so two handles on the same file share a counter.
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut map = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return existing;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let fresh = Arc::new(Mutex::new(0));
    map.insert(key, Arc::downgrade(&fresh));
    fresh
}

/// Locks a rotation counter; a panic elsewhere while holding it leaves the count valid.
fn lock(rotations: &Rotations) -> MutexGuard<'_, u64> {
    rotations.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `path` with `.n` appended to its file name (`app.log` → `app.log.1`).
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The length of `path`, or `None` when it does not exist.
fn len_of(path: &Path) -> io::Result<Option<u64>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens `path` for reading, or `None` when it does not exist.
fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Appends the bytes of `path` from `from` to its end to `out`; returns the offset reached.
fn read_from(path: &Path, from: u64, out: &mut Vec<u8>) -> io::Result<u64> {
    let Some(mut file) = open_if_exists(path)? else {
        return Ok(from);
    };
    let len = file.metadata()?.len();
    if from >= len {
        return Ok(from);
    }
    file.seek(SeekFrom::Start(from))?;
    let read = file.read_to_end(out)?;
    Ok(from + read as u64)
}

/// The log files of one app: `app.log` (live), `app.log.1`, … `app.log.{files-1}`.
#[derive(Debug, Clone)]
pub struct LogFiles {
    path: PathBuf,
    max_bytes: u64,
    files: usize,
    rotations: Rotations,
}

impl LogFiles {
    /// Log files at `path`, rotated above `max_bytes`, keeping `files` files in all (at least 1).
    pub fn new(path: PathBuf, max_bytes: u64, files: usize) -> Self {
        let rotations = rotations_for(&path);
        LogFiles {
            path,
            max_bytes,
            files: files.max(1),
            rotations,
        }
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rotated file number `n` (1 is the newest).
    pub fn rotated_path(&self, n: usize) -> PathBuf {
        numbered(&self.path, n)
    }

    /// Opens the live file for a child's stdout/stderr: created 0600 with parent dirs, O_APPEND.
    pub fn open_for_child(&self) -> io::Result<File> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Logs may hold anything the app prints: keep new directories private.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
    }

    /// Appends a line written by the supervisor itself (e.g. "[appforge] started pid 123 on port 8101").
    pub fn note(&self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.trim_end_matches('\n').as_bytes());
        buf.push(b'\n');
        // One write on an O_APPEND file: it cannot interleave with the app's writes.
        self.open_for_child()?.write_all(&buf)
    }

    /// If the live file is over max_bytes: drop the oldest, shift .1→.2 …, copy live → .1, truncate live to 0. Returns whether it rotated.
    pub fn rotate_if_needed(&self) -> io::Result<bool> {
        let mut count = lock(&self.rotations);
        let mut live = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if live.metadata()?.len() <= self.max_bytes {
            return Ok(false);
        }
        let kept = self.files - 1;
        if kept > 0 {
            match fs::remove_file(self.rotated_path(kept)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..kept).rev() {
                match fs::rename(self.rotated_path(n), self.rotated_path(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            let mut copy = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(self.rotated_path(1))?;
            // Copy up to the current end, including what the app wrote since the size check.
            io::copy(&mut live, &mut copy)?;
        }
        live.set_len(0)?;
        *count += 1;
        Ok(true)
    }

    /// The last `n` lines across the rotated files and the live one, oldest first (a file missing is fine).
    pub fn tail(&self, n: usize) -> io::Result<Vec<String>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let _count = lock(&self.rotations);
        // Newest first: live, .1, .2, …; read each backwards in blocks until
        // enough newlines are seen, so a 10 MiB log costs a block for 20 lines.
        let mut newest_first = vec![self.path.clone()];
        newest_first.extend((1..self.files).map(|i| self.rotated_path(i)));

        // Blocks collected from the end of the stream backwards.
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut newlines = 0usize;
        let mut at_stream_end = true;
        'files: for path in &newest_first {
            let Some(file) = open_if_exists(path)? else {
                continue;
            };
            let mut end = file.metadata()?.len();
            while end > 0 {
                let start = end.saturating_sub(TAIL_BLOCK);
                let mut block = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
                file.read_exact_at(&mut block, start)?;
                let mut found = block.iter().filter(|&&b| b == b'\n').count();
                // A newline ending the whole stream ends the last line; it starts none.
                if at_stream_end && block.last() == Some(&b'\n') {
                    found -= 1;
                }
                at_stream_end = false;
                newlines += found;
                blocks.push(block);
                end = start;
                // n newlines before the end mark the start of the n-th last line.
                if newlines >= n {
                    break 'files;
                }
            }
        }

        let mut stream: Vec<u8> = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
        for block in blocks.iter().rev() {
            stream.extend_from_slice(block);
        }
        if stream.last() == Some(&b'\n') {
            stream.pop();
        }
        if stream.is_empty() {
            return Ok(Vec::new());
        }
        let lines: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
        let skip = lines.len().saturating_sub(n);
        Ok(lines[skip..]
            .iter()
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect())
    }

    /// A follower positioned at the current end of the live file.
    pub fn follow(&self) -> io::Result<Follower> {
        let count = lock(&self.rotations);
        let pos = len_of(&self.path)?.unwrap_or(0);
        Ok(Follower {
            path: self.path.clone(),
            files: self.files,
            rotations: Arc::clone(&self.rotations),
            seen_rotations: *count,
            pos,
        })
    }

    /// Deletes every file of this log (its project is gone).
    pub fn remove(&self) -> io::Result<()> {
        for n in 0..self.files {
            let path = if n == 0 {
                self.path.clone()
            } else {
                self.rotated_path(n)
            };
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Total bytes of all its files.
    #[cfg(test)]
    pub fn disk_usage(&self) -> u64 {
        let mut total = len_of(&self.path).ok().flatten().unwrap_or(0);
        for n in 1..self.files {
            total += len_of(&self.rotated_path(n)).ok().flatten().unwrap_or(0);
        }
        total
    }
}

/// Reads what is appended to a live log file, across rotations (for `logs -f`).
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    files: usize,
    rotations: Rotations,
    /// Rotations already accounted for.
    seen_rotations: u64,
    /// Offset reached in the live file as it was after `seen_rotations` rotations.
    pos: u64,
}

impl Follower {
    /// Bytes written since the last call, with no byte lost or repeated across rotations.
    ///
    /// After a rotation it first returns what it had not yet read from
    /// app.log.1 (the copied old live file), then the new live file from 0.
    /// After several rotations it continues in the older file holding its
    /// position; if that has already been dropped, it returns all kept files.
    pub fn read_new(&mut self) -> io::Result<Vec<u8>> {
        let count = lock(&self.rotations);
        let missed = count.saturating_sub(self.seen_rotations);
        let mut out = Vec::new();
        if missed == 0 {
            let len = len_of(&self.path)?.unwrap_or(0);
            if len < self.pos {
                // Truncated by someone else than a rotation: start over.
                self.pos = 0;
            }
            self.pos = read_from(&self.path, self.pos, &mut out)?;
            return Ok(out);
        }

        let kept = self.files - 1;
        // Where our old live file went: after `missed` rotations it is `.missed`.
        let missed = usize::try_from(missed).unwrap_or(usize::MAX);
        if missed <= kept {
            read_from(&numbered(&self.path, missed), self.pos, &mut out)?;
            for n in (1..missed).rev() {
                read_from(&numbered(&self.path, n), 0, &mut out)?;
            }
        } else {
            // Our position was dropped with the oldest file: everything kept is new to us.
            for n in (1..=kept).rev() {
                read_from(&numbered(&self.path, n), 0, &mut out)?;
            }
        }
        self.pos = read_from(&self.path, 0, &mut out)?;
        self.seen_rotations = *count;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(dir: &tempfile::TempDir, max_bytes: u64, files: usize) -> LogFiles {
        LogFiles::new(dir.path().join("logs/app.log"), max_bytes, files)
    }

    fn existing_files(l: &LogFiles) -> Vec<PathBuf> {
        let mut all = vec![l.path().to_path_buf()];
        all.extend((1..10).map(|n| l.rotated_path(n)));
        all.into_iter().filter(|p| p.exists()).collect()
    }

    #[test]
    fn open_for_child_creates_private_file_and_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1024, 3);
        let mut f = l.open_for_child().expect("open");
        f.write_all(b"hello\n").expect("write");
        let mode = fs::metadata(l.path()).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path().join("logs"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        l.note("[appforge] started pid 123 on port 8101")
            .expect("note");
        l.note("second\n").expect("note");
        assert_eq!(
            fs::read_to_string(l.path()).expect("read"),
            "hello\n[appforge] started pid 123 on port 8101\nsecond\n"
        );
    }

    #[test]
    fn rotation_caps_disk_use_and_keeps_the_file_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max = 10_000u64;
        let l = logs(&dir, max, 3);
        let mut writer = l.open_for_child().expect("open");
        let chunk = vec![b'x'; 999];
        let mut rotations = 0;
        let mut written = 0u64;
        while written < 10 * max {
            writer.write_all(&chunk).expect("write");
            written += chunk.len() as u64;
            if l.rotate_if_needed().expect("rotate") {
                rotations += 1;
            }
            assert!(
                l.disk_usage() <= 3 * (max + chunk.len() as u64),
                "disk use {} over the cap",
                l.disk_usage()
            );
        }
        assert!(rotations >= 8, "rotated {rotations} times");
        assert_eq!(existing_files(&l).len(), 3, "{:?}", existing_files(&l));
        // Below the threshold nothing happens.
        assert!(!l.rotate_if_needed().expect("rotate"));
    }

    #[test]
    fn single_file_rotation_just_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 10, 1);
        l.note("0123456789abcdef").expect("note");
        assert!(l.rotate_if_needed().expect("rotate"));
        assert_eq!(existing_files(&l), vec![l.path().to_path_buf()]);
        assert_eq!(l.disk_usage(), 0);
    }

    #[test]
    fn writer_keeps_working_after_truncation_without_a_hole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 100, 3);
        let mut writer = l.open_for_child().expect("open");
        writer.write_all(&[b'a'; 500]).expect("write");
        assert!(l.rotate_if_needed().expect("rotate"));
        assert_eq!(fs::metadata(l.path()).expect("meta").len(), 0);
        assert_eq!(
            fs::metadata(l.rotated_path(1)).expect("meta").len(),
            500,
            "copy holds the old content"
        );
        writer.write_all(b"after rotation\n").expect("write");
        let content = fs::read(l.path()).expect("read");
        assert_eq!(content, b"after rotation\n");
        assert_ne!(content[0], 0, "sparse hole at the start");
    }

    #[test]
    fn rotation_of_a_missing_file_is_a_no_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1, 3);
        assert!(!l.rotate_if_needed().expect("rotate"));
        assert_eq!(l.disk_usage(), 0);
    }

    #[test]
    fn tail_of_missing_files_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1024, 3);
        assert!(l.tail(20).expect("tail").is_empty());
        l.open_for_child().expect("create");
        assert!(l.tail(20).expect("tail").is_empty());
        assert!(l.tail(0).expect("tail").is_empty());
    }

    #[test]
    fn tail_returns_the_last_lines_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 30, 3);
        let mut w = l.open_for_child().expect("open");
        for i in 0..20_000 {
            writeln!(w, "line {i:05}").expect("write");
        }
        assert_eq!(
            l.tail(3).expect("tail"),
            vec!["line 19997", "line 19998", "line 19999"]
        );
        assert_eq!(l.tail(20_000).expect("tail").len(), 20_000);
        assert_eq!(l.tail(50_000).expect("tail").len(), 20_000);
        // An unfinished last line counts as a line.
        write!(w, "partial").expect("write");
        assert_eq!(l.tail(2).expect("tail"), vec!["line 19999", "partial"]);
        // Empty lines are kept; invalid UTF-8 is replaced.
        w.write_all(b"\n\n\xffend\n").expect("write");
        assert_eq!(l.tail(3).expect("tail"), vec!["partial", "", "\u{fffd}end"]);
    }

    #[test]
    fn tail_spans_the_rotation_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 60, 3);
        let mut w = l.open_for_child().expect("open");
        for i in 0..30 {
            // Rotating between a line and its newline splits it across two files.
            write!(w, "line {i:02}").expect("write");
            l.rotate_if_needed().expect("rotate");
            writeln!(w).expect("write");
            l.rotate_if_needed().expect("rotate");
        }
        assert!(l.rotated_path(2).exists());
        let live_lines = fs::read_to_string(l.path()).expect("read").lines().count();
        // More lines than the live file holds: the rest comes from .1.
        let n = live_lines + 5;
        let want: Vec<String> = (30 - n..30).map(|i| format!("line {i:02}")).collect();
        assert_eq!(l.tail(n).expect("tail"), want);
        // All kept lines, oldest first, nothing repeated; the oldest kept one
        // may be the tail end of a line whose start was dropped.
        let all = l.tail(1000).expect("tail");
        let first: usize = all[1][5..].parse().expect("number");
        assert!(format!("line {:02}", first - 1).ends_with(&all[0]));
        let want_rest: Vec<String> = (first..30).map(|i| format!("line {i:02}")).collect();
        assert_eq!(all[1..], want_rest[..]);
        let on_disk = l.disk_usage() as usize;
        let joined = all.join("\n").len() + 1;
        assert_eq!(joined, on_disk, "tail(1000) returned everything kept");
    }

    #[test]
    fn follower_sees_appended_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        l.note("before follow").expect("note");
        let mut f = l.follow().expect("follow");
        assert!(f.read_new().expect("read").is_empty());
        l.note("one").expect("note");
        l.note("two").expect("note");
        assert_eq!(f.read_new().expect("read"), b"one\ntwo\n");
        assert!(f.read_new().expect("read").is_empty());
        l.note("three").expect("note");
        assert_eq!(f.read_new().expect("read"), b"three\n");
    }

    #[test]
    fn follower_of_a_missing_file_starts_at_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        let mut f = l.follow().expect("follow");
        assert!(f.read_new().expect("read").is_empty());
        l.note("first").expect("note");
        assert_eq!(f.read_new().expect("read"), b"first\n");
    }

    /// Writes numbered lines, rotating between writes and reading every `read_every` lines.
    fn follow_across_rotations(max: u64, files: usize, read_every: usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, max, files);
        let mut w = l.open_for_child().expect("open");
        let mut f = l.follow().expect("follow");
        let mut seen = Vec::new();
        let mut rotations = 0;
        let total = 500;
        for i in 0..total {
            writeln!(w, "line {i:04}").expect("write");
            if l.rotate_if_needed().expect("rotate") {
                rotations += 1;
            }
            if i % read_every == 0 {
                seen.extend(f.read_new().expect("read"));
            }
        }
        seen.extend(f.read_new().expect("read"));
        assert!(rotations > 5, "only {rotations} rotations");
        let want: String = (0..total).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(String::from_utf8(seen).expect("utf8"), want);
    }

    #[test]
    fn follower_sees_every_line_once_across_rotations() {
        follow_across_rotations(100, 3, 1);
        follow_across_rotations(100, 3, 3);
    }

    #[test]
    fn follower_catches_up_after_several_rotations_between_reads() {
        // Reads every 20 lines (200 bytes) with rotation every ~60 bytes:
        // three rotations between reads, and 5 files keep enough of them.
        follow_across_rotations(50, 5, 20);
    }

    #[test]
    fn follower_catches_up_when_the_live_file_regrew_past_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 30, 3);
        let mut w = l.open_for_child().expect("open");
        w.write_all(b"aaaaaaaaaa\n").expect("write");
        let mut f = l.follow().expect("follow");
        w.write_all(b"bbbbbbbbbbbbbbbbbbbbbbbbb\n").expect("write");
        assert!(l.rotate_if_needed().expect("rotate"));
        // The new live file is longer than the follower's old position.
        w.write_all(b"cccccccccccccccccccc\n").expect("write");
        let got = f.read_new().expect("read");
        assert_eq!(
            String::from_utf8(got).expect("utf8"),
            "bbbbbbbbbbbbbbbbbbbbbbbbb\ncccccccccccccccccccc\n"
        );
    }

    #[test]
    fn follower_restarts_after_an_outside_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        l.note("some old line").expect("note");
        let mut f = l.follow().expect("follow");
        OpenOptions::new()
            .write(true)
            .open(l.path())
            .expect("open")
            .set_len(0)
            .expect("truncate");
        l.note("new").expect("note");
        assert_eq!(f.read_new().expect("read"), b"new\n");
    }

    #[test]
    fn handles_on_the_same_path_share_rotation_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = logs(&dir, 10, 3);
        let b = logs(&dir, 10, 3);
        a.note("start").expect("note");
        let mut f = a.follow().expect("follow");
        a.note("0123456789").expect("note");
        assert!(b.rotate_if_needed().expect("rotate"));
        a.note("more").expect("note");
        assert_eq!(f.read_new().expect("read"), b"0123456789\nmore\n");
    }
}
