//! Apps are untrusted code: each test runs a real Flask app that attacks
//! the daemon, other projects or the disk the way a hostile model's code
//! would, and checks that the attack does no harm.
//!
//! The attacking app reports each attempt as `LEAK …` (it worked) or
//! `DENIED …` (the kernel refused), so a failing test shows what leaked.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use appforge_e2e::apps::*;
use appforge_e2e::{is_zombie, wait_for, Daemon};
use nix::sys::signal::Signal;

/// An app with one route per attack; each takes its target in `?path=`.
const ATTACKER_APP: &str = r#"import os
import socket

from flask import Flask, request

app = Flask(__name__)


def attempt(fn):
    try:
        return "LEAK " + fn()
    except Exception as e:
        return "DENIED " + type(e).__name__ + ": " + str(e)


@app.route("/")
def index():
    return "attacker\n"


@app.route("/read")
def read():
    return attempt(lambda: open(request.args["path"], "rb").read(300).decode("latin-1"))


@app.route("/list")
def list_dir():
    return attempt(lambda: ",".join(os.listdir(request.args["path"])))


@app.route("/write")
def write():
    def go():
        with open(request.args["path"], "w") as f:
            f.write("written by the app\n")
        return "wrote"

    return attempt(go)


@app.route("/bigfile")
def bigfile():
    def go():
        with open("big.bin", "wb") as f:
            for _ in range(int(request.args["mib"])):
                f.write(b"x" * 1024 * 1024)
        return "wrote"

    return attempt(go)


@app.route("/bind")
def bind():
    def go():
        s = socket.socket()
        s.bind(("127.0.0.1", int(request.args["port"])))
        s.close()
        return "bound"

    return attempt(go)


@app.route("/connect")
def connect():
    def go():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(15)
        s.connect(request.args["path"])
        return s.recv(4096).decode("latin-1")

    return attempt(go)
"#;

/// An app that, at start, leaves a child in a new session behind, named by
/// a token on its command line so the test can find it.
const ESCAPING_APP: &str = r#"import subprocess
import sys
import time

from flask import Flask

subprocess.Popen(
    [sys.executable, "-c", "import time\nwhile True: time.sleep(1)", "appforge-escapee", str(time.time_ns())],
    start_new_session=True,
)

app = Flask(__name__)


@app.route("/")
def index():
    return "ok\n"
"#;

/// An app that writes to stdout as fast as it can, from start, and counts.
const FLOOD_APP: &str = r#"import sys
import threading

from flask import Flask

app = Flask(__name__)
written = 0


def flood():
    global written
    line = "x" * 8191 + "\n"
    while True:
        sys.stdout.write(line)
        written += len(line)


threading.Thread(target=flood, daemon=True).start()


@app.route("/")
def index():
    return "flooding\n"


@app.route("/written")
def count():
    return str(written)
"#;

const SECRET: &str = "gsk_confinement_secret_0815";

