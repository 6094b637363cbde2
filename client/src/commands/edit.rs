//! `edit`: check the files out to a temporary folder, open the editor on
//! them, and send back what changed as a new version.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use appforge_shared::protocol::{
    EditRequest, FileContent, Reply, Request, SavedVersion, ShowRequest,
};

use super::accounts::unexpected;
use super::saved::{restarted_note, saved_json};
use super::Ctx;
use crate::cli::EditArgs;
use crate::daemon::DaemonConn;
use crate::error::ClientError;
use crate::output::emit;
use crate::session;

/// `appforge edit P [--file PATH] [--stdin]`
pub async fn edit(ctx: &mut Ctx, args: EditArgs) -> Result<(), ClientError> {
    let reply = ctx
        .call(Request::ShowProject(ShowRequest {
            project: args.project.clone(),
            version: None,
            file: None,
        }))
        .await?;
    let Reply::Project(detail) = reply else {
        return Err(unexpected(&reply));
    };
    let (project_id, base_version) = (detail.summary.id, detail.version);
    if let (Some(path), true) = (&args.file, args.stdin) {
        let files = replace(detail.files, path, read_stdin()?);
        let saved = save(ctx, project_id, base_version, files, &args.checks).await?;
        return report(ctx, saved);
    }
    let checkout = Checkout::create(&detail.files)?;
    // An editor that fails means "abort": the checkout goes with it.
    checkout.open_editor(args.file.as_deref())?;
    let result = match checkout.read_back() {
        Ok(files) => save(ctx, project_id, base_version, files, &args.checks).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(saved) => report(ctx, saved),
        // Whatever went wrong, the user's work is not thrown away.
        Err(e) => Err(e.with_note(&format!(
            "your edited files are kept in {}",
            checkout.keep().display()
        ))),
    }
}

/// Sends the edited file set; the daemon saves it if it changed anything.
async fn save(
    ctx: &mut Ctx,
    project_id: i64,
    base_version: i64,
    files: Vec<FileContent>,
    checks: &crate::cli::CheckArgs,
) -> Result<SavedVersion, ClientError> {
    // The editor may have been open longer than the daemon waits for a
    // silent client, so ask on a fresh connection.
    ctx.conn = DaemonConn::connect(&ctx.socket, session::load()).await?;
    let request = Request::EditProject(EditRequest {
        project: project_id.to_string(),
        base_version,
        files,
        checks: checks.options(),
    });
    match ctx.call(request).await? {
        Reply::Saved(saved) => Ok(saved),
        other => Err(unexpected(&other)),
    }
}

fn report(ctx: &Ctx, saved: SavedVersion) -> Result<(), ClientError> {
    emit(ctx.json, saved_json(&saved), || match saved.saved {
        true => format!(
            "{}\nSaved `{}` version {} ({} changed: {}).{}",
            match saved.docs_only {
                true => "checks skipped: only documentation changed".to_string(),
                false => super::generate::checks_line(&saved.check_status, &saved.checks),
            },
            saved.name,
            saved.version,
            saved.changed.len(),
            saved.changed.join(", "),
            restarted_note(&saved)
        ),
        false => format!(
            "No changes; `{}` stays at version {}.",
            saved.name, saved.version
        ),
    });
    Ok(())
}

/// The file set with `path` set to `content`, added if it was not there.
fn replace(mut files: Vec<FileContent>, path: &str, content: String) -> Vec<FileContent> {
    match files.iter_mut().find(|f| f.path == path) {
        Some(f) => f.content = content,
        None => files.push(FileContent {
            path: path.to_string(),
            content,
        }),
    }
    files
}

fn read_stdin() -> Result<String, ClientError> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| ClientError::Local(format!("cannot read standard input: {e}")))?;
    // An empty input is almost always a mistake (a wrong redirection, a
    // pipe whose writer failed); saving it would wipe the file.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ClientError::Usage(
            "standard input is empty; nothing was saved (pipe the file's new content into \
             `appforge edit P --file PATH --stdin`)"
                .into(),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        ClientError::Usage("standard input is not UTF-8 text; only text files are kept".into())
    })
}

/// A project's files written out to a private temporary folder.
struct Checkout {
    dir: tempfile::TempDir,
    /// The paths written, so a file deleted in the editor is known as removed.
    original: BTreeSet<String>,
}

