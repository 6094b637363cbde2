//! Packaging a project for export: the files that make it deployable on its
//! own (Dockerfile, README, smoke test, CI workflow; on request Kubernetes
//! manifests and a Compose file, see [`ExportTarget`]) and deterministic
//! `.zip`/`.tar.gz` archives of the whole set.
//!
//! Everything here is a pure function of the project's name, prompt and
//! files, so the same project always exports to the same bytes: an archive
//! can be compared, cached or checksummed, and the Dockerfile the supervisor
//! writes is the one the archive holds.
//!
//! The files' text lives in `daemon/templates/export/` and is rendered by
//! [`crate::texts`]; this module decides what goes into it.

use appforge_shared::protocol::{ArchiveFormat, ExportTarget, FileContent};
use serde::Serialize;

use std::io::{Cursor, Write};

use super::path::SafePath;
use super::settings::Expected;
use super::slug;
use crate::process::shape::{self, Target};
use crate::process::{launch, requirements};
use crate::texts;

/// Port the container serves on.
const PORT: u16 = 8000;
/// The folder of the container's volume, for apps that honour `APP_DATABASE`.
const DATA_DIR: &str = "/data";
/// Unprivileged user the container runs as; fixed so volume ownership is predictable.
const APP_UID: u32 = 10001;
/// The Dockerfile's `WORKDIR`, where the app's code is.
const APP_DIR: &str = "/app";
/// Longest Kubernetes object name [`k8s_name`] returns (a DNS label's).
const MAX_K8S_NAME: usize = 63;
/// The Kubernetes manifests `--target k8s` adds, by template and path.
const K8S_FILES: [(&str, &str); 3] = [
    ("export/k8s/deployment.yaml", "deploy/k8s/deployment.yaml"),
    ("export/k8s/pvc.yaml", "deploy/k8s/pvc.yaml"),
    ("export/k8s/service.yaml", "deploy/k8s/service.yaml"),
];
/// Archive mtime: 1980-01-01 00:00:00 UTC, the earliest time a zip can hold.
const EPOCH_1980: u64 = 315_532_800;
/// Longest stem [`archive_root`] returns.
const MAX_ROOT: usize = 64;
/// gunicorn versions the image installs, unless requirements.txt names its own
/// (23 fixed request-smuggling bugs).
const GUNICORN: &str = "gunicorn>=23,<28";

/// Why an archive could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A path that must not go into an archive.
    #[error("refusing to export `{path}`: {reason}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files with one path.
    #[error("`{0}` appears twice in the export")]
    Duplicate(String),
    /// Writing the tar or gzip stream failed.
    #[error("could not write the archive: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the zip failed.
    #[error("could not write the zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// What the generated files need to know about the app.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AppShape {
    /// gunicorn's `module:variable` or `module:factory()`.
    target: String,
    /// Whether that module lives in `src/` (gunicorn then adds it to the
    /// import path).
    src: bool,
    /// How to run it locally, on Flask's default address.
    run_line: String,
    /// The module the smoke test imports.
    module: String,
    /// Path the health check asks for.
    health: &'static str,
    /// Whether the app reads its database path from `APP_DATABASE`.
    uses_app_database: bool,
    /// Whether requirements.txt already installs gunicorn (then ours would conflict).
    has_gunicorn: bool,
}

