//! Versions of a project's whole file set: adding one, reading one back, the
//! history, and what changed between two. Versions are only ever added, so
//! history is never rewritten.

use std::collections::BTreeMap;

use super::{Project, ProjectError};
use crate::db::{now_ms, Conn};
use crate::params;
use appforge_shared::protocol::{FileContent, SavedVersion, VersionInfo};

/// The file the `backend_code` column mirrors.
const BACKEND_ENTRY: &str = "app.py";

/// How a version fared in its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// It passed the checks by running.
    Passed,
    /// It was saved although it failed them (`--keep-broken`).
    Failed,
    /// They were not run (`--no-check`).
    Skipped,
}

impl CheckStatus {
    /// Its name in the store and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::Skipped => "skipped",
        }
    }

    /// Reads a stored name; versions saved before there were checks have
    /// none, and an unknown one is treated alike.
    pub fn parse(stored: &str) -> Option<CheckStatus> {
        match stored {
            "passed" => Some(CheckStatus::Passed),
            "failed" => Some(CheckStatus::Failed),
            "skipped" => Some(CheckStatus::Skipped),
            _ => None,
        }
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a version was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A model wrote a new app.
    Generate,
    /// A model changed the app as asked.
    Improve,
    /// A model repaired the app's last failure.
    Fix,
    /// The user's own files.
    Edit,
    /// An earlier version's files again.
    Rollback,
    /// A folder the user already had.
    Import,
}

impl Kind {
    /// Its name in the store and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Generate => "generate",
            Kind::Improve => "improve",
            Kind::Fix => "fix",
            Kind::Edit => "edit",
            Kind::Rollback => "rollback",
            Kind::Import => "import",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new version's origin and content.
pub struct NewVersion<'a> {
    /// How it was made.
    pub kind: Kind,
    /// The prompt behind it, or what was done.
    pub prompt: &'a str,
    /// The generation that made it, if any.
    pub generation_id: Option<i64>,
    /// Tokens the generation used.
    pub tokens_used: u64,
    /// The whole file set.
    pub files: &'a [FileContent],
    /// How it fared in its checks.
    pub checks: CheckStatus,
}

/// A version as it is run: its number, how it fared in its checks, and
/// its files.
#[derive(Debug, Clone)]
pub struct Release {
    /// Its number.
    pub version: i64,
    /// `passed`, `skipped`, `failed`, or none (saved before checks).
    pub check_status: Option<String>,
    /// Its files.
    pub files: Vec<FileContent>,
}

/// Adds the next version of a project and mirrors it into the project row.
pub fn add_version(tx: &Conn<'_>, project_id: i64, v: NewVersion<'_>) -> Result<i64, ProjectError> {
    let number = latest(tx, project_id)? + 1;
    let version_id: i64 = tx.query_one(
        "INSERT INTO project_versions (project_id, version, kind, prompt, generation_id, tokens_used, checks) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        params![project_id, number, v.kind.as_str(), v.prompt, v.generation_id, v.tokens_used, v.checks.as_str()],
        |r| r.get(0),
    )?;
    for f in v.files {
        tx.execute(
            "INSERT INTO project_files (version_id, path, content) VALUES ($1, $2, $3)",
            params![version_id, &f.path, &f.content],
        )?;
    }
    let backend = file_text(v.files, |p| p == BACKEND_ENTRY);
    let frontend = main_page(v.files);
    // Milliseconds, so two versions saved within a second still differ.
    tx.execute(
        "UPDATE projects SET backend_code = $1, frontend_code = $2, last_modified = $4 \
         WHERE id = $3",
        params![backend, frontend, project_id, now_ms()],
    )?;
    Ok(number)
}

/// Saves `files` as the next version unless they equal the newest one.
/// `base` is the version the change started from: if the project has moved
/// on since, the change is refused rather than silently undoing the newer one.
pub fn save_if_changed(
    tx: &Conn<'_>,
    project: &Project,
    base: Option<i64>,
    v: NewVersion<'_>,
) -> Result<SavedVersion, ProjectError> {
    tx.lock_project(project.id)?;
    let newest = latest(tx, project.id)?;
    if let Some(base) = base {
        if base != newest {
            return Err(ProjectError::Moved {
                name: project.name.clone(),
                base,
                newest,
            });
        }
    }
    let current = files_at(tx, project, newest)?;
    let changed = changed_paths(&current, v.files);
    let checks = v.checks;
    let version = match changed.is_empty() {
        true => newest,
        false => add_version(tx, project.id, v)?,
    };
    Ok(SavedVersion {
        project_id: project.id,
        name: project.name.clone(),
        version,
        saved: !changed.is_empty(),
        changed,
        check_status: checks.as_str().to_string(),
        checks: Vec::new(),
        restarted: false,
        docs_only: false,
    })
}

