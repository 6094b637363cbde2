//! Projects end to end: `list`, `show`, `edit`, `delete`, `history`, `diff`,
//! `rollback` and `export` through the real client and daemon.
//!
//! Projects come from the offline `template` provider, so no key and no
//! network are needed. Editors are small shell scripts written by the tests
//! and handed to `appforge edit` through `$EDITOR`; archives are unpacked and
//! their tests run with the test Python. Every refusal is checked to leave the
//! project exactly as it was (its `show` and `history` documents unchanged).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use appforge_e2e::apps::set_requirements;
use appforge_e2e::{python, wait_for, Daemon, Run, User};
use serde_json::Value;
use tempfile::TempDir;

/// The prompt every test project is generated from.
const TODO_PROMPT: &str = "a todo app with title and done flag";

/// What every generated project holds.
const TEMPLATE_FILES: [&str; 6] = [
    "README.md",
    "app.py",
    "requirements.txt",
    "scaffold.json",
    "templates/index.html",
    "test_app.py",
];

/// A name that needs quoting in a shell, escaping in a path and care in UTF-8.
const ODD_NAME: &str = "my \"app\" ü $HOME;*";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A signed-up user called `name`.
fn signed_up(daemon: &Daemon, name: &str) -> User {
    let user = daemon.user(name);
    user.signup().ok();
    user
}

/// Saves a template project called `name` and returns its id.
fn new_project(user: &User, name: &str) -> i64 {
    let out = user
        .run(&["--json", "generate", TODO_PROMPT, "--save", "--name", name])
        .ok()
        .json();
    out["project_id"]
        .as_i64()
        .expect("a saved project has an id")
}

/// The usual start: a daemon, ada signed up, and her project `todo`.
fn ada_with_todo() -> (Daemon, User, i64) {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, "todo");
    (daemon, ada, id)
}