impl AppShape {
    /// Reads the shape from the project's files; heuristics, since Python
    /// is free text.
    fn of(files: &[FileContent]) -> Self {
        // A project whose target cannot be told fails its checks and does
        // not run; its export falls back on the convention, and a wrong
        // guess shows up in the smoke test.
        let target = shape::target(files).unwrap_or_else(|_| Target::convention());
        let uses_app_database = files
            .iter()
            .filter(|f| f.path.ends_with(".py") && !is_test_file(&f.path))
            .any(|f| f.content.contains("APP_DATABASE"));
        let has_gunicorn = requirements::of(files).is_ok_and(|r| {
            r.lines().any(|l| {
                let l = l.trim_start().to_ascii_lowercase();
                l.strip_prefix("gunicorn").is_some_and(|rest| {
                    !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
            })
        });
        AppShape {
            target: target.wsgi(),
            src: target.in_src,
            run_line: launch::shell_line(&target, "5000"),
            module: target.module.clone(),
            health: launch::health_path(files),
            uses_app_database,
            has_gunicorn,
        }
    }
}

/// The export's `requirements.txt` for a project without one: what the
/// app is installed with (its `pyproject.toml`'s dependencies, or Flask).
fn requirements_txt(files: &[FileContent]) -> String {
    requirements::of(files).unwrap_or_else(|_| texts::render("export/requirements.txt", &()))
}

/// Whether pytest would collect `path`; those set `APP_DATABASE` rather than honour it.
fn is_test_file(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    path.starts_with("tests/")
        || path.contains("/tests/")
        || file.starts_with("test_")
        || file.ends_with("_test.py")
        || file == "conftest.py"
}

/// Paths compare without ASCII case: `readme.md` and `README.md` would be one
/// file on a case-insensitive file system.
fn same_path(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Which of the optional deployment files an export holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Targets {
    /// `deploy/k8s/` and the CI workflow's deploy job.
    k8s: bool,
    /// `compose.yaml`.
    compose: bool,
}

impl Targets {
    /// The set asked for; order and repeats do not matter.
    fn of(targets: &[ExportTarget]) -> Self {
        Targets {
            k8s: targets.contains(&ExportTarget::K8s),
            compose: targets.contains(&ExportTarget::Compose),
        }
    }
}

/// The files an export adds to the project's own, and `README.md`, which
/// replaces the project's with ours that quotes it; `targets` adds the files
/// for those platforms (see [`ExportTarget`]).
///
/// A project file with the same path (ignoring ASCII case) as one of ours wins
/// and ours is left out, since it is the user's code; the exception is
/// `README.md`, whose text goes into ours under "About this app". A project
/// without `requirements.txt` gets one that lists Flask, as everything here
/// installs from it. The app's `settings` are named in the README, in
/// `compose.yaml` and in the Deployment (from a Secret), never valued.
pub fn deployment_files(
    name: &str,
    prompt: &str,
    files: &[FileContent],
    targets: &[ExportTarget],
    settings: &[Expected],
) -> Vec<FileContent> {
    let shape = AppShape::of(files);
    let root = archive_root(name);
    let targets = Targets::of(targets);
    let readmes: Vec<&FileContent> = files
        .iter()
        .filter(|f| same_path(&f.path, "README.md"))
        .collect();
    let mut ours = vec![
        ("Dockerfile", render_dockerfile(&shape)),
        (".dockerignore", render_dockerignore(targets)),
        (
            "README.md",
            render_readme(name, prompt, &root, &shape, &readmes, targets, settings),
        ),
        ("test_smoke.py", render_smoke_test(&shape)),
        (".github/workflows/ci.yml", render_ci(&root, targets)),
        ("requirements.txt", requirements_txt(files)),
    ];
    if targets.k8s {
        let text = DeployText::new(&root, &shape, settings);
        ours.extend(
            K8S_FILES
                .iter()
                .map(|(template, path)| (*path, texts::render(template, &text))),
        );
    }
    if targets.compose {
        ours.push((
            "compose.yaml",
            texts::render(
                "export/compose.yaml",
                &DeployText::new(&root, &shape, settings),
            ),
        ));
    }
    ours.into_iter()
        .filter(|(path, _)| *path == "README.md" || !files.iter().any(|f| same_path(&f.path, path)))
        .map(|(path, content)| FileContent {
            path: path.to_string(),
            content,
        })
        .collect()
}

/// Everything an export holds: the project's files and [`deployment_files`],
/// merged by its rule and sorted by path.
pub fn export_files(
    name: &str,
    prompt: &str,
    files: &[FileContent],
    targets: &[ExportTarget],
    settings: &[Expected],
) -> Vec<FileContent> {
    let mut all: Vec<FileContent> = files
        .iter()
        // Their text is inside our README.md.
        .filter(|f| !same_path(&f.path, "README.md"))
        .cloned()
        .collect();
    all.extend(deployment_files(name, prompt, files, targets, settings));
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all
}

/// The Dockerfile an export of `files` holds (unless the project has its own).
pub fn dockerfile(files: &[FileContent]) -> String {
    render_dockerfile(&AppShape::of(files))
}

/// The Dockerfile for an app of that shape.
fn render_dockerfile(shape: &AppShape) -> String {
    texts::render(
        "export/Dockerfile",
        &DockerfileText {
            port: PORT,
            data_dir: DATA_DIR,
            uid: APP_UID,
            gunicorn: GUNICORN,
            has_gunicorn: shape.has_gunicorn,
            uses_app_database: shape.uses_app_database,
            health: shape.health,
            target: &shape.target,
            src: shape.src,
        },
    )
}

/// What `templates/export/Dockerfile.j2` is filled in with.
#[derive(Serialize)]
struct DockerfileText<'a> {
    port: u16,
    data_dir: &'a str,
    uid: u32,
    /// The gunicorn requirement the image installs, unless `has_gunicorn`.
    gunicorn: &'a str,
    has_gunicorn: bool,
    uses_app_database: bool,
    health: &'a str,
    target: &'a str,
    /// Whether the target lives in `src/`.
    src: bool,
}

/// What `docker build` leaves out: local environments, caches, databases and
/// secrets, and the deployment files that are not the image's.
fn render_dockerignore(targets: Targets) -> String {
    texts::render(
        "export/dockerignore",
        &DockerignoreText {
            k8s: targets.k8s,
            compose: targets.compose,
        },
    )
}

/// What `templates/export/dockerignore.j2` is filled in with.
#[derive(Serialize)]
struct DockerignoreText {
    k8s: bool,
    compose: bool,
}

/// The pytest smoke test; it must work whether app.py builds `app` at module
/// level or only defines `create_app()`.
fn render_smoke_test(shape: &AppShape) -> String {
    texts::render(
        "export/test_smoke.py",
        &SmokeTestText {
            healthz: shape.health == "/healthz",
            module: &shape.module,
            src: shape.src,
        },
    )
}

/// What `templates/export/test_smoke.py.j2` is filled in with.
#[derive(Serialize)]
struct SmokeTestText<'a> {
    /// The module the app runs.
    module: &'a str,
    /// Whether it lives in `src/`.
    src: bool,
    /// Whether the app answers on `/healthz`, so that is tested too.
    healthz: bool,
}

/// The GitHub Actions workflow: tests, then the image, pushed only when the
/// registry secrets exist; with the k8s target, then a deploy job that applies
/// `deploy/k8s/` only when the `KUBECONFIG_B64` secret exists.
fn render_ci(root: &str, targets: Targets) -> String {
    texts::render(
        "export/ci.yml",
        &CiText {
            image_name: root,
            k8s: targets.k8s,
            k8s_name: k8s_name(root),
        },
    )
}

/// What `templates/export/ci.yml.j2` is filled in with.
#[derive(Serialize)]
struct CiText<'a> {
    /// The image's name, [`archive_root`] of the project's.
    image_name: &'a str,
    /// Whether the workflow deploys `deploy/k8s/`.
    k8s: bool,
    /// The Deployment's name, [`k8s_name`].
    k8s_name: String,
}

/// A Kubernetes object name for the app: `root` (see [`archive_root`]) cut to
/// a DNS label of at most 63 characters that starts with a letter, as a
/// Service's name must.
fn k8s_name(root: &str) -> String {
    let name = if root.starts_with(|c: char| c.is_ascii_alphabetic()) {
        root.to_string()
    } else {
        format!("app-{root}")
    };
    name[..name.len().min(MAX_K8S_NAME)]
        .trim_end_matches('-')
        .to_string()
}

/// What the Kubernetes manifests (`templates/export/k8s/`) and
/// `templates/export/compose.yaml.j2` are filled in with.
#[derive(Serialize)]
struct DeployText<'a> {
    /// The objects' name, [`k8s_name`].
    name: String,
    /// The image, [`archive_root`], as the README's `docker build` tags it.
    image: &'a str,
    port: u16,
    uid: u32,
    data_dir: &'a str,
    app_dir: &'a str,
    /// Path the probes and health check ask for, as the Dockerfile's HEALTHCHECK.
    health: &'a str,
    /// Whether `APP_DATABASE` puts the database on the volume; if not, the
    /// app runs in the volume's folder, where its relative paths land.
    uses_app_database: bool,
    /// The settings the app expects, by name.
    settings: &'a [Expected],
}

impl<'a> DeployText<'a> {
    fn new(root: &'a str, shape: &AppShape, settings: &'a [Expected]) -> Self {
        DeployText {
            name: k8s_name(root),
            image: root,
            port: PORT,
            uid: APP_UID,
            data_dir: DATA_DIR,
            app_dir: APP_DIR,
            health: shape.health,
            uses_app_database: shape.uses_app_database,
            settings,
        }
    }
}

