//! The limits apps are held to, each tried for real by a Flask app that
//! attacks the way a hostile model's code would: the network path to
//! appforge's own ports and to other apps, a fork flood, a disk flood.
//! Also what the daemon leaves behind: its cgroups when it exits, the
//! scratch folders of checks when it was killed.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use appforge_e2e::apps::*;
use appforge_e2e::web::daemon_with_dashboard;
use appforge_e2e::{free_port, wait_for, Daemon, User};
use nix::sys::signal::Signal;

/// A TCP server on 127.0.0.1 that greets whoever connects; it stops when
/// dropped.
struct Greeter {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Greeter {
    fn start() -> Greeter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.write_all(b"hello from the test\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Greeter { port, stop }
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An app that, as it starts, tries a TCP connection to each `name=port`
/// it is given and serves what happened on `/net`: `name REACHED` or
/// `name DENIED <error>`.
fn prober_app(targets: &[(&str, u16)]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|(name, port)| format!("({name:?}, {port})"))
        .collect();
    format!(
        r#"import socket

from flask import Flask

TARGETS = [{targets}]
RESULTS = []
for name, port in TARGETS:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.close()
        RESULTS.append(name + " REACHED")
    except Exception as e:
        RESULTS.append(name + " DENIED " + type(e).__name__ + ": " + str(e))

app = Flask(__name__)


@app.route("/")
def index():
    return "prober\n"


@app.route("/net")
def net():
    return "\n".join(RESULTS) + "\n"
"#,
        targets = targets.join(", ")
    )
}

/// What the prober app on `port` found.
fn net_results(port: u16) -> String {
    let reply = http_get(port, "/net", Duration::from_secs(30)).expect("an answer on /net");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(reply)
}

#[test]
fn an_app_reaches_no_appforge_port_and_no_other_app_only_the_allowed_ports() {
    let greeter = Greeter::start();

    // The control: with the test server's port allowed, the same app
    // reaches it, so a refusal below is the rule's doing.
    let allowed = format!("80,443,{}", greeter.port);
    let daemon = Daemon::start_with(&["--app-connect-ports", &allowed], &[]);
    let ada = signed_up(&daemon, "ada");
    project_with_app(
        &ada,
        "prober",
        &prober_app(&[("test-server", greeter.port)]),
    );
    let found = net_results(port_of(&run_app(&ada, "prober")));
    assert!(
        found.contains("test-server REACHED"),
        "with its port allowed, the app did not reach the test server:\n{found}"
    );
    ada.run(&["stop", "prober"]).ok();
    drop(daemon);

    // The attack, with the default ports: the dashboard, the metrics, another
    // app and any other local server.
    let metrics = free_port();
    let (daemon, dashboard) =
        daemon_with_dashboard(&["--metrics-addr", &format!("127.0.0.1:{metrics}")]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "victim");
    let victim = port_of(&run_app(&ada, "victim"));
    assert_answers(victim);
    project_with_app(
        &ada,
        "prober",
        &prober_app(&[
            ("dashboard", dashboard.port()),
            ("metrics", metrics),
            ("other-app", victim),
            ("test-server", greeter.port),
        ]),
    );
    let found = net_results(port_of(&run_app(&ada, "prober")));
    for name in ["dashboard", "metrics", "other-app", "test-server"] {
        assert!(
            found.contains(&format!("{name} DENIED PermissionError")),
            "the app reached the {name}:\n{found}"
        );
    }
    // The app still serves, and so does its neighbour.
    assert_answers(victim);

    // A check step runs the app's code too: the same rule holds there. The
    // app's import fails on purpose, carrying what it found into the
    // check's error.
    let code = format!(
        "{}\nraise RuntimeError('NETCHECK ' + ' | '.join(RESULTS))\n",
        prober_app(&[("check-to-server", greeter.port)])
    );
    let out = ada.run_with_stdin(&["edit", "prober", "--file", "app.py", "--stdin"], &code);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("NETCHECK"), "the check did not run: {said}");
    assert!(
        said.contains("check-to-server DENIED PermissionError"),
        "a check step reached the test server: {said}"
    );
}

/// An app that forks `children` sleeping children as it starts.
fn forking_app(children: u32) -> String {
    format!(
        r#"import os
import sys
import time

from flask import Flask

forked = 0
for _ in range({children}):
    try:
        pid = os.fork()
    except OSError as e:
        print("fork refused after", forked, e, flush=True)
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    forked += 1
print("forked", forked, flush=True)

app = Flask(__name__)


@app.route("/")
def index():
    return "forked %d\n" % forked
"#
    )
}

/// A check's test step that forks `children` sleeping children and ends at
/// once: faster than any count on a timer.
fn forking_test(children: u32) -> String {
    format!(
        r#"import os
import time


def test_floods():
    for _ in range({children}):
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
"#
    )
}

/// Waits until the project's app has ended `failed`, and returns its `ps`
/// entry.
fn wait_failed(user: &User, id: i64) -> serde_json::Value {
    let mut entry = serde_json::Value::Null;
    wait_for("the app to end failed", || {
        entry = ps_of(user, id).unwrap_or_default();
        entry["status"] == "failed"
    });
    entry
}

#[test]
fn an_app_forking_past_its_process_limit_ends_failed_with_its_processes() {
    // With a PID namespace (its init's death takes all), and without one
    // (its shim stops and kills the tree).
    for extra in [&[][..], &["--no-app-namespaces"]] {
        let mut args = vec!["--app-max-processes", "64"];
        args.extend_from_slice(extra);
        let daemon = Daemon::start_with(&args, &[]);
        let ada = signed_up(&daemon, "ada");
        let id = project_with_app(&ada, "forker", &forking_app(400));
        // `run` may see it fail before it answers: the state says.
        let _ = ada.run(&["run", "forker"]);
        let entry = wait_failed(&ada, id);
        let ended = entry["last_exit"].as_str().unwrap_or_default().to_string();
        assert!(
            ended.contains("more than 64 processes"),
            "{extra:?}: ps does not say why: {entry}"
        );
        let log = log_text(&daemon, id);
        assert!(
            log.contains("the app went past a limit: it ran more than 64 processes"),
            "{extra:?}: the log does not say why:\n{log}"
        );
        // Failed, not restarted: one start only.
        assert_eq!(entry["restarts"], 0, "{extra:?}: {entry}");
        wait_for("every process of the app to be gone", || {
            daemon.app_processes().is_empty()
        });
    }
}

#[test]
fn a_check_step_forking_past_the_process_limit_fails_with_the_reason() {
    let daemon = Daemon::start_with(&["--app-max-processes", "64"], &[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "forker");
    // Checked: the import step runs the fork flood.
    let out = ada.run_with_stdin(
        &["edit", "forker", "--file", "app.py", "--stdin"],
        &forking_app(400),
    );
    let said = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "the check passed: {said}");
    assert!(
        said.contains("went past a limit: it ran more than 64 processes"),
        "the check does not say why: {said}"
    );
    wait_for("every process of the check to be gone", || {
        daemon.app_processes().is_empty()
    });
}

#[test]
fn a_check_step_that_forks_past_the_limit_and_ends_at_once_still_fails_with_the_reason() {
    let daemon = Daemon::start_with(&["--app-max-processes", "64"], &[]);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "quick");
    let out = ada.run_with_stdin(
        &["edit", "quick", "--file", "test_flood.py", "--stdin"],
        &forking_test(200),
    );
    let said = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "the check passed: {said}");
    assert!(
        said.contains("went past a limit: it ran more than 64 processes"),
        "the check does not say why: {said}"
    );
    wait_for("every process of the check to be gone", || {
        daemon.app_processes().is_empty()
    });
}

