//! Confinement of generated apps, which are untrusted code: a model wrote
//! them and nobody has read them.
//!
//! Each app runs under a small log process of its own, the shim ([`shim`]),
//! a program of its own installed beside the daemon's. The shim:
//! - reads the app's output from a pipe and keeps its log under the cap,
//!   also while the daemon is down (as container runtimes' `conmon` does);
//! - puts the app in new user and PID namespaces, so that every process the
//!   app starts ends with it, whatever session or group it made;
//! - confines the app's files with Landlock ([`filesystem`]): its folder and
//!   a private temporary folder read-write, its Python and the system's
//!   libraries read-only, nothing else; Landlock also keeps it from
//!   ptrace-style access (`/proc/<pid>/environ`, `/proc/<pid>/mem`) to any
//!   process outside its sandbox;
//! - confines its network with Landlock too: it listens on its own port
//!   only and connects over TCP only to the allowed ports, so not to the
//!   dashboard, the database or another app;
//! - sets its resource limits (open files, address space, file size), and
//!   holds it to those no kernel mechanism enforces here without root
//!   ([`limits`]: its processes without a pids controller, the disk its
//!   folders take), ending it `failed` with the reason past one.
//!
//! The daemon itself is non-dumpable, so its `/proc` entries are closed to
//! its children, and refuses socket clients that descend from it.
//!
//! When the kernel lacks a mechanism, [`Protections::probe`] says which, the
//! daemon logs it once, `status` shows it, and `--require-confinement`
//! makes it fatal.

pub mod cgroup;
pub mod filesystem;
pub mod limits;
pub mod pyenv;
pub mod shim;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::config::AppSettings;

/// The oldest Landlock ABI that counts as confinement: before 3, an app
/// could still truncate any file it could open for reading.
pub const MIN_LANDLOCK_ABI: u32 = 3;
/// The first Landlock ABI with network rules (TCP bind and connect).
pub const MIN_LANDLOCK_NET_ABI: u32 = 4;

/// What the kernel lets the daemon do to confine apps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protections {
    /// The Landlock ABI version, or 0 when Landlock is missing.
    pub landlock_abi: u32,
    /// Whether an unprivileged process may make user and PID namespaces.
    pub namespaces: bool,
    /// Why namespaces are not available, when they are not.
    pub namespaces_error: Option<String>,
    /// The controllers of the apps' cgroups, when the daemon has a cgroup
    /// subtree (`None`: no cgroups).
    #[serde(default)]
    pub cgroup_controllers: Option<Vec<String>>,
    /// Why there are no cgroups, when there are none.
    #[serde(default)]
    pub cgroup_error: Option<String>,
}