/// Runs a prepared `appforge` command with empty stdin and collects what it did.
fn run_cmd(cmd: &mut Command) -> Run {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run appforge");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes an editor script (mode 0755) into `dir` and returns its path. The
/// script runs with `set -e`; `body` sees the files as `"$@"`. A `tmp`
/// folder is created next to it, which [`edit_with`] uses as `TMPDIR`.
fn editor(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("editor.sh");
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    path
}

/// Runs `appforge ARGS` with `editor` as `$EDITOR` (no `$VISUAL`) and the
/// editor's `tmp` neighbour as `TMPDIR`, so leftovers stay in the test's folder.
fn edit_with(user: &User, editor: &Path, args: &[&str]) -> Run {
    let tmp = editor.parent().unwrap().join("tmp");
    run_cmd(
        user.command(args)
            .env_remove("VISUAL")
            .env("EDITOR", editor)
            .env("TMPDIR", tmp),
    )
}

/// `show --json` of a project (newest version).
fn show(user: &User, project: &str) -> Value {
    user.run(&["--json", "show", project]).ok().json()
}

/// `history --json` of a project.
fn history(user: &User, project: &str) -> Vec<Value> {
    user.run(&["--json", "history", project])
        .ok()
        .json()
        .as_array()
        .expect("history is an array")
        .clone()
}

/// Everything the client can see of a project; equal before and after an
/// operation means that operation changed nothing.
fn state(user: &User, project: &str) -> (Value, Vec<Value>) {
    (show(user, project), history(user, project))
}

/// The `files` of a `show --json` document, by path.
fn files_of(doc: &Value) -> BTreeMap<String, String> {
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

/// The files of one version of a project.
fn files_at(user: &User, project: &str, version: i64) -> BTreeMap<String, String> {
    let doc = user
        .run(&["--json", "show", project, "--version", &version.to_string()])
        .ok()
        .json();
    assert_eq!(doc["version"], version, "{doc}");
    files_of(&doc)
}

/// A JSON array of strings as a vector.
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// Writes `files` into `dir`.
fn checkout(files: &BTreeMap<String, String>, dir: &Path) {
    for (path, content) in files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
}

/// Every regular file under `dir`, by its `/`-separated path relative to `dir`.
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                let key = relative.to_str().unwrap().to_string();
                out.insert(key, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The names directly inside `dir`.
fn entries_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Applies a unified diff to a checkout of `from` with `patch -p1` and
/// returns the resulting files.
fn apply_patch(from: &BTreeMap<String, String>, diff: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    checkout(from, dir.path());
    let mut child = Command::new("patch")
        // -E: a file the diff empties is removed, whichever way deletion is written.
        .args(["-p1", "-E", "-f", "-s", "--no-backup-if-mismatch"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run patch");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(diff.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "patch -p1 refused the diff:\n{}{}\n--- the diff ---\n{diff}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    read_tree(dir.path())
}

/// The paths named in a message that exist on disk (where a refused edit
/// says it kept the edited copy).
fn existing_paths_in(message: &str) -> Vec<PathBuf> {
    message
        .split(|c: char| c.is_whitespace() || "'\"`,;()[]<>".contains(c))
        .map(|token| token.trim_end_matches(['.', ':']))
        .filter(|token| token.starts_with('/'))
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .collect()
}

/// How a zip file starts.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// How a gzip file starts.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Asserts that the file at `path` starts with `magic`.
#[track_caller]
fn assert_magic(path: &Path, magic: &[u8]) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(magic),
        "{} does not start with {magic:02x?} ({} bytes, starting {:02x?})",
        path.display(),
        bytes.len(),
        &bytes[..bytes.len().min(8)]
    );
}

/// The file names inside an archive (zip or tar.gz), as stored, directories left out.
fn archive_names(archive: &Path) -> Vec<String> {
    let script = "import sys, tarfile, zipfile\n\
        p = sys.argv[1]\n\
        if zipfile.is_zipfile(p):\n\
        \x20   names = [n for n in zipfile.ZipFile(p).namelist() if not n.endswith('/')]\n\
        else:\n\
        \x20   names = [m.name for m in tarfile.open(p).getmembers() if not m.isdir()]\n\
        print('\\n'.join(names))\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(archive)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python could not read {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Unpacks an archive (zip or tar.gz) into `into`.
fn unpack(archive: &Path, into: &Path) {
    let name = archive.to_str().unwrap();
    let out = if name.ends_with(".zip") {
        Command::new(python())
            .args(["-m", "zipfile", "-e", name])
            .arg(into)
            .output()
    } else {
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into)
            .output()
    }
    .expect("unpack");
    assert!(
        out.status.success(),
        "unpacking {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The single top folder every archive entry sits in.
fn top_folder(names: &[String]) -> String {
    let top = names[0].split('/').next().unwrap().to_string();
    for name in names {
        assert!(
            name.starts_with(&format!("{top}/")) && !name.split('/').any(|p| p == ".."),
            "{name} is not under the one top folder {top}/: {names:?}"
        );
    }
    top
}

/// Whether a file name uses only `[A-Za-z0-9._-]`.
fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// `(backend_code, frontend_code, last_modified)` of a `projects` row.
fn project_row(daemon: &Daemon, id: i64) -> (String, String, String) {
    let rows = daemon.sql(&format!(
        "SELECT backend_code, frontend_code, last_modified FROM projects WHERE id = {id}"
    ));
    let r = &rows[0];
    (
        r[0].clone().unwrap(),
        r[1].clone().unwrap(),
        r[2].clone().unwrap(),
    )
}

/// A file's content in `project_files` for one version.
fn stored_file(daemon: &Daemon, id: i64, version: i64, path: &str) -> Option<String> {
    let path = path.replace('\'', "''");
    daemon
        .sql(&format!(
            "SELECT f.content FROM project_files f JOIN project_versions v ON v.id = f.version_id \
             WHERE v.project_id = {id} AND v.version = {version} AND f.path = '{path}'"
        ))
        .into_iter()
        .next()
        .and_then(|mut r| r.remove(0))
}

/// Replaces `path`'s content through `edit --file PATH --stdin`.
fn edit_stdin(user: &User, project: &str, path: &str, content: &str) -> Value {
    user.run_with_stdin(
        &["--json", "edit", project, "--file", path, "--stdin"],
        content,
    )
    .ok()
    .json()
}

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

#[test]
fn list_shows_only_the_callers_projects_by_id() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let bob = signed_up(&daemon, "bob");
    let first = new_project(&ada, "first");
    let theirs = new_project(&bob, "bobs");
    let second = new_project(&ada, "second");
    ada.run(&["--json", "improve", "second", "add a priority number"])
        .ok();

    let list = ada.run(&["--json", "list"]).ok().json();
    let list = list.as_array().expect("an array");
    let ids: Vec<i64> = list.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [first, second], "{list:?}");
    for key in [
        "id",
        "name",
        "status",
        "port",
        "version",
        "created_at",
        "last_modified",
    ] {
        assert!(list[0].get(key).is_some(), "no {key} in {}", list[0]);
    }
    assert_eq!(list[0]["name"], "first");
    assert_eq!(list[0]["version"], 1);
    assert_eq!(list[1]["name"], "second");
    assert_eq!(list[1]["version"], 2);

    let bobs = bob.run(&["--json", "list"]).ok().json();
    let bob_ids: Vec<i64> = bobs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(bob_ids, [theirs]);

    let carol = signed_up(&daemon, "carol");
    assert_eq!(
        carol.run(&["--json", "list"]).ok().json(),
        Value::Array(vec![])
    );
}

#[test]
fn list_as_text_is_a_table_with_a_header_row() {
    let (_daemon, ada, _) = ada_with_todo();
    new_project(&ada, "notes");
    let out = ada.run(&["list"]).ok();
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 3, "a header and two rows: {out:?}");
    let header = lines[0].to_lowercase();
    assert!(
        header.contains("name") && header.contains("id"),
        "the first row is a header: {out:?}"
    );
    assert!(lines[1..].iter().any(|l| l.contains("todo")), "{out:?}");
    assert!(lines[1..].iter().any(|l| l.contains("notes")), "{out:?}");
}

// ---------------------------------------------------------------------------
// show
// ---------------------------------------------------------------------------

#[test]
fn show_json_has_the_project_and_all_its_files_by_id_and_by_name() {
    let (_daemon, ada, id) = ada_with_todo();
    let by_name = show(&ada, "todo");
    let by_id = show(&ada, &id.to_string());
    assert_eq!(by_name, by_id);
    for key in [
        "id",
        "name",
        "prompt",
        "version",
        "status",
        "port",
        "created_at",
        "last_modified",
        "files",
    ] {
        assert!(by_name.get(key).is_some(), "no {key} in {by_name}");
    }
    assert_eq!(by_name["id"], id);
    assert_eq!(by_name["name"], "todo");
    assert_eq!(by_name["prompt"], TODO_PROMPT);
    assert_eq!(by_name["version"], 1);
    let files = files_of(&by_name);
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(paths, TEMPLATE_FILES);
    assert!(files["app.py"].contains("def create_app("));
}

#[test]
fn show_as_text_prints_each_file_under_a_header_with_its_path() {
    let (_daemon, ada, _) = ada_with_todo();
    let files = files_of(&show(&ada, "todo"));
    let out = run_cmd(
        ada.command(&["show", "todo"])
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm-256color"),
    )
    .ok();
    assert!(
        !out.stdout.contains('\u{1b}'),
        "no colour when not a terminal"
    );
    for (path, content) in &files {
        // Some line names the path, and the file's content follows it
        // (after at most blank or purely decorative lines).
        let mut offset = 0;
        let found = out.stdout.split_inclusive('\n').any(|line| {
            offset += line.len();
            if !line.contains(path.as_str()) {
                return false;
            }
            let mut rest = &out.stdout[offset..];
            loop {
                if rest.starts_with(content.as_str()) {
                    return true;
                }
                match rest.split_inclusive('\n').next() {
                    Some(next) if !next.chars().any(char::is_alphanumeric) => {
                        rest = &rest[next.len()..]
                    }
                    _ => return false,
                }
            }
        });
        assert!(
            found,
            "{path} is not printed under a header:\n{}",
            out.stdout
        );
    }
}

#[test]
fn show_file_prints_just_that_file_byte_for_byte() {
    let (_daemon, ada, _) = ada_with_todo();
    let files = files_of(&show(&ada, "todo"));
    for path in ["app.py", "templates/index.html", "requirements.txt"] {
        let out = ada.run(&["show", "todo", "--file", path]).ok();
        assert_eq!(out.stdout, files[path], "{path} is not printed as it is");
    }
    let doc = ada
        .run(&["--json", "show", "todo", "--file", "app.py"])
        .ok()
        .json();
    let only = files_of(&doc);
    assert_eq!(only.len(), 1, "{doc}");
    assert_eq!(only["app.py"], files["app.py"]);
}

#[test]
fn show_of_a_missing_file_is_not_found_and_names_the_file() {
    let (_daemon, ada, _) = ada_with_todo();
    let out = ada
        .run(&["show", "todo", "--file", "nope/missing.py"])
        .fails_with(3);
    assert!(out.stderr.contains("nope/missing.py"), "{out:?}");
}

#[test]
fn show_version_shows_an_older_version_and_refuses_bad_ones() {
    let (_daemon, ada, _) = ada_with_todo();
    let v1 = files_of(&show(&ada, "todo"));
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    let v2 = files_of(&show(&ada, "todo"));
    assert_ne!(v1, v2, "improve changed the files");
    assert_eq!(files_at(&ada, "todo", 1), v1);
    assert_eq!(files_at(&ada, "todo", 2), v2);

    ada.run(&["show", "todo", "--version", "3"]).fails_with(3);
    ada.run(&["show", "todo", "--version", "0"]).fails_with(2);
    ada.run(&["show", "todo", "--version=-1"]).fails_with(2);
    ada.run(&["show", "todo", "--version", "two"]).fails_with(2);
}

// ---------------------------------------------------------------------------
// edit
// ---------------------------------------------------------------------------

#[test]
fn an_edit_of_one_file_in_the_editor_saves_a_new_version() {
    let (daemon, ada, id) = ada_with_todo();
    let dir = TempDir::new().unwrap();
    let args_log = dir.path().join("args");
    let script = editor(
        dir.path(),
        &format!(
            "test \"$#\" -eq 1\nprintf '%s\\n' \"$1\" > '{}'\nsed -i 's/status=\"ok\"/status=\"healthy\"/' \"$1\"",
            args_log.display()
        ),
    );
    let out = edit_with(
        &ada,
        &script,
        // The change breaks the app's own test: unchecked, as this test is
        // about the editor.
        &["--json", "edit", "todo", "--file", "app.py", "--no-check"],
    )
    .ok()
    .json();
    assert_eq!(out["project_id"], id);
    assert_eq!(out["name"], "todo");
    assert_eq!(out["version"], 2);
    assert_eq!(out["saved"], true);
    assert_eq!(strings(&out["changed"]), ["app.py"]);

    let arg = std::fs::read_to_string(&args_log).unwrap();
    assert!(arg.trim_end().ends_with("app.py"), "editor got {arg:?}");
    let app = ada.run(&["show", "todo", "--file", "app.py"]).ok().stdout;
    assert!(app.contains("status=\"healthy\""), "{app}");
    let versions = history(&ada, "todo");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["kind"], "edit");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(project_row(&daemon, id).0, app);
}

#[test]
fn an_edit_without_file_opens_every_file_in_a_temp_folder() {
    let (_daemon, ada, _) = ada_with_todo();
    let dir = TempDir::new().unwrap();
    let args_log = dir.path().join("args");
    // Every argument is a file, and the files sit in the current directory.
    let script = editor(
        dir.path(),
        &format!(
            "for f in \"$@\"; do test -f \"$f\"; done\n\
             test -f app.py && test -f templates/index.html\n\
             printf '%s\\n' \"$@\" > '{}'\n\
             printf '<!-- edited -->\\n' >> templates/index.html",
            args_log.display()
        ),
    );
    let before = files_of(&show(&ada, "todo"));
    let out = edit_with(&ada, &script, &["--json", "edit", "todo"])
        .ok()
        .json();
    assert_eq!(out["saved"], true);
    assert_eq!(out["version"], 2);
    assert_eq!(strings(&out["changed"]), ["templates/index.html"]);

    let args = std::fs::read_to_string(&args_log).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(args.len(), TEMPLATE_FILES.len(), "editor got {args:?}");
    for path in TEMPLATE_FILES {
        assert!(
            args.iter()
                .any(|a| *a == path || a.ends_with(&format!("/{path}"))),
            "{path} not given to the editor: {args:?}"
        );
    }

    let after = files_of(&show(&ada, "todo"));
    assert_eq!(
        after["templates/index.html"],
        format!("{}<!-- edited -->\n", before["templates/index.html"])
    );
    assert_eq!(after["app.py"], before["app.py"]);
}

#[test]
fn visual_is_preferred_to_editor() {
    let (_daemon, ada, _) = ada_with_todo();
    let good = TempDir::new().unwrap();
    let visual = editor(good.path(), "printf 'visual was here\\n' >> \"$1\"");
    let bad = TempDir::new().unwrap();
    let failing = editor(bad.path(), "exit 3");
    let out = run_cmd(
        ada.command(&["--json", "edit", "todo", "--file", "README.md"])
            .env("VISUAL", &visual)
            .env("EDITOR", &failing),
    )
    .ok()
    .json();
    assert_eq!(out["saved"], true);
    let readme = ada
        .run(&["show", "todo", "--file", "README.md"])
        .ok()
        .stdout;
    assert!(readme.ends_with("visual was here\n"), "{readme}");
}

#[test]
fn an_editor_with_arguments_is_run_through_the_shell() {
    let (_daemon, ada, _) = ada_with_todo();
    let dir = TempDir::new().unwrap();
    // The first argument is the word from $EDITOR, the file comes after it.
    let script = editor(
        dir.path(),
        "test \"$1\" = --marker\nprintf 'with args\\n' >> \"$2\"",
    );
    let value = format!("{} --marker", script.display());
    let out = run_cmd(
        ada.command(&["--json", "edit", "todo", "--file", "README.md"])
            .env_remove("VISUAL")
            .env("EDITOR", value),
    )
    .ok()
    .json();
    assert_eq!(out["saved"], true, "{out}");
}

#[test]
fn edit_stdin_replaces_one_file_with_exactly_what_was_read() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = files_of(&show(&ada, "todo"));
    let new_app = format!(
        "{}\n# changed through stdin, ünïcode kept\n",
        before["app.py"]
    );
    let out = edit_stdin(&ada, "todo", "app.py", &new_app);
    assert_eq!(out["saved"], true);
    assert_eq!(out["version"], 2);
    assert_eq!(strings(&out["changed"]), ["app.py"]);
    let shown = ada.run(&["show", "todo", "--file", "app.py"]).ok().stdout;
    assert_eq!(shown, new_app);
    let after = files_of(&show(&ada, "todo"));
    assert_eq!(after.len(), before.len());
    assert_eq!(after["README.md"], before["README.md"]);
}

