//! Printing results for people or, with `--json`, for scripts.
//!
//! Text may hold what apps and models wrote, so none is printed raw: it
//! goes through [`escape::sanitize`], colour passing only where stdout
//! shows it.

use std::io::IsTerminal;

use serde_json::Value;

use crate::error::ClientError;
use crate::escape::{self, Sgr};

/// Whether stdout shows colour, decided as most command-line tools do:
/// `NO_COLOR` (<https://no-color.org>) turns it off; `CLICOLOR_FORCE`
/// turns it on, on a pipe too; `CLICOLOR=0` turns it off; otherwise a
/// terminal shows it unless `TERM` is unset or `dumb`.
pub fn colour() -> bool {
    colour_on(std::io::stdout().is_terminal())
}

/// [`colour`] for a stream that is, or is not, a terminal.
pub fn colour_on(terminal: bool) -> bool {
    if anstyle_query::no_color() {
        return false;
    }
    if anstyle_query::clicolor_force() {
        return true;
    }
    if anstyle_query::clicolor() == Some(false) {
        return false;
    }
    terminal && anstyle_query::term_supports_color()
}

/// What becomes of SGR colour in text for stdout.
pub fn stdout_sgr() -> Sgr {
    match colour() {
        true => Sgr::Pass,
        false => Sgr::Drop,
    }
}

/// A JSON document as one line of text. serde_json escapes C0 controls;
/// DEL, C1 controls and bidi controls are escaped here too (`\u009b`, the
/// same string to a JSON reader), so that a document printed on a terminal
/// cannot drive it either.
pub fn json_line(doc: &Value) -> String {
    let text = doc.to_string();
    if !text.chars().any(json_escaped) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match json_escaped(c) {
            // Outside strings JSON is ASCII: these are inside one.
            true => out.push_str(&format!("\\u{:04x}", c as u32)),
            false => out.push(c),
        }
    }
    out
}

fn json_escaped(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Prints a result: the JSON document, or the text for people.
pub fn emit(json: bool, doc: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{}", json_line(&doc));
    } else {
        let text = text();
        if !text.is_empty() {
            println!("{}", escape::sanitize(&text, stdout_sgr()));
        }
    }
}

/// Prints an error on stderr; as a JSON object when `--json` is on. A
/// daemon's message may quote an app's log: it is sanitised like the log.
pub fn print_error(e: &ClientError, json: bool) {
    if json {
        let doc = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
        eprintln!("{}", json_line(&doc));
    } else {
        eprintln!("appforge: {}", escape::sanitize(&e.to_string(), Sgr::Drop));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_could_drive_a_terminal_and_mean_the_same() {
        let doc = serde_json::json!({"line": "a\x1b]0;t\x07 \u{9b}2J \u{7f} \u{202e} é"});
        let line = json_line(&doc);
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, doc);
    }
}
