//! Printing results for people or, with `--json`, for scripts.

use serde_json::Value;

use crate::error::ClientError;

/// Prints a result: the JSON document, or the text for people.
pub fn emit(json: bool, doc: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{doc}");
    } else {
        let text = text();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// Prints an error on stderr; as a JSON object when `--json` is on.
pub fn print_error(e: &ClientError, json: bool) {
    if json {
        let doc = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
        eprintln!("{doc}");
    } else {
        eprintln!("appforge: {e}");
    }
}
