//! The error every request handler returns, and how it crosses the wire.

use appforge_shared::{ErrorCode, WireError};

use crate::ai::generate::GenerationError;
use crate::ai::ProviderChoiceError;
use crate::auth::AuthError;
use crate::confine::pyenv::EnvError;
use crate::db::DbError;
use crate::projects::settings::SettingsError;
use crate::projects::ProjectError;
use crate::services::settings::ChangeError;
use crate::services::versions::MakeError;
use crate::supervisor::RunError;

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
    /// The named thing does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The AI provider failed or cannot be used.
    #[error("{0}")]
    Provider(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbError),
    /// An app could not be run; the message says why, with its log.
    #[error("{0}")]
    App(String),
    /// Anything else inside the daemon.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RunError> for ServiceError {
    fn from(e: RunError) -> Self {
        let message = e.to_string();
        match e {
            RunError::PortTaken(_)
            | RunError::NoPort(..)
            | RunError::RunsElsewhere(_)
            | RunError::OnAnotherHost { .. }
            | RunError::Fenced(_)
            | RunError::Settings(_) => ServiceError::Conflict(message),
            RunError::PortOutOfRange { .. } => ServiceError::InvalidInput(message),
            RunError::Db(e) => ServiceError::Db(e),
            RunError::Env(EnvError::Refused(_)) | RunError::Shape(_) => {
                ServiceError::InvalidInput(message)
            }
            RunError::Env(_) | RunError::NotUp { .. } => ServiceError::App(message),
            RunError::Files(_) | RunError::NoVersion(_) => ServiceError::Internal(message),
        }
    }
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::InvalidEmail(_) | AuthError::PasswordLength => {
                ServiceError::InvalidInput(message)
            }
            AuthError::EmailTaken => ServiceError::Conflict(message),
            AuthError::WrongCredentials
            | AuthError::NotSignedIn
            | AuthError::SessionEnded
            | AuthError::LinkRefused(_) => ServiceError::Unauthenticated(message),
            AuthError::Db(e) => ServiceError::Db(e),
            AuthError::Hashing(e) => ServiceError::Internal(e),
        }
    }
}

impl From<SettingsError> for ServiceError {
    fn from(e: SettingsError) -> Self {
        let message = e.to_string();
        match e {
            SettingsError::BadName { .. }
            | SettingsError::BadValue { .. }
            | SettingsError::TooMany
            | SettingsError::Nothing => ServiceError::InvalidInput(message),
            SettingsError::NotSet { .. } => ServiceError::NotFound(message),
            SettingsError::Seal { .. } => ServiceError::Conflict(message),
            SettingsError::Db(e) => ServiceError::Db(e),
        }
    }
}

impl From<ChangeError> for ServiceError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Settings(e) => e.into(),
            ChangeError::Project(e) => e.into(),
            e @ ChangeError::Restart { .. } => ServiceError::App(e.to_string()),
            ChangeError::Db(e) => ServiceError::Db(e),
        }
    }
}

impl From<ProjectError> for ServiceError {
    fn from(e: ProjectError) -> Self {
        let message = e.to_string();
        match e {
            ProjectError::NotFound(_)
            | ProjectError::NoSuchVersion { .. }
            | ProjectError::NoVersions(_)
            | ProjectError::NoSuchFile { .. } => ServiceError::NotFound(message),
            ProjectError::Moved { .. } => ServiceError::Conflict(message),
            ProjectError::NameTaken(_) => ServiceError::Conflict(message),
            ProjectError::BadName { .. } => ServiceError::InvalidInput(message),
            ProjectError::Db(e) => ServiceError::Db(e),
        }
    }
}

impl From<ProviderChoiceError> for ServiceError {
    fn from(e: ProviderChoiceError) -> Self {
        match e {
            ProviderChoiceError::Unknown(_) => ServiceError::InvalidInput(e.to_string()),
            ProviderChoiceError::MissingKey { .. } => ServiceError::Provider(e.to_string()),
        }
    }
}

