//! An app's own settings (`appforge env`): names and values it gets in its
//! environment. A secret's value is stored sealed ([`crate::config::seal`])
//! and leaves the store only opened into the app's environment: lists show
//! it masked, and the checks get a placeholder.

use appforge_shared::protocol::EnvSetting;

use super::Project;
use crate::config::seal::{SealError, SealKey, Sealed};
use crate::db::{Conn, DbError, Row};
use crate::params;
use crate::process::launch::{self, Variables};

/// What the checks see instead of a secret's value: model code under check
/// never sees a real secret.
pub const PLACEHOLDER: &str = "appforge-check-placeholder";

/// What `env` shows instead of a secret's value.
pub const MASK: &str = "********";

/// Settings an app may have, at most.
pub const MAX_SETTINGS: usize = 100;

/// Bytes of one value, at most.
pub const MAX_VALUE: usize = 8 * 1024;

/// Bytes of all of an app's names and values, at most: the app's launch
/// spec, which carries them, must fit the pipe its shim reads it from
/// (64 KiB), JSON escapes (at most two bytes for each allowed byte)
/// included.
pub const MAX_TOTAL: usize = 16 * 1024;

/// Why a settings operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The name may not be a setting's.
    #[error("`{name}` cannot be a setting: {reason}; {}", launch::NAME_RULE)]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The value cannot be put in an environment, or is too long.
    #[error("the value of `{name}` {reason}")]
    BadValue {
        /// The setting's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The app would have too many settings, or too long ones.
    #[error(
        "an app has at most {MAX_SETTINGS} settings of {} KiB in all; unset some first",
        MAX_TOTAL / 1024
    )]
    TooMany,
    /// A change named no setting.
    #[error("name at least one setting to set or unset")]
    Nothing,
    /// The app has no such setting.
    #[error("`{project}` has no setting `{name}`; `appforge env {project}` lists them")]
    NotSet {
        /// The project's name.
        project: String,
        /// The name asked for.
        name: String,
    },
    /// A secret could not be sealed or opened.
    #[error("the secrets of `{project}` cannot be used: {error}")]
    Seal {
        /// The project's name.
        project: String,
        /// What went wrong.
        error: SealError,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A setting as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its name.
    pub name: String,
    /// Its value, plain or sealed.
    pub value: Value,
}

/// A stored value.
#[derive(Clone)]
pub enum Value {
    /// A plain setting's value.
    Plain(String),
    /// A secret's value, sealed.
    Sealed(Sealed),
}

impl Value {
    /// Bytes of the value as the app gets it.
    fn plain_len(&self) -> usize {
        match self {
            Value::Plain(v) => v.len(),
            Value::Sealed(s) => s.plain_len(),
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Plain(_) => f.write_str("Plain(..)"),
            Value::Sealed(s) => write!(f, "Sealed(key {})", s.key_id),
        }
    }
}

/// A setting the app expects, as an export names it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expected {
    /// Its name.
    pub name: String,
    /// Whether it is a secret.
    pub secret: bool,
}

/// The settings as an export names them.
pub fn expected(stored: &[Stored]) -> Vec<Expected> {
    stored
        .iter()
        .map(|s| Expected {
            name: s.name.clone(),
            secret: matches!(s.value, Value::Sealed(_)),
        })
        .collect()
}

/// Checks a name and a value given by a user.
pub fn check(name: &str, value: &str) -> Result<(), SettingsError> {
    launch::check_name(name).map_err(|reason| SettingsError::BadName {
        name: name.to_string(),
        reason,
    })?;
    let bad = |reason| {
        Err(SettingsError::BadValue {
            name: name.to_string(),
            reason,
        })
    };
    if value.contains('\0') {
        return bad("holds a NUL byte, which no environment can carry");
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return bad("holds a control character (only newlines and tabs may be in one)");
    }
    if value.len() > MAX_VALUE {
        return bad("is longer than 8 KiB");
    }
    Ok(())
}

/// What a sealed value is bound to: its project and name, so that a value
/// moved to another row of the store does not open.
fn context(project_id: i64, name: &str) -> String {
    format!("project {project_id} setting {name}")
}

/// Seals `plain` as the value of secret `name` of `project`.
pub fn seal(key: &SealKey, project: &Project, name: &str, plain: &str) -> Value {
    Value::Sealed(key.seal(&context(project.id, name), plain))
}

fn stored_row(r: &Row) -> Result<Stored, DbError> {
    let name: String = r.get(0)?;
    let value: String = r.get(1)?;
    let key_id: Option<String> = r.get(2)?;
    Ok(Stored {
        name,
        value: match key_id {
            Some(key_id) => Value::Sealed(Sealed {
                key_id,
                text: value,
            }),
            None => Value::Plain(value),
        },
    })
}

/// The settings of project `project_id`, by name.
pub fn list(conn: &Conn<'_>, project_id: i64) -> Result<Vec<Stored>, DbError> {
    conn.query(
        "SELECT name, value, key_id FROM project_settings WHERE project_id = $1 ORDER BY name",
        params![project_id],
        stored_row,
    )
}

/// Sets (or replaces) each of `settings`, checked already; refuses to go
/// past [`MAX_SETTINGS`].
pub fn set(conn: &Conn<'_>, project: &Project, settings: &[Stored]) -> Result<(), SettingsError> {
    conn.lock_project(project.id)?;
    for setting in settings {
        let (value, key_id) = match &setting.value {
            Value::Plain(v) => (v.as_str(), None),
            Value::Sealed(s) => (s.text.as_str(), Some(s.key_id.as_str())),
        };
        conn.execute(
            "INSERT INTO project_settings (project_id, name, value, key_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project_id, name) DO UPDATE \
             SET value = excluded.value, key_id = excluded.key_id, updated_at = excluded.updated_at",
            params![project.id, setting.name.as_str(), value, key_id, crate::db::now()],
        )?;
    }
    let all = list(conn, project.id)?;
    let total: usize = all.iter().map(|s| s.name.len() + s.value.plain_len()).sum();
    if all.len() > MAX_SETTINGS || total > MAX_TOTAL {
        return Err(SettingsError::TooMany);
    }
    Ok(())
}