#[test]
fn edit_stdin_with_a_new_path_adds_a_file() {
    let (_daemon, ada, _) = ada_with_todo();
    let content = "console.log('hello');\n";
    let out = edit_stdin(&ada, "todo", "static/extra.js", content);
    assert_eq!(out["saved"], true);
    assert_eq!(strings(&out["changed"]), ["static/extra.js"]);
    let files = files_of(&show(&ada, "todo"));
    assert_eq!(files.len(), TEMPLATE_FILES.len() + 1);
    assert_eq!(files["static/extra.js"], content);
}

#[test]
fn edit_stdin_without_file_is_a_usage_error() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    ada.run_with_stdin(&["edit", "todo", "--stdin"], "x = 1\n")
        .fails_with(2);
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn an_edit_that_changes_nothing_saves_nothing() {
    let (daemon, ada, id) = ada_with_todo();
    let before = state(&ada, "todo");
    let row = project_row(&daemon, id);

    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "true");
    for args in [
        &["--json", "edit", "todo"][..],
        &["--json", "edit", "todo", "--file", "app.py"][..],
    ] {
        let out = edit_with(&ada, &script, args).ok().json();
        assert_eq!(out["saved"], false, "{args:?}: {out}");
        assert_eq!(out["version"], 1, "{args:?}: {out}");
        assert_eq!(strings(&out["changed"]), Vec::<String>::new());
    }
    let same = files_of(&before.0)["app.py"].clone();
    let out = edit_stdin(&ada, "todo", "app.py", &same);
    assert_eq!(out["saved"], false, "{out}");

    assert_eq!(state(&ada, "todo"), before);
    assert_eq!(project_row(&daemon, id), row);
}

