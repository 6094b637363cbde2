//! The `generation_history` table: one row per round of a generation,
//! kept whether it succeeded or not.

use crate::checks::repair::Round;
use crate::db::{Conn, DbError};
use crate::params;
use crate::projects::versions::{CheckStatus, Kind};
use appforge_shared::protocol::FileContent;

/// What a history row records besides the outcome.
pub struct Entry<'a> {
    /// Who asked.
    pub owner_id: i64,
    /// The project, for `improve`.
    pub project_id: Option<i64>,
    /// `generate` or `improve`.
    pub kind: Kind,
    /// The user's prompt.
    pub prompt: &'a str,
    /// The provider asked.
    pub provider: &'a str,
    /// The model asked.
    pub model: &'a str,
}

/// Records one round of a generation and returns its row's id; `files`
/// are the round's result when it is the one that succeeded.
pub fn record(
    conn: &Conn<'_>,
    entry: &Entry<'_>,
    number: usize,
    round: &Round,
    files: Option<&[FileContent]>,
    error: Option<&str>,
) -> Result<i64, DbError> {
    let status = if files.is_some() { "ok" } else { "failed" };
    let files = files.map(|files| {
        let pairs: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_str()))
            .collect();
        serde_json::to_string(&pairs).unwrap_or_default()
    });
    let checks = serde_json::json!({"mends": round.mends, "steps": round.steps}).to_string();
    let reply = &round.reply;
    conn.query_one(
        "INSERT INTO generation_history (owner_id, project_id, kind, prompt, response, tokens_used, \
         prompt_tokens, completion_tokens, provider, model, duration_ms, outcome, error, request_id, \
         files, round, checks) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         RETURNING id",
        params![
            entry.owner_id,
            entry.project_id,
            entry.kind.as_str(),
            entry.prompt,
            reply.response.as_str(),
            reply.usage.total_tokens as i64,
            reply.usage.prompt_tokens as i64,
            reply.usage.completion_tokens as i64,
            entry.provider,
            entry.model,
            reply.duration.as_millis() as i64,
            status,
            error.or(round.problem.as_deref()),
            reply.request_id.as_deref(),
            files,
            number as i64,
            checks,
        ],
        |r| r.get(0),
    )
}

/// A successful generation of the caller's that no project holds yet.
pub struct Unsaved {
    /// The prompt.
    pub prompt: String,
    /// The checked files.
    pub files: Vec<FileContent>,
    /// Tokens it used.
    pub tokens_used: u64,
    /// Passed, or skipped when it was made with `--no-check`.
    pub check_status: CheckStatus,
}

/// Finds an unsaved, successful generation of `owner_id`'s.
pub fn unsaved(conn: &Conn<'_>, owner_id: i64, id: i64) -> Result<Option<Unsaved>, DbError> {
    conn.query_opt(
        "SELECT prompt, files, tokens_used, checks FROM generation_history \
         WHERE id = $1 AND owner_id = $2 AND outcome = 'ok' AND kind = 'generate' \
           AND project_id IS NULL",
        params![id, owner_id],
        |r| {
            let files: String = r.get(1)?;
            // A row that does not hold its files is refused rather than
            // saved as an empty project.
            let files: Vec<(String, String)> = serde_json::from_str(&files)
                .map_err(|e| DbError::Decode(format!("generation {id}'s files: {e}")))?;
            Ok(Unsaved {
                prompt: r.get(0)?,
                files: files
                    .into_iter()
                    .map(|(path, content)| FileContent { path, content })
                    .collect(),
                tokens_used: r.get::<i64>(2)? as u64,
                check_status: ran_checks(r.get(3)?),
            })
        },
    )
}

/// Whether a successful round's checks ran (its record lists steps).
fn ran_checks(checks: Option<String>) -> CheckStatus {
    let ran = checks
        .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
        .and_then(|v| {
            v.get("steps")
                .and_then(|s| s.as_array())
                .map(|s| !s.is_empty())
        })
        .unwrap_or(false);
    match ran {
        true => CheckStatus::Passed,
        false => CheckStatus::Skipped,
    }
}

/// The error of a project's latest failed round, if its latest round
/// failed: what `fix` sends when the app itself has no failure to show.
pub fn last_failure(conn: &Conn<'_>, project_id: i64) -> Result<Option<String>, DbError> {
    let latest: Option<(String, Option<String>)> = conn.query_opt(
        "SELECT outcome, error FROM generation_history WHERE project_id = $1 \
         ORDER BY id DESC LIMIT 1",
        params![project_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(match latest {
        Some((outcome, error)) if outcome == "failed" => error,
        _ => None,
    })
}

/// Links a generation to the project that saved it.
pub fn link(conn: &Conn<'_>, id: i64, project_id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE generation_history SET project_id = $1 WHERE id = $2",
        params![project_id, id],
    )?;
    Ok(())
}
