//! The daemon's shared state, handed to every connection.

use std::os::unix::fs::DirBuilderExt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::ai::Providers;
use crate::auth::Accounts;
use crate::config::Settings;
use crate::confine::Protections;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::server::peers::PeerSlots;
use crate::supervisor::Supervisor;

/// Everything a request handler may need.
pub struct Daemon {
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
    /// Connection slots per client process.
    pub peers: PeerSlots,
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
        let protections = tokio::task::spawn_blocking(Protections::probe).await?;
        match protections.missing() {
            None => tracing::info!(
                landlock_abi = protections.landlock_abi,
                "apps are confined: Landlock, user and PID namespaces, non-dumpable daemon"
            ),
            Some(missing) if settings.apps.require_confinement => {
                anyhow::bail!("this kernel lacks what --require-confinement asks for: {missing}")
            }
            Some(missing) => tracing::warn!(
                %missing,
                "apps run with weaker confinement; `appforge status` lists what is on"
            ),
        }
        let path = settings.database_path();
        let db = tokio::task::spawn_blocking(move || Db::open(&path))
            .await?
            .with_context(|| {
                format!(
                    "could not open the database {}",
                    settings.database_path().display()
                )
            })?;
        let providers = Providers::new(&settings.ai).context("could not set up the AI client")?;
        let metrics = Arc::new(Metrics::default());
        let supervisor = Supervisor::new(
            db.clone(),
            &settings.apps,
            Arc::clone(&metrics),
            protections,
        )
        .context("could not set up the supervisor's HTTP client")?;
        Ok(Arc::new(Daemon {
            supervisor,
            metrics,
            accounts: Accounts::new(db.clone()),
            providers,
            db,
            settings: settings.clone(),
            started: Instant::now(),
            connections: AtomicU64::new(0),
            peers: PeerSlots::new(settings.max_connections_per_client),
        }))
    }
}
