//! The files an app may touch, enforced with Landlock: an allow-list, so
//! the data directory, the database, other projects and the daemon's
//! socket folder are out of reach without being named.

use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};

/// The newest Landlock ABI this code was written and tested against.
const ABI_USED: ABI = ABI::V6;

/// Files under /etc that programs read to work at all: the loader's cache,
/// names, time zones, certificates, MIME types. Not the whole of /etc.
const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/mime.types",
    // Certificates only: /etc/ssl/private and /etc/pki/tls/private hold keys.
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/alternatives",
    "/etc/os-release",
    "/etc/lsb-release",
    "/etc/debian_version",
    "/etc/redhat-release",
    "/etc/alpine-release",
];

/// System folders every Python needs to read and run. Of /proc, only the
/// process's own entry (resolved when the rules are made, in the app's own
/// process) and a few files about the machine: the host's /proc would show
/// every process's command line.
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/loadavg",
    "/proc/uptime",
    "/proc/version",
];

/// The system's libraries and programs, read-only.
pub fn system_paths() -> Vec<PathBuf> {
    SYSTEM_DIRS
        .iter()
        .chain(ETC_FILES)
        .map(PathBuf::from)
        .collect()
}

/// A program as an absolute path: a bare name is looked up on the PATH.
pub fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return std::path::absolute(program).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
        .and_then(|found| std::path::absolute(found).ok())
}

/// What an interpreter needs to read: its prefix (`<prefix>/bin/python3.x`
/// → `<prefix>`, holding its standard library) after following links, and,
/// when it is named through a virtual environment, that environment too.
/// Worked out from the daemon's configured interpreter, never from files in
/// an environment a package's build code could have written.
pub fn interpreter_paths(python: &Path) -> Vec<PathBuf> {
    let Some(named) = which(python) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    if let Some(real) = std::fs::canonicalize(&named)
        .ok()
        .and_then(|real| real.parent()?.parent().map(Path::to_path_buf))
    {
        paths.push(real);
    }
    if let Some(venv) = named.parent().and_then(Path::parent) {
        if venv.join("pyvenv.cfg").is_file() && !paths.iter().any(|p| p == venv) {
            paths.push(venv.to_path_buf());
        }
    }
    paths.retain(|p| p != Path::new("/"));
    paths
}

/// `paths` without any that would open a guarded folder (the data
/// directory, the socket's folder): the guarded folder itself or one
/// holding it.
pub fn without_guarded(paths: Vec<PathBuf>, guarded: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .into_iter()
        .filter(|path| {
            let opens = guarded.iter().any(|g| g.starts_with(path));
            if opens {
                tracing::warn!(
                    path = %path.display(),
                    "not giving apps access to a folder that holds the data directory or socket"
                );
            }
            !opens
        })
        .collect()
}

/// How much of the confinement the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    /// Every rule.
    Fully,
    /// Some rules; the kernel's ABI is older than the one asked for.
    Partly,
    /// None: the kernel has no Landlock.
    Not,
}

/// Confines this process (and what it runs) to the given paths, to
/// listening on `bind_port` alone (on no port without one: an installer
/// step may not take an app's or the dashboard's) and to connecting over TCP to
/// `connect_ports` alone. Called in the app's process just before it runs
/// Python.
pub fn restrict(
    read_write: &[PathBuf],
    read_only: &[PathBuf],
    bind_port: Option<u16>,
    connect_ports: &[u16],
) -> Result<Enforced, String> {
    let rw = AccessFs::from_all(ABI_USED);
    let ro = AccessFs::from_read(ABI_USED);
    let ports: Vec<Result<NetPort, RulesetError>> = bind_port
        .map(|port| Ok(NetPort::new(port, AccessNet::BindTcp)))
        .into_iter()
        .chain(
            connect_ports
                .iter()
                .map(|&port| Ok(NetPort::new(port, AccessNet::ConnectTcp))),
        )
        .collect();
    let status = Ruleset::default()
        .handle_access(rw)
        // An app may listen on its own port only, not on another app's or
        // the dashboard's; an installer step (no port) may listen on none.
        .and_then(|r| r.handle_access(AccessNet::BindTcp))
        // Every TCP port on every host (the loopback's too: the dashboard,
        // metrics, a database, other apps) is closed but the allowed ones.
        .and_then(|r| r.handle_access(AccessNet::ConnectTcp))
        .and_then(|r| r.scope(Scope::from_all(ABI_USED)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(ports))
        .and_then(|r| r.add_rules(path_beneath_rules(read_only, ro)))
        .and_then(|r| r.add_rules(path_beneath_rules(read_write, rw)))
        .and_then(|r| r.add_rules(path_beneath_rules(["/dev/null"], rw)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("Landlock refused the rules: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partly,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

/// The kernel's Landlock ABI version, 0 when it has none.
pub fn kernel_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: nix::libc::c_uint = 1;
    // SAFETY: with a null attribute and size 0, this call only returns the
    // ABI version; it reads and writes no memory.
    let abi = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).unwrap_or(0)
}
