//! How an app is launched: the one command line that runs it and the one
//! environment it gets. The supervisor, the checks, the prompt and the
//! export all take them from here.

use std::path::Path;

use appforge_shared::protocol::FileContent;

use super::shape::Target;

/// The path an app's health is probed on: `/healthz` when one of its
/// Python files declares that route, else `/`. Read from the stored
/// version's files, never from the run folder, which the app can write.
pub fn health_path(files: &[FileContent]) -> &'static str {
    let declares = |f: &FileContent| {
        f.path.ends_with(".py")
            && (f.content.contains("\"/healthz\"") || f.content.contains("'/healthz'"))
    };
    if files.iter().any(declares) {
        "/healthz"
    } else {
        "/"
    }
}

/// The arguments to the app's Python that serve `target` on `port` of
/// 127.0.0.1.
pub fn python_args(target: &Target, port: u16) -> Vec<String> {
    ["-m", "flask", "--app"]
        .into_iter()
        .map(String::from)
        .chain([target.flask_app()])
        .chain(
            ["run", "--host", "127.0.0.1", "--port"]
                .into_iter()
                .map(String::from),
        )
        .chain([port.to_string()])
        .collect()
}

/// The command line as people type it, with `port` as given (`$PORT`, say).
pub fn shell_line(target: &Target, port: &str) -> String {
    format!(
        "python -m flask --app {} run --host 127.0.0.1 --port {port}",
        target.flask_app()
    )
}

/// An app's own settings (`appforge env`), added to its environment: the
/// names checked by [`check_name`], secrets opened (or, in the checks,
/// placeholders). `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables(pub Vec<(String, String)>);

impl std::fmt::Debug for Variables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// What a setting's name may be, for messages.
pub const NAME_RULE: &str = "a name is letters, digits and `_`, starting with a letter or `_`      (at most 128), and is none of PATH, HOME, TMPDIR, LANG, PORT, HOST, VIRTUAL_ENV, LD_*,      PYTHON*, APPFORGE_*, the daemon's API key variables or CREDENTIALS_DIRECTORY";

/// Longest setting name, in bytes.
const MAX_NAME: usize = 128;

/// Why `name` may not be an app's setting, if it may not: not a shell-style
/// name, a variable the launch spec sets (an app told another `PORT` would
/// listen where nothing looks for it), one that changes how the loader or
/// Python itself runs (`LD_PRELOAD`, `PYTHONPATH`), or one of the daemon's
/// own keys.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let shell_style = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !shell_style || name.len() > MAX_NAME {
        return Err("it is not a shell-style name");
    }
    if SPEC_NAMES.contains(&name) {
        return Err("the daemon sets it for every app");
    }
    if ["LD_", "PYTHON"].iter().any(|p| name.starts_with(p)) {
        return Err("it changes how the loader or Python runs");
    }
    if name.starts_with("APPFORGE_") || DAEMON_KEYS.contains(&name) {
        return Err("it is one of the daemon's own variables");
    }
    Ok(())
}

/// The names [`environment`] sets.
const SPEC_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "PORT",
    "HOST",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
];

/// The variables the daemon reads its own keys from (config::Secrets).
const DAEMON_KEYS: &[&str] = &["GROQ_API_KEY", "OPENAI_API_KEY", "CREDENTIALS_DIRECTORY"];

/// The app's whole environment: nothing of the daemon's leaks in. Home and
/// temporary files are its private temporary folder `tmp`, the one place
/// outside its own folder where it may write; `env_root` is its Python
/// environment. The app's own `settings` come last; one whose name is
/// not allowed (never stored, but the store is not this module's to
/// trust) is left out.
pub fn environment(
    env_root: &Path,
    port: u16,
    tmp: &Path,
    settings: &Variables,
) -> Vec<(String, String)> {
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        env_root.join("bin").display()
    );
    let tmp = tmp.display().to_string();
    vec![
        ("PATH".into(), path),
        ("HOME".into(), tmp.clone()),
        ("TMPDIR".into(), tmp),
        ("LANG".into(), "C.UTF-8".into()),
        ("PORT".into(), port.to_string()),
        ("HOST".into(), "127.0.0.1".into()),
        ("VIRTUAL_ENV".into(), env_root.display().to_string()),
        ("PYTHONUNBUFFERED".into(), "1".into()),
    ]
    .into_iter()
    .chain(
        settings
            .0
            .iter()
            .filter(|(name, _)| check_name(name).is_ok())
            .cloned(),
    )
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_and_its_shell_spelling_agree() {
        let target = Target::convention();
        let argv = python_args(&target, 5000).join(" ");
        assert_eq!(format!("python {argv}"), shell_line(&target, "5000"));
        assert_eq!(
            shell_line(&target, "5000"),
            "python -m flask --app app run --host 127.0.0.1 --port 5000"
        );
    }

    #[test]
    fn the_environment_names_nothing_of_the_daemons() {
        let env = environment(
            Path::new("/envs/abc"),
            20001,
            Path::new("/tmp/p1"),
            &Variables::default(),
        );
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, SPEC_NAMES);
        assert_eq!(
            keys,
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "LANG",
                "PORT",
                "HOST",
                "VIRTUAL_ENV",
                "PYTHONUNBUFFERED"
            ]
        );
        assert!(env[0].1.starts_with("/envs/abc/bin:"));
    }

    #[test]
    fn settings_come_after_the_spec_and_may_not_override_it() {
        let settings = Variables(vec![
            ("API_KEY".into(), "k".into()),
            ("PORT".into(), "1".into()),
            ("LD_PRELOAD".into(), "/x.so".into()),
        ]);
        let env = environment(Path::new("/e"), 20001, Path::new("/t"), &settings);
        assert_eq!(env.last().unwrap(), &("API_KEY".into(), "k".into()));
        assert_eq!(env.iter().filter(|(k, _)| k == "PORT").count(), 1);
        assert!(!env.iter().any(|(k, _)| k == "LD_PRELOAD"));
        assert_eq!(
            format!("{settings:?}"),
            r#"["API_KEY", "PORT", "LD_PRELOAD"]"#
        );
    }

    #[test]
    fn setting_names_are_checked() {
        for good in ["SECRET_KEY", "_x", "a1", "DATABASE_URL"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1A",
            "A-B",
            "A B",
            "A=B",
            "PATH",
            "HOME",
            "PORT",
            "VIRTUAL_ENV",
            "LD_PRELOAD",
            "PYTHONPATH",
            "PYTHONHOME",
            "APPFORGE_SOCKET",
            "GROQ_API_KEY",
            "CREDENTIALS_DIRECTORY",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"A".repeat(129)).is_err());
    }
}
