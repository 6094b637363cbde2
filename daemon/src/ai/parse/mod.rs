//! Turns a language model's reply into the files it names.
//!
//! Models answer in many shapes (a path line or heading before a fence, a path in the
//! fence's info string, a JSON object of files), so the parser accepts the common ones.
//! It refuses rather than guesses when the result could hurt: unsafe paths and
//! replies cut off inside a file are errors, never silently saved.

use std::collections::HashMap;

use appforge_shared::protocol::FileContent;
use serde_json::{Map, Value};

use crate::projects::path::{SafePath, UnsafePath};

/// Why a reply could not be turned into files.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The reply held no file in any format the parser knows.
    #[error(
        "the model's reply names no files: expected each file as a `### path/to/file` line \
         followed by a fenced code block holding the whole file (diffs and edit blocks are not \
         accepted); try again, or use a model that follows the format"
    )]
    NoFiles,
    /// A file header named a path that could escape the app folder or is malformed.
    #[error(
        "the model asked to write the file {path:?}, which is refused because {reason}; only \
         relative paths inside the app folder are allowed, so try again"
    )]
    UnsafePath {
        /// The path as the model wrote it.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file's fenced block never closed: the reply was cut off.
    #[error(
        "the model's reply was cut off inside {path:?} (its code block never closes), so \
         nothing was saved; try again, or raise the model's output token limit"
    )]
    Unterminated {
        /// The file whose block was cut off.
        path: String,
    },
    /// The reply holds more files than one app may have.
    #[error(
        "the model's reply has {count} files, more than the limit of {limit}; ask for a \
         smaller app"
    )]
    TooManyFiles {
        /// How many distinct files the reply holds.
        count: usize,
        /// The most files allowed.
        limit: usize,
    },
    /// One file is bigger than a generated file may be.
    #[error(
        "the model wrote {bytes} bytes into {path:?}, more than the limit of {limit} bytes per \
         file; ask for a smaller app or for that file to be split"
    )]
    FileTooLarge {
        /// The oversized file.
        path: String,
        /// Its size in bytes.
        bytes: usize,
        /// The largest size allowed.
        limit: usize,
    },
}

impl From<UnsafePath> for ParseError {
    fn from(e: UnsafePath) -> Self {
        ParseError::UnsafePath {
            path: e.path,
            reason: e.reason,
        }
    }
}

/// The output format the system prompt asks models for, as text to embed in the prompt.
pub const FORMAT_INSTRUCTIONS: &str = r#"Write out every file of the app in full. For each file, write a line holding `### ` and the file's relative path, then a fenced code block with the file's complete content, like this:

### app.py
```python
from flask import Flask, render_template

app = Flask(__name__)


@app.route("/")
def index():
    return render_template("index.html")
```

### templates/index.html
```html
<!doctype html>
<title>Example</title>
<h1>Hello</h1>
```

Rules:
- Paths are relative to the app folder and use `/` between folders, for example `app.py`, `templates/index.html`, `static/style.css`. Use only letters, digits, `.`, `_` and `-`: no spaces, no `..`, no leading `/`.
- Each block holds the whole file: never a diff, an excerpt, or a placeholder such as `# rest unchanged`.
- If a file itself contains ``` fences (a README.md, for example), open and close its block with four backticks (````) instead of three.
- Write each file once. Between files, write nothing but, optionally, a short sentence."#;

/// How a reply changes an existing app, as text for the improve and fix prompts.
pub const CHANGE_INSTRUCTIONS: &str = r#"Write only the files you add or change, each in full, in the format above. A file you do not write is kept exactly as it is; never write a file just to say it is unchanged. To delete a file, write a line holding `### DELETE: ` and its path, with no code block, like this:

### DELETE: static/old.js

Delete only files that must go: nothing is deleted otherwise."#;

/// Most distinct files one reply may produce, so a runaway reply cannot flood the app folder.
pub const MAX_FILES: usize = 200;
/// Largest file content accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// How many prose lines back a heading may still name the file of the next block.
mod json;
mod names;

use self::json::json_files;
use self::names::*;

const HEADING_LOOKBACK: usize = 6;
/// How many lines past a possible closing fence of a markdown file are examined.
const LOOKAHEAD_LINES: usize = 400;

/// Extensionless file names that are real files, not words.
const KNOWN_NAMES: &[&str] = &[
    "Dockerfile",
    "Containerfile",
    "Makefile",
    "GNUmakefile",
    "Procfile",
    "LICENSE",
    "LICENCE",
    "Gemfile",
    "Pipfile",
    "Vagrantfile",
    "Jenkinsfile",
    "Caddyfile",
];

/// Extensions common enough that a word in a heading carrying one is surely a file name.
const KNOWN_EXTS: &[&str] = &[
    "py",
    "pyi",
    "html",
    "htm",
    "css",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "json",
    "md",
    "txt",
    "toml",
    "yaml",
    "yml",
    "ini",
    "cfg",
    "conf",
    "env",
    "sh",
    "sql",
    "xml",
    "svg",
    "csv",
    "j2",
    "jinja",
    "jinja2",
    "vue",
    "svelte",
    "scss",
    "sass",
    "less",
    "lock",
    "php",
    "rb",
    "go",
    "rs",
    "java",
    "kt",
    "c",
    "h",
    "cpp",
    "hpp",
    "cs",
    "swift",
    "lua",
    "ps1",
    "bat",
    "example",
    "sample",
    "template",
    "tpl",
    "puml",
    "ipynb",
    "webmanifest",
];

/// Extensions of files that are never written as shell text, used to spot a usage block
/// (```bash) that sits under a heading naming a source file.
const CODE_EXTS: &[&str] = &[
    "py", "pyi", "html", "htm", "css", "scss", "sass", "less", "js", "mjs", "cjs", "ts", "tsx",
    "jsx", "json", "md", "toml", "sql", "xml", "svg", "vue", "svelte", "j2", "jinja", "jinja2",
    "php", "rb", "go", "rs", "java", "kt", "c", "h", "cpp", "hpp", "cs", "swift", "lua",
];

/// Technology names that look like file names but are words in prose.
const NOT_FILES: &[&str] = &[
    "node.js",
    "vue.js",
    "next.js",
    "nuxt.js",
    "react.js",
    "express.js",
    "alpine.js",
    "angular.js",
    "socket.io",
    "asp.net",
    "ado.net",
    ".net",
];

/// Info-string keys that name the file outright.
const PATH_ATTRS: &[&str] = &["file", "filename", "path", "filepath", "file_path"];
/// Info-string keys that may hold a file name, or a free-text title.
const TITLE_ATTRS: &[&str] = &["title", "name"];
/// Keys of a JSON file entry that hold its path, in order of preference.
const JSON_PATH_KEYS: &[&str] = &["path", "file_path", "filePath", "filename", "file", "name"];
/// Keys of a JSON file entry that hold its content, in order of preference.
const JSON_CONTENT_KEYS: &[&str] = &["content", "contents", "code", "text"];
/// Characters around a word in a heading that are punctuation, not part of a path.
const WORD_PUNCT: &[char] = &[
    '*', '`', '"', '\'', '(', ')', '[', ']', '{', '}', '<', '>', ',', ';', ':', '!', '?',
];

