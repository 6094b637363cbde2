//! What a unified diff changed, file by file, as `git diff --stat` shows it.

use unicode_width::UnicodeWidthStr;

/// Lines added and removed in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// The file's path (the new one; the old one for a removed file).
    pub path: String,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
}

/// The files of a unified diff (the daemon's `a/` and `b/` form, with
/// `/dev/null` for a file added or removed) and their counts. Hunk lines
/// are counted by the hunk headers' lengths, so a removed line whose text
/// starts with `-- ` is not taken for a file header.
pub fn parse(unified: &str) -> Vec<FileStat> {
    let mut files: Vec<FileStat> = Vec::new();
    let mut old_path = String::new();
    // Lines still to come in the current hunk: old side, new side.
    let mut left = (0usize, 0usize);
    for line in unified.lines() {
        if left != (0, 0) {
            let Some(file) = files.last_mut() else { break };
            match line.as_bytes().first() {
                Some(b'+') => {
                    file.added += 1;
                    left.1 = left.1.saturating_sub(1);
                }
                Some(b'-') => {
                    file.removed += 1;
                    left.0 = left.0.saturating_sub(1);
                }
                // "\ No newline at end of file" belongs to neither side.
                Some(b'\\') => {}
                _ => left = (left.0.saturating_sub(1), left.1.saturating_sub(1)),
            }
        } else if let Some(path) = line.strip_prefix("--- ") {
            old_path = strip_side(path, "a/");
        } else if let Some(path) = line.strip_prefix("+++ ") {
            let new_path = strip_side(path, "b/");
            files.push(FileStat {
                path: match new_path == "/dev/null" {
                    true => std::mem::take(&mut old_path),
                    false => new_path,
                },
                added: 0,
                removed: 0,
            });
        } else if line.starts_with("@@ ") {
            left = hunk_lengths(line).unwrap_or((0, 0));
        }
    }
    files
}

/// `a/app.py` as `app.py`; a header's tab-separated date, if any, dropped.
fn strip_side(path: &str, prefix: &str) -> String {
    let path = path.split('\t').next().unwrap_or(path);
    path.strip_prefix(prefix).unwrap_or(path).to_string()
}

/// The old and new line counts of `@@ -1,3 +1,4 @@` (a missing count is 1).
fn hunk_lengths(header: &str) -> Option<(usize, usize)> {
    let mut parts = header.split(' ').skip(1);
    let count = |range: &str| -> Option<usize> {
        match range.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => Some(1),
        }
    };
    let old = count(parts.next()?.strip_prefix('-')?)?;
    let new = count(parts.next()?.strip_prefix('+')?)?;
    Some((old, new))
}

/// The widest bar of `+` and `-`, as git draws on an 80-column terminal.
const BAR: usize = 40;

/// The stat as `git diff --stat` prints it: a line per file with its
/// changed lines and a bar, then the totals. `paint` colours the bar's
/// `+` (true) and `-` (false) runs.
pub fn render(files: &[FileStat], paint: impl Fn(bool, &str) -> String) -> String {
    let name_width = files.iter().map(|f| f.path.width()).max().unwrap_or(0);
    let most = files.iter().map(|f| f.added + f.removed).max().unwrap_or(0);
    let count_width = most.to_string().len();
    let mut out = String::new();
    for f in files {
        let changed = f.added + f.removed;
        // Scaled down when a file changed more lines than the bar holds,
        // keeping at least one mark for a side that changed.
        let (plus, minus) = match changed > BAR {
            false => (f.added, f.removed),
            true => {
                let mut plus = (f.added * BAR + changed / 2) / changed;
                if f.removed > 0 {
                    plus = plus.min(BAR - 1);
                }
                if f.added > 0 {
                    plus = plus.max(1);
                }
                (plus, BAR - plus)
            }
        };
        let pad = name_width - f.path.width();
        out.push_str(&format!(
            " {}{} | {changed:>count_width$} {}{}\n",
            f.path,
            " ".repeat(pad),
            paint(true, &"+".repeat(plus)),
            paint(false, &"-".repeat(minus)),
        ));
    }
    let added: usize = files.iter().map(|f| f.added).sum();
    let removed: usize = files.iter().map(|f| f.removed).sum();
    let plural = |n: usize, one: &str, many: &str| match n {
        1 => format!("{n} {one}"),
        _ => format!("{n} {many}"),
    };
    out.push_str(&format!(
        " {} changed, {}(+), {}(-)",
        plural(files.len(), "file", "files"),
        plural(added, "insertion", "insertions"),
        plural(removed, "deletion", "deletions"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "\
--- a/app.py
+++ b/app.py
@@ -1,3 +1,3 @@
 import x
--- a comment's line that looks like a header
+++ and one added
 same
@@ -10 +10,2 @@
-old
+new
+more
--- a/gone.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-bye
-now
\\ No newline at end of file
--- /dev/null
+++ b/templates/new.html
@@ -0,0 +1 @@
+<p>hi</p>
";

    #[test]
    fn files_and_their_lines_are_counted_by_the_hunks() {
        let stat = parse(DIFF);
        let counts: Vec<(&str, usize, usize)> = stat
            .iter()
            .map(|f| (f.path.as_str(), f.added, f.removed))
            .collect();
        assert_eq!(
            counts,
            [
                ("app.py", 3, 2),
                ("gone.txt", 0, 2),
                ("templates/new.html", 1, 0)
            ]
        );
    }

    #[test]
    fn the_stat_reads_as_gits() {
        let text = render(&parse(DIFF), |_, s| s.to_string());
        assert_eq!(
            text,
            " app.py             | 5 +++--\n \
             gone.txt           | 2 --\n \
             templates/new.html | 1 +\n \
             3 files changed, 4 insertions(+), 4 deletions(-)"
        );
    }

    #[test]
    fn big_changes_are_scaled_to_the_bar() {
        let files = [FileStat {
            path: "a".into(),
            added: 300,
            removed: 1,
        }];
        let text = render(&files, |_, s| s.to_string());
        let first = text.lines().next().unwrap();
        assert_eq!(first.matches('+').count() + first.matches('-').count(), BAR);
        assert!(first.contains("301 ") && first.ends_with('-'), "{text}");
        assert!(text.ends_with("1 file changed, 300 insertions(+), 1 deletion(-)"));
    }

    #[test]
    fn an_empty_diff_has_no_files() {
        assert_eq!(parse(""), []);
    }
}
