//! Text for people: tables, highlighted code and coloured diffs. Colour is
//! only ever used when the caller knows stdout is a terminal.

use std::path::Path;
use std::sync::OnceLock;

use clap::builder::styling::{AnsiColor, Style};
use comfy_table::presets::NOTHING;
use comfy_table::Table;
use syntect::easy::HighlightLines;
use syntect::highlighting::{Theme, ThemeSet};
use syntect::parsing::SyntaxSet;
use syntect::util::as_24_bit_terminal_escaped;

/// A plain table: a header row, then one row per item, columns aligned.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    // comfy-table pads every line's end; people and diff tools prefer none.
    table
        .to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

fn theme() -> &'static Theme {
    static THEME: OnceLock<Theme> = OnceLock::new();
    THEME.get_or_init(|| {
        let mut themes = ThemeSet::load_defaults();
        themes
            .themes
            .remove("base16-ocean.dark")
            .unwrap_or_default()
    })
}

/// `content` with terminal colours for its language, chosen by the path's
/// extension; unknown kinds of file come back as they are.
pub fn highlight(path: &str, content: &str) -> String {
    let set = syntaxes();
    let extension = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let Some(syntax) = set.find_syntax_by_extension(extension) else {
        return content.to_string();
    };
    let mut lines = HighlightLines::new(syntax, theme());
    let mut out = String::with_capacity(content.len() * 2);
    for line in content.split_inclusive('\n') {
        match lines.highlight_line(line, set) {
            Ok(ranges) => out.push_str(&as_24_bit_terminal_escaped(&ranges, false)),
            Err(_) => out.push_str(line),
        }
    }
    out.push_str("\x1b[0m");
    out
}

/// A unified diff with removed lines red, added lines green, hunk headers
/// cyan and file headers bold.
pub fn colour_diff(diff: &str) -> String {
    let paint =
        |style: Style, line: &str| format!("{}{line}{}", style.render(), style.render_reset());
    let bold = Style::new().bold();
    diff.split_inclusive('\n')
        .map(|line| {
            let (text, end) = match line.strip_suffix('\n') {
                Some(text) => (text, "\n"),
                None => (line, ""),
            };
            let painted = if text.starts_with("--- ") || text.starts_with("+++ ") {
                paint(bold, text)
            } else if text.starts_with("@@") {
                paint(AnsiColor::Cyan.on_default(), text)
            } else if text.starts_with('-') {
                paint(AnsiColor::Red.on_default(), text)
            } else if text.starts_with('+') {
                paint(AnsiColor::Green.on_default(), text)
            } else {
                text.to_string()
            };
            painted + end
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_space() {
        let t = table(
            &["ID", "NAME"],
            vec![
                vec!["1".into(), "todo".into()],
                vec!["10".into(), "x".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines.iter().all(|l| l == &l.trim_end()), "{t:?}");
        let col = lines[0].find("NAME").unwrap();
        assert_eq!(lines[1].find("todo"), Some(col), "{t}");
    }

    #[test]
    fn python_is_highlighted_and_unknown_files_are_not() {
        let code = "def f():\n    return 1\n";
        let painted = highlight("app.py", code);
        assert!(painted.contains("\x1b["), "{painted:?}");
        let stripped: String = strip_escapes(&painted);
        assert_eq!(stripped, code);
        assert_eq!(highlight("notes.unknownext", "x\n"), "x\n");
    }

    #[test]
    fn diff_lines_keep_their_text_under_the_colour() {
        let diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n same\n";
        let painted = colour_diff(diff);
        assert!(painted.contains("\x1b[31m-old"), "{painted:?}");
        assert_eq!(strip_escapes(&painted), diff);
    }

    fn strip_escapes(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
