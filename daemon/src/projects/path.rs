//! Paths inside a project's folder. Every path that names a file of an app
//! (from a model's reply, an edit, the database, an export) is checked here,
//! one way, before it touches a folder or an archive.

use std::fmt;

/// Longest path accepted, in bytes; well under every filesystem's limit.
const MAX_PATH_BYTES: usize = 255;
/// Longest single folder or file name accepted, in bytes.
const MAX_COMPONENT_BYTES: usize = 100;

/// A relative path that stays inside its folder: `/`-separated names of
/// ASCII letters, digits and `._-+@`, no `..`, nothing in `.git`, at most
/// 255 bytes. Only [`SafePath::new`] makes one, so holding one means the
/// check was made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SafePath(String);

/// Why a path is not a [`SafePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not a safe path inside the app's folder: {reason}")]
pub struct UnsafePath {
    /// The path as it was given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl SafePath {
    /// Checks `path` and returns it in its normal form ("./a/b.py" → "a/b.py").
    pub fn new(path: &str) -> Result<SafePath, UnsafePath> {
        let refuse = |reason: &'static str| {
            Err(UnsafePath {
                path: path.to_string(),
                reason,
            })
        };
        if path.is_empty() {
            return refuse("it is empty");
        }
        if path.chars().any(char::is_control) {
            return refuse("it contains a control character");
        }
        if path.starts_with(['/', '\\']) {
            return refuse("it is absolute");
        }
        let bytes = path.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return refuse("it starts with a drive letter");
        }
        if path.contains('\\') {
            return refuse("it uses backslashes (folders must be separated by `/`)");
        }
        if path.len() > MAX_PATH_BYTES {
            return refuse("it is longer than 255 bytes");
        }
        let components: Vec<&str> = path.split('/').collect();
        let mut kept = Vec::with_capacity(components.len());
        for (k, component) in components.iter().enumerate() {
            match *component {
                "" if k + 1 == components.len() => {
                    return refuse("it ends with `/`, so it names a folder, not a file")
                }
                "" => return refuse("it has an empty folder name (`//`)"),
                // "./app.py" is how some models write plain relative paths.
                "." => continue,
                ".." => return refuse("it climbs out of its folder with `..`"),
                _ => {}
            }
            if component.eq_ignore_ascii_case(".git") {
                return refuse("it writes inside `.git`");
            }
            if component.len() > MAX_COMPONENT_BYTES {
                return refuse("one of its folder or file names is longer than 100 bytes");
            }
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._-+@".contains(c);
            if !component.chars().all(allowed) {
                return refuse("it uses characters other than letters, digits and `._-+@/`");
            }
            kept.push(*component);
        }
        if kept.is_empty() {
            return refuse("it names no file");
        }
        Ok(SafePath(kept.join("/")))
    }

    /// The path's folder and file names, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_path(path: &str) -> Result<String, UnsafePath> {
        SafePath::new(path).map(|p| p.to_string())
    }

    fn unsafe_reason(result: Result<String, UnsafePath>) -> &'static str {
        match result {
            Err(e) => e.reason,
            Ok(p) => panic!("expected a refusal, got {p:?}"),
        }
    }

    #[test]
    fn check_path_accepts_and_normalizes() {
        let cases = [
            ("app.py", "app.py"),
            ("./app.py", "app.py"),
            ("././app.py", "app.py"),
            ("templates/index.html", "templates/index.html"),
            ("a/./b.py", "a/b.py"),
            ("static/img@2x.png", "static/img@2x.png"),
            ("lib/c++/x.h", "lib/c++/x.h"),
            (".env.example", ".env.example"),
            (".gitignore", ".gitignore"),
            ("Dockerfile", "Dockerfile"),
            ("a-b_c.d.txt", "a-b_c.d.txt"),
        ];
        for (input, want) in cases {
            assert_eq!(check_path(input), Ok(want.to_string()), "{input}");
        }
    }

    #[test]
    fn check_path_rejects_empty_and_fileless() {
        for p in ["", ".", "./", "./."] {
            assert!(check_path(p).is_err(), "{p:?}");
        }
        assert_eq!(unsafe_reason(check_path("")), "it is empty");
        assert_eq!(unsafe_reason(check_path(".")), "it names no file");
    }

    #[test]
    fn check_path_rejects_absolute() {
        assert_eq!(unsafe_reason(check_path("/etc/passwd")), "it is absolute");
        assert_eq!(
            unsafe_reason(check_path("\\\\server\\share")),
            "it is absolute"
        );
        assert_eq!(unsafe_reason(check_path("\\x")), "it is absolute");
        for p in ["C:\\x", "C:/x", "c:x"] {
            assert_eq!(
                unsafe_reason(check_path(p)),
                "it starts with a drive letter",
                "{p}"
            );
        }
    }

    #[test]
    fn check_path_rejects_parent_components() {
        for p in ["../x", "a/../../x", "a/..", "..", "a/../b.py"] {
            assert_eq!(
                unsafe_reason(check_path(p)),
                "it climbs out of its folder with `..`",
                "{p}"
            );
        }
    }

    #[test]
    fn check_path_rejects_control_characters() {
        for p in ["a\0b", "a\nb", "a\tb.py", "x\u{7f}.py", "a\u{1b}[0m.py"] {
            assert_eq!(
                unsafe_reason(check_path(p)),
                "it contains a control character",
                "{p:?}"
            );
        }
    }

    #[test]
    fn check_path_rejects_backslashes() {
        assert_eq!(
            unsafe_reason(check_path("a\\b")),
            "it uses backslashes (folders must be separated by `/`)"
        );
    }

    #[test]
    fn check_path_rejects_empty_components_and_folders() {
        assert_eq!(
            unsafe_reason(check_path("a//b")),
            "it has an empty folder name (`//`)"
        );
        assert_eq!(
            unsafe_reason(check_path("templates/")),
            "it ends with `/`, so it names a folder, not a file"
        );
    }

    #[test]
    fn check_path_rejects_git_folder() {
        for p in [
            ".git/config",
            "a/.git/hooks/pre-commit",
            ".GIT/config",
            ".git",
        ] {
            assert_eq!(
                unsafe_reason(check_path(p)),
                "it writes inside `.git`",
                "{p}"
            );
        }
        // Only the folder itself is special.
        assert!(check_path(".gitignore").is_ok());
        assert!(check_path("docs/.github.md").is_ok());
    }

    #[test]
    fn check_path_limits_lengths() {
        let component = "a".repeat(100);
        assert!(check_path(&component).is_ok());
        assert_eq!(
            unsafe_reason(check_path(&"a".repeat(101))),
            "one of its folder or file names is longer than 100 bytes"
        );
        let longest = format!("{component}/{component}/{}", "b".repeat(53));
        assert_eq!(longest.len(), 255);
        assert!(check_path(&longest).is_ok());
        assert_eq!(
            unsafe_reason(check_path(&format!("{longest}c"))),
            "it is longer than 255 bytes"
        );
        assert_eq!(
            unsafe_reason(check_path(&"ab/".repeat(200))),
            "it is longer than 255 bytes"
        );
    }

    #[test]
    fn check_path_rejects_odd_characters() {
        for p in [
            "my app.py",
            "ab:c.py",
            "~/x",
            "caf\u{e9}.py",
            "a*b",
            "a?b",
            "$HOME/x",
            "a|b",
        ] {
            assert_eq!(
                unsafe_reason(check_path(p)),
                "it uses characters other than letters, digits and `._-+@/`",
                "{p}"
            );
        }
    }

    #[test]
    fn check_path_error_keeps_raw_path() {
        assert_eq!(
            check_path("../x"),
            Err(UnsafePath {
                path: "../x".to_string(),
                reason: "it climbs out of its folder with `..`",
            })
        );
    }
}