/// Parses a reply into files, in order of first appearance; a later block for the same path replaces the earlier one.
pub fn parse_reply(text: &str) -> Result<Vec<FileContent>, ParseError> {
    let text = normalize_newlines(text);
    let mut files = Files::default();
    match json_files(&text) {
        Some(entries) => files.add_json(entries)?,
        None => scan(&text, &mut files)?,
    }
    files.finish()
}

/// A reply that changes an existing app (`improve`, `fix`): the files it
/// writes in full, and the ones it deletes. A file it does not mention is
/// kept as it is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The files written, new or replaced.
    pub files: Vec<FileContent>,
    /// The paths deleted by a `### DELETE: path` line.
    pub deleted: Vec<String>,
}

/// Parses a reply that changes an existing app: its files as
/// [`parse_reply`] reads them, plus its deletions. A reply that only
/// deletes is a change too.
pub fn parse_change(text: &str) -> Result<Change, ParseError> {
    let text = normalize_newlines(text);
    let (rest, deleted) = take_deletions(&text)?;
    let files = match parse_reply(&rest) {
        Ok(files) => files,
        Err(ParseError::NoFiles) if !deleted.is_empty() => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(Change { files, deleted })
}

/// Takes the deletion lines (`### DELETE: path`, also `DELETE path` and
/// `DELETE: \`path\``) outside code blocks out of `text`, so no heading
/// heuristic reads them as the name of the next file. Inside a block, a
/// line like that is a file's content and stays.
fn take_deletions(text: &str) -> Result<(String, Vec<String>), ParseError> {
    let mut rest = String::with_capacity(text.len());
    let mut deleted: Vec<String> = Vec::new();
    // The open fence: its character and length.
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let run = |c: char| trimmed.chars().take_while(|&x| x == c).count();
        match fence {
            Some((c, n)) => {
                if run(c) >= n && trimmed.chars().all(|x| x == c) {
                    fence = None;
                }
            }
            None => {
                if let Some(c) = ['`', '~'].into_iter().find(|&c| run(c) >= 3) {
                    fence = Some((c, run(c)));
                } else if let Some(path) = deletion_path(trimmed) {
                    let path = SafePath::new(path)?.to_string();
                    if !deleted.contains(&path) {
                        deleted.push(path);
                    }
                    rest.push('\n');
                    continue;
                }
            }
        }
        rest.push_str(line);
    }
    Ok((rest, deleted))
}

/// The path of a deletion line: `DELETE` in capitals, after optional
/// heading marks, then an optional `:` and one path (bare, or in
/// backticks, quotes or bold). Anything else is not a deletion.
fn deletion_path(line: &str) -> Option<&str> {
    let line = line.trim_start_matches('#').trim();
    let line = line.strip_prefix("**").unwrap_or(line);
    let rest = line.strip_prefix("DELETE")?.trim_start_matches([':', '*']);
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let path = rest
        .trim()
        .trim_matches(|c| matches!(c, '`' | '"' | '\'' | '*'))
        .trim();
    (!path.is_empty() && !path.contains(char::is_whitespace)).then_some(path)
}

/// Where a block's path came from; weaker sources get extra sanity checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `file="x"`, `lang:x`, `File: x` or a JSON entry: the model named the file outright.
    Labeled,
    /// A line that is nothing but a (decorated) path.
    Line,
    /// A path picked out of a heading or bold line, possibly with prose after it.
    Heading,
    /// A bare path-looking word in the info string (```` ```app.py ````).
    InfoToken,
}

/// A block that will become a file.
struct Target {
    path: String,
    source: Source,
}

/// Files collected so far, deduplicated by path.
#[derive(Default)]
struct Files {
    list: Vec<FileContent>,
    index: HashMap<String, usize>,
}

