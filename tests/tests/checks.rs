//! Checks by running, repair from real errors, `fix`, and apps that follow
//! their project's new versions: a scripted provider (a real HTTP server on
//! 127.0.0.1) answers, and the daemon installs, imports, starts and tests
//! each version for real before it saves it.

use std::time::Duration;

use appforge_e2e::apps::{new_project, page, port_of, ps_of, run_app, signed_up};
use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::{wait_for, Daemon};

/// Requirements of every reply here: the same as the offline scaffolder's,
/// so every test shares one installed environment.
const REQUIREMENTS: &str = "flask>=3.0\npytest>=8\n";

/// A reply with these files (path, content), in the canonical format.
fn reply(files: &[(&str, &str)]) -> String {
    let mut out = String::from("Here is the app.\n\n");
    for (path, content) in files {
        out.push_str(&format!("### {path}\n````\n{content}\n````\n\n"));
    }
    out
}

/// `app.py` of a Flask app whose `/` returns `body` (Python code).
fn flask_app(body: &str) -> String {
    format!(
        "from flask import Flask, render_template\n\napp = Flask(__name__)\n\n\n\
         @app.get(\"/\")\ndef index():\n    return {body}\n"
    )
}

/// An app that serves `marker` at `/` from `templates/index.html`.
fn good_app(marker: &str) -> String {
    reply(&[
        ("app.py", &flask_app("render_template(\"index.html\")")),
        ("templates/index.html", &format!("<p>{marker}</p>")),
        ("requirements.txt", REQUIREMENTS),
    ])
}

/// (round, outcome, tokens) of every history row, in order.
fn rounds(daemon: &Daemon) -> Vec<(i64, String, i64)> {
    let int = |cell: &Option<String>| cell.as_deref().unwrap().parse::<i64>().unwrap();
    daemon
        .sql("SELECT round, outcome, tokens_used FROM generation_history ORDER BY id")
        .iter()
        .map(|r| (int(&r[0]), r[1].clone().unwrap(), int(&r[2])))
        .collect()
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

fn project_count(daemon: &Daemon) -> i64 {
    daemon.sql("SELECT count(*) FROM projects")[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn an_import_error_goes_back_to_the_model_and_the_fixed_reply_is_saved() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(reply(&[
        (
            "app.py",
            "from flask import Flask\n\nraise RuntimeError(\"marker-import-boom\")\napp = Flask(__name__)\n",
        ),
        ("requirements.txt", REQUIREMENTS),
    ])));
    mock.push(Answer::Reply(good_app("fixed")));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    let out = user
        .run(&["--json", "generate", "x", "--save", "--name", "imp"])
        .ok()
        .json();
    assert_eq!(out["check_status"], "passed", "{out}");
    assert_eq!(out["repair_rounds"], 1, "{out}");
    let steps: Vec<&str> = out["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["install", "import", "start"], "{out}");
    // The second request carries the real traceback, paths made relative.
    let second = request_text(&mock, 1);
    assert!(
        second.contains("RuntimeError: marker-import-boom"),
        "{second}"
    );
    assert!(second.contains("the import check failed"), "{second}");
    assert!(
        !second.contains(daemon.data_dir.to_str().unwrap()),
        "{second}"
    );
    let rows = rounds(&daemon);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0, rows[0].1.as_str()), (0, "failed"));
    assert_eq!((rows[1].0, rows[1].1.as_str()), (1, "ok"));
    assert!(
        rows.iter().all(|r| r.2 > 0),
        "each round has its tokens: {rows:?}"
    );
    // Nothing of the checks is left behind.
    let scratch = daemon.data_dir.join("projects/checks");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_failing_test_of_the_apps_own_goes_back_and_is_fixed() {
    let mock = MockProvider::start();
    let broken = reply(&[
        ("app.py", &flask_app("\"hi\"")),
        (
            "test_app.py",
            "from app import app\n\n\ndef test_index():\n    assert app.test_client().get(\"/\").data == b\"marker-expected\"\n",
        ),
        ("requirements.txt", REQUIREMENTS),
    ]);
    mock.push(Answer::Reply(broken));
    mock.push(Answer::Reply(good_app("ok")));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    let out = user.run(&["--json", "generate", "x", "--save"]).ok().json();
    assert_eq!(out["repair_rounds"], 1, "{out}");
    let second = request_text(&mock, 1);
    assert!(second.contains("the tests check failed"), "{second}");
    assert!(second.contains("marker-expected"), "{second}");
}

#[test]
fn templates_beside_the_app_are_mended_without_a_second_round() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(reply(&[
        ("app.py", &flask_app("render_template(\"index.html\")")),
        ("index.html", "<p>at the root</p>"),
        ("requirements.txt", REQUIREMENTS),
    ])));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    let out = user
        .run(&["--json", "generate", "x", "--save", "--name", "root"])
        .ok()
        .json();
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(out["check_status"], "passed", "{out}");
    let mends = out["mends"].as_array().unwrap();
    assert_eq!(mends.len(), 1, "{out}");
    assert!(mends[0].as_str().unwrap().contains("templates/index.html"));
    let shown = user
        .run(&["show", "root", "--file", "templates/index.html"])
        .ok();
    assert!(shown.stdout.contains("at the root"), "{shown:?}");
    // And the saved app serves the page for real.
    let app = run_app(&user, "root");
    let port = port_of(&app);
    let page = page(port);
    assert!(page.contains("at the root"), "{page}");
}