/// `GET path` on the app; the body, or a panic with what came back.
fn get(port: u16, path: &str) -> String {
    let reply = http_get(port, path, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no answer to {path}"));
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(reply)
}

/// Percent-encodes a path for a query string.
fn query(path: &Path) -> String {
    path.display()
        .to_string()
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks the attacker app to do `what` on `path`; the answer must be a denial.
#[track_caller]
fn assert_denied(port: u16, what: &str, path: &Path) {
    let body = get(port, &format!("/{what}?path={}", query(path)));
    assert!(
        body.starts_with("DENIED"),
        "{what} {} was allowed: {body}",
        path.display()
    );
    assert!(!body.contains(SECRET), "the key leaked: {body}");
}

/// Processes whose command line holds `token`.
fn processes_with(token: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(token.len()).any(|w| w == token.as_bytes()))
        })
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn an_app_cannot_reach_the_daemons_secrets_the_database_or_other_projects() {
    let daemon = Daemon::start_with(&[], &[("GROQ_API_KEY", SECRET)]);
    // Bob's project runs too, so its folder exists to be attacked.
    let bob = signed_up(&daemon, "bob");
    let bobs = new_project(&bob, "bobs-notes");
    run_app(&bob, "bobs-notes");
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "attacker", ATTACKER_APP);
    let port = port_of(&run_app(&ada, "attacker"));
    let data = &daemon.data_dir;
    let own = run_folder(&daemon, id);

    // What it may do: its own folder and its temporary folder.
    assert_eq!(get(port, "/write?path=mine.txt"), "LEAK wrote");
    assert!(own.join("mine.txt").exists());
    let tmp = data.join("projects/tmp").join(format!("project_{id}"));
    assert_eq!(
        get(port, &format!("/write?path={}", query(&tmp.join("t")))),
        "LEAK wrote"
    );

    // The daemon's environment (the key it started with) and memory.
    let daemon_pid = daemon.pid();
    assert_denied(
        port,
        "read",
        &PathBuf::from(format!("/proc/{daemon_pid}/environ")),
    );
    assert_denied(
        port,
        "read",
        &PathBuf::from(format!("/proc/{daemon_pid}/mem")),
    );
    // The database, the data directory, other projects.
    assert_denied(port, "read", &data.join("appforge.db"));
    assert_denied(port, "list", data);
    assert_denied(port, "read", &run_folder(&daemon, bobs).join("app.py"));
    assert_denied(port, "list", &data.join("projects"));
    assert_denied(port, "read", &log_path(&daemon, bobs));
    assert_denied(port, "write", &data.join("planted"));
    assert!(!data.join("planted").exists());
    // Other processes' command lines, the machine's private keys.
    assert_denied(
        port,
        "read",
        &PathBuf::from(format!("/proc/{daemon_pid}/cmdline")),
    );
    assert_denied(port, "read", Path::new("/proc/1/cmdline"));
    assert_denied(port, "list", Path::new("/proc"));
    if Path::new("/etc/ssl/private").exists() {
        assert_denied(port, "list", Path::new("/etc/ssl/private"));
    }
    // Its own /proc entry is its to read.
    assert!(get(port, "/read?path=/proc/self/status").starts_with("LEAK"));
    // Listening on another port (another app's, say) is refused.
    let other = appforge_e2e::free_port();
    let bound = get(port, &format!("/bind?port={other}"));
    assert!(
        bound.starts_with("DENIED"),
        "the app listened on port {other}: {bound}"
    );
    // Files of the system that are nobody's business.
    if Path::new("/etc/shadow").exists() {
        assert_denied(port, "read", Path::new("/etc/shadow"));
    }

    // The daemon's socket: the connection is refused by the peer check.
    let socket = get(port, &format!("/connect?path={}", query(&daemon.socket)));
    assert!(
        socket.contains("supervised apps may not use"),
        "the app talked to the daemon: {socket}"
    );
    // The app still serves, and its owner still uses the daemon.
    assert_eq!(get(port, "/"), "attacker\n");
    ada.run(&["ps"]).ok();
}

/// Without a cgroup to tell, an app is known by its chain of parents; the
/// chains of its owner's clients, which the daemon keeps between
/// connections, change nothing.
#[test]
fn an_app_without_a_cgroup_is_refused_the_socket_by_its_parents() {
    for args in [
        &["--no-app-cgroups"][..],
        &["--no-app-cgroups", "--no-app-namespaces"],
    ] {
        let mut daemon = Daemon::start_with(args, &[]);
        let ada = signed_up(&daemon, "ada");
        project_with_app(&ada, "attacker", ATTACKER_APP);
        let port = port_of(&run_app(&ada, "attacker"));
        let refused = |daemon: &Daemon| {
            for _ in 0..3 {
                ada.run(&["ps"]).ok();
                let socket = get(port, &format!("/connect?path={}", query(&daemon.socket)));
                assert!(
                    socket.contains("supervised apps may not use"),
                    "{args:?}: the app talked to the daemon: {socket}"
                );
            }
        };
        refused(&daemon);
        // A new daemon adopts the app, which was no child of its own.
        daemon.signal_and_wait(Signal::SIGTERM);
        daemon.restart();
        wait_for("the app to be adopted again", || {
            daemon.log().contains("re-adopted app")
        });
        refused(&daemon);
    }
}

/// Runs the escaping app on a daemon with `args`; its child in a new
/// session must end with `stop`, with a kill of the app for not answering,
/// and (when `kill_9_too`) with `kill -9` of the app's process.
fn a_new_session_child_ends_with_its_app(args: &[&str], kill_9_too: bool) {
    let daemon = Daemon::start_with(args, &[]);
    if !args.contains(&"--no-app-cgroups") {
        assert_app_cgroups(&daemon);
    }
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "escaper", ESCAPING_APP);
    let escapees = |daemon: &Daemon| {
        let _ = daemon;
        processes_with("appforge-escapee")
            .into_iter()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd == run_folder(daemon, id))
            })
            .collect::<Vec<_>>()
    };
    let app = run_app(&ada, "escaper");
    let mut first = Vec::new();
    wait_for("the app's child in its own session", || {
        first = escapees(&daemon);
        !first.is_empty()
    });
    ada.run(&["stop", "escaper"]).ok();
    wait_for("the escaped child to be gone after stop", || {
        first.iter().all(|p| is_zombie(*p))
    });

    if kill_9_too {
        let shim = pid_of(&run_app(&ada, "escaper"));
        assert_ne!(shim, pid_of(&app));
        let mut second = Vec::new();
        wait_for("a new escaped child", || {
            second = escapees(&daemon);
            !second.is_empty()
        });
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim as i32), Signal::SIGKILL).unwrap();
        wait_for("the child to be gone after kill -9 of its app", || {
            second.iter().all(|p| is_zombie(*p))
        });
        ada.run(&["stop", "escaper"]).ok();
    }
    wait_for("no escapee at all", || escapees(&daemon).is_empty());
}