impl Files {
    fn add(&mut self, path: String, content: &str) -> Result<(), ParseError> {
        let content = finish_content(content);
        if content.len() > MAX_FILE_BYTES {
            return Err(ParseError::FileTooLarge {
                path,
                bytes: content.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        if let Some(&k) = self.index.get(&path) {
            // Models that revise a file mid-reply mean the later version.
            if let Some(file) = self.list.get_mut(k) {
                file.content = content;
            }
            return Ok(());
        }
        self.index.insert(path.clone(), self.list.len());
        self.list.push(FileContent { path, content });
        Ok(())
    }

    fn add_json(&mut self, entries: Vec<(String, String)>) -> Result<(), ParseError> {
        for (raw, content) in entries {
            let path = SafePath::new(&raw)?.to_string();
            self.add(path, &normalize_newlines(&content))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<FileContent>, ParseError> {
        if self.list.is_empty() {
            return Err(ParseError::NoFiles);
        }
        if self.list.len() > MAX_FILES {
            return Err(ParseError::TooManyFiles {
                count: self.list.len(),
                limit: MAX_FILES,
            });
        }
        Ok(self.list)
    }
}

/// Makes every line end in `\n`, so CRLF replies parse and save like LF ones.
fn normalize_newlines(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Ends non-empty content with exactly one newline, as files on disk usually are.
fn finish_content(content: &str) -> String {
    let body = content.trim_end_matches('\n');
    if body.is_empty() {
        String::new()
    } else {
        format!("{body}\n")
    }
}

/// Walks the reply's markdown, turning each fenced block that has a path into a file.
fn scan(text: &str, files: &mut Files) -> Result<(), ParseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    // Top-level non-blank lines since the last file: where headers are looked for.
    let mut prose: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(fence) = Fence::parse(lines[i]) else {
            if !is_blank(lines[i]) {
                prose.push(i);
            }
            i += 1;
            continue;
        };
        let target = block_target(&lines, i, &fence, &prose)?;
        let lang = fence.lang();
        let markdown =
            is_markdown_lang(lang) || target.as_ref().is_some_and(|t| is_markdown_path(&t.path));
        let Some(close) = find_close(&lines, i, &fence, markdown) else {
            // A file cut off mid-block must not be saved; a cut-off usage block is harmless.
            return match target {
                Some(t) => Err(ParseError::Unterminated { path: t.path }),
                None => Ok(()),
            };
        };
        let content = block_content(lines.get(i + 1..close).unwrap_or(&[]), fence.indent);
        match target {
            Some(t) => {
                let tree = t.source == Source::Heading && looks_like_tree(&content);
                if !tree && !is_edit_block(&content, &t.path) {
                    files.add(t.path, &content)?;
                    prose.clear();
                }
            }
            None if lang.is_empty() || lang.eq_ignore_ascii_case("json") => {
                if let Some(entries) = json_files(&content) {
                    files.add_json(entries)?;
                    prose.clear();
                }
            }
            None => {}
        }
        i = close + 1;
    }
    Ok(())
}

/// Decides which file, if any, the block opened at line `at` holds.
fn block_target(
    lines: &[&str],
    at: usize,
    fence: &Fence<'_>,
    prose: &[usize],
) -> Result<Option<Target>, ParseError> {
    let info = InfoPath::parse(fence.info);
    let found = info
        .labeled
        .map(|p| (p, Source::Labeled))
        .or_else(|| header_path(lines, at, prose))
        .or_else(|| info.token.map(|p| (p, Source::InfoToken)));
    let Some((raw, source)) = found else {
        return Ok(None);
    };
    let lang = fence.lang();
    // "How to run app.py" followed by ```bash is a usage note, not app.py itself.
    if source != Source::Labeled && is_shell_lang(lang) && has_ext_in(&raw, CODE_EXTS) {
        return Ok(None);
    }
    let path = SafePath::new(&raw)?.to_string();
    if is_diff_lang(lang) && !is_diff_path(&path) {
        return Ok(None);
    }
    Ok(Some(Target { path, source }))
}

/// Finds the path named just above the fence at `at`, by a path line or a heading.
fn header_path(lines: &[&str], at: usize, prose: &[usize]) -> Option<(String, Source)> {
    let before = lines.get(..at).unwrap_or(&[]);
    if let Some(j) = before.iter().rposition(|l| !is_blank(l)) {
        // Only a prose line counts: a previous block's closing fence names nothing.
        if prose.last() == Some(&j) {
            let line = before[j];
            if let Some(found) = path_line(line) {
                return Some(found);
            }
            if is_heading(line) || is_bold_lead(line) {
                return heading_path(line).map(|p| (p, Source::Heading));
            }
        }
    }
    for &j in prose.iter().rev().take(HEADING_LOOKBACK) {
        let line = lines.get(j).copied().unwrap_or("");
        // The nearest heading ends the search: a heading without a path starts a new topic.
        if is_heading(line) || line.trim_start().starts_with("**") {
            return heading_path(line).map(|p| (p, Source::Heading));
        }
    }
    None
}

/// Reads a line that is nothing but a path, however decorated (`**x**`, `1. x`, `### x`, `File: x`).
fn path_line(line: &str) -> Option<(String, Source)> {
    let mut s = line.trim();
    let mut heading = false;
    let mut labeled = false;
    // Decorations nest in any order ("**File: `x`**:"), so peel until nothing changes.
    for _ in 0..8 {
        let before = s;
        if let Some(rest) = strip_heading(s) {
            s = rest;
            heading = true;
        }
        if let Some(rest) = strip_list_marker(s) {
            s = rest;
        }
        s = strip_wrapper(s);
        s = s.strip_suffix(':').unwrap_or(s).trim_end();
        if let Some(rest) = strip_label(s) {
            s = rest;
            labeled = true;
        }
        if s == before {
            break;
        }
    }
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return None;
    }
    // Paths that climb or are absolute must reach check_path and fail loudly.
    let suspicious = (has_dotdot(s) || heading || labeled) && has_separator(s);
    if !(looks_like_file(s) || suspicious) {
        return None;
    }
    let source = if labeled {
        Source::Labeled
    } else {
        Source::Line
    };
    Some((s.to_string(), source))
}

/// Picks the one path a heading or bold line names ("#### 1. Backend `app.py`").
fn heading_path(line: &str) -> Option<String> {
    let mut s = line.trim();
    let heading = strip_heading(s);
    if let Some(rest) = heading {
        s = rest;
    }
    if let Some(rest) = strip_list_marker(s) {
        s = rest;
    }
    // A bold lead is the line's subject: "**app.py** (the server)". Outside headings the
    // text after it is prose ("**Note:** run `app.py`"), so only the bold part counts.
    for delim in ["**", "__"] {
        if let Some(span) = s.strip_prefix(delim).and_then(|r| r.split_once(delim)) {
            if let Some((path, _)) = path_line(span.0) {
                return Some(path);
            }
            if heading.is_none() {
                s = span.0;
            }
            break;
        }
    }
    let spans: Vec<&str> = s.split('`').collect();
    let quoted: Vec<&str> = spans
        .iter()
        .enumerate()
        .filter(|(k, _)| k % 2 == 1 && k + 1 < spans.len())
        .map(|(_, span)| span.trim().trim_end_matches(':'))
        .filter(|span| looks_like_file(span))
        .collect();
    if !quoted.is_empty() {
        return single(quoted);
    }
    // Unquoted words need a familiar extension: "e.g" or "v1.2" are not files. Code spans
    // that are not paths ("`python app.py`") are commands, so their words do not count.
    let words: Vec<&str> = spans
        .iter()
        .step_by(2)
        .flat_map(|part| part.split_whitespace())
        .map(|w| w.trim_matches(WORD_PUNCT).trim_end_matches('.'))
        .filter(|w| looks_like_file(w) && (is_familiar_name(w) || w.contains('/')))
        .collect();
    single(words)
}

/// The only distinct candidate, if there is exactly one; two paths in one heading are ambiguous.
fn single(mut candidates: Vec<&str>) -> Option<String> {
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [one] => Some((*one).to_string()),
        _ => None,
    }
}

fn strip_heading(s: &str) -> Option<&str> {
    let hashes = s.bytes().take_while(|&b| b == b'#').count();
    if hashes == 0 || hashes > 6 {
        return None;
    }
    let rest = &s[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim_end())
}

fn strip_list_marker(s: &str) -> Option<&str> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = if (1..=3).contains(&digits) {
        s[digits..].strip_prefix(['.', ')'])?
    } else {
        s.strip_prefix(['-', '*', '+'])?
    };
    rest.starts_with([' ', '\t']).then(|| rest.trim_start())
}

/// Removes one layer of `**x**`, `__x__`, `` `x` ``, `*x*` or `_x_`.
fn strip_wrapper(s: &str) -> &str {
    for w in ["**", "__", "`", "*", "_"] {
        if s.len() > 2 * w.len() && s.starts_with(w) && s.ends_with(w) {
            return s[w.len()..s.len() - w.len()].trim();
        }
    }
    s
}

/// Removes a `File:` style label, keeping what follows it.
fn strip_label(s: &str) -> Option<&str> {
    let (head, rest) = s.split_once(':')?;
    let head = head
        .trim()
        .trim_matches(['*', '_'])
        .trim()
        .to_ascii_lowercase();
    let label = matches!(
        head.as_str(),
        "file" | "filename" | "file name" | "path" | "file path" | "filepath"
    );
    label.then(|| rest.trim().trim_start_matches(['*', '_']).trim())
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_heading(line: &str) -> bool {
    strip_heading(line.trim()).is_some()
}

fn is_bold_lead(line: &str) -> bool {
    let t = line.trim();
    let t = strip_list_marker(t).unwrap_or(t);
    t.starts_with("**") || t.starts_with("__")
}

fn is_whole_bold(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 5 && t.starts_with("**") && (t.ends_with("**") || t.ends_with("**:"))
}

/// A fence line: ```` ``` ```` or `~~~`, three or more, with an optional info string.
struct Fence<'a> {
    ch: u8,
    len: usize,
    indent: usize,
    info: &'a str,
}

impl<'a> Fence<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let body = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - body.len();
        let ch = *body.as_bytes().first()?;
        if ch != b'`' && ch != b'~' {
            return None;
        }
        let len = body.bytes().take_while(|&b| b == ch).count();
        if len < 3 {
            return None;
        }
        let info = body[len..].trim();
        // CommonMark: a backtick info string holding a backtick is inline code, not a fence.
        if ch == b'`' && info.contains('`') {
            return None;
        }
        Some(Fence {
            ch,
            len,
            indent,
            info,
        })
    }

    fn is_bare(&self) -> bool {
        self.info.is_empty()
    }

    /// The language word of the info string: `python` in ```` ```python:app.py ````.
    fn lang(&self) -> &'a str {
        let first = self.info.split_whitespace().next().unwrap_or("");
        first.split([':', '{']).next().unwrap_or("")
    }
}

/// A path named in a fence's info string.
#[derive(Default)]
struct InfoPath {
    /// Named outright: `python:app.py`, `file="app.py"`, `title="app.py"`.
    labeled: Option<String>,
    /// A bare word that looks like a file: ```` ```app.py ````.
    token: Option<String>,
}

