//! Saved projects: naming, finding one by id or name for its owner, listing
//! and deleting them; their versions, diffs and exports live in the
//! submodules.

pub mod change;
pub mod diff;
pub mod export;
pub mod folder;
pub mod path;
pub mod settings;
pub mod slug;
pub mod versions;

use crate::db::{Conn, DbError, Row};
use crate::params;
use appforge_shared::protocol::{ProjectSummary, SavedAs};
pub use versions::NewVersion;

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
    /// The project has no such version.
    #[error("project `{name}` has no version {version}; its versions are 1 to {newest}")]
    NoSuchVersion {
        /// The project's name.
        name: String,
        /// The version asked for.
        version: i64,
        /// Its newest version.
        newest: i64,
    },
    /// The project has no version at all: the store lost them (a project
    /// is always made with its first version).
    #[error(
        "project `{0}` has no version in the store, so there is nothing to run or show; \
         restore the store from a backup, or remove it with `appforge delete {0}`"
    )]
    NoVersions(String),
    /// The version has no such file.
    #[error("version {version} of `{name}` has no file `{path}`; it has: {files}")]
    NoSuchFile {
        /// The project's name.
        name: String,
        /// The version looked in.
        version: i64,
        /// The path asked for.
        path: String,
        /// The paths it has, comma-separated.
        files: String,
    },
    /// A change started from a version that is no longer the newest.
    #[error(
        "`{name}` changed while you worked: you started from version {base}, and version \
         {newest} is newer; look at `appforge diff {name} {base} {newest}` and edit again"
    )]
    Moved {
        /// The project's name.
        name: String,
        /// The version the change started from.
        base: i64,
        /// The newest version now.
        newest: i64,
    },
    /// The name is not acceptable.
    #[error("bad project name `{name}`: {reason}; {NAME_RULE}")]
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

/// A project as the handlers need it.
#[derive(Debug, Clone)]
pub struct Project {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The prompt that created it.
    pub prompt: String,
    /// Its owner.
    pub owner_id: i64,
}

const SUMMARY_COLUMNS: &str = "p.id, p.name, p.status, p.port, p.created_at, p.last_modified, \
     (SELECT coalesce(max(version), 0) FROM project_versions v WHERE v.project_id = p.id), \
     (SELECT checks FROM project_versions v WHERE v.project_id = p.id ORDER BY version DESC LIMIT 1)";

fn summary_row(r: &Row) -> Result<ProjectSummary, DbError> {
    Ok(ProjectSummary {
        id: r.get(0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        port: r.get::<Option<i64>>(3)?.and_then(|p| u16::try_from(p).ok()),
        created_at: r.get(4)?,
        last_modified: r.get(5)?,
        version: r.get(6)?,
        check_status: r.get(7)?,
    })
}

/// The caller's projects, oldest first.
pub fn list(conn: &Conn<'_>, owner_id: i64) -> Result<Vec<ProjectSummary>, ProjectError> {
    Ok(conn.query(
        &format!("SELECT {SUMMARY_COLUMNS} FROM projects p WHERE p.owner_id = $1 ORDER BY p.id"),
        params![owner_id],
        summary_row,
    )?)
}

/// One project's row as clients see it.
pub fn summary(conn: &Conn<'_>, project: &Project) -> Result<ProjectSummary, ProjectError> {
    Ok(conn.query_one(
        &format!("SELECT {SUMMARY_COLUMNS} FROM projects p WHERE p.id = $1"),
        params![project.id],
        summary_row,
    )?)
}

/// Deletes a project with its versions and files. Its generation history
/// stays, unlinked, as the owner's record of what was asked.
pub fn delete(conn: &Conn<'_>, project: &Project) -> Result<(), ProjectError> {
    conn.execute("DELETE FROM projects WHERE id = $1", params![project.id])?;
    Ok(())
}

/// Checks a name given by a user.
pub fn check_name(name: &str) -> Result<(), ProjectError> {
    let bad = |reason| {
        Err(ProjectError::BadName {
            name: name
                .chars()
                .filter(|&c| !is_hidden_char(c))
                .take(80)
                .collect(),
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
    // A name is shown in tables and terminals: a bidi override or an
    // invisible character would make it read as another name.
    if name.chars().any(char::is_control) {
        return bad("it holds control characters");
    }
    if name.chars().any(is_hidden_char) {
        return bad(
            "it holds an invisible formatting character (a bidi override, a zero-width \
             space or the like)",
        );
    }
    // A name reads like a path in places (exports, URLs): keep it one segment.
    if name.contains(['/', '\\']) {
        return bad("it holds `/` or `\\`");
    }
    if name.contains("..") {
        return bad("it holds `..`");
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return bad("all digits would read as a project id");
    }
    Ok(())
}

/// What a project name may hold, for messages that refuse one.
pub const NAME_RULE: &str = "a name is 1 to 64 letters, digits, spaces and punctuation, without \
                             `/`, `\\`, `..`, control or invisible formatting characters, and not \
                             all digits";

/// A control character, or a character of Unicode's format (Cf) or
/// separator (Zl, Zp) categories: bidi embeddings, overrides and isolates,
/// zero-width spaces and joiners, the byte-order mark, tags and the like.
fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

/// Words that open a request without naming the app ("please build me a …").
const OPENING_WORDS: &[&str] = &[
    "a", "an", "the", "my", "our", "your", "some", "please", "build", "make", "create", "write",
    "generate", "give", "me", "us", "i", "we", "want", "need", "would", "like", "can", "could",
    "you", "simple", "small", "basic", "little", "quick", "tiny", "new",
];

/// Words after which a prompt describes the app rather than names it
/// ("a recipe box *with* title, …").
const DESCRIBING_WORDS: &[&str] = &[
    "with",
    "including",
    "containing",
    "that",
    "which",
    "where",
    "who",
    "to",
    "for",
    "using",
    "in",
    "on",
    "of",
    "and",
    "so",
    "has",
    "have",
    "having",
];

/// A name derived from a prompt: the words that name the app ("a recipe
/// box with title, …" gives `recipe-box`), else its first five words, dashed.
pub fn name_from_prompt(prompt: &str) -> String {
    let head = prompt
        .split([',', ':', ';', '.', '!', '?', '\n', '('])
        .next()
        .unwrap_or("");
    let named: Vec<String> = slug::words(head)
        .into_iter()
        .skip_while(|w| OPENING_WORDS.contains(&w.as_str()))
        .take_while(|w| !DESCRIBING_WORDS.contains(&w.as_str()))
        .take(4)
        .collect();
    let mut words = named;
    if words.is_empty() {
        words = slug::words(prompt);
        words.truncate(5);
    }
    let name = slug::join(&words, '-', 40);
    if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
        return format!("app-{name}").trim_end_matches('-').to_string();
    }
    name
}

/// A name derived from a folder's name: all its words, dashed ("My Shop"
/// gives `my-shop`), as a folder is already named by its owner.
pub fn name_from_folder(folder: &str) -> String {
    let name = slug::join(&slug::words(folder), '-', 40);
    if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
        return format!("app-{name}").trim_end_matches('-').to_string();
    }
    name
}

/// Creates a project with its first version. Without an explicit name, a
/// taken derived name gets a numeric suffix.
pub fn create(
    tx: &Conn<'_>,
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
        None => unused_name(tx, owner_id, &name_from_prompt(prompt))?,
    };
    let project_id: i64 = tx.query_one(
        "INSERT INTO projects (name, description, prompt, owner_id) VALUES ($1, $2, $2, $3) \
         RETURNING id",
        params![&name, prompt, owner_id],
        |r| r.get(0),
    )?;
    let version = versions::add_version(tx, project_id, version)?;
    Ok(SavedAs {
        project_id,
        name,
        version,
    })
}

/// `base`, or, when the owner has a project of that name, the first of
/// `base-2`, `base-3`, … that is free.
pub fn unused_name(conn: &Conn<'_>, owner_id: i64, base: &str) -> Result<String, ProjectError> {
    let mut candidate = base.to_string();
    let mut n = 2;
    while name_taken(conn, owner_id, &candidate)? {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    Ok(candidate)
}

/// Whether the owner has a project called `name`.
pub fn name_taken(conn: &Conn<'_>, owner_id: i64, name: &str) -> Result<bool, ProjectError> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM projects WHERE owner_id = $1 AND name = $2",
            params![owner_id, name],
            |_| Ok(()),
        )?
        .is_some())
}

