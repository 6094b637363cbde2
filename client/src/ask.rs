//! Yes-or-no questions on a terminal, for what cannot be undone or was
//! not asked for on the command line.

use std::io::{BufRead, IsTerminal};

/// Whether a question can be asked: someone types on standard input.
pub fn possible() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks `question` on stderr and reads the answer from stdin: yes only
/// for `y` or `yes`; anything else, or no answer, is no.
pub fn yes(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}
