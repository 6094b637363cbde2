//! Flask projects in the shapes real ones take, end to end: a package with a
//! `create_app` factory, its dependencies in `pyproject.toml`, its data in
//! Flask's instance folder and its tests in `tests/` with a `conftest.py`;
//! and a `wsgi.py`. Each is checked (its own tests run), runs, answers HTTP,
//! keeps its instance data across a restart and a new version, and is
//! exported with its detected target.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use appforge_e2e::apps::{http_get, new_project, port_of, run_app, run_folder, signed_up};
use appforge_e2e::{python, wait_for, Daemon, Run, User};
use serde_json::Value;
use tempfile::TempDir;

/// The same requirement lines as the template's `requirements.txt`, so the
/// environment (shared by what it installs) is the one already made.
const PYPROJECT: &str = r#"[project]
name = "notebook"
version = "0.1.0"
dependencies = ["flask>=3.0", "pytest>=8"]

[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"
"#;

/// A factory that keeps its notes in the instance folder.
const PACKAGE: &str = r#"import os

from flask import Flask, request


def create_app(instance_path=None):
    app = Flask(__name__, instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    notes = os.path.join(app.instance_path, "notes.txt")

    @app.get("/")
    def index():
        if not os.path.exists(notes):
            return "notes: none\n"
        with open(notes) as f:
            return "notes: " + ",".join(f.read().split()) + "\n"

    @app.get("/add")
    def add():
        with open(notes, "a") as f:
            f.write(request.args["text"] + "\n")
        return "added\n"

    return app
"#;

const CONFTEST: &str = r#"import pytest

from notebook import create_app


@pytest.fixture()
def client(tmp_path):
    app = create_app(instance_path=str(tmp_path))
    app.config["TESTING"] = True
    return app.test_client()
"#;

const TEST_NOTES: &str = r#"def test_a_note_is_kept(client):
    assert client.get("/").get_data(as_text=True) == "notes: none\n"
    client.get("/add?text=milk")
    assert client.get("/").get_data(as_text=True) == "notes: milk\n"
"#;

/// Writes `files` under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Replaces every file of `project` with `files`, in one checked edit
/// through an editor that empties the folder and copies them in.
fn replace_files(user: &User, project: &str, files: &[(&str, &str)]) -> Run {
    let dir = TempDir::new().unwrap().keep();
    let source = dir.join("source");
    write_tree(&source, files);
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nset -e\nfind . -mindepth 1 -delete\ncp -R '{}'/. .\n",
            source.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let output = user
        .command(&["--json", "edit", project])
        .env_remove("VISUAL")
        .env("EDITOR", &editor)
        .env("TMPDIR", dir.join("tmp"))
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The body of `GET path`, waiting for the app to answer it.
fn body(port: u16, path: &str) -> String {
    let mut response = None;
    wait_for(&format!("GET {path} on port {port}"), || {
        response = http_get(port, path, Duration::from_secs(10));
        response
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    let response = response.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Runs `project`, whose output names the target it starts, `target`, as
/// `ps` does.
fn assert_runs(user: &User, project: &str, target: &str) {
    let run = user.run(&["run", project]).ok();
    assert!(
        run.stdout.contains(&format!("\n  it runs {target}\n")),
        "the choice is shown: {run:?}"
    );
    let ps = user.run(&["--json", "ps"]).ok().json();
    assert_eq!(ps[0]["target"], target, "{ps}");
}

/// The steps the checks ran, by name.
fn steps(out: &Value) -> Vec<String> {
    out["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {out}"))
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

/// The export of `project`, unpacked: the folder holding its files.
fn exported(user: &User, project: &str) -> (TempDir, PathBuf) {
    let here = TempDir::new().unwrap();
    let archive = here.path().join("export.zip");
    user.run(&["--json", "export", project, "-o", archive.to_str().unwrap()])
        .ok();
    let out = here.path().join("out");
    let unzip = Command::new(python())
        .args(["-m", "zipfile", "-e"])
        .arg(&archive)
        .arg(&out)
        .status()
        .unwrap();
    assert!(unzip.success());
    let top = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (here, top)
}

#[test]
fn a_package_with_a_factory_and_a_pyproject_is_checked_run_and_keeps_its_instance_data() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, "notes");
    let files = [
        ("pyproject.toml", PYPROJECT),
        ("notebook/__init__.py", PACKAGE),
        ("tests/conftest.py", CONFTEST),
        ("tests/test_notes.py", TEST_NOTES),
    ];
    let edit = replace_files(&ada, "notes", &files).ok();
    let out = edit.json();
    assert_eq!(out["saved"], true, "{out}");
    assert_eq!(
        steps(&out),
        ["install", "import", "start", "tests"],
        "{out}"
    );
    // No requirements.txt was added beside pyproject.toml.
    let shown = ada.run(&["--json", "show", "notes"]).ok().json();
    let mut paths: Vec<&str> = shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "notebook/__init__.py",
            "pyproject.toml",
            "tests/conftest.py",
            "tests/test_notes.py"
        ]
    );

    assert_runs(
        &ada,
        "notes",
        "notebook:create_app() (named in pyproject.toml)",
    );
    let port = port_of(&run_app(&ada, "notes"));
    assert_eq!(body(port, "/"), "notes: none\n");
    assert_eq!(body(port, "/add?text=eggs"), "added\n");
    assert_eq!(body(port, "/"), "notes: eggs\n");
    let instance = run_folder(&daemon, id).join("instance/notes.txt");
    assert_eq!(std::fs::read_to_string(&instance).unwrap(), "eggs\n");

    // A restart keeps the instance folder.
    let restarted = ada.run(&["--json", "restart", "notes"]).ok().json();
    let port = port_of(&restarted);
    assert_eq!(body(port, "/"), "notes: eggs\n");

    // So does a new version, which the running app follows.
    let changed = PACKAGE.replace(
        "    return app\n",
        "    @app.get(\"/version\")\n    def version():\n        return \"3\\n\"\n\n    return app\n",
    );
    let saved = ada
        .run_with_stdin(
            &[
                "--json",
                "edit",
                "notes",
                "--file",
                "notebook/__init__.py",
                "--stdin",
            ],
            &changed,
        )
        .ok()
        .json();
    assert_eq!(saved["version"], 3, "{saved}");
    let mut page = String::new();
    wait_for("the app to run version 3", || {
        let ps = ada.run(&["--json", "ps"]).ok().json();
        let Some(app) = ps
            .as_array()
            .and_then(|a| a.iter().find(|p| p["project_id"].as_i64() == Some(id)))
        else {
            return false;
        };
        if app["version"] != 3 || app["status"] != "running" {
            return false;
        }
        page = http_get(port_of(app), "/version", Duration::from_secs(10)).unwrap_or_default();
        page.ends_with("\r\n\r\n3\n")
    });
    let port = port_of(&run_app(&ada, "notes"));
    assert_eq!(body(port, "/"), "notes: eggs\n");

    // The export runs the detected target, and installs what pyproject.toml lists.
    let (_keep, tree) = exported(&ada, "notes");
    let dockerfile = std::fs::read_to_string(tree.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("\"notebook:create_app()\"]"),
        "{dockerfile}"
    );
    let requirements = std::fs::read_to_string(tree.join("requirements.txt")).unwrap();
    assert_eq!(requirements, "flask>=3.0\npytest>=8\n");
    let smoke = std::fs::read_to_string(tree.join("test_smoke.py")).unwrap();
    assert!(smoke.contains("import_module(\"notebook\")"), "{smoke}");
}

#[test]
fn a_wsgi_py_is_run_and_exported_as_its_target() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "site");
    let files = [
        ("requirements.txt", "flask>=3.0\npytest>=8\n"),
        (
            "wsgi.py",
            "from site_app import build\n\napplication = build()\n",
        ),
        (
            "site_app.py",
            "from flask import Flask\n\n\ndef build():\n    app = Flask(__name__)\n    \
             app.add_url_rule(\"/\", \"index\", lambda: \"from wsgi\\n\")\n    return app\n",
        ),
    ];
    let edit = replace_files(&ada, "site", &files).ok();
    assert_eq!(steps(&edit.json()), ["install", "import", "start"]);
    assert_runs(&ada, "site", "wsgi:application (wsgi.py)");
    let port = port_of(&run_app(&ada, "site"));
    assert_eq!(body(port, "/"), "from wsgi\n");
    let (_keep, tree) = exported(&ada, "site");
    let dockerfile = std::fs::read_to_string(tree.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("\"wsgi:application\"]"), "{dockerfile}");
}

