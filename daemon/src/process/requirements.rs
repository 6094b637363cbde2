//! `requirements.txt` as appforge accepts it: requirement lines only.
//!
//! pip reads options from a requirements file: `-r /etc/shadow` prints the
//! file's first line into the log, `--index-url` installs from anywhere,
//! `-e ../other_project` builds someone else's code. A model wrote this file,
//! so everything but a package name with extras, versions and markers is
//! refused, naming the line. The installer's configuration comes from the
//! daemon's settings alone.

/// Why a requirements file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "requirements.txt line {line}: `{text}` {why}; list packages only, one a line \
     (for example `flask>=3.0` or `requests[socks]==2.32.3`)"
)]
pub struct RequirementError {
    /// The line's number, from 1.
    pub line: usize,
    /// The line as written (shortened when long).
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The requirements an app is installed with: its `requirements.txt`, else
/// its `pyproject.toml`'s `[project].dependencies`, else Flask alone.
pub fn of(
    files: &[appforge_shared::protocol::FileContent],
) -> Result<String, super::shape::ShapeError> {
    if let Some(f) = files.iter().find(|f| f.path == "requirements.txt") {
        return Ok(f.content.clone());
    }
    Ok(super::shape::dependencies(files)?.unwrap_or_else(|| "flask\n".to_string()))
}

/// The name a requirement line installs, normalised as PEP 503 does
/// (`Flask_SQLAlchemy` and `flask-sqlalchemy` are one), if it names one.
pub fn name(line: &str) -> Option<String> {
    let line = line.split('#').next()?.trim();
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then(|| normalise(&name))
}

/// A distribution's name as PEP 503 compares them.
pub fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Checks every line of a requirements file.
pub fn check(requirements: &str) -> Result<(), RequirementError> {
    for (index, raw) in requirements.lines().enumerate() {
        if let Some(why) = problem(raw) {
            let mut text: String = raw.trim().chars().take(80).collect();
            if raw.trim().chars().count() > 80 {
                text.push('…');
            }
            return Err(RequirementError {
                line: index + 1,
                text,
                why,
            });
        }
    }
    Ok(())
}

/// What is wrong with one line, if anything.
fn problem(raw: &str) -> Option<&'static str> {
    // A comment starts at `#` preceded by whitespace or at the line's start.
    let line = match raw.find(" #").or_else(|| raw.find("\t#")) {
        Some(at) => &raw[..at],
        None if raw.trim_start().starts_with('#') => "",
        None => raw,
    };
    // pip splits lines on more than \n (\r, \x0b, \x0c, \x1c-\x1e, \u{85},
    // \u{2028}, \u{2029}): any of those could start an option line.
    if raw
        .chars()
        .any(|c| (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Some("holds a control character");
    }
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    // An option may also follow a requirement on its line.
    if line.split_whitespace().any(|token| token.starts_with('-')) {
        return Some(
            "is or holds an installer option (hashes and per-requirement options are not supported)",
        );
    }
    if line.ends_with('\\') {
        return Some("continues on the next line");
    }
    if line.contains("://") || line.contains('@') {
        return Some("names a URL");
    }
    if line.starts_with('.') || line.starts_with('/') || line.starts_with('~') {
        return Some("names a local path");
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("is not a package name");
    }
    // Extras, version specifiers and environment markers may follow.
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || c.is_ascii_whitespace()
            || matches!(
                c,
                '[' | ']'
                    | ','
                    | '.'
                    | '-'
                    | '_'
                    | '*'
                    | '+'
                    | '='
                    | '<'
                    | '>'
                    | '!'
                    | '~'
                    | ';'
                    | '"'
                    | '\''
                    | '('
                    | ')'
            )
    };
    if !rest.chars().all(allowed) {
        return Some("is not a requirement");
    }
    if rest.contains('/') {
        return Some("names a local path");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines_pass() {
        let ok = "# the app's packages\nflask>=3.0\nrequests[socks]==2.32.3  # pinned\n\n\
                  PyYAML ~= 6.0\nflask_sqlalchemy\npywin32; sys_platform == \"win32\"\n\
                  torch==2.3.0+cpu\nnumpy==1.*\nsix===1.16.0\r\n";
        assert_eq!(check(ok), Ok(()));
    }

    const OPTION: &str =
        "is or holds an installer option (hashes and per-requirement options are not supported)";

    #[test]
    fn options_paths_and_urls_are_refused_with_their_line() {
        for (text, why) in [
            ("-r /etc/passwd", OPTION),
            ("--requirement /etc/shadow", OPTION),
            ("-c constraints.txt", OPTION),
            ("-e ../project_2", OPTION),
            ("--index-url https://evil.example/simple", OPTION),
            ("-f ./wheels", OPTION),
            ("--extra-index-url=http://x", OPTION),
            ("./local_pkg", "names a local path"),
            ("/etc/passwd", "names a local path"),
            ("../other", "names a local path"),
            ("pkg @ https://evil.example/pkg.whl", "names a URL"),
            ("git+https://example.com/x.git", "names a URL"),
            ("file:///etc/passwd", "names a URL"),
            ("flask \\", "continues on the next line"),
            ("flask\r-r /etc/passwd", "holds a control character"),
            ("flask\x0c--index-url=http://x", "holds a control character"),
            ("flask --config-settings=k=v", OPTION),
            ("flask==3.0 --hash=sha256:abc", OPTION),
        ] {
            let err = check(&format!("flask\n{text}\n")).expect_err(text);
            assert_eq!(err.line, 2, "{text}");
            assert_eq!(err.why, why, "{text}");
            assert!(err.to_string().contains("requirements.txt line 2"), "{err}");
        }
    }
}