#[test]
fn a_missing_dependency_is_added_under_its_distribution_name() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(reply(&[
        (
            "app.py",
            "import json\nimport yaml\nfrom flask import Flask\n\napp = Flask(__name__)\n",
        ),
        ("requirements.txt", "flask>=3.0\n"),
    ])));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    // Not run: installing PyYAML would need the package index.
    let out = user
        .run(&[
            "--json",
            "generate",
            "x",
            "--save",
            "--name",
            "dep",
            "--no-check",
        ])
        .ok()
        .json();
    assert_eq!(out["check_status"], "skipped", "{out}");
    let requirements = user
        .run(&["show", "dep", "--file", "requirements.txt"])
        .ok()
        .stdout;
    assert_eq!(requirements.trim_end(), "flask>=3.0\nPyYAML");
    assert!(
        out["mends"][0].as_str().unwrap().contains("PyYAML"),
        "{out}"
    );
    let listed = user.run(&["list"]).ok().stdout;
    assert!(listed.contains("(unchecked)"), "{listed}");
}

#[test]
fn the_same_error_again_stops_as_stuck_and_saves_nothing_unless_kept() {
    let crash = reply(&[
        ("app.py", &flask_app("1 / 0")),
        ("requirements.txt", REQUIREMENTS),
    ]);
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(crash));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    let out = user.run(&["generate", "x", "--save"]).fails_with(1);
    assert!(out.stderr.contains("the repair is stuck"), "{out:?}");
    assert!(out.stderr.contains("GET / answered 500"), "{out:?}");
    assert!(out.stderr.contains("ZeroDivisionError"), "{out:?}");
    // Round 0 and one repair: the repeat stopped it short of --repair-rounds 3.
    let errors: Vec<String> = daemon
        .sql("SELECT error FROM generation_history ORDER BY id")
        .into_iter()
        .map(|mut r| r.remove(0).unwrap())
        .collect();
    assert_eq!(mock.requests().len(), 2, "{errors:#?}");
    assert_eq!(project_count(&daemon), 0);
    assert_eq!(rounds(&daemon).len(), 2);
    // --keep-broken saves it, marked, and says so.
    let kept = user
        .run(&[
            "--json",
            "generate",
            "x",
            "--save",
            "--name",
            "kept",
            "--keep-broken",
        ])
        .ok()
        .json();
    assert_eq!(kept["check_status"], "failed", "{kept}");
    let listed = user.run(&["list"]).ok().stdout;
    assert!(listed.contains("1 (checks failed)"), "{listed}");
}

#[test]
fn fix_sends_a_crash_loops_traceback_and_the_app_runs_the_fixed_version() {
    let mock = MockProvider::start();
    let daemon = mock.daemon(&["--restart-limit", "2"], &[]);
    let user = signed_up(&daemon, "ada");
    new_project(&user, "loop");
    user.run_with_stdin(
        &["edit", "loop", "--file", "app.py", "--stdin", "--no-check"],
        "raise RuntimeError(\"marker-crash-loop\")\n",
    )
    .ok();
    let failed = user.run(&["run", "loop"]).fails_with(7);
    assert!(failed.stderr.contains("appforge fix loop"), "{failed:?}");
    wait_for("the app to be given up", || {
        ps_of(&user, 1).is_some_and(|a| a["status"] == "failed")
    });
    let ps = ps_of(&user, 1).unwrap();
    assert!(
        ps["hint"]
            .as_str()
            .unwrap_or("")
            .contains("appforge fix loop"),
        "{ps}"
    );
    // The scaffolder's tests are for the app the reply replaces: it
    // deletes them, or they would be kept.
    mock.push(Answer::Reply(format!(
        "{}### DELETE: test_app.py\n",
        good_app("marker-fixed")
    )));
    let out = user.run(&["--json", "fix", "loop"]).ok().json();
    let sent = request_text(&mock, 0);
    assert!(sent.contains("RuntimeError: marker-crash-loop"), "{sent}");
    assert_eq!(out["version"], 3, "{out}");
    assert_eq!(out["restarted"], true, "{out}");
    let app = ps_of(&user, 1).unwrap();
    assert_eq!(app["status"], "running", "{app}");
    assert_eq!(app["version"], 3, "{app}");
    let port = port_of(&app);
    let page = page(port);
    assert!(page.contains("marker-fixed"), "{page}");
}

