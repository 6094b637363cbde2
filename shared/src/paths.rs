//! Where the socket, the data and the client's configuration live by default.

use std::path::PathBuf;

/// File name of the daemon's socket inside its runtime folder.
pub const SOCKET_FILE: &str = "appforged.sock";

/// The socket path when neither `--socket` nor `APPFORGE_SOCKET` is given:
/// `$XDG_RUNTIME_DIR/appforge/appforged.sock`, else a per-user folder in the
/// temporary directory.
pub fn default_socket_path() -> PathBuf {
    match dirs::runtime_dir() {
        Some(dir) => dir.join("appforge").join(SOCKET_FILE),
        None => std::env::temp_dir()
            .join(format!("appforge-{}", current_uid()))
            .join(SOCKET_FILE),
    }
}

/// The data directory when neither `--data-dir` nor `APPFORGE_DATA_DIR` is given.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("appforge-{}-data", current_uid())))
        .join("appforge")
}

/// The folder holding the user's appforge configuration and session.
pub fn config_dir() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("appforge-{}-config", current_uid())))
        .join("appforge")
}

/// The real user id of this process.
pub fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}
