//! `appforge import DIR`: a folder the user already has becomes a project,
//! its version 1 of kind `import`, checked by really installing, importing,
//! starting and testing it; what does not belong in a project is left out,
//! and what cannot be imported is refused with its path, saving nothing.

use std::fs;
use std::path::Path;

use appforge_e2e::apps::{page, port_of, run_app, signed_up};
use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::{Daemon, User};

/// The same requirements as the offline scaffolder's, so the checks share
/// one installed environment with the other tests.
const REQUIREMENTS: &str = "flask>=3.0\npytest>=8\n";

const APP: &str = "from flask import Flask, render_template\n\napp = Flask(__name__)\n\n\n\
                   @app.get(\"/\")\ndef index():\n    return render_template(\"index.html\")\n";

const TEST: &str = "from app import app\n\n\ndef test_index():\n    \
                    response = app.test_client().get(\"/\")\n    \
                    assert response.status_code == 200\n    \
                    assert b\"imported-marker\" in response.data\n";

fn write(root: &Path, path: &str, content: &[u8]) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// A small Flask app in a folder, with what a real folder also holds: a
/// git repository, a virtual environment, a cache, a file .gitignore names.
fn app_folder(root: &Path) {
    write(root, "app.py", APP.as_bytes());
    write(root, "templates/index.html", b"<p>imported-marker</p>\n");
    write(root, "requirements.txt", REQUIREMENTS.as_bytes());
    write(root, "test_app.py", TEST.as_bytes());
    write(root, ".gitignore", b"notes.local\n");
    write(root, "notes.local", b"private notes\n");
    write(root, ".git/HEAD", b"ref: refs/heads/main\n");
    write(root, ".git/config", b"[core]\n");
    write(root, ".venv/pyvenv.cfg", b"home = /usr/bin\n");
    write(root, ".venv/lib/site.py", b"x = 1\n");
    write(root, "__pycache__/app.cpython-311.pyc", b"\x00\x01\x02");
    write(root, "static/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00");
}

fn projects_count(user: &User) -> usize {
    user.run(&["--json", "list"])
        .ok()
        .json()
        .as_array()
        .expect("list prints an array")
        .len()
}

