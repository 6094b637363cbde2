//! `make demo`'s script, run for real: with the dashboard's default port
//! (7070) held by another program it still prints a working sign-in link,
//! and its last line stops the daemon and the app it started.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

use appforge_e2e::apps::{answers, http_get};
use appforge_e2e::web::Browser;
use appforge_e2e::{bin, python, test_env_dir, wait_for, PATIENCE};
use serde_json::Value;
use tempfile::TempDir;

/// Whether process `pid` has ended (a zombie no one reaps has).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The line after the one that starts with `heading`, trimmed.
fn line_after<'a>(text: &'a str, heading: &str) -> &'a str {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with(heading))
        .unwrap_or_else(|| panic!("no line starting {heading:?} in:\n{text}"));
    lines.next().unwrap_or("").trim()
}

/// Sends SIGTERM to the demo's daemon if the test ends before its stop
/// line did: with --stop-apps-on-exit that stops its app too.
struct StopsDaemon(Option<i32>);

impl Drop for StopsDaemon {
    fn drop(&mut self) {
        if let Some(pid) = self.0.filter(|&pid| !ended(pid)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[test]
fn the_demo_works_with_port_7070_taken_and_its_stop_line_stops_everything() {
    // Held here; held by someone else already is as good.
    let _holder = match TcpListener::bind("127.0.0.1:7070") {
        Ok(listener) => Some(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("cannot hold port 7070: {e}"),
    };
    let tmp = TempDir::new().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/demo.sh"));
    // Nothing of the person running the tests applies: no provider key,
    // no daemon settings.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("APPFORGE_") || key.ends_with("_API_KEY") {
            cmd.env_remove(&*key);
        }
    }
    let out = cmd
        .env("TMPDIR", tmp.path())
        .env("APPFORGE_BIN_DIR", bin("appforged").parent().unwrap())
        .env("APPFORGE_PYTHON", python())
        .env("APPFORGE_ENV_DIR", test_env_dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let daemon_pid: Option<i32> = stdout
        .split_once("appforged is running (pid ")
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|pid| pid.parse().ok());
    let _stops = StopsDaemon(daemon_pid);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    let daemon_pid = daemon_pid.expect("the daemon's pid");
    assert!(
        stdout.lines().count() < 60,
        "the demo's output is not short:\n{stdout}"
    );

    // The app answers.
    let app_url = stdout
        .split_once("The app is running at ")
        .and_then(|(_, rest)| rest.lines().next())
        .expect("the app's URL");
    let app_port: u16 = app_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the app's port");
    assert!(http_get(app_port, "/", PATIENCE).is_some(), "{app_url}");

    // The sign-in link works, on a port the daemon found free.
    let link = line_after(&stdout, "The dashboard, signed in as demo@example.com");
    let addr: SocketAddr = link
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no dashboard link:\n{stdout}"));
    assert_ne!(addr.port(), 7070, "{link}");
    let mut browser = Browser::open(addr);
    let opened = browser.follow_link(link);
    assert_eq!(opened.status, 303, "{}", opened.text());
    assert!(browser.session_cookie.is_some(), "{link}");

    // With the exports it prints, the client reaches its daemon.
    let exports = line_after(&stdout, "Use it from this shell with:");
    let env: Vec<(&str, &str)> = exports
        .strip_prefix("export ")
        .expect("an export line")
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let ps = Command::new(bin("appforge"))
        .args(["--json", "ps"])
        .env_remove("APPFORGE_SOCKET")
        .envs(env.iter().copied())
        .output()
        .expect("run appforge ps");
    let apps: Value = serde_json::from_slice(&ps.stdout).expect("ps as JSON");
    let app_pid = apps[0]["pid"].as_i64().expect("the app's pid") as i32;

    // The stop line stops the daemon and the app.
    let stop = line_after(&stdout, "Stop the daemon and the app");
    let stopped = Command::new("bash")
        .args(["-c", stop])
        .status()
        .expect("run the stop line");
    assert!(stopped.success(), "{stop}");
    wait_for("the demo's daemon to end", || ended(daemon_pid));
    wait_for("the demo's app to end", || {
        ended(app_pid) && !answers(app_port, "/")
    });
}
