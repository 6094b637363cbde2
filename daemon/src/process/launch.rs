//! How an app is launched: the one command line that runs it and the one
//! environment it gets. The supervisor, the checks, the prompt and the
//! export all take them from here.

use std::path::Path;

use appforge_shared::protocol::FileContent;

/// The module Flask loads: every app's entry file is `app.py`.
pub const APP_MODULE: &str = "app";

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

/// The arguments to the app's Python that serve it on `port` of 127.0.0.1.
pub fn python_args(port: u16) -> Vec<String> {
    [
        "-m",
        "flask",
        "--app",
        APP_MODULE,
        "run",
        "--host",
        "127.0.0.1",
        "--port",
    ]
    .into_iter()
    .map(String::from)
    .chain([port.to_string()])
    .collect()
}

/// The command line as people type it, with `port` as given (`$PORT`, say).
pub fn shell_line(port: &str) -> String {
    format!("python -m flask --app {APP_MODULE} run --host 127.0.0.1 --port {port}")
}

/// The app's whole environment: nothing of the daemon's leaks in. Home and
/// temporary files are its private temporary folder `tmp`, the one place
/// outside its own folder where it may write; `env_root` is its Python
/// environment.
pub fn environment(env_root: &Path, port: u16, tmp: &Path) -> Vec<(String, String)> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_and_its_shell_spelling_agree() {
        let argv = python_args(5000).join(" ");
        assert_eq!(format!("python {argv}"), shell_line("5000"));
    }

    #[test]
    fn the_environment_names_nothing_of_the_daemons() {
        let env = environment(Path::new("/envs/abc"), 20001, Path::new("/tmp/p1"));
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
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
}
