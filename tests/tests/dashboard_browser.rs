//! The web dashboard in a real browser: a daemon serving it on a free port,
//! and `tests/browser/flow.mjs` driving headless Chromium through
//! playwright-core from a sign-in link of `appforge dashboard` to sign-out
//! (refused sign-ins without a link, a tossed session cookie, terminal
//! escapes, generate, save, files, run, preview, logs, the overview at
//! desktop and phone width, edit, a failed edit's error beside the editor,
//! diff, rollback, a stop and a restart from the CLI shown on the open page
//! within seconds, stop, export, delete), failing on any console error or
//! CSP violation. Screenshots land in `target/dashboard-screenshots`; the
//! overview with a running app is also written to `docs/dashboard.png`,
//! the README's picture.
//!
//! `make tools` installs playwright-core (into `.tools/node_modules`, passed
//! as `APPFORGE_TEST_NODE_PATH` by `make test`) and Debian's chromium;
//! `CHROMIUM` names another Chromium or Chrome.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use appforge_e2e::wait_for;
use appforge_e2e::web::daemon_with_dashboard;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace folder")
}

/// Where playwright-core is installed.
fn node_modules() -> PathBuf {
    std::env::var_os("APPFORGE_TEST_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/node_modules"))
}

/// The browser playwright-core drives.
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether `GET /` on `addr` answers 200 with the dashboard's page.
fn dashboard_answers(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("/assets/app.js")
}

#[test]
fn the_dashboard_takes_a_project_from_prompt_to_export_in_a_real_browser() {
    let modules = node_modules();
    assert!(
        modules.join("playwright-core").is_dir(),
        "playwright-core is not installed in {}: run `make tools` (it installs playwright-core and chromium), \
         and pass its folder as APPFORGE_TEST_NODE_PATH (`make test` does)",
        modules.display()
    );
    let browser = chromium();
    assert!(
        browser.exists(),
        "no browser at {}: run `make tools` (it installs Debian's chromium), or set CHROMIUM to a Chromium or Chrome",
        browser.display()
    );
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "node is needed to run tests/browser/flow.mjs"
    );

    // Port 0: the daemon picks a free port and `status` says which.
    let (daemon, addr) = daemon_with_dashboard(&[]);
    let addr = addr.to_string();
    // The flow asks this signed-in client for its sign-in links.
    let user = daemon.user("browser");
    user.signup().ok();
    wait_for("the dashboard to answer", || dashboard_answers(&addr));

    let shots = repo().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).expect("the screenshot folder");
    let started = Instant::now();
    let out = Command::new("node")
        .arg(repo().join("tests/browser/flow.mjs"))
        .current_dir(repo())
        .env("NODE_PATH", &modules)
        .env("DASHBOARD_URL", format!("http://{addr}/"))
        .env("SCREENSHOT_DIR", &shots)
        .env("OVERVIEW_PNG", repo().join("docs/dashboard.png"))
        .env("CHROMIUM", &browser)
        .env("APPFORGE", appforge_e2e::bin("appforge"))
        .env("APPFORGE_SOCKET", &user.socket)
        .env("XDG_CONFIG_HOME", &user.config_home)
        .env("NO_COLOR", "1")
        .env("USER_EMAIL", &user.email)
        .output()
        .expect("run node tests/browser/flow.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "{stdout}flow.mjs took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    assert!(
        out.status.success(),
        "the browser flow failed ({}):\n--- flow.mjs stdout\n{stdout}\n--- flow.mjs stderr\n{stderr}\n--- appforged log (last 60 lines)\n{}",
        out.status,
        tail(&daemon.log(), 60)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
