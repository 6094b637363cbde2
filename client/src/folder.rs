//! Reading a folder to import: the text files that belong in a project,
//! what was left out and why, and refusals that name the path. The client
//! reads the folder, as the user it runs as; the daemon never opens a
//! user's path.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use appforge_shared::protocol::FileContent;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// Most files an import may hold: the daemon's limit for a version.
pub const MAX_FILES: usize = 200;
/// Largest file, text or binary, in bytes: the daemon's limit for a file.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most bytes of text an import may hold; the request must fit in one
/// frame of the socket (16 MiB) with room to spare.
pub const MAX_TOTAL_BYTES: u64 = 8 * 1024 * 1024;

/// Why a folder cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The folder itself cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// What reading said.
        source: std::io::Error,
    },
    /// The path given is not a folder.
    #[error("{0} is not a folder; give the folder that holds the app")]
    NotAFolder(PathBuf),
    /// A symbolic link points outside the folder.
    #[error(
        "{path} is a symbolic link to {target}, outside the folder; nothing was imported \
         (copy what it points to into the folder, or remove the link)"
    )]
    LinkLeaves {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A file is larger than a project file may be.
    #[error(
        "{path} is a {kind} file of {size} bytes, over the limit of {MAX_FILE_BYTES}; nothing \
         was imported (remove it, or name it in .gitignore to leave it out)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// `text` or `binary`.
        kind: &'static str,
        /// Its size in bytes.
        size: u64,
    },
    /// A name that is not UTF-8 cannot travel as a project path.
    #[error("{0} has a name that is not UTF-8; nothing was imported (rename it)")]
    BadName(PathBuf),
    /// Too many files.
    #[error(
        "{folder} has more than {MAX_FILES} files to import; nothing was imported (name what \
         is not part of the app in .gitignore)"
    )]
    TooManyFiles {
        /// The folder.
        folder: PathBuf,
    },
    /// Too many bytes.
    #[error(
        "{folder} holds more than {MAX_TOTAL_BYTES} bytes of text to import; nothing was \
         imported (name what is not part of the app in .gitignore)"
    )]
    TooManyBytes {
        /// The folder.
        folder: PathBuf,
    },
}

/// Something in the folder that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Its path inside the folder, `/`-separated; a folder's ends in `/`.
    pub path: String,
    /// Why, in a few words.
    pub why: &'static str,
}

/// A folder as it is imported.
#[derive(Debug, Default)]
pub struct Folder {
    /// The text files, by relative path, sorted.
    pub files: Vec<FileContent>,
    /// What was left out, in the order met.
    pub left_out: Vec<LeftOut>,
}

/// Reads `root`'s text files, leaving out what does not belong in a
/// project, and refusing the whole folder for what cannot be imported.
pub fn read(root: &Path) -> Result<Folder, FolderError> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FolderError::Unreadable { path, source }
    };
    let meta = fs::metadata(root).map_err(unreadable(root))?;
    if !meta.is_dir() {
        return Err(FolderError::NotAFolder(root.to_path_buf()));
    }
    // Walked by its real path: `.gitignore` patterns match against it, and
    // a link's target is inside when it starts with it.
    let canonical = fs::canonicalize(root).map_err(unreadable(root))?;
    let mut walk = Walk {
        root: canonical.clone(),
        canonical: canonical.clone(),
        ignores: Vec::new(),
        read: Folder::default(),
        bytes: 0,
    };
    walk.dir(&canonical, "")?;
    walk.read.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk.read)
}

struct Walk {
    root: PathBuf,
    canonical: PathBuf,
    /// The `.gitignore` files of the folders being walked, outermost first.
    ignores: Vec<Gitignore>,
    read: Folder,
    bytes: u64,
}

