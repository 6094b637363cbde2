//! Replies that give the files as a JSON object or list, inside a fence
//! or not.

use super::*;

/// Reads a JSON object of files, in any of the shapes models use; None if `src` is not one.
pub(super) fn json_files(src: &str) -> Option<Vec<(String, String)>> {
    let src = src.trim();
    if !src.starts_with('{') {
        return None;
    }
    let value: Value = serde_json::from_str(src).ok()?;
    let object = value.as_object()?;
    match object.get("files") {
        Some(Value::Array(items)) => items.iter().map(json_entry).collect(),
        Some(Value::Object(map)) => string_entries(src, map, |_| true),
        Some(_) => None,
        None => string_entries(src, object, path_ish),
    }
}

/// Reads `{"path": ..., "content": ...}`.
pub(super) fn json_entry(item: &Value) -> Option<(String, String)> {
    let item = item.as_object()?;
    let path = JSON_PATH_KEYS.iter().find_map(|k| item.get(*k)?.as_str())?;
    let content = JSON_CONTENT_KEYS
        .iter()
        .find_map(|k| item.get(*k)?.as_str())?;
    Some((path.to_string(), content.to_string()))
}

/// Reads an object of `path: content` strings, in the order the reply wrote them.
pub(super) fn string_entries(
    src: &str,
    map: &Map<String, Value>,
    key_ok: impl Fn(&str) -> bool,
) -> Option<Vec<(String, String)>> {
    if map.is_empty() {
        return None;
    }
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        let content = value.as_str()?;
        if !key_ok(key) {
            return None;
        }
        entries.push((key_position(src, key), key.clone(), content.to_string()));
    }
    // serde_json's map may be sorted by key; files must keep the reply's order.
    entries.sort_by_key(|e| e.0);
    Some(entries.into_iter().map(|(_, k, c)| (k, c)).collect())
}

/// Byte offset of `"key":` in the raw JSON, or usize::MAX when it is spelt with escapes.
pub(super) fn key_position(src: &str, key: &str) -> usize {
    let Ok(needle) = serde_json::to_string(key) else {
        return usize::MAX;
    };
    let mut from = 0;
    while let Some(found) = src.get(from..).and_then(|s| s.find(&needle)) {
        let at = from + found;
        let after = src.get(at + needle.len()..).unwrap_or("");
        if after.trim_start().starts_with(':') {
            return at;
        }
        from = at + 1;
    }
    usize::MAX
}
