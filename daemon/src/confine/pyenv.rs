//! Python environments for apps, keyed by the hash of `requirements.txt` and
//! shared: a second app with the same requirements installs nothing.
//!
//! An environment is built in a temporary folder and renamed into place, so a
//! half-built one is never used; a lock file serialises builders, daemons and
//! tests alike.

use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::config::AppSettings;
use crate::config::Installer;
use crate::confine::filesystem::which;
use crate::confine::shim::ShimSpec;
use crate::confine::{self, Protections, Sandbox};
use crate::process::logfile::LogFiles;

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
    /// A step ran past its time limit and was stopped.
    #[error(
        "{step} took longer than {} s and was stopped (raise --install-timeout if it needs more); \
         its last lines:\n{tail}",
        limit.as_secs()
    )]
    TimedOut {
        /// What was being done.
        step: String,
        /// The limit.
        limit: std::time::Duration,
        /// The end of the app's log.
        tail: String,
    },
    /// `requirements.txt` holds more than requirements.
    #[error(transparent)]
    Refused(#[from] crate::process::requirements::RequirementError),
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

    /// Its `site-packages` folder, where its packages are installed.
    pub fn site_packages(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.root.join("lib"))
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("python"))
            .map(|e| e.path().join("site-packages"))
    }

    /// Whether the top-level package `name` is installed in it.
    pub fn has_package(&self, name: &str) -> bool {
        self.site_packages()
            .is_some_and(|site| site.join(name).is_dir())
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
    how: &Installing,
) -> Result<PythonEnv, EnvError> {
    // Versions saved before the check existed meet it here.
    crate::process::requirements::check(requirements)?;
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
    let result = build(&staging, python, installer, requirements, how);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&staging, &root)?;
    Ok(PythonEnv { root })
}

/// How installer steps run: confined like the apps (a package's build code
/// is chosen by a model), with their output in the app's log.
pub struct Installing<'a> {
    /// What the kernel allows to confine them.
    pub protections: &'a Protections,
    /// The daemon's settings for apps.
    pub settings: &'a AppSettings,
    /// The app's log.
    pub log: &'a LogFiles,
}

/// The variables an installer keeps from the daemon's environment: how to
/// reach the network, nothing else.
const NETWORK_VARIABLES: [&str; 13] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // pip's HTTP library reads these even when pip ignores its own settings.
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "UV_NATIVE_TLS",
];

/// One installer step: what runs and where it may write.
struct Step<'a> {
    name: &'a str,
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
}

fn build(
    staging: &Path,
    python: &Path,
    installer: Installer,
    requirements: &str,
    how: &Installing,
) -> Result<(), EnvError> {
    std::fs::create_dir_all(staging)?;
    let requirements_file = staging.join("requirements.txt");
    std::fs::write(&requirements_file, requirements)?;
    let tmp = staging.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let uv = match installer {
        Installer::Uv => Some(which(Path::new("uv")).ok_or_else(|| EnvError::Step {
            step: "uv venv".into(),
            status: "uv is not on the PATH".into(),
        })?),
        Installer::Pip => None,
        Installer::Auto => which(Path::new("uv")),
    };
    // The shim runs programs by path, not through the PATH.
    let python = match python.components().count() {
        1 => which(python).unwrap_or_else(|| python.to_path_buf()),
        _ => python.to_path_buf(),
    };
    let python = python.as_path();
    let venv_python = staging.join("bin/python");
    let os = |s: &str| std::ffi::OsString::from(s);
    let steps = match &uv {
        Some(uv) => vec![
            Step {
                name: "uv venv",
                program: uv.clone(),
                args: vec![
                    os("venv"),
                    os("--quiet"),
                    os("--no-config"),
                    // The folder already holds the requirements file.
                    os("--allow-existing"),
                    os("--python"),
                    python.into(),
                    staging.into(),
                ],
            },
            Step {
                name: "uv pip install",
                program: uv.clone(),
                // Only the daemon's own settings: no uv.toml from a project.
                args: vec![
                    os("pip"),
                    os("install"),
                    os("--quiet"),
                    os("--no-config"),
                    // No cache shared between builds: one package's build
                    // code could change what another project installs.
                    os("--no-cache"),
                    os("--link-mode=copy"),
                    // Apps may only read their environment, so bytecode not
                    // compiled now would be compiled again at every start
                    // (pip compiles by default; uv does not).
                    os("--compile-bytecode"),
                    os("--python"),
                    venv_python.clone().into(),
                    os("-r"),
                    requirements_file.clone().into(),
                ],
            },
        ],
        None => vec![
            Step {
                name: "python -m venv",
                program: python.to_path_buf(),
                args: vec![os("-m"), os("venv"), staging.into()],
            },
            Step {
                name: "pip install",
                program: venv_python.clone(),
                args: vec![
                    os("-m"),
                    os("pip"),
                    // Ignore PIP_* variables and configuration files.
                    os("--isolated"),
                    os("install"),
                    os("--quiet"),
                    os("--disable-pip-version-check"),
                    os("--no-cache-dir"),
                    os("-r"),
                    requirements_file.clone().into(),
                ],
            },
        ],
    };
    let writable = vec![staging.to_path_buf(), tmp.clone()];
    let result = steps
        .into_iter()
        .try_for_each(|step| run_step(step, &writable, uv.as_deref(), &tmp, how));
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    std::fs::write(staging.join(".ready"), requirements)?;
    Ok(())
}

/// Runs one installer step under a shim, confined, with its output in the
/// app's log.
fn run_step(
    step: Step,
    writable: &[PathBuf],
    uv: Option<&Path>,
    tmp: &Path,
    how: &Installing,
) -> Result<(), EnvError> {
    how.log.note(step.name)?;
    let mut env: Vec<(String, String)> = NETWORK_VARIABLES
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let tmp_text = tmp.display().to_string();
    env.extend([
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("HOME".to_string(), tmp_text.clone()),
        ("TMPDIR".to_string(), tmp_text),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ]);
    let spec = ShimSpec {
        program: step.program,
        args: step
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        dir: writable[0].clone(),
        env,
        log: how.log.path().to_path_buf(),
        log_max_bytes: how.log.max_bytes(),
        log_files: how.log.files(),
        sandbox: Sandbox::for_installer(how.protections, how.settings, writable.to_vec(), uv),
    };
    let limit = how.settings.install_timeout;
    let status = confine::run_confined(&spec, how.log, limit).map_err(|e| EnvError::Step {
        step: step.name.to_string(),
        status: format!("could not run it: {e}"),
    })?;
    let Some(status) = status else {
        let tail = how.log.tail(10).unwrap_or_default().join("\n");
        let _ = how.log.note(&format!(
            "{} took longer than {} s and was stopped",
            step.name,
            limit.as_secs()
        ));
        return Err(EnvError::TimedOut {
            step: step.name.to_string(),
            limit,
            tail,
        });
    };
    if status.success() {
        Ok(())
    } else {
        Err(EnvError::Step {
            step: step.name.to_string(),
            status: status.to_string(),
        })
    }
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
