//! What looks like a file's path, a kind of code, or a block that is not a
//! file (a diff, an edit, a tree of folders).

use super::*;

pub(super) fn has_separator(s: &str) -> bool {
    s.contains(['/', '\\']) && !s.ends_with(['/', '\\'])
}

pub(super) fn has_dotdot(s: &str) -> bool {
    s.split(['/', '\\']).any(|c| c == "..")
}

pub(super) fn file_name(s: &str) -> &str {
    s.rsplit(['/', '\\']).next().unwrap_or(s)
}

/// True for text shaped like a file path: one word whose last part has an extension or is a
/// known file name. Words like "Structure", "Usage" or "e.g." are not.
pub(super) fn looks_like_file(s: &str) -> bool {
    if s.is_empty() || s.len() > 1024 || s.chars().any(char::is_whitespace) || s.contains("://") {
        return false;
    }
    if NOT_FILES.iter().any(|n| n.eq_ignore_ascii_case(s)) {
        return false;
    }
    let name = file_name(s);
    if KNOWN_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return true;
    }
    if let Some(rest) = name.strip_prefix('.') {
        // Dotfiles such as .gitignore or .env.example.
        return rest.starts_with(|c: char| c.is_ascii_alphanumeric())
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && (1..=10).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
                && ext.chars().any(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

/// True for text that names a file, including unsafe ones that must reach check_path.
pub(super) fn path_ish(s: &str) -> bool {
    looks_like_file(s)
        || (!s.chars().any(char::is_whitespace) && !s.contains("://") && has_separator(s))
}

/// True when the file's extension is one of `exts`.
pub(super) fn has_ext_in(path: &str, exts: &[&str]) -> bool {
    file_name(path)
        .rsplit_once('.')
        .is_some_and(|(_, ext)| exts.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

/// True for names common enough to be files even in running text.
pub(super) fn is_familiar_name(path: &str) -> bool {
    let name = file_name(path);
    has_ext_in(name, KNOWN_EXTS)
        || name.starts_with('.')
        || KNOWN_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

pub(super) fn is_markdown_path(path: &str) -> bool {
    has_ext_in(path, &["md", "markdown", "mdx"])
}

pub(super) fn is_markdown_lang(lang: &str) -> bool {
    ["markdown", "md", "mdx"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(lang))
}

pub(super) fn is_shell_lang(lang: &str) -> bool {
    [
        "bash",
        "sh",
        "shell",
        "zsh",
        "fish",
        "console",
        "terminal",
        "cmd",
        "powershell",
        "ps",
        "bat",
        "batch",
    ]
    .iter()
    .any(|l| l.eq_ignore_ascii_case(lang))
}

pub(super) fn is_diff_lang(lang: &str) -> bool {
    ["diff", "patch", "udiff"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(lang))
}

pub(super) fn is_diff_path(path: &str) -> bool {
    has_ext_in(path, &["diff", "patch"])
}

/// Diffs and SEARCH/REPLACE edits describe changes, not whole files; saving them would
/// corrupt the file.
pub(super) fn is_edit_block(content: &str, path: &str) -> bool {
    if is_diff_path(path) {
        return false;
    }
    if content.lines().any(|l| l.trim_end() == "<<<<<<< SEARCH") {
        return true;
    }
    let mut significant = content.lines().filter(|l| !is_blank(l));
    let first = significant.next().unwrap_or("");
    let second = significant.next().unwrap_or("");
    first.starts_with("--- ") && second.starts_with("+++ ")
}

/// Directory trees drawn with box characters describe a layout, not a file.
pub(super) fn looks_like_tree(content: &str) -> bool {
    ["├──", "└──", "|-- ", "`-- "]
        .iter()
        .any(|m| content.contains(m))
}
