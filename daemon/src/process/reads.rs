//! The settings an app's code reads from its environment, found in its
//! stored Python files alone (never its folder, which the app may write):
//! `os.environ["X"]`, `os.environ.get("X")` and `os.getenv("X")`, the last
//! two only without a default (an argument, or an `or` after the call), as
//! those are the reads that fail or give `None` when `X` is not set. Test
//! files are left out: the app's process never runs them. A name the code
//! itself sets (`os.environ["X"] = …`, `setdefault`) or tests for
//! (`"X" in os.environ`) is not needed from outside. Names built at run
//! time, and calls split over lines, are not seen.

use std::collections::BTreeSet;
use std::path::Path;

use appforge_shared::protocol::FileContent;

use super::launch::{self, Variables};

/// The names the app needs set that are neither its settings nor set by
/// the launch, sorted.
pub fn missing(files: &[FileContent], settings: &Variables) -> Vec<String> {
    let launched = launch::environment(Path::new("/"), 0, Path::new("/"), &Variables::default());
    needed(files)
        .into_iter()
        .filter(|name| !launched.iter().any(|(set, _)| set == name))
        .filter(|name| !settings.0.iter().any(|(set, _)| set == name))
        .collect()
}

/// The names the Python files read without a default, less those they set
/// or test for themselves.
pub fn needed(files: &[FileContent]) -> BTreeSet<String> {
    let mut reads = Reads::default();
    for file in files
        .iter()
        .filter(|f| f.path.ends_with(".py") && !is_test(&f.path))
    {
        for line in file.content.lines() {
            scan(code_of(line), &mut reads);
        }
    }
    reads.needed.difference(&reads.provided).cloned().collect()
}

/// Whether pytest would collect the file (or it configures pytest).
fn is_test(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("test_")
        || name.ends_with("_test.py")
        || name == "conftest.py"
        || path.starts_with("tests/")
}

#[derive(Default)]
struct Reads {
    /// Read without a default.
    needed: BTreeSet<String>,
    /// Set or tested for by the code.
    provided: BTreeSet<String>,
}

/// The line without its comment (a `#` outside quotes).
fn code_of(line: &str) -> &str {
    let mut quote = None;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') => return &line[..at],
            _ => {}
        }
    }
    line
}

fn scan(code: &str, reads: &mut Reads) {
    for (at, _) in code.match_indices("environ") {
        if !starts_word(code, at) {
            continue;
        }
        let before = &code[..at];
        let mut rest = Cursor(&code[at + "environ".len()..]);
        if let Some(name) = tested_for(before) {
            reads.provided.insert(name);
        }
        if rest.eat("[") {
            let Some(name) = rest.literal() else { continue };
            if !rest.eat("]") {
                continue;
            }
            let assigned = rest.0.trim_start().starts_with('=') && !rest.eat("==");
            match assigned {
                true => reads.provided.insert(name),
                false => reads.needed.insert(name),
            };
        } else if rest.eat(".") {
            if rest.eat("get") {
                call(&mut rest, reads);
            } else if rest.eat("setdefault") && rest.eat("(") {
                if let Some(name) = rest.literal() {
                    reads.provided.insert(name);
                }
            }
        }
    }
    for (at, _) in code.match_indices("getenv") {
        if starts_word(code, at) {
            call(&mut Cursor(&code[at + "getenv".len()..]), reads);
        }
    }
}

/// `("X")` after `get`/`getenv`: needed unless a default follows the name
/// or the call (`get("X") or "data.db"`).
fn call(rest: &mut Cursor<'_>, reads: &mut Reads) {
    if !rest.eat("(") {
        return;
    }
    let Some(name) = rest.literal() else { return };
    if rest.eat(")") && !rest.eat_word("or") {
        reads.needed.insert(name);
    }
}

/// The name of `"X" in os.environ` (or `not in`), from the text before `environ`.
fn tested_for(before: &str) -> Option<String> {
    let before = before.strip_suffix("os.").unwrap_or(before).trim_end();
    let before = before.strip_suffix("in")?;
    if !before.ends_with(char::is_whitespace) {
        return None;
    }
    let before = before.trim_end();
    let before = before.strip_suffix("not").map_or(before, str::trim_end);
    let quote = before.chars().last().filter(|c| *c == '"' || *c == '\'')?;
    let inner = &before[..before.len() - 1];
    let start = inner.rfind(quote)?;
    let name = &inner[start + 1..];
    is_name(name).then(|| name.to_string())
}

