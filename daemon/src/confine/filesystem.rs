//! The files an app may touch, enforced with Landlock: an allow-list, so
//! the data directory, the database, other projects and the daemon's
//! socket folder are out of reach without being named.

use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
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
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/os-release",
    "/etc/lsb-release",
    "/etc/debian_version",
    "/etc/redhat-release",
    "/etc/alpine-release",
];

/// System folders every Python needs to read and run.
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/proc",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
];

/// The system's libraries and programs, read-only.
pub fn system_paths() -> Vec<PathBuf> {
    SYSTEM_DIRS
        .iter()
        .chain(ETC_FILES)
        .map(PathBuf::from)
        .collect()
}

/// The prefixes of a program (`<prefix>/bin/<program>` → `<prefix>`), as
/// named and after following its links (a virtual environment's Python
/// needs both: its `pyvenv.cfg` and the interpreter it links to); a bare
/// name is looked up on the PATH.
pub fn prefixes_of(program: &Path) -> Vec<PathBuf> {
    let found = if program.components().count() == 1 {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
    } else {
        Some(program.to_path_buf())
    };
    let Some(found) = found else {
        return Vec::new();
    };
    let named = std::path::absolute(&found).ok();
    let real = std::fs::canonicalize(&found).ok();
    named
        .into_iter()
        .chain(real)
        .filter_map(|p| p.parent()?.parent().map(Path::to_path_buf))
        .filter(|prefix| prefix != Path::new("/"))
        .collect()
}

/// Where the environment's Python really lives: a virtual environment's
/// `bin/python` is a link to an interpreter elsewhere (pyenv, uv's own, the
/// system's), whose prefix holds its standard library.
pub fn python_paths(env_root: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut add_prefix_of = |bin: &Path| {
        if let Ok(real) = std::fs::canonicalize(bin) {
            // <prefix>/bin/python3.x → <prefix>
            if let Some(prefix) = real.parent().and_then(Path::parent) {
                if prefix != Path::new("/") && !paths.iter().any(|p| p == prefix) {
                    paths.push(prefix.to_path_buf());
                }
            }
        }
    };
    add_prefix_of(&env_root.join("bin/python"));
    // pyvenv.cfg names the base interpreter's folder as `home`.
    if let Ok(cfg) = std::fs::read_to_string(env_root.join("pyvenv.cfg")) {
        for line in cfg.lines() {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "home" {
                    add_prefix_of(&Path::new(value.trim()).join("python3"));
                }
            }
        }
    }
    paths
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

/// Confines this process (and what it runs) to the given paths. Called in
/// the app's process just before it runs Python.
pub fn restrict(read_write: &[PathBuf], read_only: &[PathBuf]) -> Result<Enforced, String> {
    let rw = AccessFs::from_all(ABI_USED);
    let ro = AccessFs::from_read(ABI_USED);
    let status = Ruleset::default()
        .handle_access(rw)
        .and_then(|r| r.scope(Scope::from_all(ABI_USED)))
        .and_then(|r| r.create())
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
