//! Excerpts of an app's output: the part of a log that says why it failed.

/// Most of a failure's output that goes back to the model and the user.
pub const MAX_ERROR_BYTES: usize = 4000;

/// What `relevant` keeps of some lines of output.
pub fn relevant_lines(lines: &[String]) -> String {
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))
        .unwrap_or(lines.len().saturating_sub(40));
    let text = lines[from..].join("\n");
    cut_keeping_end(&text, MAX_ERROR_BYTES)
}

/// `text`, or its last `max` bytes (on a character boundary) after a note.
pub fn cut_keeping_end(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {start} bytes cut]\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_keep_their_end() {
        let text = format!("{}\nValueError: the real cause", "x".repeat(10_000));
        let cut = cut_keeping_end(&text, 100);
        assert!(cut.ends_with("ValueError: the real cause"), "{cut}");
        assert!(cut.starts_with("[… "), "{cut}");
        assert!(cut.len() < 140);
        assert_eq!(cut_keeping_end("short", 100), "short");
        // A cut inside a character moves to its end.
        let cut = cut_keeping_end("ééééé", 3);
        assert!(cut.ends_with('é'));
    }
}
