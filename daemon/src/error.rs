//! The error every request handler returns, and how it crosses the wire.

use appforge_shared::{ErrorCode, WireError};

use crate::auth::AuthError;
use crate::db::DbError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller is not signed in or its session ended.
    #[error("{0}")]
    Unauthenticated(String),
    /// The request's arguments are wrong.
    #[error("{0}")]
    InvalidInput(String),
    /// The request clashes with stored state.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this now.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbError),
    /// Anything else inside the daemon.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::InvalidEmail(_) | AuthError::PasswordLength => {
                ServiceError::InvalidInput(message)
            }
            AuthError::EmailTaken => ServiceError::Conflict(message),
            AuthError::WrongCredentials | AuthError::NotSignedIn | AuthError::SessionEnded => {
                ServiceError::Unauthenticated(message)
            }
            AuthError::Throttled { .. } => ServiceError::Forbidden(message),
            AuthError::Db(e) => ServiceError::Db(e),
            AuthError::Hashing(e) => ServiceError::Internal(e),
        }
    }
}

impl From<ServiceError> for WireError {
    fn from(e: ServiceError) -> Self {
        let code = match &e {
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServiceError::InvalidInput(_) => ErrorCode::InvalidInput,
            ServiceError::Conflict(_) => ErrorCode::Conflict,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::Db(_) | ServiceError::Internal(_) => ErrorCode::Internal,
        };
        let message = match &e {
            ServiceError::Db(_) | ServiceError::Internal(_) => {
                format!("{e}; see the daemon's log for details")
            }
            _ => e.to_string(),
        };
        WireError::new(code, message)
    }
}