fn show_paths(user: &User, project: &str) -> Vec<String> {
    let doc = user.run(&["--json", "show", project]).ok().json();
    doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_folder_becomes_version_one_of_kind_import_and_runs() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    app_folder(&root);

    let out = user
        .run(&["--json", "import", root.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(out["name"], "shop", "{out}");
    assert_eq!(out["version"], 1, "{out}");
    assert_eq!(out["kind"], "import", "{out}");
    assert_eq!(out["check_status"], "passed", "{out}");
    let steps: Vec<&str> = out["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"tests"), "its own tests ran: {out}");
    let left: Vec<&str> = out["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    for gone in [
        ".git/",
        ".venv/",
        "__pycache__/",
        "notes.local",
        "static/logo.png",
    ] {
        assert!(
            left.contains(&gone),
            "{gone} is not said to be left out: {out}"
        );
    }

    let mut paths = show_paths(&user, "shop");
    paths.sort();
    assert_eq!(
        paths,
        [
            ".gitignore",
            "app.py",
            "requirements.txt",
            "templates/index.html",
            "test_app.py"
        ]
    );
    let history = user.run(&["--json", "history", "shop"]).ok().json();
    let versions = history.as_array().unwrap();
    assert_eq!(versions.len(), 1, "{history}");
    assert_eq!(versions[0]["kind"], "import", "{history}");

    let running = run_app(&user, "shop");
    assert!(
        page(port_of(&running)).contains("imported-marker"),
        "the imported app answers HTTP"
    );
    user.run(&["stop", "shop"]).ok();
}

#[test]
fn the_text_summary_lists_files_with_lines_and_what_was_left_out() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    app_folder(&root);

    let out = user
        .run(&[
            "import",
            root.to_str().unwrap(),
            "--name",
            "my-shop",
            "--no-check",
        ])
        .ok();
    assert!(out.stdout.contains("5 files"), "{}", out.stdout);
    assert!(out.stdout.contains("app.py"), "{}", out.stdout);
    assert!(
        out.stdout.contains("static/logo.png (binary"),
        "binary files left out are named first: {}",
        out.stdout
    );
    assert!(out.stdout.contains(".venv/"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Saved as `my-shop` version 1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("checks skipped"), "{}", out.stdout);
}

/// Spoils an app folder.
type Spoil<'a> = Box<dyn Fn(&Path) + 'a>;

/// Each folder that cannot be imported is refused with exit status 2, its
/// path named, and no project saved.
#[test]
fn refusals_name_the_path_and_save_nothing() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.txt"), "hush\n").unwrap();

    let cases: Vec<(&str, Spoil<'_>, &str)> = vec![
        (
            "link",
            Box::new(|root: &Path| {
                std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("leak.txt"))
                    .unwrap()
            }),
            "leak.txt",
        ),
        (
            "binary",
            Box::new(|root: &Path| write(root, "data/model.bin", &vec![0u8; 2 * 1024 * 1024])),
            "data/model.bin",
        ),
        (
            "many",
            Box::new(|root: &Path| {
                for n in 0..250 {
                    write(root, &format!("pages/p{n}.txt"), b"x\n");
                }
            }),
            "more than 200 files",
        ),
        (
            "unsafe",
            Box::new(|root: &Path| write(root, "bad name.py", b"x = 1\n")),
            "bad name.py",
        ),
    ];
    for (name, spoil, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(name);
        app_folder(&root);
        spoil(&root);
        let out = user.run(&["import", root.to_str().unwrap()]).fails_with(2);
        assert!(
            out.stderr.contains(named),
            "{name}: the refusal names {named}: {}",
            out.stderr
        );
        let json = user
            .run(&["--json", "import", root.to_str().unwrap()])
            .fails_with(2);
        assert!(json.stderr.contains(named), "{name}: {}", json.stderr);
    }
    assert_eq!(projects_count(&user), 0, "nothing was saved");
}

#[test]
fn a_failing_import_is_refused_with_the_checks_output_unless_keep_broken() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("broken");
    app_folder(&root);
    write(
        &root,
        "app.py",
        format!("{APP}\nraise RuntimeError(\"no-database-configured\")\n").as_bytes(),
    );

    let out = user.run(&["import", root.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("the import was not saved"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no-database-configured"),
        "the check's output is shown: {}",
        out.stderr
    );
    assert!(out.stderr.contains("--keep-broken"), "{}", out.stderr);
    assert_eq!(projects_count(&user), 0, "nothing was saved");

    let kept = user
        .run(&["--json", "import", root.to_str().unwrap(), "--keep-broken"])
        .ok()
        .json();
    assert_eq!(kept["check_status"], "failed", "{kept}");
    assert_eq!(kept["version"], 1, "{kept}");
    assert_eq!(projects_count(&user), 1);
}

#[test]
fn a_taken_name_is_refused_before_the_checks() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    app_folder(&root);
    user.run(&["import", root.to_str().unwrap(), "--no-check"])
        .ok();
    let out = user.run(&["import", root.to_str().unwrap(), "--name", "shop"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("shop"), "{}", out.stderr);
    // Without a name, the folder's name gets a number.
    let again = user
        .run(&["--json", "import", root.to_str().unwrap(), "--no-check"])
        .ok()
        .json();
    assert_eq!(again["name"], "shop-2", "{again}");
}

/// A folder whose app fails to import, as the model would be shown it.
fn broken_folder(root: &Path) {
    app_folder(root);
    write(
        root,
        "app.py",
        format!("{APP}\nraise RuntimeError(\"no-database-configured\")\n").as_bytes(),
    );
}

/// The text of every message of the `n`th request the provider got.
fn request_text(mock: &MockProvider, n: usize) -> String {
    mock.requests()[n].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn repair_keeps_the_folder_as_version_one_and_saves_the_models_repair_as_two() {
    let mock = MockProvider::start();
    let repaired = format!(
        "Here is the app.\n\n### app.py\n````\n{APP}\n````\n\n### requirements.txt\n````\n\
         {REQUIREMENTS}\n````\n"
    );
    mock.push(Answer::Reply(repaired));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("broken");
    broken_folder(&root);

    let out = user
        .run(&["--json", "import", root.to_str().unwrap(), "--repair"])
        .ok()
        .json();
    assert_eq!(out["version"], 2, "{out}");
    assert_eq!(out["repaired"], true, "{out}");
    assert_eq!(out["check_status"], "passed", "{out}");
    assert_eq!(out["changed"], serde_json::json!(["app.py"]), "{out}");
    let asked = request_text(&mock, 0);
    assert!(
        asked.contains("no-database-configured"),
        "the model is shown the check's failure: {asked}"
    );
    let history = user.run(&["--json", "history", "broken"]).ok().json();
    let kinds: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap(),
                v["check_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("import", "failed"), ("fix", "passed")]);
}

#[test]
fn a_failed_repair_says_version_one_is_kept_as_failing() {
    let mock = MockProvider::start();
    mock.push(Answer::Status(400));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("broken");
    broken_folder(&root);

    let out = user.run(&["import", root.to_str().unwrap(), "--repair"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("saved as version 1") && out.stderr.contains("the repair failed"),
        "{}",
        out.stderr
    );
    let history = user.run(&["--json", "history", "broken"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["check_status"], "failed", "{history}");
}