/// The newest version number of a project (0 if it has none).
pub fn latest(conn: &Conn<'_>, project_id: i64) -> Result<i64, ProjectError> {
    Ok(conn.query_one(
        "SELECT coalesce(max(version), 0) FROM project_versions WHERE project_id = $1",
        params![project_id],
        |r| r.get(0),
    )?)
}

/// The files of one version, sorted by path.
pub fn files_at(
    conn: &Conn<'_>,
    project: &Project,
    version: i64,
) -> Result<Vec<FileContent>, ProjectError> {
    let version_id: Option<i64> = conn.query_opt(
        "SELECT id FROM project_versions WHERE project_id = $1 AND version = $2",
        params![project.id, version],
        |r| r.get(0),
    )?;
    let Some(version_id) = version_id else {
        return Err(match latest(conn, project.id)? {
            0 => ProjectError::NoVersions(project.name.clone()),
            newest => ProjectError::NoSuchVersion {
                name: project.name.clone(),
                version,
                newest,
            },
        });
    };
    Ok(conn.query(
        "SELECT path, content FROM project_files WHERE version_id = $1 ORDER BY path",
        params![version_id],
        |r| {
            Ok(FileContent {
                path: r.get(0)?,
                content: r.get(1)?,
            })
        },
    )?)
}

/// The files of a project's newest version, sorted by path.
pub fn current_files(conn: &Conn<'_>, project: &Project) -> Result<Vec<FileContent>, ProjectError> {
    files_at(conn, project, latest(conn, project.id)?)
}

/// The newest version of a project, as it is run.
pub fn newest_release(conn: &Conn<'_>, project: &Project) -> Result<Release, ProjectError> {
    let version = latest(conn, project.id)?;
    Ok(Release {
        version,
        check_status: check_status(conn, project.id, version)?,
        files: files_at(conn, project, version)?,
    })
}

/// How a version fared in its checks.
pub fn check_status(
    conn: &Conn<'_>,
    project_id: i64,
    version: i64,
) -> Result<Option<String>, ProjectError> {
    Ok(conn
        .query_opt(
            "SELECT checks FROM project_versions WHERE project_id = $1 AND version = $2",
            params![project_id, version],
            |r| r.get(0),
        )?
        .flatten())
}

/// Every version of a project, oldest first.
pub fn history(conn: &Conn<'_>, project_id: i64) -> Result<Vec<VersionInfo>, ProjectError> {
    Ok(conn.query(
        "SELECT v.version, v.kind, v.prompt, v.tokens_used, v.generation_id, v.created_at, \
                (SELECT count(*) FROM project_files f WHERE f.version_id = v.id), v.checks \
         FROM project_versions v WHERE v.project_id = $1 ORDER BY v.version",
        params![project_id],
        |r| {
            Ok(VersionInfo {
                version: r.get(0)?,
                kind: r.get(1)?,
                prompt: r.get(2)?,
                tokens_used: r.get::<i64>(3)?.max(0) as u64,
                generation_id: r.get(4)?,
                created_at: r.get(5)?,
                files: r.get::<i64>(6)?.max(0) as u64,
                check_status: r.get(7)?,
            })
        },
    )?)
}

/// The paths added, changed or removed between two file sets, sorted.
pub fn changed_paths(old: &[FileContent], new: &[FileContent]) -> Vec<String> {
    let old: BTreeMap<&str, &str> = old.iter().map(|f| (&*f.path, &*f.content)).collect();
    let new: BTreeMap<&str, &str> = new.iter().map(|f| (&*f.path, &*f.content)).collect();
    let mut paths: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|p| old.get(*p) != new.get(*p))
        .map(|p| p.to_string())
        .collect();
    paths.sort();
    paths.dedup();
    paths
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_paths_name_additions_changes_and_removals() {
        let old = [
            FileContent::new("a", "1"),
            FileContent::new("b", "2"),
            FileContent::new("c", "3"),
        ];
        let new = [
            FileContent::new("d", "4"),
            FileContent::new("b", "2"),
            FileContent::new("a", "x"),
        ];
        assert_eq!(changed_paths(&old, &new), ["a", "c", "d"]);
        assert!(changed_paths(&old, &old).is_empty());
    }

    #[test]
    fn the_main_page_prefers_the_flask_template() {
        let files = [
            FileContent::new("static/other.html", "o"),
            FileContent::new("templates/index.html", "t"),
        ];
        assert_eq!(main_page(&files), "t");
        assert_eq!(main_page(&files[..1]), "o");
        assert_eq!(main_page(&[]), "");
    }
}