impl InfoPath {
    fn parse(info: &str) -> Self {
        let mut found = InfoPath::default();
        let first = info.split_whitespace().next().unwrap_or("");
        if let Some((_, path)) = first.split_once(':') {
            if path_ish(path) {
                found.labeled = Some(path.to_string());
            }
        }
        for (key, value) in info_attrs(info) {
            if found.labeled.is_some() {
                break;
            }
            let named = PATH_ATTRS.contains(&key.as_str()) && !value.is_empty();
            let titled = TITLE_ATTRS.contains(&key.as_str()) && path_ish(&value);
            if named || titled {
                found.labeled = Some(value);
            }
        }
        found.token = info
            .split_whitespace()
            .find(|t| t.contains('.') && !t.contains(['=', ':', '"', '\'']) && looks_like_file(t))
            .map(str::to_string);
        found
    }
}

/// Reads `key=value`, `key="value"` and `key='value'` pairs from an info string.
fn info_attrs(info: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = info;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (value, remaining) = if let Some(quoted) = after.strip_prefix(['"', '\'']) {
            let quote = if after.starts_with('"') { '"' } else { '\'' };
            match quoted.find(quote) {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == '}' || c == ',')
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key, value.trim().to_string()));
        rest = remaining;
    }
    out
}

/// Finds the line that closes the block opened at `open`, or None if the reply ends first.
///
/// Plain blocks follow CommonMark: the first bare fence of the same character, at least as
/// long. Markdown files often hold their own fenced examples, so there an inner fence with
/// an info string or more indentation opens a nested block, and a bare fence at the outer
/// indentation closes the file only if what follows does not look like the rest of it.
fn find_close(lines: &[&str], open: usize, outer: &Fence<'_>, markdown: bool) -> Option<usize> {
    // A longer outer fence (````) already tells inner ``` apart, so nesting is unneeded.
    let nesting = markdown && outer.len == 3;
    let mut nested: Vec<usize> = Vec::new();
    for (k, line) in lines.iter().enumerate().skip(open + 1) {
        let Some(f) = Fence::parse(line) else {
            continue;
        };
        if f.ch != outer.ch || f.len < outer.len {
            continue;
        }
        if !nesting {
            if f.is_bare() && f.indent <= outer.indent + 3 {
                return Some(k);
            }
            continue;
        }
        if let Some(&top) = nested.last() {
            if f.is_bare() && f.len >= top {
                nested.pop();
            }
            continue;
        }
        if !f.is_bare() || f.indent > outer.indent || !closes_here(lines, k) {
            nested.push(f.len);
            continue;
        }
        return Some(k);
    }
    None
}

/// Tells whether the bare fence at `k`, inside a markdown file, ends the file: it does
/// unless another bare fence follows before the next file starts (then `k` opened an inner
/// example whose closing fence that is).
fn closes_here(lines: &[&str], k: usize) -> bool {
    let mut m = k + 1;
    let mut seen = 0;
    while m < lines.len() && seen < LOOKAHEAD_LINES {
        seen += 1;
        let line = lines[m];
        if is_blank(line) {
            m += 1;
            continue;
        }
        if let Some(f) = Fence::parse(line) {
            if f.is_bare() {
                return false;
            }
            let info = InfoPath::parse(f.info);
            if info.labeled.is_some() || info.token.is_some() {
                return true;
            }
            // A labelled block (```bash) after the file: skip over it.
            match find_close(lines, m, &f, false) {
                Some(close) => m = close + 1,
                None => return true,
            }
            continue;
        }
        if starts_next_file(lines, m) {
            return true;
        }
        m += 1;
    }
    true
}

/// True when line `m` is the header of another file.
fn starts_next_file(lines: &[&str], m: usize) -> bool {
    let line = lines.get(m).copied().unwrap_or("");
    let strict = path_line(line).is_some();
    let titled = (is_heading(line) || is_whole_bold(line)) && heading_path(line).is_some();
    if !strict && !titled {
        return false;
    }
    let next_is_fence = lines
        .get(m + 1..)
        .unwrap_or(&[])
        .iter()
        .find(|l| !is_blank(l))
        .is_some_and(|l| Fence::parse(l).is_some());
    // "# app.py" may be a shell comment in an example; "## app.py" or "**app.py**" is not.
    next_is_fence || (titled && !line.trim_start().starts_with("# "))
}

