//! What a new file set changes in a version: nothing, only its
//! documentation, or code. Saving, checking and restarting depend on it.

use appforge_shared::protocol::FileContent;

use super::versions::changed_paths;

/// How a new file set differs from the version it starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The same files, byte for byte: there is nothing to save.
    Nothing,
    /// Only documentation files differ (the paths, sorted): the app runs
    /// the same, so it is neither run by the checks nor restarted.
    DocsOnly(Vec<String>),
    /// Code or data the app reads differs (the paths, sorted).
    Code(Vec<String>),
}

impl Change {
    /// The change from `old` to `new`.
    pub fn of(old: &[FileContent], new: &[FileContent]) -> Change {
        let changed = changed_paths(old, new);
        if changed.is_empty() {
            Change::Nothing
        } else if changed.iter().all(|path| is_documentation(path)) {
            Change::DocsOnly(changed)
        } else {
            Change::Code(changed)
        }
    }
}

/// Whether the app never reads `path`: prose for people. Only Markdown and
/// reStructuredText count; a `.txt` may be `requirements.txt`.
pub fn is_documentation(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".md", ".markdown", ".rst"]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<FileContent> {
        list.iter()
            .map(|(path, content)| FileContent {
                path: path.to_string(),
                content: content.to_string(),
            })
            .collect()
    }

    #[test]
    fn tells_nothing_docs_and_code_apart() {
        let old = files(&[("README.md", "a"), ("app.py", "x = 1\n")]);
        assert_eq!(Change::of(&old, &old), Change::Nothing);
        let docs = files(&[
            ("README.md", "b"),
            ("app.py", "x = 1\n"),
            ("docs/use.MD", ""),
        ]);
        assert_eq!(
            Change::of(&old, &docs),
            Change::DocsOnly(vec!["README.md".into(), "docs/use.MD".into()])
        );
        let code = files(&[("README.md", "b"), ("app.py", "x = 2\n")]);
        assert_eq!(
            Change::of(&old, &code),
            Change::Code(vec!["README.md".into(), "app.py".into()])
        );
        let requirements = files(&[
            ("README.md", "a"),
            ("app.py", "x = 1\n"),
            ("requirements.txt", ""),
        ]);
        assert!(matches!(Change::of(&old, &requirements), Change::Code(_)));
        let removed = files(&[("app.py", "x = 1\n")]);
        assert!(matches!(Change::of(&old, &removed), Change::DocsOnly(_)));
    }
}