/// An app that writes `files` files of `mib` MiB as it starts, half in its
/// folder and half in its temporary folder.
fn filling_app(files: u32, mib: u32) -> String {
    format!(
        r#"import os
import tempfile

from flask import Flask

block = b"x" * (1024 * 1024)
for i in range({files}):
    folder = "." if i % 2 == 0 else tempfile.gettempdir()
    with open(os.path.join(folder, "fill-%d.bin" % i), "wb") as f:
        for _ in range({mib}):
            f.write(block)
print("filled", flush=True)

app = Flask(__name__)


@app.route("/")
def index():
    return "filled\n"
"#
    )
}

/// Waits for app `id` to end `failed` past its disk limit: `ps` says
/// `ps_says`, its log says why, and it was not restarted.
fn assert_failed_past_the_disk_limit(daemon: &Daemon, user: &User, id: i64, ps_says: &str) {
    let entry = wait_failed(user, id);
    let ended = entry["last_exit"].as_str().unwrap_or_default();
    assert!(ended.contains(ps_says), "ps does not say why: {entry}");
    let log = log_text(daemon, id);
    assert!(
        log.contains("the app went past a limit: its folder and temporary folder took"),
        "the log does not say why:\n{log}"
    );
    assert_eq!(entry["restarts"], 0, "{entry}");
}

