//! `appforge env`: listing, setting and unsetting an app's own settings.
//! A secret is sealed before it is stored and is never shown again; a
//! change restarts the app if this daemon runs it, on the version it runs,
//! so it sees the new values at once.

use appforge_shared::protocol::{EnvChange, EnvInfo, Secret};

use super::apps;
use crate::config::seal::{Keyring, SealError};
use crate::db::{Db, DbError};
use crate::process::launch::Variables;
use crate::process::reads;
use crate::projects::settings::{self, SettingsError, Stored, Value};
use crate::projects::{versions, Project, ProjectError};
use crate::supervisor::{RunError, Supervisor};

/// Why a change of settings failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The change was refused, or a secret could not be sealed.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The version the app runs could not be read.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The settings are saved, but the running app could not take them.
    #[error(
        "the settings of `{project}` are saved, but its app could not be restarted with \
         them: {error}"
    )]
    Restart {
        /// The project's name.
        project: String,
        /// What went wrong.
        error: RunError,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What changing the settings needs: the store, the key and the apps.
pub struct Settings<'a> {
    /// The store.
    pub db: &'a Db,
    /// The key that seals secrets.
    pub keys: &'a Keyring,
    /// The supervised apps, restarted on a change.
    pub supervisor: &'a Supervisor,
}

impl Settings<'_> {
    /// Applies `change` to `project`'s settings and answers with them, a
    /// secret masked; a change restarts the app if this daemon runs it.
    /// `step` hears the restart's stages.
    pub async fn change(
        &self,
        project: &Project,
        change: EnvChange,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<EnvInfo, ChangeError> {
        let changed = !matches!(change, EnvChange::List);
        let empty = match &change {
            EnvChange::List => false,
            EnvChange::Set { settings, .. } => settings.is_empty(),
            EnvChange::Unset { names } => names.is_empty(),
        };
        if empty {
            return Err(SettingsError::Nothing.into());
        }
        let write = match change {
            EnvChange::List => Write::Nothing,
            EnvChange::Set { settings, secret } => {
                Write::Set(self.values(project, settings, secret).await?)
            }
            EnvChange::Unset { names } => Write::Unset(names),
        };
        let (names, stored) = {
            let project = project.clone();
            self.db
                .transaction(move |tx| {
                    match &write {
                        Write::Nothing => {}
                        Write::Set(values) => settings::set(tx, &project, values)?,
                        Write::Unset(names) => settings::unset(tx, &project, names)?,
                    }
                    Ok::<_, SettingsError>((write.names(), settings::list(tx, project.id)?))
                })
                .await?
        };
        if changed {
            // Names only: a value, secret or not, is never logged.
            tracing::info!(project_id = project.id, ?names, "changed an app's settings");
        }
        let restarted = changed && self.restart_if_running(project, step).await?;
        let missing_settings = self.missing(project, &stored).await?;
        Ok(EnvInfo {
            project_id: project.id,
            project: project.name.clone(),
            settings: settings::shown(&stored),
            restarted,
            missing_settings,
        })
    }

    /// The settings the newest version's code reads that `stored` lacks.
    async fn missing(
        &self,
        project: &Project,
        stored: &[Stored],
    ) -> Result<Vec<String>, ChangeError> {
        let read = project.clone();
        let files = match self
            .db
            .call(move |c| Ok(versions::current_files(c, &read)))
            .await?
        {
            Ok(files) => files,
            // No code yet: nothing is read.
            Err(ProjectError::NoVersions(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        // Names alone: a value is never needed to know what is missing.
        let names = Variables(
            stored
                .iter()
                .map(|s| (s.name.clone(), String::new()))
                .collect(),
        );
        Ok(reads::missing(&files, &names))
    }

    /// The values to store: checked, and sealed when they are secrets.
    async fn values(
        &self,
        project: &Project,
        given: Vec<(String, Secret)>,
        secret: bool,
    ) -> Result<Vec<Stored>, ChangeError> {
        for (name, value) in &given {
            settings::check(name, &value.0)?;
        }
        if !secret {
            return Ok(given
                .into_iter()
                .map(|(name, value)| Stored {
                    name,
                    value: Value::Plain(value.0),
                })
                .collect());
        }
        let sealing = |error| SettingsError::Seal {
            project: project.name.clone(),
            error,
        };
        // The first secret of the store makes the key; after it, a daemon
        // seals only with the key the store's secrets were sealed with, or
        // it would seal secrets no other daemon can open.
        let sealed_with = self.db.call(settings::key_ids).await?;
        let key = match sealed_with.is_empty() {
            true => self.keys.sealing(),
            false => self.keys.opening(),
        }
        .map_err(sealing)?;
        if let Some(other) = sealed_with.into_iter().find(|id| id != key.id()) {
            return Err(sealing(SealError::WrongKey {
                sealed: other,
                ours: key.id().to_string(),
                source_of: self.keys.source().clone(),
            })
            .into());
        }
        Ok(given
            .into_iter()
            .map(|(name, value)| Stored {
                value: settings::seal(&key, project, &name, &value.0),
                name,
            })
            .collect())
    }

    /// Restarts the app on the version it runs, if this daemon runs it;
    /// returns whether it did.
    async fn restart_if_running(
        &self,
        project: &Project,
        step: &(dyn Fn(String) + Sync),
    ) -> Result<bool, ChangeError> {
        let Some(version) = apps::version_running_here(self.supervisor, project) else {
            return Ok(false);
        };
        let read = project.clone();
        let release = self
            .db
            .call(move |c| {
                Ok(versions::files_at(c, &read, version).and_then(|files| {
                    Ok(versions::Release {
                        version,
                        check_status: versions::check_status(c, read.id, version)?,
                        files,
                    })
                }))
            })
            .await??;
        step(format!(
            "restarting the app on version {version} with its new settings"
        ));
        apps::restart(self.supervisor, project, &release, step)
            .await
            .map_err(|error| ChangeError::Restart {
                project: project.name.clone(),
                error,
            })?;
        Ok(true)
    }
}

/// What a change writes.
enum Write {
    Nothing,
    Set(Vec<Stored>),
    Unset(Vec<String>),
}

impl Write {
    fn names(&self) -> Vec<String> {
        match self {
            Write::Nothing => Vec::new(),
            Write::Set(values) => values.iter().map(|s| s.name.clone()).collect(),
            Write::Unset(names) => names.clone(),
        }
    }
}

/// The project's settings as its checks see them: secrets as placeholders,
/// so that model code under check never sees a real secret.
pub async fn for_checks(db: &Db, project_id: i64) -> Result<Variables, DbError> {
    let stored = db.call(move |c| settings::list(c, project_id)).await?;
    Ok(settings::placeholders(&stored))
}

/// Says at start-up, once, when this daemon cannot open the secrets the
/// store holds (no key, or another key than the one they were sealed
/// with): the apps that have them will not start until it can.
pub async fn check_key(db: &Db, keys: &Keyring) -> Result<(), DbError> {
    let sealed_with = db.call(settings::key_ids).await?;
    if sealed_with.is_empty() {
        return Ok(());
    }
    match keys.opening() {
        Ok(key) => {
            if let Some(other) = sealed_with.iter().find(|id| *id != key.id()) {
                let error = SealError::WrongKey {
                    sealed: other.clone(),
                    ours: key.id().to_string(),
                    source_of: keys.source().clone(),
                };
                tracing::error!(%error, "this daemon cannot open the apps' secrets; apps that have secrets will not start");
            }
        }
        Err(error) => {
            tracing::error!(%error, "this daemon cannot open the apps' secrets; apps that have secrets will not start");
        }
    }
    Ok(())
}