/// The export's README.md, quoting the project's own README(s) if any.
fn render_readme(
    name: &str,
    prompt: &str,
    root: &str,
    shape: &AppShape,
    readmes: &[&FileContent],
    targets: Targets,
    settings: &[Expected],
) -> String {
    let title = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let title = if title.is_empty() { root } else { &title };
    texts::render(
        "export/README.md",
        &ReadmeText {
            title,
            prompt_lines: prompt.trim().lines().map(str::trim_end).collect(),
            // Two levels down, so their headings sit under "About this app".
            about: readmes
                .iter()
                .map(|readme| demote_headings(&readme.content, 2).trim().to_string())
                .collect(),
            run_line: shape.run_line.clone(),
            root,
            port: PORT,
            data_dir: DATA_DIR,
            uses_app_database: shape.uses_app_database,
            target: &shape.target,
            health: shape.health,
            uid: APP_UID,
            k8s: targets.k8s,
            k8s_name: k8s_name(root),
            compose: targets.compose,
            settings,
        },
    )
}

/// What `templates/export/README.md.j2` is filled in with.
#[derive(Serialize)]
struct ReadmeText<'a> {
    /// The project's name on one line.
    title: &'a str,
    /// The request's lines, without trailing blanks; none if there was none.
    prompt_lines: Vec<&'a str>,
    /// The text of each of the project's own READMEs, headings demoted.
    about: Vec<String>,
    /// How to run the app locally, on Flask's default address.
    run_line: String,
    /// Image name, as in [`archive_root`].
    root: &'a str,
    port: u16,
    data_dir: &'a str,
    uses_app_database: bool,
    target: &'a str,
    health: &'a str,
    uid: u32,
    /// Whether the export has `deploy/k8s/` (and the deploy job) to explain.
    k8s: bool,
    /// The Kubernetes objects' name, [`k8s_name`].
    k8s_name: String,
    /// Whether the export has `compose.yaml` to explain.
    compose: bool,
    /// The settings the app expects, by name.
    settings: &'a [Expected],
}