impl Protections {
    /// Asks a shim what it can do, so the answer is what apps will get.
    pub fn probe() -> Protections {
        let out = shim::command().and_then(|mut command| {
            command
                .arg(shim::PROBE_ARG)
                .env_clear()
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
        });
        match out {
            Ok(out) if out.status.success() => {
                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| Protections {
                    namespaces_error: Some(format!("the probe's answer was unreadable: {e}")),
                    ..Protections::default()
                })
            }
            Ok(out) => Protections {
                namespaces_error: Some(format!("the probe failed ({})", out.status)),
                ..Protections::default()
            },
            Err(e) => Protections {
                namespaces_error: Some(format!("the probe could not run: {e}")),
                ..Protections::default()
            },
        }
    }

    /// Whether the apps' cgroups have the controller `name`.
    pub fn has_controller(&self, name: &str) -> bool {
        self.cgroup_controllers
            .as_ref()
            .is_some_and(|c| c.iter().any(|x| x == name))
    }

    /// Whether Landlock can confine apps' TCP ports.
    pub fn network_rules(&self) -> bool {
        self.landlock_abi >= MIN_LANDLOCK_NET_ABI
    }

    /// The protections and limits as `status` lists them: name, and
    /// whether it is enforced here; an off one says why.
    pub fn list(&self, settings: &AppSettings) -> Vec<(String, bool)> {
        const MIB: u64 = 1024 * 1024;
        let ports = match settings.connect_ports.as_slice() {
            [] => "to no TCP port".to_string(),
            ports => format!(
                "only to TCP port{} {}",
                if ports.len() == 1 { "" } else { "s" },
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let network = if self.network_rules() {
            format!(
                "network: apps, checks and installers connect {ports}; an app listens on its \
                 own port only"
            )
        } else {
            format!(
                "network: apps may connect to any TCP port, the dashboard's and other apps' \
                 too (off: needs Landlock ABI {MIN_LANDLOCK_NET_ABI}, Linux 6.7; this kernel \
                 has ABI {})",
                self.landlock_abi
            )
        };
        let no_controller = |c: &str| match &self.cgroup_controllers {
            Some(_) => format!("the apps' cgroups have no {c} controller here"),
            None => format!(
                "no cgroup per app: {}",
                self.cgroup_error.as_deref().unwrap_or("not delegated")
            ),
        };
        // A limit by a cgroup controller: on where the controller is.
        let by_controller =
            |what: &str, controller: &str, value: Option<String>, flag: &str| match value {
                None => (format!("{what} (off: {flag} 0)"), false),
                Some(v) if self.has_controller(controller) => (format!("{what}: {v}"), true),
                Some(_) => (
                    format!("{what} (off: {})", no_controller(controller)),
                    false,
                ),
            };
        let processes = match settings.max_processes {
            None => (
                "processes per app (off: --app-max-processes 0)".to_string(),
                false,
            ),
            Some(n) if self.has_controller("pids") => (
                format!("processes: at most {n} tasks per app (cgroup pids.max)"),
                true,
            ),
            Some(n) => (
                format!(
                    "processes: at most {n} tasks per app and check step, counted by its shim \
                     ({}); past it the app ends failed",
                    no_controller("pids")
                ),
                true,
            ),
        };
        let disk = match settings.max_disk_bytes {
            None => (
                "disk per app (off: --app-max-disk-mib 0)".to_string(),
                false,
            ),
            Some(bytes) => (
                format!(
                    "disk: at most {} MiB per app's folder and temporary folder together, \
                     measured by its shim; past it the app ends failed",
                    bytes / MIB
                ),
                true,
            ),
        };
        vec![
            (
                match self.landlock_abi {
                    abi if abi >= MIN_LANDLOCK_ABI => {
                        format!("landlock file confinement (ABI {abi})")
                    }
                    abi => format!(
                        "landlock file confinement (off: needs ABI {MIN_LANDLOCK_ABI}, Linux \
                         6.2; this kernel has ABI {abi})"
                    ),
                },
                self.landlock_abi >= MIN_LANDLOCK_ABI,
            ),
            (network, self.network_rules()),
            (
                match self.namespaces {
                    true => "user and PID namespaces (an app's processes end with it)".to_string(),
                    false => format!(
                        "user and PID namespaces (off: {})",
                        self.namespaces_error.as_deref().unwrap_or("not allowed")
                    ),
                },
                self.namespaces,
            ),
            match &self.cgroup_controllers {
                Some(_) => (
                    "a cgroup per app (every process it starts is killed with it)".to_string(),
                    true,
                ),
                None => (
                    format!(
                        "a cgroup per app (off: {})",
                        self.cgroup_error.as_deref().unwrap_or("not delegated")
                    ),
                    false,
                ),
            },
            by_controller(
                "memory per app",
                "memory",
                settings
                    .max_memory
                    .map(|b| format!("at most {} MiB (cgroup memory.max)", b / MIB)),
                "--app-max-memory-mib",
            ),
            by_controller(
                "CPU per app",
                "cpu",
                settings
                    .max_cpu_percent
                    .map(|p| format!("at most {p}% of a core (cgroup cpu.max)")),
                "--app-max-cpu-percent",
            ),
            processes,
            disk,
            match settings.max_memory {
                Some(b) => (
                    format!(
                        "address space: at most {} MiB per process (RLIMIT_AS)",
                        b / MIB
                    ),
                    true,
                ),
                None => (
                    "address space per process (off: --app-max-memory-mib 0)".to_string(),
                    false,
                ),
            },
            match settings.max_file_bytes {
                Some(b) => (
                    format!("file size: at most {} MiB per file (RLIMIT_FSIZE)", b / MIB),
                    true,
                ),
                None => (
                    "file size per file (off: --app-max-file-mib 0)".to_string(),
                    false,
                ),
            },
            ("non-dumpable daemon".to_string(), true),
            ("socket refuses supervised apps".to_string(), true),
            ("log cap held by each app's log process".to_string(), true),
        ]
    }

    /// What is missing, in words, or `None` when nothing is.
    pub fn missing(&self) -> Option<String> {
        let mut missing = Vec::new();
        if self.landlock_abi < MIN_LANDLOCK_ABI {
            missing.push(format!(
                "Landlock ABI {MIN_LANDLOCK_ABI} or later, Linux 6.2 (this kernel has {}; apps could \
                 read, or truncate, every file their user can)",
                self.landlock_abi
            ));
        }
        if !self.network_rules() {
            missing.push(format!(
                "Landlock ABI {MIN_LANDLOCK_NET_ABI} or later, Linux 6.7, for network rules (this \
                 kernel has {}; apps could connect to the dashboard, the database and other apps)",
                self.landlock_abi
            ));
        }
        if !self.namespaces {
            missing.push(format!(
                "user and PID namespaces ({}; an app's processes that leave its process group \
                 are stopped by its init, a subreaper, but not if the app's shim is killed)",
                self.namespaces_error.as_deref().unwrap_or("not allowed")
            ));
        }
        if self.cgroup_controllers.is_none() && !self.namespaces {
            missing.push(format!(
                "a cgroup per app ({})",
                self.cgroup_error.as_deref().unwrap_or("not delegated")
            ));
        }
        (!missing.is_empty()).then(|| missing.join("; "))
    }
}

/// Hardens the daemon's own process. Call first thing, before any thread.
pub fn harden_daemon() {
    // Files the daemon makes are its own alone, whatever umask it was given.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // A non-dumpable process's /proc entries (environ, mem, maps) belong to
    // root, and ptrace-style access to it needs CAP_SYS_PTRACE: its
    // children cannot read the keys it started with.
    // SAFETY: prctl with integer arguments touches no memory of ours.
    unsafe {
        nix::libc::prctl(nix::libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // glibc raises its mmap threshold after a large block is freed, and then
    // keeps each 19 MiB password hash in the heap for good. A fixed
    // threshold keeps large blocks mmapped, so freeing one returns it.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tunables; called before threads.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
    // Each app holds a few descriptors open in the daemon (its log pipe,
    // its /proc stat file for `ps`), so 1024, systemd's usual soft limit,
    // would end near 300 apps. The hard limit is the daemon's to take;
    // apps get their own, lower limit from the shim.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Makes the data directory 0700 and the files directly in it 0600,
/// whatever mode they had: the database holds every account.
pub fn secure_data_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Where one app may go, and its limits, as the shim applies them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    /// Folders the app may read and write.
    pub read_write: Vec<PathBuf>,
    /// Folders and files the app may read and run.
    pub read_only: Vec<PathBuf>,
    /// The one TCP port the app may listen on, when it is limited.
    pub bind_port: Option<u16>,
    /// Whether to confine files with Landlock.
    pub landlock: bool,
    /// Whether to run the app in new user and PID namespaces.
    pub namespaces: bool,
    /// The app's cgroup, which the shim joins first.
    pub cgroup: Option<PathBuf>,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_AS in bytes, if any.
    pub address_space: Option<u64>,
    /// RLIMIT_FSIZE in bytes, if any: no single file fills the disk.
    pub file_size: Option<u64>,
    /// The TCP ports it may connect to (Landlock network rules).
    #[serde(default)]
    pub connect_ports: Vec<u16>,
    /// Most tasks, counted by the shim (no pids controller does it).
    #[serde(default)]
    pub max_tasks: Option<u64>,
    /// Most bytes its read-write folders may take, measured by the shim.
    #[serde(default)]
    pub max_disk: Option<u64>,
}

impl Sandbox {
    /// The sandbox of an app in `dir`, with its Python environment at
    /// `env_root`, a private temporary folder `tmp`, its cgroup if any, the
    /// one port it may listen on, and the limits of `settings`.
    pub fn for_app(
        protections: &Protections,
        settings: &AppSettings,
        dir: &Path,
        tmp: &Path,
        env_root: &Path,
        cgroup: Option<PathBuf>,
        port: u16,
    ) -> Sandbox {
        let mut read_only = filesystem::system_paths();
        read_only.push(env_root.to_path_buf());
        read_only.extend(filesystem::interpreter_paths(&settings.python));
        // pids.max holds the count where the app's cgroup has the
        // controller; elsewhere its shim counts.
        let pids_in_cgroup = cgroup.is_some() && protections.has_controller("pids");
        Sandbox {
            read_write: vec![dir.to_path_buf(), tmp.to_path_buf()],
            read_only: filesystem::without_guarded(read_only, &settings.guarded),
            bind_port: Some(port),
            landlock: protections.landlock_abi > 0,
            namespaces: protections.namespaces,
            cgroup,
            open_files: settings.max_files,
            address_space: settings.max_memory,
            file_size: settings.max_file_bytes,
            connect_ports: settings.connect_ports.clone(),
            max_tasks: settings.max_processes.filter(|_| !pids_in_cgroup),
            max_disk: settings.max_disk_bytes,
        }
    }

    /// The sandbox of an installer step (venv, pip, uv): a package's build
    /// code runs here, chosen by a model, so it gets what an app gets: the
    /// environment being built and a private temporary folder, read-only
    /// the interpreters and tools, and the same outbound ports.
    pub fn for_installer(
        protections: &Protections,
        settings: &AppSettings,
        read_write: Vec<PathBuf>,
        uv: Option<&Path>,
    ) -> Sandbox {
        let mut read_only = filesystem::system_paths();
        read_only.extend(filesystem::interpreter_paths(&settings.python));
        // uv is one file: its folder (~/.local/bin, say) may hold more.
        read_only.extend(uv.map(Path::to_path_buf));
        Sandbox {
            read_write,
            read_only: filesystem::without_guarded(read_only, &settings.guarded),
            bind_port: None,
            landlock: protections.landlock_abi > 0,
            namespaces: protections.namespaces,
            cgroup: None,
            open_files: 1024,
            address_space: None,
            file_size: None,
            // Packages come from an index on these ports like anything else
            // an app fetches, or through the proxy the daemon was given; the
            // daemon's own ports stay out of reach.
            connect_ports: with_proxy_ports(&settings.connect_ports),
            max_tasks: None,
            max_disk: None,
        }
    }
}

/// The variables that name a proxy installers are handed.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// `ports` and the ports of the proxies in the daemon's environment.
fn with_proxy_ports(ports: &[u16]) -> Vec<u16> {
    let mut all = ports.to_vec();
    for variable in PROXY_VARIABLES {
        if let Some(port) = std::env::var(variable).ok().as_deref().and_then(proxy_port) {
            if !all.contains(&port) {
                all.push(port);
            }
        }
    }
    all
}

/// The port of a proxy URL (`http://user:pw@proxy:3128/`, `proxy:3128`),
/// or its scheme's when it names none.
fn proxy_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    match host_port.rsplit_once(':') {
        // Not the inside of an IPv6 address in brackets.
        Some((_, port)) if !port.contains(']') => port.parse().ok(),
        _ => match scheme {
            "http" => Some(80),
            "https" => Some(443),
            "socks5" | "socks5h" | "socks4" => Some(1080),
            _ => None,
        },
    }
}

/// Runs a command under a shim, confined by `spec.sandbox`, its output
/// (and what the shim itself has to say) in `spec.log`; returns how it
/// ended, or `None` when it ran past `limit` and was killed with its whole
/// process group (and so its namespace). Blocking.
pub fn run_confined(
    spec: &shim::ShimSpec,
    log: &crate::process::logfile::LogFiles,
    limit: std::time::Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let mut child = shim::start(spec, log.open_for_child()?.into())?;
    let pid = child.id() as i32;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let raw = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        let e = std::io::Error::last_os_error();
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        return Err(e);
    }
    // SAFETY: the descriptor was just returned to us and is owned here alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) if left.is_zero() => break,
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return child.wait().map(Some),
            Err(e) => return Err(e.into()),
        }
    }
    // The shim leads its group; its init and app die with it.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    child.wait()?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AppSettings {
        let cli = <crate::config::Cli as clap::Parser>::parse_from(["appforged"]);
        crate::config::Settings::from_cli(cli, crate::config::Secrets::default())
            .expect("default settings")
            .apps
    }

    #[test]
    fn status_says_on_only_what_is_enforced_and_why_the_rest_is_off() {
        let settings = settings();
        let on = |p: &Protections, start: &str| {
            p.list(&settings)
                .into_iter()
                .find(|(name, _)| name.starts_with(start))
                .unwrap_or_else(|| panic!("no {start}"))
        };
        // Landlock without network rules, a cgroup without controllers.
        let old = Protections {
            landlock_abi: 3,
            namespaces: true,
            cgroup_controllers: Some(Vec::new()),
            ..Protections::default()
        };
        let (network, enforced) = on(&old, "network: ");
        assert!(
            !enforced && network.contains("this kernel has ABI 3"),
            "{network}"
        );
        assert!(old.missing().unwrap().contains("network rules"));
        assert!(on(&old, "a cgroup per app").1);
        let (memory, enforced) = on(&old, "memory per app");
        assert!(
            !enforced && memory.contains("no memory controller"),
            "{memory}"
        );
        let (processes, enforced) = on(&old, "processes: ");
        assert!(
            enforced && processes.contains("counted by its shim"),
            "{processes}"
        );
        // Everything there.
        let new = Protections {
            landlock_abi: 6,
            namespaces: true,
            cgroup_controllers: Some(vec!["memory".into(), "cpu".into(), "pids".into()]),
            ..Protections::default()
        };
        assert_eq!(new.missing(), None);
        assert!(on(&new, "network: ").1);
        assert!(on(&new, "memory per app").1);
        assert!(on(&new, "processes: ").0.contains("pids.max"));
        for (name, enforced) in new.list(&settings).into_iter().chain(old.list(&settings)) {
            assert!(enforced || name.contains("off:"), "{name}");
        }
    }

    #[test]
    fn a_proxys_port_is_read_from_its_url() {
        assert_eq!(proxy_port("http://user:pw@proxy.lan:3128/"), Some(3128));
        assert_eq!(proxy_port("proxy.lan:8080"), Some(8080));
        assert_eq!(proxy_port("https://proxy.lan"), Some(443));
        assert_eq!(proxy_port("http://[::1]:3129"), Some(3129));
        assert_eq!(proxy_port("http://[::1]"), Some(80));
        assert_eq!(proxy_port("socks5://10.0.0.1"), Some(1080));
        assert_eq!(proxy_port("ftp://x"), None);
    }
}
