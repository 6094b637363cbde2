//! Mechanics of processes shared by the supervisor, the sandbox and the
//! checks: reading `/proc`, the app's log files, the launch spec (how an
//! app is started), the requirement lines its environment installs, the
//! settings its code reads, and the project's shape (which module runs,
//! where its dependencies are declared).
//! Nothing here knows of projects, the store or the sandbox.

pub mod excerpt;
pub mod launch;
pub mod logfile;
pub mod procfs;
pub mod reads;
pub mod requirements;
pub mod shape;

/// The first argument of an app's shim (`appforge-shim __app-shim`, and
/// `appforged __app-shim` before the shim had a program of its own); also
/// how the shims of an earlier daemon are found in `/proc`.
pub const SHIM_ARG: &str = "__app-shim";
