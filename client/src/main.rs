//! `appforge`: the command-line client of `appforged`. It parses arguments,
//! sends one request over the daemon's socket, renders the reply and exits.

mod ask;
mod cli;
mod commands;
mod daemon;
mod diffstat;
mod error;
mod escape;
mod folder;
mod logview;
mod output;
mod render;
mod session;
mod when;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // One thread and no timers: the client waits on nothing but its
    // socket, and every command would pay for more at start-up.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("appforge: could not start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e, json);
            ExitCode::from(e.exit_status())
        }
    }
}