impl From<GenerationError> for ServiceError {
    fn from(e: GenerationError) -> Self {
        match e {
            GenerationError::Checker(_) => ServiceError::Internal(e.to_string()),
            _ => ServiceError::Provider(e.to_string()),
        }
    }
}

impl From<MakeError> for ServiceError {
    fn from(e: MakeError) -> Self {
        let message = e.to_string();
        match e {
            MakeError::InvalidInput(_) | MakeError::Refused(_) => {
                ServiceError::InvalidInput(message)
            }
            MakeError::NoUnsaved(_) => ServiceError::NotFound(message),
            MakeError::FailedChecks { .. } => ServiceError::App(message),
            MakeError::Checker(_) | MakeError::StaticChecker(_) => ServiceError::Internal(message),
            MakeError::Provider(e) => e.into(),
            MakeError::Generation(e) => e.into(),
            MakeError::Project(e) => e.into(),
            MakeError::Db(e) => ServiceError::Db(e),
            // Exits as the repair's own failure would, with the whole message.
            MakeError::RepairFailed { error, .. } => match ServiceError::from(*error) {
                ServiceError::Provider(_) => ServiceError::Provider(message),
                ServiceError::InvalidInput(_) => ServiceError::InvalidInput(message),
                _ => ServiceError::App(message),
            },
        }
    }
}

impl ServiceError {
    /// The code this error crosses the wire with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServiceError::InvalidInput(_) => ErrorCode::InvalidInput,
            ServiceError::Conflict(_) => ErrorCode::Conflict,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Provider(_) => ErrorCode::ProviderError,
            ServiceError::App(_) => ErrorCode::AppFailed,
            ServiceError::Db(_) | ServiceError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<ServiceError> for WireError {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        let message = match &e {
            ServiceError::Db(_) | ServiceError::Internal(_) => {
                format!("{e}; see the daemon's log for details")
            }
            _ => e.to_string(),
        };
        WireError::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckError, Failure, Step};

    fn wire(e: MakeError) -> WireError {
        ServiceError::from(e).into()
    }

    #[test]
    fn each_way_a_version_is_not_made_crosses_with_its_own_code() {
        let failed = MakeError::FailedChecks {
            what: crate::projects::versions::Kind::Edit,
            failure: Failure {
                step: Step::Import,
                error: "NameError".into(),
            },
        };
        let cases = [
            (
                MakeError::InvalidInput("empty".into()),
                ErrorCode::InvalidInput,
            ),
            (MakeError::NoUnsaved(7), ErrorCode::NotFound),
            (failed, ErrorCode::AppFailed),
            (
                MakeError::Checker(CheckError::Broken("disk full".into())),
                ErrorCode::Internal,
            ),
            (
                MakeError::Project(ProjectError::NameTaken("todo".into())),
                ErrorCode::Conflict,
            ),
            (
                MakeError::Project(ProjectError::NotFound("todo".into())),
                ErrorCode::NotFound,
            ),
            (
                MakeError::Provider(ProviderChoiceError::Unknown("x".into())),
                ErrorCode::InvalidInput,
            ),
            (
                MakeError::Generation(GenerationError::Invalid {
                    rounds: 2,
                    problem: "GET / answered 500".into(),
                }),
                ErrorCode::ProviderError,
            ),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            let wire = wire(error);
            assert_eq!(wire.code, code, "{shown}");
            assert!(wire.message.contains(&shown), "{} / {shown}", wire.message);
        }
    }

    #[test]
    fn only_a_store_failure_is_called_a_database_error() {
        let moved = ServiceError::from(MakeError::Project(ProjectError::Moved {
            name: "todo".into(),
            base: 1,
            newest: 2,
        }));
        assert!(!moved.to_string().contains("database"), "{moved}");
        let db = ServiceError::from(MakeError::Db(DbError::NoRow));
        assert_eq!(db.code(), ErrorCode::Internal);
        assert!(db.to_string().starts_with("database error: "), "{db}");
    }
}
