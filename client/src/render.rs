//! Text for people: tables, highlighted code and coloured diffs. Colour is
//! only ever used when the caller has decided stdout shows it
//! ([`crate::output::colour`]). What files
//! hold is sanitised ([`crate::escape`]) before it is painted, so colour
//! never carries a file's control sequences to the terminal.

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use clap::builder::styling::{AnsiColor, Style};
use syntect::easy::HighlightLines;
use syntect::highlighting::{
    Color, FontStyle, ScopeSelectors, Style as HighlightStyle, StyleModifier, Theme, ThemeItem,
};
use syntect::parsing::SyntaxSet;
use unicode_width::UnicodeWidthStr;

use crate::escape::{sanitize, Sgr};

/// `n` and the noun, pluralised: "1 version", "3 versions".
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    match n.into() {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(super::count(1, "version", "versions"), "1 version");
        assert_eq!(super::count(0u32, "version", "versions"), "0 versions");
        assert_eq!(
            super::count(3, "repair round", "repair rounds"),
            "3 repair rounds"
        );
    }
}

/// A plain table: a header row, then one row per item, columns aligned.
///
/// Each column is as wide as its widest line (a cell's text may hold
/// several lines, stacked in its row), with a space either side, and no
/// line ends in spaces. `ps` draws one row per app, so this is kept to a
/// pass to measure and a pass to write.
pub fn table<S: AsRef<str>>(header: &[&str], rows: Vec<Vec<S>>) -> String {
    let header: Vec<&str> = header.to_vec();
    let body: Vec<Vec<&str>> = rows
        .iter()
        .map(|row| row.iter().map(AsRef::as_ref).collect())
        .collect();
    let all = || std::iter::once(&header).chain(&body);
    let columns = all().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in all() {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = cell.split('\n').map(|l| l.width()).fold(*width, usize::max);
        }
    }
    let line_len: usize = widths.iter().map(|w| w + 2).sum();
    let mut out = String::with_capacity((body.len() + 1) * (line_len + 1));
    for row in all() {
        let height = row.iter().map(|cell| cell.split('\n').count()).max();
        for i in 0..height.unwrap_or(1) {
            if !out.is_empty() {
                out.push('\n');
            }
            let start = out.len();
            for (c, width) in widths.iter().enumerate() {
                let text = match row.get(c) {
                    Some(cell) if i == 0 && !cell.contains('\n') => cell,
                    Some(cell) => cell.split('\n').nth(i).unwrap_or(""),
                    None => "",
                };
                out.push(' ');
                out.push_str(text);
                out.extend(std::iter::repeat_n(' ', width - text.width() + 1));
            }
            let end = start + out[start..].trim_end().len();
            out.truncate(end);
        }
    }
    out
}

fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// A colour of [`theme`]: one of the terminal's eight basic colours, by
/// index, kept in the red channel with an alpha of 0 (as bat's `ansi`
/// theme marks them). The terminal's own palette draws them, and every
/// palette keeps these readable on its own background, light or dark;
/// fixed RGB colours read on one kind of background only. Black, white
/// and yellow are left out: each is faint on one kind of background.
const fn palette(index: u8) -> Color {
    Color {
        r: index,
        g: 0,
        b: 0,
        a: 0,
    }
}
const RED: Color = palette(1);
const GREEN: Color = palette(2);
const BLUE: Color = palette(4);
const MAGENTA: Color = palette(5);
const CYAN: Color = palette(6);

/// Which scopes get which colour. Plain text keeps the terminal's own
/// foreground, and nothing sets a background.
const SCOPES: &[(&str, Option<Color>, FontStyle)] = &[
    ("comment", None, FontStyle::ITALIC),
    ("string, markup.inserted", Some(GREEN), FontStyle::empty()),
    (
        "constant.numeric, constant.language, constant.character, constant.other",
        Some(CYAN),
        FontStyle::empty(),
    ),
    ("keyword, storage", Some(MAGENTA), FontStyle::empty()),
    (
        "entity.name.function, support.function, entity.name.tag",
        Some(BLUE),
        FontStyle::empty(),
    ),
    (
        "entity.name.class, entity.name.type, support.type, support.class",
        Some(BLUE),
        FontStyle::BOLD,
    ),
    (
        "entity.other.attribute-name",
        Some(CYAN),
        FontStyle::empty(),
    ),
    ("invalid, markup.deleted", Some(RED), FontStyle::empty()),
    ("markup.heading", None, FontStyle::BOLD),
];

fn theme() -> &'static Theme {
    static THEME: OnceLock<Theme> = OnceLock::new();
    THEME.get_or_init(|| Theme {
        scopes: SCOPES
            .iter()
            .filter_map(|&(scope, foreground, font_style)| {
                Some(ThemeItem {
                    scope: ScopeSelectors::from_str(scope).ok()?,
                    style: StyleModifier {
                        foreground,
                        background: None,
                        font_style: Some(font_style),
                    },
                })
            })
            .collect(),
        ..Theme::default()
    })
}

