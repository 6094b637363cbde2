//! How a saved version (an edit's or a rollback's outcome) is shown.

use appforge_shared::protocol::SavedVersion;
use serde_json::json;

/// The JSON form of an edit's or a rollback's outcome.
pub fn saved_json(s: &SavedVersion) -> serde_json::Value {
    json!({
        "project_id": s.project_id, "name": s.name, "version": s.version,
        "saved": s.saved, "changed": s.changed, "check_status": s.check_status,
        "checks": s.checks.iter().map(|c| json!({"step": c.step, "passed": c.passed, "ms": c.millis})).collect::<Vec<_>>(),
        "restarted": s.restarted, "docs_only": s.docs_only,
    })
}

/// A note when the running app moved to the new version.
pub fn restarted_note(saved: &SavedVersion) -> &'static str {
    match (saved.restarted, saved.docs_only) {
        (true, _) => "\nThe running app was restarted on it.",
        (false, true) => "\nOnly documentation changed: the app was not run again or restarted.",
        (false, false) => "",
    }
}
