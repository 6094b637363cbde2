//! The supervisor end to end: `run`, `stop`, `restart`, `ps` and `logs`
//! through the real client and daemon, with real Flask apps as children.
//!
//! Projects come from the offline `template` provider; to make an app
//! misbehave, its `app.py` is replaced through `appforge edit --stdin` with a
//! small Flask app that crashes, hangs, talks a lot or shows its environment.
//! Processes are checked in /proc (state, parent, environment), runs in the
//! database (read-only), and every wait is on a condition, never a fixed sleep.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use appforge_e2e::apps::*;
use appforge_e2e::{epoch_seconds, is_zombie, wait_for, Daemon, User, PATIENCE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A well-behaved app: `/` answers, `/mark?m=X` prints `marker X` to its log.
const PLAIN_APP: &str = r#"import os

from flask import Flask, request

app = Flask(__name__)
print("plain app imported in pid %d" % os.getpid(), flush=True)

@app.route("/")
def index():
    return "ok\n"

@app.route("/mark")
def mark():
    print("marker " + request.args.get("m", ""), flush=True)
    return "marked\n"
"#;

/// An app that prints a line and exits with code 3 as soon as it is imported.
const CRASHING_APP: &str = r#"import sys

from flask import Flask

app = Flask(__name__)
print("crashing on purpose with code 3", file=sys.stderr, flush=True)
sys.exit(3)
"#;

/// An app that never answers: its import never ends.
const NEVER_READY_APP: &str = r#"import time

from flask import Flask

app = Flask(__name__)
print("importing forever", flush=True)
time.sleep(3600)
"#;

/// An app that answers until a file `hang` appears in its folder; then it
/// removes the file (so its successor runs normally) and stops itself with
/// SIGSTOP: alive, holding its port, answering nothing.
const HANGING_APP: &str = r#"import os
import signal
import threading
import time

from flask import Flask

app = Flask(__name__)

@app.route("/")
def index():
    return "ok\n"

def _hang_when_asked():
    while True:
        if os.path.exists("hang"):
            os.remove("hang")
            print("hanging now", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        time.sleep(0.02)

threading.Thread(target=_hang_when_asked, daemon=True).start()
"#;

/// An app that writes about 20 kB/s to its log: numbered lines of 197 bytes
/// every 10 ms.
const NOISY_APP: &str = r#"import itertools
import sys
import threading
import time

from flask import Flask

app = Flask(__name__)

@app.route("/")
def index():
    return "ok\n"

def _noise():
    for n in itertools.count():
        sys.stdout.write("noise %09d %s\n" % (n, "x" * 180))
        sys.stdout.flush()
        time.sleep(0.01)

threading.Thread(target=_noise, daemon=True).start()
"#;

/// Bytes of one line of [`NOISY_APP`].
const NOISE_LINE: u64 = 197;

/// An app that prints its whole environment to its log when it starts.
const ENV_APP: &str = r#"import os

from flask import Flask

app = Flask(__name__)
print("environment: %r" % sorted(os.environ.items()), flush=True)

@app.route("/")
def index():
    return "ok\n"
"#;

/// What the app's environment may hold, and nothing else.
const ALLOWED_ENV: [&str; 8] = [
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "PORT",
    "HOST",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A daemon with `args`, ada signed up, and her project `todo` running `code`.
fn ada_with_app(args: &[&str], code: &str) -> (Daemon, User, i64) {
    let daemon = Daemon::start_with(args, &[]);
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "todo", code);
    (daemon, ada, id)
}

/// Waits until `ps` shows the project running with a pid other than
/// `not`, and returns that entry.
fn wait_running_with_new_pid(user: &User, id: i64, not: i64) -> Value {
    let mut found = None;
    wait_for("the app to run again with a new pid", || {
        found = ps_of(user, id)
            .filter(|a| a["status"] == "running" && a["pid"].as_i64().is_some_and(|p| p != not));
        found.is_some()
    });
    found.expect("found")
}

/// One `project_runs` row.
#[derive(Debug, Clone)]
struct RunRow {
    pid: i64,
    port: i64,
    status: String,
    exit_code: Option<i64>,
    signal: Option<i64>,
    proc_start: Option<i64>,
    /// Seconds since the epoch.
    started: f64,
    /// Seconds since the epoch, once it ended.
    stopped: Option<f64>,
}

/// The project's runs, oldest first.
fn runs(daemon: &Daemon, id: i64) -> Vec<RunRow> {
    let int = |cell: &Option<String>| cell.as_deref().map(|n| n.parse::<i64>().unwrap());
    daemon
        .sql(&format!(
            "SELECT pid, port, status, exit_code, signal, proc_start, started_at, stopped_at \
             FROM project_runs WHERE project_id = {id} ORDER BY id"
        ))
        .iter()
        .map(|r| RunRow {
            pid: int(&r[0]).unwrap(),
            port: int(&r[1]).unwrap(),
            status: r[2].clone().unwrap(),
            exit_code: int(&r[3]),
            signal: int(&r[4]),
            proc_start: int(&r[5]),
            started: epoch_seconds(r[6].as_deref().unwrap()),
            stopped: r[7].as_deref().map(epoch_seconds),
        })
        .collect()
}

/// `(status, port, wanted)` of a `projects` row.
fn project_state(daemon: &Daemon, id: i64) -> (String, Option<i64>, String) {
    let rows = daemon.sql(&format!(
        "SELECT status, port, wanted FROM projects WHERE id = {id}"
    ));
    let r = rows.first().expect("the project's row");
    (
        r[0].clone().unwrap(),
        r[1].as_deref().map(|n| n.parse().unwrap()),
        r[2].clone().unwrap(),
    )
}

/// `(state, ppid)` of a process, from /proc/PID/stat; `None` once it is gone.
fn stat_of(pid: i64) -> Option<(char, i64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` no longer runs and, if a zombie is left, it is not one the
/// daemon `parent` should have reaped.
fn reaped_or_not_ours(pid: i64, parent: u32) -> bool {
    match stat_of(pid) {
        None => true,
        Some((state, ppid)) => matches!(state, 'Z' | 'X') && ppid != i64::from(parent),
    }
}

/// The daemon's children that are zombies.
fn zombie_children(parent: u32) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| {
            stat_of(*pid).is_some_and(|(state, ppid)| state == 'Z' && ppid == i64::from(parent))
        })
        .collect()
}

/// The app's Python process below its shim (the pid `ps` shows).
fn python_under(shim: i64) -> i64 {
    let mut queue = vec![shim];
    while let Some(pid) = queue.pop() {
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.contains("flask") {
            return pid;
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        queue.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<i64>().ok()),
        );
    }
    panic!("no Python process below pid {shim}")
}

/// Starts `appforge ARGS` (a `logs -f`) and hands each line it prints to
/// the receiver as it comes.
fn follow(
    user: &User,
    args: &[&str],
) -> (
    std::process::Child,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let mut follower = user
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn logs -f");
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (follower, rx, reader)
}

/// Sends SIGKILL to one process.
fn kill_9(pid: i64) {
    let pid = i32::try_from(pid).expect("a pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the app");
}

/// `line` without its SGR colour sequences (`ESC [ … m`).
fn without_colour(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match rest.find('m') {
            Some(end) => rest = &rest[end + 1..],
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Lines of `appforge logs P -n N` (text output).
fn logs_lines(user: &User, project: &str, n: usize) -> Vec<String> {
    user.run(&["logs", project, "-n", &n.to_string()])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

/// Environment variables of a process at exec time, from /proc/PID/environ.
fn environ_of(pid: i64) -> Vec<(String, String)> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    bytes
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = String::from_utf8_lossy(v);
            let (k, val) = v.split_once('=').unwrap_or((&v, ""));
            (k.to_string(), val.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------

#[test]
fn run_serves_the_app_over_http_and_records_the_run() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let id = new_project(&ada, "todo");

    let app = run_app(&ada, "todo");
    for key in [
        "project_id",
        "name",
        "pid",
        "port",
        "url",
        "status",
        "restarts",
        "uptime_s",
        "cpu_percent",
        "rss_bytes",
        "last_exit",
    ] {
        assert!(app.get(key).is_some(), "no `{key}` in {app}");
    }
    assert_eq!(app["project_id"], id);
    assert_eq!(app["name"], "todo");
    assert_eq!(app["status"], "running");
    assert_eq!(app["restarts"], 0);
    let (pid, port) = (pid_of(&app), port_of(&app));
    assert_eq!(app["url"], format!("http://127.0.0.1:{port}/"));
    let (first, last) = daemon.ports.split_once('-').unwrap();
    assert!(
        (first.parse::<u16>().unwrap()..=last.parse().unwrap()).contains(&port),
        "port {port} outside {}",
        daemon.ports
    );

    // It really serves: the generated page.
    let page = http_get(port, "/", Duration::from_secs(10)).expect("an answer");
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(page.contains("<html"), "not the app's page: {page}");
    assert_eq!(daemon.app_pids(), vec![pid as i32]);

    // Its files, with a Dockerfile, in its run folder.
    let folder = run_folder(&daemon, id);
    assert!(folder.join("app.py").is_file());
    assert!(folder.join("Dockerfile").is_file());
    assert!(folder.join("templates/index.html").is_file());
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        folder.canonicalize().unwrap()
    );

    // One run row; the project shows the state and port.
    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].pid, pid);
    assert_eq!(rows[0].port, i64::from(port));
    assert_eq!(rows[0].status, "running");
    assert!(rows[0].stopped.is_none());
    assert!(rows[0].proc_start.is_some_and(|s| s > 0));
    wait_for("projects.status to be 'running'", || {
        project_state(&daemon, id).0 == "running"
    });
    assert_eq!(
        project_state(&daemon, id),
        (
            "running".to_string(),
            Some(i64::from(port)),
            "running".to_string()
        )
    );
    let listed = ada.run(&["--json", "list"]).ok().json();
    assert_eq!(listed[0]["status"], "running");
    assert_eq!(listed[0]["port"], port);

    // Running it again changes nothing: same process, same port, no new row.
    let again = run_app(&ada, &id.to_string());
    assert_eq!(pid_of(&again), pid);
    assert_eq!(port_of(&again), port);
    assert_eq!(runs(&daemon, id).len(), 1);

    // `restart` gives a new process that serves.
    let restarted = ada.run(&["--json", "restart", "todo"]).ok().json();
    assert_eq!(restarted["status"], "running");
    assert_eq!(restarted["restarts"], 0, "a restart by hand is not counted");
    assert_ne!(pid_of(&restarted), pid);
    assert_answers(port_of(&restarted));
    assert_eq!(runs(&daemon, id).len(), 2);
    assert_eq!(daemon.app_pids(), vec![pid_of(&restarted) as i32]);
}

#[test]
fn an_app_killed_with_sigkill_is_restarted_and_counted() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let first = run_app(&ada, "todo");
    let (old, port) = (pid_of(&first), port_of(&first));

    kill_9(old);
    let now = wait_running_with_new_pid(&ada, id, old);
    assert_answers(port_of(&now));
    assert!(now["restarts"].as_u64().unwrap() >= 1, "{now}");
    let last_exit = now["last_exit"].as_str().unwrap_or_default();
    assert!(
        last_exit.contains("signal 9") && last_exit.contains("SIGKILL"),
        "{now}"
    );
    // The old port was free again and is kept.
    assert_eq!(port_of(&now), port);

    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].pid, old);
    assert_eq!(rows[0].signal, Some(9), "{rows:?}");
    assert_eq!(rows[0].exit_code, None);
    assert!(rows[0].stopped.is_some());
    assert_eq!(rows[1].pid, pid_of(&now));
    assert!(rows[1].stopped.is_none());
    assert!(reaped_or_not_ours(old, daemon.pid()));
    assert!(log_text(&daemon, id).contains(&format!("[appforge] pid {old} was killed by signal 9")));
}

/// The app's own process (below its shim and init) killed: its signal
/// comes through both, and the app is started again.
#[test]
fn an_app_whose_own_process_is_killed_is_restarted_with_its_signal() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let shim = pid_of(&run_app(&ada, "todo"));
    let python = python_under(shim);
    assert_ne!(python, shim);
    kill_9(python);
    let now = wait_running_with_new_pid(&ada, id, shim);
    assert_answers(port_of(&now));
    let last_exit = now["last_exit"].as_str().unwrap_or_default();
    assert!(last_exit.contains("signal 9"), "{now}");
    let rows = runs(&daemon, id);
    assert_eq!(rows[0].signal, Some(9), "{rows:?}");
    wait_for("the old shim to be gone", || {
        reaped_or_not_ours(shim, daemon.pid())
    });
}

#[test]
fn a_crash_looping_app_ends_failed_without_spinning() {
    let (daemon, ada, id) = ada_with_app(&[], CRASHING_APP);

    let out = ada.run(&["run", "todo"]).fails_with(7);
    assert!(
        out.stderr.contains("crashing on purpose with code 3"),
        "the app's last log lines belong in the message: {}",
        out.stderr
    );
    assert!(out.stderr.contains("exited with code 3"), "{}", out.stderr);

    let app = ps_of(&ada, id).expect("the failed app is listed");
    assert_eq!(app["status"], "failed", "{app}");
    assert_eq!(app["pid"], Value::Null, "{app}");
    assert!(
        app["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("exited with code 3")),
        "{app}"
    );
    assert_eq!(app["restarts"], 5, "{app}");

    // The first start and five restarts, each one after its back-off.
    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 6, "{rows:?}");
    for row in &rows {
        assert_eq!(row.exit_code, Some(3), "{rows:?}");
        assert!(row.stopped.is_some(), "{rows:?}");
    }
    let backoff = [0.0, 0.1, 0.2, 0.4, 0.8];
    for (i, wait) in backoff.iter().enumerate() {
        let gap = rows[i + 1].started - rows[i].stopped.unwrap();
        assert!(
            gap >= wait - 0.005,
            "restart {} came {gap:.3} s after the exit, before its back-off of {wait} s",
            i + 1
        );
    }
    wait_for("the giving-up line at the end of the log", || {
        logs_lines(&ada, "todo", 1)
            .last()
            .is_some_and(|l| l.starts_with("[appforge] giving up"))
    });

    // It stays down: no process, no new run, still failed.
    let later = ps_of(&ada, id).expect("listed");
    assert_eq!(later["status"], "failed");
    assert_eq!(later["pid"], Value::Null);
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    assert_eq!(runs(&daemon, id).len(), 6);
    assert_eq!(project_state(&daemon, id).0, "failed");
    assert!(zombie_children(daemon.pid()).is_empty());
}

#[test]
fn an_app_that_never_answers_is_killed_after_the_start_timeout() {
    let (daemon, ada, id) = ada_with_app(&["--start-timeout", "2"], NEVER_READY_APP);

    // `run` gives up waiting (or sees it fail) and shows the log's end.
    let out = ada.run(&["run", "todo"]).fails_with(7);
    assert!(out.stderr.contains("importing forever"), "{}", out.stderr);

    let mut app = None;
    wait_for("the app to be given up", || {
        app = ps_of(&ada, id).filter(|a| a["status"] == "failed");
        app.is_some()
    });
    let app = app.unwrap();
    assert_eq!(app["pid"], Value::Null, "{app}");
    assert!(
        app["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer HTTP within 2 s")),
        "{app}"
    );
    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 6, "{rows:?}");
    for row in &rows {
        assert_eq!(row.status, "unhealthy", "{rows:?}");
        assert_eq!(row.signal, Some(9), "{rows:?}");
        assert!(
            reaped_or_not_ours(row.pid, daemon.pid()),
            "pid {}: {:?}",
            row.pid,
            stat_of(row.pid)
        );
    }
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    assert_eq!(zombie_children(daemon.pid()), Vec::<i64>::new());
}

#[test]
fn a_port_held_by_another_process_is_skipped_and_refused_when_asked_for() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let other = project_with_app(&ada, "other", PLAIN_APP);
    let first = run_app(&ada, "todo");
    let port = port_of(&first);

    // Preferred port held by a stranger: another one is picked.
    ada.run(&["stop", "todo"]).ok();
    let stranger = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the old port");
    let second = run_app(&ada, "todo");
    let moved = port_of(&second);
    assert_ne!(moved, port);
    assert_answers(moved);
    assert_eq!(project_state(&daemon, id).1, Some(i64::from(moved)));

    // Asked for explicitly: a port in use, by a stranger or by another app, is a conflict.
    let out = ada
        .run(&["run", "other", "--port", &port.to_string()])
        .fails_with(6);
    assert!(out.stderr.contains(&port.to_string()), "{}", out.stderr);
    ada.run(&["run", "other", "--port", &moved.to_string()])
        .fails_with(6);
    // Outside the daemon's range: invalid.
    let (_, last) = daemon.ports.split_once('-').unwrap();
    let outside = (last.parse::<u16>().unwrap() + 1).to_string();
    ada.run(&["run", "other", "--port", &outside]).fails_with(2);
    assert!(runs(&daemon, other).is_empty());

    // Free again, it can be had.
    drop(stranger);
    let on_it = ada
        .run(&["--json", "run", "other", "--port", &port.to_string()])
        .ok()
        .json();
    assert_eq!(port_of(&on_it), port);
    assert_answers(port);
    assert_answers(moved);
}

#[test]
fn two_apps_run_side_by_side_on_their_own_ports() {
    let (daemon, ada, one) = ada_with_app(&[], PLAIN_APP);
    let two = project_with_app(&ada, "second", PLAIN_APP);
    let a = run_app(&ada, "todo");
    let b = run_app(&ada, "second");
    assert_ne!(port_of(&a), port_of(&b));
    assert_ne!(pid_of(&a), pid_of(&b));
    assert_answers(port_of(&a));
    assert_answers(port_of(&b));
    let listed = ps(&ada);
    let ids: Vec<i64> = listed
        .iter()
        .map(|a| a["project_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![one, two]);
    assert!(
        listed.iter().all(|a| a["status"] == "running"),
        "{listed:?}"
    );
    assert_eq!(daemon.app_pids().len(), 2);
}

// ---------------------------------------------------------------------------
// stop
// ---------------------------------------------------------------------------

#[test]
fn stop_leaves_no_process_behind() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    ada.run(&["stop"]).fails_with(2);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));

    let stopped = ada.run(&["--json", "stop", "todo"]).ok().json();
    let stopped = stopped.as_array().expect("an array");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0]["project_id"], id);
    assert_eq!(stopped[0]["status"], "stopped");

    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    assert!(
        reaped_or_not_ours(pid, daemon.pid()),
        "pid {pid}: {:?}",
        stat_of(pid)
    );
    assert!(http_get(port, "/", Duration::from_secs(2)).is_none());
    assert!(ps(&ada).iter().all(|a| a["status"] != "running"));
    assert_eq!(
        project_state(&daemon, id),
        (
            "stopped".to_string(),
            Some(i64::from(port)),
            "stopped".to_string()
        )
    );
    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "stopped");
    assert!(rows[0].stopped.is_some());

    // Stopping what is not running stops nothing and is no error.
    let again = ada.run(&["--json", "stop", "todo"]).ok().json();
    assert_eq!(again, serde_json::json!([]));

    // `stop --all` stops every app of the caller.
    project_with_app(&ada, "second", PLAIN_APP);
    run_app(&ada, "todo");
    run_app(&ada, "second");
    assert_eq!(daemon.app_pids().len(), 2);
    let all = ada.run(&["--json", "stop", "--all"]).ok().json();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    assert!(zombie_children(daemon.pid()).is_empty());
}

#[test]
fn no_exited_app_is_left_a_zombie() {
    // Fast health checks, so a hang is noticed quickly.
    let (daemon, ada, id) = ada_with_app(
        &[
            "--health-interval",
            "0.3",
            "--health-timeout",
            "1",
            "--health-failures",
            "2",
        ],
        HANGING_APP,
    );
    let mut pid = pid_of(&run_app(&ada, "todo"));
    let mut ended = Vec::new();
    // Two crashes...
    for _ in 0..2 {
        kill_9(pid);
        ended.push(("killed with SIGKILL", pid));
        pid = pid_of(&wait_running_with_new_pid(&ada, id, pid));
    }
    // ...one hang, ended by the health checks...
    std::fs::write(run_folder(&daemon, id).join("hang"), "").unwrap();
    ended.push(("killed by the supervisor for not answering", pid));
    pid = pid_of(&wait_running_with_new_pid(&ada, id, pid));
    // ...and a stop. Each was reaped before its successor started (or,
    // for the stop, before the reply), so there is nothing to wait for.
    ada.run(&["stop", "todo"]).ok();
    ended.push(("stopped", pid));

    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    let zombies: Vec<String> = ended
        .iter()
        .filter(|(_, pid)| !reaped_or_not_ours(*pid, daemon.pid()))
        .map(|(how, pid)| format!("pid {pid} ({how}): {:?}", stat_of(*pid)))
        .collect();
    assert!(
        zombies.is_empty(),
        "zombies of the daemon (pid {}): {zombies:?}",
        daemon.pid()
    );
    assert_eq!(zombie_children(daemon.pid()), Vec::<i64>::new());
}

// ---------------------------------------------------------------------------
// Daemon restarts
// ---------------------------------------------------------------------------

#[test]
fn a_new_daemon_after_kill_9_adopts_the_running_app() {
    let (mut daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));

    // Someone keeps using the app the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let user_of_app = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let counter = if answers(port, "/") { &served } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    daemon.signal_and_wait(Signal::SIGKILL);
    assert_eq!(
        daemon.app_pids(),
        vec![pid as i32],
        "the app outlives the daemon"
    );
    assert_answers(port);
    daemon.restart();
    let mut seen = None;
    wait_for("the new daemon to show the same process running", || {
        seen = ps_of(&ada, id).filter(|a| a["status"] == "running");
        seen.is_some()
    });
    let seen = seen.unwrap();
    assert_eq!(pid_of(&seen), pid, "{seen}");
    assert_eq!(port_of(&seen), port);
    let before = served.load(Ordering::Relaxed);
    wait_for("a few more requests", || {
        served.load(Ordering::Relaxed) > before + 3
    });
    stop.store(true, Ordering::Relaxed);
    user_of_app.join().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "some requests failed");

    // One process, still the same run.
    assert_eq!(daemon.app_pids(), vec![pid as i32]);
    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].stopped.is_none());
    // `run` finds it running; the adopted app is stopped like any other.
    assert_eq!(pid_of(&run_app(&ada, "todo")), pid);
    ada.run(&["stop", "todo"]).ok();
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
}

#[test]
fn an_adopted_app_that_dies_is_restarted() {
    let (mut daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let pid = pid_of(&run_app(&ada, "todo"));
    daemon.signal_and_wait(Signal::SIGKILL);
    daemon.restart();
    wait_for("the app to be adopted", || {
        ps_of(&ada, id).is_some_and(|a| a["status"] == "running" && pid_of(&a) == pid)
    });

    // Not the new daemon's child, yet its death is noticed.
    kill_9(pid);
    let now = wait_running_with_new_pid(&ada, id, pid);
    assert_answers(port_of(&now));
    assert!(now["restarts"].as_u64().unwrap() >= 1, "{now}");
    assert_eq!(daemon.app_pids(), vec![pid_of(&now) as i32]);
    assert_eq!(runs(&daemon, id).len(), 2);
}

#[test]
fn an_app_that_died_with_the_daemon_down_is_started_again() {
    let (mut daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let pid = pid_of(&run_app(&ada, "todo"));

    daemon.signal_and_wait(Signal::SIGKILL);
    kill_9(pid);
    wait_for("the app to die", || is_zombie(pid as i32));
    daemon.restart();

    let now = wait_running_with_new_pid(&ada, id, pid);
    let url = now["url"].as_str().unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{}/", port_of(&now)));
    assert_answers(port_of(&now));
    // Once: one process, and the lost run is closed.
    assert_eq!(daemon.app_pids(), vec![pid_of(&now) as i32]);
    let rows = runs(&daemon, id);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].stopped.is_some(), "{rows:?}");
    assert_eq!(rows[1].pid, pid_of(&now));
}

#[test]
fn stop_apps_on_exit_takes_the_apps_down_with_the_daemon() {
    let (mut daemon, ada, _) = ada_with_app(&["--stop-apps-on-exit"], PLAIN_APP);
    project_with_app(&ada, "second", PLAIN_APP);
    let a = run_app(&ada, "todo");
    let b = run_app(&ada, "second");
    assert_eq!(daemon.app_pids().len(), 2);

    let status = daemon.signal_and_wait(Signal::SIGTERM);
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    for app in [&a, &b] {
        // The daemon is gone, so whatever zombie is left is not its.
        assert!(is_zombie(pid_of(app) as i32));
        assert!(http_get(port_of(app), "/", Duration::from_secs(2)).is_none());
    }
}

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

#[test]
fn an_app_that_stops_answering_is_killed_and_restarted() {
    let (daemon, ada, id) = ada_with_app(
        &[
            "--health-interval",
            "0.3",
            "--health-timeout",
            "1",
            "--health-failures",
            "2",
        ],
        HANGING_APP,
    );
    let shim = pid_of(&run_app(&ada, "todo"));
    std::fs::write(run_folder(&daemon, id).join("hang"), "").unwrap();
    // The process that hangs (under the shim `ps` shows): alive, stopped by
    // its own SIGSTOP.
    let mut python = None;
    wait_for("the app to stop itself", || {
        python = daemon
            .app_processes()
            .into_iter()
            .find(|p| stat_of(i64::from(*p)).is_some_and(|(s, _)| s == 'T'));
        python.is_some()
    });
    let (hung, python) = (shim, python.unwrap());

    let now = wait_running_with_new_pid(&ada, id, hung);
    assert_answers(port_of(&now));
    assert!(now["restarts"].as_u64().unwrap() >= 1, "{now}");
    let last_exit = now["last_exit"].as_str().unwrap_or_default();
    assert!(
        last_exit.contains("stopped answering") || last_exit.contains("signal 9"),
        "{now}"
    );
    wait_for("the hung process to be gone", || is_zombie(python));
    wait_for("the hung app's shim to be gone", || is_zombie(hung as i32));
    assert_eq!(daemon.app_pids(), vec![pid_of(&now) as i32]);
    let rows = runs(&daemon, id);
    let row = rows.iter().find(|r| r.pid == hung).expect("the hung run");
    assert_eq!(row.status, "unhealthy", "{rows:?}");
    assert!(log_text(&daemon, id).contains("hanging now"));
}

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

#[test]
fn the_app_gets_a_clean_environment_without_the_daemons_secrets() {
    let secrets = [
        ("GROQ_API_KEY", "gsk_test_secret_groq_4711"),
        ("OPENAI_API_KEY", "sk-test-secret-openai-4711"),
        ("APPFORGE_API_KEY", "af-test-secret-appforge-4711"),
    ];
    let daemon = Daemon::start_with(&[], &secrets);
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "todo", ENV_APP);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));

    let env = environ_of(pid);
    let keys: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    let allowed: BTreeSet<&str> = ALLOWED_ENV.into_iter().collect();
    assert!(keys.is_subset(&allowed), "unexpected variables: {env:?}");
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {env:?}"))
    };
    assert_eq!(get("PORT"), port.to_string());
    assert_eq!(get("HOST"), "127.0.0.1");
    assert_eq!(get("PYTHONUNBUFFERED"), "1");
    let venv = PathBuf::from(get("VIRTUAL_ENV"));
    assert!(venv.join("bin/python").exists(), "{venv:?}");
    assert!(get("PATH").starts_with(&venv.join("bin").display().to_string()));
    for (name, secret) in secrets {
        assert!(!keys.contains(name));
        assert!(!env.iter().any(|(_, v)| v.contains(secret)), "{env:?}");
    }

    // The secrets are nowhere: not in the app's log, the daemon's log, the
    // database or `ps`.
    wait_for("the app to print its environment", || {
        log_text(&daemon, id).contains("environment: ")
    });
    let ps_out = ada.run(&["--json", "ps"]).ok().stdout;
    let stored = daemon.store_bytes();
    for (_, secret) in secrets {
        assert!(!log_text(&daemon, id).contains(secret), "in the app's log");
        assert!(!daemon.log().contains(secret), "in the daemon's log");
        assert!(!ps_out.contains(secret), "in ps");
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "in the store"
        );
    }
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

#[test]
fn logs_rotate_and_stay_within_their_cap() {
    const MAX: u64 = 20_000;
    let (daemon, ada, id) =
        ada_with_app(&["--log-max-bytes", "20000", "--log-files", "3"], NOISY_APP);
    run_app(&ada, "todo");
    let live = log_path(&daemon, id);
    let oldest = live.with_extension("log.2");
    let too_many = live.with_extension("log.3");
    // Each file may overshoot by what the app writes between two rotation
    // checks (one a second; about 20 kB/s of output, so ~1.6 s of slack each).
    let cap = 3 * MAX + 96 * 1024;
    let total = || -> u64 {
        log_files(&daemon, id)
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    };
    // Bytes the app has written so far, from the number of its newest line.
    let written = || -> u64 {
        let text = log_text(&daemon, id);
        let newest = text
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("noise "))
            .find_map(|l| l.get(..9)?.parse::<u64>().ok());
        newest.map_or(0, |n| (n + 1) * NOISE_LINE)
    };
    let mut largest = 0;
    wait_for("two rotations", || {
        largest = largest.max(total());
        oldest.exists()
    });
    // Keep watching until the app has written more than the cap.
    wait_for("the app to write twice the cap", || {
        let now = total();
        largest = largest.max(now);
        assert!(now <= cap, "the logs take {now} bytes, over {cap}");
        assert!(!too_many.exists(), "{:?}", log_files(&daemon, id));
        written() > cap
    });
    assert!(largest <= cap, "{largest} > {cap}");
    assert_eq!(
        log_files(&daemon, id).len(),
        3,
        "{:?}",
        log_files(&daemon, id)
    );
    // The newest lines are still read across files.
    let tail = logs_lines(&ada, "todo", 5);
    assert_eq!(tail.len(), 5, "{tail:?}");
    // (A health probe's request line may sit among them.)
    let noise = tail.iter().filter(|l| l.starts_with("noise ")).count();
    assert!(noise >= 4, "{tail:?}");
}

#[test]
fn logs_show_the_last_lines_and_follow_new_ones() {
    // No health probes during the test: the log changes only when we ask.
    let (daemon, ada, id) = ada_with_app(&["--health-interval", "600"], PLAIN_APP);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));
    // The supervisor notes that the app answers just after `run` returns.
    let answering = format!("[appforge] pid {pid} answers on http://127.0.0.1:{port}/");
    wait_for("the supervisor's note that the app answers", || {
        log_text(&daemon, id).lines().any(|l| l == answering)
    });
    assert!(answers(port, "/mark?m=newest"));
    wait_for("the request to be logged", || {
        log_text(&daemon, id)
            .lines()
            .last()
            .is_some_and(|l| l.contains("GET /mark?m=newest"))
    });

    let all: Vec<String> = log_text(&daemon, id).lines().map(str::to_string).collect();
    assert!(all.len() > 5, "{all:?}");
    assert!(
        all.contains(&format!("[appforge] started pid {pid} on port {port}")),
        "{all:?}"
    );
    assert!(all.iter().any(|l| l == "marker newest"), "{all:?}");
    // Flask colours a line of its own; on a pipe the colour is dropped.
    let raw = all.clone();
    let all: Vec<String> = all.iter().map(|l| without_colour(l)).collect();
    let five = logs_lines(&ada, "todo", 5);
    assert_eq!(five, all[all.len() - 5..].to_vec());
    assert!(five[4].contains("GET /mark?m=newest"), "{five:?}");
    let json = ada
        .run(&["--json", "logs", &id.to_string(), "-n", "5"])
        .ok()
        .json();
    // The same lines, each with who wrote it; appforge's without the tag.
    let shown: Vec<String> = json["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| match l["source"].as_str() {
            Some("appforge") => format!("[appforge] {}", l["line"].as_str().unwrap()),
            Some("app") => l["line"].as_str().unwrap().to_string(),
            other => panic!("a line with source {other:?}: {l}"),
        })
        .collect();
    assert_eq!(shown, raw[raw.len() - 5..].to_vec());
    assert_eq!(logs_lines(&ada, "todo", 1000), all);

    // Follow: the lines written after it started come through.
    let (mut follower, rx, reader) = follow(&ada, &["logs", "todo", "-f", "-n", "2"]);
    let next = |what: &str| {
        rx.recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("timed out waiting for {what} from logs -f"))
    };
    // The tail comes first, and the follow starts where it ends.
    assert_eq!(next("the tail"), all[all.len() - 2]);
    assert_eq!(next("the tail"), all[all.len() - 1]);
    assert!(answers(port, "/mark?m=followed"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let line = next("the new line");
        if line == "marker followed" {
            break;
        }
        assert!(!line.contains("newest"), "an old line again: {line}");
        assert!(Instant::now() < deadline, "no `marker followed`");
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    reader.join().unwrap();
}

// ---------------------------------------------------------------------------
// Owners
// ---------------------------------------------------------------------------

#[test]
fn apps_are_their_owners_alone() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));
    let bob = signed_up(&daemon, "bob");
    let sid = id.to_string();

    for reference in [sid.as_str(), "todo"] {
        for args in [
            vec!["run", reference],
            vec!["stop", reference],
            vec!["restart", reference],
            vec!["logs", reference],
            vec!["logs", reference, "-f"],
        ] {
            let out = bob.run(&args).fails_with(3);
            let mut missing_args = args.clone();
            missing_args[1] = "no-such-project-4711";
            let missing = bob.run(&missing_args).fails_with(3);
            assert_eq!(
                out.stderr,
                missing.stderr.replace("no-such-project-4711", reference),
                "{args:?}"
            );
            assert!(!out.stdout.contains("plain app"), "{out:?}");
        }
    }
    assert_eq!(ps(&bob), Vec::<Value>::new());
    let stopped = bob.run(&["--json", "stop", "--all"]).ok().json();
    assert_eq!(stopped, serde_json::json!([]));

    // Her app never noticed.
    assert_answers(port);
    let hers = ps_of(&ada, id).expect("listed");
    assert_eq!(pid_of(&hers), pid);
    assert_eq!(hers["status"], "running");
    assert_eq!(hers["restarts"], 0);
    assert_eq!(runs(&daemon, id).len(), 1);
    assert_eq!(project_state(&daemon, id).2, "running");

    // Without a session: status 4.
    let nobody = daemon.user("nobody");
    for args in [
        vec!["ps"],
        vec!["run", sid.as_str()],
        vec!["stop", sid.as_str()],
        vec!["stop", "--all"],
        vec!["restart", sid.as_str()],
        vec!["logs", sid.as_str()],
    ] {
        nobody.run(&args).fails_with(4);
    }
    ada.run(&["logout"]).ok();
    ada.run(&["ps"]).fails_with(4);
    ada.run(&["stop", "--all"]).fails_with(4);
    assert_answers(port);
    assert_eq!(daemon.app_pids(), vec![pid as i32]);
}

#[test]
fn deleting_a_running_project_stops_its_app_and_removes_its_files() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));
    assert!(run_folder(&daemon, id).is_dir());
    assert!(!log_files(&daemon, id).is_empty());

    ada.run(&["delete", "todo", "--yes"]).ok();
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
    assert!(
        reaped_or_not_ours(pid, daemon.pid()),
        "pid {pid}: {:?}",
        stat_of(pid)
    );
    assert!(http_get(port, "/", Duration::from_secs(2)).is_none());
    assert!(!run_folder(&daemon, id).exists());
    assert_eq!(log_files(&daemon, id), Vec::<PathBuf>::new());
    assert_eq!(ps(&ada), Vec::<Value>::new());
    ada.run(&["logs", &id.to_string()]).fails_with(3);
    ada.run(&["run", &id.to_string()]).fails_with(3);
}

/// An app that writes numbered lines while it never finishes importing.
const NOISY_NEVER_READY_APP: &str = r#"import sys
import time

from flask import Flask

app = Flask(__name__)
for n in range(10**9):
    sys.stdout.write("noise %09d %s\n" % (n, "x" * 180))
    sys.stdout.flush()
    time.sleep(0.01)
"#;

#[test]
fn logs_rotate_while_an_app_is_still_starting() {
    const MAX: u64 = 20_000;
    let (daemon, ada, id) = ada_with_app(
        &[
            "--log-max-bytes",
            "20000",
            "--log-files",
            "3",
            "--start-timeout",
            "60",
        ],
        NOISY_NEVER_READY_APP,
    );
    // `run` waits for an answer that never comes; start it in the background.
    let mut run = ada
        .command(&["run", "todo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let live = log_path(&daemon, id);
    wait_for("two rotations before the app ever answered", || {
        live.with_extension("log.2").exists()
    });
    let total: u64 = log_files(&daemon, id)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    assert!(total <= 3 * MAX + 96 * 1024, "{total} bytes of logs");
    assert_eq!(ps_of(&ada, id).unwrap()["status"], "starting");
    ada.run(&["stop", "todo"]).ok();
    let _ = run.wait();
}

#[test]
fn run_with_another_port_on_a_running_app_is_a_conflict() {
    let (_daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let app = run_app(&ada, "todo");
    let other = (port_of(&app) + 1).to_string();
    let out = ada.run(&["run", "todo", "--port", &other]).fails_with(6);
    assert!(
        out.stderr.contains("already runs on port"),
        "{}",
        out.stderr
    );
    assert_eq!(pid_of(&ps_of(&ada, id).unwrap()), pid_of(&app));
    let same = ada
        .run(&[
            "--json",
            "run",
            "todo",
            "--port",
            &port_of(&app).to_string(),
        ])
        .ok()
        .json();
    assert_eq!(pid_of(&same), pid_of(&app));
}

#[test]
fn environments_are_made_with_uv_when_asked_and_shared_by_equal_requirements() {
    // `make pyenv` puts uv beside the test Python.
    let uv_dir = appforge_e2e::python().parent().unwrap().to_path_buf();
    assert!(
        uv_dir.join("uv").exists(),
        "uv missing in {}; run `make pyenv`",
        uv_dir.display()
    );
    let path = format!(
        "{}:{}",
        uv_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start_with(&["--installer", "uv"], &[("PATH", &path)]);
    let ada = signed_up(&daemon, "ada");
    // Requirements of their own, so this environment is made here, by uv.
    let requirements = "flask>=3.0\n# environment made by uv in the tests\n";
    for name in ["one", "two"] {
        new_project(&ada, name);
        set_requirements(&ada, name, requirements);
    }
    let one = run_app(&ada, "one");
    assert_answers(port_of(&one));
    let envs = appforge_e2e::test_env_dir();
    let made: Vec<PathBuf> = std::fs::read_dir(&envs)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| std::fs::read_to_string(p.join(".ready")).is_ok_and(|r| r == requirements))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let cfg = std::fs::read_to_string(made[0].join("pyvenv.cfg")).unwrap();
    assert!(cfg.contains("uv"), "not made by uv:\n{cfg}");
    // The second app with the same requirements installs nothing.
    let out = ada.run(&["run", "two"]).ok();
    let two = ps_of(&ada, ps(&ada)[1]["project_id"].as_i64().unwrap()).unwrap();
    assert_answers(port_of(&two));
    assert!(!out.stderr.contains("installing"), "{}", out.stderr);
    let python = python_under(pid_of(&two));
    let cmdline = std::fs::read_to_string(format!("/proc/{python}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with(&made[0].display().to_string()),
        "{cmdline}"
    );
}

#[test]
fn an_adopted_app_keeps_the_files_it_runs_until_it_is_restarted() {
    let (mut daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    let app = run_app(&ada, "todo");
    let folder = run_folder(&daemon, id);
    let running = std::fs::read_to_string(folder.join("app.py")).unwrap();
    // A newer version that fails its checks (a test that fails), kept:
    // the running app does not follow it.
    ada.run_with_stdin(
        &[
            "edit",
            "todo",
            "--file",
            "test_newer.py",
            "--stdin",
            "--keep-broken",
        ],
        "def test_newer():\n    assert False\n",
    )
    .ok();
    daemon.signal_and_wait(Signal::SIGKILL);
    daemon.restart();
    wait_for("the new daemon to adopt the app", || {
        ps_of(&ada, id).is_some_and(|a| a["status"] == "running" && pid_of(&a) == pid_of(&app))
    });
    let adopted = ps_of(&ada, id).unwrap();
    assert_eq!(
        (
            adopted["version"].as_i64(),
            adopted["newer_version"].as_i64()
        ),
        (
            app["version"].as_i64(),
            app["version"].as_i64().map(|v| v + 1)
        ),
        "{adopted}"
    );
    // The folder still holds what the adopted process runs.
    assert_eq!(
        std::fs::read_to_string(folder.join("app.py")).unwrap(),
        running
    );
    assert!(!folder.join("test_newer.py").exists());
    let restarted = ada.run(&["--json", "restart", "todo"]).ok().json();
    assert_ne!(pid_of(&restarted), pid_of(&app));
    assert!(folder.join("test_newer.py").exists());
}

#[test]
fn requirements_that_cannot_be_installed_fail_the_run_and_leave_nothing_half_made() {
    let (daemon, ada, id) = ada_with_app(&[], PLAIN_APP);
    // A requirement line by its characters, but not one the installer can
    // parse: it fails at once, offline.
    let requirements = "flask>=3.0\nnot-a-requirement==(1\n";
    set_requirements(&ada, "todo", requirements);
    let out = ada.run(&["run", "todo"]).fails_with(7);
    assert!(out.stderr.contains("failed"), "{}", out.stderr);
    assert!(out.stderr.contains("log"), "{}", out.stderr);
    assert!(ps_of(&ada, id).is_none(), "{:?}", ps(&ada));
    assert!(daemon.app_pids().is_empty());
    // The installer's complaint is in the app's log, and no environment for
    // these requirements was kept, finished or not.
    let log = log_text(&daemon, id);
    assert!(log.contains("not-a-requirement"), "{log}");
    for entry in std::fs::read_dir(appforge_e2e::test_env_dir()).unwrap() {
        let path = entry.unwrap().path();
        let ready = std::fs::read_to_string(path.join(".ready")).unwrap_or_default();
        assert_ne!(ready, requirements, "{} was kept", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("building") {
            let made_by_us = std::fs::read_to_string(path.join("requirements.txt"))
                .is_ok_and(|r| r == requirements);
            assert!(
                !made_by_us,
                "a half-built environment stayed: {}",
                path.display()
            );
        }
    }
}

/// One project's install never finishes (a stand-in `uv` that hangs on its
/// requirements); another project's `run` and `stop` return meanwhile, and
/// the hung install is stopped, with what it started, at its time limit.
#[test]
fn a_hung_install_blocks_no_other_project_and_is_stopped_at_its_limit() {
    let bin = tempfile::tempdir().unwrap();
    let script = format!(
        r#"#!/bin/sh
for last in "$@"; do :; done
if grep -q appforge-hang "$last/requirements.txt" 2>/dev/null; then
  echo "installer hanging"
  exec sleep 6071
fi
exec '{python}' -m uv "$@"
"#,
        python = appforge_e2e::python().display()
    );
    let uv = bin.path().join("uv");
    std::fs::write(&uv, script).unwrap();
    std::fs::set_permissions(&uv, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start_with(
        &["--installer", "uv", "--install-timeout", "10"],
        &[("PATH", &path)],
    );
    let ada = signed_up(&daemon, "ada");
    let slow = new_project(&ada, "slow");
    set_requirements(
        &ada,
        "slow",
        &format!("flask\n# appforge-hang {}\n", std::process::id()),
    );
    new_project(&ada, "quick");

    let hung = {
        let ada = daemon.user("ada");
        std::thread::spawn(move || ada.run(&["run", "slow"]))
    };
    wait_for("the install to hang", || {
        std::fs::read_to_string(log_path(&daemon, slow))
            .is_ok_and(|l| l.contains("installer hanging"))
    });
    // The other project is not held up by the hung install.
    let quick = run_app(&ada, "quick");
    assert_answers(port_of(&quick));
    ada.run(&["stop", "quick"]).ok();
    assert!(
        !hung.is_finished(),
        "the hung install ended before the other project was served; the test proves nothing"
    );

    let out = hung.join().unwrap().fails_with(7);
    assert!(
        out.stderr.contains("uv venv took longer than 10 s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("installer hanging"),
        "the last lines are shown: {}",
        out.stderr
    );
    wait_for("the hung installer's processes to be gone", || {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return true;
        };
        !entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c == b"sleep\x006071\x00")
                    && !is_zombie(pid)
            })
    });
}

#[test]
fn recovery_skips_a_run_it_cannot_use_and_recovers_the_others() {
    let mut daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    // The broken project's run comes first: a recovery that stopped at the
    // first error would never reach the good one.
    let broken = project_with_app(&ada, "broken", PLAIN_APP);
    let good = project_with_app(&ada, "good", PLAIN_APP);
    run_app(&ada, "broken");
    let good_pid = pid_of(&run_app(&ada, "good"));
    daemon.signal_and_wait(Signal::SIGKILL);
    // Its versions gone, as a bug or a half-finished upgrade might leave
    // it: its files cannot be read any more.
    daemon.sql(&format!(
        "DELETE FROM project_versions WHERE project_id = {broken}"
    ));
    daemon.restart();
    let mut seen = None;
    wait_for("the good app to be re-adopted", || {
        seen = ps_of(&ada, good).filter(|a| a["status"] == "running");
        seen.is_some()
    });
    assert_eq!(pid_of(&seen.unwrap()), good_pid);
    wait_for("the broken run to be logged and skipped", || {
        daemon.log().contains("skipped it")
    });
    assert!(
        ps_of(&ada, broken).is_none_or(|a| a["status"] != "running"),
        "{:?}",
        ps_of(&ada, broken)
    );
    ada.run(&["stop", "good"]).ok();
}

#[test]
fn an_app_a_killed_daemon_never_recorded_is_stopped_by_the_next() {
    let mut daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "todo", PLAIN_APP);
    let shim = pid_of(&run_app(&ada, "todo"));
    ada.run(&["stop", "todo"]).ok();
    // Started again, then the daemon dies before the start is recorded:
    // here, by removing the record.
    let shim = {
        let again = pid_of(&run_app(&ada, "todo"));
        assert_ne!(again, shim);
        again
    };
    daemon.signal_and_wait(Signal::SIGKILL);
    daemon.sql(&format!("DELETE FROM project_runs WHERE pid = {shim}"));
    daemon.sql(&format!(
        "UPDATE projects SET wanted = 'stopped' WHERE id = {id}"
    ));
    assert!(!is_zombie(shim as i32), "the app outlives the daemon");
    daemon.restart();
    wait_for("the unrecorded app to be stopped", || {
        is_zombie(shim as i32)
    });
    assert!(daemon.log().contains("no run records"), "{}", daemon.log());
}

/// An app that prints 200,000 numbered lines of 100 bytes (20 MB) once
/// imported, more than one frame can hold.
const WORDY_APP: &str = r#"import sys

from flask import Flask

app = Flask(__name__)
pad = "x" * 88
for i in range(200000):
    sys.stdout.write("line %06d %s\n" % (i, pad))
sys.stdout.flush()


@app.route("/")
def index():
    return "ok\n"
"#;

#[test]
fn logs_larger_than_a_frame_come_whole() {
    let (daemon, ada, id) = ada_with_app(
        &["--log-max-bytes", "16777216", "--log-files", "3"],
        WORDY_APP,
    );
    run_app(&ada, "todo");
    wait_for("the app to print its lines", || {
        log_text(&daemon, id).contains("line 199999")
    });
    let out = ada.run(&["logs", "todo", "-n", "250000"]).ok().stdout;
    let printed: Vec<&str> = out.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(printed.len(), 200_000, "lines of `logs -n 250000`");
    assert!(printed[0].starts_with("line 000000 "), "{}", printed[0]);
    assert!(printed[199_999].starts_with("line 199999 "));
    // Every line whole, in order.
    for (i, line) in printed.iter().enumerate().step_by(9973) {
        assert!(line.starts_with(&format!("line {i:06} ")), "{line}");
        assert_eq!(line.len(), 100, "{line}");
    }
    let json = ada
        .run(&["--json", "logs", "todo", "-n", "250000"])
        .ok()
        .json();
    let lines: Vec<&str> = json["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["line"].as_str().expect("a line's text"))
        .collect();
    assert!(lines.iter().any(|l| l.starts_with("line 199999 ")));
    assert!(lines
        .iter()
        .all(|l| !l.starts_with("line") || l.len() == 100));
}

#[test]
fn json_logs_follow_prints_one_document_a_line_as_it_comes() {
    let (_daemon, ada, _id) = ada_with_app(&[], PLAIN_APP);
    let port = port_of(&run_app(&ada, "todo"));
    let (mut follower, rx, reader) = follow(&ada, &["--json", "logs", "todo", "-f", "-n", "1"]);
    // The tail's one line comes as a document, before anything new.
    let first = rx.recv_timeout(PATIENCE).expect("the tail");
    let doc: Value = serde_json::from_str(&first).expect("a JSON document a line");
    assert!(doc["line"].is_string(), "{first}");
    assert!(answers(port, "/mark?m=jsonl"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let line = rx.recv_timeout(PATIENCE).expect("a new line");
        let doc: Value = serde_json::from_str(&line).expect("a JSON document a line");
        if doc["line"] == "marker jsonl" {
            break;
        }
        assert!(Instant::now() < deadline, "no `marker jsonl`");
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    reader.join().unwrap();
}

/// An app with a `/healthz` route that says when it is asked.
const HEALTHZ_APP: &str = r#"from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "ok\n"


@app.route("/healthz")
def healthz():
    print("healthz asked", flush=True)
    return "fine\n"
"#;

#[test]
fn health_probes_ask_healthz_and_stay_out_of_the_log() {
    let (daemon, ada, id) = ada_with_app(&["--health-interval", "0.2"], HEALTHZ_APP);
    run_app(&ada, "todo");
    wait_for("a few probes of /healthz", || {
        log_text(&daemon, id).matches("healthz asked").count() >= 3
    });
    let log = log_text(&daemon, id);
    assert!(!log.contains("appforge-probe"), "{log}");
    assert!(!log.contains("GET /healthz"), "{log}");
    assert!(!log.contains("GET /?"), "{log}");
}

/// An app that takes its time to stop: its SIGTERM handler says so in the
/// log, then waits 3 s. `/` answers with its version, `VERSION`.
const SLOW_STOP_APP: &str = r#"import signal
import sys
import time

from flask import Flask

app = Flask(__name__)


def on_term(signum, frame):
    print("stopping slowly", flush=True)
    time.sleep(3)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)


@app.route("/")
def index():
    return "VERSION\n"
"#;

/// Restart is one operation: a daemon killed between the old process's
/// stop and the new one's start leaves the app wanted, and the next daemon
/// runs it on the newest version (not the old process, not nothing).
#[test]
fn a_daemon_killed_in_the_middle_of_a_restart_brings_the_app_back_on_the_new_version() {
    let (mut daemon, ada, id) = ada_with_app(&[], &SLOW_STOP_APP.replace("VERSION", "one"));
    let first = run_app(&ada, "todo");
    assert!(page(port_of(&first)).contains("one"));
    // A newer version, saved without checks: the app keeps the old one
    // until it is restarted.
    ada.run_with_stdin(
        &["edit", "todo", "--file", "app.py", "--stdin", "--no-check"],
        &SLOW_STOP_APP.replace("VERSION", "two"),
    )
    .ok();
    let mut restart = ada
        .command(&["restart", "todo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the old process to be told to stop", || {
        log_text(&daemon, id).contains("stopping slowly")
    });
    daemon.signal_and_wait(Signal::SIGKILL);
    let _ = restart.wait();
    assert_eq!(project_state(&daemon, id).2, "running", "still wanted");

    daemon.restart();
    let mut now = None;
    wait_for("the new daemon to run the new version", || {
        now = ps_of(&ada, id).filter(|a| a["status"] == "running");
        now.as_ref()
            .is_some_and(|a| page(port_of(a)).contains("two"))
    });
    let now = now.unwrap();
    assert_eq!(project_state(&daemon, id).2, "running");
    // The old process is gone: one app process, the new one.
    wait_for("only the new process to be left", || {
        daemon.app_pids() == vec![pid_of(&now) as i32]
    });
}

/// An app that, asked, removes its other Python files, leaves a FIFO named
/// `zz.py` and a `z.py` linked to /dev/zero in its folder, makes its `requirements.txt` a FIFO too, and
/// exits. Nothing the daemon does with the app may read them.
const SABOTEUR_APP: &str = r#"import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "ok\n"


@app.route("/sabotage")
def sabotage():
    for name in os.listdir("."):
        if name.endswith(".py") and name != "app.py":
            os.remove(name)
    os.mkfifo("zz.py")
    os.symlink("/dev/zero", "z.py")
    os.remove("requirements.txt")
    os.mkfifo("requirements.txt")
    os._exit(1)
"#;

#[test]
fn an_app_that_leaves_a_fifo_and_a_dev_zero_link_is_restarted_and_adopted_as_usual() {
    let (mut daemon, ada, id) = ada_with_app(&[], SABOTEUR_APP);
    let first = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&first), port_of(&first));
    let _ = http_get(port, "/sabotage", Duration::from_secs(5));
    let dir = run_folder(&daemon, id);
    wait_for("the traps to be laid", || {
        dir.join("z.py").is_symlink() && !dir.join("test_app.py").exists()
    });

    // Restarted after its crash, although its folder holds the traps.
    let now = wait_running_with_new_pid(&ada, id, pid);
    assert_answers(port_of(&now));
    // A new daemon adopts it, reading nothing that blocks or never ends.
    daemon.signal_and_wait(Signal::SIGKILL);
    daemon.restart();
    wait_for("the new daemon to adopt the app", || {
        ps_of(&ada, id).is_some_and(|a| a["status"] == "running" && pid_of(&a) == pid_of(&now))
    });
    ada.run(&["ping"]).ok();
    ada.run(&["stop", "todo"]).ok();
    assert!(daemon.app_pids().is_empty(), "{:?}", daemon.app_pids());
}

/// A wanted app whose versions are gone from the store (a hand-edited or
/// half-restored database) cannot be started again: the next daemon says
/// why and goes on with the other apps.
#[test]
fn a_wanted_app_without_a_version_is_reported_and_the_others_come_back() {
    let (mut daemon, ada, broken) = ada_with_app(&[], PLAIN_APP);
    let sound = project_with_app(&ada, "sound", PLAIN_APP);
    run_app(&ada, "todo");
    run_app(&ada, "sound");
    daemon.signal_and_wait(Signal::SIGKILL);
    // Both apps gone with the daemon away, and one project's versions too.
    for pid in daemon.app_pids() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    wait_for("the apps to be gone", || daemon.app_processes().is_empty());
    daemon.sql(&format!(
        "DELETE FROM project_files WHERE version_id IN \
         (SELECT id FROM project_versions WHERE project_id = {broken})"
    ));
    daemon.sql(&format!(
        "DELETE FROM project_versions WHERE project_id = {broken}"
    ));

    daemon.restart();
    wait_for("the sound app to run again", || {
        ps_of(&ada, sound).is_some_and(|a| a["status"] == "running")
    });
    wait_for("the daemon to say why the other did not", || {
        daemon
            .log()
            .contains("could not start an app that should run; skipped it")
    });
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("could not start an app that should run"))
        .unwrap();
    assert!(line.contains(&format!("project_id={broken}")), "{line}");
    assert!(
        line.contains("project `todo` has no version in the store"),
        "{line}"
    );
    assert!(ps_of(&ada, broken).is_none_or(|a| a["status"] != "running"));
    let shown = ada.run(&["show", "todo"]).fails_with(3);
    assert!(
        shown.stderr.contains("restore the store from a backup"),
        "{}",
        shown.stderr
    );
}