#[test]
fn an_improve_of_a_running_app_moves_it_to_the_new_version() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(good_app("marker-one")));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    user.run(&["generate", "x", "--save", "--name", "live"])
        .ok();
    let first = run_app(&user, "live");
    let port = port_of(&first);
    assert_eq!(first["version"], 1, "{first}");
    mock.push(Answer::Reply(good_app("marker-two")));
    let out = user
        .run(&["--json", "improve", "live", "say two"])
        .ok()
        .json();
    assert_eq!(out["restarted"], true, "{out}");
    let served = page(port);
    assert!(served.contains("marker-two"), "{served}");
    let app = ps_of(&user, 1).unwrap();
    assert_eq!(
        (app["version"].as_i64(), app["port"].as_u64()),
        (Some(2), Some(port as u64))
    );
    // A version that fails its checks, kept anyway, does not replace it.
    mock.set_default(Answer::Reply(reply(&[
        ("app.py", "raise SystemExit(3)\n"),
        ("requirements.txt", REQUIREMENTS),
    ])));
    let kept = user
        .run(&["--json", "improve", "live", "break it", "--keep-broken"])
        .ok()
        .json();
    assert_eq!(
        (kept["check_status"].as_str(), kept["restarted"].as_bool()),
        (Some("failed"), Some(false))
    );
    let app = ps_of(&user, 1).unwrap();
    assert_eq!(
        (app["version"].as_i64(), app["newer_version"].as_i64()),
        (Some(2), Some(3)),
        "{app}"
    );
    let served = page(port);
    assert!(served.contains("marker-two"), "{served}");
}

#[test]
fn an_edit_that_breaks_the_app_is_refused_and_nothing_is_saved() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    new_project(&user, "todo");
    let out = user
        .run_with_stdin(
            &["edit", "todo", "--file", "app.py", "--stdin"],
            "import flask\nraise ImportError(\"marker-edit\")\n",
        )
        .fails_with(7);
    assert!(out.stderr.contains("the edit was not saved"), "{out:?}");
    assert!(out.stderr.contains("marker-edit"), "{out:?}");
    let history = user.run(&["--json", "history", "todo"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}

#[test]
fn a_provider_that_fails_during_a_repair_round_saves_nothing_and_keeps_both_rounds() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(reply(&[
        ("app.py", "raise RuntimeError(\"marker-first\")\n"),
        ("requirements.txt", REQUIREMENTS),
    ])));
    mock.set_default(Answer::Status(500));
    let daemon = mock.daemon(&["--max-retries", "1"], &[]);
    let user = signed_up(&daemon, "ada");
    let out = user.run(&["generate", "x", "--save"]).fails_with(1);
    assert!(out.stderr.contains("500"), "{out:?}");
    assert_eq!(project_count(&daemon), 0);
    let rows = rounds(&daemon);
    let outcomes: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed"], "{rows:?}");
}

#[test]
fn an_app_that_never_answers_fails_its_start_check_at_the_time_limit() {
    let mock = MockProvider::start();
    let hangs = format!("import time\n{}", flask_app("time.sleep(3600)"));
    mock.set_default(Answer::Reply(reply(&[
        ("app.py", &hangs),
        ("requirements.txt", REQUIREMENTS),
    ])));
    let daemon = mock.daemon(&["--start-timeout", "3"], &[]);
    let user = signed_up(&daemon, "ada");
    let started = std::time::Instant::now();
    let out = user
        .run(&["generate", "x", "--save", "--repair-rounds", "0"])
        .fails_with(1);
    assert!(out.stderr.contains("the start check failed"), "{out:?}");
    assert!(
        out.stderr.contains("did not answer HTTP within 3 s"),
        "{out:?}"
    );
    // Cut at its limit, not at a request's own 30 s read time-out.
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(project_count(&daemon), 0);
    // Nothing of the hung app is left running (its namespace's processes
    // die with its init, a moment after the shim).
    wait_for("the hung app's processes to be gone", || {
        daemon.app_processes().is_empty()
    });
}