#[test]
fn an_edit_that_breaks_python_syntax_is_refused_and_saves_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    let app = files_of(&before.0)["app.py"].clone();
    let bad_line = app.lines().count() + 1;

    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "printf 'def oops(:\\n' >> app.py");
    let out = edit_with(&ada, &script, &["edit", "todo"]).fails_with(2);
    assert!(
        out.stderr.contains("app.py") && out.stderr.contains(&format!("line {bad_line}")),
        "the message names the file and line {bad_line}: {out:?}"
    );
    let kept = existing_paths_in(&out.stderr);
    assert!(
        !kept.is_empty(),
        "the message says where the edit was kept: {out:?}"
    );
    assert!(
        kept.iter().any(|p| {
            let file = if p.is_dir() {
                p.join("app.py")
            } else {
                p.clone()
            };
            std::fs::read_to_string(file).is_ok_and(|c| c.contains("def oops(:"))
        }),
        "the kept copy holds the edit: {kept:?}"
    );

    let out = ada
        .run_with_stdin(
            &["edit", "todo", "--file", "test_app.py", "--stdin"],
            "import os\n\n\nif True\n    pass\n",
        )
        .fails_with(2);
    assert!(
        out.stderr.contains("test_app.py") && out.stderr.contains("line 4"),
        "{out:?}"
    );
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn an_editor_that_fails_saves_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    let dir = TempDir::new().unwrap();
    let script = editor(
        dir.path(),
        "printf '<!-- half done -->\\n' >> templates/index.html\nexit 3",
    );
    let out = edit_with(&ada, &script, &["edit", "todo"]).fails_with(1);
    let message = out.stderr.to_lowercase();
    assert!(
        message.contains("editor")
            && (message.contains("nothing was saved") || message.contains("not saved")),
        "{out:?}"
    );
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn unsafe_paths_are_refused_and_save_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    for path in ["../x.py", "/etc/x", "a/../../x.py", "templates/../../x.py"] {
        ada.run_with_stdin(&["edit", "todo", "--file", path, "--stdin"], "x = 1\n")
            .fails_with(2);
    }
    // Through the editor too, and nothing lands next to the temp folder.
    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "printf 'x = 1\\n' > \"$1\"");
    edit_with(&ada, &script, &["edit", "todo", "--file", "../x.py"]).fails_with(2);
    assert!(!dir.path().join("x.py").exists());
    assert!(!dir.path().join("tmp/x.py").exists());
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn deleting_app_py_in_the_editor_is_refused_and_saves_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "rm app.py");
    let out = edit_with(&ada, &script, &["edit", "todo"]).fails_with(2);
    assert!(out.stderr.contains("app.py"), "{out:?}");
    assert!(
        !existing_paths_in(&out.stderr).is_empty(),
        "the message says where the edit was kept: {out:?}"
    );
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn deleting_another_file_in_the_editor_saves_a_version_without_it() {
    let (_daemon, ada, _) = ada_with_todo();
    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "rm README.md");
    let out = edit_with(&ada, &script, &["--json", "edit", "todo"])
        .ok()
        .json();
    assert_eq!(out["saved"], true);
    assert_eq!(strings(&out["changed"]), ["README.md"]);
    let files = files_of(&show(&ada, "todo"));
    assert!(!files.contains_key("README.md"), "{:?}", files.keys());
    assert_eq!(files.len(), TEMPLATE_FILES.len() - 1);
    // The diff of a removal applies too.
    let diff = ada.run(&["diff", "todo"]).ok().stdout;
    assert_eq!(apply_patch(&files_at(&ada, "todo", 1), &diff), files);
}

#[test]
fn edits_keep_the_project_row_in_step() {
    let (daemon, ada, id) = ada_with_todo();
    let files = files_of(&show(&ada, "todo"));
    let (backend, frontend, mut last) = project_row(&daemon, id);
    assert_eq!(backend, files["app.py"]);
    assert_eq!(frontend, files["templates/index.html"]);

    let mut check_new_version = |what: &str| {
        let now = project_row(&daemon, id).2;
        assert_ne!(now, last, "last_modified unchanged after {what}");
        last = now;
    };

    let new_app = format!("{}\n# v2\n", files["app.py"]);
    edit_stdin(&ada, "todo", "app.py", &new_app);
    assert_eq!(project_row(&daemon, id).0, new_app);
    check_new_version("an edit of app.py");

    let new_page = format!("{}<!-- v3 -->\n", files["templates/index.html"]);
    edit_stdin(&ada, "todo", "templates/index.html", &new_page);
    let (backend, frontend, _) = project_row(&daemon, id);
    assert_eq!(
        (backend.as_str(), frontend.as_str()),
        (new_app.as_str(), new_page.as_str())
    );
    check_new_version("an edit of templates/index.html");

    let new_readme = "# todo\n\nedited\n";
    edit_stdin(&ada, "todo", "README.md", new_readme);
    assert_eq!(
        stored_file(&daemon, id, 4, "README.md").as_deref(),
        Some(new_readme)
    );
    assert_eq!(
        stored_file(&daemon, id, 1, "README.md").as_deref(),
        Some(files["README.md"].as_str()),
        "older versions keep their files"
    );
    check_new_version("an edit of README.md");

    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    check_new_version("improve");
    ada.run(&["--json", "rollback", "todo", "1"]).ok();
    check_new_version("rollback");
    let (backend, frontend, _) = project_row(&daemon, id);
    assert_eq!(backend, files["app.py"]);
    assert_eq!(frontend, files["templates/index.html"]);
}

// ---------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------

#[test]
fn delete_removes_the_project_by_name_or_id() {
    let (_daemon, ada, id) = ada_with_todo();
    let other = new_project(&ada, "notes");

    let out = ada.run(&["--json", "delete", "todo", "--yes"]).ok().json();
    assert_eq!(out["id"], id);
    assert_eq!(out["name"], "todo");
    ada.run(&["show", "todo"]).fails_with(3);
    ada.run(&["show", &id.to_string()]).fails_with(3);
    ada.run(&["history", "todo"]).fails_with(3);
    ada.run(&["delete", "todo", "--yes"]).fails_with(3);

    let out = ada
        .run(&["--json", "delete", &other.to_string(), "--yes"])
        .ok()
        .json();
    assert_eq!(out["id"], other);
    assert_eq!(out["name"], "notes");
    ada.run(&["show", "notes"]).fails_with(3);
    assert_eq!(
        ada.run(&["--json", "list"]).ok().json(),
        Value::Array(vec![])
    );
}

// ---------------------------------------------------------------------------
// history
// ---------------------------------------------------------------------------

#[test]
fn history_lists_every_version_oldest_first_with_its_kind() {
    let (_daemon, ada, _) = ada_with_todo();
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    edit_stdin(&ada, "todo", "README.md", "# todo\n");
    ada.run(&["--json", "rollback", "todo", "1"]).ok();

    let versions = history(&ada, "todo");
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    let kinds: Vec<&str> = versions
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(kinds, ["generate", "improve", "edit", "rollback"]);
    for v in &versions {
        for key in [
            "version",
            "kind",
            "prompt",
            "tokens_used",
            "generation_id",
            "files",
            "created_at",
        ] {
            assert!(v.get(key).is_some(), "no {key} in {v}");
        }
        assert!(!v["created_at"].as_str().unwrap().is_empty());
    }
    assert_eq!(versions[0]["prompt"], TODO_PROMPT);
    assert!(versions[0]["generation_id"].as_i64().is_some());
    assert!(versions[1]["generation_id"].as_i64().is_some());
    assert!(versions[1]["prompt"]
        .as_str()
        .unwrap()
        .contains("add a priority number"));
}

