//! Text that apps and models wrote, made safe for a terminal.
//!
//! An app's log and a model's files are untrusted: printed raw, an OSC
//! sequence sets the window title or writes the clipboard (OSC 52), a CSI
//! sequence clears the screen or moves the cursor over appforge's own
//! lines, and C1 bytes do the same on terminals that read them. So every
//! control character is shown as a visible escape (`\x1b]0;title\x07`),
//! never passed through, with one exception: SGR colour (`ESC [ params m`),
//! which changes only how text looks. It passes on a terminal that shows
//! colour and is dropped elsewhere.

use std::borrow::Cow;
use std::fmt::Write as _;

/// What becomes of a well-formed SGR (colour) sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sgr {
    /// Passed through: the output goes to a terminal that shows colour.
    Pass,
    /// Left out: the output goes to a pipe, a file or a message.
    Drop,
}

/// `text` with every control character but `\t` and `\n` shown as a visible
/// escape, and SGR sequences passed or dropped as `sgr` says.
///
/// Escaped: C0 controls and DEL as `\xNN`; C1 controls (U+0080–U+009F)
/// and the bidirectional controls, which reorder what a line shows, as
/// `\u{NN}`; an ESC that does not start an SGR sequence as `\x1b`, with
/// what follows it shown as the text it is.
pub fn sanitize(text: &str, sgr: Sgr) -> Cow<'_, str> {
    if !text.chars().any(needs_care) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            if let Some(len) = sgr_len(rest) {
                if sgr == Sgr::Pass {
                    out.push_str(&rest[..len]);
                }
                rest = &rest[len..];
                continue;
            }
        }
        push_char(&mut out, c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Whether `c` is shown other than as itself, or may start an SGR sequence.
fn needs_care(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_bidi(c)
}

/// The bidirectional formatting characters: they reorder the text around
/// them, so a line can show something other than what it holds.
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c`, or its visible escape.
fn push_char(out: &mut String, c: char) {
    if !needs_care(c) {
        out.push(c);
    } else if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

/// The length of the SGR sequence `text` starts with: `ESC [`, parameters
/// (digits, `;` and `:`), then `m`. None for anything else.
fn sgr_len(text: &str) -> Option<usize> {
    let params = text.strip_prefix("\x1b[")?;
    let digits = params
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
        .count();
    (params.as_bytes().get(digits) == Some(&b'm')).then_some(2 + digits + 1)
}

/// Whether `text` is safe to print: no control character but `\t`, `\n`
/// and the ESC of well-formed SGR sequences, no bidi control. What
/// [`sanitize`] returns always is.
#[cfg(test)]
pub fn is_safe(text: &str) -> bool {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            match sgr_len(rest) {
                Some(len) => rest = &rest[len..],
                None => return false,
            }
            continue;
        }
        if needs_care(c) {
            return false;
        }
        rest = &rest[c.len_utf8()..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_comes_back_as_it_is() {
        let text = "héllo\twörld 日本\n";
        assert!(matches!(sanitize(text, Sgr::Pass), Cow::Borrowed(_)));
        assert_eq!(sanitize(text, Sgr::Drop), text);
    }

    #[test]
    fn colour_passes_on_a_terminal_and_is_dropped_elsewhere() {
        let text = "\x1b[1;31mred\x1b[0m and \x1b[38:2::1:2:3mtrue\x1b[m";
        assert_eq!(sanitize(text, Sgr::Pass), text);
        assert_eq!(sanitize(text, Sgr::Drop), "red and true");
    }

    #[test]
    fn every_other_sequence_is_shown_escaped() {
        let cases = [
            ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
            ("\x1b]52;c;ZXZpbA==\x1b\\", "\\x1b]52;c;ZXZpbA==\\x1b\\"),
            ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
            ("\x1b[1A\x1b[2K", "\\x1b[1A\\x1b[2K"),
            ("a\rb\x08c\x7f\x00", "a\\x0db\\x08c\\x7f\\x00"),
            ("\u{9b}2J\u{9d}0;t\u{9c}", "\\u{9b}2J\\u{9d}0;t\\u{9c}"),
            ("lone \x1b", "lone \\x1b"),
            ("\x1b[31", "\\x1b[31"),
            ("\x1b[?25l", "\\x1b[?25l"),
            ("ab\u{202e}cd", "ab\\u{202e}cd"),
        ];
        for (raw, shown) in cases {
            assert_eq!(sanitize(raw, Sgr::Pass), shown, "{raw:?}");
            assert_eq!(sanitize(raw, Sgr::Drop), shown, "{raw:?}");
        }
    }

    /// Text rich in what the sanitiser must handle.
    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\x1b".to_string()),
            Just("\x1b[".to_string()),
            Just("m".to_string()),
            Just(";".to_string()),
            Just("\x07".to_string()),
            Just("\u{9b}".to_string()),
            Just("\u{202e}".to_string()),
            "[0-9;:]{0,4}".prop_map(String::from),
            any::<char>().prop_map(String::from),
            "[ -~]{0,6}".prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn output_drives_no_terminal(text in hostile()) {
            let passed = sanitize(&text, Sgr::Pass);
            prop_assert!(is_safe(&passed), "{:?} -> {:?}", text, passed);
            let dropped = sanitize(&text, Sgr::Drop);
            prop_assert!(!dropped.contains('\x1b'), "{:?} -> {:?}", text, dropped);
            prop_assert!(is_safe(&dropped));
            let c1 = dropped.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c));
            prop_assert!(!c1, "{:?} -> {:?}", text, dropped);
        }

        #[test]
        fn safe_text_is_left_alone(text in hostile()) {
            // Sanitising twice changes nothing more: escapes are plain text.
            let once = sanitize(&text, Sgr::Pass).into_owned();
            prop_assert_eq!(sanitize(&once, Sgr::Pass), once.as_str());
        }

        #[test]
        fn printable_text_is_never_changed(text in "[^\\p{Cc}\u{061c}\u{200e}\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}]*") {
            prop_assert_eq!(sanitize(&text, Sgr::Drop), text.as_str());
        }
    }
}
