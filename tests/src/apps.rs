//! Helpers for tests that run apps: projects with a given `app.py`, `run`,
//! `ps`, plain HTTP, and the files of a project's log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::{Daemon, User};

/// The prompt every test project is generated from.
pub const TODO_PROMPT: &str = "a todo app with title and done flag";

/// A signed-up user called `name`.
pub fn signed_up(daemon: &Daemon, name: &str) -> User {
    let user = daemon.user(name);
    user.signup().ok();
    user
}

/// Saves a template project called `name` and returns its id. The offline
/// provider is asked for by name, as a daemon with a key would pick Groq.
pub fn new_project(user: &User, name: &str) -> i64 {
    user.run(&[
        "--json",
        "generate",
        TODO_PROMPT,
        "--save",
        "--name",
        name,
        "--provider",
        "template",
    ])
    .ok()
    .json()["project_id"]
        .as_i64()
        .expect("a saved project has an id")
}

/// Fails the test, saying why, unless `daemon` gives each app a cgroup of
/// its own: tests of cgroups are `#[ignore]`d, for `tests/run-ignored` to
/// run as root, and a run that cannot make them must not pass quietly.
pub fn assert_app_cgroups(daemon: &Daemon) {
    let status = daemon.user("x").run(&["--json", "status"]).ok().json();
    let on = status["protections"].as_array().is_some_and(|list| {
        list.iter().any(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("a cgroup per app"))
                && p["on"] == true
        })
    });
    assert!(
        on,
        "this test needs a daemon that may make cgroups (root, or a delegated cgroup v2 \
         subtree); status says: {status}"
    );
}

/// A project called `name` whose `app.py` is `code`; returns its id.
pub fn project_with_app(user: &User, name: &str, code: &str) -> i64 {
    let id = new_project(user, name);
    // Unchecked: tests give apps that crash, hang or misbehave on purpose.
    user.run_with_stdin(
        &["edit", name, "--file", "app.py", "--stdin", "--no-check"],
        code,
    )
    .ok();
    id
}

/// Replaces the project's `requirements.txt` with `text`, unchecked, so
/// that what the requirements do is met first by `run`.
pub fn set_requirements(user: &User, project: &str, text: &str) {
    user.run_with_stdin(
        &[
            "edit",
            project,
            "--file",
            "requirements.txt",
            "--stdin",
            "--no-check",
        ],
        text,
    )
    .ok();
}

/// The whole answer to `GET /` from the app on `port` (empty if none).
pub fn page(port: u16) -> String {
    http_get(port, "/", Duration::from_secs(10)).unwrap_or_default()
}

/// `run --json P`, which must succeed.
pub fn run_app(user: &User, project: &str) -> Value {
    user.run(&["--json", "run", project]).ok().json()
}

/// `ps --json`.
pub fn ps(user: &User) -> Vec<Value> {
    user.run(&["--json", "ps"])
        .ok()
        .json()
        .as_array()
        .expect("ps prints an array")
        .clone()
}

/// The `ps` entry of one project, if it is listed.
pub fn ps_of(user: &User, id: i64) -> Option<Value> {
    ps(user)
        .into_iter()
        .find(|a| a["project_id"].as_i64() == Some(id))
}

/// The pid of a `run` or `ps` document.
pub fn pid_of(doc: &Value) -> i64 {
    doc["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid: {doc}"))
}

/// The port of a `run` or `ps` document.
pub fn port_of(doc: &Value) -> u16 {
    doc["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no port: {doc}"))
}

/// An HTTP GET on 127.0.0.1: the whole response, or `None` if there is none
/// within `timeout`.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<String> {
    http_send(port, "GET", path, None, timeout)
}

/// An HTTP request on 127.0.0.1, with a JSON body if one is given: the
/// whole response, or `None` if there is none within `timeout`.
pub fn http_send(
    port: u16,
    method: &str,
    path: &str,
    json: Option<&Value>,
    timeout: Duration,
) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let body = json.map(Value::to_string).unwrap_or_default();
    let content_type = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The JSON body of a whole HTTP response.
pub fn json_body(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("no JSON body ({e}): {response}"))
}

/// Whether the app on `port` answers `GET path` with 200.
pub fn answers(port: u16, path: &str) -> bool {
    http_get(port, path, Duration::from_secs(10))
        .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
}

/// Asserts that the app on `port` answers `GET /` with 200.
#[track_caller]
pub fn assert_answers(port: u16) {
    let reply = http_get(port, "/", Duration::from_secs(10));
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200")),
        "no 200 from port {port}: {reply:?}"
    );
}

/// The project's run folder.
pub fn run_folder(daemon: &Daemon, id: i64) -> PathBuf {
    daemon
        .data_dir
        .join("projects")
        .join(format!("project_{id}"))
}

/// The project's live log file.
pub fn log_path(daemon: &Daemon, id: i64) -> PathBuf {
    daemon
        .data_dir
        .join("projects")
        .join("logs")
        .join(format!("project_{id}.log"))
}

/// The project's log files that exist (`project_<id>.log*`).
pub fn log_files(daemon: &Daemon, id: i64) -> Vec<PathBuf> {
    let dir = daemon.data_dir.join("projects").join("logs");
    let prefix = format!("project_{id}.log");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Everything in the project's live log file, as people read it: without
/// the mark (a control byte) that begins each of appforge's own lines.
pub fn log_text(daemon: &Daemon, id: i64) -> String {
    log_raw(daemon, id).replace('\x1e', "")
}

/// Everything in the project's live log file, byte for byte (lossy UTF-8).
pub fn log_raw(daemon: &Daemon, id: i64) -> String {
    String::from_utf8_lossy(&std::fs::read(log_path(daemon, id)).unwrap_or_default()).into_owned()
}
