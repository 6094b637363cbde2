//! The daemon's configuration file: keys are the long flags, the command
//! line beats the environment beats the file beats the default, mistakes
//! name the key and the file, API keys stay hidden, and every key is in the
//! daemon reference (docs/daemon.md).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use appforge_e2e::mock_provider::{Answer, MockProvider};
use appforge_e2e::{bin, Daemon};

fn write_config(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn appforged(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("appforged"));
    for var in [
        "APPFORGE_MODEL",
        "APPFORGE_PROVIDER",
        "APPFORGE_CONFIG",
        "GROQ_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(envs.iter().copied()).output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn setting<'a>(printed: &'a str, key: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{printed}"))
}

#[test]
fn the_command_line_beats_the_environment_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "model = \"from-file\"\nmax-tokens = 111\nport-range = \"9000-9099\"\nstop-apps-on-exit = true\nhealth-interval = 1.5\n",
        0o644,
    );
    let config = config.to_str().unwrap();
    let out = appforged(
        &["--config", config, "--print-config", "--max-tokens", "222"],
        &[("APPFORGE_MODEL", "from-env")],
    );
    let (printed, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        setting(&printed, "model").contains("\"from-env\""),
        "{printed}"
    );
    assert!(setting(&printed, "model").ends_with("# environment"));
    assert!(setting(&printed, "max-tokens").starts_with("max-tokens = 222"));
    assert!(setting(&printed, "port-range").contains("\"9000-9099\"  # file"));
    assert!(setting(&printed, "stop-apps-on-exit").contains("true  # file"));
    assert!(setting(&printed, "health-interval").contains("1.5  # file"));
    assert!(setting(&printed, "socket-mode").contains("600  # default"));
}

#[test]
fn an_unknown_key_or_a_bad_value_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (body, key) in [
        ("prot-range = \"9000-9099\"\n", "prot-range"),
        ("socket-mode = 644\n", "socket-mode"),
        ("port-range = \"9\"\n", "port-range"),
        ("stop-apps-on-exit = \"yes\"\n", "stop-apps-on-exit"),
        ("max-tokens = true\n", "max-tokens"),
        ("max-tokens = [1]\n", "max-tokens"),
    ] {
        let config = write_config(dir.path(), body, 0o644);
        let out = appforged(
            &["--config", config.to_str().unwrap(), "--print-config"],
            &[],
        );
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(&format!("`{key}`")), "{body}: {err}");
        assert!(err.contains(config.to_str().unwrap()), "{body}: {err}");
    }
    let broken = write_config(dir.path(), "model = \n", 0o644);
    let out = appforged(&["--config", broken.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("not valid TOML"), "{}", text(&out).1);
    let out = appforged(&["--config", "/nonexistent/config.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_key_in_the_file_needs_a_private_file_and_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let key = "gsk_file_secret_777";
    let config = write_config(dir.path(), &format!("groq-api-key = \"{key}\"\n"), 0o644);
    let out = appforged(
        &["--config", config.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("chmod 600"), "{}", text(&out).1);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = appforged(
        &["--config", config.to_str().unwrap(), "--print-config"],
        &[],
    );
    let (printed, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(!printed.contains(key) && !err.contains(key));
    assert!(
        printed.contains("# groq-api-key: set (hidden)"),
        "{printed}"
    );
    assert!(
        setting(&printed, "provider").contains("\"groq\""),
        "{printed}"
    );
}

#[test]
fn a_daemon_uses_its_files_key_for_the_provider() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(
        "### app.py\n```python\nfrom flask import Flask\napp = Flask(__name__)\n```\n".into(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let key = "gsk_file_key_for_real_use";
    let config = write_config(
        dir.path(),
        &format!(
            "groq-api-key = \"{key}\"\nbase-url = \"{}\"\n",
            mock.base_url()
        ),
        0o600,
    );
    let daemon = Daemon::start_with(&["--config", config.to_str().unwrap()], &[]);
    let user = daemon.user("ada");
    user.signup().ok();
    let out = user.run(&["--json", "generate", "x"]).ok().json();
    assert_eq!(out["provider"], "groq");
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(&*format!("Bearer {key}"))
    );
    assert!(!daemon.log().contains(key));
}

#[test]
fn every_configuration_key_is_documented_in_the_daemons_reference() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/daemon.md"))
            .unwrap();
    let out = appforged(&["--print-config"], &[]);
    let (printed, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let keys: Vec<String> = printed
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split([' ', ':']).next())
        .filter(|k| !k.is_empty() && !k.starts_with("appforged") && *k != "file")
        .map(str::to_string)
        .collect();
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        assert!(
            readme.contains(&format!("`{key}`")) || readme.contains(&format!("--{key}")),
            "docs/daemon.md does not document `{key}`"
        );
    }
}

/// The start-up environment of `pid` as `/proc/PID/environ` shows it. The
/// daemon is non-dumpable, so only root may read it.
fn proc_environ(pid: u32) -> Vec<u8> {
    let path = format!("/proc/{pid}/environ");
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test reads {path}, which only root may: run it with tests/run-ignored \
         (as root, or with sudo -n allowed)"
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
#[ignore = "needs root to read a non-dumpable daemon's /proc/PID/environ: tests/run-ignored runs it"]
fn the_keys_are_gone_from_the_daemons_start_up_environment() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(
        "### app.py\n```python\nfrom flask import Flask\napp = Flask(__name__)\n```\n".into(),
    ));
    let nonce = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let keys = [
        ("GROQ_API_KEY", format!("gsk_environ_{nonce}")),
        ("OPENAI_API_KEY", format!("sk-environ-{nonce}")),
        ("APPFORGE_API_KEY", format!("af-environ-{nonce}")),
    ];
    let envs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = mock.daemon(&[], &envs);

    // The provider still gets its key.
    let user = daemon.user("ada");
    user.signup().ok();
    let out = user
        .run(&["--json", "generate", "x", "--no-check"])
        .ok()
        .json();
    assert_eq!(out["provider"], "openai", "{out}");
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(&*format!("Bearer {}", keys[1].1))
    );

    // And no key is in the environment block the daemon started with.
    let environ = proc_environ(daemon.pid());
    assert!(
        environ.windows(4).any(|w| w == b"PATH"),
        "the environment was read: {:?}",
        String::from_utf8_lossy(&environ)
    );
    for (name, value) in &keys {
        assert!(
            !environ.windows(value.len()).any(|w| w == value.as_bytes()),
            "{name}'s value is in /proc/{}/environ",
            daemon.pid()
        );
        let entry = format!("{name}=");
        assert!(
            !environ.windows(entry.len()).any(|w| w == entry.as_bytes()),
            "{name} is in /proc/{}/environ",
            daemon.pid()
        );
    }
}
