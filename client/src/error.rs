//! The client's errors and the exit status each one maps to.

use std::path::PathBuf;

use appforge_shared::WireError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers on the socket.
    #[error(
        "appforged is not running on {socket} ({reason}); start it with `appforged &` \
         (or `systemctl --user start appforged`), or pass --socket"
    )]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// What connecting said.
        reason: String,
    },
    /// The socket exists but this user may not open it.
    #[error(
        "permission denied opening the daemon's socket {0}: it belongs to another user; \
         ask its owner to add you to the socket's group, or start your own appforged"
    )]
    PermissionDenied(PathBuf),
    /// The daemon refused or failed the request.
    #[error("{0}")]
    Daemon(WireError),
    /// The command line or local input is wrong.
    #[error("{0}")]
    Usage(String),
    /// The connection broke or the daemon answered nonsense.
    #[error("{0}")]
    Protocol(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Local(String),
    /// Another error, with what the user should know about it.
    #[error("{0}; {1}")]
    Noted(Box<ClientError>, String),
}

impl ClientError {
    /// The process exit status (see DESIGN.md).
    pub fn exit_status(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => 5,
            ClientError::Daemon(e) => e.code.exit_status() as u8,
            ClientError::PermissionDenied(_) => 4,
            ClientError::Usage(_) => 2,
            ClientError::Protocol(_) | ClientError::Local(_) => 1,
            ClientError::Noted(inner, _) => inner.exit_status(),
        }
    }

    /// The same error with a note for the user after its message.
    pub fn with_note(self, note: &str) -> ClientError {
        ClientError::Noted(Box::new(self), note.to_string())
    }

    /// The code shown in JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Daemon(e) => e.code.as_str(),
            ClientError::PermissionDenied(_) => "forbidden",
            ClientError::Usage(_) => "invalid-input",
            ClientError::Protocol(_) => "protocol",
            ClientError::Local(_) => "local",
            ClientError::Noted(inner, _) => inner.code(),
        }
    }
}