#[test]
fn a_src_layout_package_named_by_its_build_backend_runs_from_src() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, "shop");
    let pyproject = r#"[project]
name = "shop-app"
version = "0.1.0"
dependencies = ["flask>=3.0", "pytest>=8"]

[tool.hatch.build.targets.wheel]
packages = ["src/shop"]

[tool.pytest.ini_options]
pythonpath = ["src"]
"#;
    let conftest = CONFTEST.replace("from notebook import", "from shop import");
    let files = [
        ("pyproject.toml", pyproject),
        ("src/shop/__init__.py", PACKAGE),
        ("tests/conftest.py", conftest.as_str()),
        ("tests/test_notes.py", TEST_NOTES),
    ];
    let edit = replace_files(&ada, "shop", &files).ok();
    assert_eq!(steps(&edit.json()), ["install", "import", "start", "tests"]);
    assert_runs(&ada, "shop", "shop:create_app() (named in pyproject.toml)");
    let port = port_of(&run_app(&ada, "shop"));
    assert_eq!(body(port, "/add?text=tea"), "added\n");
    assert_eq!(body(port, "/"), "notes: tea\n");
    // Flask's instance folder is beside the package, in the app's folder.
    let instance = run_folder(&daemon, id).join("src/instance/notes.txt");
    assert_eq!(std::fs::read_to_string(instance).unwrap(), "tea\n");
    let (_keep, tree) = exported(&ada, "shop");
    let dockerfile = std::fs::read_to_string(tree.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#""--pythonpath", "/app/src", "shop:create_app()"]"#),
        "{dockerfile}"
    );
}

#[test]
fn two_packages_that_could_be_the_app_are_refused_naming_both() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "two");
    let files = [
        ("requirements.txt", "flask>=3.0\npytest>=8\n"),
        ("shop/__init__.py", PACKAGE),
        (
            "admin/__init__.py",
            "from flask import Flask\n\napp = Flask(__name__)\n",
        ),
    ];
    let refused = replace_files(&ada, "two", &files);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("more than one package could be the app (admin, shop)"),
        "{refused:?}"
    );
    let history = ada.run(&["--json", "history", "two"]).ok().json();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
}
