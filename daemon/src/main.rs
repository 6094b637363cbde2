//! `appforged`: the appforge daemon. It owns the database, the AI client and
//! every app process, and serves the `appforge` client over a Unix socket.

mod ai;
mod auth;
mod checks;
mod config;
mod confine;
mod db;
mod error;
mod metrics;
mod projects;
mod server;
mod state;
mod supervisor;
mod systemd;
mod texts;
mod usage;
mod web;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tracing::info;

use crate::config::{Cli, LogFormat};

fn main() -> ExitCode {
    // `appforged __app-shim` is an app's log process; it never returns here.
    confine::shim::run_if_shim();
    confine::harden_daemon();
    // Before any thread exists: take the keys out of the environment.
    let keys = config::Secrets::take_from_env();
    let loaded = match config::file::load(std::env::args_os().collect()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("appforged: {e:#}");
            return ExitCode::from(2);
        }
    };
    let keys = keys.or(loaded.keys.clone());
    if loaded.cli.print_config {
        return match config::Settings::from_cli(loaded.cli.clone(), keys.clone()) {
            Ok(settings) => {
                print!("{}", loaded.render(&keys, &settings));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("appforged: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let cli = loaded.cli;
    init_logging(cli.log_format);
    if cli.copy_sqlite_store {
        return match copy_sqlite_store(cli, keys) {
            Ok(said) => {
                println!("{said}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("appforged: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli, keys) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appforged: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, keys: config::Secrets) -> anyhow::Result<()> {
    let settings = config::Settings::from_cli(cli, keys)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("appforged-worker")
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async move {
        let daemon = state::Daemon::open(&settings).await?;
        let listener = server::bind(&settings)?;
        // Under the socket's lock, no other daemon checks in these folders.
        let stale = daemon.supervisor.checker().remove_stale();
        if stale > 0 {
            info!(
                stale,
                "removed the scratch folders of checks a previous daemon left"
            );
        }
        let shutdown = server::shutdown_signal()?;
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
            tokio::spawn(metrics::serve(listener, move || {
                server::metrics_text(&scraped)
            }));
            info!(%addr, "serving metrics over HTTP");
        }
        if let Some(addr) = settings.web_addr {
            serve_dashboard(addr, &daemon).await;
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
        // On a worker, not this thread: a client's accept, request and
        // reply then run on the one worker that saw it arrive, instead of
        // waking this thread and handing the connection to a worker.
        let serving = tokio::spawn(server::run(listener, daemon.clone(), async {
            shutdown.await;
            systemd::stopping();
        }));
        let served = serving.await;
        daemon.supervisor.shutdown().await;
        served.context("the socket server stopped unexpectedly")?;
        info!("appforged stopped");
        Ok(())
    })
}

/// `--copy-sqlite-store`: copies the data directory's SQLite store into
/// the empty PostgreSQL database of `--database-url`.
fn copy_sqlite_store(cli: Cli, keys: config::Secrets) -> anyhow::Result<String> {
    let settings = config::Settings::from_cli(cli, keys)?;
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
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
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("APPFORGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Serves the dashboard on `addr`. An address already in use (another
/// user's daemon on this machine, say) leaves the daemon without one,
/// and says so: the socket still serves everything.
async fn serve_dashboard(addr: std::net::SocketAddr, daemon: &Arc<state::Daemon>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "the web dashboard is off: its address cannot be used; choose another with --web-addr");
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