// ---------------------------------------------------------------------------
// diff
// ---------------------------------------------------------------------------

#[test]
fn diff_defaults_to_the_newest_version_and_the_one_before() {
    let (_daemon, ada, id) = ada_with_todo();
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    edit_stdin(&ada, "todo", "static/extra.js", "let x = 1;\n");

    let newest = ada.run(&["--json", "diff", "todo"]).ok().json();
    assert_eq!(newest["project_id"], id);
    assert_eq!(
        (newest["from"].as_i64(), newest["to"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(strings(&newest["changed"]), ["static/extra.js"]);
    let unified = newest["diff"].as_str().unwrap();
    assert!(unified.contains("--- /dev/null"), "{unified}");
    assert!(unified.contains("+++ b/static/extra.js"), "{unified}");
    assert!(unified.contains("+let x = 1;"), "{unified}");

    let explicit = ada.run(&["--json", "diff", "todo", "2", "3"]).ok().json();
    assert_eq!(explicit, newest);

    // A alone: from A to the newest.
    let from_one = ada.run(&["--json", "diff", "todo", "1"]).ok().json();
    assert_eq!(
        (from_one["from"].as_i64(), from_one["to"].as_i64()),
        (Some(1), Some(3))
    );
    let changed = strings(&from_one["changed"]);
    assert!(changed.contains(&"app.py".to_string()), "{changed:?}");
    assert!(
        changed.contains(&"static/extra.js".to_string()),
        "{changed:?}"
    );
    let mut sorted = changed.clone();
    sorted.sort();
    assert_eq!(changed, sorted, "changed paths are sorted");
}

#[test]
fn diff_of_a_project_with_one_version_is_empty() {
    let (_daemon, ada, _) = ada_with_todo();
    let out = ada.run(&["--json", "diff", "todo"]).ok().json();
    assert_eq!(
        (out["from"].as_i64(), out["to"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(strings(&out["changed"]), Vec::<String>::new());
    assert_eq!(out["diff"], "");
    let text = ada.run(&["diff", "todo"]).ok();
    assert!(text.stdout.trim().is_empty(), "{text:?}");
}

#[test]
fn the_unified_diff_applies_with_patch() {
    let (_daemon, ada, _) = ada_with_todo();
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    let files = files_of(&show(&ada, "todo"));
    edit_stdin(
        &ada,
        "todo",
        "app.py",
        &files["app.py"].replacen("import", "# first line changed\nimport", 1),
    );
    // An added file without a final newline.
    edit_stdin(&ada, "todo", "static/extra.js", "console.log('no newline')");

    for (a, b) in [(1, 2), (2, 3), (3, 4), (1, 4), (2, 4)] {
        let (from, to) = (a.to_string(), b.to_string());
        let out = run_cmd(
            ada.command(&["diff", "todo", &from, &to])
                .env_remove("NO_COLOR")
                .env_remove("CLICOLOR_FORCE")
                .env("TERM", "xterm-256color"),
        )
        .ok();
        assert!(
            !out.stdout.contains('\u{1b}'),
            "no colour when not a terminal: {out:?}"
        );
        let patched = apply_patch(&files_at(&ada, "todo", a), &out.stdout);
        assert_eq!(patched, files_at(&ada, "todo", b), "diff {a} {b}");

        let json = ada.run(&["--json", "diff", "todo", &from, &to]).ok().json();
        assert_eq!(
            json["diff"].as_str().unwrap().trim_end(),
            out.stdout.trim_end(),
            "the text and JSON diffs agree"
        );
    }
    let text = ada.run(&["diff", "todo", "2", "3"]).ok().stdout;
    assert!(text.contains("--- a/app.py"), "{text}");
    assert!(text.contains("+++ b/app.py"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("@@")), "{text}");
    assert!(text.contains("+# first line changed"), "{text}");
}

#[test]
fn diff_with_a_version_out_of_range_is_not_found_and_changes_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    let before = state(&ada, "todo");
    ada.run(&["diff", "todo", "1", "3"]).fails_with(3);
    ada.run(&["diff", "todo", "3"]).fails_with(3);
    ada.run(&["diff", "todo", "9", "1"]).fails_with(3);
    ada.run(&["diff", "todo", "0"]).fails_with(2);
    ada.run(&["diff", "todo", "1", "-2"]).fails_with(2);
    assert_eq!(state(&ada, "todo"), before);
}

// ---------------------------------------------------------------------------
// rollback
// ---------------------------------------------------------------------------

#[test]
fn rollback_makes_a_new_version_equal_to_the_old_one_and_keeps_history() {
    let (_daemon, ada, id) = ada_with_todo();
    let v1 = files_of(&show(&ada, "todo"));
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    let v2 = files_of(&show(&ada, "todo"));
    let earlier = history(&ada, "todo");

    let out = ada.run(&["--json", "rollback", "todo", "1"]).ok().json();
    assert_eq!(out["project_id"], id);
    assert_eq!(out["name"], "todo");
    assert_eq!(out["version"], 3);
    assert_eq!(out["saved"], true);
    let mut expected: Vec<String> = v1
        .iter()
        .filter(|(path, content)| v2.get(*path) != Some(content))
        .map(|(path, _)| path.clone())
        .chain(v2.keys().filter(|p| !v1.contains_key(*p)).cloned())
        .collect();
    expected.sort();
    assert_eq!(strings(&out["changed"]), expected);

    assert_eq!(files_of(&show(&ada, "todo")), v1);
    assert_eq!(files_at(&ada, "todo", 1), v1);
    assert_eq!(files_at(&ada, "todo", 2), v2);
    let versions = history(&ada, "todo");
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[..2], earlier[..], "earlier versions are unchanged");
    assert_eq!(versions[2]["kind"], "rollback");
}

#[test]
fn rolling_back_to_what_the_newest_version_holds_saves_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    ada.run(&["--json", "improve", "todo", "add a priority number"])
        .ok();
    ada.run(&["--json", "rollback", "todo", "1"]).ok();
    let before = state(&ada, "todo");
    // Version 3 is the newest; version 1 holds the same files.
    for version in ["3", "1"] {
        let out = ada
            .run(&["--json", "rollback", "todo", version])
            .ok()
            .json();
        assert_eq!(out["saved"], false, "rollback {version}: {out}");
        assert_eq!(out["version"], 3, "rollback {version}: {out}");
    }
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn rollback_to_a_version_that_does_not_exist_is_refused() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    ada.run(&["rollback", "todo", "2"]).fails_with(3);
    ada.run(&["rollback", "todo", "99"]).fails_with(3);
    ada.run(&["rollback", "todo", "0"]).fails_with(2);
    ada.run(&["rollback", "todo"]).fails_with(2);
    assert_eq!(state(&ada, "todo"), before);
}

// ---------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------

#[test]
fn export_writes_a_zip_named_after_the_project_in_the_current_folder() {
    let (_daemon, ada, _) = ada_with_todo();
    let here = TempDir::new().unwrap();
    let out = run_cmd(
        ada.command(&["--json", "export", "todo"])
            .current_dir(here.path()),
    )
    .ok()
    .json();
    assert_eq!(entries_of(here.path()), ["todo.zip"]);
    let archive = here.path().join("todo.zip");
    assert_eq!(
        Path::new(out["path"].as_str().unwrap()).file_name(),
        archive.file_name()
    );
    assert_eq!(
        out["bytes"].as_u64(),
        Some(std::fs::metadata(&archive).unwrap().len())
    );
    assert_magic(&archive, ZIP_MAGIC);

    let names = archive_names(&archive);
    let top = top_folder(&names);
    assert!(is_safe_file_name(&top), "{top}");
    let mut listed = strings(&out["files"]);
    listed.sort();
    assert_eq!(listed, names, "--json lists the archive's paths");
    for wanted in TEMPLATE_FILES.iter().chain(&[
        "Dockerfile",
        ".dockerignore",
        "test_smoke.py",
        ".github/workflows/ci.yml",
    ]) {
        assert!(
            names.contains(&format!("{top}/{wanted}")),
            "no {wanted} in {names:?}"
        );
    }
}

#[test]
fn the_export_holds_the_project_and_what_docker_and_ci_need() {
    let (_daemon, ada, _) = ada_with_todo();
    let files = files_of(&show(&ada, "todo"));
    let here = TempDir::new().unwrap();
    let archive = here.path().join("todo.zip");
    ada.run(&["--json", "export", "todo", "-o", archive.to_str().unwrap()])
        .ok();
    let unpacked = TempDir::new().unwrap();
    unpack(&archive, unpacked.path());
    let top = entries_of(unpacked.path());
    assert_eq!(top.len(), 1, "{top:?}");
    let tree = read_tree(&unpacked.path().join(&top[0]));

    for (path, content) in &files {
        if path != "README.md" {
            assert_eq!(tree.get(path), Some(content), "{path} is exported as it is");
        }
    }
    let dockerfile = &tree["Dockerfile"];
    assert!(dockerfile.contains("FROM python:3.12-slim"), "{dockerfile}");
    let user = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .unwrap_or_else(|| panic!("no USER in {dockerfile}"));
    assert!(
        !matches!(user.trim(), "root" | "0" | "0:0" | "root:root"),
        "the image runs as {user}"
    );
    for needle in ["gunicorn", "EXPOSE", "HEALTHCHECK"] {
        assert!(dockerfile.contains(needle), "no {needle} in {dockerfile}");
    }
    assert!(!tree[".dockerignore"].trim().is_empty());
    assert!(
        tree["README.md"].to_lowercase().contains("docker"),
        "{}",
        tree["README.md"]
    );
    assert!(tree["test_smoke.py"].contains("def test_"));
    assert!(!tree[".github/workflows/ci.yml"].trim().is_empty());
}

#[test]
fn an_exported_tar_gz_unpacks_and_its_tests_pass() {
    let (_daemon, ada, _) = ada_with_todo();
    let here = TempDir::new().unwrap();
    let archive = here.path().join("todo.tar.gz");
    let out = ada
        .run(&["--json", "export", "todo", "-o", archive.to_str().unwrap()])
        .ok()
        .json();
    assert_magic(&archive, GZIP_MAGIC);
    let names = archive_names(&archive);
    let top = top_folder(&names);
    let mut listed = strings(&out["files"]);
    listed.sort();
    assert_eq!(listed, names);

    let unpacked = TempDir::new().unwrap();
    unpack(&archive, unpacked.path());
    let root = unpacked.path().join(&top);
    let tests = Command::new(python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&root)
        .env_remove("PYTHONPATH")
        .env_remove("APP_DATABASE")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&tests.stdout);
    assert!(
        tests.status.success(),
        "the exported project's tests failed:\n{report}{}",
        String::from_utf8_lossy(&tests.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

#[test]
fn export_chooses_the_format_by_the_file_name_and_refuses_others() {
    let (_daemon, ada, _) = ada_with_todo();
    let here = TempDir::new().unwrap();
    for (name, magic) in [
        ("a.zip", ZIP_MAGIC),
        ("b.tar.gz", GZIP_MAGIC),
        ("c.tgz", GZIP_MAGIC),
    ] {
        let path = here.path().join(name);
        ada.run(&["export", "todo", "-o", path.to_str().unwrap()])
            .ok();
        assert_magic(&path, magic);
    }
    let before = entries_of(here.path());
    for name in ["d.rar", "e.tar", "f", "g.zip.txt"] {
        let path = here.path().join(name);
        let out = ada
            .run(&["export", "todo", "-o", path.to_str().unwrap()])
            .fails_with(2);
        assert!(!out.stderr.trim().is_empty(), "{out:?}");
    }
    assert_eq!(entries_of(here.path()), before, "nothing more was written");
}

#[test]
fn exports_are_byte_identical_every_time_even_after_a_restart() {
    let (mut daemon, ada, _) = ada_with_todo();
    let here = TempDir::new().unwrap();
    let export = |name: &str| -> Vec<u8> {
        let path = here.path().join(name);
        ada.run(&["export", "todo", "-o", path.to_str().unwrap()])
            .ok();
        std::fs::read(path).unwrap()
    };
    let zip = export("1.zip");
    let tgz = export("1.tar.gz");
    for name in ["1.zip", "1.tar.gz"] {
        let names = archive_names(&here.path().join(name));
        assert!(!names.is_empty(), "{name} is an archive with files");
    }

    // Timestamps must not leak in: let the clock move past zip's 2-second
    // resolution before exporting again.
    let seconds = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = seconds();
    wait_for("the clock to move on", || seconds() >= start + 3);
    assert_eq!(export("2.zip"), zip);
    assert_eq!(export("2.tar.gz"), tgz);

    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    assert_eq!(export("3.zip"), zip, "zip after a restart");
    assert_eq!(export("3.tar.gz"), tgz, "tar.gz after a restart");
}

#[test]
fn an_unwritable_output_path_fails_cleanly_and_leaves_nothing() {
    let (_daemon, ada, _) = ada_with_todo();
    let here = TempDir::new().unwrap();
    let afile = here.path().join("afile");
    std::fs::write(&afile, "just a file\n").unwrap();
    for target in [
        afile.join("out.zip"),
        afile.join("out.tar.gz"),
        here.path().join("no-such-dir").join("out.zip"),
    ] {
        let out = ada
            .run(&["export", "todo", "-o", target.to_str().unwrap()])
            .fails_with(2);
        assert!(
            out.stderr.contains("out.zip") || out.stderr.contains("out.tar.gz"),
            "the message names the path: {out:?}"
        );
        assert_eq!(entries_of(here.path()), ["afile"], "left behind");
        assert_eq!(std::fs::read_to_string(&afile).unwrap(), "just a file\n");
    }
}

#[test]
fn export_replaces_an_existing_archive_only_with_force() {
    let (_daemon, ada, _) = ada_with_todo();
    let here = TempDir::new().unwrap();
    let named = here.path().join("mine.zip");
    let default = here.path().join("todo.zip");
    for path in [&named, &default] {
        std::fs::write(path, "keep me\n").unwrap();
    }
    let export = |args: &[&str]| {
        let mut all = vec!["export", "todo"];
        all.extend(args);
        run_cmd(ada.command(&all).current_dir(here.path()))
    };

    // Named with -o, and by default (./todo.zip): neither is replaced.
    for args in [&["-o", named.to_str().unwrap()][..], &[]] {
        let out = export(args).fails_with(2);
        assert!(
            out.stderr.contains("already exists") && out.stderr.contains("--force"),
            "{out:?}"
        );
    }
    for path in [&named, &default] {
        assert_eq!(std::fs::read_to_string(path).unwrap(), "keep me\n");
    }
    assert_eq!(
        entries_of(here.path()),
        ["mine.zip", "todo.zip"],
        "no temporary file is left"
    );

    // --force replaces them.
    export(&["-o", named.to_str().unwrap(), "--force"]).ok();
    export(&["--force"]).ok();
    for path in [&named, &default] {
        assert_magic(path, ZIP_MAGIC);
    }
    assert_eq!(entries_of(here.path()), ["mine.zip", "todo.zip"]);
}

#[test]
fn list_history_and_ps_show_local_relative_times_and_json_keeps_rfc_3339() {
    let (_daemon, ada, _) = ada_with_todo();
    let tokyo = |args: &[&str]| run_cmd(ada.command(args).env("TZ", "JST-9")).ok();
    let listed = ada.run(&["--json", "list"]).ok().json();
    let stored = listed[0]["last_modified"].as_str().unwrap().to_string();
    assert!(
        stored.ends_with('Z') && stored.contains('T'),
        "RFC 3339 UTC: {stored}"
    );
    // In Tokyo (UTC+9, no daylight saving; a POSIX zone, which needs no
    // zone database) the clock reads nine hours on.
    let in_tokyo = |utc: &str| {
        let hour: u32 = utc[11..13].parse().unwrap();
        format!("{:02}:{}", (hour + 9) % 24, &utc[14..16])
    };
    let history = ada.run(&["--json", "history", "todo"]).ok().json();
    let created = history[0]["created_at"].as_str().unwrap_or("").to_string();
    for (args, column, utc) in [
        (&["list"][..], "LAST MODIFIED", &stored),
        (&["history", "todo"][..], "CREATED", &created),
    ] {
        let local = in_tokyo(utc);
        let table = tokyo(args).stdout;
        assert!(table.contains(column), "{table}");
        assert!(!table.contains(&stored[..16]), "raw UTC in:\n{table}");
        let row = table.lines().nth(1).unwrap_or("");
        assert!(
            row.contains(&format!("just now ({local})"))
                || row.contains(&format!("1 min ago ({local}")),
            "no local relative time ({local}) in:\n{table}"
        );
    }
    // The same moment as the list's (the two rows may be written a second
    // apart), in the same form.
    assert!(
        created.ends_with('Z')
            && (appforge_e2e::epoch_seconds(&created) - appforge_e2e::epoch_seconds(&stored)).abs()
                <= 5.0,
        "{created} is not {stored}"
    );

    ada.run(&["run", "todo"]).ok();
    let table = tokyo(&["ps"]).stdout;
    assert!(table.contains("STARTED"), "{table}");
    let row = table.lines().nth(1).unwrap_or("");
    assert!(
        row.contains(" just now (") || row.contains(" 1 min ago ("),
        "{table}"
    );
    let ps = ada.run(&["--json", "ps"]).ok().json();
    assert!(ps[0]["uptime_s"].as_u64().is_some(), "{ps}");
    ada.run(&["stop", "todo"]).ok();
}

// ---------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------

/// Every project command, with `{}` standing for the project.
const EVERY_COMMAND: &[&[&str]] = &[
    &["show", "{}"],
    &["show", "{}", "--file", "app.py"],
    &["show", "{}", "--version", "1"],
    &["edit", "{}", "--file", "app.py", "--stdin"],
    &["edit", "{}"],
    &["history", "{}"],
    &["diff", "{}"],
    &["diff", "{}", "1", "1"],
    &["rollback", "{}", "1"],
    &["improve", "{}", "add a priority number"],
    &["export", "{}", "-o", "{out}"],
    &["delete", "{}", "--yes"],
];

/// Runs one of [`EVERY_COMMAND`] on `project`, with an editor that would
/// change app.py and `out` as the export target.
fn run_on(user: &User, command: &[&str], project: &str, editor: &Path, out: &Path) -> Run {
    let args: Vec<String> = command
        .iter()
        .map(|a| match *a {
            "{}" => project.to_string(),
            "{out}" => out.to_str().unwrap().to_string(),
            other => other.to_string(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = user.command(&args);
    cmd.env_remove("VISUAL").env("EDITOR", editor);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn appforge");
    // A broken pipe is fine: the command may not read its stdin.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"app = None  # replaced\n");
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn another_users_project_is_not_found_exactly_like_a_missing_one() {
    let (daemon, ada, id) = ada_with_todo();
    let before = state(&ada, "todo");
    let bob = signed_up(&daemon, "bob");
    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "printf 'x = 1\\n' >> app.py");
    let out = dir.path().join("stolen.zip");

    let id = id.to_string();
    for (theirs, missing) in [(id.as_str(), "999999"), ("todo", "no-such-project")] {
        for command in EVERY_COMMAND {
            let got = run_on(&bob, command, theirs, &script, &out).fails_with(3);
            let expected = run_on(&bob, command, missing, &script, &out).fails_with(3);
            assert_eq!(
                got.stderr.replace(theirs, "<P>"),
                expected.stderr.replace(missing, "<P>"),
                "{command:?} on ada's {theirs} tells bob more than on {missing}"
            );
            assert_eq!(got.stdout, expected.stdout, "{command:?}");
        }
    }
    assert!(!out.exists(), "bob exported ada's project");
    assert_eq!(state(&ada, "todo"), before, "ada's project changed");
    assert_eq!(
        bob.run(&["--json", "list"]).ok().json(),
        Value::Array(vec![])
    );
}

#[test]
fn without_a_session_every_project_command_is_refused() {
    let (daemon, ada, id) = ada_with_todo();
    let before = state(&ada, "todo");
    let anon = daemon.user("anon");
    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "printf 'x = 1\\n' >> app.py");
    let out = dir.path().join("anon.zip");
    anon.run(&["list"]).fails_with(4);
    let id = id.to_string();
    for project in [id.as_str(), "todo"] {
        for command in EVERY_COMMAND {
            let run = run_on(&anon, command, project, &script, &out).fails_with(4);
            assert!(!run.stderr.trim().is_empty(), "{command:?}");
        }
    }
    assert!(!out.exists());
    assert_eq!(state(&ada, "todo"), before);
}

#[test]
fn unknown_projects_are_not_found_for_every_command() {
    let (_daemon, ada, _) = ada_with_todo();
    let before = state(&ada, "todo");
    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "printf 'x = 1\\n' >> app.py");
    let out = dir.path().join("ghost.zip");
    for project in ["ghost", "424242"] {
        for command in EVERY_COMMAND {
            let run = run_on(&ada, command, project, &script, &out).fails_with(3);
            assert!(run.stderr.contains(project), "{command:?}: {run:?}");
        }
        let json = ada.run(&["--json", "history", project]).fails_with(3);
        let error: Value = serde_json::from_str(json.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {json:?}"));
        assert_eq!(error["error"]["code"], "not-found", "{error}");
        assert!(error["error"]["message"].as_str().is_some(), "{error}");
        assert!(json.stdout.is_empty(), "{json:?}");
    }
    assert!(!out.exists());
    assert_eq!(state(&ada, "todo"), before);
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

#[test]
fn a_project_with_an_odd_name_is_used_by_that_name() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, ODD_NAME);

    let shown = show(&ada, ODD_NAME);
    assert_eq!(shown["id"], id);
    assert_eq!(shown["name"], ODD_NAME);
    let list = ada.run(&["--json", "list"]).ok().json();
    assert_eq!(list[0]["name"], ODD_NAME);

    let dir = TempDir::new().unwrap();
    let script = editor(dir.path(), "printf '<!-- odd -->\\n' >> \"$1\"");
    let edited = edit_with(
        &ada,
        &script,
        &["--json", "edit", ODD_NAME, "--file", "templates/index.html"],
    )
    .ok()
    .json();
    assert_eq!(edited["saved"], true);
    assert_eq!(edited["name"], ODD_NAME);
    edit_stdin(&ada, ODD_NAME, "README.md", "# odd\n");
    assert_eq!(history(&ada, ODD_NAME).len(), 3);

    let diff = ada.run(&["--json", "diff", ODD_NAME, "1", "2"]).ok().json();
    assert_eq!(strings(&diff["changed"]), ["templates/index.html"]);

    let here = TempDir::new().unwrap();
    run_cmd(
        ada.command(&["--json", "export", ODD_NAME])
            .current_dir(here.path()),
    )
    .ok();
    let written = entries_of(here.path());
    assert_eq!(written.len(), 1, "{written:?}");
    let file_name = &written[0];
    assert!(
        is_safe_file_name(file_name) && file_name.ends_with(".zip") && file_name.len() > 4,
        "unsafe default archive name {file_name:?}"
    );
    let names = archive_names(&here.path().join(file_name));
    let top = top_folder(&names);
    assert!(is_safe_file_name(&top), "unsafe top folder {top:?}");

    ada.run(&["--json", "rollback", ODD_NAME, "1"]).ok();
    let deleted = ada
        .run(&["--json", "delete", ODD_NAME, "--yes"])
        .ok()
        .json();
    assert_eq!(deleted["id"], id);
    ada.run(&["show", ODD_NAME]).fails_with(3);
}

#[test]
fn a_name_of_only_digits_is_refused_at_save() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let out = ada
        .run(&["generate", TODO_PROMPT, "--save", "--name", "2024"])
        .fails_with(2);
    assert!(!out.stderr.trim().is_empty(), "{out:?}");
    assert_eq!(
        ada.run(&["--json", "list"]).ok().json(),
        Value::Array(vec![])
    );
}

/// Runs `appforge ARGS` with its stdout on a pseudo-terminal, through util-linux
/// `script`, and returns what the terminal showed.
fn on_a_terminal(user: &User, args: &[&str]) -> String {
    let probe = user.command(args);
    let mut line = shell_quote(&probe.get_program().to_string_lossy());
    for arg in probe.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    for (key, value) in probe.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let run = run_cmd(cmd.env("TERM", "xterm-256color").env_remove("NO_COLOR"));
    assert_eq!(run.code, 0, "{} failed on a terminal: {}", line, run.stderr);
    run.stdout
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn on_a_terminal_show_highlights_code_and_diff_is_coloured() {
    let (_daemon, ada, _) = ada_with_todo();
    let shown = on_a_terminal(&ada, &["show", "todo", "--file", "app.py"]);
    // The terminal's own colours (keywords magenta), never fixed RGB.
    assert!(shown.contains("\x1b[35mimport"), "no colour: {shown:.300}");
    assert!(!shown.contains("38;2;"), "fixed RGB: {shown:.300}");
    assert!(shown.contains("create_app"), "{shown:.300}");
    set_requirements(&ada, "todo", "flask>=3.0\nrequests\n");
    let diff = on_a_terminal(&ada, &["diff", "todo"]);
    assert!(diff.contains("\x1b[32m+requests"), "{diff:?}");
    let plain = ada.run(&["diff", "todo"]).ok().stdout;
    assert!(!plain.contains('\x1b'), "{plain:?}");
}

#[test]
fn an_edit_whose_daemon_dies_meanwhile_keeps_the_edited_files() {
    let (mut daemon, ada, _) = ada_with_todo();
    let dir = TempDir::new().unwrap();
    // The editor saves a change, then the daemon goes away under it.
    let script = editor(
        dir.path(),
        &format!(
            // The test is the daemon's parent and reaps it only later, so
            // "gone" here means a zombie whose every thread has ended: until
            // the last one has, the socket is still open and takes clients.
            "printf '# kept\\n' >> app.py\nkill -9 {pid}\n\
             until awk '{{exit $3 != \"Z\"}}' /proc/{pid}/stat \
               && [ \"$(ls /proc/{pid}/task | wc -l)\" = 1 ]; do sleep 0.05; done",
            pid = daemon.pid()
        ),
    );
    let out = edit_with(&ada, &script, &["edit", "todo"]).fails_with(5);
    let kept = out
        .stderr
        .split("your edited files are kept in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no kept folder named: {}", out.stderr))
        .trim()
        .to_string();
    let app = std::fs::read_to_string(Path::new(&kept).join("app.py")).unwrap();
    assert!(app.ends_with("# kept\n"), "{app}");
    // Nothing was saved: the next daemon shows the project as it was.
    daemon.restart();
    assert_eq!(history(&ada, "todo").len(), 1);
}

// ---------------------------------------------------------------------------
// names
// ---------------------------------------------------------------------------

/// Names that would read as another name or as a path are refused as
/// invalid input (exit 2), with what a name may hold, and nothing is saved.
#[test]
fn names_with_hidden_characters_slashes_or_dot_dot_are_refused() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let cases = [
        // A right-to-left override: "todo\u{202e}txt.exe" shows as "todoexe.txt".
        ("todo\u{202e}txt.exe", "invisible"),
        ("to\u{2067}do\u{2069}", "invisible"),
        ("ad\u{200b}min", "invisible"),
        ("todo\u{1b}]0;pwned\u{7}", "control"),
        ("a/b", "`/`"),
        ("..", "`..`"),
        ("x..y", "`..`"),
    ];
    for (name, why) in cases {
        let out = ada
            .run(&["generate", TODO_PROMPT, "--save", "--name", name])
            .fails_with(2);
        assert!(
            out.stderr.contains(why) && out.stderr.contains("letters, digits"),
            "{name:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr
                .contains(['\u{202e}', '\u{2067}', '\u{200b}', '\u{1b}']),
            "the refusal does not echo the hidden characters: {:?}",
            out.stderr
        );
    }
    let listed = ada.run(&["--json", "list"]).ok().json();
    assert_eq!(listed, serde_json::json!([]), "nothing was saved");
    // A name with dots, spaces and accents is fine.
    ada.run(&["generate", TODO_PROMPT, "--save", "--name", "été v1.2"])
        .ok();
}
