//! Saved projects: naming, finding one by id or name for its owner, and
//! versions of the whole file set.

use appforge_shared::protocol::{FileContent, SavedAs};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::db::{DbError, NOW};

/// The file the `backend_code` column mirrors.
const BACKEND_ENTRY: &str = "app.py";

/// Longest project name, in characters.
const MAX_NAME: usize = 64;

/// Why a project operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No project of the caller's has that id or name.
    #[error("no project `{0}`; `appforge list` shows yours")]
    NotFound(String),
    /// The name is taken by another of the caller's projects.
    #[error("you already have a project named `{0}`; choose another name with --name")]
    NameTaken(String),
    /// The name is not acceptable.
    #[error("bad project name `{name}`: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ProjectError {
    fn from(e: rusqlite::Error) -> Self {
        ProjectError::Db(e.into())
    }
}

/// A project as the handlers need it.
#[derive(Debug, Clone)]
pub struct Project {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The prompt that created it.
    pub prompt: String,
}

/// A new version's origin and content.
pub struct NewVersion<'a> {
    /// `generate`, `improve`, `edit` or `rollback`.
    pub kind: &'a str,
    /// The prompt behind it, if any.
    pub prompt: &'a str,
    /// The generation that made it, if any.
    pub generation_id: Option<i64>,
    /// Tokens the generation used.
    pub tokens_used: u64,
    /// The whole file set.
    pub files: &'a [FileContent],
}

/// Checks a name given by a user.
pub fn check_name(name: &str) -> Result<(), ProjectError> {
    let bad = |reason| {
        Err(ProjectError::BadName {
            name: name.chars().filter(|c| !c.is_control()).take(80).collect(),
            reason,
        })
    };
    if name.trim().is_empty() {
        return bad("it is empty");
    }
    if name.trim() != name {
        return bad("it starts or ends with white space");
    }
    if name.chars().count() > MAX_NAME {
        return bad("it is longer than 64 characters");
    }
    if name.chars().any(char::is_control) {
        return bad("it holds control characters");
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return bad("all digits would read as a project id");
    }
    Ok(())
}

/// A name derived from a prompt: its first words, lower-case, dashed.
pub fn name_from_prompt(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(5)
        .map(str::to_lowercase)
        .collect();
    let mut name = words.join("-");
    name.truncate(name.char_indices().nth(40).map_or(name.len(), |(i, _)| i));
    if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
        name = format!("app-{name}").trim_end_matches('-').to_string();
    }
    name
}

/// Creates a project with its first version. Without an explicit name, a
/// taken derived name gets a numeric suffix.
pub fn create(
    tx: &Transaction<'_>,
    owner_id: i64,
    name: Option<&str>,
    prompt: &str,
    version: NewVersion<'_>,
) -> Result<SavedAs, ProjectError> {
    let name = match name {
        Some(n) => {
            check_name(n)?;
            if name_taken(tx, owner_id, n)? {
                return Err(ProjectError::NameTaken(n.to_string()));
            }
            n.to_string()
        }
        None => {
            let base = name_from_prompt(prompt);
            let mut candidate = base.clone();
            let mut n = 2;
            while name_taken(tx, owner_id, &candidate)? {
                candidate = format!("{base}-{n}");
                n += 1;
            }
            candidate
        }
    };
    tx.execute(
        "INSERT INTO projects (name, description, prompt, owner_id) VALUES (?1, ?2, ?2, ?3)",
        params![name, prompt, owner_id],
    )?;
    let project_id = tx.last_insert_rowid();
    let version = add_version(tx, project_id, version)?;
    Ok(SavedAs {
        project_id,
        name,
        version,
    })
}

fn name_taken(conn: &Connection, owner_id: i64, name: &str) -> Result<bool, ProjectError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM projects WHERE owner_id = ?1 AND name = ?2",
            params![owner_id, name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Adds the next version of a project and mirrors it into the project row.
pub fn add_version(
    tx: &Transaction<'_>,
    project_id: i64,
    v: NewVersion<'_>,
) -> Result<i64, ProjectError> {
    let number: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM project_versions WHERE project_id = ?1",
        [project_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO project_versions (project_id, version, kind, prompt, generation_id, tokens_used) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![project_id, number, v.kind, v.prompt, v.generation_id, v.tokens_used as i64],
    )?;
    let version_id = tx.last_insert_rowid();
    let mut insert =
        tx.prepare("INSERT INTO project_files (version_id, path, content) VALUES (?1, ?2, ?3)")?;
    for f in v.files {
        insert.execute(params![version_id, f.path, f.content])?;
    }
    let backend = file_text(v.files, |p| p == BACKEND_ENTRY);
    let frontend = main_page(v.files);
    tx.execute(
        &format!(
            "UPDATE projects SET backend_code = ?1, frontend_code = ?2, last_modified = {NOW} \
             WHERE id = ?3"
        ),
        params![backend, frontend, project_id],
    )?;
    Ok(number)
}

fn file_text(files: &[FileContent], pick: impl Fn(&str) -> bool) -> String {
    files
        .iter()
        .find(|f| pick(&f.path))
        .map(|f| f.content.clone())
        .unwrap_or_default()
}

/// The main page: `templates/index.html`, else `static/index.html`, else any
/// `index.html`, else the first HTML file.
fn main_page(files: &[FileContent]) -> String {
    for wanted in ["templates/index.html", "static/index.html", "index.html"] {
        if let Some(f) = files.iter().find(|f| f.path == wanted) {
            return f.content.clone();
        }
    }
    file_text(files, |p| p.ends_with(".html"))
}

/// Finds the caller's project by id or name. Another user's project is
/// reported exactly like a missing one.
pub fn resolve(conn: &Connection, owner_id: i64, reference: &str) -> Result<Project, ProjectError> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(Project {
            id: r.get(0)?,
            name: r.get(1)?,
            prompt: r.get(2)?,
        })
    };
    let by_name = conn
        .query_row(
            "SELECT id, name, prompt FROM projects WHERE owner_id = ?1 AND name = ?2",
            params![owner_id, reference],
            row,
        )
        .optional()?;
    let found = match (by_name, reference.parse::<i64>()) {
        (Some(p), _) => Some(p),
        (None, Ok(id)) => conn
            .query_row(
                "SELECT id, name, prompt FROM projects WHERE owner_id = ?1 AND id = ?2",
                params![owner_id, id],
                row,
            )
            .optional()?,
        (None, Err(_)) => None,
    };
    found.ok_or_else(|| ProjectError::NotFound(reference.chars().take(80).collect()))
}

/// The files of a project's newest version, sorted by path.
pub fn current_files(conn: &Connection, project_id: i64) -> Result<Vec<FileContent>, ProjectError> {
    let mut stmt = conn.prepare(
        "SELECT f.path, f.content FROM project_files f \
         JOIN project_versions v ON v.id = f.version_id \
         WHERE v.project_id = ?1 \
           AND v.version = (SELECT max(version) FROM project_versions WHERE project_id = ?1) \
         ORDER BY f.path",
    )?;
    let files = stmt
        .query_map([project_id], |r| {
            Ok(FileContent {
                path: r.get(0)?,
                content: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_prompts() {
        assert_eq!(
            name_from_prompt("A todo app with title, due date"),
            "a-todo-app-with-title"
        );
        assert_eq!(name_from_prompt("☃☃"), "app");
        assert_eq!(name_from_prompt(""), "app");
        assert_eq!(name_from_prompt("123"), "app-123");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", " x", "x ", "a\nb", "42", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["todo", "my app", "été-2", "a/b"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
