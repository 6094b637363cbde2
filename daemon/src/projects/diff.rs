//! Unified diffs between two versions of a project's file set.

use std::collections::BTreeMap;

use appforge_shared::protocol::FileContent;
use similar::TextDiff;

/// Lines of context around each change, as `diff -u` and git use.
const CONTEXT: usize = 3;

/// The unified diff from `old` to `new`, file by file in path order, in the
/// form `patch -p1` applies: `a/` and `b/` prefixes, `/dev/null` for a file
/// added or removed. Empty when the sets are equal.
pub fn unified(old: &[FileContent], new: &[FileContent]) -> String {
    let old: BTreeMap<&str, &str> = old.iter().map(|f| (&*f.path, &*f.content)).collect();
    let new: BTreeMap<&str, &str> = new.iter().map(|f| (&*f.path, &*f.content)).collect();
    let mut paths: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    let mut out = String::new();
    for path in paths {
        let (before, after) = (old.get(path), new.get(path));
        if before == after {
            continue;
        }
        let from = before.map_or_else(|| "/dev/null".to_string(), |_| format!("a/{path}"));
        let to = after.map_or_else(|| "/dev/null".to_string(), |_| format!("b/{path}"));
        let diff =
            TextDiff::from_lines(before.copied().unwrap_or(""), after.copied().unwrap_or(""));
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(CONTEXT)
                .header(&from, &to)
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_have_an_empty_diff() {
        let files = [FileContent::new("a.py", "x = 1\n")];
        assert_eq!(unified(&files, &files), "");
    }

    #[test]
    fn changes_additions_and_removals_are_shown_per_file() {
        let old = [
            FileContent::new("a.py", "x = 1\ny = 2\n"),
            FileContent::new("gone.txt", "bye\n"),
        ];
        let new = [
            FileContent::new("a.py", "x = 1\ny = 3\n"),
            FileContent::new("new.txt", "hi\n"),
        ];
        let diff = unified(&old, &new);
        assert!(
            diff.contains("--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n"),
            "{diff}"
        );
        assert!(diff.contains("--- a/gone.txt\n+++ /dev/null\n"), "{diff}");
        assert!(diff.contains("--- /dev/null\n+++ b/new.txt\n"), "{diff}");
        let order: Vec<usize> = ["a/a.py", "a/gone.txt", "b/new.txt"]
            .iter()
            .map(|p| diff.find(p).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{diff}");
    }

    #[test]
    fn a_missing_final_newline_is_marked() {
        let diff = unified(&[FileContent::new("a", "x")], &[FileContent::new("a", "y")]);
        assert!(diff.contains("No newline at end of file"), "{diff}");
    }
}