/// Whether the word at `at` starts there (`os.environ`, `environ`, not `my_environ`).
fn starts_word(code: &str, at: usize) -> bool {
    !code[..at]
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a shell-style variable name, as settings are.
fn is_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What is left of a line, read token by token, spaces skipped.
struct Cursor<'a>(&'a str);

impl Cursor<'_> {
    /// Takes `token` if it comes next.
    fn eat(&mut self, token: &str) -> bool {
        match self.0.trim_start().strip_prefix(token) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// Takes the keyword `word` if it comes next.
    fn eat_word(&mut self, word: &str) -> bool {
        let text = self.0.trim_start();
        match text.strip_prefix(word) {
            Some(rest) if !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    /// Takes a plain string literal (`"X"` or `'X'`) holding a name.
    fn literal(&mut self) -> Option<String> {
        let text = self.0.trim_start();
        let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let end = text[1..].find(quote)? + 1;
        let name = &text[1..end];
        if !is_name(name) {
            return None;
        }
        self.0 = &text[end + 1..];
        Some(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(code: &str) -> Vec<FileContent> {
        vec![
            FileContent::new("app.py", code),
            // Not Python, or not run by the app: never read.
            FileContent::new("README.md", "os.environ[\"IN_README\"]\n"),
            FileContent::new("test_app.py", "os.environ[\"IN_TEST\"]\n"),
            FileContent::new("tests/conftest.py", "os.environ[\"IN_CONFTEST\"]\n"),
        ]
    }

    fn needed_in(code: &str) -> Vec<String> {
        needed(&files(code)).into_iter().collect()
    }

    #[test]
    fn reads_without_a_default_are_needed() {
        let code = "import os\nfrom os import environ, getenv\n\
            TOKEN = os.environ[\"API_TOKEN\"]\n\
            URL = os.environ.get('SERVICE_URL')\n\
            KEY = os.getenv( \"KEY\" )\n\
            BARE = environ['BARE']\n\
            OTHER = getenv(\"OTHER\")\n";
        assert_eq!(
            needed_in(code),
            ["API_TOKEN", "BARE", "KEY", "OTHER", "SERVICE_URL"]
        );
    }

    #[test]
    fn reads_with_a_default_set_or_tested_names_and_comments_are_not() {
        let code = "import os\n\
            A = os.environ.get(\"WITH_DEFAULT\", \"x\")\n\
            B = os.getenv('ALSO', None)\n\
            os.environ[\"SET_HERE\"] = \"1\"\n\
            C = os.environ[\"SET_HERE\"]\n\
            os.environ.setdefault(\"DEFAULTED\", \"2\")\n\
            D = os.environ[\"DEFAULTED\"]\n\
            if \"GUARDED\" in os.environ:\n    E = os.environ[\"GUARDED\"]\n\
            # F = os.environ[\"COMMENTED\"]\n\
            G = 1  # os.getenv(\"TRAILING\")\n\
            H = os.environ[name]\n\
            my_environ = {}\nI = my_environ[\"NOT_OS\"]\n\
            J = os.environ[\"SAME\"] == \"1\"\n\
            K = db or os.environ.get(\"APP_DATABASE\") or \"data.db\"\n\
            L = os.getenv(\"ORDER\") or_else\n";
        assert_eq!(needed_in(code), ["ORDER", "SAME"]);
    }

    #[test]
    fn missing_leaves_out_settings_and_what_the_launch_sets() {
        let code = "import os\nP = os.environ[\"PORT\"]\nH = os.getenv(\"HOST\")\n\
            T = os.environ[\"API_TOKEN\"]\nU = os.environ[\"USER_NAME\"]\n";
        let settings = Variables(vec![("USER_NAME".into(), "ann".into())]);
        assert_eq!(missing(&files(code), &settings), ["API_TOKEN"]);
        assert!(missing(
            &files(code),
            &Variables(vec![
                ("USER_NAME".into(), "ann".into()),
                ("API_TOKEN".into(), "t".into()),
            ])
        )
        .is_empty());
    }
}