#[test]
fn fix_with_nothing_to_fix_says_so_and_another_users_project_is_not_found() {
    let mock = MockProvider::start();
    let daemon = mock.daemon(&[], &[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    let out = ada.run(&["fix", "todo"]).fails_with(2);
    assert!(out.stderr.contains("has no failure to fix"), "{out:?}");
    let bob = signed_up(&daemon, "bob");
    let theirs = bob.run(&["fix", "todo", "it is slow"]).fails_with(3);
    assert!(theirs.stderr.contains("no project `todo`"), "{theirs:?}");
    assert!(mock.requests().is_empty());
}

#[test]
fn an_unchecked_version_never_replaces_a_running_app() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(good_app("marker-one")));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    user.run(&["generate", "x", "--save", "--name", "live"])
        .ok();
    let first = run_app(&user, "live");
    let port = port_of(&first);
    assert_eq!(first["version"], 1, "{first}");

    // An edit without checks is saved, and the app stays on version 1.
    let edited = user
        .run_with_stdin(
            &[
                "--json",
                "edit",
                "live",
                "--file",
                "templates/index.html",
                "--stdin",
                "--no-check",
            ],
            "<p>marker-unchecked-edit</p>\n",
        )
        .ok()
        .json();
    assert_eq!(
        (
            edited["version"].as_i64(),
            edited["check_status"].as_str(),
            edited["restarted"].as_bool()
        ),
        (Some(2), Some("skipped"), Some(false)),
        "{edited}"
    );
    let app = ps_of(&user, 1).unwrap();
    assert_eq!(
        (app["version"].as_i64(), app["newer_version"].as_i64()),
        (Some(1), Some(2)),
        "{app}"
    );
    assert_eq!(app["pid"], first["pid"], "the app was not restarted: {app}");
    let served = page(port);
    assert!(served.contains("marker-one"), "{served}");

    // An improve without checks neither.
    mock.push(Answer::Reply(good_app("marker-unchecked-improve")));
    let improved = user
        .run(&["--json", "improve", "live", "say so", "--no-check"])
        .ok()
        .json();
    assert_eq!(
        (
            improved["version"].as_i64(),
            improved["check_status"].as_str(),
            improved["restarted"].as_bool()
        ),
        (Some(3), Some("skipped"), Some(false)),
        "{improved}"
    );
    let app = ps_of(&user, 1).unwrap();
    assert_eq!(
        (app["version"].as_i64(), app["newer_version"].as_i64()),
        (Some(1), Some(3)),
        "{app}"
    );
    let served = page(port);
    assert!(served.contains("marker-one"), "{served}");

    // A checked version does replace it.
    mock.push(Answer::Reply(good_app("marker-checked")));
    let checked = user
        .run(&["--json", "improve", "live", "say checked"])
        .ok()
        .json();
    assert_eq!(checked["restarted"], true, "{checked}");
    let app = ps_of(&user, 1).unwrap();
    assert_eq!(app["version"], 4, "{app}");
    let served = page(port_of(&app));
    assert!(served.contains("marker-checked"), "{served}");
}

