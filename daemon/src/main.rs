//! `appforged`: the appforge daemon. It owns the database, the AI client and
//! every app process, and serves the `appforge` client over a Unix socket.
//! Everything but reading the settings and starting the runtime lives in
//! the library ([`appforge_daemon::run`]).

use std::process::ExitCode;

use anyhow::Context;
use appforge_daemon::config::{self, LogFormat, Settings};
use appforge_daemon::{confine, server};

fn main() -> ExitCode {
    confine::harden_daemon();
    // Before any thread exists: take the keys out of the environment.
    let keys = config::Secrets::take_from_env();
    let loaded = match config::file::load(std::env::args_os().collect()) {
        Ok(loaded) => loaded,
        Err(e) => return fail(e, 2),
    };
    let keys = keys.or(loaded.keys.clone());
    let cli = loaded.cli.clone();
    let settings = match Settings::from_cli(cli.clone(), keys.clone()) {
        Ok(settings) => settings,
        Err(e) => return fail(e, 2),
    };
    if cli.print_config {
        print!("{}", loaded.render(&keys, &settings));
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_format);
    let copy = cli.copy_sqlite_store;
    let served = runtime().and_then(|runtime| {
        runtime.block_on(async move {
            if copy {
                let said = appforge_daemon::copy_sqlite_store(settings).await?;
                println!("{said}");
                return Ok(());
            }
            let shutdown = server::shutdown_signal()?;
            appforge_daemon::run(settings, shutdown).await
        })
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("appforged-worker")
        .build()
        .context("could not start the async runtime")
}

fn fail(e: anyhow::Error, code: u8) -> ExitCode {
    eprintln!("appforged: {e:#}");
    ExitCode::from(code)
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
