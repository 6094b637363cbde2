//! The `generation_history` table: one row per generation call, kept
//! whether it succeeded or not.

use appforge_shared::protocol::FileContent;
use rusqlite::{params, Connection, OptionalExtension};

use super::generate::Outcome;
use crate::db::DbError;

/// What a history row records besides the outcome.
pub struct Entry<'a> {
    /// Who asked.
    pub owner_id: i64,
    /// The project, for `improve`.
    pub project_id: Option<i64>,
    /// `generate` or `improve`.
    pub kind: &'a str,
    /// The user's prompt.
    pub prompt: &'a str,
    /// The provider asked.
    pub provider: &'a str,
    /// The model asked.
    pub model: &'a str,
}

/// Records a generation and returns its id.
pub fn record(conn: &Connection, entry: &Entry<'_>, outcome: &Outcome) -> Result<i64, DbError> {
    let (status, error, files) = match &outcome.files {
        Ok(files) => {
            let pairs: Vec<(&str, &str)> = files
                .iter()
                .map(|f| (f.path.as_str(), f.content.as_str()))
                .collect();
            ("ok", None, serde_json::to_string(&pairs).ok())
        }
        Err(e) => ("failed", Some(e.to_string()), None),
    };
    conn.execute(
        "INSERT INTO generation_history (owner_id, project_id, kind, prompt, response, tokens_used, \
         prompt_tokens, completion_tokens, provider, model, duration_ms, outcome, error, request_id, files) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            entry.owner_id,
            entry.project_id,
            entry.kind,
            entry.prompt,
            outcome.response,
            outcome.usage.total_tokens as i64,
            outcome.usage.prompt_tokens as i64,
            outcome.usage.completion_tokens as i64,
            entry.provider,
            entry.model,
            outcome.duration.as_millis() as i64,
            status,
            error,
            outcome.request_id,
            files,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A successful generation of the caller's that no project holds yet.
pub struct Unsaved {
    /// The prompt.
    pub prompt: String,
    /// The checked files.
    pub files: Vec<FileContent>,
    /// Tokens it used.
    pub tokens_used: u64,
}

/// Finds an unsaved, successful generation of `owner_id`'s.
pub fn unsaved(conn: &Connection, owner_id: i64, id: i64) -> Result<Option<Unsaved>, DbError> {
    Ok(conn
        .query_row(
            "SELECT prompt, files, tokens_used FROM generation_history \
             WHERE id = ?1 AND owner_id = ?2 AND outcome = 'ok' AND kind = 'generate' \
               AND project_id IS NULL",
            params![id, owner_id],
            |r| {
                let files: String = r.get(1)?;
                // A row that does not hold its files is refused rather than
                // saved as an empty project.
                let files: Vec<(String, String)> = serde_json::from_str(&files).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?;
                Ok(Unsaved {
                    prompt: r.get(0)?,
                    files: files
                        .into_iter()
                        .map(|(path, content)| FileContent { path, content })
                        .collect(),
                    tokens_used: r.get::<_, i64>(2)? as u64,
                })
            },
        )
        .optional()?)
}

/// Links a generation to the project that saved it.
pub fn link(conn: &Connection, id: i64, project_id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE generation_history SET project_id = ?1 WHERE id = ?2",
        params![project_id, id],
    )?;
    Ok(())
}