impl Checkout {
    fn create(files: &[FileContent]) -> Result<Checkout, ClientError> {
        let local =
            |e: std::io::Error| ClientError::Local(format!("cannot check the files out: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("appforge-edit-")
            .tempdir()
            .map_err(local)?;
        for f in files {
            let target = dir.path().join(safe_relative(&f.path)?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(local)?;
            }
            std::fs::write(&target, &f.content).map_err(local)?;
        }
        Ok(Checkout {
            dir,
            original: files.iter().map(|f| f.path.clone()).collect(),
        })
    }

    /// Runs `$VISUAL`, else `$EDITOR`, else `vi` on one file or on all of
    /// them, through the shell so an editor with arguments (`code --wait`)
    /// works as it does for git.
    fn open_editor(&self, only: Option<&str>) -> Result<(), ClientError> {
        let editor = ["VISUAL", "EDITOR"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "vi".to_string());
        let targets: Vec<String> = match only {
            Some(path) => {
                let target = self.dir.path().join(safe_relative(path)?);
                if !target.exists() {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            ClientError::Local(format!("cannot create {path}: {e}"))
                        })?;
                    }
                }
                vec![path.to_string()]
            }
            None => self.original.iter().cloned().collect(),
        };
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$@\""))
            .arg("sh")
            .args(&targets)
            .current_dir(self.dir.path())
            .status()
            .map_err(|e| ClientError::Local(format!("cannot run the editor `{editor}`: {e}")))?;
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(ClientError::Local(format!(
                "the editor `{editor}` {how}; nothing was saved"
            )));
        }
        Ok(())
    }

    /// The files as the editor left them: changed, added or removed.
    fn read_back(&self) -> Result<Vec<FileContent>, ClientError> {
        let mut files = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| ClientError::Local(format!("cannot read {}: {e}", dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| ClientError::Local(e.to_string()))?;
                let path = entry.path();
                let relative = relative_path(self.dir.path(), &path);
                let kind = entry
                    .file_type()
                    .map_err(|e| ClientError::Local(e.to_string()))?;
                if kind.is_dir() {
                    if !is_editor_leftover(&relative) || self.original_under(&relative) {
                        stack.push(path);
                    }
                    continue;
                }
                // Symlinks and other odd entries are not project files.
                if !kind.is_file() {
                    continue;
                }
                if !self.original.contains(&relative) && is_editor_leftover(&relative) {
                    continue;
                }
                let bytes = std::fs::read(&path)
                    .map_err(|e| ClientError::Local(format!("cannot read {relative}: {e}")))?;
                let content = String::from_utf8(bytes).map_err(|_| {
                    ClientError::Usage(format!(
                        "{relative} is not UTF-8 text, and only text files are kept; nothing was saved"
                    ))
                })?;
                files.push(FileContent {
                    path: relative,
                    content,
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn original_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.original.iter().any(|p| p.starts_with(&prefix))
    }

    /// Keeps the folder on disk (the save was refused) and returns its path.
    fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

/// A stored path as a relative path that stays inside the checkout.
fn safe_relative(path: &str) -> Result<PathBuf, ClientError> {
    let p = Path::new(path);
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(ClientError::Usage(format!(
            "`{path}` is not a relative path inside the project"
        )));
    }
    Ok(p.to_path_buf())
}

fn relative_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Files editors and tools leave behind: backups, swap files, caches.
fn is_editor_leftover(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swo")
        || name.ends_with(".pyc")
        || (name.starts_with(".#"))
        || (name.starts_with('#') && name.ends_with('#'))
        || name == "__pycache__"
        || name == ".DS_Store"
        || name == "4913"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_reads_back_changes_additions_and_removals() {
        let files = [
            FileContent::new("app.py", "x = 1\n"),
            FileContent::new("templates/index.html", "<p>\n"),
            FileContent::new("gone.txt", "bye\n"),
        ];
        let checkout = Checkout::create(&files).unwrap();
        let root = checkout.dir.path();
        std::fs::write(root.join("app.py"), "x = 2\n").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::write(root.join("new.py"), "y = 1\n").unwrap();
        std::fs::write(root.join("app.py~"), "backup").unwrap();
        std::fs::write(root.join(".app.py.swp"), "swap").unwrap();
        std::fs::create_dir(root.join("__pycache__")).unwrap();
        std::fs::write(root.join("__pycache__/app.pyc"), "").unwrap();
        let back = checkout.read_back().unwrap();
        assert_eq!(
            back,
            [
                FileContent::new("app.py", "x = 2\n"),
                FileContent::new("new.py", "y = 1\n"),
                FileContent::new("templates/index.html", "<p>\n")
            ]
        );
    }

    #[test]
    fn paths_that_leave_the_checkout_are_refused() {
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert!(safe_relative("templates/index.html").is_ok());
    }

    #[test]
    fn replacing_a_file_changes_it_or_adds_it() {
        let files = vec![FileContent::new("a", "1")];
        assert_eq!(
            replace(files.clone(), "a", "2".into()),
            [FileContent::new("a", "2")]
        );
        assert_eq!(
            replace(files, "b", "3".into()),
            [FileContent::new("a", "1"), FileContent::new("b", "3")]
        );
    }
}