/// Removes each of `names`; refuses (removing none) if one is not set.
pub fn unset(conn: &Conn<'_>, project: &Project, names: &[String]) -> Result<(), SettingsError> {
    for name in names {
        let removed = conn.execute(
            "DELETE FROM project_settings WHERE project_id = $1 AND name = $2",
            params![project.id, name.as_str()],
        )?;
        if removed == 0 {
            return Err(SettingsError::NotSet {
                project: project.name.clone(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// The settings as `env` shows them: secrets masked.
pub fn shown(stored: &[Stored]) -> Vec<EnvSetting> {
    stored
        .iter()
        .map(|s| match &s.value {
            Value::Plain(v) => EnvSetting {
                name: s.name.clone(),
                value: v.clone(),
                secret: false,
            },
            Value::Sealed(_) => EnvSetting {
                name: s.name.clone(),
                value: MASK.to_string(),
                secret: true,
            },
        })
        .collect()
}

/// The settings as the app's environment has them, secrets opened with
/// `key` (which is needed only when there is a secret).
pub fn opened(
    project: &Project,
    stored: &[Stored],
    key: impl FnOnce() -> Result<std::sync::Arc<SealKey>, SealError>,
) -> Result<Variables, SettingsError> {
    let sealed = |error| SettingsError::Seal {
        project: project.name.clone(),
        error,
    };
    let mut key = Some(key);
    let mut opener = None;
    let mut vars = Vec::with_capacity(stored.len());
    for s in stored {
        let value = match &s.value {
            Value::Plain(v) => v.clone(),
            Value::Sealed(sealed_value) => {
                if opener.is_none() {
                    let make = key.take().expect("taken once");
                    opener = Some(make().map_err(sealed)?);
                }
                let opener = opener.as_ref().expect("made above");
                opener
                    .open(&context(project.id, &s.name), sealed_value)
                    .map_err(sealed)?
            }
        };
        vars.push((s.name.clone(), value));
    }
    Ok(Variables(vars))
}

/// The settings as the checks' environment has them: secrets as
/// [`PLACEHOLDER`].
pub fn placeholders(stored: &[Stored]) -> Variables {
    Variables(
        stored
            .iter()
            .map(|s| match &s.value {
                Value::Plain(v) => (s.name.clone(), v.clone()),
                Value::Sealed(_) => (s.name.clone(), PLACEHOLDER.to_string()),
            })
            .collect(),
    )
}

/// The ids of the keys the store's secrets were sealed with: one, when
/// every daemon sharing the store has the same key.
pub fn key_ids(conn: &Conn<'_>) -> Result<Vec<String>, DbError> {
    conn.query(
        "SELECT DISTINCT key_id FROM project_settings WHERE key_id IS NOT NULL",
        &[],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::seal::{KeySource, Keyring};

    fn project() -> Project {
        Project {
            id: 7,
            name: "shop".into(),
            prompt: String::new(),
            owner_id: 1,
        }
    }

    #[test]
    fn secrets_are_masked_opened_or_replaced_by_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::new(KeySource::File(dir.path().join("k")));
        let key = ring.sealing().unwrap();
        let stored = vec![
            Stored {
                name: "API_KEY".into(),
                value: seal(&key, &project(), "API_KEY", "sk-123"),
            },
            Stored {
                name: "MODE".into(),
                value: Value::Plain("fast".into()),
            },
        ];
        let shown = shown(&stored);
        assert_eq!((shown[0].value.as_str(), shown[0].secret), (MASK, true));
        assert_eq!((shown[1].value.as_str(), shown[1].secret), ("fast", false));
        let env = opened(&project(), &stored, || ring.opening()).unwrap();
        assert_eq!(
            env.0,
            [
                ("API_KEY".into(), "sk-123".into()),
                ("MODE".into(), "fast".into())
            ]
        );
        assert_eq!(placeholders(&stored).0[0].1, PLACEHOLDER);
        assert!(!format!("{stored:?}{env:?}").contains("sk-123"));

        // Moved to another project's row, it does not open.
        let mut other = project();
        other.id = 8;
        assert!(opened(&other, &stored, || ring.opening()).is_err());
    }

    #[test]
    fn plain_settings_need_no_key() {
        let stored = vec![Stored {
            name: "MODE".into(),
            value: Value::Plain("x".into()),
        }];
        let opened = opened(&project(), &stored, || {
            Err(SealError::NoKey(KeySource::File("/nowhere".into())))
        })
        .unwrap();
        assert_eq!(opened.0.len(), 1);
    }

    #[test]
    fn names_and_values_are_checked() {
        assert!(check("API_KEY", "v").is_ok());
        let err = check("PATH", "v").unwrap_err().to_string();
        assert!(
            err.contains("`PATH` cannot be a setting") && err.contains("letters, digits and `_`")
        );
        assert!(check("A", "a\0b").is_err());
        assert!(check("A", &"x".repeat(MAX_VALUE + 1)).is_err());
        assert!(check("A", "line\nline\tx").is_ok());
        assert!(check("A", "\u{1b}]0;x\u{7}").is_err());
    }
}