#[test]
fn a_child_in_a_new_session_ends_with_its_app_namespace() {
    a_new_session_child_ends_with_its_app(&["--no-app-cgroups"], true);
}

#[test]
#[ignore = "needs root to make cgroups: tests/run-ignored runs it"]
fn a_child_in_a_new_session_ends_with_its_app_cgroup() {
    a_new_session_child_ends_with_its_app(&["--no-app-namespaces"], true);
}

#[test]
fn a_child_in_a_new_session_ends_with_its_app_subreaper() {
    // Without a namespace or a cgroup, the app's init (a child subreaper)
    // and the daemon's kill of the whole tree end it; a kill -9 of the
    // app's shim by someone else is the one thing that would not.
    a_new_session_child_ends_with_its_app(&["--no-app-namespaces", "--no-app-cgroups"], false);
}

#[test]
#[ignore = "needs root to make cgroups: tests/run-ignored runs it"]
fn each_app_runs_in_a_cgroup_of_its_own() {
    let daemon = Daemon::start();
    assert_app_cgroups(&daemon);
    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, "todo");
    let shim = pid_of(&run_app(&ada, "todo"));
    let cgroup = std::fs::read_to_string(format!("/proc/{shim}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("/apps/project_{id}")),
        "the app is not in its cgroup: {cgroup}"
    );
    ada.run(&["stop", "todo"]).ok();
}

