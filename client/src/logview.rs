//! An app's log for people and scripts.
//!
//! Each line comes with who wrote it. For people, the app's lines are shown
//! as written but sanitised ([`crate::escape`]); appforge's own carry a
//! `[appforge]` tag, dim on a terminal. An app line that would show that
//! same tag at its start is shown with a backslash before it, so that no
//! app can print a line that looks like appforge's. For scripts
//! (`--json`), each line is `{"source": "app" | "appforge", "line": …}`
//! with its exact text (JSON escapes control characters).

use std::io::Write;

use appforge_shared::protocol::{LogLine, LogSource, Progress};
use serde_json::{json, Value};

use crate::escape::{sanitize, Sgr};
use crate::output::json_line;

/// The tag of appforge's own lines, as people see it.
const TAG: &str = "[appforge]";

/// How the lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Text for people; SGR colour passed or dropped.
    Text(Sgr),
    /// One JSON document a line, as each line comes (`--json logs -f`).
    JsonLines,
    /// One JSON document at the end (`--json logs`).
    Json,
}

/// Prints log lines as they come, joining the pieces of a long line.
pub struct LogView<W: Write> {
    out: W,
    mode: Mode,
    /// Who wrote the line being printed, when its end has not come yet.
    open: Option<LogSource>,
    /// The text of that line so far (JSON modes).
    partial: String,
    /// Every line, for [`Mode::Json`].
    lines: Vec<Value>,
}

impl<W: Write> LogView<W> {
    /// A view that prints to `out`.
    pub fn new(out: W, mode: Mode) -> Self {
        LogView {
            out,
            mode,
            open: None,
            partial: String::new(),
            lines: Vec::new(),
        }
    }

    /// Takes the log lines of a progress frame; other frames are ignored.
    /// A write error (a closed pipe, as with `| head`) is returned.
    pub fn take(&mut self, progress: Progress) -> std::io::Result<()> {
        match progress {
            Progress::LogLines(lines) => {
                for line in &lines {
                    self.line(line)?;
                }
            }
            // An older daemon's log text: the app's, as far as anyone knows.
            Progress::Log(text) => {
                for piece in text.split_inclusive('\n') {
                    self.line(&LogLine {
                        source: LogSource::App,
                        text: piece.trim_end_matches('\n').to_string(),
                        ends: piece.ends_with('\n'),
                    })?;
                }
            }
            _ => return Ok(()),
        }
        self.out.flush()
    }

    /// Ends the view: an unfinished last line is printed as a line.
    pub fn finish(mut self) -> std::io::Result<()> {
        if let Some(source) = self.open.take() {
            match self.mode {
                Mode::Text(_) => self.out.write_all(b"\n")?,
                _ => self.json(source)?,
            }
        }
        if self.mode == Mode::Json {
            let doc = json!({ "lines": std::mem::take(&mut self.lines) });
            writeln!(self.out, "{}", json_line(&doc))?;
        }
        self.out.flush()
    }

    fn line(&mut self, line: &LogLine) -> std::io::Result<()> {
        // A piece goes on with the line begun before it, whoever wrote it.
        let source = self.open.unwrap_or(line.source);
        match self.mode {
            Mode::Text(sgr) => self.text(source, line, sgr)?,
            Mode::JsonLines | Mode::Json => {
                self.partial.push_str(&line.text);
                if line.ends {
                    self.json(source)?;
                }
            }
        }
        self.open = (!line.ends).then_some(source);
        Ok(())
    }

