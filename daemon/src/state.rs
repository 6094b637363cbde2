//! The daemon's shared state, handed to every connection.

use std::os::unix::fs::DirBuilderExt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::ai::Providers;
use crate::auth::Accounts;
use crate::checks::Checker;
use crate::config::seal::Keyring;
use crate::config::Settings;
use crate::confine::cgroup::Cgroups;
use crate::confine::Protections;
use crate::db::hosts::HostLease;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::services::orders::StoredOrders;
use crate::supervisor::Supervisor;

/// Everything a request handler may need.
pub struct Daemon {
    /// Runs each new version before it is saved.
    pub checker: Checker,
    /// The database.
    pub db: Db,
    /// Accounts and sessions.
    pub accounts: Accounts,
    /// The AI providers.
    pub providers: Providers,
    /// The supervised apps.
    pub supervisor: Supervisor,
    /// Counters for `appforge metrics`.
    pub metrics: Arc<Metrics>,
    /// The effective settings.
    pub settings: Settings,
    /// When the daemon started.
    pub started: Instant,
    /// Clients connected right now.
    pub connections: AtomicU64,
    /// The dashboard's address, once it listens.
    pub web_url: std::sync::OnceLock<String>,
    /// Why the dashboard is off, and what to do, when it is.
    pub web_off: std::sync::OnceLock<String>,
    /// The apps' CPU and memory over the last hour.
    pub usage: crate::usage::UsageLog,
    /// News of changed projects, for the dashboard's live pages.
    pub project_news: crate::services::news::ProjectNews,
    /// The key that seals the apps' secrets.
    pub keys: Arc<Keyring>,
}

impl Daemon {
    /// Creates the data directory if needed, opens and migrates the database.
    pub async fn open(settings: &Settings) -> anyhow::Result<Arc<Daemon>> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.data_dir)
            .with_context(|| {
                format!(
                    "could not create the data directory {}",
                    settings.data_dir.display()
                )
            })?;
        crate::confine::secure_data_dir(&settings.data_dir).with_context(|| {
            format!(
                "could not make the data directory {} private",
                settings.data_dir.display()
            )
        })?;
        // Without the shim's program no app can run: say so now, not at the
        // first `run`.
        let (_, shim) = crate::confine::shim::program()?;
        tracing::debug!(shim = %shim.display(), "apps run under this shim");
        let mut protections = tokio::task::spawn_blocking(Protections::probe).await?;
        if !settings.apps.namespaces {
            protections.namespaces = false;
            protections.namespaces_error = Some("turned off by --no-app-namespaces".into());
        }
        let cgroups = match settings.apps.cgroups {
            true => Cgroups::set_up(&data_dir_tag(&settings.data_dir)).map_err(|e| e.to_string()),
            false => Err("turned off by --no-app-cgroups".to_string()),
        };
        let cgroups = match cgroups {
            Ok(cgroups) => {
                protections.cgroup_controllers = Some(cgroups.controllers().to_vec());
                Some(Arc::new(cgroups))
            }
            Err(why) => {
                protections.cgroup_error = Some(why);
                None
            }
        };
        match protections.missing() {
            None => tracing::info!(
                landlock_abi = protections.landlock_abi,
                cgroups = protections.cgroup_controllers.is_some(),
                "apps are confined: Landlock for files and ports, user and PID namespaces, non-dumpable daemon"
            ),
            Some(missing) if settings.apps.require_confinement => {
                anyhow::bail!("this kernel lacks what --require-confinement asks for: {missing}")
            }
            Some(missing) => tracing::warn!(
                %missing,
                "apps run with weaker confinement; `appforge status` lists what is on"
            ),
        }
        let db = match &settings.database {
            Some(database) => Db::connect(&database.url, database.password.as_ref())
                .await
                .with_context(|| format!("could not open the database {}", database.url))?,
            None => {
                let path = settings.database_path();
                tokio::task::spawn_blocking(move || Db::open(&path))
                    .await?
                    .with_context(|| {
                        format!(
                            "could not open the database {}",
                            settings.database_path().display()
                        )
                    })?
            }
        };
        let lease = HostLease::claim(&db, &settings.apps.host, &settings.socket).await?;
        tracing::info!(host = lease.host(), database = %db.describe(), "opened the store");
        let keys = Arc::new(Keyring::new(settings.secrets_key.clone()));
        crate::services::settings::check_key(&db, &keys).await?;
        let providers = Providers::new(&settings.ai).context("could not set up the AI client")?;
        let metrics = Arc::new(Metrics::default());
        let checker = Checker::new(
            Arc::new(settings.apps.clone()),
            Arc::new(protections.clone()),
            settings.apps.projects_dir.join("checks"),
        );
        let supervisor = Supervisor::new(
            db.clone(),
            Arc::new(lease),
            &settings.apps,
            Arc::clone(&metrics),
            protections,
            cgroups,
            Arc::new(StoredOrders::new(db.clone(), Arc::clone(&keys))),
        );
        Ok(Arc::new(Daemon {
            supervisor,
            checker,
            metrics,
            accounts: Accounts::new(db.clone()),
            providers,
            db,
            settings: settings.clone(),
            started: Instant::now(),
            connections: AtomicU64::new(0),
            web_url: std::sync::OnceLock::new(),
            web_off: std::sync::OnceLock::new(),
            usage: crate::usage::UsageLog::default(),
            project_news: Default::default(),
            keys,
        }))
    }
}

/// A short name for a data directory, so that daemons with different data
/// directories (tests, several users as root) keep their cgroups apart.
fn data_dir_tag(dir: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes()))[..12].to_string()
}