#[test]
fn a_stdout_flood_stays_within_the_log_cap_also_while_the_daemon_is_down() {
    const CAP: u64 = 1024 * 1024;
    const FILES: u64 = 2;
    // One chunk the shim reads at a time, and the daemon's own notes.
    const SLACK: u64 = 64 * 1024 + 4096;
    let mut daemon = Daemon::start_with(
        &[
            "--log-max-bytes",
            &CAP.to_string(),
            "--log-files",
            &FILES.to_string(),
        ],
        &[],
    );
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "flood", FLOOD_APP);
    let port = port_of(&run_app(&ada, "flood"));
    let written = || get(port, "/written").trim().parse::<u64>().unwrap_or(0);

    let logs_dir = daemon.data_dir.join("projects/logs");
    let prefix = format!("project_{id}.log");
    let log_files_now = || -> Vec<PathBuf> {
        std::fs::read_dir(&logs_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let watch = |seconds: u64| -> u64 {
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut most = 0;
        while Instant::now() < until {
            let size = total_size(&log_files_now());
            most = most.max(size);
            assert!(
                size <= FILES * CAP + SLACK,
                "the logs hold {size} bytes against a cap of {}",
                FILES * CAP
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        most
    };
    let most_up = watch(5);
    let before_down = written();
    assert!(
        before_down > 4 * FILES * CAP,
        "the app wrote only {before_down} bytes: not a flood"
    );

    // With the daemon gone, the app's shim still holds the cap.
    daemon.signal_and_wait(Signal::SIGKILL);
    let most_down = watch(5);
    let after_down = written();
    assert!(
        after_down > before_down + 2 * FILES * CAP,
        "the app stopped writing while the daemon was down ({before_down} -> {after_down})"
    );
    eprintln!(
        "flood: {after_down} bytes written in ~10 s; logs at most {most_up} bytes with the \
         daemon up, {most_down} with it down (cap {} + slack {SLACK})",
        FILES * CAP
    );
    daemon.restart();
    ada.run(&["stop", "flood"]).ok();
}

#[test]
fn no_single_file_an_app_writes_passes_the_file_size_limit() {
    let daemon = Daemon::start_with(&["--app-max-file-mib", "1"], &[]);
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "big", ATTACKER_APP);
    let port = port_of(&run_app(&ada, "big"));
    let body = get(port, "/bigfile?mib=3");
    assert!(body.starts_with("DENIED"), "{body}");
    assert!(body.contains("File too large"), "{body}");
    let size = std::fs::metadata(run_folder(&daemon, id).join("big.bin"))
        .unwrap()
        .len();
    assert!(size <= 1024 * 1024, "the file grew to {size} bytes");
    // The app lives on.
    assert_eq!(get(port, "/"), "attacker\n");
}

#[test]
fn requirements_hold_requirement_lines_only() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    let versions = || {
        ada.run(&["--json", "history", "todo"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    let before = versions();
    for (line, why) in [
        ("-r /etc/passwd", "installer option"),
        (
            "--index-url https://example.invalid/simple",
            "installer option",
        ),
        ("-e ../project_1", "installer option"),
        ("../project_1", "local path"),
        ("evil @ https://example.invalid/evil.whl", "URL"),
    ] {
        let out = ada
            .run_with_stdin(
                &["edit", "todo", "--file", "requirements.txt", "--stdin"],
                &format!("flask\n{line}\n"),
            )
            .fails_with(2);
        assert!(
            out.stderr.contains("requirements.txt line 2"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(why), "{line}: {}", out.stderr);
    }
    assert_eq!(versions(), before, "a refused edit saved a version");
    // The app still runs, and nothing of /etc/passwd reached its log.
    run_app(&ada, "todo");
    let logs = ada.run(&["logs", "todo", "-n", "1000"]).ok().stdout;
    assert!(!logs.contains("root:x:0:0"), "{logs}");
}

#[test]
fn an_empty_edit_from_stdin_is_refused() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    let out = ada
        .run_with_stdin(&["edit", "todo", "--file", "app.py", "--stdin"], "  \n")
        .fails_with(2);
    assert!(
        out.stderr.contains("standard input is empty"),
        "{}",
        out.stderr
    );
    let shown = ada.run(&["show", "todo", "--file", "app.py"]).ok().stdout;
    assert!(shown.contains("Flask"), "the file was emptied: {shown}");
}

#[test]
fn status_lists_the_protections_in_force() {
    let daemon = Daemon::start_with(&["--require-confinement"], &[]);
    let status = daemon.user("ada").run(&["--json", "status"]).ok().json();
    let protections = status["protections"].as_array().expect("a list");
    let line = |start: &str| -> (String, bool) {
        let p = protections
            .iter()
            .find(|p| p["name"].as_str().unwrap_or_default().starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?}: {status}"));
        (p["name"].as_str().unwrap().to_string(), p["on"] == true)
    };
    // What --require-confinement demands, and what the shim enforces
    // whatever the kernel: on.
    for start in [
        "landlock file confinement",
        "network: ",
        "user and PID namespaces",
        "processes: ",
        "disk: ",
        "file size: ",
    ] {
        let (name, on) = line(start);
        assert!(on, "{name}");
    }
    assert!(line("network: ").0.contains("only to TCP ports 80, 443"));
    // A limit by a cgroup controller is on only where the apps' cgroups
    // have it; off, it says why.
    let cgroup_on = line("a cgroup per app").1;
    for (start, controller) in [("memory per app", "memory"), ("CPU per app", "cpu")] {
        let (name, on) = line(start);
        if !cgroup_on || name.contains(&format!("no {controller} controller")) {
            assert!(!on, "{name} is on without the {controller} controller");
        }
    }
    // Processes are counted by the cgroup where it can, else by the shim.
    let processes = line("processes: ").0;
    assert!(
        processes.contains("pids.max") || processes.contains("counted by its shim"),
        "{processes}"
    );
    for p in protections {
        if p["on"] == false {
            assert!(p["name"].as_str().unwrap().contains("off:"), "no why: {p}");
        }
    }
    let text = daemon.user("ada").run(&["status"]).ok().stdout;
    assert!(text.contains("landlock"), "{text}");
}

/// An installer step runs code a model chose (a package's build code): a
/// stand-in `uv` on the daemon's PATH tries what such code would, and its
/// findings land in the app's log.
#[test]
fn an_installer_step_is_confined_like_an_app() {
    let bin = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start_with(
        &["--installer", "uv"],
        &[("PATH", &path), ("GROQ_API_KEY", SECRET)],
    );
    let data = daemon.data_dir.display().to_string();
    // A local server the installer must not reach (the dashboard, say).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let script = format!(
        r#"#!/bin/sh
try() {{ if sh -c "$2" >/dev/null 2>&1; then echo "installer LEAK $1"; else echo "installer DENIED $1"; fi; }}
try database "cat '{data}/appforge.db'"
try data-dir "ls '{data}'"
try daemon-environ "cat /proc/{pid}/environ"
try write "echo planted > '{data}/planted'"
try own-folder "echo ok > ./written-by-installer"
try python "python3 -c 'print(1)'"
try local-port "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)'"
try bind "python3 -c 'import socket; socket.socket().bind((\"127.0.0.1\", {free}))'"
exit 3
"#,
        pid = daemon.pid(),
        port = listener.local_addr().unwrap().port(),
        free = appforge_e2e::free_port(),
    );
    let uv = bin.path().join("uv");
    std::fs::write(&uv, script).unwrap();
    std::fs::set_permissions(&uv, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, "todo");
    // Requirements no other test has, so the environment is built here.
    let unique = format!("# {}\nflask\n", std::process::id());
    // Unchecked, so that `run` is what builds the environment here.
    set_requirements(&ada, "todo", &unique);
    let out = ada.run(&["run", "todo"]).fails_with(7);
    assert!(out.stderr.contains("uv venv failed"), "{}", out.stderr);
    let log = std::fs::read_to_string(log_path(&daemon, id)).unwrap();
    for denied in [
        "database",
        "data-dir",
        "daemon-environ",
        "write",
        "local-port",
        "bind",
    ] {
        assert!(
            log.contains(&format!("installer DENIED {denied}")),
            "{denied} was not denied:\n{log}"
        );
    }
    // The check can fail: the step ran, and may write where it should.
    assert!(log.contains("installer LEAK own-folder"), "{log}");
    // Python runs there, so the refused connection is the rule's doing.
    assert!(log.contains("installer LEAK python"), "{log}");
    assert!(!daemon.data_dir.join("planted").exists());
    assert!(!log.contains(SECRET));
}

/// The shim refuses a spec it cannot read, saying so, and starts nothing.
#[test]
fn a_shim_given_a_bad_spec_says_so_and_starts_nothing() {
    for spec in ["", "not json", "{\"program\": 1}"] {
        let mut shim = std::process::Command::new(appforge_e2e::bin("appforge-shim"))
            .arg("__app-shim")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        shim.stdin
            .take()
            .unwrap()
            .write_all(spec.as_bytes())
            .unwrap();
        let out = shim.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{spec:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad spec on stdin"), "{spec:?}: {err}");
    }
}

/// The shim's program is not a command: run without the daemon's argument,
/// it says what it is for and does nothing.
#[test]
fn the_shim_run_by_hand_says_what_it_is_for() {
    let out = appforge_e2e::output_of_exiting(std::process::Command::new(appforge_e2e::bin(
        "appforge-shim",
    )));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("it is not run by hand"), "{err}");
}

/// A daemon installed without the shim's program beside it refuses to
/// start, naming the file it looked for, instead of failing each app.
#[test]
fn a_daemon_without_its_shim_beside_it_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("appforged");
    std::fs::copy(appforge_e2e::bin("appforged"), &daemon).unwrap();
    let out = appforge_e2e::output_of_exiting({
        let mut cmd = std::process::Command::new(&daemon);
        cmd.arg("--socket")
            .arg(dir.path().join("appforged.sock"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--web-addr")
            .arg("off")
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(std::process::Stdio::null());
        cmd
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let shim = dir.path().join("appforge-shim");
    assert!(
        err.contains(&format!("cannot open {}", shim.display())) && err.contains("same folder"),
        "{err}"
    );
    assert!(!dir.path().join("appforged.sock").exists());
}

/// An app may only read its environment, so what is not compiled when it is
/// built would be compiled again at every start: uv (which does not compile
/// by default) is asked to.
#[test]
fn an_environment_built_with_uv_holds_compiled_bytecode() {
    let python = appforge_e2e::python();
    let uv = python.with_file_name("uv");
    assert!(
        uv.exists(),
        "no uv beside {}: `make pyenv` installs it",
        python.display()
    );
    let path = format!(
        "{}:{}",
        uv.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start_with(&["--installer", "uv"], &[("PATH", &path)]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    // Requirements no other test has, so the environment is built here.
    let unique = format!("# uv {}\nflask\n", std::process::id());
    set_requirements(&ada, "todo", &unique);
    ada.run(&["run", "todo"]).ok();
    let envs = appforge_e2e::test_env_dir();
    let env = std::fs::read_dir(&envs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read_to_string(p.join(".ready")).is_ok_and(|r| r == unique))
        .expect("the environment of these requirements");
    let flask = std::fs::read_dir(env.join("lib"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("site-packages/flask/__pycache__");
    let compiled = std::fs::read_dir(&flask).map_or(0, |d| d.count());
    assert!(compiled > 5, "{} holds {compiled} files", flask.display());
    let _ = std::fs::remove_dir_all(&env);
    let _ = std::fs::remove_file(env.with_extension("lock"));
}
