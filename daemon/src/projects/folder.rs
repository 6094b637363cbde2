//! A project's run folder on disk: its files, written where the app runs.
//!
//! Files of an earlier version that are gone now are removed, but what the
//! app itself made there (its SQLite file, uploads) is kept. Nothing is ever
//! written outside the folder: paths were checked when they were saved, and
//! here no folder on the way may be a symlink, whatever the app left behind.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use appforge_shared::protocol::FileContent;

use super::path::SafePath;

/// Lists the files appforge wrote, so the next write can remove stale ones.
const MANIFEST: &str = ".appforge-files";

/// Writes `files` into `dir` (created 0700 if missing).
pub fn write(dir: &Path, files: &[FileContent]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode_private()
        .create(dir)?;
    let previous: BTreeSet<String> = std::fs::read_to_string(dir.join(MANIFEST))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for f in files {
        let target = inside(dir, &checked(&f.path)?)?;
        write_atomically(&target, f.content.as_bytes())?;
    }
    let now: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for stale in previous.difference(&now) {
        // The manifest is a file in the app's folder: the app may have written it.
        let Ok(stale) = SafePath::new(stale) else {
            continue;
        };
        if let Ok(path) = inside(dir, &stale) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    forget_compiled_python(dir, files)?;
    let manifest: String = now.iter().map(|p| format!("{p}\n")).collect();
    write_atomically(&dir.join(MANIFEST), manifest.as_bytes())
}

/// Removes the `__pycache__` folders beside the Python files written:
/// Python trusts a cached module whose source has the same size and the
/// same modification second, so a version written within a second of the
/// last, its files of equal size, would otherwise run the old code.
fn forget_compiled_python(dir: &Path, files: &[FileContent]) -> std::io::Result<()> {
    let folders: BTreeSet<PathBuf> = files
        .iter()
        .filter(|f| f.path.ends_with(".py"))
        .filter_map(|f| inside(dir, &checked(&f.path).ok()?).ok())
        .filter_map(|file| file.parent().map(|p| p.join("__pycache__")))
        .collect();
    for cache in folders {
        // The app may have put anything there: a folder is removed with
        // what it holds, anything else (a link included) alone.
        let removed = match std::fs::symlink_metadata(&cache) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&cache),
            Ok(_) => std::fs::remove_file(&cache),
            Err(e) => Err(e),
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The path, checked, or an `InvalidInput` error that says why not.
fn checked(path: &str) -> std::io::Result<SafePath> {
    SafePath::new(path).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// `dir/relative`, after making sure every folder on the way is a real
/// folder inside `dir` (created if missing) and not a symlink.
fn inside(dir: &Path, relative: &SafePath) -> std::io::Result<PathBuf> {
    let refuse = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("refusing to write `{relative}`: {why}"),
        )
    };
    let mut current = dir.to_path_buf();
    let components: Vec<&str> = relative.components().collect();
    for (i, component) in components.iter().enumerate() {
        current.push(component);
        let last = i + 1 == components.len();
        match std::fs::symlink_metadata(&current) {
            // The file itself may be a symlink: the rename replaces it.
            Ok(meta) if !last && meta.file_type().is_symlink() => {
                return Err(refuse("a symlink is in the way"));
            }
            Ok(meta) if !last && !meta.is_dir() => {
                return Err(refuse("a file is in the way of a folder"));
            }
            Ok(meta) if last && meta.is_dir() => {
                return Err(refuse("a folder is in the way of the file"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !last {
                    std::fs::DirBuilder::new().mode_private().create(&current)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(current)
}

/// Writes through a temporary file and a rename, so a reader never sees half
/// a file and a symlink at the target is replaced, not followed.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".appforge-")
        .tempfile_in(parent)?;
    tmp.write_all(bytes)?;
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

trait PrivateDirs {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateDirs for std::fs::DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_python_beside_a_written_file_goes_and_a_planted_link_goes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project_1");
        write(&root, &[FileContent::new("app.py", "one")]).unwrap();
        std::fs::create_dir(root.join("__pycache__")).unwrap();
        std::fs::write(root.join("__pycache__/app.cpython-311.pyc"), "old").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("keep"), "k").unwrap();
        std::fs::create_dir(root.join("pkg")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("pkg/__pycache__")).unwrap();

        write(
            &root,
            &[
                FileContent::new("app.py", "two"),
                FileContent::new("pkg/mod.py", "x"),
            ],
        )
        .unwrap();
        assert!(!root.join("__pycache__").exists());
        assert!(root.join("pkg/__pycache__").symlink_metadata().is_err());
        assert!(
            elsewhere.join("keep").exists(),
            "a link's target is left alone"
        );
    }

    #[test]
    fn stale_files_go_and_the_apps_own_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project_1");
        write(
            &root,
            &[
                FileContent::new("app.py", "1"),
                FileContent::new("templates/old.html", "o"),
            ],
        )
        .unwrap();
        std::fs::write(root.join("data.db"), "rows").unwrap();
        write(
            &root,
            &[
                FileContent::new("app.py", "2"),
                FileContent::new("templates/index.html", "i"),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(root.join("app.py")).unwrap(), "2");
        assert!(!root.join("templates/old.html").exists());
        assert!(root.join("templates/index.html").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("data.db")).unwrap(),
            "rows"
        );
    }

    #[test]
    fn a_symlink_left_in_the_folder_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project_1");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("templates")).unwrap();
        let err = write(&root, &[FileContent::new("templates/index.html", "x")]).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.join("index.html").exists());
        // A symlink at the file itself is replaced, not written through.
        std::os::unix::fs::symlink(outside.join("target"), root.join("app.py")).unwrap();
        write(&root, &[FileContent::new("app.py", "ok")]).unwrap();
        assert!(!outside.join("target").exists());
        assert_eq!(std::fs::read_to_string(root.join("app.py")).unwrap(), "ok");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", ""] {
            assert!(
                write(dir.path(), &[FileContent::new(bad, "x")]).is_err(),
                "{bad}"
            );
        }
    }
}