/// The SGR parameters of a highlighted run: empty for plain text.
fn sgr_of(style: &HighlightStyle) -> String {
    let mut codes: Vec<String> = Vec::new();
    if style.font_style.contains(FontStyle::BOLD) {
        codes.push("1".into());
    }
    // Comments: faint as well as italic, for terminals without italics.
    if style.font_style.contains(FontStyle::ITALIC) {
        codes.push("2;3".into());
    }
    // Only [`palette`] colours have an alpha of 0; the theme's default
    // foreground (opaque) is the terminal's own.
    if style.foreground.a == 0 && style.foreground.r < 8 {
        codes.push((30 + style.foreground.r).to_string());
    }
    codes.join(";")
}

/// `content` with terminal colours for its language, chosen by the path's
/// extension; unknown kinds of file come back sanitised only.
pub fn highlight(path: &str, content: &str) -> String {
    let content = sanitize(content, Sgr::Pass);
    // The highlighter adds its own SGR to text that is already safe; the
    // last pass is the guarantee, whatever the highlighter does with it.
    sanitize(&paint_code(path, &content), Sgr::Pass).into_owned()
}

fn paint_code(path: &str, content: &str) -> String {
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
    // The SGR in force, so that a run in the same style as the last adds none.
    let mut current = String::new();
    for line in content.split_inclusive('\n') {
        let Ok(ranges) = lines.highlight_line(line, set) else {
            out.push_str(line);
            continue;
        };
        for (style, text) in ranges {
            let sgr = sgr_of(&style);
            if sgr != current {
                out.push_str("\x1b[0m");
                if !sgr.is_empty() {
                    out.push_str(&format!("\x1b[{sgr}m"));
                }
                current = sgr;
            }
            out.push_str(text);
        }
    }
    if !current.is_empty() {
        out.push_str("\x1b[0m");
    }
    out
}

/// A unified diff with removed lines red, added lines green, hunk headers
/// cyan and file headers bold; the files' text sanitised.
pub fn colour_diff(diff: &str) -> String {
    let diff = sanitize(diff, Sgr::Pass);
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

/// A diff stat's `+` (added) or `-` marks, green or red as in the diff.
pub fn paint_change(added: bool, marks: &str) -> String {
    let style = match added {
        true => AnsiColor::Green.on_default(),
        false => AnsiColor::Red.on_default(),
    };
    format!("{}{marks}{}", style.render(), style.render_reset())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_space() {
        let t = table(&["ID", "NAME"], vec![vec!["1", "todo"], vec!["10", "x"]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines.iter().all(|l| l == &l.trim_end()), "{t:?}");
        let col = lines[0].find("NAME").unwrap();
        assert_eq!(lines[1].find("todo"), Some(col), "{t}");
    }

    #[test]
    fn table_cells_may_span_lines_and_wide_characters() {
        // As comfy-table, which drew these tables before, laid them out.
        let t = table(
            &["A", "B", "C"],
            vec![vec!["two\nlines", "x"], vec!["日本", "é", "end"]],
        );
        assert_eq!(t, " A      B  C\n two    x\n lines\n 日本   é  end");
        let ragged = table(&["A", "B"], vec![vec!["1", "2", "3"], vec!["only"]]);
        assert_eq!(ragged, " A     B\n 1     2  3\n only");
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
    fn code_is_painted_in_the_terminals_basic_colours_on_no_background() {
        let code = "import os\n\n# why\nclass A:\n    def f(self):\n        return 'x' + 1\n";
        let painted = highlight("app.py", code);
        assert!(painted.contains("\x1b[35mimport"), "{painted:?}");
        assert!(painted.contains("\x1b[2;3m# why"), "{painted:?}");
        assert!(painted.contains("\x1b[32m"), "strings green: {painted:?}");
        // Only SGR 0, 1, 2;3 and 31 to 36: no RGB, no 256 colours, no
        // background, no black, white or yellow.
        let mut rest = painted.as_str();
        while let Some(at) = rest.find("\x1b[") {
            let params = &rest[at + 2..];
            let end = params.find('m').expect("an SGR");
            for p in params[..end].split(';') {
                let ok = matches!(p, "0" | "1" | "2" | "3" | "31" | "32" | "34" | "35" | "36");
                assert!(ok, "SGR {:?} in {painted:?}", &params[..end]);
            }
            rest = &params[end..];
        }
    }

    #[test]
    fn a_files_control_sequences_are_escaped_under_the_colour() {
        let hostile = "x = '\x1b]0;owned\x07\x1b[2J\u{9b}'\n";
        for path in ["app.py", "notes.unknownext"] {
            let painted = highlight(path, hostile);
            assert!(crate::escape::is_safe(&painted), "{painted:?}");
            let shown = strip_escapes(&painted);
            assert!(shown.contains("\\x1b]0;owned\\x07"), "{painted:?}");
        }
        let diff = colour_diff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-\x1b]52;c;eA==\x07\n+\x1b[2J\n");
        assert!(crate::escape::is_safe(&diff), "{diff:?}");
        assert!(diff.contains("\\x1b[2J"), "{diff:?}");
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
