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
//!
//! appforge's own lines (the supervisor's and the shim's notes) begin with
//! [`MARK`], a control byte that the app's output cannot carry into the
//! log: the writer of that output shows it as the text `\x1e`. So a
//! reader ([`LogParser`]) tells them apart from the app's, and an app that
//! prints `[appforge] pid 1 exited …` writes an app line. A log written
//! before marks were used reads as the app's.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use appforge_shared::protocol::{LogLine, LogSource};

/// The byte that begins each of appforge's own lines in a log (ASCII
/// record separator: invisible where a log is printed raw).
pub const MARK: u8 = 0x1e;
/// How [`MARK`] in an app's output is written: as the escape a reader shows.
const MARK_ESCAPED: &[u8] = b"\\x1e";
/// The tag after the mark, for people who read the file itself.
const TAG: &str = "[appforge] ";

/// `text` as appforge's lines in a log: each line marked and tagged, any
/// mark inside escaped.
pub fn note_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + TAG.len() + 2);
    for line in text.trim_end_matches('\n').split('\n') {
        out.push(MARK);
        out.extend_from_slice(TAG.as_bytes());
        out.extend_from_slice(&escape_marks(line.as_bytes()));
        out.push(b'\n');
    }
    out
}

/// `bytes` with every [`MARK`] written as its escape.
fn escape_marks(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&MARK) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            MARK => out.extend_from_slice(MARK_ESCAPED),
            b => out.push(b),
        }
    }
    Cow::Owned(out)
}

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

    /// Appends one of appforge's own lines (e.g. "started pid 123 on port
    /// 8101"), marked as such and shown as "[appforge] started pid …".
    pub fn note(&self, text: &str) -> io::Result<()> {
        // One write on an O_APPEND file: it cannot interleave with the app's writes.
        self.open_for_child()?.write_all(&note_bytes(text))
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

    /// The last `n` lines across the rotated files and the live one, oldest
    /// first (a file missing is fine), as text for people and models:
    /// appforge's own lines tagged `[appforge]`.
    pub fn tail(&self, n: usize) -> io::Result<Vec<String>> {
        Ok(self.tail_lines(n)?.iter().map(shown).collect())
    }

    /// The last `n` lines, each with who wrote it.
    pub fn tail_lines(&self, n: usize) -> io::Result<Vec<LogLine>> {
        let mut lines = Vec::new();
        LogParser::default().feed_all(&self.tail_bytes(n)?, &mut lines);
        // A note written after an app's unfinished line shares its line in
        // the file but is a line of its own here.
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
        Ok(lines)
    }

    /// The bytes of the last `n` lines of the file, without the last newline.
    fn tail_bytes(&self, n: usize) -> io::Result<Vec<u8>> {
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
        // Past the newline before the n-th last line.
        let start = stream
            .iter()
            .rev()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(n - 1)
            .map_or(0, |(from_end, _)| stream.len() - from_end);
        stream.drain(..start);
        Ok(stream)
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
    /// Writes the app's output `bytes` ([`MARK`] escaped), rotating first
    /// when they would pass the cap. A chunk longer than the cap keeps only
    /// its end.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.append(&escape_marks(bytes))
    }

    /// Writes one of appforge's own lines (see [`LogFiles::note`]).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        self.append(&note_bytes(text))
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
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

/// How a line is shown to people and models: appforge's own tagged.
pub fn shown(line: &LogLine) -> String {
    match line.source {
        LogSource::App => line.text.clone(),
        LogSource::Appforge => format!("{TAG}{}", line.text),
    }
}

/// Splits a log's bytes into lines, each with who wrote it; fed in pieces
/// (as [`Follower`] reads them), it carries an unfinished line over.
#[derive(Debug, Default)]
pub struct LogParser {
    /// Who wrote the line begun in an earlier piece and not yet ended.
    open: Option<LogSource>,
    /// The start of a character cut off at the end of the last piece.
    cut: Vec<u8>,
}

impl LogParser {
    /// Appends the lines in `bytes` to `out`; a last line without its
    /// newline comes with `ends: false`, and the next piece goes on with it.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LogLine>) {
        let joined;
        let mut rest = match self.cut.is_empty() {
            true => bytes,
            false => {
                joined = [std::mem::take(&mut self.cut).as_slice(), bytes].concat();
                &joined[..]
            }
        };
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n');
            // Looked for on this line only: the whole rest would make a
            // long log cost the square of its lines.
            let line = &rest[..newline.unwrap_or(rest.len())];
            let mark = line.iter().position(|&b| b == MARK);
            match (mark, newline) {
                // A mark begins appforge's line: what came before it on the
                // line (an app's unfinished last words) ends there.
                (Some(at), _) if newline.is_none_or(|nl| at < nl) => {
                    if at > 0 || self.open.is_some() {
                        self.push(&rest[..at], true, out);
                    }
                    self.open = Some(LogSource::Appforge);
                    rest = &rest[at + 1..];
                    rest = rest.strip_prefix(TAG.as_bytes()).unwrap_or(rest);
                }
                (_, Some(at)) => {
                    self.push(&rest[..at], true, out);
                    rest = &rest[at + 1..];
                }
                (_, None) => {
                    // Hold back a character cut in two; it ends in the next piece.
                    let keep = match std::str::from_utf8(rest) {
                        Err(e) if e.error_len().is_none() => e.valid_up_to(),
                        _ => rest.len(),
                    };
                    self.cut = rest[keep..].to_vec();
                    if keep > 0 {
                        self.push(&rest[..keep], false, out);
                    }
                    rest = &[];
                }
            }
        }
    }

    /// Feeds the whole of a log: its last line ends with it.
    pub fn feed_all(mut self, bytes: &[u8], out: &mut Vec<LogLine>) {
        self.feed(bytes, out);
        if !self.cut.is_empty() {
            let cut = std::mem::take(&mut self.cut);
            self.push(&cut, false, out);
        }
        if let Some(last) = out.last_mut() {
            last.ends = true;
        }
    }

    fn push(&mut self, bytes: &[u8], ends: bool, out: &mut Vec<LogLine>) {
        let source = self.open.unwrap_or(LogSource::App);
        self.open = (!ends).then_some(source);
        out.push(LogLine {
            source,
            text: String::from_utf8_lossy(bytes).into_owned(),
            ends,
        });
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
        l.note("started pid 123 on port 8101").expect("note");
        l.note("second\n").expect("note");
        assert_eq!(
            fs::read_to_string(l.path()).expect("read"),
            "hello\n\x1e[appforge] started pid 123 on port 8101\n\x1e[appforge] second\n"
        );
    }

    fn app(text: &str) -> LogLine {
        LogLine {
            source: LogSource::App,
            text: text.into(),
            ends: true,
        }
    }

    fn ours(text: &str) -> LogLine {
        LogLine {
            source: LogSource::Appforge,
            text: text.into(),
            ends: true,
        }
    }

    #[test]
    fn an_app_cannot_write_appforges_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        let mut writer = l.writer().expect("writer");
        writer
            .write(b"[appforge] pid 1 exited\n\x1e[appforge] pid 2 exited\nx\x1ey\n")
            .expect("write");
        l.note("pid 3 exited with status 0").expect("note");
        writer.note("no namespaces\nfor this app").expect("note");
        assert_eq!(
            l.tail_lines(10).expect("tail"),
            vec![
                app("[appforge] pid 1 exited"),
                app("\\x1e[appforge] pid 2 exited"),
                app("x\\x1ey"),
                ours("pid 3 exited with status 0"),
                ours("no namespaces"),
                ours("for this app"),
            ]
        );
        // For people and models, appforge's lines keep their tag.
        assert_eq!(
            l.tail(2).expect("tail"),
            vec!["[appforge] no namespaces", "[appforge] for this app"]
        );
        // A log from before marks reads as the app's.
        let old = logs(&dir, 1 << 20, 1);
        fs::write(old.path(), "[appforge] started pid 1 on port 2\n").expect("write");
        assert_eq!(
            old.tail_lines(5).expect("tail"),
            vec![app("[appforge] started pid 1 on port 2")]
        );
    }

    #[test]
    fn a_note_after_an_unfinished_line_is_a_line_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        let mut writer = l.writer().expect("writer");
        writer.write(b"first\nlast words").expect("write");
        l.note("pid 1 exited").expect("note");
        assert_eq!(
            l.tail_lines(2).expect("tail"),
            vec![app("last words"), ours("pid 1 exited")]
        );
        assert_eq!(l.tail_lines(1).expect("tail"), vec![ours("pid 1 exited")]);
    }

    #[test]
    fn the_parser_carries_lines_and_characters_across_pieces() {
        let mut parser = LogParser::default();
        let mut out = Vec::new();
        let bytes = "héllo\n\x1e[appforge] pid 1\n".as_bytes();
        // "é" is cut between two pieces.
        parser.feed(&bytes[..2], &mut out);
        parser.feed(&bytes[2..4], &mut out);
        parser.feed(b"", &mut out);
        parser.feed(&bytes[4..], &mut out);
        parser.feed(b"partial", &mut out);
        parser.feed(b"\x1e[appforge] note\n", &mut out);
        let piece = |source, text: &str, ends| LogLine {
            source,
            text: text.into(),
            ends,
        };
        assert_eq!(
            out,
            vec![
                piece(LogSource::App, "h", false),
                piece(LogSource::App, "él", false),
                piece(LogSource::App, "lo", true),
                ours("pid 1"),
                piece(LogSource::App, "partial", false),
                piece(LogSource::App, "", true),
                ours("note"),
            ]
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
        assert_eq!(f.read_new().expect("read"), note_bytes("first"));
    }

    #[test]
    fn follower_of_a_missing_file_starts_at_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = logs(&dir, 1 << 20, 3);
        let mut f = l.follow().expect("follow");
        assert!(f.read_new().expect("read").is_empty());
        l.note("first").expect("note");
        assert_eq!(f.read_new().expect("read"), note_bytes("first"));
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
        assert_eq!(f.read_new().expect("read"), note_bytes("new"));
    }
}