/// Joins a block's lines, removing the fence's own indentation (blocks inside list items).
fn block_content(lines: &[&str], indent: usize) -> String {
    let mut out = String::new();
    for (k, line) in lines.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        let strip = line
            .bytes()
            .take(indent)
            .take_while(|b| *b == b' ' || *b == b'\t')
            .count();
        out.push_str(&line[strip..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(files: &[FileContent]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    fn parse_ok(text: &str) -> Vec<FileContent> {
        match parse_reply(text) {
            Ok(files) => files,
            Err(e) => panic!("expected files, got error: {e}\n--- reply ---\n{text}"),
        }
    }

    fn unsafe_reason(result: Result<impl std::fmt::Debug, ParseError>) -> &'static str {
        match result {
            Err(ParseError::UnsafePath { reason, .. }) => reason,
            other => panic!("expected UnsafePath, got {other:?}"),
        }
    }

    const CANONICAL: &str = "Here is the whole app.

### app.py
```python
from flask import Flask, render_template

app = Flask(__name__)
```

The page it renders:

### templates/index.html
```html
<!doctype html>
<h1>Notes</h1>
```

### requirements.txt
```
flask
```
";

    const BOLD_WITH_PLAN_AND_TREE: &str = "I will build it in these parts:

1. **app.py**: the Flask server and its routes.

2. **templates/index.html**: the single page.

3. **static/style.css**: a few styles.

Let's write them.

**Project Structure**

```
notes/
├── app.py
├── static/
│   └── style.css
└── templates/
    └── index.html
```

**Files**

**app.py**
```python
print(\"server\")
```

**templates/index.html**
```html
<p>page</p>
```

**static/style.css**
```
body { margin: 0; }
```

That is the complete app.
";

    const NUMBERED_BLANK_LINE: &str = "Sure! These are the fixed files:

1. app.py

```python
from flask import Flask
app = Flask(__name__)
```

2. home.html

```html
<h1>Home</h1>
```
";

    const HEADINGS_WITH_PROSE: &str = "### Overview
- `app.py`: the server.
- `templates/index.html`: the page.

#### 1. Backend `app.py`
This module starts the server.
It reads its port from the environment.

```python
import os
PORT = int(os.environ.get(\"PORT\", \"5000\"))
```

#### 2. How to run it
Nothing here names a file.

```bash
flask run
```

### File: templates/index.html
```html
<p>Hello</p>
```
";

    const INFO_STRINGS: &str = "Files follow.

```python:app.py
print(1)
```

```html file=\"templates/index.html\"
<p>1</p>
```

```css title=\"static/style.css\"
p { color: red; }
```

```javascript path=static/app.js
console.log(1);
```

```requirements.txt
flask
```
";

    const README_INFO_FENCES: &str = "### app.py
```python
print(1)
```

### README.md
```markdown
# Notes app

Install the dependencies:

```bash
pip install -r requirements.txt
```

Then start it with `flask run`.
```

That is everything.
";

    const README_BARE_FENCES: &str = "**README.md**
```
Notes
=====

Start it with Docker:
```
docker compose up
```
Then open the browser.
```

**app.py**
```
print(2)
```
";

    const README_INDENTED_FENCES: &str = "**README.md**
```
# Notes

1. Install:
   ```
   pip install flask
   ```

2. Run:
   ```
   flask run
   ```
```

This concludes a fully working implementation.
";

    const JSON_ARRAY: &str = r#"{"files": [
  {"path": "app.py", "content": "print(1)\n"},
  {"path": "templates/index.html", "content": "<p>1</p>"}
]}"#;

    const JSON_MAP: &str = r#"{"files": {"zeta.py": "z = 1\n", "app.py": "print(1)\n"}}"#;

    const JSON_FLAT: &str =
        r#"{"templates/index.html": "<p>1</p>\n", "app.py": "print(1)\n", ".env.example": "A=1"}"#;

    const V0_CUT_OFF: &str = "Some notes.

```python file=\"app.py\"
import os

def main():
    print(os.getcwd())
";

    fn fixtures() -> Vec<String> {
        let mut all: Vec<String> = [
            CANONICAL,
            BOLD_WITH_PLAN_AND_TREE,
            NUMBERED_BLANK_LINE,
            HEADINGS_WITH_PROSE,
            INFO_STRINGS,
            README_INFO_FENCES,
            README_BARE_FENCES,
            README_INDENTED_FENCES,
            JSON_ARRAY,
            JSON_MAP,
            JSON_FLAT,
            V0_CUT_OFF,
            FORMAT_INSTRUCTIONS,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.push(CANONICAL.replace('\n', "\r\n"));
        all.push(format!("```json\n{JSON_ARRAY}\n```\n"));
        all.push(format!("Here you go:\n\n```json\n{JSON_MAP}\n```\n"));
        all
    }

    // ---- canonical format and F1 ----

    #[test]
    fn canonical_format() {
        let files = parse_ok(CANONICAL);
        assert_eq!(
            files,
            vec![
                FileContent::new(
                    "app.py",
                    "from flask import Flask, render_template\n\napp = Flask(__name__)\n"
                ),
                FileContent::new("templates/index.html", "<!doctype html>\n<h1>Notes</h1>\n"),
                FileContent::new("requirements.txt", "flask\n"),
            ]
        );
    }

    #[test]
    fn format_instructions_example_parses() {
        let files = parse_ok(FORMAT_INSTRUCTIONS);
        assert_eq!(paths(&files), ["app.py", "templates/index.html"]);
        assert!(files[0].content.contains("render_template(\"index.html\")"));
    }

    #[test]
    fn f1_every_decoration() {
        let decorations = [
            "app.py",
            "**app.py**",
            "**app.py**:",
            "**app.py:**",
            "__app.py__",
            "1. app.py",
            "12) app.py",
            "- app.py",
            "`app.py`",
            "`app.py`:",
            "### app.py",
            "## `app.py`",
            "app.py:",
            "File: app.py",
            "file: `app.py`",
            "Filename: app.py",
            "**File: app.py**",
            "**File:** app.py",
            "1. **app.py**",
            "app.py   ",
            "   **app.py**  ",
            "./app.py",
        ];
        for deco in decorations {
            for gap in ["\n", "\n\n", "\n  \n\n"] {
                let reply = format!("Intro text.\n\n{deco}{gap}```python\nx = 1\n```\n");
                assert_eq!(
                    parse_reply(&reply),
                    Ok(vec![FileContent::new("app.py", "x = 1\n")]),
                    "{deco:?} {gap:?}"
                );
            }
        }
    }

    #[test]
    fn f1_nested_paths_and_extensionless_names() {
        let names = [
            "templates/index.html",
            "static/js/app.min.js",
            "Dockerfile",
            "Makefile",
            "Procfile",
            "LICENSE",
            ".gitignore",
            ".env.example",
            ".dockerignore",
            "backend/__init__.py",
            "__init__.py",
            "tests/test_app.py",
        ];
        for name in names {
            let reply = format!("**{name}**\n```\ncontent\n```\n");
            assert_eq!(
                parse_reply(&reply),
                Ok(vec![FileContent::new(name, "content\n")]),
                "{name}"
            );
        }
    }

    #[test]
    fn f1_bold_paths_skip_plan_list_and_tree() {
        let files = parse_ok(BOLD_WITH_PLAN_AND_TREE);
        assert_eq!(
            files,
            vec![
                FileContent::new("app.py", "print(\"server\")\n"),
                FileContent::new("templates/index.html", "<p>page</p>\n"),
                FileContent::new("static/style.css", "body { margin: 0; }\n"),
            ]
        );
    }

    #[test]
    fn f1_numbered_with_blank_line() {
        let files = parse_ok(NUMBERED_BLANK_LINE);
        assert_eq!(paths(&files), ["app.py", "home.html"]);
        assert_eq!(files[1].content, "<h1>Home</h1>\n");
    }

    #[test]
    fn f1_fence_inside_list_item_is_dedented() {
        let reply = "1. app.py\n\n   ```python\n   def f():\n       return 1\n   ```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "def f():\n    return 1\n")])
        );
    }

    #[test]
    fn path_line_must_be_right_before_fence() {
        // A previous block sits between the path line and this fence.
        let reply = "app.py\n```python\nx = 1\n```\n```python\ny = 2\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "x = 1\n")])
        );
    }

    // ---- F2 ----

    #[test]
    fn f2_headings_with_prose_between() {
        let files = parse_ok(HEADINGS_WITH_PROSE);
        assert_eq!(
            files,
            vec![
                FileContent::new(
                    "app.py",
                    "import os\nPORT = int(os.environ.get(\"PORT\", \"5000\"))\n"
                ),
                FileContent::new("templates/index.html", "<p>Hello</p>\n"),
            ]
        );
    }

    #[test]
    fn f2_heading_variants() {
        let headings = [
            "#### 1. Backend `app.py`",
            "### File: app.py",
            "## app.py",
            "### Step 2: create app.py",
            "**The server (`app.py`)**",
            "**app.py** (the Flask server)",
            "### `app.py` (uses `Flask`)",
        ];
        for heading in headings {
            for between in [
                "",
                "This is the server.\n",
                "It does two things.\nBoth matter.\n\n",
            ] {
                let reply = format!("{heading}\n{between}\n```python\nx = 1\n```\n");
                assert_eq!(
                    parse_reply(&reply),
                    Ok(vec![FileContent::new("app.py", "x = 1\n")]),
                    "{heading:?} / {between:?}"
                );
            }
        }
    }

    #[test]
    fn f2_command_in_heading_is_not_a_path() {
        let reply = "### Running `python app.py`\n```\npython app.py\n```\n";
        assert_eq!(parse_reply(reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn f2_heading_with_two_paths_is_ambiguous() {
        let reply = "### Update `app.py` and `models.py`\nBoth change.\n```python\nx = 1\n```\n";
        assert_eq!(parse_reply(reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn f2_heading_without_path_stops_the_search() {
        let reply = "### app.py\nSome words.\n### Running\nUse this:\n```python\nx = 1\n```\n";
        assert_eq!(parse_reply(reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn f2_heading_too_far_above_is_ignored() {
        let prose = "More words.\n".repeat(HEADING_LOOKBACK + 1);
        let reply = format!("### app.py\n{prose}```python\nx = 1\n```\n");
        assert_eq!(parse_reply(&reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn f2_usage_block_does_not_take_the_heading_path() {
        // The bash block is not app.py; the heading still names the python block after it.
        let reply = "## Step 1: create `app.py`\n\nFirst install Flask:\n\n```bash\npip install flask\n```\n\nThen write it:\n\n```python\nx = 1\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "x = 1\n")])
        );
    }

    #[test]
    fn heading_over_tree_block_is_not_a_file() {
        let reply = "### Layout of `app.py` and friends\n```\n.\n├── app.py\n└── templates/\n```\n\n### app.py\n```python\nx = 1\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "x = 1\n")])
        );
    }

    // ---- F3 ----

    #[test]
    fn f3_every_info_string_variant() {
        let files = parse_ok(INFO_STRINGS);
        assert_eq!(
            files,
            vec![
                FileContent::new("app.py", "print(1)\n"),
                FileContent::new("templates/index.html", "<p>1</p>\n"),
                FileContent::new("static/style.css", "p { color: red; }\n"),
                FileContent::new("static/app.js", "console.log(1);\n"),
                FileContent::new("requirements.txt", "flask\n"),
            ]
        );
    }

    #[test]
    fn f3_more_spellings() {
        let infos = [
            "python:app.py",
            "python file=\"app.py\"",
            "python file='app.py'",
            "python filename=app.py",
            "python title=\"app.py\"",
            "python path=app.py",
            "python {title=\"app.py\"}",
            "app.py",
            "python app.py",
            "  python   file=\"./app.py\"  ",
        ];
        for info in infos {
            let reply = format!("Code:\n```{info}\nx = 1\n```\n");
            assert_eq!(
                parse_reply(&reply),
                Ok(vec![FileContent::new("app.py", "x = 1\n")]),
                "{info:?}"
            );
        }
    }

    #[test]
    fn f3_labelled_info_wins_over_header_line() {
        let reply = "**main.py**\n```python file=\"app.py\"\nx = 1\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "x = 1\n")])
        );
    }

    #[test]
    fn f3_title_that_is_not_a_path_is_ignored() {
        let reply = "```python title=\"Example usage\"\nx = 1\n```\n";
        assert_eq!(parse_reply(reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn language_names_are_not_paths() {
        for info in ["python", "Dockerfile", "node.js", "json", "c++", "js{1,3}"] {
            let reply = format!("```{info}\nx\n```\n");
            assert_eq!(parse_reply(&reply), Err(ParseError::NoFiles), "{info}");
        }
    }

    // ---- F5 ----

    #[test]
    fn f5_all_shapes_bare_and_fenced() {
        let want_array = vec![
            FileContent::new("app.py", "print(1)\n"),
            FileContent::new("templates/index.html", "<p>1</p>\n"),
        ];
        // Map shapes keep the order the reply wrote, not alphabetical order.
        let want_map = vec![
            FileContent::new("zeta.py", "z = 1\n"),
            FileContent::new("app.py", "print(1)\n"),
        ];
        let want_flat = vec![
            FileContent::new("templates/index.html", "<p>1</p>\n"),
            FileContent::new("app.py", "print(1)\n"),
            FileContent::new(".env.example", "A=1\n"),
        ];
        for (json, want) in [
            (JSON_ARRAY, &want_array),
            (JSON_MAP, &want_map),
            (JSON_FLAT, &want_flat),
        ] {
            assert_eq!(&parse_ok(json), want, "bare {json}");
            assert_eq!(&parse_ok(&format!("  \n{json}\n\n")), want, "padded {json}");
            let fenced = format!("Here are the files:\n\n```json\n{json}\n```\n\nEnjoy.\n");
            assert_eq!(&parse_ok(&fenced), want, "fenced {json}");
            let unlabelled = format!("```\n{json}\n```\n");
            assert_eq!(&parse_ok(&unlabelled), want, "bare fence {json}");
        }
    }

    #[test]
    fn f5_other_entry_keys_and_crlf_content() {
        let json = r#"{"files":[{"filename":"a.py","code":"x = 1\r\ny = 2"},{"name":"b.txt","contents":""}]}"#;
        assert_eq!(
            parse_reply(json),
            Ok(vec![
                FileContent::new("a.py", "x = 1\ny = 2\n"),
                FileContent::new("b.txt", "")
            ])
        );
    }

    #[test]
    fn f5_unsafe_path_is_an_error() {
        let json = r#"{"files":[{"path":"../../etc/passwd","content":"x"}]}"#;
        assert_eq!(
            unsafe_reason(parse_reply(json)),
            "it climbs out of its folder with `..`"
        );
        let flat = r#"{"app.py": "x", "/etc/passwd": "y"}"#;
        assert_eq!(unsafe_reason(parse_reply(flat)), "it is absolute");
    }

    #[test]
    fn f5_non_file_json_is_not_files() {
        for json in [
            r#"{"name": "demo", "version": "1.0.0"}"#,
            r#"{"files": ["dist"]}"#,
            r#"{"files": {}}"#,
            r#"{"app.py": 3}"#,
            r#"{"app.py": "x", "description": "an app"}"#,
            r#"{"files": [{"path": "app.py"}]}"#,
            r#"{"files": [{"path": "app.py", "content": "x"}"#,
        ] {
            assert_eq!(parse_reply(json), Err(ParseError::NoFiles), "{json}");
            let fenced = format!("```json\n{json}\n```\n");
            assert_eq!(parse_reply(&fenced), Err(ParseError::NoFiles), "{json}");
        }
    }

    #[test]
    fn json_file_with_a_header_stays_a_file() {
        let reply = "### package.json\n```json\n{\"files\": [{\"path\": \"x.py\", \"content\": \"y\"}]}\n```\n";
        let files = parse_ok(reply);
        assert_eq!(paths(&files), ["package.json"]);
    }

    // ---- line endings and content ----

    #[test]
    fn crlf_is_normalized() {
        let crlf = CANONICAL.replace('\n', "\r\n");
        assert_eq!(parse_reply(&crlf), parse_reply(CANONICAL));
        let bold = README_INDENTED_FENCES.replace('\n', "\r\n");
        let files = parse_ok(&bold);
        assert!(files.iter().all(|f| !f.content.contains('\r')));
        assert_eq!(parse_ok(README_INDENTED_FENCES), files);
    }

    #[test]
    fn lone_cr_and_bom_are_normalized() {
        let reply = "\u{feff}### app.py\r```python\rx = 1\r```\r";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "x = 1\n")])
        );
    }

    #[test]
    fn content_is_kept_exactly_with_one_trailing_newline() {
        let reply = "### a.py\n```\n\n  indented\t \n\ttab\n\n\n```\n### b.txt\n```\n```\n### c.txt\n```\n\n\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![
                FileContent::new("a.py", "\n  indented\t \n\ttab\n"),
                FileContent::new("b.txt", ""),
                FileContent::new("c.txt", ""),
            ])
        );
    }

    #[test]
    fn tilde_fences_and_long_fences() {
        let reply = "### a.md\n~~~markdown\n```\nnot a close\n```\n~~~\n### b.py\n````python\n```\nstill b\n````\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![
                FileContent::new("a.md", "```\nnot a close\n```\n"),
                FileContent::new("b.py", "```\nstill b\n"),
            ])
        );
    }

    #[test]
    fn closing_fence_must_be_bare_and_long_enough() {
        let reply = "### a.py\n````\nx\n```\ny\n```python\nz\n`````\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("a.py", "x\n```\ny\n```python\nz\n")])
        );
    }

    #[test]
    fn inline_backticks_are_not_fences() {
        let reply = "### a.md\n```\n```inline``` code\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("a.md", "```inline``` code\n")])
        );
    }

    // ---- nested fences in markdown files ----

    #[test]
    fn readme_with_labelled_inner_fences() {
        let files = parse_ok(README_INFO_FENCES);
        assert_eq!(paths(&files), ["app.py", "README.md"]);
        assert_eq!(
            files[1].content,
            "# Notes app\n\nInstall the dependencies:\n\n```bash\npip install -r requirements.txt\n```\n\nThen start it with `flask run`.\n"
        );
    }

    #[test]
    fn readme_with_bare_inner_fences() {
        let files = parse_ok(README_BARE_FENCES);
        assert_eq!(
            files,
            vec![
                FileContent::new(
                    "README.md",
                    "Notes\n=====\n\nStart it with Docker:\n```\ndocker compose up\n```\nThen open the browser.\n"
                ),
                FileContent::new("app.py", "print(2)\n"),
            ]
        );
    }

    #[test]
    fn readme_with_indented_inner_fences() {
        let files = parse_ok(README_INDENTED_FENCES);
        assert_eq!(paths(&files), ["README.md"]);
        assert!(files[0].content.ends_with("   ```\n   flask run\n   ```\n"));
        assert!(!files[0].content.contains("concludes"));
    }

    #[test]
    fn readme_followed_by_usage_block() {
        let reply = "### README.md\n```markdown\n# Hi\n```\n\nTo run:\n\n```bash\nflask run\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("README.md", "# Hi\n")])
        );
    }

    #[test]
    fn readme_in_four_backticks() {
        let reply = "### README.md\n````markdown\n# Hi\n```\nrun\n```\n````\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("README.md", "# Hi\n```\nrun\n```\n")])
        );
    }

    #[test]
    fn cut_off_readme_is_unterminated() {
        let reply =
            "### README.md\n```markdown\n# Hi\n\n```bash\nflask run\n```\n\n## More\nThe rest was";
        assert_eq!(
            parse_reply(reply),
            Err(ParseError::Unterminated {
                path: "README.md".to_string()
            })
        );
    }

    // ---- blocks that are not files ----

    #[test]
    fn tree_and_files_list_are_not_files() {
        let reply = "**Project Structure**\n\n```\nnotes/\n  app.py\n  templates/\n```\n\n**Files**\n\n**Output**\n```\nhello\n```\n";
        assert_eq!(parse_reply(reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn usage_block_without_path_is_ignored() {
        let reply =
            format!("{CANONICAL}\nRun it with:\n\n```bash\npip install flask\nflask run\n```\n");
        assert_eq!(parse_reply(&reply), parse_reply(CANONICAL));
    }

    #[test]
    fn usage_block_after_path_list_item_is_ignored() {
        let reply =
            "Files:\n- app.py\n```bash\npython app.py\n```\n\n### app.py\n```python\nx = 1\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![FileContent::new("app.py", "x = 1\n")])
        );
    }

    #[test]
    fn plan_list_without_fences_gives_no_files() {
        let reply = "Plan:\n\n1. **app.py**: server\n2. **templates/index.html**: page\n3. **README.md**: docs\n\nShall I go on?\n";
        assert_eq!(parse_reply(reply), Err(ParseError::NoFiles));
    }

    #[test]
    fn diffs_and_edit_blocks_are_not_files() {
        let diff = "### app.py\n```diff\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x\n+y\n```\n";
        let bare_diff = "### app.py\n```\n--- /dev/null\n+++ app.py\n@@ -0,0 +1 @@\n+y\n```\n";
        let search =
            "app.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n";
        let empty_diff = "```diff\n```\n\n### File: app.py\nAdds it.\n\n```diff\n--- /dev/null\n+++ app.py\n```\n";
        for reply in [diff, bare_diff, search, empty_diff] {
            assert_eq!(parse_reply(reply), Err(ParseError::NoFiles), "{reply}");
        }
        let patch_file = "### fix.patch\n```diff\n--- a\n+++ b\n```\n";
        assert_eq!(paths(&parse_ok(patch_file)), ["fix.patch"]);
    }

    #[test]
    fn duplicate_path_last_wins_in_first_position() {
        let reply = "### app.py\n```\nold\n```\n### b.py\n```\nb\n```\nFixed version:\n### ./app.py\n```\nnew\n```\n";
        assert_eq!(
            parse_reply(reply),
            Ok(vec![
                FileContent::new("app.py", "new\n"),
                FileContent::new("b.py", "b\n")
            ])
        );
    }

    // ---- errors ----

    #[test]
    fn unterminated_file_is_an_error() {
        let reply = "### app.py\n```python\nx = 1\n```\n### b.py\n```python\ndef f(";
        assert_eq!(
            parse_reply(reply),
            Err(ParseError::Unterminated {
                path: "b.py".to_string()
            })
        );
        assert_eq!(
            parse_reply(V0_CUT_OFF),
            Err(ParseError::Unterminated {
                path: "app.py".to_string()
            })
        );
    }

    #[test]
    fn unterminated_block_without_path_is_not_an_error() {
        let reply = format!("{CANONICAL}\nTo run:\n```bash\nflask run\n");
        assert_eq!(parse_reply(&reply), parse_reply(CANONICAL));
    }

    #[test]
    fn no_files() {
        for reply in [
            "",
            "   \n\n",
            "I can't help with that.",
            "```\nloose code\n```\n",
            "HTML:\n```html\n<p></p>\n```\n\nCSS:\n```css\np{}\n```\n",
            "### Usage\n```\nrun it\n```\n",
        ] {
            assert_eq!(parse_reply(reply), Err(ParseError::NoFiles), "{reply:?}");
        }
    }

    #[test]
    fn unsafe_paths_in_replies_fail_loudly() {
        let long = format!("### {}.py\n```\nx\n```\n", "a/".repeat(130));
        let cases: Vec<(String, &str)> = vec![
            ("### /etc/passwd\n```\nx\n```\n".into(), "it is absolute"),
            ("File: /etc/passwd\n```\nx\n```\n".into(), "it is absolute"),
            (
                "### ../x.py\n```\nx\n```\n".into(),
                "it climbs out of its folder with `..`",
            ),
            (
                "**a/../../x.py**\n```\nx\n```\n".into(),
                "it climbs out of its folder with `..`",
            ),
            (
                "../../etc/passwd\n```\nx\n```\n".into(),
                "it climbs out of its folder with `..`",
            ),
            (
                "```text file=\"a\0b\"\nx\n```\n".into(),
                "it contains a control character",
            ),
            (
                "### C:\\x.py\n```\nx\n```\n".into(),
                "it starts with a drive letter",
            ),
            (
                "```python:C:\\x.py\nx\n```\n".into(),
                "it starts with a drive letter",
            ),
            (
                "### a\\b.py\n```\nx\n```\n".into(),
                "it uses backslashes (folders must be separated by `/`)",
            ),
            (
                "### .git/config\n```\nx\n```\n".into(),
                "it writes inside `.git`",
            ),
            (
                "**.git/hooks/pre-commit.sh**\n```\nx\n```\n".into(),
                "it writes inside `.git`",
            ),
            (long, "it is longer than 255 bytes"),
            (
                "### templates//index.html\n```\nx\n```\n".into(),
                "it has an empty folder name (`//`)",
            ),
        ];
        for (reply, reason) in cases {
            assert_eq!(unsafe_reason(parse_reply(&reply)), reason, "{reply:?}");
        }
    }

    #[test]
    fn unsafe_path_fails_even_after_good_files() {
        let reply = format!("{CANONICAL}\n### ../../app.py\n```\nx\n```\n");
        assert!(matches!(
            parse_reply(&reply),
            Err(ParseError::UnsafePath { .. })
        ));
    }

    #[test]
    fn too_many_files() {
        let reply = |n: usize| -> String {
            (0..n)
                .map(|k| format!("### f{k}.txt\n```\n{k}\n```\n"))
                .collect()
        };
        assert_eq!(parse_ok(&reply(MAX_FILES)).len(), MAX_FILES);
        assert_eq!(
            parse_reply(&reply(MAX_FILES + 1)),
            Err(ParseError::TooManyFiles {
                count: MAX_FILES + 1,
                limit: MAX_FILES
            })
        );
        // Duplicates do not count twice.
        let dup: String = (0..MAX_FILES + 5)
            .map(|k| format!("### f{}.txt\n```\n{k}\n```\n", k % 3))
            .collect();
        assert_eq!(parse_ok(&dup).len(), 3);
    }

    #[test]
    fn file_too_large() {
        let body = "a".repeat(MAX_FILE_BYTES - 1);
        let fits = format!("### big.txt\n```\n{body}\n```\n");
        assert_eq!(parse_ok(&fits)[0].content.len(), MAX_FILE_BYTES);
        let over = format!("### big.txt\n```\n{body}a\n```\n");
        assert_eq!(
            parse_reply(&over),
            Err(ParseError::FileTooLarge {
                path: "big.txt".to_string(),
                bytes: MAX_FILE_BYTES + 1,
                limit: MAX_FILE_BYTES
            })
        );
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let no_files = ParseError::NoFiles.to_string();
        assert!(no_files.contains("`### path/to/file`"), "{no_files}");
        assert!(no_files.contains("fenced code block"), "{no_files}");
        let unsafe_path = ParseError::from(SafePath::new("../x").unwrap_err()).to_string();
        assert!(
            unsafe_path.contains("\"../x\"") && unsafe_path.contains("`..`"),
            "{unsafe_path}"
        );
        let cut = ParseError::Unterminated {
            path: "app.py".into(),
        }
        .to_string();
        assert!(
            cut.contains("cut off") && cut.contains("token limit"),
            "{cut}"
        );
        let many = ParseError::TooManyFiles {
            count: 201,
            limit: 200,
        }
        .to_string();
        assert!(many.contains("201") && many.contains("200"), "{many}");
        let big = ParseError::FileTooLarge {
            path: "a".into(),
            bytes: 2,
            limit: 1,
        }
        .to_string();
        assert!(big.contains("split"), "{big}");
        // Control characters in a path are shown escaped, not printed raw.
        let nul = ParseError::from(SafePath::new("a\0b").unwrap_err()).to_string();
        assert!(nul.contains("\\0"), "{nul}");
    }

    // ---- robustness ----

    #[test]
    fn never_panics_on_any_prefix() {
        for fixture in fixtures() {
            let full = parse_reply(&fixture);
            for (end, _) in fixture.char_indices().chain([(fixture.len(), ' ')]) {
                let prefix = &fixture[..end];
                // A cut-off reply gives a subset of the full files, never a truncated one.
                // Markdown files are exempt: a cut right after an inner fence line cannot
                // be told from the file's real end.
                if let (Ok(part), Ok(all)) = (parse_reply(prefix), &full) {
                    for f in part.iter().filter(|f| !is_markdown_path(&f.path)) {
                        let whole = all.iter().find(|g| g.path == f.path);
                        assert_eq!(Some(f), whole, "prefix {end} of\n{fixture}");
                    }
                }
            }
        }
    }

    #[test]
    fn never_panics_on_mangled_replies() {
        for fixture in fixtures() {
            let lines: Vec<&str> = fixture.split('\n').collect();
            for skip in 0..lines.len() {
                let without: Vec<&str> = lines
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != skip)
                    .map(|(_, l)| *l)
                    .collect();
                let _ = parse_reply(&without.join("\n"));
                let doubled = format!(
                    "{}\n{}",
                    lines[..=skip].join("\n"),
                    lines[skip..].join("\n")
                );
                let _ = parse_reply(&doubled);
            }
            for end in (0..fixture.len()).filter(|e| fixture.is_char_boundary(*e)) {
                let _ = parse_reply(&fixture[end..]);
            }
        }
        let odd = [
            "```",
            "`",
            "~~~",
            "###",
            "#",
            "**",
            "****",
            "{",
            "{\"files\":",
            "\u{feff}",
            "\r",
            "\r\n\r\n",
            "### \u{0}",
            "``````````",
            "```a=",
            "```x file=\"",
            "```x file='a",
            "1.",
            "- ",
            "**a**:",
            "File:",
            "```json\n{\"files\": [1]}\n```",
            "### a.md\n```\n```\n```\n```",
            "### é.py\n```\nx\n```",
            "### \u{202e}.py\n```\n```",
        ];
        for text in odd {
            let _ = parse_reply(text);
            let _ = parse_reply(&text.repeat(50));
        }
        let _ = parse_reply(&"```\n".repeat(5000));
        let _ = parse_reply(&"### README.md\n```\n```\nx\n".repeat(500));
    }

    #[test]
    fn a_change_keeps_its_files_and_lists_explicit_deletions() {
        let reply = "Changed.\n\n### app.py\n```python\napp = 1\n```\n\n### DELETE: static/old.js\n\nDELETE `notes.txt`\n\n## DELETE: ./static/old.js\n";
        let change = parse_change(reply).unwrap();
        assert_eq!(paths(&change.files), ["app.py"]);
        assert_eq!(change.deleted, ["static/old.js", "notes.txt"]);
    }

    #[test]
    fn a_change_may_only_delete_and_a_deletion_must_be_a_safe_path() {
        let change = parse_change("### DELETE: notes.txt\n").unwrap();
        assert!(change.files.is_empty());
        assert_eq!(change.deleted, ["notes.txt"]);
        assert_eq!(
            unsafe_reason(parse_change("### DELETE: ../../etc/passwd\n")),
            unsafe_reason(parse_reply("### ../../etc/passwd\n```\nx\n```\n"))
        );
        assert_eq!(parse_change("nothing here"), Err(ParseError::NoFiles));
    }

    #[test]
    fn deletion_lines_inside_a_file_or_in_prose_delete_nothing() {
        let reply = "### README.md\n````markdown\n# Notes\n```\n### DELETE: app.py\n```\n### DELETE: app.py\n````\n\nDelete the old rows first. DELETED: x\n";
        let change = parse_change(reply).unwrap();
        assert!(change.deleted.is_empty(), "{:?}", change.deleted);
        assert_eq!(paths(&change.files), ["README.md"]);
        assert!(change.files[0].content.contains("### DELETE: app.py"));
        assert_eq!(deletion_path("DELETE the old file"), None);
        assert_eq!(deletion_path("**DELETE:** `a.py`"), Some("a.py"));
    }
}