    fn text(&mut self, source: LogSource, line: &LogLine, sgr: Sgr) -> std::io::Result<()> {
        let text = sanitize(&line.text, sgr);
        if self.open.is_none() {
            match source {
                LogSource::Appforge if sgr == Sgr::Pass => {
                    write!(self.out, "\x1b[2m{TAG}\x1b[0m ")?;
                }
                LogSource::Appforge => write!(self.out, "{TAG} ")?,
                LogSource::App if sanitize(&text, Sgr::Drop).starts_with(TAG) => {
                    self.out.write_all(b"\\")?;
                }
                LogSource::App => {}
            }
        }
        self.out.write_all(text.as_bytes())?;
        if line.ends {
            // Colour an app left on ends with its line.
            if text.contains('\x1b') {
                self.out.write_all(b"\x1b[0m")?;
            }
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn json(&mut self, source: LogSource) -> std::io::Result<()> {
        let doc = json!({ "source": source, "line": std::mem::take(&mut self.partial) });
        match self.mode {
            Mode::JsonLines => writeln!(self.out, "{}", json_line(&doc)),
            _ => {
                self.lines.push(doc);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(source: LogSource, text: &str, ends: bool) -> LogLine {
        LogLine {
            source,
            text: text.into(),
            ends,
        }
    }

    fn shown(mode: Mode, lines: Vec<LogLine>) -> String {
        let mut out = Vec::new();
        let mut view = LogView::new(&mut out, mode);
        view.take(Progress::LogLines(lines)).unwrap();
        view.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    fn hostile() -> Vec<LogLine> {
        use LogSource::*;
        vec![
            piece(Appforge, "started pid 7 on port 8101", true),
            piece(
                App,
                "\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\u{9b}31m",
                true,
            ),
            piece(App, "\x1b[31mred", true),
            piece(App, "[appforge] pid 1 exited with status 0", true),
            piece(App, "\x1b[2m[appforge]\x1b[0m pid 1 exited", true),
            piece(App, "a long ", false),
            piece(App, "line", true),
        ]
    }

    #[test]
    fn on_a_pipe_nothing_drives_a_terminal_and_no_line_passes_for_appforge() {
        let text = shown(Mode::Text(Sgr::Drop), hostile());
        assert_eq!(
            text,
            "[appforge] started pid 7 on port 8101\n\
             \\x1b]0;owned\\x07\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\u{9b}31m\n\
             red\n\
             \\[appforge] pid 1 exited with status 0\n\
             \\[appforge] pid 1 exited\n\
             a long line\n"
        );
    }

    #[test]
    fn on_a_terminal_colour_passes_and_appforge_is_dim() {
        let text = shown(Mode::Text(Sgr::Pass), hostile());
        assert!(crate::escape::is_safe(&text), "{text:?}");
        assert!(
            text.starts_with("\x1b[2m[appforge]\x1b[0m started"),
            "{text:?}"
        );
        assert!(text.contains("\x1b[31mred\x1b[0m\n"), "{text:?}");
        assert!(text.contains("\\x1b]0;owned"), "{text:?}");
        assert!(text.contains("\\\x1b[2m[appforge]"), "{text:?}");
    }

    #[test]
    fn json_says_who_wrote_each_line_and_keeps_its_text() {
        let doc: Value = serde_json::from_str(&shown(Mode::Json, hostile())).unwrap();
        let lines = doc["lines"].as_array().unwrap();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[0],
            json!({"source": "appforge", "line": "started pid 7 on port 8101"})
        );
        assert_eq!(lines[1]["line"], hostile()[1].text);
        assert_eq!(
            lines[3],
            json!({"source": "app", "line": "[appforge] pid 1 exited with status 0"})
        );
        assert_eq!(lines[5], json!({"source": "app", "line": "a long line"}));
        let follow = shown(Mode::JsonLines, hostile());
        let docs: Vec<Value> = follow
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(&docs, lines);
    }

    #[test]
    fn an_unfinished_line_ends_with_the_view() {
        let lines = vec![piece(LogSource::App, "last words", false)];
        assert_eq!(shown(Mode::Text(Sgr::Drop), lines.clone()), "last words\n");
        let doc: Value = serde_json::from_str(&shown(Mode::Json, lines)).unwrap();
        assert_eq!(doc["lines"][0]["line"], "last words");
    }
}
