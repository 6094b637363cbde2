//! Per-app log files: size rotation, tail and follow.
//!
//! An app's stdout and stderr are a pipe read by its log process (the
//! app's shim, see `confine::shim`), which writes them here through a
//! [`LogWriter`]: it rotates by renaming before a write would pass the cap,
//! so the cap holds at any write rate, also while the daemon is down. A
//! file the app held open itself could not be kept in bounds: the writer
//! would outrun any copy-then-truncate.
//!
//! Readers in the daemon (`tail`, [`Follower`]) find rotations by inode, as
//! `tail -F` does, so they need no lock shared with the writer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Block size for reading files backwards in `tail`.
const TAIL_BLOCK: u64 = 64 * 1024;

/// `path` with `.n` appended to its file name (`app.log` → `app.log.1`).
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The length of `path`, or `None` when it does not exist.
#[cfg(test)]
fn len_of(path: &Path) -> io::Result<Option<u64>> {
    Ok(identity_of(path)?.map(|(_, len)| len))
}

/// The inode and length of `path`, or `None` when it does not exist.
fn identity_of(path: &Path) -> io::Result<Option<(u64, u64)>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some((meta.ino(), meta.len()))),
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

/// Appends the bytes of `file` from `from` to its end to `out`; returns the offset reached.
fn read_rest(mut file: &File, from: u64, out: &mut Vec<u8>) -> io::Result<u64> {
    if from >= file.metadata()?.len() {
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
}

impl LogFiles {
    /// Log files at `path`, rotated above `max_bytes`, keeping `files` files in all (at least 1).
    pub fn new(path: PathBuf, max_bytes: u64, files: usize) -> Self {
        LogFiles {
            path,
            max_bytes,
            files: files.max(1),
        }
    }

    /// The cap of one file, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// How many files are kept, the live one included.
    pub fn files(&self) -> usize {
        self.files
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

    /// A writer that appends to the live file and rotates it by size.
    pub fn writer(&self) -> io::Result<LogWriter> {
        let file = self.open_for_child()?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            files: self.clone(),
            file,
            size,
        })
    }

    /// Drops the oldest file and shifts `.1` → `.2` …; the live file becomes `.1`.
    fn shift(&self) -> io::Result<()> {
        let kept = self.files - 1;
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
        fs::rename(&self.path, self.rotated_path(1))
    }

    /// The last `n` lines across the rotated files and the live one, oldest first (a file missing is fine).
    pub fn tail(&self, n: usize) -> io::Result<Vec<String>> {
        if n == 0 {
            return Ok(Vec::new());
        }
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
        let (inode, pos) = identity_of(&self.path)?.unwrap_or((0, 0));
        Ok(Follower {
            files: self.clone(),
            inode,
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

/// Appends to an app's live log and keeps every file under its cap: before
/// a write would pass it, the live file is renamed away and a new one
/// begun. Used by the app's log process, the one writer of the app's output.
#[derive(Debug)]
pub struct LogWriter {
    files: LogFiles,
    file: File,
    /// Bytes in the live file, as far as this writer knows.
    size: u64,
}

impl LogWriter {
    /// Writes `bytes`, rotating first when they would pass the cap. A chunk
    /// longer than the cap keeps only its end.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let cap = self.files.max_bytes;
        let bytes = &bytes[bytes
            .len()
            .saturating_sub(usize::try_from(cap).unwrap_or(usize::MAX))..];
        if self.size + bytes.len() as u64 > cap {
            // The daemon's notes go to the same file: count them too.
            self.size = self.file.metadata()?.len();
            if self.size + bytes.len() as u64 > cap && self.size > 0 {
                self.rotate()?;
            }
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.files.files == 1 {
            self.file.set_len(0)?;
        } else {
            self.files.shift()?;
            self.file = self.files.open_for_child()?;
        }
        self.size = self.file.metadata()?.len();
        Ok(())
    }
}

/// Reads what is appended to a live log file, across rotations (for `logs -f`).
#[derive(Debug)]
pub struct Follower {
    files: LogFiles,
    /// The inode of the file being read; 0 when none existed.
    inode: u64,
    /// Offset reached in it.
    pos: u64,
}

impl Follower {
    /// Bytes written since the last call, across rotations.
    ///
    /// After a rotation it finds the file it was reading by its inode among
    /// the rotated ones, returns the rest of it and of any newer rotated
    /// file, then the new live file from 0. If its file was already
    /// dropped, it returns all kept files.
    pub fn read_new(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // Files are opened first and known by their descriptors' inodes, so
        // a rotation between looking and reading cannot swap them.
        let Some(live) = open_if_exists(&self.files.path)? else {
            return Ok(out);
        };
        let live_inode = live.metadata()?.ino();
        if live_inode == self.inode || self.inode == 0 {
            if live.metadata()?.len() < self.pos || self.inode == 0 {
                // Truncated (or new): start over.
                self.pos = 0;
            }
            self.inode = live_inode;
            self.pos = read_rest(&live, self.pos, &mut out)?;
            return Ok(out);
        }
        let mut rotated = Vec::new();
        for n in 1..self.files.files {
            if let Some(file) = open_if_exists(&self.files.rotated_path(n))? {
                let inode = file.metadata()?.ino();
                rotated.push((inode, file));
            }
        }
        match rotated.iter().position(|(inode, _)| *inode == self.inode) {
            Some(ours) => {
                read_rest(&rotated[ours].1, self.pos, &mut out)?;
                for (_, newer) in rotated[..ours].iter().rev() {
                    read_rest(newer, 0, &mut out)?;
                }
            }
            // Our file was already dropped: everything kept is new to us.
            None => {
                for (_, file) in rotated.iter().rev() {
                    read_rest(file, 0, &mut out)?;
                }
            }
        }
        self.inode = live_inode;
        self.pos = read_rest(&live, 0, &mut out)?;
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
    fn the_writer_keeps_every_file_under_its_cap_and_the_file_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max = 10_000u64;
        let l = logs(&dir, max, 3);
        let mut writer = l.writer().expect("writer");
        let chunk = vec![b'x'; 999];
        for _ in 0..100 {
            writer.write(&chunk).expect("write");
            for file in existing_files(&l) {
                let len = fs::metadata(&file).expect("meta").len();
                assert!(len <= max, "{} holds {len} bytes", file.display());
            }
        }
        assert_eq!(existing_files(&l).len(), 3, "{:?}", existing_files(&l));
        assert!(l.disk_usage() <= 3 * max);
        // A chunk larger than the cap keeps its end only.
        let mut big = vec![b'a'; 3 * max as usize];
        big.extend_from_slice(b"the end\n");
        writer.write(&big).expect("write");
        let live = fs::read(l.path()).expect("read");
        assert_eq!(live.len() as u64, max);
        assert!(live.ends_with(b"the end\n"));
    }

    #[test]
    fn a_single_file_log_is_truncated_instead_of_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 10, 1);
        let mut writer = l.writer().expect("writer");
        writer.write(b"0123456789").expect("write");
        writer.write(b"abc").expect("write");
        assert_eq!(existing_files(&l), vec![l.path().to_path_buf()]);
        assert_eq!(fs::read(l.path()).expect("read"), b"abc");
    }

    #[test]
    fn tail_spans_the_rotation_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 100, 3);
        let mut writer = l.writer().expect("writer");
        for i in 0..30 {
            writer
                .write(format!("line {i:02}\n").as_bytes())
                .expect("write");
        }
        assert!(l.rotated_path(1).exists());
        let want: Vec<String> = (20..30).map(|i| format!("line {i:02}")).collect();
        assert_eq!(l.tail(10).expect("tail"), want);
    }

    #[test]
    fn follower_sees_appended_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        l.note("before").expect("note");
        let mut f = l.follow().expect("follow");
        assert!(f.read_new().expect("read").is_empty());
        l.note("first").expect("note");
        assert_eq!(f.read_new().expect("read"), b"first\n");
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

    /// Writes numbered lines through a writer that rotates, reading every `read_every` lines.
    fn follow_across_rotations(max: u64, files: usize, read_every: usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, max, files);
        let mut w = l.writer().expect("writer");
        let mut f = l.follow().expect("follow");
        let mut seen = Vec::new();
        let total = 500;
        for i in 0..total {
            w.write(format!("line {i:04}\n").as_bytes()).expect("write");
            if i % read_every == 0 {
                seen.extend(f.read_new().expect("read"));
            }
        }
        seen.extend(f.read_new().expect("read"));
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
        // Reads every 20 lines (200 bytes) with rotation every ~50 bytes:
        // several rotations between reads, and 6 files keep enough of them.
        follow_across_rotations(50, 6, 20);
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
}