/// The files of a project's newest version, by path.
fn files_of(
    user: &appforge_e2e::User,
    project: &str,
) -> std::collections::BTreeMap<String, String> {
    let doc = user.run(&["--json", "show", project]).ok().json();
    doc["files"]
        .as_array()
        .expect("files is an array")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn improve_and_fix_keep_the_files_a_reply_leaves_out_and_delete_only_on_request() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(good_app("marker-one")));
    let daemon = mock.daemon(&[], &[]);
    let user = signed_up(&daemon, "ada");
    user.run(&["generate", "x", "--save", "--name", "notes"])
        .ok();
    // A big file of the user's own, which no reply will repeat.
    let notes: String = (0..18_000)
        .map(|i| format!("note {i:05}: keep me, every byte\n"))
        .collect();
    assert!(notes.len() > 500_000);
    user.run_with_stdin(
        &[
            "edit",
            "notes",
            "--file",
            "notes.txt",
            "--stdin",
            "--no-check",
        ],
        &notes,
    )
    .ok();

    // A reply that writes one file changes that file and keeps the rest.
    mock.push(Answer::Reply(reply(&[(
        "templates/index.html",
        "<p>marker-two</p>",
    )])));
    let out = user
        .run(&["--json", "improve", "notes", "say two"])
        .ok()
        .json();
    assert_eq!(out["version"], 3, "{out}");
    assert_eq!(out["deleted"], serde_json::json!([]), "{out}");
    let sent = request_text(&mock, 1);
    assert!(
        sent.contains("### DELETE: "),
        "the model is told how to delete: {sent}"
    );
    let files = files_of(&user, "notes");
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "app.py",
            "notes.txt",
            "requirements.txt",
            "templates/index.html"
        ]
    );
    assert_eq!(files["notes.txt"], notes);
    assert!(files["templates/index.html"].contains("marker-two"));
    assert!(files["app.py"].contains("render_template"));

    // `fix` works the same way.
    mock.push(Answer::Reply(reply(&[(
        "templates/index.html",
        "<p>marker-fixed</p>",
    )])));
    let out = user
        .run(&["--json", "fix", "notes", "the page says two"])
        .ok()
        .json();
    assert_eq!(out["version"], 4, "{out}");
    let files = files_of(&user, "notes");
    assert_eq!(files["notes.txt"], notes);
    assert!(files["templates/index.html"].contains("marker-fixed"));

    // An explicit deletion removes the file and says so.
    mock.push(Answer::Reply(format!(
        "Done.\n\n### DELETE: notes.txt\n\n{}",
        reply(&[("templates/index.html", "<p>marker-three</p>")])
    )));
    let out = user.run(&["improve", "notes", "drop the notes"]).ok();
    assert!(
        out.stdout.contains("deleted: notes.txt") || out.stderr.contains("deleted: notes.txt"),
        "{out:?}"
    );
    let files = files_of(&user, "notes");
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["app.py", "requirements.txt", "templates/index.html"]
    );
    assert!(files["templates/index.html"].contains("marker-three"));
    let diff = user.run(&["--json", "diff", "notes"]).ok().json();
    assert!(
        diff["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "notes.txt"),
        "{diff}"
    );

    // Saying it in --json too.
    mock.push(Answer::Reply(format!(
        "### DELETE: `templates/index.html`\n\n{}",
        reply(&[
            ("app.py", &flask_app("render_template(\"page.html\")")),
            ("templates/page.html", "<p>moved</p>"),
        ])
    )));
    let out = user
        .run(&["--json", "improve", "notes", "rename the page"])
        .ok()
        .json();
    assert_eq!(
        out["deleted"],
        serde_json::json!(["templates/index.html"]),
        "{out}"
    );
}

#[test]
fn the_checks_bring_pytest_themselves_and_never_add_it_to_the_requirements() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    new_project(&user, "todo");
    // The offline scaffolder's app has tests; without pytest among its
    // requirements, they still run.
    let out = user
        .run_with_stdin(
            &[
                "--json",
                "edit",
                "todo",
                "--file",
                "requirements.txt",
                "--stdin",
            ],
            "flask>=3.0\n",
        )
        .ok();
    let steps = out.json()["checks"].to_string();
    assert!(
        steps.contains("\"tests\"") && !steps.contains("false"),
        "the tests step did not run and pass: {}",
        out.stdout
    );
    let shown = user
        .run(&["show", "todo", "--file", "requirements.txt"])
        .ok()
        .stdout;
    assert!(!shown.contains("pytest"), "pytest was added: {shown}");
}

/// When the checks cannot install pytest for themselves, an edit whose app
/// lacks it is refused with that reason, and nothing is saved.
#[test]
fn checks_that_cannot_install_pytest_say_so_and_save_nothing() {
    let python = appforge_e2e::python();
    let real_uv = python.with_file_name("uv");
    assert!(
        real_uv.exists(),
        "no uv beside {}: `make pyenv` installs it",
        python.display()
    );
    // A uv that refuses to install the checks' own requirements (pytest
    // alone), as an index without it would, and is the real one otherwise.
    let bin = tempfile::tempdir().unwrap();
    let uv = bin.path().join("uv");
    std::fs::write(
        &uv,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do\n  if [ -f \"$a\" ] && [ \"$(cat \"$a\")\" = pytest ]; then\n    \
             echo 'no pytest on this index' >&2; exit 1\n  fi\ndone\nexec {} \"$@\"\n",
            real_uv.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&uv, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let envs = tempfile::tempdir().unwrap();
    let envs_arg = envs.path().display().to_string();
    let daemon = Daemon::start_with(
        &["--installer", "uv", "--env-dir", &envs_arg],
        &[("PATH", &path)],
    );
    let user = signed_up(&daemon, "ada");
    new_project(&user, "todo");
    let out = user
        .run_with_stdin(
            &["edit", "todo", "--file", "requirements.txt", "--stdin"],
            "flask>=3.0\n",
        )
        .fails_with(7);
    assert!(
        out.stderr
            .contains("could not install pytest for the checks"),
        "{}",
        out.stderr
    );
    let history = user.run(&["--json", "history", "todo"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}