impl Walk {
    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<(), FolderError> {
        let unreadable = |source| FolderError::Unreadable {
            path: dir.to_path_buf(),
            source,
        };
        let gitignore = dir.join(".gitignore");
        let pushed = gitignore.is_file() && {
            let mut builder = GitignoreBuilder::new(dir);
            // A line it cannot parse is skipped, as git does.
            let _ = builder.add(&gitignore);
            match builder.build() {
                Ok(ignore) => {
                    self.ignores.push(ignore);
                    true
                }
                Err(_) => false,
            }
        };
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
            .map_err(unreadable)?
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            self.entry(&entry.path(), prefix)?;
        }
        if pushed {
            self.ignores.pop();
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, prefix: &str) -> Result<(), FolderError> {
        let name = path.file_name().unwrap_or_default();
        let Some(name) = name.to_str() else {
            return Err(FolderError::BadName(path.to_path_buf()));
        };
        let relative = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(path).map_err(|source| FolderError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let mut is_dir = meta.is_dir();
        if meta.file_type().is_symlink() {
            let target = match fs::canonicalize(path) {
                Ok(target) => target,
                Err(_) => return self.leave_out(relative, "a link that points nowhere"),
            };
            if !target.starts_with(&self.canonical) {
                let target = fs::read_link(path).unwrap_or(target);
                return Err(FolderError::LinkLeaves {
                    path: path.to_path_buf(),
                    target,
                });
            }
            if target.is_dir() {
                // Its target, inside the folder, is imported where it is.
                return self.leave_out(relative + "/", "a link to a folder");
            }
            is_dir = false;
        }
        if self.ignored(path, is_dir) {
            let shown = if is_dir { relative + "/" } else { relative };
            return self.leave_out(shown, "named in .gitignore");
        }
        if is_dir {
            if let Some(why) = left_out_dir(path, name) {
                return self.leave_out(relative + "/", why);
            }
            return self.dir(path, &format!("{relative}/"));
        }
        if !meta.is_file() && !meta.file_type().is_symlink() {
            return self.leave_out(relative, "not a regular file");
        }
        if name.ends_with(".pyc") || name.ends_with(".pyo") {
            return self.leave_out(relative, "compiled Python");
        }
        self.file(path, relative)
    }

    fn file(&mut self, path: &Path, relative: String) -> Result<(), FolderError> {
        let unreadable = |source| FolderError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        // One byte over the limit is enough to know it is over.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        let binary = bytes.contains(&0) || std::str::from_utf8(&bytes).is_err();
        if bytes.len() as u64 > MAX_FILE_BYTES {
            let size = fs::metadata(path)
                .map(|m| m.len())
                .unwrap_or(bytes.len() as u64);
            return Err(FolderError::TooLarge {
                path: path.to_path_buf(),
                kind: if binary { "binary" } else { "text" },
                size,
            });
        }
        if binary {
            return self.leave_out(relative, "binary: only text files are stored");
        }
        if self.read.files.len() >= MAX_FILES {
            return Err(FolderError::TooManyFiles {
                folder: self.root.clone(),
            });
        }
        self.bytes += bytes.len() as u64;
        if self.bytes > MAX_TOTAL_BYTES {
            return Err(FolderError::TooManyBytes {
                folder: self.root.clone(),
            });
        }
        let content = String::from_utf8(bytes).expect("checked to be UTF-8 above");
        self.read.files.push(FileContent::new(relative, content));
        Ok(())
    }

    /// Whether the innermost `.gitignore` with a say on `path` ignores it.
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        for ignore in self.ignores.iter().rev() {
            match ignore.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }

    /// Notes that `path` is not imported; never fails, but reads as the
    /// end of the walk of an entry.
    fn leave_out(&mut self, path: String, why: &'static str) -> Result<(), FolderError> {
        self.read.left_out.push(LeftOut { path, why });
        Ok(())
    }
}

/// Why a folder never belongs in a project, if it does not: version
/// control, virtual environments, caches, instance data, build output, Node
/// packages.
fn left_out_dir(path: &Path, name: &str) -> Option<&'static str> {
    if path.join("pyvenv.cfg").is_file() {
        return Some("a virtual environment");
    }
    if name.ends_with(".egg-info") {
        return Some("build output");
    }
    match name {
        ".git" | ".hg" | ".svn" => Some("version control"),
        "venv" | ".venv" => Some("a virtual environment"),
        "__pycache__" | ".pytest_cache" | ".mypy_cache" => Some("a cache"),
        "instance" => Some("the app's instance data"),
        "build" | "dist" => Some("build output"),
        "node_modules" => Some("Node packages"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, content: &[u8]) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    #[test]
    fn leaves_out_what_is_not_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "app.py", b"print('hi')\n");
        write(root, "templates/index.html", b"<p>hi</p>\n");
        write(root, ".git/HEAD", b"ref: refs/heads/main\n");
        write(root, "env/pyvenv.cfg", b"home = /usr\n");
        write(root, "__pycache__/app.cpython-311.pyc", b"\0\0");
        write(root, "pkg.egg-info/PKG-INFO", b"x\n");
        write(root, "secret.txt", b"hush\n");
        write(root, "logs/today.log", b"x\n");
        write(root, ".gitignore", b"secret.txt\nlogs/\n");
        write(root, "static/logo.png", b"\x89PNG\r\n\x1a\n\0\0");
        let read = read(root).unwrap();
        let paths: Vec<&str> = read.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [".gitignore", "app.py", "templates/index.html"]);
        let left: Vec<&str> = read.left_out.iter().map(|l| l.path.as_str()).collect();
        for gone in [
            ".git/",
            "env/",
            "__pycache__/",
            "pkg.egg-info/",
            "secret.txt",
            "logs/",
            "static/logo.png",
        ] {
            assert!(left.contains(&gone), "{gone} not in {left:?}");
        }
    }

    #[test]
    fn gitignore_patterns_hold_below_their_folder_and_nested_ones_win() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".gitignore", b"sub/b.txt\n*.log\n");
        write(root, "sub/b.txt", b"b\n");
        write(root, "sub/c.txt", b"c\n");
        write(root, "sub/keep.log", b"k\n");
        write(root, "sub/.gitignore", b"!keep.log\n");
        write(root, "other.log", b"o\n");
        let read = read(root).unwrap();
        let paths: Vec<&str> = read.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [".gitignore", "sub/.gitignore", "sub/c.txt", "sub/keep.log"]
        );
    }

    #[test]
    fn refuses_a_link_out_and_a_large_file() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "app.py", b"x = 1\n");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(matches!(err, FolderError::LinkLeaves { .. }), "{err}");
        assert!(err.to_string().contains("/out"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "big.bin",
            &vec![0u8; MAX_FILE_BYTES as usize + 1],
        );
        let err = read(dir.path()).unwrap_err();
        assert!(
            matches!(err, FolderError::TooLarge { kind: "binary", .. }),
            "{err}"
        );
    }

    #[test]
    fn refuses_too_many_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..=MAX_FILES {
            write(dir.path(), &format!("f{n}.txt"), b"x\n");
        }
        let err = read(dir.path()).unwrap_err();
        assert!(matches!(err, FolderError::TooManyFiles { .. }), "{err}");
    }
}