/// `text` with every ATX heading (`# x`) `by` levels deeper, at most `######`;
/// lines inside fenced code blocks (shell comments) are left alone.
fn demote_headings(text: &str, by: usize) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut fence: Option<(char, usize)> = None;
    for line in text.lines() {
        let body = line.trim_start_matches(' ');
        // Four spaces make an indented code block, never a heading or fence.
        let shallow = line.len() - body.len() <= 3;
        let marker = shallow.then(|| fence_marker(body)).flatten();
        match (fence, marker) {
            (None, Some((ch, n, _))) => fence = Some((ch, n)),
            (Some((ch, n)), Some((c, m, rest))) if c == ch && m >= n && rest.trim().is_empty() => {
                fence = None
            }
            (None, None) if shallow => {
                let level = body.bytes().take_while(|&b| b == b'#').count();
                let rest = &body[level..];
                if (1..=6).contains(&level) && (rest.is_empty() || rest.starts_with([' ', '\t'])) {
                    out.push_str(&"#".repeat((level + by).min(6)));
                    out.push_str(rest);
                    out.push('\n');
                    continue;
                }
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A code fence at the start of `line`: its character, length and the rest.
fn fence_marker(line: &str) -> Option<(char, usize, &str)> {
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = line.chars().take_while(|c| *c == ch).count();
    (n >= 3).then(|| (ch, n, &line[n..]))
}

/// A safe file-name stem for a project's archive, root folder and image name:
/// the name's words (see [`slug::words`]) joined by `-`, at most 64
/// characters, never empty.
///
/// Project names may hold anything (spaces, slashes, quotes, `$`, `..`,
/// non-Latin text); the result is also a valid Docker repository name.
pub fn archive_root(name: &str) -> String {
    let mut root = slug::join(&slug::words(name), '-', MAX_ROOT);
    if root.is_empty() {
        return "project".to_string();
    }
    // Windows cannot create a file or folder named like a device.
    let numbered = root.len() == 4
        && (root.starts_with("com") || root.starts_with("lpt"))
        && root.as_bytes()[3].is_ascii_digit();
    if ["con", "prn", "aux", "nul"].contains(&root.as_str()) || numbered {
        root.push_str("-app");
    }
    root
}

/// `path` checked as every path of an app is, or why it may not go into an archive.
fn check_path(path: &str) -> Result<SafePath, ExportError> {
    SafePath::new(path).map_err(|e| ExportError::BadPath {
        path: e.path,
        reason: e.reason,
    })
}
/// An archive of `files`, each as `<root>/<path>`, in path order with fixed
/// times, owners and modes, so the same files give the same bytes.
///
/// `root` must be one safe path component (see [`archive_root`]); a path that
/// is absolute, climbs with `..`, or repeats another is refused, not written.
pub fn build_archive(
    format: ArchiveFormat,
    root: &str,
    files: &[FileContent],
) -> Result<Vec<u8>, ExportError> {
    if check_path(root)?.components().count() > 1 {
        return Err(ExportError::BadPath {
            path: root.to_string(),
            reason: "the archive's root must be one folder name",
        });
    }
    let mut sorted = files
        .iter()
        .map(|f| Ok((check_path(&f.path)?, f.content.as_bytes())))
        .collect::<Result<Vec<_>, ExportError>>()?;
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ExportError::Duplicate(pair[0].0.to_string()));
    }
    let entries = sorted
        .into_iter()
        .map(|(path, bytes)| (format!("{root}/{path}"), bytes));
    match format {
        ArchiveFormat::Zip => zip_bytes(entries),
        ArchiveFormat::TarGz => tar_gz_bytes(entries),
    }
}

/// A zip of the entries, deflated, dated 1980-01-01 00:00:00, mode 0644.
fn zip_bytes<'a>(
    entries: impl Iterator<Item = (String, &'a [u8])>,
) -> Result<Vec<u8>, ExportError> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        // Explicit, since with zip's `time` feature the default would be now.
        .last_modified_time(zip::DateTime::DEFAULT)
        // Not the host's, so a build on any OS gives the same bytes.
        .system(zip::System::Unix)
        .unix_permissions(0o644);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (path, data) in entries {
        zip.start_file(path, options)?;
        zip.write_all(data)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// A gzip'd tar of the entries: GNU headers (long paths), mtime 1980-01-01,
/// root-owned with no names, mode 0644; gzip with mtime 0 and no file name.
fn tar_gz_bytes<'a>(
    entries: impl Iterator<Item = (String, &'a [u8])>,
) -> Result<Vec<u8>, ExportError> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        // "Unknown", not the host's, so a build on any OS gives the same bytes.
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(EPOCH_1980);
        tar.append_data(&mut header, &path, data)?;
    }
    Ok(tar.into_inner()?.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const FACTORY_APP: &str = r#"import os
from flask import Flask, jsonify


def create_app(database=None):
    app = Flask(__name__)
    app.config["DATABASE"] = database or os.environ.get("APP_DATABASE") or "data.db"

    @app.get("/")
    def index():
        return "hello"

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app


app = create_app()
"#;

    const FACTORY_ONLY_APP: &str = r#"from flask import Flask


def create_app():
    application = Flask(__name__)
    return application
"#;

    const PLAIN_APP: &str = r#"import sqlite3
from flask import Flask

app = Flask(__name__)
conn = sqlite3.connect("app.db")


@app.route("/")
def index():
    return "hi"
"#;

    fn project(app_py: &str) -> Vec<FileContent> {
        vec![
            FileContent::new("app.py", app_py),
            FileContent::new("requirements.txt", "flask\n"),
            FileContent::new("templates/index.html", "<h1>hi</h1>\n"),
        ]
    }

    fn paths(files: &[FileContent]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    fn content<'a>(files: &'a [FileContent], path: &str) -> &'a str {
        &files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", paths(files)))
            .content
    }

    #[test]
    fn gunicorn_target_and_health_path_follow_the_app() {
        let factory = AppShape::of(&project(FACTORY_APP));
        assert_eq!(factory.target, "app:app");
        assert_eq!(factory.health, "/healthz");
        assert!(factory.uses_app_database);

        let only_factory = AppShape::of(&project(FACTORY_ONLY_APP));
        assert_eq!(only_factory.target, "app:create_app()");
        assert_eq!(only_factory.health, "/");
        assert!(!only_factory.uses_app_database);

        let plain = AppShape::of(&project(PLAIN_APP));
        assert_eq!(plain.target, "app:app");
        assert_eq!(plain.health, "/");

        let wsgi = AppShape::of(&project(
            "from flask import Flask\napplication = Flask(__name__)\n",
        ));
        assert_eq!(wsgi.target, "app:application");
        let annotated = AppShape::of(&project("app: Flask = Flask(__name__)\n"));
        assert_eq!(annotated.target, "app:app");
        // Comparisons, indented or longer names are no module-level `app`.
        let not_app = "def create_app():\n    app = Flask(__name__)\n    return app\nif app == 1: pass\napp_name = 'x'\n";
        assert_eq!(AppShape::of(&project(not_app)).target, "app:create_app()");
        assert_eq!(AppShape::of(&[]).target, "app:app");
    }

    #[test]
    fn a_packaged_app_is_exported_by_its_detected_target() {
        let files = vec![
            FileContent::new(
                "pyproject.toml",
                "[project]\nname = \"shop\"\ndependencies = [\"flask>=3\", \"itsdangerous\"]\n",
            ),
            FileContent::new(
                "src/shop/__init__.py",
                "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n",
            ),
        ];
        let all = export_files("Shop", "a shop", &files, &[ExportTarget::Compose], &[]);
        let docker = content(&all, "Dockerfile");
        assert!(
            docker.contains(r#""--pythonpath", "/app/src", "shop:create_app()"]"#),
            "{docker}"
        );
        assert_eq!(
            content(&all, "requirements.txt"),
            "flask>=3\nitsdangerous\n"
        );
        let smoke = content(&all, "test_smoke.py");
        assert!(
            smoke.contains(r#"importlib.import_module("shop")"#),
            "{smoke}"
        );
        assert!(smoke.contains("syspath_prepend"), "{smoke}");
        let readme = content(&all, "README.md");
        assert!(readme.contains("--app src/shop run"), "{readme}");
    }

    #[test]
    fn dockerfile_carries_the_shape() {
        let factory = dockerfile(&project(FACTORY_APP));
        assert!(factory.contains("FROM python:3.12-slim\n"));
        assert!(factory.contains(r#""app:app"]"#));
        assert!(factory.contains("http://127.0.0.1:8000/healthz'"));
        assert!(factory.contains("ENV APP_DATABASE=/data/app.db\nVOLUME [\"/data\"]"));
        assert!(factory.contains("USER 10001:10001"));
        assert!(factory.contains("EXPOSE 8000"));
        assert!(factory.contains("PYTHONUNBUFFERED=1"));
        assert!(factory.contains("PYTHONDONTWRITEBYTECODE=1"));
        // Requirements are installed before the code is copied.
        let requirements = factory.find("COPY requirements.txt").unwrap();
        assert!(requirements < factory.find("COPY --chown=app:app . .").unwrap());
        assert!(factory.contains(&format!("requirements.txt \"{GUNICORN}\"")));

        let only_factory = dockerfile(&project(FACTORY_ONLY_APP));
        assert!(only_factory.contains(r#""app:create_app()"]"#));
        assert!(only_factory.contains("http://127.0.0.1:8000/'"));
        assert!(!only_factory.contains("APP_DATABASE"));
        assert!(!only_factory.contains("VOLUME"));

        // Tests that set APP_DATABASE do not make the app honour it.
        let mut plain = project(PLAIN_APP);
        plain.push(FileContent::new(
            "test_app.py",
            "monkeypatch.setenv('APP_DATABASE', 'x')\n",
        ));
        assert!(!dockerfile(&plain).contains("APP_DATABASE"));

        // A pinned gunicorn in requirements.txt is not fought with.
        let mut pinned = project(PLAIN_APP);
        pinned[1].content = "flask\nGunicorn==22.0.0\n".to_string();
        assert!(
            dockerfile(&pinned).contains("RUN pip install --no-cache-dir -r requirements.txt\n")
        );
        pinned[1].content = "flask\ngunicorn-extras\n".to_string();
        assert!(dockerfile(&pinned).contains(GUNICORN));
    }

    #[test]
    fn export_adds_deployment_files_sorted() {
        let files = project(FACTORY_APP);
        let all = export_files("Todo", "a todo app", &files, &[], &[]);
        assert_eq!(
            paths(&all),
            [
                ".dockerignore",
                ".github/workflows/ci.yml",
                "Dockerfile",
                "README.md",
                "app.py",
                "requirements.txt",
                "templates/index.html",
                "test_smoke.py",
            ]
        );
        assert_eq!(content(&all, "Dockerfile"), dockerfile(&files));
        assert_eq!(content(&all, "requirements.txt"), "flask\n");
        let smoke = content(&all, "test_smoke.py");
        assert!(smoke.contains("test_healthz_answers"));
        assert!(smoke.contains("monkeypatch.setenv(\"APP_DATABASE\""));
        let plain = export_files("Todo", "", &project(PLAIN_APP), &[], &[]);
        assert!(!content(&plain, "test_smoke.py").contains("healthz"));
        // Without requirements.txt, ours lists Flask.
        let bare = export_files("x", "", &[FileContent::new("app.py", PLAIN_APP)], &[], &[]);
        assert_eq!(content(&bare, "requirements.txt"), "flask\n");
    }

    #[test]
    fn project_files_win_except_readme() {
        let mut files = project(FACTORY_APP);
        files.push(FileContent::new("Dockerfile", "FROM scratch\n"));
        files.push(FileContent::new("test_smoke.py", "def test_mine(): pass\n"));
        files.push(FileContent::new(".github/workflows/CI.yml", "name: mine\n"));
        files.push(FileContent::new(
            "Readme.md",
            "# Todo\n\nMy notes.\n\n```sh\n# a comment\n```\n",
        ));
        let ours = deployment_files("Todo", "a todo app", &files, &[], &[]);
        assert_eq!(
            paths(&ours),
            [".dockerignore", "README.md"],
            "the project's files are left alone"
        );
        let all = export_files("Todo", "a todo app", &files, &[], &[]);
        assert_eq!(content(&all, "Dockerfile"), "FROM scratch\n");
        assert_eq!(content(&all, "test_smoke.py"), "def test_mine(): pass\n");
        assert_eq!(content(&all, ".github/workflows/CI.yml"), "name: mine\n");
        assert!(!paths(&all).contains(&"Readme.md"));
        assert!(!paths(&all).contains(&".github/workflows/ci.yml"));
        let readme = content(&all, "README.md");
        assert!(readme.starts_with(
            "# Todo\n\nA Flask app generated by appforge from this request:\n\n> a todo app\n"
        ));
        assert!(readme
            .contains("## About this app\n\n### Todo\n\nMy notes.\n\n```sh\n# a comment\n```\n"));
        assert!(readme.contains("## Run it in Docker"));
    }

    #[test]
    fn readme_explains_running_testing_docker_and_ci() {
        let files = project(FACTORY_APP);
        let readme = content(
            &export_files("My  Todo\nApp", "line one\n\nline two", &files, &[], &[]),
            "README.md",
        )
        .to_string();
        assert!(readme.starts_with("# My Todo App\n"));
        assert!(readme.contains("> line one\n>\n> line two\n"));
        assert!(!readme.contains("About this app"));
        for needle in [
            "python -m venv .venv",
            "pip install -r requirements.txt",
            "python -m flask --app app run",
            "python -m pytest -q",
            "docker build -t my-todo-app .",
            "docker run --rm -p 8000:8000 -v my-todo-app-data:/data my-todo-app",
            "`REGISTRY`",
            "`REGISTRY_USERNAME`",
            "`REGISTRY_PASSWORD`",
            "`/` and `/healthz` answer",
        ] {
            assert!(
                readme.contains(needle),
                "README lacks {needle:?}:\n{readme}"
            );
        }
        // The literal above checks the spelling; this, that it is launch's line.
        assert!(readme.contains(&format!(
            "\n{}\n```\n",
            launch::shell_line(&Target::convention(), "5000")
        )));
        let plain = content(
            &export_files("p", "", &project(PLAIN_APP), &[], &[]),
            "README.md",
        )
        .to_string();
        assert!(plain.contains("docker run --rm -p 8000:8000 p\n"));
        assert!(plain.contains("A Flask app generated by appforge.\n"));
    }

    #[test]
    fn ci_workflow_tests_builds_and_pushes_only_with_secrets() {
        let ci = render_ci("my-app", Targets::default());
        assert!(ci.contains("on:\n  push:\n  pull_request:\n"));
        assert!(ci.contains("permissions:\n  contents: read\n"));
        assert!(ci.contains("needs: test"));
        assert!(ci.contains("REGISTRY: ${{ secrets.REGISTRY }}"));
        assert!(ci.contains("IMAGE_NAME: \"my-app\""));
        assert!(ci.contains("--password-stdin"));
        assert!(ci.contains("docker login \"${REGISTRY%%/*}\""));
        assert_eq!(ci.matches("env.REGISTRY_PASSWORD != ''").count(), 2);
        assert!(!ci.contains("if: secrets"));
    }

    /// The lines indented under the first `key:` line, with it; a `key` that
    /// starts with spaces must be indented by exactly those.
    fn block<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        let line = format!("{key}:");
        let mut lines = text
            .lines()
            .skip_while(|l| *l != line && (key.starts_with(' ') || l.trim() != line));
        let Some(first) = lines.next() else {
            panic!("no {key}: in\n{text}")
        };
        let indent = first.len() - first.trim_start().len();
        let mut out = vec![first];
        out.extend(lines.take_while(|l| l.len() - l.trim_start().len() > indent));
        out
    }

    /// The paths the targets add to a plain export.
    fn added_by(targets: &[ExportTarget]) -> Vec<String> {
        let files = project(FACTORY_APP);
        let plain = export_files("Todo", "a todo app", &files, &[], &[]);
        let plain = paths(&plain);
        export_files("Todo", "a todo app", &files, targets, &[])
            .iter()
            .map(|f| f.path.clone())
            .filter(|p| !plain.contains(&p.as_str()))
            .collect()
    }

    #[test]
    fn targets_add_their_files_and_nothing_else() {
        use ExportTarget::{Compose, K8s};
        assert!(added_by(&[]).is_empty());
        assert_eq!(
            added_by(&[K8s]),
            [
                "deploy/k8s/deployment.yaml",
                "deploy/k8s/pvc.yaml",
                "deploy/k8s/service.yaml"
            ]
        );
        assert_eq!(added_by(&[Compose]), ["compose.yaml"]);
        // Order and repeats do not matter.
        let files = project(FACTORY_APP);
        assert_eq!(
            export_files("Todo", "", &files, &[K8s, Compose], &[]),
            export_files("Todo", "", &files, &[Compose, K8s, Compose, K8s], &[])
        );

        // Without a target the shared files say nothing of either.
        let plain = export_files("Todo", "a todo app", &files, &[], &[]);
        for (path, absent) in [
            (".github/workflows/ci.yml", "deploy"),
            (".github/workflows/ci.yml", "KUBECONFIG"),
            (".github/workflows/ci.yml", "outputs:"),
            (".github/workflows/ci.yml", "id: push"),
            (".github/workflows/ci.yml", "GITHUB_OUTPUT"),
            (".dockerignore", "deploy"),
            (".dockerignore", "compose"),
            ("README.md", "Kubernetes"),
            ("README.md", "Compose"),
            ("README.md", "deploy"),
        ] {
            assert!(
                !content(&plain, path).contains(absent),
                "{path} mentions {absent}"
            );
        }
        // A target leaves the files it does not concern as they were.
        let k8s = export_files("Todo", "a todo app", &files, &[K8s], &[]);
        let compose = export_files("Todo", "a todo app", &files, &[Compose], &[]);
        for path in ["Dockerfile", "test_smoke.py", "requirements.txt", "app.py"] {
            assert_eq!(content(&k8s, path), content(&plain, path), "{path}");
            assert_eq!(content(&compose, path), content(&plain, path), "{path}");
        }
        assert_eq!(
            content(&compose, ".github/workflows/ci.yml"),
            content(&plain, ".github/workflows/ci.yml"),
            "only k8s changes the workflow"
        );
        assert!(content(&k8s, ".dockerignore").ends_with(".vscode\ndeploy/k8s\n"));
        assert!(content(&compose, ".dockerignore").ends_with(".vscode\ncompose.yaml\n"));

        // The project's own file wins over ours, as for the other files.
        let mut own = project(FACTORY_APP);
        own.push(FileContent::new("compose.yaml", "services: {}\n"));
        let all = export_files("Todo", "", &own, &[K8s, Compose], &[]);
        assert_eq!(content(&all, "compose.yaml"), "services: {}\n");
    }

    #[test]
    fn deployment_files_are_deterministic() {
        use ExportTarget::{Compose, K8s};
        let files = project(FACTORY_APP);
        let first = export_files("My Todo", "a todo app", &files, &[K8s, Compose], &[]);
        let again = export_files(
            "My Todo",
            "a todo app",
            &shuffled(&files),
            &[Compose, K8s],
            &[],
        );
        assert_eq!(first, again);
        for format in [ArchiveFormat::Zip, ArchiveFormat::TarGz] {
            assert_eq!(
                build_archive(format, "my-todo", &first).unwrap(),
                build_archive(format, "my-todo", &shuffled(&again)).unwrap(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn the_deployment_probes_twice_and_runs_unprivileged() {
        let all = export_files(
            "My Todo",
            "",
            &project(FACTORY_APP),
            &[ExportTarget::K8s],
            &[],
        );
        let deployment = content(&all, "deploy/k8s/deployment.yaml");
        assert!(deployment.contains("kind: Deployment\n"));
        assert!(deployment.contains("\n          image: \"my-todo\"\n"));
        assert!(deployment.contains("containerPort: 8000\n"));
        assert!(deployment.contains("replicas: 1\n"));
        assert!(deployment.contains("type: Recreate\n"));

        // Both on the Dockerfile's health path, with different timing.
        let readiness = block(deployment, "readinessProbe");
        let liveness = block(deployment, "livenessProbe");
        for probe in [&readiness, &liveness] {
            assert!(
                probe.contains(&"              path: \"/healthz\""),
                "{probe:?}"
            );
            assert!(probe.contains(&"              port: http"), "{probe:?}");
        }
        assert_ne!(readiness[1..], liveness[1..]);
        assert!(readiness.contains(&"            periodSeconds: 5"));
        assert!(liveness.contains(&"            periodSeconds: 20"));
        assert!(liveness.contains(&"            initialDelaySeconds: 30"));
        assert!(liveness.contains(&"            failureThreshold: 5"));
        assert!(!readiness.iter().any(|l| l.contains("initialDelaySeconds")));
        let root_only = export_files("x", "", &project(PLAIN_APP), &[ExportTarget::K8s], &[]);
        let root_only = content(&root_only, "deploy/k8s/deployment.yaml");
        assert_eq!(root_only.matches("path: \"/\"\n").count(), 2);
        assert!(dockerfile(&project(PLAIN_APP)).contains("8000/'"));

        let resources = block(deployment, "resources");
        for needed in [
            "            requests:",
            "              cpu: 100m",
            "              memory: 128Mi",
            "            limits:",
            "              cpu: 500m",
            "              memory: 256Mi",
        ] {
            assert!(resources.contains(&needed), "{resources:?} lacks {needed}");
        }

        // The container's own securityContext, not the pod's.
        assert_eq!(
            block(deployment, "          securityContext"),
            [
                "          securityContext:",
                "            runAsNonRoot: true",
                "            runAsUser: 10001",
                "            runAsGroup: 10001",
                "            allowPrivilegeEscalation: false",
                "            readOnlyRootFilesystem: true",
                "            capabilities:",
                "              drop:",
                "                - ALL",
                "            seccompProfile:",
                "              type: RuntimeDefault",
            ]
        );
        assert!(deployment.contains(&format!("runAsUser: {APP_UID}\n")));
        assert!(deployment.contains("        fsGroup: 10001\n"));
        // Writable: the volume at the Dockerfile's DATA_DIR and /tmp, nothing else.
        assert_eq!(
            block(deployment, "volumeMounts")
                .iter()
                .filter(|l| l.contains("mountPath"))
                .collect::<Vec<_>>(),
            [
                &"              mountPath: \"/data\"",
                &"              mountPath: /tmp"
            ]
        );
        assert!(deployment.contains("claimName: \"my-todo-data\"\n"));
        assert!(deployment.contains("- name: tmp\n          emptyDir:\n"));
        assert!(deployment
            .contains("            - name: APP_DATABASE\n              value: \"/data/app.db\"\n"));
        assert!(dockerfile(&project(FACTORY_APP)).contains("ENV APP_DATABASE=/data/app.db\n"));
        // An app without APP_DATABASE runs in the volume, its relative paths with it.
        assert!(!root_only.contains("APP_DATABASE"));
        assert!(root_only.contains("workingDir: \"/data\"\n"));
        for deployment in [deployment, root_only] {
            assert!(deployment.contains("- name: HOME\n              value: /tmp\n"));
        }
        assert!(root_only.contains("- name: PYTHONPATH\n              value: \"/app\"\n"));

        let service = content(&all, "deploy/k8s/service.yaml");
        assert!(service.contains("kind: Service\n"));
        assert!(service.contains("  name: \"my-todo\"\n"));
        assert!(service.contains("app.kubernetes.io/name: \"my-todo\"\n"));
        assert!(service.contains("targetPort: http\n"));
        let pvc = content(&all, "deploy/k8s/pvc.yaml");
        assert!(pvc.contains("kind: PersistentVolumeClaim\n"));
        assert!(pvc.contains("  name: \"my-todo-data\"\n"));
        assert!(pvc.contains("- ReadWriteOnce\n"));

        let readme = content(&all, "README.md");
        assert!(readme.contains("## Run it on Kubernetes"));
        assert!(readme.contains("kubectl apply -f deploy/k8s/\n"));
        assert!(readme.contains("kubectl port-forward service/my-todo 8000:80\n"));
        assert!(readme.contains("`KUBECONFIG_B64`"));
    }

    #[test]
    fn k8s_names_are_dns_labels_that_start_with_a_letter() {
        assert_eq!(k8s_name("my-app"), "my-app");
        assert_eq!(k8s_name("2048"), "app-2048");
        let long = k8s_name(&archive_root(&"ab ".repeat(100)));
        assert!(long.len() <= MAX_K8S_NAME && !long.ends_with('-'), "{long}");
        let cut = k8s_name(&format!("1{}", "x".repeat(63)));
        assert_eq!(cut.len(), MAX_K8S_NAME);
        assert_eq!(k8s_name(&format!("{}-b", "a".repeat(62))), "a".repeat(62));
        for name in ["", "日本語", "yes", "null", "1e3", "-x-", &"é".repeat(200)] {
            let label = k8s_name(&archive_root(name));
            assert!(label.len() <= MAX_K8S_NAME, "{label}");
            assert!(
                label.starts_with(|c: char| c.is_ascii_lowercase()),
                "{label}"
            );
            assert!(label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            assert!(!label.ends_with('-'), "{label}");
        }
    }

    #[test]
    fn compose_runs_the_image_with_a_health_check_and_a_volume() {
        let files = project(FACTORY_APP);
        let all = export_files("My Todo", "", &files, &[ExportTarget::Compose], &[]);
        let compose = content(&all, "compose.yaml");
        assert!(compose.contains("    build: .\n    image: \"my-todo\"\n"));
        assert!(compose.contains("      - \"8000:8000\"\n"));
        assert!(compose.contains("      - data:/data\n"));
        assert!(compose.ends_with("\nvolumes:\n  data:\n"));
        assert!(compose.contains("      APP_DATABASE: \"/data/app.db\"\n"));
        assert!(compose.contains("    user: \"10001:10001\"\n    read_only: true\n"));
        assert!(compose.contains("    cap_drop:\n      - ALL\n"));
        // The same check as the Dockerfile's HEALTHCHECK.
        let check = "\"python\", \"-c\", \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)\"]";
        assert!(compose.contains(check), "{compose}");
        assert!(dockerfile(&files).contains(check));
        let healthcheck = block(compose, "healthcheck");
        assert!(
            healthcheck.contains(&"      interval: 30s"),
            "{healthcheck:?}"
        );
        let plain = export_files("x", "", &project(PLAIN_APP), &[ExportTarget::Compose], &[]);
        let plain = content(&plain, "compose.yaml");
        assert!(!plain.contains("APP_DATABASE"));
        assert!(plain.contains("    working_dir: \"/data\"\n"));
        assert!(plain.contains("      PYTHONPATH: \"/app\"\n"));
        for compose in [compose, plain] {
            assert!(compose.contains("    environment:\n"));
            assert!(compose.contains("      HOME: /tmp\n"));
        }
        assert!(plain.contains("8000/', timeout=4)"));
        let readme = content(&all, "README.md");
        assert!(readme.contains(
            "## Run it with Docker Compose\n\n```sh\ndocker compose up --build -d\n```\n"
        ));
        assert!(!readme.contains("Kubernetes"));
    }

    #[test]
    fn the_k8s_workflow_deploys_only_with_a_kubeconfig() {
        let plain = render_ci("my-app", Targets::default());
        let ci = render_ci(
            "my-app",
            Targets {
                k8s: true,
                compose: false,
            },
        );
        // The plain workflow is all there, with the push step's output added.
        let without_additions: String = ci
            .split("\n  deploy:\n")
            .next()
            .unwrap()
            .lines()
            .filter(|l| {
                !l.contains("outputs")
                    && !l.contains("id: push")
                    && !l.contains("GITHUB_OUTPUT")
                    && !l.contains("the deploy job")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(without_additions, plain);
        let deploy = ci.split("\n  deploy:\n").nth(1).unwrap();
        assert!(deploy.contains("    needs: image\n"));
        assert!(deploy.contains("github.event.repository.default_branch"));
        assert!(deploy.contains("KUBECONFIG_B64: ${{ secrets.KUBECONFIG_B64 }}\n"));
        assert!(deploy.contains("PUSHED_IMAGE: ${{ needs.image.outputs.image }}\n"));
        assert!(deploy.contains("DEPLOYMENT: \"my-app\"\n"));
        assert_eq!(deploy.matches("if: env.KUBECONFIG_B64 != ''").count(), 2);
        assert_eq!(deploy.matches("if: env.KUBECONFIG_B64 == ''").count(), 1);
        assert!(!ci.contains("if: secrets") && !ci.contains("if: ${{ secrets"));
        // Every step but the notice runs only with the secret.
        assert_eq!(
            deploy.matches("\n      - ").count(),
            deploy.matches("        if: env.KUBECONFIG_B64").count()
        );
        assert!(
            deploy.contains("kubectl apply -f deploy/k8s/pvc.yaml -f deploy/k8s/service.yaml\n")
        );
        assert!(deploy.contains(
            "kubectl set image --local -f deploy/k8s/deployment.yaml app=\"$image\" -o yaml | kubectl apply -f -\n"
        ));
        assert!(deploy.contains("kubectl rollout status \"deployment/$DEPLOYMENT\""));
        assert!(ci.contains("        id: push\n"));
        assert!(ci.contains("      image: ${{ steps.push.outputs.image }}\n"));
        assert!(ci.contains("echo \"image=$image:$GITHUB_SHA\" >> \"$GITHUB_OUTPUT\"\n"));
    }

    #[test]
    fn headings_are_demoted_outside_code_fences() {
        let text = "# A\n## B\n####### seven\n#tag\n    # indented code\n~~~\n# in fence\n```\n# still\n~~~\n###### six\n";
        assert_eq!(
            demote_headings(text, 2),
            "### A\n#### B\n####### seven\n#tag\n    # indented code\n~~~\n# in fence\n```\n# still\n~~~\n###### six\n"
        );
    }

    #[test]
    fn archive_root_is_safe_for_odd_names() {
        for (name, want) in [
            ("My Todo/App ü", "my-todo-app-u"),
            ("", "project"),
            (".", "project"),
            ("..", "project"),
            ("/", "project"),
            ("../../etc/passwd", "etc-passwd"),
            ("ü", "u"),
            ("日本語", "project"),
            ("Café Crème", "cafe-creme"),
            ("Straße", "strasse"),
            ("İstanbul", "istanbul"),
            ("\"quoted\" 'app'", "quoted-app"),
            ("$(rm -rf /)", "rm-rf"),
            ("`whoami`; echo $HOME", "whoami-echo-home"),
            ("-rf", "rf"),
            (".hidden", "hidden"),
            ("v1.2 app_name", "v1-2-app-name"),
            ("a..b", "a-b"),
            ("a._b", "a-b"),
            ("con", "con-app"),
            ("CON", "con-app"),
            ("CON.txt", "con-txt"),
            ("com1", "com1-app"),
            ("console", "console"),
            ("tab\there\nnewline", "tab-here-newline"),
        ] {
            assert_eq!(archive_root(name), want, "for {name:?}");
        }
        let long = archive_root(&"ab ".repeat(100));
        assert!(
            long.len() <= MAX_ROOT && long.starts_with("ab-ab"),
            "{long}"
        );
        assert!(!long.ends_with('-'));
        let long = archive_root(&"x".repeat(200));
        assert_eq!(long, "x".repeat(MAX_ROOT));
        for name in [
            "",
            "..",
            "/",
            "ü",
            "\"",
            "$(rm -rf)",
            "...---___",
            &"é".repeat(200),
        ] {
            let root = archive_root(name);
            assert!(!root.is_empty() && root.len() <= MAX_ROOT, "{root}");
            assert!(root
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            assert!(!root.starts_with(['.', '-']) && root != "." && root != "..");
            assert!(check_path(&root).is_ok());
        }
    }

    /// Files in a fixed order, one with a path too long for a plain tar header.
    fn archive_input() -> Vec<FileContent> {
        // Longer than a plain tar header's 100 bytes; each name within SafePath's.
        let long = format!("static/{}/{}/deep.txt", "d".repeat(90), "e".repeat(90));
        let mut files = export_files("Demo", "a demo", &project(FACTORY_APP), &[], &[]);
        files.push(FileContent::new(&long, "deep\n"));
        files.push(FileContent::new("static/img@2x+1.txt", "odd name\n"));
        files
    }

    fn shuffled(files: &[FileContent]) -> Vec<FileContent> {
        let mut out = files.to_vec();
        out.reverse();
        let n = out.len();
        out.swap(0, n / 2);
        out
    }

    #[test]
    fn archives_are_deterministic() {
        let files = archive_input();
        for format in [ArchiveFormat::Zip, ArchiveFormat::TarGz] {
            let first = build_archive(format, "demo", &files).unwrap();
            let again = build_archive(format, "demo", &files).unwrap();
            let mixed = build_archive(format, "demo", &shuffled(&files)).unwrap();
            assert!(!first.is_empty());
            assert_eq!(first, again, "{format:?}");
            assert_eq!(first, mixed, "{format:?}");
            assert_ne!(first, build_archive(format, "other", &files).unwrap());
        }
    }

    fn expected(files: &[FileContent]) -> Vec<(String, String)> {
        let mut want: Vec<(String, String)> = files
            .iter()
            .map(|f| (format!("demo/{}", f.path), f.content.clone()))
            .collect();
        want.sort();
        want
    }

    #[test]
    fn zip_unpacks_to_the_files() {
        let files = archive_input();
        let bytes = build_archive(ArchiveFormat::Zip, "demo", &shuffled(&files)).unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut got = Vec::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).unwrap();
            let name = entry.name().unwrap().to_string();
            assert_eq!(entry.unix_mode(), Some(0o100644), "{name}");
            assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
            let time = entry.last_modified().unwrap();
            assert_eq!(
                (
                    time.year(),
                    time.month(),
                    time.day(),
                    time.hour(),
                    time.minute(),
                    time.second()
                ),
                (1980, 1, 1, 0, 0, 0)
            );
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            got.push((name, text));
        }
        assert_eq!(
            got,
            expected(&files),
            "sorted, under the root, same contents"
        );
    }

    #[test]
    fn tar_gz_unpacks_to_the_files() {
        let files = archive_input();
        let bytes = build_archive(ArchiveFormat::TarGz, "demo", &shuffled(&files)).unwrap();
        // gzip header: magic, deflate, no flags (no file name), mtime 0.
        assert_eq!(&bytes[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut got = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.entry_type(), tar::EntryType::Regular);
            assert_eq!(header.mode().unwrap(), 0o644);
            assert_eq!(header.mtime().unwrap(), EPOCH_1980);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.username().unwrap(), Some(""));
            assert_eq!(header.groupname().unwrap(), Some(""));
            let path = entry.path().unwrap().to_str().unwrap().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            got.push((path, text));
        }
        assert_eq!(
            got,
            expected(&files),
            "sorted, under the root, same contents"
        );
    }

    #[test]
    fn unsafe_paths_and_duplicates_are_refused() {
        for format in [ArchiveFormat::Zip, ArchiveFormat::TarGz] {
            for path in [
                "",
                "/etc/passwd",
                "../x",
                "a/../../x",
                "a//b",
                "a\\..\\b",
                "c:/x",
                "a\0b",
                "a\nb",
            ] {
                let err =
                    build_archive(format, "demo", &[FileContent::new(path, "x")]).unwrap_err();
                assert!(
                    matches!(err, ExportError::BadPath { .. }),
                    "{path:?}: {err}"
                );
            }
            for root in ["", "..", ".", "a/b", "/"] {
                let err = build_archive(format, root, &[FileContent::new("a", "x")]).unwrap_err();
                assert!(
                    matches!(err, ExportError::BadPath { .. }),
                    "{root:?}: {err}"
                );
            }
            let twice = [
                FileContent::new("a.py", "1"),
                FileContent::new("b.py", "2"),
                FileContent::new("a.py", "3"),
            ];
            let err = build_archive(format, "demo", &twice).unwrap_err();
            assert!(
                matches!(err, ExportError::Duplicate(ref p) if p == "a.py"),
                "{err}"
            );
            assert!(build_archive(format, "demo", &[]).is_ok());
        }
    }

    #[test]
    fn the_settings_are_named_in_the_readme_compose_and_the_deployment() {
        use ExportTarget::{Compose, K8s};
        let settings = [
            Expected {
                name: "API_KEY".into(),
                secret: true,
            },
            Expected {
                name: "MODE".into(),
                secret: false,
            },
        ];
        let all = export_files("Shop", "", &project(PLAIN_APP), &[K8s, Compose], &settings);
        let text = |path: &str| {
            all.iter()
                .find(|f| f.path == path)
                .unwrap_or_else(|| panic!("no {path}"))
                .content
                .clone()
        };
        let readme = text("README.md");
        assert!(readme.contains("- `API_KEY` (a secret)"), "{readme}");
        assert!(readme.contains("- `MODE`\n"), "{readme}");
        assert!(readme.contains("--from-literal=API_KEY=..."), "{readme}");
        let compose = text("compose.yaml");
        assert!(
            compose.contains(r#"API_KEY: "${API_KEY:?set API_KEY}""#),
            "{compose}"
        );
        let deployment = text("deploy/k8s/deployment.yaml");
        assert!(
            deployment.contains("name: \"shop-settings\"\n                  key: API_KEY"),
            "{deployment}"
        );
        let none = export_files("Shop", "", &project(PLAIN_APP), &[K8s, Compose], &[]);
        assert!(!none.iter().any(|f| f.content.contains("-settings")));
    }
}
