//! The appforge daemon as a library: [`run`] serves one daemon until its
//! shutdown future resolves. `appforged` (src/main.rs) only reads its
//! settings, starts a runtime and calls it; tests may start a daemon
//! in-process the same way.

pub mod ai;
pub mod auth;
pub mod checks;
pub mod config;
pub mod confine;
pub mod db;
pub mod error;
pub mod metrics;
pub mod process;
pub mod projects;
pub mod server;
pub mod services;
pub mod state;
pub mod supervisor;
pub mod systemd;
pub mod texts;
pub mod usage;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tracing::info;

pub use config::Settings;

/// Serves a daemon with `settings` until `shutdown` resolves, then stops
/// the apps it runs (they are adopted again by the next daemon) and
/// returns. The caller owns the runtime, which must be multi-threaded.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let daemon = state::Daemon::open(&settings).await?;
    let listener = server::bind(&settings)?;
    // Under the socket's lock, no other daemon checks in these folders.
    let stale = daemon.checker.clone().remove_stale();
    if stale > 0 {
        info!(
            stale,
            "removed the scratch folders of checks a previous daemon left"
        );
    }
    info!(
        socket = %settings.socket.display(),
        data_dir = %settings.data_dir.display(),
        pid = std::process::id(),
        version = env!("CARGO_PKG_VERSION"),
        "appforged ready"
    );
    if let Some(addr) = settings.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen for metrics on {addr}"))?;
        let scraped = Arc::clone(&daemon);
        tokio::spawn(async move {
            if let Err(e) = web::metrics::serve(listener, scraped).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
        info!(%addr, "serving metrics over HTTP");
    }
    match settings.web_addr {
        Some(addr) => serve_dashboard(addr, &daemon).await,
        None => {
            let _ = daemon.web_off.set(
                "turned off by --web-addr off; start appforged with --web-addr 127.0.0.1:PORT \
                 (or 127.0.0.1:0 for any free port) to serve it"
                    .into(),
            );
        }
    }
    tokio::spawn(sample_usage(Arc::clone(&daemon)));
    systemd::ready("serving");
    systemd::spawn_watchdog();
    // Serve at once; runs and stops wait for the recovery to finish.
    let recovering = Arc::clone(&daemon);
    tokio::spawn(async move {
        if let Err(e) = recovering.supervisor.recover().await {
            tracing::error!(error = %e, "could not recover the apps of the previous daemon");
        }
    });
    // On a worker, not the caller's thread: a client's accept, request and
    // reply then run on the one worker that saw it arrive, instead of
    // waking the caller's thread and handing the connection to a worker.
    let serving = tokio::spawn(server::run(listener, daemon.clone(), async {
        shutdown.await;
        systemd::stopping();
    }));
    let served = serving.await;
    daemon.supervisor.shutdown().await;
    served.context("the socket server stopped unexpectedly")?;
    info!("appforged stopped");
    Ok(())
}

/// `--copy-sqlite-store`: copies the data directory's SQLite store into
/// the empty PostgreSQL database of `--database-url`.
pub async fn copy_sqlite_store(settings: Settings) -> anyhow::Result<String> {
    let database = settings.database.clone().context(
        "--copy-sqlite-store copies into a PostgreSQL database: name it with --database-url \
             or APPFORGE_DATABASE_URL",
    )?;
    let path = settings.database_path();
    anyhow::ensure!(
        path.exists(),
        "there is no SQLite store at {}; give the --data-dir that holds it",
        path.display()
    );
    let from = db::Db::open(&path)
        .with_context(|| format!("could not open the database {}", path.display()))?;
    // No daemon writes to it under the copy.
    let _locked = db::hosts::lock_sqlite(&from).await?;
    let to = db::Db::connect(&database.url, database.password.as_ref())
        .await
        .with_context(|| format!("could not open the database {}", database.url))?;
    let copied = db::copy::sqlite_to_postgres(&from, &to).await?;
    Ok(format!(
        "copied {copied} from {} into {}; start appforged with --database-url to use it",
        from.describe(),
        to.describe()
    ))
}

/// Serves the dashboard on `addr`. An address already in use (another
/// user's daemon on this machine, say) leaves the daemon without one,
/// and says so: the socket still serves everything.
async fn serve_dashboard(addr: std::net::SocketAddr, daemon: &Arc<state::Daemon>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "the web dashboard is off: its address cannot be used; choose another with --web-addr");
            let _ = daemon.web_off.set(web_off_reason(addr, &e));
            return;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let url = web::url_of(bound);
    let _ = daemon.web_url.set(url.clone());
    info!(%url, "serving the web dashboard");
    let served = Arc::clone(daemon);
    tokio::spawn(async move {
        if let Err(e) = web::serve(listener, served).await {
            tracing::error!(error = %e, "the web dashboard stopped");
        }
    });
}

/// Why the dashboard could not listen on `addr`, and what to do, in words.
fn web_off_reason(addr: std::net::SocketAddr, e: &std::io::Error) -> String {
    let instead = format!(
        "restart appforged with --web-addr {}:0 to take any free port, or --web-addr off",
        addr.ip()
    );
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "port {} is taken by another program (another appforged, say): {instead}; or free \
             the port (`ss -ltnp 'sport = :{}'` shows what holds it)",
            addr.port(),
            addr.port()
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "this user may not listen on port {} (ports below 1024 need privileges): {instead}",
            addr.port()
        ),
        _ => format!("{addr} cannot be used ({e}): {instead}"),
    }
}

/// Samples every app's CPU and memory once a minute, for the dashboard's
/// charts: one wake-up a minute, one cheap read per app.
async fn sample_usage(daemon: Arc<state::Daemon>) {
    let mut tick = tokio::time::interval(usage::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let apps = daemon.supervisor.ps_all();
        daemon.usage.record(&apps, usage::unix_now());
    }
}
