//! An app's settings and secrets end to end (`appforge env`): a real Flask
//! app reads a setting and a secret over HTTP; a change restarts it; the
//! secret is looked for in every output, the daemon's log, the export and
//! the store's bytes, and never found; the checks see a placeholder; a
//! daemon with another key says it cannot open the secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use appforge_e2e::apps::*;
use appforge_e2e::{wait_for, Daemon, Run, User};
use serde_json::Value;

/// The secret: unlike anything else the tests print.
const SECRET: &str = "sk-live-7d1f0c2e9b8a4f36";

/// Shows its settings at `/settings`, with a token of its process (its
/// pid is the same in each new PID namespace); never prints them. `/exit`
/// ends it, as a crash does.
const SETTINGS_APP: &str = r#"import os

from flask import Flask, jsonify

app = Flask(__name__)
BOOT = os.urandom(8).hex()

@app.route("/")
def index():
    return "ok\n"

@app.route("/settings")
def settings():
    return jsonify(mode=os.environ.get("MODE"), api_key=os.environ.get("API_KEY"), boot=BOOT)

@app.route("/exit")
def exit_now():
    os._exit(1)
"#;

/// What the app at `port` says its settings are.
fn settings_of(port: u16) -> Value {
    json_body(
        &http_get(port, "/settings", std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no answer on port {port}")),
    )
}

/// Every output of the test, to look for the secret in at the end.
#[derive(Default)]
struct Outputs(Vec<String>);

impl Outputs {
    fn keep(&mut self, run: Run) -> Run {
        self.0.push(format!("{}\n{}", run.stdout, run.stderr));
        run
    }

    fn run(&mut self, user: &User, args: &[&str]) -> Run {
        let run = user.run(args);
        self.keep(run)
    }
}

/// Sets the secret through stdin, as a person keeps it out of the shell's
/// history; returns the `--json` reply.
fn set_secret(user: &User, project: &str, outputs: &mut Outputs) -> Value {
    let run = user.run_with_stdin(
        &["--json", "env", project, "set", "API_KEY", "--secret"],
        &format!("{SECRET}\n"),
    );
    outputs.keep(run).ok().json()
}

/// The files of a `.tar.gz` export, unpacked, as text.
fn unpacked(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let into = tempfile::tempdir().expect("temporary folder");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into.path())
        .status()
        .expect("tar");
    assert!(status.success());
    let mut files = Vec::new();
    let mut dirs = vec![into.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path
                    .strip_prefix(into.path())
                    .unwrap()
                    .display()
                    .to_string();
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn settings_reach_the_app_a_change_restarts_it_and_the_secret_is_never_shown() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let mut out = Outputs::default();
    let id = project_with_app(&user, "shop", SETTINGS_APP);

    let empty = out.run(&user, &["env", "shop"]).ok();
    assert!(empty.stdout.contains("`shop` has no settings"), "{empty:?}");

    // Set while stopped: kept for the next start.
    let set = out.run(&user, &["env", "shop", "set", "MODE=fast"]).ok();
    assert!(set.stdout.contains("MODE=fast"), "{set:?}");
    assert!(
        set.stdout.contains("gets them when it next starts"),
        "{set:?}"
    );
    let reply = set_secret(&user, "shop", &mut out);
    assert_eq!(reply["restarted"], false, "{reply}");

    // Listed masked, by name.
    let listed = out.run(&user, &["--json", "env", "shop"]).ok().json();
    let settings = listed["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2, "{listed}");
    assert_eq!(
        (&settings[0]["name"], &settings[0]["secret"]),
        (&Value::from("API_KEY"), &Value::from(true))
    );
    assert_eq!(settings[0]["value"], "********");
    assert_eq!(
        (&settings[1]["name"], &settings[1]["value"]),
        (&Value::from("MODE"), &Value::from("fast"))
    );
    let text = out.run(&user, &["env", "shop"]).ok();
    assert!(
        text.stdout.contains("API_KEY=********  (secret)"),
        "{text:?}"
    );

    // The app reads both.
    let run = out.run(&user, &["--json", "run", "shop"]).ok().json();
    let port = port_of(&run);
    let seen = settings_of(port);
    assert_eq!(
        (&seen["mode"], &seen["api_key"]),
        (&"fast".into(), &SECRET.into())
    );

    // A change restarts the running app, which sees the new value.
    let before = seen["boot"].clone();
    let changed = out
        .run(&user, &["--json", "env", "shop", "set", "MODE=slow"])
        .ok()
        .json();
    assert_eq!(changed["restarted"], true, "{changed}");
    let port = port_of(&ps_of(&user, id).expect("still listed"));
    let seen = settings_of(port);
    assert_eq!(seen["mode"], "slow", "{seen}");
    assert_ne!(seen["boot"], before, "a new process");
    assert_eq!(seen["api_key"], SECRET);

    // Unset: gone from the list and, after the restart, from the app.
    let unset = out
        .run(&user, &["--json", "env", "shop", "unset", "MODE"])
        .ok()
        .json();
    assert_eq!(unset["restarted"], true, "{unset}");
    assert_eq!(unset["settings"].as_array().unwrap().len(), 1, "{unset}");
    let port = port_of(&ps_of(&user, id).expect("still listed"));
    assert_eq!(settings_of(port)["mode"], Value::Null);
    let missing = out
        .run(&user, &["env", "shop", "unset", "MODE"])
        .fails_with(3);
    assert!(
        missing.stderr.contains("has no setting `MODE`"),
        "{missing:?}"
    );

    // An automatic restart (the app ended on its own) keeps the settings.
    let boot = settings_of(port)["boot"].clone();
    let _ = http_get(port, "/exit", std::time::Duration::from_secs(5));
    wait_for("the app to be restarted on its own", || {
        ps_of(&user, id).is_some_and(|p| p["restarts"].as_u64() >= Some(1))
            && http_get(port, "/settings", std::time::Duration::from_secs(2))
                .is_some_and(|r| r.contains("\"boot\"") && !r.contains(boot.as_str().unwrap()))
    });
    let seen = settings_of(port);
    assert_eq!(seen["api_key"], SECRET, "{seen}");

    // Another user's project, with the same setting names, sees nothing of it.
    let other = signed_up(&daemon, "bob");
    let missing = out.run(&other, &["env", "shop"]).fails_with(3);
    assert!(missing.stderr.contains("no project `shop`"), "{missing:?}");

    // Every output of the client.
    out.run(&user, &["show", "shop"]).ok();
    out.run(&user, &["--json", "show", "shop"]).ok();
    out.run(&user, &["history", "shop"]).ok();
    out.run(&user, &["--json", "history", "shop"]).ok();
    out.run(&user, &["ps"]).ok();
    out.run(&user, &["--json", "ps"]).ok();
    out.run(&user, &["logs", "shop", "-n", "1000"]).ok();
    out.run(&user, &["--json", "status"]).ok();
    out.run(&user, &["--json", "list"]).ok();
    for (i, output) in out.0.iter().enumerate() {
        assert!(
            !output.contains(SECRET),
            "output {i} shows the secret: {output}"
        );
    }

    // The export names the settings and holds no value.
    let archive = daemon.dir.path().join("shop.tar.gz");
    let exported = user
        .run(&[
            "export",
            "shop",
            "--output",
            archive.to_str().unwrap(),
            "--target",
            "k8s",
            "--target",
            "compose",
        ])
        .ok();
    assert!(!exported.stdout.contains(SECRET));
    assert!(!contains(&std::fs::read(&archive).unwrap(), SECRET));
    let files = unpacked(&archive);
    for (name, bytes) in &files {
        assert!(!contains(bytes, SECRET), "{name} holds the secret");
    }
    let file = |suffix: &str| {
        let (_, bytes) = files
            .iter()
            .find(|(n, _)| n.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} in the export"));
        String::from_utf8_lossy(bytes).into_owned()
    };
    assert!(file("README.md").contains("`API_KEY` (a secret)"));
    assert!(file("compose.yaml").contains("API_KEY: \"${API_KEY:?set API_KEY}\""));
    assert!(file("deployment.yaml").contains("secretKeyRef"));

    // Nor the app's log, the daemon's log, or the store.
    assert!(!log_raw(&daemon, id).contains(SECRET));
    let log = daemon.log();
    assert!(
        log.contains("changed an app's settings"),
        "the log says what changed"
    );
    assert!(!log.contains(SECRET), "the daemon's log shows the secret");
    assert!(
        !contains(&daemon.store_bytes(), SECRET),
        "the store holds the secret in plain text"
    );
    let key = daemon.data_dir.join("secrets.key");
    let mode = std::fs::metadata(&key)
        .expect("the key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(
        !contains(&daemon.store_bytes(), key_text.trim()),
        "the key is in the store"
    );
}

#[test]
fn names_the_daemon_sets_or_cannot_pass_on_are_refused_and_say_what_is_allowed() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    new_project(&user, "shop");
    for bad in [
        "PATH=/tmp",
        "PORT=1",
        "HOME=/",
        "LD_PRELOAD=/x.so",
        "PYTHONPATH=/x",
        "VIRTUAL_ENV=/x",
        "APPFORGE_SOCKET=/x",
        "GROQ_API_KEY=x",
        "1ABC=x",
        "A-B=x",
        "=x",
    ] {
        let refused = user.run(&["env", "shop", "set", bad]).fails_with(2);
        assert!(
            refused.stderr.contains("cannot be a setting")
                && refused.stderr.contains("letters, digits and `_`"),
            "{bad}: {refused:?}"
        );
    }
    let refused = user
        .run(&["--json", "env", "shop", "set", "OK=1", "PATH=/x"])
        .fails_with(2);
    assert!(refused.stderr.contains("invalid-input"), "{refused:?}");
    // Nothing of a refused change is kept.
    let listed = user.run(&["--json", "env", "shop"]).ok().json();
    assert_eq!(listed["settings"], Value::Array(Vec::new()), "{listed}");
}

#[test]
fn the_checks_see_a_placeholder_for_a_secret_and_the_setting_itself() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    project_with_app(&user, "shop", SETTINGS_APP);
    user.run(&["env", "shop", "set", "MODE=fast"]).ok();
    let mut out = Outputs::default();
    set_secret(&user, "shop", &mut out);

    let placeholder_test = "import os\n\n\
         def test_settings():\n    \
             assert os.environ[\"MODE\"] == \"fast\"\n    \
             assert os.environ[\"API_KEY\"] == \"appforge-check-placeholder\"\n";
    let saved = user
        .run_with_stdin(
            &["--json", "edit", "shop", "--file", "test_app.py", "--stdin"],
            placeholder_test,
        )
        .ok()
        .json();
    assert_eq!(saved["check_status"], "passed", "{saved}");

    // A test that wants the real secret fails: the check never has it.
    let wants_secret = format!(
        "import os\n\ndef test_settings():\n    assert os.environ[\"API_KEY\"] == \"{SECRET}\"\n"
    );
    let refused = user
        .run_with_stdin(
            &["edit", "shop", "--file", "test_app.py", "--stdin"],
            &wants_secret,
        )
        .fails_with(7);
    assert!(refused.stderr.contains("was not saved"), "{refused:?}");
    assert!(
        refused.stderr.contains("appforge-check-placeholder"),
        "pytest shows what the check saw: {refused:?}"
    );
}

