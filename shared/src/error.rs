//! Error codes that cross the wire, and the exit statuses the client maps them to.

use serde::{Deserialize, Serialize};

/// Why a request failed, as the client needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The named project, file or version does not exist (or belongs to someone else).
    NotFound,
    /// The caller is signed in but may not do this.
    Forbidden,
    /// The caller is not signed in, or the session has expired.
    Unauthenticated,
    /// The request itself is wrong: bad arguments, bad frame, wrong protocol version.
    InvalidInput,
    /// The request clashes with existing state (duplicate email, name taken).
    Conflict,
    /// The AI provider failed or refused.
    ProviderError,
    /// Something went wrong inside the daemon.
    Internal,
    /// An app did not start, or ended failed; the message has its log.
    AppFailed,
}

impl ErrorCode {
    /// The client's exit status for this code (see DESIGN.md).
    pub fn exit_status(self) -> i32 {
        match self {
            ErrorCode::Internal | ErrorCode::ProviderError => 1,
            ErrorCode::InvalidInput => 2,
            ErrorCode::NotFound => 3,
            ErrorCode::Unauthenticated | ErrorCode::Forbidden => 4,
            ErrorCode::Conflict => 6,
            ErrorCode::AppFailed => 7,
        }
    }

    /// A short kebab-case name, as shown in JSON output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not-found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ProviderError => "provider-error",
            ErrorCode::Internal => "internal",
            ErrorCode::AppFailed => "app-failed",
        }
    }
}

/// A failed request as it crosses the wire: a code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What happened and what to do about it.
    pub message: String,
}

impl WireError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}