/// Finds the caller's project by id or name. Another user's project is
/// reported exactly like a missing one.
pub fn resolve(conn: &Conn<'_>, owner_id: i64, reference: &str) -> Result<Project, ProjectError> {
    let row = |r: &Row| {
        Ok(Project {
            id: r.get(0)?,
            name: r.get(1)?,
            prompt: r.get(2)?,
            owner_id,
        })
    };
    let by_name = conn.query_opt(
        "SELECT id, name, prompt FROM projects WHERE owner_id = $1 AND name = $2",
        params![owner_id, reference],
        row,
    )?;
    let found = match (by_name, reference.parse::<i64>()) {
        (Some(p), _) => Some(p),
        (None, Ok(id)) => conn.query_opt(
            "SELECT id, name, prompt FROM projects WHERE owner_id = $1 AND id = $2",
            params![owner_id, id],
            row,
        )?,
        (None, Err(_)) => None,
    };
    found.ok_or_else(|| ProjectError::NotFound(reference.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_prompts() {
        assert_eq!(
            name_from_prompt("A todo app with title, due date"),
            "todo-app"
        );
        assert_eq!(
            name_from_prompt("a recipe box with title, ingredients and rating"),
            "recipe-box"
        );
        assert_eq!(
            name_from_prompt("please build me a habit tracker"),
            "habit-tracker"
        );
        assert_eq!(
            name_from_prompt("track my books: title, author"),
            "track-my-books"
        );
        assert_eq!(name_from_prompt("with the"), "with-the");
        assert_eq!(name_from_prompt("☃☃"), "app");
        assert_eq!(name_from_prompt(""), "app");
        assert_eq!(name_from_prompt("123"), "app-123");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", " x", "x ", "a\nb", "42", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "todo",
            "my app",
            "été-2",
            "v1.2",
            "a.b.c",
            "日本語",
            "naïve (2)",
        ] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn names_that_hide_or_fake_text_or_read_as_paths_are_refused() {
        let cases = [
            ("todo\u{202e}txt.exe", "invisible"),
            ("a\u{202a}b", "invisible"),
            ("a\u{2066}b\u{2069}", "invisible"),
            ("ad\u{200b}min", "invisible"),
            ("a\u{200d}b", "invisible"),
            ("\u{feff}todo", "invisible"),
            ("a\u{ad}b", "invisible"),
            ("a\u{e0041}b", "invisible"),
            ("a\u{2028}b", "invisible"),
            ("a\u{85}b", "control"),
            ("a\u{1b}[31mb", "control"),
            ("a/b", "`/`"),
            ("/etc", "`/`"),
            ("a\\b", "`/`"),
            ("..", "`..`"),
            ("a..b", "`..`"),
            ("../x", "`/`"),
        ];
        for (bad, why) in cases {
            let e = check_name(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains(NAME_RULE), "{bad:?}: {e}");
            assert!(!e.chars().any(is_hidden_char), "{bad:?}: {e:?}");
        }
    }
}