#[test]
fn a_daemon_with_another_key_says_it_cannot_open_the_secrets() {
    let mut daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let id = project_with_app(&user, "shop", SETTINGS_APP);
    let mut out = Outputs::default();
    set_secret(&user, "shop", &mut out);
    run_app(&user, "shop");

    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    let key = daemon.data_dir.join("secrets.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    daemon.restart();

    wait_for("the daemon to say it cannot open the secrets", || {
        daemon
            .log()
            .contains("this daemon cannot open the apps' secrets")
    });
    // The settings are still listed, masked; the app does not start.
    let listed = user.run(&["--json", "env", "shop"]).ok().json();
    assert_eq!(listed["settings"][0]["value"], "********");
    wait_for("the app to be stopped", || {
        ps_of(&user, id).is_none_or(|p| p["status"] != "running")
    });
    let refused = user.run(&["restart", "shop"]).fails_with(6);
    assert!(
        refused
            .stderr
            .contains("the secrets of `shop` cannot be used")
            && refused.stderr.contains("sealed with another key"),
        "{refused:?}"
    );
    // Nor does it seal new secrets with a key no other secret opens with.
    let refused = user
        .run(&["env", "shop", "set", "OTHER=x", "--secret"])
        .fails_with(6);
    assert!(refused.stderr.contains("another key"), "{refused:?}");
    user.run(&["ping"]).ok();
    assert!(!daemon.log().contains(SECRET));
}

#[test]
fn an_adopted_app_keeps_its_settings_through_the_restarts_it_needs() {
    let mut daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let id = project_with_app(&user, "shop", SETTINGS_APP);
    user.run(&["env", "shop", "set", "MODE=fast"]).ok();
    let mut out = Outputs::default();
    set_secret(&user, "shop", &mut out);
    let port = port_of(&run_app(&user, "shop"));
    let boot = settings_of(port)["boot"].clone();

    // A new daemon adopts the same process...
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    wait_for("the app to be adopted", || {
        ps_of(&user, id).is_some_and(|p| p["status"] == "running")
    });
    assert_eq!(settings_of(port)["boot"], boot, "the same process");

    // ...and starts it again with its settings when it ends.
    let _ = http_get(port, "/exit", std::time::Duration::from_secs(5));
    wait_for("the adopted app to be restarted on its own", || {
        http_get(port, "/settings", std::time::Duration::from_secs(2))
            .is_some_and(|r| r.contains("\"boot\"") && !r.contains(boot.as_str().unwrap()))
    });
    let seen = settings_of(port);
    assert_eq!(
        (&seen["mode"], &seen["api_key"]),
        (&"fast".into(), &SECRET.into())
    );
    assert!(!daemon.log().contains(SECRET));
}

/// Reads `API_TOKEN` when asked, without a default; `DEBUG` with one,
/// which is never missing.
const TOKEN_APP: &str = r#"import os

from flask import Flask

app = Flask(__name__)
DEBUG = os.environ.get("DEBUG", "0")

@app.route("/")
def index():
    return "ok\n"

@app.route("/token")
def token():
    return os.environ["API_TOKEN"][:1]
"#;

/// Reads `API_TOKEN` as it starts, so it cannot start without it.
const BOOT_TOKEN_APP: &str = r#"import os

from flask import Flask

TOKEN = os.environ["API_TOKEN"]
app = Flask(__name__)

@app.route("/")
def index():
    return "ok\n"
"#;

/// What `ps --json` says the project's app lacks.
fn missing_of(user: &User, id: i64) -> Value {
    ps_of(user, id).expect("listed by ps")["missing_settings"].clone()
}

#[test]
fn a_setting_the_code_reads_shows_missing_in_ps_until_it_is_set() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let id = project_with_app(&user, "shop", TOKEN_APP);
    // Known from the code alone, before the app ever runs.
    let listed = user.run(&["--json", "env", "shop"]).ok().json();
    assert_eq!(listed["missing_settings"], serde_json::json!(["API_TOKEN"]));
    let text = user.run(&["env", "shop"]).ok();
    assert!(
        text.stdout
            .contains("Missing: its code reads API_TOKEN without a default"),
        "{text:?}"
    );
    user.run(&["run", "shop"]).ok();
    assert_eq!(missing_of(&user, id), serde_json::json!(["API_TOKEN"]));
    let text = user.run(&["ps"]).ok();
    assert!(
        text.stdout
            .contains("shop: missing setting: API_TOKEN; `appforge env shop set API_TOKEN=…`"),
        "{text:?}"
    );

    let set = user
        .run(&["--json", "env", "shop", "set", "API_TOKEN=x"])
        .ok()
        .json();
    assert_eq!(set["restarted"], true, "{set}");
    assert_eq!(set["missing_settings"], serde_json::json!([]), "{set}");
    assert_eq!(missing_of(&user, id), serde_json::json!([]));
    let text = user.run(&["ps"]).ok();
    assert!(!text.stdout.contains("missing setting"), "{text:?}");

    // Unset again: missing again once the app has restarted without it.
    user.run(&["env", "shop", "unset", "API_TOKEN"]).ok();
    assert_eq!(missing_of(&user, id), serde_json::json!(["API_TOKEN"]));
}

#[test]
fn an_app_that_cannot_start_without_a_setting_names_it_and_starts_once_it_is_set() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let id = project_with_app(&user, "boot", BOOT_TOKEN_APP);
    let failed = user.run(&["run", "boot"]);
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(failed.stderr.contains("API_TOKEN"), "{failed:?}");
    let listed = ps_of(&user, id).expect("a failed app is listed");
    assert_eq!(listed["missing_settings"], serde_json::json!(["API_TOKEN"]));

    let set = user
        .run(&["--json", "env", "boot", "set", "API_TOKEN=x", "--secret"])
        .ok()
        .json();
    assert_eq!(set["restarted"], true, "{set}");
    let listed = ps_of(&user, id).expect("listed");
    assert_eq!(listed["status"], "running", "{listed}");
    assert_eq!(listed["missing_settings"], serde_json::json!([]));
}
