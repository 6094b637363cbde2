//! Python environments for apps, keyed by the hash of `requirements.txt` and
//! shared: a second app with the same requirements installs nothing.
//!
//! An environment is built in a temporary folder and renamed into place, so a
//! half-built one is never used; a lock file serialises builders, daemons and
//! tests alike.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::config::Installer;

/// Why an environment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A step of the install failed; the log has its output.
    #[error("{step} failed ({status}); the app's log has the installer's output")]
    Step {
        /// What was being done.
        step: String,
        /// How it ended.
        status: String,
    },
    /// `requirements.txt` holds more than requirements.
    #[error(transparent)]
    Refused(#[from] crate::projects::requirements::RequirementError),
    /// The file system refused.
    #[error("could not prepare the Python environment: {0}")]
    Io(#[from] std::io::Error),
}

/// A ready environment.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// Its folder, the app's `VIRTUAL_ENV`.
    pub root: PathBuf,
}

impl PythonEnv {
    /// Its `bin` folder, first on the app's PATH.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Its Python.
    pub fn python(&self) -> PathBuf {
        self.bin().join("python")
    }
}

/// Where the environment for these requirements lives, and whether it is ready.
pub fn locate(env_dir: &Path, requirements: &str) -> (PathBuf, bool) {
    let hash = hex::encode(Sha256::digest(requirements.as_bytes()));
    let root = env_dir.join(&hash[..16]);
    let ready = root.join(".ready").exists();
    (root, ready)
}

/// Returns the environment for `requirements`, building it first if needed.
/// Installer output is appended to `log`. Blocking: call it off the runtime.
pub fn prepare(
    env_dir: &Path,
    python: &Path,
    installer: Installer,
    requirements: &str,
    log: &Path,
) -> Result<PythonEnv, EnvError> {
    // Versions saved before the check existed meet it here.
    crate::projects::requirements::check(requirements)?;
    std::fs::create_dir_all(env_dir)?;
    let (root, ready) = locate(env_dir, requirements);
    if ready {
        return Ok(PythonEnv { root });
    }
    let lock_path = root.with_extension("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| std::io::Error::from(errno))?;
    // Someone else may have built it while we waited for the lock.
    if root.join(".ready").exists() {
        return Ok(PythonEnv { root });
    }
    let staging = root.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = build(&staging, python, installer, requirements, log);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&staging, &root)?;
    Ok(PythonEnv { root })
}

fn build(
    staging: &Path,
    python: &Path,
    installer: Installer,
    requirements: &str,
    log: &Path,
) -> Result<(), EnvError> {
    std::fs::create_dir_all(staging)?;
    let requirements_file = staging.join("requirements.txt");
    std::fs::write(&requirements_file, requirements)?;
    let use_uv = match installer {
        Installer::Uv => true,
        Installer::Pip => false,
        Installer::Auto => on_path("uv"),
    };
    let venv_python = staging.join("bin/python");
    if use_uv {
        run_step(
            "uv venv",
            Command::new("uv")
                .arg("venv")
                .arg("--quiet")
                // The folder already holds the requirements file.
                .arg("--allow-existing")
                .arg("--python")
                .arg(python)
                .arg(staging),
            log,
        )?;
        run_step(
            "uv pip install",
            Command::new("uv")
                // Only the daemon's own settings: no uv.toml from a project.
                .args(["pip", "install", "--quiet", "--no-config", "--python"])
                .arg(&venv_python)
                .arg("-r")
                .arg(&requirements_file),
            log,
        )?;
    } else {
        run_step(
            "python -m venv",
            Command::new(python).args(["-m", "venv"]).arg(staging),
            log,
        )?;
        run_step(
            "pip install",
            Command::new(&venv_python)
                .args([
                    "-m",
                    "pip",
                    // Ignore PIP_* variables and user configuration files.
                    "--isolated",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements_file),
            log,
        )?;
    }
    std::fs::write(staging.join(".ready"), requirements)?;
    Ok(())
}

/// Runs one installer step with its output in the app's log.
fn run_step(step: &str, command: &mut Command, log: &Path) -> Result<(), EnvError> {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(out, "[appforge] {step}")?;
    // Installers need the network settings and caches of the daemon's user,
    // but never its API keys (removed from the environment at start-up).
    let status = command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .map_err(|e| EnvError::Step {
            step: step.to_string(),
            status: format!("could not run it: {e}"),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(EnvError::Step {
            step: step.to_string(),
            status: status.to_string(),
        })
    }
}

/// Whether a program is on the PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
                && std::fs::metadata(&candidate)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_are_keyed_by_their_requirements() {
        let dir = Path::new("/envs");
        let (a, _) = locate(dir, "flask\n");
        let (b, _) = locate(dir, "flask\n");
        let (c, _) = locate(dir, "flask\nrequests\n");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with(dir));
    }
}