#[test]
fn an_app_filling_its_folders_past_the_disk_limit_ends_failed() {
    let daemon = Daemon::start_with(&["--app-max-disk-mib", "64"], &[]);
    let ada = signed_up(&daemon, "ada");
    // 4 × 20 MiB: 40 in its folder, 40 in its temporary folder; each half
    // is under the limit, together they are past it.
    let id = project_with_app(&ada, "filler", &filling_app(4, 20));
    let _ = ada.run(&["run", "filler"]);
    assert_failed_past_the_disk_limit(&daemon, &ada, id, "more than its disk limit of 64 MiB");

    // A check step past it fails, even one that ends before a measure (a
    // new version, or there would be nothing to check).
    let out = ada.run_with_stdin(
        &["edit", "filler", "--file", "app.py", "--stdin"],
        &format!("{}\n# checked\n", filling_app(4, 20)),
    );
    let said = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "the check passed: {said}");
    assert!(
        said.contains("more than its disk limit of 64 MiB"),
        "the check does not say why: {said}"
    );
}

/// An app that, as it starts, writes `files` files of `mib` MiB in its
/// temporary folder, each removed as soon as it is opened and kept open: no
/// walk of the folder finds them, and each stays under the file size limit.
fn hiding_app(files: u32, mib: u32) -> String {
    format!(
        r#"import os
import tempfile

from flask import Flask

block = b"x" * (1024 * 1024)
held = []
for i in range({files}):
    path = os.path.join(tempfile.gettempdir(), "hidden-%d.bin" % i)
    f = open(path, "wb")
    os.unlink(path)
    for _ in range({mib}):
        f.write(block)
    f.flush()
    held.append(f)
print("hidden", flush=True)

app = Flask(__name__)


@app.route("/")
def index():
    return "hidden\n"
"#
    )
}

#[test]
fn an_app_holding_removed_files_open_past_the_disk_limit_ends_failed() {
    let daemon = Daemon::start_with(&["--app-max-disk-mib", "64"], &[]);
    let ada = signed_up(&daemon, "ada");
    // 4 × 25 MiB, each under the file size limit, none with a name left.
    let id = project_with_app(&ada, "hider", &hiding_app(4, 25));
    let _ = ada.run(&["run", "hider"]);
    assert_failed_past_the_disk_limit(
        &daemon,
        &ada,
        id,
        "in removed files it held open, more than its disk limit of 64 MiB",
    );
    wait_for("every process of the app to be gone", || {
        daemon.app_processes().is_empty()
    });
}

/// Where the cgroup v2 hierarchy is mounted.
fn cgroup2_mount() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup v2 hierarchy")
}

#[test]
#[ignore = "needs root to make cgroups: tests/run-ignored runs it"]
fn the_daemon_removes_its_cgroups_when_it_exits() {
    let mut daemon = Daemon::start();
    assert_app_cgroups(&daemon);
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    let shim = pid_of(&run_app(&ada, "todo"));
    let cgroup = std::fs::read_to_string(format!("/proc/{shim}/cgroup")).unwrap();
    let relative = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 path")
        .trim_start_matches('/')
        .to_string();
    let app_cgroup = cgroup2_mount().join(&relative);
    // `<own>/apps/project_<id>`: the daemon's subtree is two up.
    let apps = app_cgroup.parent().unwrap().to_path_buf();
    assert!(apps.ends_with("apps"), "{}", app_cgroup.display());
    ada.run(&["stop", "todo"]).ok();
    daemon.signal_and_wait(Signal::SIGTERM);
    assert!(!app_cgroup.exists(), "{} was left", app_cgroup.display());
    assert!(!apps.exists(), "{} was left", apps.display());
    let base = apps.parent().unwrap();
    if base
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("appforge-"))
    {
        assert!(!base.exists(), "{} was left", base.display());
    }
}

#[test]
fn a_check_folder_left_by_a_killed_daemon_is_removed_at_start() {
    let mut daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "slow");
    let checks = daemon.data_dir.join("projects").join("checks");
    let scratch = || -> Vec<PathBuf> {
        std::fs::read_dir(&checks)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    // A check whose import takes a while: the daemon is killed under it.
    let slow = "import time\ntime.sleep(20)\nfrom flask import Flask\napp = Flask(__name__)\n";
    let mut edit = ada
        .command(&["edit", "slow", "--file", "app.py", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    edit.stdin
        .take()
        .unwrap()
        .write_all(slow.as_bytes())
        .unwrap();
    wait_for("the check's scratch folder", || {
        scratch().iter().any(|p| p.join("import.log").exists())
    });
    daemon.signal_and_wait(Signal::SIGKILL);
    let _ = edit.wait();
    let left = scratch();
    assert!(!left.is_empty(), "the killed check left nothing to clean");
    daemon.restart();
    wait_for("the stale scratch folder to be removed", || {
        left.iter().all(|p| !p.exists())
    });
}
